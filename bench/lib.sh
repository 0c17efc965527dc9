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

# four_language_campaign WORKSPACE NAME: a draft campaign to every contact, each language with its
# own consent text and texts (a campaign names one consent text per audience locale); prints its
# id. Extra fields of the campaign body (e.g. variants) may be given as JSON in CAMPAIGN_EXTRA.
four_language_campaign() {
    local ws="$1" name="$2" locale body ids=""
    for locale in da nb sv en; do
        case $locale in
            da) body="Ja tak, Bench Sko må sende mig nyheder og tilbud på SMS, højst 4 gange om måneden. Jeg kan altid trække mit samtykke tilbage ved at svare STOP." ;;
            nb) body="Ja takk, Bench Sko kan sende meg nyheter og tilbud på SMS, høyst 4 ganger i måneden. Jeg kan alltid trekke samtykket tilbake ved å svare STOPP." ;;
            sv) body="Ja tack, Bench Sko får skicka nyheter och erbjudanden till mig via SMS, högst 4 gånger i månaden. Jag kan alltid återkalla mitt samtycke genom att svara STOP." ;;
            en) body="Yes, Bench Sko may send me news and offers by SMS, at most 4 times a month. I can withdraw at any time by replying STOP." ;;
        esac
        printf '{"locale":"%s","company_name":"Bench Sko","categories":["Nyheder","Tilbud"],"privacy_url":"https://bench.example/privatliv","body":"%s"}\n' \
            "$locale" "$body" > "$OUT/consent-$locale.json"
        ids="$ids \"$locale\":\"$("$BIN" --json consent-text create --workspace "$ws" "$OUT/consent-$locale.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')\","
    done
    cat > "$OUT/campaign.json" <<JSON
{"name":"$name","consent_texts":{${ids%,}},
 "subject":{"da":"Vil du have vores tilbud på SMS?","nb":"Vil du ha tilbudene våre på SMS?","sv":"Vill du ha våra erbjudanden på SMS?","en":"Want our offers by text?"},
 "intro":{"da":"Hør først om udsalg og nyheder.","nb":"Hør først om salg og nyheter.","sv":"Hör först om rea och nyheter.","en":"Hear first about sales and news."},
 "frequency":{"da":"højst 4 gange om måneden","nb":"høyst 4 ganger i måneden","sv":"högst 4 gånger i månaden","en":"at most 4 times a month"},
 "audience":{"locales":["da","nb","sv","en"]}${CAMPAIGN_EXTRA:+,$CAMPAIGN_EXTRA}}
JSON
    "$BIN" --json campaign create --workspace "$ws" --from-json "$OUT/campaign.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
