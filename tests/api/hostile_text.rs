//! Text from outside that tries to act instead of being shown: formulas that a spreadsheet runs
//! from a CSV export, RFC 2047 encoded words that a mail client decodes from a typed subject,
//! and invisible bidi or zero-width controls in names.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use optbridge::links::LinkPurpose;
use serde_json::json;

use crate::helpers::{
    ANNA, Backend, DANISH_CONSENT, TestApp, TestWorkspace, both_backends, cookie_value, field, json, run_cli,
    set_cookie, spawn_app_with, twilio_app,
};
use crate::mail_parse::ParsedMail;
use crate::smtp_sink::SmtpSink;

const HYPERLINK: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";
const CATEGORY: &str = "=HYPERLINK(\"http://evil.example\",\"tilbud\")";
const PASSWORD: &str = "a long enough password";

/// The rows of a CSV export, each as (column, cell) pairs.
fn rows(csv: &str) -> Vec<Vec<(String, String)>> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .map(str::to_owned)
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], column: &str) -> &'a str {
    row.iter()
        .find(|(c, _)| c == column)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no column {column}"))
}

/// No cell starts the way a spreadsheet formula does, but for E.164 phone numbers.
fn assert_no_formula(csv: &str) {
    for row in rows(csv) {
        for (column, value) in row {
            let e164 = value
                .strip_prefix('+')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            assert!(
                !value.starts_with(['=', '+', '-', '@', '\t', '\r']) || e164,
                "{column} = {value:?} in\n{csv}"
            );
        }
    }
}

/// Finding: a User-Agent `=HYPERLINK(…)` sent by any link holder, names like `@SUM(1+1)`, an
/// external id `-2+3` and a category starting with `=` appeared raw in every CSV export, where a
/// spreadsheet runs them as formulas. Each export must show them as text.
async fn exports_show_formulas_as_text(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |_| {}).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(
        &ws.token,
        "email,first_name,last_name,external_id,locale\nanna@example.dk,@SUM(1+1),Jensen,-2+3,da\n",
    )
    .await;
    let res = app
        .post_json(
            &ws.token,
            "/api/v1/consent-texts",
            &json!({
                "locale": "da", "company_name": "Skobutikken", "body": DANISH_CONSENT,
                "categories": [CATEGORY, "Nyheder"], "privacy_url": "https://skobutikken.example/privatliv"
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let text = json(res).await["id"].as_str().unwrap().to_owned();
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Spring", "consent_text_id": text, "subject": "Skobutikken på SMS", "intro": "Hej."}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let c = campaign.clone();
    let invitation: String = app
        .with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .select(invitations::id)
                .first(conn)
                .unwrap()
        })
        .await;
    let link = app
        .keyring
        .sign(LinkPurpose::Landing, &invitation, &campaign, "da", optbridge::db::now())
        .unwrap();

    // The attacker only needs the link: the user agent is theirs to choose.
    let (_, landing) = app.page(&format!("/l/{link}")).await;
    let csrf = field(&landing, "csrf");
    let res = app
        .client
        .post(app.url(&format!("/l/{link}")))
        .header("User-Agent", HYPERLINK)
        .form(&[
            ("csrf", csrf.as_str()),
            ("phone", "20 12 34 56"),
            ("consent", "yes"),
            ("categories", CATEGORY),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    app.sms_reply(ANNA, "JA", "SMcsv0001").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));

    let api_consents = app
        .get(&ws.token, "/api/v1/consents/export")
        .await
        .text()
        .await
        .unwrap();
    let api_recipients = app
        .get(&ws.token, &format!("/api/v1/campaigns/{campaign}/recipients.csv"))
        .await
        .text()
        .await
        .unwrap();
    let session = dashboard_session(&app, &ws).await;
    let dashboard = |path: String| {
        let session = session.clone();
        let request = app.client.get(app.url(&path)).header("Cookie", session);
        async move {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
            res.text().await.unwrap()
        }
    };
    let app_consents = dashboard("/app/consents.csv".to_owned()).await;
    let app_recipients = dashboard(format!("/app/campaigns/{campaign}/recipients.csv")).await;

    for consents in [&api_consents, &app_consents] {
        assert_no_formula(consents);
        let rows = rows(consents);
        assert_eq!(rows.len(), 1, "{consents}");
        let row = &rows[0];
        assert_eq!(cell(row, "phone"), "+4520123456", "E.164 stays readable");
        assert_eq!(cell(row, "first_name"), "'@SUM(1+1)");
        assert_eq!(cell(row, "last_name"), "Jensen");
        assert_eq!(cell(row, "external_id"), "'-2+3");
        assert_eq!(cell(row, "user_agent"), format!("'{HYPERLINK}"));
        assert_eq!(cell(row, "categories"), format!("'{CATEGORY}"));
    }
    for recipients in [&api_recipients, &app_recipients] {
        assert_no_formula(recipients);
        let rows = rows(recipients);
        assert_eq!(rows.len(), 1, "{recipients}");
        assert_eq!(cell(&rows[0], "email"), "anna@example.dk");
        assert_eq!(cell(&rows[0], "external_id"), "'-2+3");
    }
}

async fn dashboard_session(app: &TestApp, ws: &TestWorkspace) -> String {
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, "marketer@shop.example", PASSWORD).unwrap())
        .await;
    let res = app.login("marketer@shop.example", PASSWORD).await;
    assert_eq!(res.status(), 303);
    format!(
        "ob_session={}",
        cookie_value(&set_cookie(&res, "ob_session").expect("session cookie"))
    )
}

/// Finding: a subject typed as `=?iso-8859-1?B?R3JhdGlz?=` arrived as "Gratis": mail clients
/// decode encoded words, so a subject could show other text than the marketer typed (and pass the
/// word check). Each subject must arrive exactly as typed.
async fn typed_encoded_words_arrive_as_typed(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, "email,first_name,locale\nanna@example.dk,Anna,da\n")
        .await;
    let text = app.consent_text(&ws.token, "da").await;

    // Typed in plain view, the word check sees it.
    let res = app
        .post_json(
            &ws.token,
            "/api/v1/campaigns",
            &json!({"name": "Q", "consent_text_id": text, "subject": "=?utf-8?q?Gratis?=", "intro": "Hej."}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(json(res).await["error"].as_str().unwrap().contains("gratis"));

    for (n, subject) in [
        "=?iso-8859-1?B?R3JhdGlz?=",
        "=?utf-8?q?Gr=61tis?= fragt",
        "Sommerudsalg på sko – spar 30 % i Århus og Næstved (ØÆÅ)",
    ]
    .into_iter()
    .enumerate()
    {
        let campaign = app
            .campaign(
                &ws.token,
                &json!({"name": format!("C{n}"), "consent_text_id": text, "subject": subject, "intro": "Hej."}),
            )
            .await;
        app.send_campaign(&ws.token, &campaign).await;
        app.drain_outbox(Duration::from_secs(10)).await;
        let messages = sink.messages();
        assert_eq!(messages.len(), n + 1);
        let raw = &messages[n].data;
        let mail = ParsedMail::parse(raw);
        assert_eq!(
            mail.header("Subject"),
            Some(subject),
            "{}",
            String::from_utf8_lossy(raw)
        );
        if subject.contains("=?") {
            assert!(
                String::from_utf8_lossy(raw).contains("\r\nSubject: =?utf-8?b?"),
                "sent as encoded words: {}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}

/// Finding: right-to-left overrides and zero-width characters were accepted in company and
/// contact names, where they make a name display as another. They must be refused, naming the
/// character.
async fn hidden_controls_in_names_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let ws = app.create_workspace("Skobutikken").await;

    let res = app
        .post_json(
            &ws.token,
            "/api/v1/consent-texts",
            &json!({
                "locale": "da", "company_name": "Skobutikken\u{202E}moc.live",
                "body": DANISH_CONSENT.replace("Skobutikken", "Skobutikken\u{202E}moc.live"),
                "categories": [], "privacy_url": "https://skobutikken.example/privatliv"
            }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let error = json(res).await["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("company_name contains U+202E RIGHT-TO-LEFT OVERRIDE"),
        "{error}"
    );
    let res = app
        .post_json(
            &ws.token,
            "/api/v1/consent-texts",
            &json!({
                "locale": "da", "company_name": "Skobutikken",
                "body": format!("{DANISH_CONSENT} Gra\u{200B}tis gave til alle."),
                "categories": [], "privacy_url": "https://skobutikken.example/privatliv"
            }),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(json(res).await["error"].as_str().unwrap().contains("U+200B"));

    let report = json(
        app.post_csv(
            &ws.token,
            "email,first_name,last_name\n\
             anna@example.dk,Anna,Jensen\n\
             bo@example.dk,B\u{200B}o,Hansen\n\
             eve@example.dk,Eve,\u{202E}nesneJ\n\
             ida@example.dk,Ida,\u{2066}Holm\u{2069}\n",
        )
        .await,
    )
    .await;
    assert_eq!(report["imported"], 1, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 5], "{report}");
    for (row, start) in rejected.iter().zip([
        "first_name contains U+200B ZERO WIDTH SPACE",
        "last_name contains U+202E RIGHT-TO-LEFT OVERRIDE",
        "last_name contains U+2066 LEFT-TO-RIGHT ISOLATE",
    ]) {
        assert!(row["error"].as_str().unwrap().starts_with(start), "{row}");
    }

    for (name, from) in [
        ("Nordlys\u{202E}", "Nordlys <news@nordlys.example>"),
        ("Nordlys", "\"Nordlys\u{200F}\" <news@nordlys.example>"),
    ] {
        let out = run_cli(
            &app.database.url,
            &["workspace", "create", "--name", name, "--from", from],
        );
        assert!(!out.status.success(), "{name:?} {from:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("an invisible character"), "{stderr}");
    }
}

both_backends!(
    exports_show_formulas_as_text,
    typed_encoded_words_arrive_as_typed,
    hidden_controls_in_names_are_refused
);
