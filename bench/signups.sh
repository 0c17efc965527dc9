#!/usr/bin/env bash
# Concurrent sign-ups: N landing-form POSTs (POST /l/{token}) sent at once over N connections
# to one `optbridge serve`, with the server's RSS before and its peak (VmHWM) after. Each POST
# does its work in the database (the abuse limits answer most of them), so this measures how
# much memory queued database work costs.
#
#   bench/signups.sh [sqlite|postgres]        # REQUESTS=1000 HTTP_WORKERS=2 PROFILE=release
#   OPTBRIDGE_BIN=/tmp/old/optbridge bench/signups.sh    # another build, same run conditions
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${1:-sqlite}"
REQUESTS="${REQUESTS:-1000}"
HTTP_WORKERS="${HTTP_WORKERS:-2}"
PROFILE="${PROFILE:-release}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
OUT=bench/out/signups
mkdir -p "$OUT"
ulimit -n "$(( REQUESTS * 2 + 256 ))"

if [ -z "${OPTBRIDGE_BIN:-}" ]; then
    if [ "$PROFILE" = release ]; then cargo build --release --quiet --bin optbridge; else cargo build --quiet --bin optbridge; fi
fi
BIN="${OPTBRIDGE_BIN:-target/$( [ "$PROFILE" = release ] && echo release || echo debug )/optbridge}"

case "$BACKEND" in
    sqlite) rm -f "$OUT"/su.db*; export DATABASE_URL="sqlite://$OUT/su.db" ;;
    postgres)
        psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_su WITH (FORCE)" -c "CREATE DATABASE optbridge_bench_su"
        export DATABASE_URL="${PG_URL%/*}/optbridge_bench_su" ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export RUST_LOG=error BIND=127.0.0.1:8092 BASE_URL=http://127.0.0.1:8092 HTTP_WORKERS
unset SMTP_URL SMS_PROVIDER

# One invitation through the dev outbox gives a real landing link (its path is what is posted to).
. bench/lib.sh
invitation_links "$OUT/su.db"
LANDING="/l/${LANDING#*/l/}"

"$BIN" serve --no-workers &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    [ "$BACKEND" = postgres ] && psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_su WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:8092/healthz >/dev/null && break; sleep 0.2; done
CSRF=$(curl -s "http://127.0.0.1:8092$LANDING" | python3 -c 'import re,sys; print(re.search(r"name=\"csrf\" value=\"([^\"]*)\"", sys.stdin.read()).group(1))')
rss() { awk '/^VmHWM/ {hwm = $2} /^VmRSS/ {rss = $2} /^Threads/ {t = $2} END {print hwm, rss, t}' "/proc/$SERVER/status"; }
read -r hwm0 rss0 threads0 < <(rss)

# All connections first, then every request at once; the answers are read after all are sent.
python3 - "$REQUESTS" "$LANDING" "$CSRF" "$SERVER" <<'PY' > "$OUT/run.txt"
import asyncio, collections, sys, time, urllib.parse
n, path, csrf, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def threads():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])

async def main():
    conns = [await asyncio.open_connection("127.0.0.1", 8092) for _ in range(n)]
    statuses, most = collections.Counter(), 0
    started = time.monotonic()
    for i, (_, w) in enumerate(conns):
        phone = f"+4520{123456 + i:06d}"
        body = urllib.parse.urlencode({"csrf": csrf, "phone": phone, "consent": "yes"}).encode()
        w.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8092\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    async def watch():
        nonlocal most
        while True:
            most = max(most, threads())
            await asyncio.sleep(0.01)
    watcher = asyncio.create_task(watch())
    for r, w in conns:
        line = await r.readline()
        statuses[line.split()[1].decode() if line else "closed"] += 1
        w.close()
    watcher.cancel()
    print(f"{time.monotonic() - started:.2f} {most} " + ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())))

asyncio.run(main())
PY
read -r secs threads_most statuses < "$OUT/run.txt"
read -r hwm1 rss1 _ < <(rss)
python3 - "$BACKEND" "$REQUESTS" "$secs" "$threads0" "$threads_most" "$statuses" "$rss0" "$hwm1" "$rss1" <<'PY'
import sys
backend, n, secs, t0, tmax, statuses = sys.argv[1:7]
rss0, hwm1, rss1 = (int(k) / 1024 for k in sys.argv[7:])
print(f"{backend}: {n} concurrent landing POSTs in {float(secs):.2f} s, answers {statuses}")
print(f"threads {t0} before, {tmax} at most; RSS {rss0:.1f} MiB before, peak (VmHWM) {hwm1:.1f} MiB, {rss1:.1f} MiB after")
PY
