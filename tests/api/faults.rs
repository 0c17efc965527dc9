//! Provider faults beyond single retries: the circuit breaker pauses sends to an SMTP relay or
//! SMS API that keeps failing, probes it, and resumes; nothing is lost and the outage does not
//! use up the messages' attempts. Also the SMTP answers not covered in `invitations`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use optbridge::db::schema::{invitations, sms_messages};
use optbridge::metrics::METRICS;
use optbridge::sms::outbound::{NewSms, SmsKind};
use serde_json::json;

use crate::fake_twilio::TwilioFault;
use crate::helpers::{Backend, TestApp, both_backends, spawn_app_with, twilio_app};
use crate::smtp_sink::{Fault, SmtpSink};

const THRESHOLD: u32 = 3;
const COOLDOWN: Duration = Duration::from_millis(200);
const CONCURRENCY: usize = 2;
const OUTAGE: Duration = Duration::from_millis(1500);
const MESSAGES: usize = 20;

fn breaker_args(a: &mut optbridge::config::ConfigArgs) {
    a.circuit_breaker_failures = THRESHOLD;
    a.circuit_breaker_cooldown_ms = COOLDOWN.as_millis() as u64;
    a.circuit_breaker_max_cooldown_ms = COOLDOWN.as_millis() as u64;
    a.smtp_concurrency = CONCURRENCY;
    // Without the breaker, the outage would use up every message's attempts in well under a second.
    a.outbox_max_attempts = 4;
}

/// What the provider may see while it is down: the failures that open the circuit, the sends
/// already in flight then, and one probe per cool-down.
fn outage_bound(elapsed: Duration) -> usize {
    THRESHOLD as usize + CONCURRENCY + (elapsed.as_millis() / COOLDOWN.as_millis()) as usize + 1
}

/// Works the outbox for `duration`, as a worker would, whether or not it empties.
async fn work_for(app: &TestApp, duration: Duration) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        app.dispatch_all().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sms_breaker_pauses_a_failing_provider_and_resumes(backend: Backend) {
    let (app, fake) = twilio_app(backend, breaker_args).await;
    let ws = app.create_workspace("Breaker").await;
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        for i in 0..MESSAGES {
            let phone = format!("+45201000{i:02}");
            optbridge::sms::outbound::queue(
                c,
                NewSms {
                    workspace_id: &ws_id,
                    consent_request_id: None,
                    kind: SmsKind::KeywordReply,
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
    let opened_before = METRICS.circuit_opened[1].get();
    fake.add_fault(None, TwilioFault::ServerError { status: 503 }, u32::MAX);

    let started = Instant::now();
    work_for(&app, OUTAGE).await;
    let during = fake.requests().len();
    let bound = outage_bound(started.elapsed());
    assert!(
        during <= bound,
        "{during} requests reached the failing API (bound {bound})"
    );
    assert!(during >= THRESHOLD as usize, "it did try");
    assert!(METRICS.circuit_opened[1].get() > opened_before, "the circuit opened");
    let statuses = sms_statuses(&app).await;
    assert_eq!(statuses.get("queued"), Some(&MESSAGES), "nothing failed: {statuses:?}");

    fake.clear_faults();
    app.drain_outbox(Duration::from_secs(10)).await;
    let statuses = sms_statuses(&app).await;
    assert_eq!(statuses.get("sent"), Some(&MESSAGES), "{statuses:?}");
    let delivered = fake.delivered();
    let mut per_number: HashMap<&str, usize> = HashMap::new();
    for sms in &delivered {
        *per_number.entry(sms.to.as_str()).or_default() += 1;
    }
    assert_eq!(per_number.len(), MESSAGES);
    assert!(
        per_number.values().all(|n| *n == 1),
        "each exactly once: {per_number:?}"
    );
    let max_attempts: i32 = app
        .with_db(|c| {
            sms_messages::table
                .select(diesel::dsl::max(sms_messages::attempts))
                .first::<Option<i32>>(c)
                .unwrap()
                .unwrap()
        })
        .await;
    assert!(max_attempts <= 4, "the outage did not use up attempts ({max_attempts})");
}

async fn sms_statuses(app: &TestApp) -> HashMap<String, usize> {
    let rows: Vec<String> = app
        .with_db(|c| sms_messages::table.select(sms_messages::status).load(c).unwrap())
        .await;
    let mut counts = HashMap::new();
    for s in rows {
        *counts.entry(s).or_default() += 1;
    }
    counts
}

async fn smtp_breaker_pauses_a_failing_relay_and_resumes(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        breaker_args(a);
    })
    .await;
    let ws = app.create_workspace("Breaker").await;
    let addresses: Vec<String> = (0..MESSAGES).map(|i| format!("r{i:02}@example.dk")).collect();
    for address in &addresses {
        // 421: the relay is shutting down and closes the connection.
        sink.add_fault(
            address,
            Fault::RejectRcpt {
                code: 421,
                times: u32::MAX,
            },
        );
    }
    let csv = format!("email,locale\n{}\n", addresses.join(",da\n") + ",da");
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Breaker", "consent_text_id": text, "subject": "S", "intro": "I"}),
        )
        .await;
    let opened_before = METRICS.circuit_opened[0].get();
    app.send_campaign(&ws.token, &campaign).await;

    let started = Instant::now();
    work_for(&app, OUTAGE).await;
    let during: u32 = addresses.iter().map(|a| sink.attempts(a)).sum();
    let bound = outage_bound(started.elapsed());
    assert!(
        during as usize <= bound,
        "{during} sends reached the failing relay (bound {bound})"
    );
    assert!(METRICS.circuit_opened[0].get() > opened_before, "the circuit opened");

    sink.clear_faults();
    app.drain_outbox(Duration::from_secs(10)).await;
    let statuses: Vec<(String, i32)> = app
        .with_db(|c| {
            invitations::table
                .select((invitations::status, invitations::attempts))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(statuses.len(), MESSAGES);
    assert!(
        statuses.iter().all(|(s, _)| s == "sent"),
        "nothing failed or bounced: {statuses:?}"
    );
    assert!(statuses.iter().all(|(_, n)| *n <= 4), "{statuses:?}");
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), MESSAGES);
    assert!(per_recipient.values().all(|n| *n == 1), "{per_recipient:?}");
}

/// 552 (mailbox full, 5.2.2, or message too big, 5.3.4) is permanent: bounced, never retried,
/// and not suppressed (the address itself is fine). Answers for single recipients do not open
/// the circuit: the relay answered.
async fn mailbox_full_bounces_without_suppressing(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "anna@example.dk",
        Fault::RejectRcpt {
            code: 552,
            times: u32::MAX,
        },
    );
    sink.add_fault(
        "bo@example.dk",
        Fault::RejectData {
            code: 552,
            times: u32::MAX,
        },
    );
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.circuit_breaker_failures = 1;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    for address in ["anna@example.dk", "bo@example.dk"] {
        assert_eq!(sink.attempts(address), 1, "{address}: a 5xx is never retried");
        let a = address.to_owned();
        let (status, error): (String, Option<String>) = app
            .with_db(move |c| {
                invitations::table
                    .filter(invitations::email.eq(&a))
                    .select((invitations::status, invitations::last_error))
                    .first(c)
                    .unwrap()
            })
            .await;
        assert_eq!(status, "bounced");
        assert!(error.as_deref().unwrap().contains("552"), "{error:?}");
        let (ws_id, a) = (ws.id.clone(), address.to_owned());
        let suppressed = app
            .with_db(move |c| {
                optbridge::contacts::is_suppressed(c, &ws_id, optbridge::domain::Channel::Email, &a).unwrap()
            })
            .await;
        assert!(!suppressed, "{address}: a full mailbox is not a bad address");
    }
    assert_eq!(sink.messages().len(), 6, "the other six arrive");
}

both_backends!(
    sms_breaker_pauses_a_failing_provider_and_resumes,
    smtp_breaker_pauses_a_failing_relay_and_resumes,
    mailbox_full_bounces_without_suppressing,
);
