//! The Nordic SMS gateways end to end (issue 19): the landing page's double opt-in with 46elks
//! and with inMobile against their fakes — the DOI SMS in the provider's exact format, the
//! delivery report stored, a reply keyword and the code on the page confirming — their
//! callbacks refused without the right secret, and provider faults retried, recorded or
//! paused by the circuit breaker as with Twilio.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use optbridge::db::schema::{inbound_messages, sms_messages};
use serde_json::json;

use crate::fake_elks::ElksFault;
use crate::fake_inmobile::InMobileFault;
use crate::helpers::{
    ANNA, BO, Backend, ELKS_FROM, ELKS_SECRET, INMOBILE_FROM, INMOBILE_SECRET, TestApp, both_backends, elks_app, field,
    inmobile_app,
};

/// `{BASE_URL}/{path}?secret={secret}` of the running app.
fn callback(app: &TestApp, path: &str, secret: &str) -> String {
    let mut url = app.settings.base_url.join(path).unwrap();
    url.query_pairs_mut().append_pair("secret", secret);
    url.to_string()
}

/// (status, attempts, error) of the SMS the provider knows as `sid`.
async fn sms_by_sid(app: &TestApp, sid: &str) -> (String, i32, Option<String>) {
    let sid = sid.to_owned();
    app.with_db(move |c| {
        sms_messages::table
            .filter(sms_messages::provider_sid.eq(&sid))
            .select((sms_messages::status, sms_messages::attempts, sms_messages::error))
            .first(c)
            .unwrap()
    })
    .await
}

/// (status, attempts) of every SMS to `phone`, oldest first.
async fn sms_to(app: &TestApp, phone: &'static str) -> Vec<(String, i32)> {
    app.with_db(move |c| {
        sms_messages::table
            .filter(sms_messages::phone.eq(phone))
            .order(sms_messages::created_at.asc())
            .select((sms_messages::status, sms_messages::attempts))
            .load(c)
            .unwrap()
    })
    .await
}

/// Which provider sent the SMS `sid`, and which carried the reply `message_sid`.
async fn providers(app: &TestApp, sid: &str, message_sid: &str) -> (Option<String>, Option<String>) {
    let (sid, message_sid) = (sid.to_owned(), message_sid.to_owned());
    app.with_db(move |c| {
        let sent = sms_messages::table
            .filter(sms_messages::provider_sid.eq(&sid))
            .select(sms_messages::provider)
            .first(c)
            .unwrap();
        let carried = inbound_messages::table
            .filter(inbound_messages::message_sid.eq(&message_sid))
            .select(inbound_messages::provider)
            .first(c)
            .optional()
            .unwrap()
            .flatten();
        (sent, carried)
    })
    .await
}

/// The evidence stored with the newest SMS confirmation in the ledger.
async fn confirmation_evidence(app: &TestApp) -> serde_json::Value {
    use optbridge::db::schema::consent_ledger;
    let payload: Option<String> = app
        .with_db(|c| {
            consent_ledger::table
                .filter(consent_ledger::kind.eq(optbridge::consent::ledger::LedgerKind::SmsConsentConfirmed))
                .order(consent_ledger::seq.desc())
                .select(consent_ledger::payload)
                .first(c)
                .unwrap()
        })
        .await;
    serde_json::from_str::<serde_json::Value>(&payload.unwrap()).unwrap()["confirmation"].clone()
}

async fn inbound_count(app: &TestApp) -> i64 {
    app.with_db(|c| inbound_messages::table.count().get_result(c).unwrap())
        .await
}

/// Types `code` into the code page of `link`.
async fn confirm_with_code(app: &TestApp, link: &str, code: &str) -> (u16, String) {
    let csrf = field(&app.page(&format!("/l/{link}")).await.1, "csrf");
    let (status, body, _) = app
        .post_form(&format!("/l/{link}/confirm"), &[("csrf", &csrf), ("code", code)])
        .await;
    (status, body)
}

/// How `phone`'s consent was confirmed (`sms_reply`, `code`).
async fn confirmed_via(app: &TestApp, phone: &'static str) -> Option<String> {
    use optbridge::db::schema::consent_requests;
    app.with_db(move |c| {
        consent_requests::table
            .filter(consent_requests::phone.eq(phone))
            .select(consent_requests::confirmed_via)
            .first::<Option<String>>(c)
            .unwrap()
    })
    .await
}

async fn doi_with_46elks_end_to_end(backend: Backend) {
    let (app, fake) = elks_app(backend, |_| {}).await;
    let inv = app.invited().await;
    assert_eq!(
        app.submit_landing(&inv.anna, "20 12 34 56", true, &["Tilbud"]).await.0,
        303
    );
    app.drain_outbox(Duration::from_secs(10)).await;

    // The DOI SMS, exactly as 46elks documents the request.
    let sent = fake.wait_for_accepted(1, Duration::from_secs(5)).await;
    let doi = &sent[0];
    let names: BTreeSet<&str> = doi.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["from", "to", "message", "whendelivered"]));
    assert_eq!(doi.from, ELKS_FROM);
    assert_eq!(doi.to, ANNA);
    assert!(doi.message.starts_with("Skobutikken:"), "{}", doi.message);
    assert!(
        doi.message.contains("JA") && doi.message.contains("STOP"),
        "{}",
        doi.message
    );
    assert!(fake.last_code_for(ANNA).is_some(), "{}", doi.message);
    let status_url = callback(&app, "webhooks/46elks/status", ELKS_SECRET);
    assert_eq!(doi.when_delivered.as_deref(), Some(status_url.as_str()));
    assert!(doi.content_type.starts_with("application/x-www-form-urlencoded"));
    let id = doi.id.clone().unwrap();
    assert_eq!(sms_by_sid(&app, &id).await.0, "sent");

    // The delivery report, posted where the message said, is stored; a late "sent" does not undo it.
    assert_eq!(fake.report(&app.client, &status_url, &id, "delivered").await, 204);
    assert_eq!(fake.report(&app.client, &status_url, &id, "sent").await, 204);
    assert_eq!(sms_by_sid(&app, &id).await.0, "delivered");

    // A reply keyword to the number's sms_url confirms; a repeated callback is one message.
    let inbound_url = callback(&app, "webhooks/46elks/inbound", ELKS_SECRET);
    for _ in 0..2 {
        let status = fake
            .incoming_with_id(&app.client, &inbound_url, "sreply0001", ANNA, ELKS_FROM, "  Ja tak!")
            .await;
        assert_eq!(status, 204);
    }
    assert_eq!(inbound_count(&app).await, 1);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    assert_eq!(confirmed_via(&app, ANNA).await.as_deref(), Some("sms_reply"));
    // The evidence says which gateway carried the DOI SMS and the reply.
    assert_eq!(
        providers(&app, &id, "sreply0001").await,
        (Some("46elks".into()), Some("46elks".into()))
    );
    let evidence = confirmation_evidence(&app).await;
    assert_eq!(evidence["provider"], "46elks", "{evidence}");
    assert_eq!(evidence["message_sid"], "sreply0001", "{evidence}");
    assert_eq!(evidence["from"], ANNA, "{evidence}");
    let receipt = fake.wait_for_accepted(2, Duration::from_secs(5)).await;
    assert_eq!(receipt[1].to, ANNA);
    assert!(receipt[1].message.contains("STOP"), "{}", receipt[1].message);

    // Bo types the code from his SMS on the page instead.
    app.submit_landing(&inv.bo, BO, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let code = fake.last_code_for(BO).expect("Bo's code");
    let (status, page) = confirm_with_code(&app, &inv.bo, &code).await;
    assert_eq!(status, 200);
    assert!(page.contains("Tak, du er tilmeldt"), "{page}");
    assert_eq!(app.subscription_status(BO).await.as_deref(), Some("active"));
    assert_eq!(confirmed_via(&app, BO).await.as_deref(), Some("code"));

    // STOP by 46elks withdraws, START restores: the keywords work for every provider.
    assert_eq!(
        fake.incoming(&app.client, &inbound_url, ANNA, ELKS_FROM, "STOP").await,
        204
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("withdrawn"));
    assert_eq!(
        fake.incoming(&app.client, &inbound_url, ANNA, ELKS_FROM, "start").await,
        204
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
}

async fn doi_with_inmobile_end_to_end(backend: Backend) {
    let (app, fake) = inmobile_app(backend, |_| {}).await;
    let inv = app.invited().await;
    assert_eq!(app.submit_landing(&inv.anna, "20 12 34 56", true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;

    // The DOI SMS in the pinned JSON format.
    let sent = fake.wait_for_accepted(1, Duration::from_secs(5)).await;
    let doi = &sent[0];
    let status_url = callback(&app, "webhooks/inmobile/status", INMOBILE_SECRET);
    assert_eq!(
        doi.json,
        json!({
            "to": "4520123456",
            "text": doi.text,
            "from": INMOBILE_FROM,
            "statusCallbackUrl": status_url,
            "respectBlacklist": true,
        })
    );
    assert_eq!(doi.status_callback_url.as_deref(), Some(status_url.as_str()));
    assert!(doi.content_type.starts_with("application/json"));
    assert_eq!(doi.user, "_", "the API key goes in the password");
    assert!(
        doi.text.starts_with("Skobutikken:") && doi.text.contains("STOP"),
        "{}",
        doi.text
    );
    let code = fake.last_code_for("4520123456").expect("a 6-digit code");
    let id = doi.message_id.clone().unwrap();
    assert_eq!(sms_by_sid(&app, &id).await.0, "sent");

    // The status callback is stored.
    assert_eq!(fake.report(&app.client, &status_url, &id, 1).await, 204);
    assert_eq!(sms_by_sid(&app, &id).await.0, "delivered");

    // The code on the page confirms (it needs no inbound message).
    let (status, page) = confirm_with_code(&app, &inv.anna, &code).await;
    assert_eq!(status, 200);
    assert!(page.contains("Tak, du er tilmeldt"), "{page}");
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    assert_eq!(confirmed_via(&app, ANNA).await.as_deref(), Some("code"));

    // A reply keyword in the assumed callback shape confirms Bo; a failed report for Bo's
    // receipt is recorded with inMobile's reason.
    app.submit_landing(&inv.bo, BO, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let inbound_url = callback(&app, "webhooks/inmobile/inbound", INMOBILE_SECRET);
    assert_eq!(
        fake.incoming(&app.client, &inbound_url, BO, "4570202020", "JA").await,
        204
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(BO).await.as_deref(), Some("active"));
    assert_eq!(confirmed_via(&app, BO).await.as_deref(), Some("sms_reply"));
    assert_eq!(providers(&app, &id, "-").await.0.as_deref(), Some("inmobile"));
    let evidence = confirmation_evidence(&app).await;
    assert_eq!(
        (&evidence["provider"], &evidence["from"]),
        (&json!("inmobile"), &json!(BO)),
        "{evidence}"
    );
    let receipt = fake.accepted().into_iter().last().unwrap();
    assert_eq!(receipt.to, "4520654321");
    let receipt_id = receipt.message_id.unwrap();
    assert_eq!(fake.report(&app.client, &status_url, &receipt_id, -1).await, 204);
    let (status, _, error) = sms_by_sid(&app, &receipt_id).await;
    assert_eq!(status, "failed");
    assert_eq!(error.as_deref(), Some("inMobile: Undeliverable message"));
}

async fn callbacks_without_the_secret_are_refused(backend: Backend) {
    let (app, fake) = elks_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let id = fake.accepted()[0].id.clone().unwrap();
    let before = optbridge::metrics::METRICS.webhook_rejected.get();

    for path in ["webhooks/46elks/status", "webhooks/46elks/inbound"] {
        let bare = app.settings.base_url.join(path).unwrap().to_string();
        for url in [
            bare.clone(),
            callback(&app, path, "wrong-secret"),
            callback(&app, path, &ELKS_SECRET[..ELKS_SECRET.len() - 1]),
            callback(&app, path, INMOBILE_SECRET),
            format!("{bare}?secret={ELKS_SECRET}&secret={ELKS_SECRET}"),
        ] {
            assert_eq!(fake.report(&app.client, &url, &id, "delivered").await, 403, "{url}");
            assert_eq!(
                fake.incoming(&app.client, &url, ANNA, ELKS_FROM, "JA").await,
                403,
                "{url}"
            );
        }
    }
    // Nothing was stored or acted on.
    assert_eq!(sms_by_sid(&app, &id).await.0, "sent");
    assert_eq!(inbound_count(&app).await, 0);
    app.drain_outbox(Duration::from_secs(5)).await;
    assert_eq!(app.subscription_status(ANNA).await, None);
    assert!(optbridge::metrics::METRICS.webhook_rejected.get() >= before + 20);

    // Another provider's callbacks do not exist here, whatever they carry.
    for path in ["webhooks/inmobile/status", "webhooks/inmobile/inbound"] {
        let url = callback(&app, path, ELKS_SECRET);
        assert_eq!(fake.report(&app.client, &url, &id, "delivered").await, 404, "{url}");
    }
    let twilio = app
        .client
        .post(app.url("/webhooks/twilio/status"))
        .form(&[("MessageSid", id.as_str()), ("MessageStatus", "delivered")])
        .send()
        .await
        .unwrap();
    assert_eq!(twilio.status(), 404);

    // inMobile's callbacks are guarded the same way.
    let (app, fake) = inmobile_app(backend, |_| {}).await;
    for path in ["webhooks/inmobile/status", "webhooks/inmobile/inbound"] {
        let bare = app.settings.base_url.join(path).unwrap().to_string();
        for url in [
            bare.clone(),
            callback(&app, path, "wrong-secret"),
            callback(&app, path, ELKS_SECRET),
        ] {
            assert_eq!(fake.report(&app.client, &url, "m1", 1).await, 403, "{url}");
            assert_eq!(
                fake.incoming(&app.client, &url, ANNA, "4570202020", "JA").await,
                403,
                "{url}"
            );
        }
    }
    assert_eq!(inbound_count(&app).await, 0);
    let url = callback(&app, "webhooks/46elks/status", INMOBILE_SECRET);
    assert_eq!(fake.report(&app.client, &url, "m1", 1).await, 404);
}

async fn elks_faults_are_retried_or_recorded(backend: Backend) {
    let (app, fake) = elks_app(backend, |_| {}).await;
    fake.add_fault(Some(ANNA), ElksFault::TooManyRequests { retry_after_secs: 1 }, 1);
    fake.add_fault(Some(ANNA), ElksFault::ServerError { status: 502 }, 1);
    fake.add_fault(
        Some(BO),
        ElksFault::Refused {
            status: 403,
            reason: "Invalid to number".into(),
        },
        u32::MAX,
    );
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.submit_landing(&inv.bo, BO, true, &[]).await;
    let started = Instant::now();
    app.drain_outbox(Duration::from_secs(30)).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");

    let to_anna: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.to == ANNA)
        .map(|r| r.status)
        .collect();
    assert_eq!(to_anna, [429, 502, 200]);
    assert_eq!(sms_to(&app, ANNA).await, [("sent".to_owned(), 3)]);
    let to_bo: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.to == BO)
        .map(|r| r.status)
        .collect();
    assert_eq!(to_bo, [403], "a refusal is never retried");
    assert_eq!(sms_to(&app, BO).await, [("failed".to_owned(), 1)]);
    let (_, bo_page) = app.page(&format!("/l/{}/confirm", inv.bo)).await;
    assert!(bo_page.contains("kunne ikke sende en SMS"), "{bo_page}");
}

async fn inmobile_faults_are_retried_or_recorded(backend: Backend) {
    let (app, fake) = inmobile_app(backend, |_| {}).await;
    fake.add_fault(
        Some("4520123456"),
        InMobileFault::TooManyRequests { retry_after_secs: 1 },
        1,
    );
    fake.add_fault(Some("4520123456"), InMobileFault::ServerError { status: 503 }, 1);
    fake.add_fault(
        Some("4520654321"),
        InMobileFault::Refused {
            status: 400,
            message: "Validation failed".into(),
        },
        u32::MAX,
    );
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.submit_landing(&inv.bo, BO, true, &[]).await;
    let started = Instant::now();
    app.drain_outbox(Duration::from_secs(30)).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");

    let to_anna: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.to == "4520123456")
        .map(|r| r.status)
        .collect();
    assert_eq!(to_anna, [429, 503, 200]);
    assert_eq!(sms_to(&app, ANNA).await, [("sent".to_owned(), 3)]);
    let to_bo: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.to == "4520654321")
        .map(|r| r.status)
        .collect();
    assert_eq!(to_bo, [400], "a refusal is never retried");
    let bo: Vec<(String, i32, Option<String>)> = app
        .with_db(|c| {
            sms_messages::table
                .filter(sms_messages::phone.eq(BO))
                .select((sms_messages::status, sms_messages::attempts, sms_messages::error))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(bo.len(), 1);
    assert_eq!((bo[0].0.as_str(), bo[0].1), ("failed", 1));
    assert!(bo[0].2.as_deref().unwrap().contains("Validation failed"), "{bo:?}");
}

/// 46elks down (503 on every send): the SMS circuit breaker the dispatch shares with Twilio opens,
/// the outage neither loses messages nor uses up their attempts, and all go out, once each, after.
async fn elks_outage_opens_the_circuit_and_nothing_is_lost(backend: Backend) {
    const THRESHOLD: u32 = 3;
    const COOLDOWN: Duration = Duration::from_millis(200);
    const MESSAGES: usize = 12;
    let (app, fake) = elks_app(backend, |a| {
        a.circuit_breaker_failures = THRESHOLD;
        a.circuit_breaker_cooldown_ms = COOLDOWN.as_millis() as u64;
        a.circuit_breaker_max_cooldown_ms = COOLDOWN.as_millis() as u64;
        a.smtp_concurrency = 2;
        a.outbox_max_attempts = 4;
    })
    .await;
    let ws = app.create_workspace("Breaker").await;
    app.with_db(move |c| {
        for i in 0..MESSAGES {
            let phone = format!("+45201000{i:02}");
            optbridge::sms::outbound::queue(
                c,
                optbridge::sms::outbound::NewSms {
                    workspace_id: &ws.id,
                    consent_request_id: None,
                    kind: optbridge::sms::outbound::SmsKind::KeywordReply,
                    phone: &phone,
                    country: "DK",
                    body: "Breaker: du er afmeldt.",
                    not_before: optbridge::db::now(),
                },
            )
            .unwrap();
        }
    })
    .await;
    let opened_before = optbridge::metrics::METRICS.circuit_opened[1].get();
    fake.add_fault(None, ElksFault::ServerError { status: 503 }, u32::MAX);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        app.dispatch_all().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = fake.requests().len();
    // The failures that open the circuit, the sends in flight then, one probe per cool-down.
    let bound = THRESHOLD as usize + 2 + (started.elapsed().as_millis() / COOLDOWN.as_millis()) as usize + 1;
    assert!(
        during >= THRESHOLD as usize && during <= bound,
        "{during} requests (bound {bound})"
    );
    assert!(
        optbridge::metrics::METRICS.circuit_opened[1].get() > opened_before,
        "the circuit opened"
    );

    fake.clear_faults();
    app.drain_outbox(Duration::from_secs(10)).await;
    let rows: Vec<(String, i32)> = app
        .with_db(|c| {
            sms_messages::table
                .select((sms_messages::status, sms_messages::attempts))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(rows.len(), MESSAGES);
    assert!(
        rows.iter().all(|(status, attempts)| status == "sent" && *attempts <= 4),
        "{rows:?}"
    );
    let mut numbers: Vec<String> = fake.accepted().into_iter().map(|r| r.to).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(
        (numbers.len(), fake.accepted().len()),
        (MESSAGES, MESSAGES),
        "each exactly once"
    );
}

both_backends!(
    elks_outage_opens_the_circuit_and_nothing_is_lost,
    doi_with_46elks_end_to_end,
    doi_with_inmobile_end_to_end,
    callbacks_without_the_secret_are_refused,
    elks_faults_are_retried_or_recorded,
    inmobile_faults_are_retried_or_recorded,
);
