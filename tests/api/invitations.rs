//! Invitation campaigns end to end: API, outbox, real SMTP (the in-process sink), faults.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use serde_json::{Value, json};

use crate::helpers::{Backend, CONTACTS, TestApp, both_backends, json, spawn_app, spawn_app_with};
use crate::mail_parse::ParsedMail;
use crate::smtp_sink::{Fault, SmtpSink, Tls};

/// The locale [`CONTACTS`] gives an address.
fn locale_of(address: &str) -> &'static str {
    match address.rsplit('.').next() {
        Some("no") => "nb",
        Some("se") => "sv",
        Some("com") => "en",
        _ => "da",
    }
}

async fn app_with_sink(backend: Backend, sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await
}

fn invitation_rows(
    app: &TestApp,
) -> impl std::future::Future<Output = Vec<(String, String, i32, Option<String>)>> + '_ {
    app.with_db(|c| {
        invitations::table
            .order(invitations::email.asc())
            .select((
                invitations::email,
                invitations::status,
                invitations::attempts,
                invitations::last_error,
            ))
            .load(c)
            .unwrap()
    })
}

fn between<'a>(text: &'a str, start: &str, end: &[char]) -> Option<&'a str> {
    let i = text.find(start)?;
    let rest = &text[i..];
    let j = rest.find(end).unwrap_or(rest.len());
    Some(&rest[..j])
}

async fn invitations_arrive_localized_with_links_and_headers(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;

    let base = app.settings.base_url.as_str().trim_end_matches('/').to_owned();
    let messages = sink.messages();
    assert_eq!(messages.len(), 8);
    let mut ids = HashSet::new();
    let mut recipients = HashSet::new();
    for m in &messages {
        let to = m.rcpt_to[0].clone();
        assert!(recipients.insert(to.clone()), "{to} got two messages");
        let mail = ParsedMail::parse(&m.data);
        assert_eq!(mail.content_type, "multipart/alternative");
        let text = mail.text.as_deref().expect("text part");
        let html = mail.html.as_deref().expect("html part");
        let landing = between(text, &format!("{base}/l/"), &['\r', '\n', ' ']).expect("landing link in text");
        assert!(
            html.contains(&format!("href=\"{landing}\"")),
            "same landing link in the HTML part"
        );
        let pixel = between(html, &format!("{base}/o/"), &['"']).expect("pixel in html");
        assert!(!text.contains(pixel), "no pixel in the text part");
        let unsubscribe = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
        assert!(
            unsubscribe.starts_with(&format!("<{base}/u/")) && unsubscribe.ends_with('>'),
            "{unsubscribe}"
        );
        assert_eq!(mail.header("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
        assert!(
            ids.insert(mail.header("Message-ID").expect("Message-ID").to_owned()),
            "Message-IDs are unique"
        );
        let locale = optbridge::domain::Locale::parse(locale_of(&to)).unwrap();
        let strings = optbridge::i18n::email(locale);
        assert!(text.contains(strings.button), "{to} gets the {locale} text");
        assert!(html.contains(&format!("lang=\"{locale}\"")));
        // One language per recipient: the campaign's own words in the recipient's language too
        // (issue 16, item 10), never the Danish ones under a Swedish frame.
        let (subject, intro, frequency) = match locale.as_str() {
            "da" => ("Skobutikken på SMS", "Hør først om udsalg.", "højst 4 gange om måneden"),
            "nb" => (
                "Skobutikken på SMS (nb)",
                "Hør først om salg.",
                "høyst 4 ganger i måneden",
            ),
            "sv" => ("Skobutikken via SMS", "Hör först om rean.", "högst 4 gånger i månaden"),
            _ => (
                "Skobutikken by SMS",
                "Hear about sales first.",
                "at most 4 times a month",
            ),
        };
        assert_eq!(mail.header("Subject"), Some(subject), "{to}");
        assert!(text.contains(intro), "{to}: {text}");
        assert!(text.contains(frequency), "{to}: {text}");
        if locale.as_str() != "da" {
            assert!(
                !text.contains("højst") && !text.contains("udsalg"),
                "{to} reads no Danish: {text}"
            );
        }
        assert!(mail.header("From").unwrap().contains("news@shop.example"));
    }

    let rows = invitation_rows(&app).await;
    assert!(
        rows.iter()
            .all(|(_, status, attempts, _)| status == "sent" && *attempts == 1),
        "{rows:?}"
    );

    // Sending again changes nothing: one invitation per contact and campaign.
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(5)).await;
    assert_eq!(sink.messages().len(), 8);
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    assert_eq!(shown["status"], "sent");
}

/// Two lanes send the eight invitations, each a series over one session, a message's content in
/// the same write as the next message's commands: every recipient gets its own message, once.
async fn a_lane_sends_each_recipient_its_own_message(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.smtp_concurrency = 2;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;

    let messages = sink.messages();
    assert_eq!(messages.len(), 8);
    let mut recipients = HashSet::new();
    for m in &messages {
        let to = m.rcpt_to.concat();
        assert!(recipients.insert(to.clone()), "{to} got two messages");
        let mail = ParsedMail::parse(&m.data);
        let header = mail.header("To").expect("To");
        assert!(
            header.contains(&format!("<{to}>")) || header == to,
            "{to} got {header}'s message"
        );
    }
    assert!(
        sink.commands_behind_content() >= 6,
        "two sessions for eight messages: at least six carried the next one's commands, got {}",
        sink.commands_behind_content()
    );
    assert!(sink.connections() <= 2, "{}", sink.connections());
}

async fn default_audience_is_the_consent_text_language(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, CONTACTS).await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Danish only", "consent_text_id": text, "subject": "SMS?", "intro": "Hej."}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let mut to: Vec<String> = sink.messages().into_iter().map(|m| m.rcpt_to[0].clone()).collect();
    to.sort();
    // anna and bo are da; ove has no locale and the workspace speaks da.
    assert_eq!(to, ["anna@example.dk", "bo@example.dk", "ove@example.dk"]);
}

async fn temporary_failures_are_retried_and_delivered_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.add_fault("anna@example.dk", Fault::RejectRcpt { code: 451, times: 2 });
    sink.add_fault("bo@example.dk", Fault::RejectData { code: 452, times: 1 });
    sink.add_fault("ingrid@example.no", Fault::DropConnection { times: 1 });
    sink.add_fault("lars@example.no", Fault::RejectRcpt { code: 421, times: 1 });
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;

    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    // The rows say why a message was sent again (its attempts and last error).
    let rows = invitation_rows(&app).await;
    assert_eq!(per_recipient.len(), 8, "{per_recipient:?}");
    assert!(
        per_recipient.values().all(|n| *n == 1),
        "exactly once: {per_recipient:?}, rows {rows:?}"
    );
    assert_eq!(sink.attempts("anna@example.dk"), 3);
    assert!(rows.iter().all(|(_, status, _, _)| status == "sent"), "{rows:?}");
    let anna = rows.iter().find(|r| r.0 == "anna@example.dk").unwrap();
    assert_eq!(anna.2, 3, "attempts are recorded");
}

async fn permanent_failure_bounces_suppresses_and_is_never_retried(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "bo@example.dk",
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;

    assert_eq!(sink.messages().len(), 7);
    assert_eq!(sink.attempts("bo@example.dk"), 1, "a 5xx is never retried");
    let rows = invitation_rows(&app).await;
    let bo = rows.iter().find(|r| r.0 == "bo@example.dk").unwrap();
    assert_eq!(bo.1, "bounced");
    assert!(bo.3.as_deref().unwrap().contains("550"), "{:?}", bo.3);
    let ws_id = ws.id.clone();
    let suppressed = app
        .with_db(move |c| {
            optbridge::contacts::is_suppressed(c, &ws_id, optbridge::domain::Channel::Email, "bo@example.dk").unwrap()
        })
        .await;
    assert!(suppressed, "hard bounces are suppressed");

    // The next campaign leaves the bounced address out.
    let texts = app.consent_texts_for_all(&ws.token).await;
    let per_locale = json!({"da": "S", "nb": "S", "sv": "S", "en": "S"});
    let next = app
        .campaign(
            &ws.token,
            &json!({"name": "Again", "consent_texts": texts, "subject": per_locale, "intro": per_locale,
                    "audience": {"locales": ["da", "nb", "sv", "en"]}}),
        )
        .await;
    app.send_campaign(&ws.token, &next).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(sink.attempts("bo@example.dk"), 1);
    assert_eq!(sink.messages().len(), 14);
}

async fn timeouts_are_temporary_and_do_not_poison_the_pool(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "anna@example.dk",
        Fault::Stall {
            duration: Duration::from_secs(3),
            times: 1,
        },
    );
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.smtp_timeout_secs = 1;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(30)).await;

    let rows = invitation_rows(&app).await;
    assert!(
        rows.iter().all(|(_, status, _, _)| status == "sent"),
        "nobody bounced: {rows:?}"
    );
    let anna = rows.iter().find(|r| r.0 == "anna@example.dk").unwrap();
    assert!(anna.2 >= 2, "the stalled send was retried: {anna:?}");
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 8);
    assert!(per_recipient.values().all(|n| *n == 1), "{per_recipient:?}");
}

async fn endless_temporary_failures_end_as_failed(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "amy@example.com",
        Fault::RejectRcpt {
            code: 451,
            times: u32::MAX,
        },
    );
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.outbox_max_attempts = 3;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(sink.attempts("amy@example.com"), 3);
    let rows = invitation_rows(&app).await;
    let amy = rows.iter().find(|r| r.0 == "amy@example.com").unwrap();
    assert_eq!(amy.1, "failed");
    assert!(
        amy.3.as_deref().unwrap().starts_with("gave up after 3 attempts"),
        "{:?}",
        amy.3
    );
    assert_eq!(app.outbox_len().await, 0, "nothing is left behind");
}

async fn ab_variants_are_assigned_stably_and_sent(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let ws = app.create_workspace("Skobutikken").await;
    let mut csv = String::from("email,locale\n");
    for i in 0..40 {
        csv.push_str(&format!("p{i}@example.dk,da\n"));
    }
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let body = json!({
        "name": "AB", "consent_text_id": text, "subject": "Base", "intro": "Base intro",
        "variants": [{"name": "A", "subject": "Subject A"}, {"name": "B", "subject": "Subject B", "weight": 1}]
    });
    let campaign = app.campaign(&ws.token, &body).await;
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    assert_eq!(shown["variants"].as_array().unwrap().len(), 2);
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;

    let by_variant: Vec<(String, String)> = app
        .with_db(|c| {
            invitations::table
                .select((invitations::email, invitations::variant))
                .load(c)
                .unwrap()
        })
        .await;
    let a = by_variant.iter().filter(|(_, v)| v == "A").count();
    assert!(a > 5 && a < 35, "both variants are used: {a} of 40 got A");
    for m in sink.messages() {
        let mail = ParsedMail::parse(&m.data);
        let variant = &by_variant.iter().find(|(e, _)| *e == m.rcpt_to[0]).unwrap().1;
        assert_eq!(mail.header("Subject"), Some(format!("Subject {variant}").as_str()));
    }
}

async fn campaign_input_is_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let other = app.create_workspace("Other").await;
    let text = app.consent_text(&ws.token, "da").await;
    let foreign_text = app.consent_text(&other.token, "da").await;
    let base = |extra: Value| {
        let mut b = json!({"name": "C", "consent_text_id": text, "subject": "S", "intro": "I"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (base(json!({"consent_text_id": "nope"})), "consent_text_id"),
        (base(json!({"consent_text_id": foreign_text})), "consent_text_id"),
        (base(json!({"subject": "Free gift inside"})), "free"),
        (base(json!({"subject": "Two\nlines"})), "single line"),
        (base(json!({"name": ""})), "name"),
        (base(json!({"variants": [{"name": "A"}, {"name": "a"}]})), "twice"),
        (base(json!({"variants": [{"name": "A", "weight": 0}]})), "weight"),
        (base(json!({"audience": {"locales": ["fr"]}})), "locale"),
        (base(json!({"audience": {"locales": []}})), "at least one"),
    ];
    for (body, needle) in cases {
        let res = app.post_json(&ws.token, "/api/v1/campaigns", &body).await;
        assert_eq!(res.status(), 422, "{body}");
        let err = json(res).await["error"].as_str().unwrap().to_owned();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    let res = app
        .post_json(&ws.token, "/api/v1/campaigns", &json!({"name": "C"}))
        .await;
    assert_eq!(res.status(), 400);

    // Another workspace can neither see nor send this workspace's campaign.
    let campaign = app.campaign(&ws.token, &base(json!({}))).await;
    assert_eq!(
        app.get(&other.token, &format!("/api/v1/campaigns/{campaign}"))
            .await
            .status(),
        404
    );
    let res = app
        .post_json(&other.token, &format!("/api/v1/campaigns/{campaign}/send"), &json!({}))
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(app.get(&other.token, "/api/v1/campaigns").await).await, json!([]));
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    assert_eq!(shown["status"], "draft");
}

async fn dev_outbox_captures_mail_without_smtp(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;

    let list = app.client.get(app.url("/dev/mail")).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let page = list.text().await.unwrap();
    assert!(page.contains("Mail (8)"), "{page}");
    let id = between(&page, "/dev/mail/", &['"'])
        .unwrap()
        .trim_start_matches("/dev/mail/")
        .to_owned();
    let show = app
        .client
        .get(app.url(&format!("/dev/mail/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(show.status(), 200);
    let raw = app
        .client
        .get(app.url(&format!("/dev/mail/{id}/raw")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mail = ParsedMail::parse(raw.as_bytes());
    assert_eq!(mail.header("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
    let html = app
        .client
        .get(app.url(&format!("/dev/mail/{id}/html")))
        .send()
        .await
        .unwrap();
    assert!(
        html.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
}

async fn dkim_signs_outgoing_mail(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/src/mail/testdata/rsa2048.pkcs8.pem");
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.dkim_key_path = Some(key.into());
        a.dkim_selector = Some("ob1".into());
        a.dkim_domain = Some("shop.example".into());
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    for m in sink.messages() {
        let mail = ParsedMail::parse(&m.data);
        let sig = mail.header("DKIM-Signature").expect("signed");
        let compact: String = sig.split_whitespace().collect();
        assert!(
            compact.contains("d=shop.example;") && compact.contains("s=ob1;"),
            "{sig}"
        );
        assert!(compact.contains("list-unsubscribe:list-unsubscribe-post"), "{sig}");
    }
}

/// A server that answers the pipelined DATA with 354 although it refused the only recipient:
/// the client ends that message at once (nothing but the final dot), resets, and counts the
/// refusal; the invitation is delivered once on its retry.
async fn data_accepted_after_a_refused_recipient_sends_an_empty_message(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.answer_data_without_recipients(true);
    sink.add_fault("anna@example.dk", Fault::RejectRcpt { code: 451, times: 1 });
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(
        sink.bodies_without_recipients(),
        vec![0],
        "only the final dot after the 354"
    );
    let rows = invitation_rows(&app).await;
    assert!(rows.iter().all(|r| r.1 == "sent"), "{rows:?}");
    let anna = rows.iter().find(|r| r.0 == "anna@example.dk").unwrap();
    assert_eq!(anna.2, 2, "refused once, delivered on the retry");
    let to_anna = sink
        .messages()
        .iter()
        .filter(|m| m.rcpt_to[0] == "anna@example.dk")
        .count();
    assert_eq!(to_anna, 1);
}

/// Runs `optbridge worker --drain` against the app's database and `sink`, trusting the test CA
/// (the sink's certificate) only when `trust_test_ca`. The process has its own environment:
/// `SSL_CERT_FILE` is where the platform's certificate verifier looks on Linux.
async fn drain_with_tls(app: &TestApp, sink: &SmtpSink, trust_test_ca: bool) {
    let mut drain = tokio::process::Command::new(env!("CARGO_BIN_EXE_optbridge"));
    drain
        .args(["worker", "--drain"])
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", app.settings.base_url.as_str())
        .env("SMTP_URL", sink.url())
        .env("SMTP_TIMEOUT_SECS", "5")
        .env("RUST_LOG", "warn")
        .env_remove("SSL_CERT_DIR");
    if trust_test_ca {
        drain.env(
            "SSL_CERT_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem"),
        );
    } else {
        drain.env_remove("SSL_CERT_FILE");
    }
    // Async: the sink runs on this test's runtime and must keep answering.
    assert!(drain.status().await.expect("run the drain").success());
}

async fn tls_delivery(backend: Backend, tls: Tls) {
    let sink = SmtpSink::start_tls(tls).await;
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    drain_with_tls(&app, &sink, true).await;
    let rows = invitation_rows(&app).await;
    assert!(rows.iter().all(|r| r.1 == "sent"), "{tls:?}: {rows:?}");
    assert!(sink.messages().iter().all(|m| m.tls), "{tls:?}: every message over TLS");
    let mut received: Vec<String> = sink.messages().iter().map(|m| m.rcpt_to[0].clone()).collect();
    received.sort();
    let expected: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(received, expected, "{tls:?}: each exactly once");
}

/// `smtps://` (TLS from the first byte) to a server whose certificate the system trusts.
async fn invitations_go_out_over_implicit_tls(backend: Backend) {
    tls_delivery(backend, Tls::Implicit).await;
}

/// `smtp://…?tls=required`: STARTTLS, then EHLO again and the mail over TLS.
async fn invitations_go_out_after_starttls(backend: Backend) {
    tls_delivery(backend, Tls::StartTls).await;
}

/// The same servers with a certificate the system does not trust: nothing is sent (the client
/// checks the certificate), nothing bounces (it is the relay's problem, temporary), and the
/// invitations wait for a retry with the reason recorded.
async fn an_untrusted_server_certificate_sends_nothing(backend: Backend) {
    for tls in [Tls::Implicit, Tls::StartTls] {
        let sink = SmtpSink::start_tls(tls).await;
        let app = spawn_app(backend).await;
        let (ws, campaign) = app.campaign_for_all().await;
        app.send_campaign(&ws.token, &campaign).await;
        drain_with_tls(&app, &sink, false).await;
        assert!(
            sink.messages().is_empty(),
            "{tls:?}: nothing over an untrusted connection"
        );
        let rows = invitation_rows(&app).await;
        assert!(rows.iter().all(|r| r.1 == "queued"), "{tls:?}: {rows:?}");
        assert!(
            rows.iter()
                .any(|r| r.3.as_deref().is_some_and(|e| e.to_lowercase().contains("certificate"))),
            "{tls:?}: the reason names the certificate: {rows:?}"
        );
    }
}

both_backends!(
    data_accepted_after_a_refused_recipient_sends_an_empty_message,
    invitations_go_out_over_implicit_tls,
    invitations_go_out_after_starttls,
    an_untrusted_server_certificate_sends_nothing,
    invitations_arrive_localized_with_links_and_headers,
    default_audience_is_the_consent_text_language,
    a_lane_sends_each_recipient_its_own_message,
    temporary_failures_are_retried_and_delivered_once,
    permanent_failure_bounces_suppresses_and_is_never_retried,
    timeouts_are_temporary_and_do_not_poison_the_pool,
    endless_temporary_failures_end_as_failed,
    ab_variants_are_assigned_stably_and_sent,
    campaign_input_is_validated,
    dev_outbox_captures_mail_without_smtp,
    dkim_signs_outgoing_mail,
);
