#!/usr/bin/env bash
# Twilio inbound-SMS webhook ingest under load: POST /webhooks/twilio/inbound, every request
# validly signed and with a new MessageSid (so each is stored and queued, none is an idempotent
# replay), by bench/webhook_load.rs; the same generator against the actix-web hello world in the
# same run is the baseline. Then the database is counted: every 2xx must be a stored message.
#
#   bench/webhooks.sh [sqlite|postgres]     # DURATION=10s CONNECTIONS=64 HTTP_WORKERS=2 WORKERS=1
#
# The outbox workers run, as in production, and process each reply while the load goes on
# (WORKERS=0 runs `serve --no-workers`: ingest alone). The senders are unknown numbers without a
# sign-up, so processing ends in "ignored" / "no reply" (STOP suppresses the number in the one
# workspace) and queues no SMS; TWILIO_API_BASE points at a closed local port all the same.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${1:-sqlite}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
HTTP_WORKERS="${HTTP_WORKERS:-2}"
WORKERS="${WORKERS:-1}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
PORT=8094
HELLO_PORT=8095
OUT=bench/out/webhooks
mkdir -p "$OUT"
for tool in curl python3; do command -v $tool >/dev/null || { echo "need $tool" >&2; exit 1; }; done

cargo build --release --quiet --bin optbridge --example bench-hello --example bench-webhooks
BIN=target/release/optbridge
LOAD=target/release/examples/bench-webhooks

case "$BACKEND" in
    sqlite)
        command -v sqlite3 >/dev/null || { echo "installing sqlite3" >&2; apt-get install -y -qq sqlite3 >/dev/null; }
        rm -f "$OUT"/wh.db*
        export DATABASE_URL="sqlite://$OUT/wh.db"
        q() { sqlite3 "$OUT/wh.db" "$1"; }
        ;;
    postgres)
        command -v psql >/dev/null || { echo "installing postgresql-client" >&2; apt-get install -y -qq postgresql-client >/dev/null; }
        psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_wh WITH (FORCE)" -c "CREATE DATABASE optbridge_bench_wh"
        export DATABASE_URL="${PG_URL%/*}/optbridge_bench_wh"
        q() { psql -Atd "$DATABASE_URL" -c "$1"; }
        ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
cleanup() {
    for pid in ${SERVER:-} ${HELLO:-}; do kill "$pid" 2>/dev/null || true; done
    # The server lets go of its connections before the database goes.
    for pid in ${SERVER:-} ${HELLO:-}; do wait "$pid" 2>/dev/null || true; done
    case "$BACKEND" in
        sqlite) rm -f "$OUT"/wh.db* ;;
        postgres) psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_wh WITH (FORCE)" >/dev/null 2>&1 || true ;;
    esac
}
trap cleanup EXIT

export RUST_LOG=warn BIND=127.0.0.1:$PORT BASE_URL=http://127.0.0.1:$PORT HTTP_WORKERS
export SMS_PROVIDER=twilio TWILIO_ACCOUNT_SID="AC$(printf '0%.0s' $(seq 32))" TWILIO_FROM=+4570000000
TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN
# Port 9 (discard) is closed here: an SMS a worker tried to send would fail locally.
export TWILIO_API_BASE=http://127.0.0.1:9
unset SMTP_URL

"$BIN" migrate >/dev/null
# One workspace, so a STOP has somewhere to suppress the number.
"$BIN" --json workspace create --name Bench --from "Bench <news@bench.example>" >/dev/null

SERVE_ARGS=()
[ "$WORKERS" = 0 ] && SERVE_ARGS=(--no-workers)
"$BIN" serve "${SERVE_ARGS[@]}" &
SERVER=$!
target/release/examples/bench-hello 127.0.0.1:$HELLO_PORT "$HTTP_WORKERS" &
HELLO=$!
for _ in $(seq 1 50); do curl -sf "$BASE_URL/healthz" >/dev/null && curl -sf http://127.0.0.1:$HELLO_PORT/ >/dev/null && break; sleep 0.2; done

rss() { # pid → peak and current RSS in KiB
    awk '/^VmHWM/ {hwm = $2} /^VmRSS/ {rss = $2} END {print hwm, rss}' "/proc/$1/status"
}
"$LOAD" "http://127.0.0.1:$HELLO_PORT/webhooks/twilio/inbound" "$CONNECTIONS" "$DURATION" > "$OUT/hello.json"
read -r hello_hwm hello_rss < <(rss "$HELLO")
"$LOAD" "$BASE_URL/webhooks/twilio/inbound" "$CONNECTIONS" "$DURATION" > "$OUT/optbridge.json"
read -r server_hwm server_rss < <(rss "$SERVER")
BACKLOG=$(q "SELECT count(*) FROM outbox_jobs WHERE kind = 'inbound_sms'")

# Let the workers finish the backlog, so the counts show every reply processed.
DRAIN_START=$(date +%s.%N)
if [ "$WORKERS" != 0 ]; then
    for _ in $(seq 1 600); do
        [ "$(q "SELECT count(*) FROM outbox_jobs WHERE kind = 'inbound_sms'")" = 0 ] && break
        sleep 0.2
    done
fi
DRAIN_SECS=$(python3 -c "import time; print(round(time.time() - $DRAIN_START, 1))")
STORED=$(q "SELECT count(*) FROM inbound_messages")
PROCESSED=$(q "SELECT count(*) FROM inbound_messages WHERE processed_at IS NOT NULL")
QUEUED=$(q "SELECT count(*) FROM outbox_jobs WHERE kind = 'inbound_sms'")
SMS=$(q "SELECT count(*) FROM sms_messages")
SUPPRESSED=$(q "SELECT count(*) FROM suppressions WHERE channel = 'sms'")
OUTCOMES=$(q "SELECT coalesce(outcome, '(queued)'), count(*) FROM inbound_messages GROUP BY coalesce(outcome, '(queued)') ORDER BY 1")

python3 - "$BACKEND" "$OUT/hello.json" "$OUT/optbridge.json" "$hello_hwm" "$hello_rss" "$server_hwm" "$server_rss" \
    "$BACKLOG" "$DRAIN_SECS" "$STORED" "$PROCESSED" "$QUEUED" "$SMS" "$SUPPRESSED" "$WORKERS" "$OUTCOMES" <<'PY'
import json, sys
(backend, hello_file, app_file, hh, hr, sh, sr, backlog, drain, stored, processed, queued, sms, suppressed,
 workers, outcomes) = sys.argv[1:]
h, a = json.load(open(hello_file)), json.load(open(app_file))
mib = lambda kib: int(kib) / 1024
print()
print(f"{backend}, {a['connections']} connections, {a['seconds']:.0f} s each; outbox workers {'on' if workers != '0' else 'off'}")
print(f"{'POST /webhooks/twilio/inbound':<30}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'ratio':>7}"
      f"{'non-2xx':>9}{'failed':>8}{'peak RSS MiB':>14}{'end RSS MiB':>13}")
for name, r, peak, end in (("actix-web hello world", h, hh, hr), ("optbridge (signed, stored)", a, sh, sr)):
    print(f"{name:<30}{r['rps']:>9,.0f}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['max_ms']:>8.1f}"
          f"{r['rps'] / h['rps']:>7.2f}{r['non_2xx']:>9}{r['failed']:>8}{mib(peak):>14.1f}{mib(end):>13.1f}")
stored, processed, queued = int(stored), int(processed), int(queued)
print(f"\nacknowledged 2xx {a['ok_2xx']:,} = stored in inbound_messages {stored:,}: "
      f"{'yes' if a['ok_2xx'] == stored else 'NO'}")
after = f"after {drain} s more" if workers != "0" else "workers off, so still"
print(f"outbox inbound_sms jobs queued at the end of the load: {int(backlog):,}; {after}: {queued:,}; "
      f"processed {processed:,} (processed + queued = stored: {'yes' if processed + queued == stored else 'NO'})")
print(f"SMS queued in reply: {sms}; numbers suppressed by STOP: {suppressed}")
print("outcomes: " + "; ".join(line.replace("|", ": ") for line in outcomes.splitlines()))
ok = a["p99_ms"] < 1000 and a["non_2xx"] == 0 and a["failed"] == 0 and a["ok_2xx"] == stored
print(f"goal: p99 ack < 1 s, nothing lost -> {'met' if ok else 'NOT met'}")
PY
