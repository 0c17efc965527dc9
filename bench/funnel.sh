#!/usr/bin/env bash
# Funnel at scale: a campaign of N recipients (default 1,000,000 contacts) with ~5 events each
# (sent, delivered, five opens per opener, three clicks per clicker, sign-ups, confirmations),
# generated with SQL straight into the database. Then, against `optbridge serve`:
#   GET /api/v1/campaigns/{id}/funnel   median and p99 latency, one connection (goal < 50 ms)
#   GET /app/campaigns/{id}             the dashboard page, same
#   GET /app/campaigns/{id}/recipients.csv   the whole per-recipient export, once
# next to an actix-web hello world (same machine, same run) and the naive alternative the
# counters replace: COUNT(DISTINCT) over the raw events, timed in the database's own shell.
#
#   bench/funnel.sh [sqlite|postgres] [N]      # DURATION=10s
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${1:-sqlite}"
N="${2:-1000000}"
DURATION="${DURATION:-10s}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
PORT=8092
OUT=bench/out/funnel
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
for tool in curl python3; do command -v $tool >/dev/null || { echo "need $tool" >&2; exit 1; }; done

cargo build --release --quiet --bin optbridge --example bench-hello
BIN=target/release/optbridge

case "$BACKEND" in
    sqlite)
        command -v sqlite3 >/dev/null || { echo "need sqlite3" >&2; exit 1; }
        rm -f "$OUT"/funnel.db*
        export DATABASE_URL="sqlite://$OUT/funnel.db"
        sql() { sqlite3 -bail "$OUT/funnel.db"; }
        # SQLite: a recursive sequence; timestamps are text as diesel writes them.
        seq_from() { echo "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $1 - 1) SELECT i FROM s)"; }
        plus_s() { echo "strftime('%Y-%m-%d %H:%M:%S', $1, '+' || ($2) || ' seconds')"; }
        hour_of() { echo "strftime('%Y-%m-%d %H:00:00', $1)"; }
        TIMER=".timer on"
        ts() { echo "'$1'"; }
        ;;
    postgres)
        psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_funnel WITH (FORCE)" -c "CREATE DATABASE optbridge_bench_funnel"
        export DATABASE_URL="${PG_URL%/*}/optbridge_bench_funnel"
        sql() { psql -qX -v ON_ERROR_STOP=1 -d "$DATABASE_URL"; }
        seq_from() { echo "(SELECT generate_series(0, $1 - 1) AS i)"; }
        plus_s() { echo "($1 + ($2) * interval '1 second')"; }
        hour_of() { echo "date_trunc('hour', $1)"; }
        TIMER='\timing on'
        ts() { echo "timestamp '$1'"; }
        ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export RUST_LOG=warn BIND=127.0.0.1:$PORT BASE_URL=http://127.0.0.1:$PORT
unset SMTP_URL SMS_PROVIDER

"$BIN" migrate >/dev/null
read -r WS TOKEN < <("$BIN" --json workspace create --name Bench --from "Bench <news@bench.example>" |
    python3 -c 'import json,sys; d = json.load(sys.stdin); print(d["workspace_id"], d["api_token"])')
# One consent text and one set of texts per audience language (bench/lib.sh), variant B with its
# own subject in each.
. bench/lib.sh
C=$(CAMPAIGN_EXTRA='"variants":[{"name":"A","weight":1},{"name":"B","weight":1,"subject":{"da":"Få tilbud på SMS","nb":"Få tilbud på SMS","sv":"Få erbjudanden på SMS","en":"Get offers by text"}}]' \
    four_language_campaign "$WS" "Bench 1M")
T0=$(date -u -d '10 days ago' '+%Y-%m-%d %H:00:00')
T0E=$(ts "$T0")

# Per recipient i (all deterministic): 1 in 33 bounces; of the delivered, i % 100 < 52 open
# (the KAiKU open rate), < 55 only machine opens for 52..54, < 12 click, < 4 sign up, < 3
# confirm. First opens spread over 3 days, so the series has hourly and daily points.
echo "generating $N contacts and their events ($BACKEND) …" >&2
GEN_START=$(date +%s)
sql <<SQL
INSERT INTO contacts (id, workspace_id, email, email_normalized, first_name, locale, created_at, updated_at)
SELECT 'bc' || i, '$WS', 'p' || i || '@bench.example', 'p' || i || '@bench.example', 'P' || i,
       CASE WHEN i % 10 < 6 THEN 'da' WHEN i % 10 < 8 THEN 'sv' WHEN i % 10 < 9 THEN 'nb' ELSE 'en' END,
       '$T0', '$T0'
FROM $(seq_from "$N") s;

INSERT INTO invitations (id, workspace_id, campaign_id, contact_id, variant, locale, email, status, attempts,
                         queued_at, sent_at, bounced_at, opened_at, human_opened_at, open_count,
                         clicked_at, click_count, submitted_at, confirmed_at)
SELECT 'bi' || i, '$WS', '$C', 'bc' || i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END,
       CASE WHEN i % 10 < 6 THEN 'da' WHEN i % 10 < 8 THEN 'sv' WHEN i % 10 < 9 THEN 'nb' ELSE 'en' END,
       'p' || i || '@bench.example',
       CASE WHEN i % 33 = 0 THEN 'bounced' ELSE 'sent' END, 1,
       '$T0', $(plus_s "$T0E" "i % 7200"),
       CASE WHEN i % 33 = 0 THEN $(plus_s "$T0E" "i % 7200 + 2") END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 55 THEN $(plus_s "$T0E" "7200 + i % 259200") END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 52 THEN $(plus_s "$T0E" "7200 + i % 259200") END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 55 THEN 5 ELSE 0 END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 12 THEN $(plus_s "$T0E" "7260 + i % 259200") END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 12 THEN 3 ELSE 0 END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 4 THEN $(plus_s "$T0E" "7400 + i % 259200") END,
       CASE WHEN i % 33 <> 0 AND i % 100 < 3 THEN $(plus_s "$T0E" "7500 + i % 259200") END
FROM $(seq_from "$N") s;

INSERT INTO funnel_events (id, workspace_id, campaign_id, invitation_id, kind, at)
SELECT 's' || id, workspace_id, campaign_id, id, 'sent', sent_at FROM invitations;
INSERT INTO funnel_events (id, workspace_id, campaign_id, invitation_id, kind, at)
SELECT 'd' || id, workspace_id, campaign_id, id, CASE status WHEN 'sent' THEN 'delivered' ELSE 'bounced' END,
       COALESCE(bounced_at, sent_at) FROM invitations;
INSERT INTO funnel_events (id, workspace_id, campaign_id, invitation_id, kind, at, human, ip, user_agent)
SELECT 'o' || k || id, workspace_id, campaign_id, id, 'opened', $(plus_s opened_at "k * 3600"),
       human_opened_at IS NOT NULL, '192.0.2.1', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)'
FROM invitations, (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4) ks
WHERE opened_at IS NOT NULL;
INSERT INTO funnel_events (id, workspace_id, campaign_id, invitation_id, kind, at, human)
SELECT 'c' || k || id, workspace_id, campaign_id, id, 'clicked', $(plus_s clicked_at "k * 600"), true
FROM invitations, (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2) ks
WHERE clicked_at IS NOT NULL;
INSERT INTO funnel_events (id, workspace_id, campaign_id, invitation_id, kind, at)
SELECT 'u' || id, workspace_id, campaign_id, id, 'submitted', submitted_at FROM invitations WHERE submitted_at IS NOT NULL;
INSERT INTO funnel_events (id, workspace_id, campaign_id, invitation_id, kind, at)
SELECT 'f' || id, workspace_id, campaign_id, id, 'confirmed', confirmed_at FROM invitations WHERE confirmed_at IS NOT NULL;

-- The counters, as the app maintains them: distinct recipients per first-time hour.
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'recipients', $(hour_of queued_at), count(*) FROM invitations GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'sent', $(hour_of sent_at), count(*) FROM invitations GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'delivered', $(hour_of sent_at), count(*) FROM invitations WHERE status = 'sent' GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'bounced', $(hour_of bounced_at), count(*) FROM invitations WHERE bounced_at IS NOT NULL GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'opened', $(hour_of opened_at), count(*) FROM invitations WHERE opened_at IS NOT NULL GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'opened_human', $(hour_of human_opened_at), count(*) FROM invitations WHERE human_opened_at IS NOT NULL GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'clicked', $(hour_of clicked_at), count(*) FROM invitations WHERE clicked_at IS NOT NULL GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'submitted', $(hour_of submitted_at), count(*) FROM invitations WHERE submitted_at IS NOT NULL GROUP BY 1, 2, 3, 5;
INSERT INTO funnel_counts (campaign_id, variant, locale, metric, hour, count)
SELECT campaign_id, variant, locale, 'confirmed', $(hour_of confirmed_at), count(*) FROM invitations WHERE confirmed_at IS NOT NULL GROUP BY 1, 2, 3, 5;

UPDATE campaigns SET status = 'sent', send_requested_at = '$T0', expanded_at = '$T0' WHERE id = '$C';
SQL
[ "$BACKEND" = postgres ] && echo "VACUUM ANALYZE;" | sql
[ "$BACKEND" = sqlite ] && echo "ANALYZE;" | sql
GEN_SECS=$(( $(date +%s) - GEN_START ))
EVENTS=$(echo "SELECT count(*) FROM funnel_events;" | case "$BACKEND" in sqlite) sql ;; postgres) psql -AtX -d "$DATABASE_URL" ;; esac)
COUNTER_ROWS=$(echo "SELECT count(*) FROM funnel_counts;" | case "$BACKEND" in sqlite) sql ;; postgres) psql -AtX -d "$DATABASE_URL" ;; esac)

# The naive funnel the counters replace, timed in the database shell.
NAIVE=$( { echo "$TIMER"; echo "SELECT kind, count(DISTINCT invitation_id) FROM funnel_events WHERE campaign_id = '$C' GROUP BY kind;"; } | sql 2>&1 |
    python3 -c '
import re, sys
text = sys.stdin.read()
m = re.search(r"Run Time: real ([\d.]+)", text) or re.search(r"Time: ([\d.]+) ms", text)
print(float(m.group(1)) * (1000 if "Run Time" in text else 1) if m else "nan")')

printf 'a bench password\n' | "$BIN" user create --workspace "$WS" --email bench@bench.example >/dev/null
"$BIN" serve --no-workers &
SERVER=$!
target/release/examples/bench-hello 127.0.0.1:8093 2 &
HELLO=$!
cleanup() {
    kill "$SERVER" "$HELLO" 2>/dev/null || true
    wait "$SERVER" "$HELLO" 2>/dev/null || true
    # The SQLite file stays in bench/out/ for inspection; the PostgreSQL database (GBs) goes.
    [ "$BACKEND" = postgres ] && psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_funnel WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "$BASE_URL/healthz" >/dev/null && curl -sf http://127.0.0.1:8093/ >/dev/null && break; sleep 0.2; done

JAR="$OUT/cookies.txt"
rm -f "$JAR"
CSRF=$(curl -sf -c "$JAR" "$BASE_URL/app/login" | python3 -c 'import re,sys; print(re.search(r"name=\"csrf\" value=\"([^\"]+)\"", sys.stdin.read()).group(1))')
curl -sf -b "$JAR" -c "$JAR" -o /dev/null --data-urlencode "csrf=$CSRF" --data-urlencode "email=bench@bench.example" \
    --data-urlencode "password=a bench password" "$BASE_URL/app/login"
SESSION=$(awk '$6 == "ob_session" {print $7}' "$JAR")
[ -n "$SESSION" ] || { echo "login failed" >&2; exit 1; }

# Sanity: the API's numbers are the generated ones.
curl -sf -H "Authorization: Bearer $TOKEN" "$BASE_URL/api/v1/campaigns/$C/funnel" > "$OUT/funnel.json"
python3 - "$OUT/funnel.json" "$N" <<'PY'
import json, sys
r, n = json.load(open(sys.argv[1])), int(sys.argv[2])
bounced = len(range(0, n, 33))
assert r["recipients"] == n and r["sent"] == n, r
assert r["bounced"] == bounced and r["delivered"] == n - bounced, r
opened = sum(1 for i in range(n) if i % 33 and i % 100 < 55)
confirmed = sum(1 for i in range(n) if i % 33 and i % 100 < 3)
assert r["opened"] == opened and r["confirmed"] == confirmed, (r["opened"], opened, r["confirmed"], confirmed)
PY

latency() { # name url [header] → median_ms p99_ms req/s
    if [ -n "${3:-}" ]; then wrk -t1 -c1 -d"$DURATION" --latency -H "$3" "$2" > "$OUT/$1.txt"
    else wrk -t1 -c1 -d"$DURATION" --latency "$2" > "$OUT/$1.txt"; fi
    python3 - "$OUT/$1.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(label + r"\s+([\d.]+)(us|ms|s)\b", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"{sys.argv[1]}: {errors.group(1)} error responses")
print(ms("50%"), ms("99%"), float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
PY
}
read -r hello_med hello_p99 hello_rps < <(latency hello http://127.0.0.1:8093/)
read -r api_med api_p99 api_rps < <(latency funnel_api "$BASE_URL/api/v1/campaigns/$C/funnel" "Authorization: Bearer $TOKEN")
read -r page_med page_p99 page_rps < <(latency dashboard "$BASE_URL/app/campaigns/$C" "Cookie: ob_session=$SESSION")
read -r csv_secs csv_bytes < <(curl -sf -H "Cookie: ob_session=$SESSION" -o "$OUT/recipients.csv" \
    -w '%{time_total} %{size_download}\n' "$BASE_URL/app/campaigns/$C/recipients.csv")
CSV_ROWS=$(( $(wc -l < "$OUT/recipients.csv") - 1 ))
[ "$CSV_ROWS" = "$N" ] || { echo "recipients.csv has $CSV_ROWS rows, expected $N" >&2; exit 1; }
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")

python3 - "$BACKEND" "$N" "$EVENTS" "$COUNTER_ROWS" "$GEN_SECS" "$NAIVE" "$hello_med" "$hello_p99" "$api_med" "$api_p99" \
    "$api_rps" "$page_med" "$page_p99" "$page_rps" "$csv_secs" "$csv_bytes" "$RSS_KB" <<'PY'
import sys
(backend, n, events, counters, gen, naive, hm, hp, am, ap, ar, pm, pp, pr, cs, cb, rss) = sys.argv[1:]
n, events, counters = int(n), int(events), int(counters)
hm, hp, am, ap, ar, pm, pp, pr, cs, cb = map(float, (hm, hp, am, ap, ar, pm, pp, pr, cs, cb))
print()
print(f"{backend}: {n:,} recipients, {events:,} events, {counters:,} counter rows (generated in {gen} s)")
print(f"{'request (one connection)':<44}{'median ms':>10}{'p99 ms':>9}{'req/s':>9}")
print(f"{'actix-web hello world':<44}{hm:>10.2f}{hp:>9.2f}{'':>9}")
print(f"{'GET /api/v1/campaigns/{id}/funnel':<44}{am:>10.2f}{ap:>9.2f}{ar:>9.0f}")
print(f"{'GET /app/campaigns/{id} (dashboard page)':<44}{pm:>10.2f}{pp:>9.2f}{pr:>9.0f}")
print(f"naive COUNT(DISTINCT) over the events, in the database shell: {float(naive):,.0f} ms "
      f"({float(naive) / am:,.0f}x the funnel API's median)")
print(f"recipients.csv: {n:,} rows, {cb / 1e6:,.1f} MB in {cs:.1f} s ({n / cs:,.0f} rows/s); server peak RSS {int(rss) / 1024:,.0f} MiB")
print(f"goal: funnel p99 < 50 ms -> {'met' if ap < 50 else 'NOT met'}")
PY
