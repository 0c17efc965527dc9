# Shared by the benchmarks (source it). Needs BIN (the optbridge binary), OUT (a scratch folder),
# BACKEND (sqlite|postgres) and DATABASE_URL, with the dev outboxes active.

# invitation_links SQLITE_FILE: one invitation through the dev outbox, for real signed links;
# sets PIXEL and LANDING to the open-pixel and landing-page URLs.
invitation_links() {
    local sqlite_file="$1" ws text campaign raw
    "$BIN" migrate >/dev/null
    ws=$("$BIN" --json workspace create --name Bench --from "Bench <news@bench.example>" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace_id"])')
    printf 'email,first_name,locale\nanna@bench.example,Anna,da\n' > "$OUT/one.csv"
    "$BIN" import --workspace "$ws" "$OUT/one.csv" >/dev/null
    cat > "$OUT/consent.json" <<'JSON'
{"locale":"da","company_name":"Bench Sko","categories":["Nyheder","Tilbud"],"privacy_url":"https://bench.example/privatliv",
 "body":"Ja tak, Bench Sko må sende mig nyheder og tilbud på SMS, højst 4 gange om måneden. Jeg kan altid trække mit samtykke tilbage ved at svare STOP."}
JSON
    text=$("$BIN" --json consent-text create --workspace "$ws" "$OUT/consent.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    campaign=$("$BIN" --json campaign create --workspace "$ws" --name Bench --consent-text "$text" --subject "SMS?" --intro "Hør først om udsalg." | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    "$BIN" campaign send --workspace "$ws" --campaign "$campaign" >/dev/null
    "$BIN" worker --drain
    raw=$(case "$BACKEND" in
        sqlite) sqlite3 "$sqlite_file" "SELECT raw FROM dev_messages LIMIT 1" ;;
        postgres) psql -Atd "$DATABASE_URL" -c "SELECT raw FROM dev_messages LIMIT 1" ;;
    esac)
    read -r PIXEL LANDING < <(printf '%s' "$raw" | python3 -c '
import email, re, sys
msg = email.message_from_string(sys.stdin.read())
html = next(p.get_payload(decode=True).decode() for p in msg.walk() if p.get_content_type() == "text/html")
print(re.search(r"src=\"([^\"]*/o/[^\"]*)\"", html).group(1), re.search(r"href=\"([^\"]*/l/[^\"]*)\"", html).group(1))')
    [ -n "$PIXEL" ] && [ -n "$LANDING" ] || { echo "could not find the links in the invitation" >&2; exit 1; }
}
