#!/usr/bin/env bash
# What one invitation row costs PostgreSQL to write: as migrated, without one index, and with
# the three foreign keys it had until 2026-12-09 added back in turn. A server-side INSERT …
# SELECT of N rows from N imported contacts (no client cost), the table truncated between
# steps. Prints µs per row.
#
#   bench/invitation_rows.sh [N]            # default 100000
#   OPTBRIDGE_BIN=/tmp/old/optbridge bench/invitation_rows.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
OUT=bench/out/invitation_rows
BACKEND=postgres
mkdir -p "$OUT"
if [ -n "${OPTBRIDGE_BIN:-}" ]; then
    BIN="$OPTBRIDGE_BIN"
else
    cargo build --release --quiet
    BIN=target/release/optbridge
fi
. bench/lib.sh

DB="${PG_URL%/*}/optbridge_bench_rows"
psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_rows WITH (FORCE)" -c "CREATE DATABASE optbridge_bench_rows"
trap 'psql -d "$PG_URL" -qc "DROP DATABASE IF EXISTS optbridge_bench_rows WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
export DATABASE_URL="$DB" RUST_LOG=warn
"$BIN" migrate >/dev/null
ws=$("$BIN" --json workspace create --name Rows --from "Rows <news@rows.example>" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace_id"])')
CSV="$OUT/contacts-$N.csv"
[ -f "$CSV" ] || python3 bench/gen_contacts.py "$N" > "$CSV"
"$BIN" --json import --workspace "$ws" "$CSV" >/dev/null
campaign=$(four_language_campaign "$ws" Rows)

q() { psql -d "$DB" -Atqc "$1" 2>/dev/null; }
step() { # label
    q "TRUNCATE invitations CASCADE"
    q "CHECKPOINT"
    local t0 t1
    t0=$(date +%s.%N)
    q "INSERT INTO invitations (id, message_id, workspace_id, campaign_id, contact_id, variant, locale, email,
                                status, attempts, queued_at, open_count, click_count)
       SELECT gen_random_uuid()::text, '<' || gen_random_uuid()::text || '@rows.example>', workspace_id,
              '$campaign', id, 'A', coalesce(locale, 'da'), email, 'queued', 0, now(), 0, 0
       FROM contacts"
    t1=$(date +%s.%N)
    python3 -c "print(f'{\"$1\":<52}{($t1 - $t0) / $N * 1e6:>8.1f} µs/row')"
}
step "as migrated"
step "as migrated (again)"
q "DROP INDEX invitations_contact"
step "without the index (workspace_id, contact_id)"
q "CREATE INDEX invitations_contact ON invitations (workspace_id, contact_id)"
# The foreign keys dropped by migration 2026-12-09-000001 (each is one query per row).
q "ALTER TABLE invitations ADD FOREIGN KEY (contact_id) REFERENCES contacts (id)"
step "with the FK to contacts"
q "ALTER TABLE invitations ADD FOREIGN KEY (campaign_id) REFERENCES campaigns (id)"
step "… and to campaigns"
q "ALTER TABLE invitations ADD FOREIGN KEY (workspace_id) REFERENCES workspaces (id)"
step "… and to workspaces (as before 2026-12-09)"
