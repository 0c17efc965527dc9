#!/usr/bin/env bash
# Contact import throughput: `optbridge import` of N generated rows, next to the database's own
# bulk loader on the same file in the same run (sqlite3 `.import`, PostgreSQL `\copy`), which
# loads into a bare table with no validation, no constraints and no idempotency.
#
#   bench/import.sh [ROWS]     # default 1000000; needs python3, sqlite3, psql (installed if missing)
#   PG_URL=postgres://postgres@127.0.0.1:5432/test bench/import.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
OUT=bench/out/import
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2" >&2; apt-get install -y -qq "$2" >/dev/null; }; }
need sqlite3 sqlite3
need psql postgresql-client
need python3 python3

cargo build --release --quiet
BIN=target/release/optbridge
CSV="$OUT/contacts-$ROWS.csv"
[ -f "$CSV" ] || python3 bench/gen_contacts.py "$ROWS" > "$CSV"
echo "file: $CSV ($(du -h "$CSV" | cut -f1), $ROWS rows)"

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$ROWS / ($2 - $1):,.0f}')"; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

bare_table="CREATE TABLE bare (email TEXT, first_name TEXT, last_name TEXT, locale TEXT, external_id TEXT, email_consent_at TEXT, email_consent_source TEXT);"

run_optbridge() { # url
    "$BIN" --database-url "$1" migrate >/dev/null
    local ws
    ws=$("$BIN" --database-url "$1" --json workspace create --name Bench --from "Bench <b@bench.example>" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace_id"])')
    local t0 t1
    t0=$(now)
    "$BIN" --database-url "$1" --json import --workspace "$ws" "$CSV" > "$OUT/report.json"
    t1=$(now)
    python3 - "$OUT/report.json" "$ROWS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert r["imported"] == n and not r["rejected"], r
PY
    echo "$t0 $t1"
}

echo
echo "== SQLite"
rm -f "$OUT"/sqlite-*.db*
read -r a b < <(run_optbridge "sqlite://$OUT/sqlite-optbridge.db")
ob_sqlite=$(secs "$a" "$b")
t0=$(now)
sqlite3 "$OUT/sqlite-bare.db" "$bare_table" ".import --csv --skip 1 $CSV bare"
t1=$(now)
raw_sqlite=$(secs "$t0" "$t1")

echo "== PostgreSQL ($PG_URL)"
db_opt="optbridge_bench_import_$$"
db_raw="optbridge_bench_copy_$$"
psql -d "$PG_URL" -qc "CREATE DATABASE $db_opt" -c "CREATE DATABASE $db_raw"
trap 'psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS $db_opt WITH (FORCE)" -c "DROP DATABASE IF EXISTS $db_raw WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
base="${PG_URL%/*}"
read -r a b < <(run_optbridge "$base/$db_opt")
ob_pg=$(secs "$a" "$b")
psql -d "$base/$db_raw" -qc "$bare_table"
t0=$(now)
psql -d "$base/$db_raw" -qc "\\copy bare FROM '$CSV' WITH (FORMAT csv, HEADER true)"
t1=$(now)
raw_pg=$(secs "$t0" "$t1")

python3 - "$ROWS" "$ob_sqlite" "$raw_sqlite" "$ob_pg" "$raw_pg" <<'PY'
import sys
n = int(sys.argv[1]); ob_s, raw_s, ob_p, raw_p = map(float, sys.argv[2:])
print()
print(f"{'backend':<12}{'optbridge import':>20}{'bulk loader':>20}{'ratio':>8}")
print(f"{'SQLite':<12}{n/ob_s:>14,.0f} rows/s{n/raw_s:>14,.0f} rows/s{(n/ob_s)/(n/raw_s):>8.2f}   (sqlite3 .import)")
print(f"{'PostgreSQL':<12}{n/ob_p:>14,.0f} rows/s{n/raw_p:>14,.0f} rows/s{(n/ob_p)/(n/raw_p):>8.2f}   (psql \\copy)")
print(f"\n{n:,} rows; optbridge validates every row, dedupes by email, upserts in 1,000-row transactions.")
PY
