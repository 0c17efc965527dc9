#!/usr/bin/env bash
# Tracking endpoints under load: GET /o/{token} (open pixel) and GET /l/{token} (landing page)
# with wrk, next to an actix-web hello-world on the same machine in the same run; with each
# server's peak (VmHWM) and current RSS after each load.
#
#   bench/endpoints.sh [sqlite|postgres]     # DURATION=10s CONNECTIONS=64 THREADS=2
#   OPTBRIDGE_BIN=/tmp/old/optbridge bench/endpoints.sh    # another build, same run conditions
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${1:-sqlite}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
HTTP_WORKERS="${HTTP_WORKERS:-2}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
OUT=bench/out/endpoints
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }

cargo build --release --quiet --bin optbridge --example bench-hello
# OPTBRIDGE_BIN runs another build (e.g. an older commit's, to compare) instead of this tree's.
BIN="${OPTBRIDGE_BIN:-target/release/optbridge}"

case "$BACKEND" in
    sqlite) rm -f "$OUT"/ep.db*; export DATABASE_URL="sqlite://$OUT/ep.db" ;;
    postgres)
        psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_ep WITH (FORCE)" -c "CREATE DATABASE optbridge_bench_ep"
        export DATABASE_URL="${PG_URL%/*}/optbridge_bench_ep" ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export RUST_LOG=warn BIND=127.0.0.1:8090 BASE_URL=http://127.0.0.1:8090 HTTP_WORKERS
unset SMTP_URL

# One invitation through the dev outbox gives real signed links.
. bench/lib.sh
invitation_links "$OUT/ep.db"

"$BIN" serve --no-workers &
SERVER=$!
target/release/examples/bench-hello 127.0.0.1:8091 "$HTTP_WORKERS" &
HELLO=$!
cleanup() {
    kill "$SERVER" "$HELLO" 2>/dev/null || true
    wait "$SERVER" "$HELLO" 2>/dev/null || true
    [ "$BACKEND" = postgres ] && psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_ep WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:8090/healthz >/dev/null && curl -sf http://127.0.0.1:8091/ >/dev/null && break; sleep 0.2; done

run() { # name url
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2" > "$OUT/$1.txt"
    python3 - "$OUT/$1.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps} {p99} {errors.group(1) if errors else 0}")
PY
}
rss() { # pid → peak and current RSS in KiB
    awk '/^VmHWM/ {hwm = $2} /^VmRSS/ {rss = $2} END {print hwm, rss}' "/proc/$1/status"
}
read -r hello_rps hello_p99 _ < <(run hello http://127.0.0.1:8091/)
read -r hello_hwm hello_rss < <(rss "$HELLO")
read -r pixel_rps pixel_p99 pixel_err < <(run pixel "$PIXEL")
read -r pixel_hwm pixel_rss < <(rss "$SERVER")
read -r landing_rps landing_p99 landing_err < <(run landing "$LANDING")
read -r landing_hwm landing_rss < <(rss "$SERVER")
sleep 1
METRICS=$(curl -s http://127.0.0.1:8090/metrics)

python3 - "$hello_rps" "$hello_p99" "$pixel_rps" "$pixel_p99" "$pixel_err" "$landing_rps" "$landing_p99" "$landing_err" "$BACKEND" "$METRICS" \
    "$hello_hwm" "$hello_rss" "$pixel_hwm" "$pixel_rss" "$landing_hwm" "$landing_rss" <<'PY'
import sys
h, hp, p, pp, pe, l, lp, le, backend, metrics = sys.argv[1:11]
h, hp, p, pp, l, lp = map(float, (h, hp, p, pp, l, lp))
hh, hr, ph, pr, lh, lr = (f"{int(kib) / 1024:>7.1f} MiB" for kib in sys.argv[11:])
def metric(name):
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0
print()
print(f"{'endpoint':<32}{'req/s':>10}{'p99 ms':>9}{'ratio':>8}{'errors':>8}{'peak RSS':>12}{'end RSS':>12}")
print(f"{'actix-web hello world':<32}{h:>10,.0f}{hp:>9.2f}{1:>8.2f}{0:>8}{hh:>12}{hr:>12}")
print(f"{'GET /o/{token} (pixel)':<32}{p:>10,.0f}{pp:>9.2f}{p/h:>8.2f}{pe:>8}{ph:>12}{pr:>12}")
print(f"{'GET /l/{token} (landing page)':<32}{l:>10,.0f}{lp:>9.2f}{l/h:>8.2f}{le:>8}{lh:>12}{lr:>12}")
print(f"\n{backend}; goal: ratio >= 0.5. Tracking events recorded: {metric('optbridge_tracking_events_total'):,}, "
      f"dropped (buffer full): {metric('optbridge_tracking_events_dropped_total'):,}")
print("RSS: the server's (the hello world's on its row) peak (VmHWM) and current (VmRSS) after that run's load")
PY
