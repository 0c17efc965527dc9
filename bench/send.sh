#!/usr/bin/env bash
# Invitation send rate: optbridge sends N invitations to postfix's smtp-sink; the baseline is
# smtp-source pushing N messages of the same size to the same sink, in the same run (before and
# after optbridge; the ratio is against their mean).
#
#   bench/send.sh [N] [sqlite|postgres]      # default 100000 sqlite
#   WORKERS=4 BATCH=200 CONCURRENCY=32 bench/send.sh 100000 postgres
#   WORKERS=2 BATCH=100 CONCURRENCY=8 INVITATION_BATCH=default bench/send.sh   # the product's defaults
#
# BATCH sets OUTBOX_BATCH and, unless INVITATION_BATCH is given, INVITATION_BATCH (the invitations
# a worker sends per round; "default" leaves the product's default). Builds from before
# INVITATION_BATCH existed size their rounds by OUTBOX_BATCH.
#   OPTBRIDGE_BIN=/tmp/old/optbridge bench/send.sh       # another build, same run conditions
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
BACKEND="${2:-sqlite}"
WORKERS="${WORKERS:-4}"
BATCH="${BATCH:-200}"
INVITATION_BATCH="${INVITATION_BATCH:-$BATCH}"
ROUND=()
[ "$INVITATION_BATCH" = default ] || ROUND=(INVITATION_BATCH="$INVITATION_BATCH")
export -n INVITATION_BATCH  # only the sending worker gets it
CONCURRENCY="${CONCURRENCY:-32}"
SESSIONS="${SESSIONS:-$((WORKERS * CONCURRENCY))}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
PORT="${SINK_PORT:-2526}"
OUT=bench/out/send
mkdir -p "$OUT"
. bench/lib.sh

if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
    echo "installing postfix (for smtp-sink and smtp-source; no daemon is started)" >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
for tool in sqlite3 psql python3; do command -v $tool >/dev/null || { echo "need $tool" >&2; exit 1; }; done
export PATH="$PATH:/usr/sbin"

# OPTBRIDGE_BIN runs another build (e.g. an older commit's, to compare) instead of this tree's.
if [ -n "${OPTBRIDGE_BIN:-}" ]; then
    BIN="$OPTBRIDGE_BIN"
else
    cargo build --release --quiet
    BIN=target/release/optbridge
fi

# smtp-sink refuses to run as root without a user to drop to.
SINK_USER=()
[ "$(id -u)" = 0 ] && SINK_USER=(-u nobody)
smtp-sink "${SINK_USER[@]}" -m 1024 "127.0.0.1:$PORT" 1024 &
SINK=$!
cleanup() {
    kill "$SINK" 2>/dev/null || true
    [ -n "${WORKER_PID:-}" ] && kill "$WORKER_PID" 2>/dev/null || true
    [ "$BACKEND" = postgres ] && psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_send WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
sleep 0.5

case "$BACKEND" in
    sqlite)
        rm -f "$OUT"/send.db*
        DB="sqlite://$OUT/send.db"
        sql() { sqlite3 "$OUT/send.db" "$1"; }
        span() { sqlite3 "$OUT/send.db" "SELECT (julianday(max(sent_at)) - julianday(min(sent_at))) * 86400 FROM invitations"; }
        last_send() { sqlite3 "$OUT/send.db" "SELECT (julianday(max(sent_at)) - 2440587.5) * 86400 FROM invitations"; }
        ;;
    postgres)
        psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_send WITH (FORCE)" -c "CREATE DATABASE optbridge_bench_send"
        DB="${PG_URL%/*}/optbridge_bench_send"
        sql() { psql -d "$DB" -Atc "$1"; }
        span() { psql -d "$DB" -Atc "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM invitations"; }
        last_send() { psql -d "$DB" -Atc "SELECT extract(epoch FROM max(sent_at)) FROM invitations"; }
        ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export DATABASE_URL="$DB" RUST_LOG=warn

# Creates workspace, contacts, consent text and campaign in $DATABASE_URL and starts sending.
setup_campaign() { # csv
    "$BIN" migrate >/dev/null
    local ws text campaign
    ws=$("$BIN" --json workspace create --name Bench --from "Bench <news@bench.example>" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace_id"])')
    "$BIN" --json import --workspace "$ws" "$1" >/dev/null
    campaign=$(four_language_campaign "$ws" Bench)
    "$BIN" campaign send --workspace "$ws" --campaign "$campaign" >/dev/null
}

CSV="$OUT/contacts-$N.csv"
[ -f "$CSV" ] || python3 bench/gen_contacts.py "$N" > "$CSV"

# The baseline sends messages of the size optbridge's invitations really have: render one
# through the dev outbox first.
rm -f "$OUT"/probe.db*
head -n 2 "$CSV" > "$OUT/probe.csv"
DATABASE_URL="sqlite://$OUT/probe.db" setup_campaign "$OUT/probe.csv"
DATABASE_URL="sqlite://$OUT/probe.db" "$BIN" worker --drain
SIZE=$(sqlite3 "$OUT/probe.db" "SELECT length(raw) FROM dev_messages LIMIT 1")

# Run before and after optbridge: on a shared machine the speed drifts, and the ratio is taken
# against the mean of the two.
baseline() {
    echo "== baseline: smtp-source, $N messages of $SIZE bytes over $SESSIONS sessions" >&2
    local t0 t1
    t0=$(date +%s.%N)
    smtp-source -d -s "$SESSIONS" -m "$N" -l "$SIZE" -f bench@example.com -t sink@example.com "127.0.0.1:$PORT"
    t1=$(date +%s.%N)
    python3 -c "print($N / ($t1 - $t0))"
}
raw_before=$(baseline)

echo "== optbridge: $N invitations ($BACKEND, $WORKERS workers × invitation batch $INVITATION_BATCH × $CONCURRENCY in flight)"
setup_campaign "$CSV"

# CPU seconds (user + system) of processes, including their reaped children (PostgreSQL's
# backends are children of the postmaster): where the two cores went during the run.
TICKS=$(getconf CLK_TCK)
cpu() { # pid...
    local total=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}')))
    done
    python3 -c "print($total / $TICKS)"
}
db_cpu() { if [ "$BACKEND" = postgres ]; then cpu $(pgrep -x postgres); else echo 0; fi; }
sink0=$(cpu "$SINK"); db0=$(db_cpu)

t0=$(date +%s.%N)
env "${ROUND[@]}" SMTP_URL="smtp://127.0.0.1:$PORT" OUTBOX_WORKERS="$WORKERS" OUTBOX_BATCH="$BATCH" SMTP_CONCURRENCY="$CONCURRENCY" \
    OUTBOX_POLL_MS=100 "$BIN" worker &
WORKER_PID=$!
# Polled once a second: each poll starts a client process, which on 2 cores competes with the
# run; the end time is the last send's own timestamp (sent_at, microseconds, UTC).
# The poll asks the small outbox table (empty once the campaign is expanded and every invitation
# is done) rather than counting 100,000 invitations every second.
while [ "$(sql "SELECT count(*) FROM outbox_jobs")" -gt 0 ]; do sleep 1; done
t1=$(last_send)
worker_cpu=$(cpu "$WORKER_PID"); sink1=$(cpu "$SINK"); db1=$(db_cpu)
kill "$WORKER_PID"; wait "$WORKER_PID" 2>/dev/null || true
WORKER_PID=
sent=$(sql "SELECT count(*) FROM invitations WHERE status = 'sent'")
[ "$sent" = "$N" ] || { echo "error: $sent of $N invitations sent" >&2; exit 1; }
raw_after=$(baseline)

python3 - "$N" "$raw_before $raw_after" "$t0" "$t1" "$(span)" "$BACKEND" "$SIZE" "$worker_cpu" "$(python3 -c "print($db1 - $db0)")" "$(python3 -c "print($sink1 - $sink0)")" <<'PY'
import sys
n = int(sys.argv[1]); before, after = (float(x) for x in sys.argv[2].split()); raw = (before + after) / 2; t0, t1 = float(sys.argv[3]), float(sys.argv[4]); span = float(sys.argv[5] or 0)
worker_cpu, db_cpu, sink_cpu = (float(x) for x in sys.argv[8:11])
wall = n / (t1 - t0)
steady = n / span if span > 0 else wall
print()
print(f"{'':<36}{'messages/s':>12}{'ratio':>8}")
print(f"{'smtp-source → smtp-sink, before':<36}{before:>12,.0f}{before / raw:>8.2f}")
print(f"{'smtp-source → smtp-sink, after':<36}{after:>12,.0f}{after / raw:>8.2f}")
print(f"{'smtp-source → smtp-sink, mean':<36}{raw:>12,.0f}{1:>8.2f}")
print(f"{'optbridge, wall (incl. expansion)':<36}{wall:>12,.0f}{wall / raw:>8.2f}")
print(f"{'optbridge, first to last send':<36}{steady:>12,.0f}{steady / raw:>8.2f}")
print(f"\n{n:,} invitations of {sys.argv[7]} bytes on {sys.argv[6]}; goal: ratio >= 0.9")
cpu = f"CPU per invitation (µs): worker {worker_cpu / n * 1e6:.0f}, smtp-sink {sink_cpu / n * 1e6:.0f}"
if sys.argv[6] == "postgres":
    cpu += f", PostgreSQL {db_cpu / n * 1e6:.0f}"
print(cpu + f"; over {t1 - t0:.1f} s of wall time on {__import__('os').cpu_count()} cores")
PY
