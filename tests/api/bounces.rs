//! Bounces after acceptance: VERP envelope senders (`BOUNCE_ADDRESS`), bounce reports read
//! from a real POP3 or IMAP mailbox (`BOUNCE_MAILBOX`, Dovecot: see `dovecot`), and bounces and spam
//! complaints reported by an ESP's event webhook (Mailgun, SendGrid), signed as their
//! documentation describes.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::{funnel_events, invitations, suppressions};
use optbridge::domain::Channel;
use optbridge::mail::bounce::PollSummary;

use crate::dovecot::Dovecot;
use crate::helpers::{Backend, TestApp, TestWorkspace, both_backends, json, spawn_app_with};
use crate::smtp_sink::SmtpSink;
use crate::webhook_receiver::Receiver;

const BOUNCE_ADDRESS: &str = "bounces@shop.example";

/// An app sending through `sink`, with `BOUNCE_ADDRESS` and, when given, `BOUNCE_MAILBOX`.
async fn app_with_bounces(backend: Backend, sink: &SmtpSink, mailbox: Option<String>) -> TestApp {
    let url = sink.url();
    spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.bounce_address = Some(BOUNCE_ADDRESS.into());
        a.bounce_mailbox = mailbox;
        // Webhooks go to a receiver on this machine.
        a.webhook_allow_private = true;
    })
    .await
}

/// Sends the eight-contact campaign and delivers it to the sink.
async fn sent_campaign(app: &TestApp) -> (TestWorkspace, String) {
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    (ws, campaign)
}

#[derive(Debug, Clone)]
struct Row {
    email: String,
    status: String,
    token: Option<String>,
    last_error: Option<String>,
}

async fn rows(app: &TestApp) -> Vec<Row> {
    app.with_db(|c| {
        invitations::table
            .order(invitations::email.asc())
            .select((
                invitations::email,
                invitations::status,
                invitations::bounce_token,
                invitations::last_error,
            ))
            .load::<(String, String, Option<String>, Option<String>)>(c)
            .unwrap()
            .into_iter()
            .map(|(email, status, token, last_error)| Row {
                email,
                status,
                token,
                last_error,
            })
            .collect()
    })
    .await
}

async fn row(app: &TestApp, email: &str) -> Row {
    rows(app).await.into_iter().find(|r| r.email == email).unwrap()
}

async fn suppressed(app: &TestApp, ws: &TestWorkspace, email: &'static str) -> bool {
    let ws = ws.id.clone();
    app.with_db(move |c| optbridge::contacts::is_suppressed(c, &ws, Channel::Email, email).unwrap())
        .await
}

async fn bounce_events(app: &TestApp) -> i64 {
    app.with_db(|c| {
        funnel_events::table
            .filter(funnel_events::kind.eq("bounced"))
            .count()
            .get_result(c)
            .unwrap()
    })
    .await
}

async fn funnel(app: &TestApp, ws: &TestWorkspace, campaign: &str) -> serde_json::Value {
    json(
        app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}/funnel"))
            .await,
    )
    .await
}

/// A delivery status notification as Postfix writes it (RFC 3464), to the VERP address of
/// `token`, about `recipient`.
fn dsn(token: &str, recipient: &str, action: &str, status: &str, diagnostic: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
         Delivered-To: bounces+{token}@shop.example\r\n\
         From: MAILER-DAEMON@relay.shop.example (Mail Delivery System)\r\n\
         To: bounces+{token}@shop.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B42/relay.shop.example\"\r\n\
         \r\n\
         --B42/relay.shop.example\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host relay.shop.example.\r\n\
         \r\n\
         <{recipient}>: host mx.example.dk[192.0.2.25] said: {diagnostic}\r\n\
         \r\n\
         --B42/relay.shop.example\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; relay.shop.example\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --B42/relay.shop.example\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Return-Path: <bounces+{token}@shop.example>\r\n\
         From: Skobutikken <news@shop.example>\r\n\
         To: <{recipient}>\r\n\
         \r\n\
         --B42/relay.shop.example--\r\n"
    )
    .into_bytes()
}

fn hard_dsn(token: &str, recipient: &str) -> Vec<u8> {
    dsn(
        token,
        recipient,
        "failed",
        "5.1.1",
        "550 5.1.1 <bo@example.dk>: Recipient address rejected: User unknown",
    )
}

async fn poll(app: &TestApp) -> PollSummary {
    let poller = optbridge::startup::bounce_poller(&app.settings, &app.db).expect("BOUNCE_MAILBOX is set");
    poller.poll_once().await.expect("poll")
}

/// With `BOUNCE_ADDRESS`, each invitation leaves with its own envelope sender (its token, as
/// stored); the From header stays the workspace's. Without it, the envelope sender is From and
/// the invitations have no token.
async fn each_invitation_has_its_own_verp_envelope_sender(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_bounces(backend, &sink, None).await;
    sent_campaign(&app).await;
    let rows = rows(&app).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 8);
    let mut senders = std::collections::HashSet::new();
    for m in &messages {
        let row = rows.iter().find(|r| r.email == m.rcpt_to[0]).unwrap();
        let token = row.token.as_deref().expect("a token");
        assert_eq!(token.len(), 20);
        assert!(
            token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{token}"
        );
        assert_eq!(m.mail_from, format!("bounces+{token}@shop.example"));
        assert!(senders.insert(m.mail_from.clone()), "one sender per recipient");
        let parsed = mailparse::parse_mail(&m.data).unwrap();
        use mailparse::MailHeaderMap as _;
        let from = parsed.headers.get_first_value("From").unwrap();
        assert!(!from.contains("bounces"), "the From header is the workspace's: {from}");
    }

    // Unset: unchanged, the From address is the envelope sender.
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let plain = spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await;
    sent_campaign(&plain).await;
    let froms: std::collections::HashSet<String> = sink.messages().into_iter().map(|m| m.mail_from).collect();
    assert_eq!(froms.len(), 1, "{froms:?}");
    assert!(!froms.iter().next().unwrap().contains('+'), "{froms:?}");
    // And no token is made (nor kept in the unique index) for invitations without VERP.
    let plain_rows = self::rows(&plain).await;
    assert_eq!(plain_rows.len(), 8);
    assert!(plain_rows.iter().all(|r| r.token.is_none()), "{plain_rows:?}");
}

/// A 5.1.1 report in the mailbox: the invitation moves from sent to bounced, the funnel counts a
/// bounce instead of a delivery, the address is suppressed, the report is deleted; the same
/// report again changes nothing.
async fn a_hard_bounce_report_bounces_suppresses_and_is_deleted(backend: Backend) {
    let Some(mailbox) = Dovecot::start() else { return };
    let sink = SmtpSink::start().await;
    let app = app_with_bounces(backend, &sink, Some(mailbox.url())).await;
    let (ws, campaign) = sent_campaign(&app).await;
    let before = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (before["delivered"].as_i64(), before["bounced"].as_i64()),
        (Some(8), Some(0))
    );
    let bo = row(&app, "bo@example.dk").await;
    assert_eq!(bo.status, "sent");
    let token = bo.token.unwrap();
    let receiver = subscribed_receiver(&app, &ws, &["contact.bounced"]).await;

    mailbox.deliver(&hard_dsn(&token, "bo@example.dk"));
    let summary = poll(&app).await;
    assert_eq!(
        (summary.bounced, summary.unrecognised),
        (1, 0),
        "{summary:?}: {}",
        mailbox.log()
    );
    let bo = row(&app, "bo@example.dk").await;
    assert_eq!(bo.status, "bounced");
    assert!(bo.last_error.as_deref().unwrap().contains("5.1.1"), "{bo:?}");
    assert!(
        suppressed(&app, &ws, "bo@example.dk").await,
        "a 5.1.1 suppresses the address"
    );
    assert!(!suppressed(&app, &ws, "anna@example.dk").await);
    assert!(mailbox.messages().is_empty(), "the processed report is deleted");
    let after = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (
            after["sent"].as_i64(),
            after["delivered"].as_i64(),
            after["bounced"].as_i64()
        ),
        (Some(8), Some(7), Some(1)),
        "{after}"
    );
    assert_eq!(bounce_events(&app).await, 1);
    // The retailer's systems hear of it as of a refusal at sending: `contact.bounced`.
    app.drain_outbox(Duration::from_secs(20)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let event: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(event["type"], "contact.bounced");
    assert_eq!(event["data"]["email"], "bo@example.dk");
    assert_eq!(event["data"]["hard"], true);
    assert_eq!(event["data"]["campaign_id"], campaign.as_str());
    assert!(event["data"]["reason"].as_str().unwrap().contains("5.1.1"), "{event}");

    // The same report again (a relay that sent it twice): deleted, nothing counted twice.
    mailbox.deliver(&hard_dsn(&token, "bo@example.dk"));
    let summary = poll(&app).await;
    assert_eq!((summary.bounced, summary.ignored), (0, 1), "{summary:?}");
    assert!(mailbox.messages().is_empty());
    assert_eq!(funnel(&app, &ws, &campaign).await["bounced"].as_i64(), Some(1));
    assert_eq!(bounce_events(&app).await, 1);
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(receiver.received().len(), 1, "no second event");

    // The next campaign leaves the suppressed address out.
    // One consent text and one text per language (issue 16, item 10).
    let texts = app.consent_texts_for_all(&ws.token).await;
    let per_locale = serde_json::json!({"da": "S", "nb": "S", "sv": "S", "en": "S"});
    let next = app
        .campaign(
            &ws.token,
            &serde_json::json!({"name": "Again", "consent_texts": texts, "subject": per_locale, "intro": per_locale,
                    "audience": {"locales": ["da", "nb", "sv", "en"]}}),
        )
        .await;
    app.send_campaign(&ws.token, &next).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(
        sink.messages()
            .iter()
            .filter(|m| m.rcpt_to[0] == "bo@example.dk")
            .count(),
        1
    );
}

/// 5.7.1 (policy), 4.4.7 (expired in the relay's queue) and 5.2.2 (mailbox full) bounce without
/// suppressing; a delay warning changes nothing. All four are deleted.
async fn soft_bounce_reports_bounce_without_suppressing(backend: Backend) {
    let Some(mailbox) = Dovecot::start() else { return };
    let sink = SmtpSink::start().await;
    let app = app_with_bounces(backend, &sink, Some(mailbox.url())).await;
    let (ws, campaign) = sent_campaign(&app).await;
    let token = |email: &'static str| {
        let app = &app;
        async move { row(app, email).await.token.unwrap() }
    };
    mailbox.deliver(&dsn(
        &token("anna@example.dk").await,
        "anna@example.dk",
        "failed",
        "5.7.1",
        "554 5.7.1 Service unavailable; client host blocked",
    ));
    mailbox.deliver(&dsn(
        &token("ove@example.dk").await,
        "ove@example.dk",
        "failed",
        "4.4.7",
        "451 4.4.7 delivery time expired",
    ));
    mailbox.deliver(&dsn(
        &token("ingrid@example.no").await,
        "ingrid@example.no",
        "failed",
        "5.2.2",
        "552 5.2.2 mailbox full",
    ));
    mailbox.deliver(&dsn(
        &token("lars@example.no").await,
        "lars@example.no",
        "delayed",
        "4.4.1",
        "421 4.4.1 connection timed out",
    ));
    let summary = poll(&app).await;
    assert_eq!(
        (summary.bounced, summary.ignored, summary.unrecognised),
        (3, 1, 0),
        "{summary:?}"
    );
    for email in ["anna@example.dk", "ove@example.dk", "ingrid@example.no"] {
        assert_eq!(row(&app, email).await.status, "bounced", "{email}");
        assert!(!suppressed(&app, &ws, email).await, "{email} is not suppressed");
    }
    assert_eq!(
        row(&app, "lars@example.no").await.status,
        "sent",
        "a delay is not a bounce"
    );
    assert!(mailbox.messages().is_empty());
    let report = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (report["delivered"].as_i64(), report["bounced"].as_i64()),
        (Some(5), Some(3))
    );
}

/// What the poller does not understand stays in the mailbox, is counted in /metrics, and does
/// not stop the poller: a report next to it is processed. A report about an invitation not yet
/// recorded as sent waits for a later poll.
async fn unrecognised_and_malformed_messages_are_left_and_counted(backend: Backend) {
    let Some(mailbox) = Dovecot::start() else { return };
    let sink = SmtpSink::start().await;
    let app = app_with_bounces(backend, &sink, Some(mailbox.url())).await;
    let (ws, _) = sent_campaign(&app).await;
    let bo = row(&app, "bo@example.dk").await.token.unwrap();
    let anna = row(&app, "anna@example.dk").await.token.unwrap();
    let junk: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00 not a message at all \x00\r\n".to_vec(),
        // A report whose delivery-status part is garbage and whose text names no status.
        format!(
            "From: MAILER-DAEMON@relay.shop.example\r\nTo: bounces+{anna}@shop.example\r\nSubject: Undelivered Mail\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"Y\"\r\n\r\n\
             --Y\r\nContent-Type: text/plain\r\n\r\nSomething went wrong.\r\n--Y\r\nContent-Type: message/delivery-status\r\n\r\n\
             Status banana\r\nAction:\r\n\r\nFinal-Recipient\r\n--Y"
        )
        .into_bytes(),
        // An out-of-office answer to the envelope sender.
        format!(
            "From: Anna <anna@example.dk>\r\nTo: bounces+{anna}@shop.example\r\nSubject: Automatisk svar\r\n\
             Auto-Submitted: auto-replied\r\n\r\nJeg er på ferie.\r\n"
        )
        .into_bytes(),
        // A well-formed report with no token of ours.
        hard_dsn("ffffffffffffffffffff", "someone@example.dk"),
        dsn("nothex", "x@example.dk", "failed", "5.1.1", "550 5.1.1 unknown"),
    ];
    for message in &junk {
        mailbox.deliver(message);
    }
    mailbox.deliver(&hard_dsn(&bo, "bo@example.dk"));

    let summary = poll(&app).await;
    assert_eq!((summary.bounced, summary.unrecognised), (1, junk.len()), "{summary:?}");
    assert_eq!(row(&app, "bo@example.dk").await.status, "bounced");
    assert_eq!(
        row(&app, "anna@example.dk").await.status,
        "sent",
        "the garbage report bounced nothing"
    );
    assert!(!suppressed(&app, &ws, "anna@example.dk").await);
    let mut left = mailbox.messages();
    let mut expected = junk.clone();
    left.sort();
    expected.sort();
    assert_eq!(left, expected, "everything unrecognised is still there, byte for byte");
    // Polled again: still left, still no crash, counted once.
    let summary = poll(&app).await;
    assert_eq!((summary.bounced, summary.unrecognised), (0, junk.len()));
    assert_eq!(mailbox.messages().len(), junk.len());

    let metrics = app.metrics().await;
    let value = |name: &str| -> i64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    // Counters are per process, and other tests run in this one: at least ours.
    assert!(value("optbridge_bounce_messages_total{outcome=\"unrecognised\"}") >= junk.len() as i64);
    assert!(value("optbridge_bounce_messages_total{outcome=\"bounced\"}") >= 1);
    assert!(metrics.contains("# TYPE optbridge_bounce_mailbox_unrecognised gauge"));
    // For alerting on a mailbox no longer read: when the last poll went through.
    let last = value("optbridge_bounce_mailbox_last_success_timestamp_seconds");
    assert!(
        (chrono::Utc::now().timestamp() - last).abs() < 120,
        "{last} is the time of the last poll"
    );

    // A report that overtakes the sender's bookkeeping (the relay bounced before the worker
    // recorded the send; here the invitation is put back to queued) waits in the mailbox.
    let set_status = |status: &'static str| {
        app.with_db(move |c| {
            diesel::update(invitations::table.filter(invitations::email.eq("anna@example.dk")))
                .set(invitations::status.eq(status))
                .execute(c)
                .unwrap()
        })
    };
    set_status("queued").await;
    mailbox.deliver(&hard_dsn(&anna, "anna@example.dk"));
    let summary = poll(&app).await;
    assert_eq!((summary.waiting, summary.bounced), (1, 0), "{summary:?}");
    assert_eq!(mailbox.messages().len(), junk.len() + 1);
    set_status("sent").await;
    let summary = poll(&app).await;
    assert_eq!((summary.bounced, summary.waiting), (1, 0), "{summary:?}");
    assert_eq!(row(&app, "anna@example.dk").await.status, "bounced");
    assert_eq!(mailbox.messages().len(), junk.len());
}

/// A sample of `src/mail/bounce/testdata` with its VERP token replaced by `token`.
fn sample_for(name: &str, token: &str) -> Vec<u8> {
    let path = format!("{}/src/mail/bounce/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("4f2a9c0e7d1b3a5c6e8f", token)
        .into_bytes()
}

/// A mailbox provider's feedback loop reports a spam complaint to the bounce address (RFC 5965,
/// the recipient's address redacted): the recipient is unsubscribed from email as by the
/// unsubscribe link (suppressed, funnel, ledger, `contact.unsubscribed`), the report deleted; the
/// same report again changes nothing. A DMARC failure report next to it is left for a person.
async fn a_feedback_loop_complaint_in_the_mailbox_unsubscribes(backend: Backend) {
    let Some(mailbox) = Dovecot::start() else { return };
    let sink = SmtpSink::start().await;
    let app = app_with_bounces(backend, &sink, Some(mailbox.url())).await;
    let (ws, campaign) = sent_campaign(&app).await;
    let receiver = subscribed_receiver(&app, &ws, &["contact.unsubscribed", "contact.bounced"]).await;
    let bo = row(&app, "bo@example.dk").await.token.unwrap();
    let anna = row(&app, "anna@example.dk").await.token.unwrap();
    let complaint = sample_for("arf-abuse.eml", &bo);
    let dmarc = sample_for("arf-auth-failure.eml", &anna);
    mailbox.deliver(&complaint);
    mailbox.deliver(&dmarc);

    let summary = poll(&app).await;
    assert_eq!(
        (summary.unsubscribed, summary.bounced, summary.unrecognised),
        (1, 0, 1),
        "{summary:?}: {}",
        mailbox.log()
    );
    assert_eq!(
        suppression_reason(&app, "bo@example.dk").await.as_deref(),
        Some("unsubscribed (spam complaint via feedback loop)")
    );
    assert_eq!(
        row(&app, "bo@example.dk").await.status,
        "sent",
        "a complaint is no bounce"
    );
    assert!(
        !suppressed(&app, &ws, "anna@example.dk").await,
        "a DMARC report unsubscribes nobody"
    );
    assert_eq!(
        mailbox.messages(),
        vec![dmarc.clone()],
        "the complaint is deleted, the DMARC report left"
    );
    let report = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (report["unsubscribed"].as_i64(), report["bounced"].as_i64()),
        (Some(1), Some(0)),
        "{report}"
    );
    let ledger: Vec<serde_json::Value> = app
        .with_db({
            let ws = ws.id.clone();
            move |c| {
                use optbridge::db::schema::consent_ledger as l;
                l::table
                    .filter(l::workspace_id.eq(ws))
                    .filter(l::kind.eq("email_unsubscribed"))
                    .select(l::payload)
                    .load::<Option<String>>(c)
                    .unwrap()
            }
        })
        .await
        .iter()
        .map(|p| serde_json::from_str(p.as_deref().expect("a payload")).unwrap())
        .collect();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(
        (ledger[0]["email"].as_str(), ledger[0]["via"].as_str()),
        (Some("bo@example.dk"), Some("spam complaint via feedback loop"))
    );
    app.drain_outbox(Duration::from_secs(20)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let event: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["data"]["email"].as_str()),
        (Some("contact.unsubscribed"), Some("bo@example.dk"))
    );

    // The same report again (the loop sent it twice): deleted, nothing counted twice.
    mailbox.deliver(&complaint);
    let summary = poll(&app).await;
    assert_eq!((summary.unsubscribed, summary.ignored), (0, 1), "{summary:?}");
    assert_eq!(mailbox.messages(), vec![dmarc]);
    assert_eq!(funnel(&app, &ws, &campaign).await["unsubscribed"].as_i64(), Some(1));
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(receiver.received().len(), 1, "no second event");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("optbridge_bounce_messages_total{outcome=\"unsubscribed\"}"),
        "{metrics}"
    );
}

/// An IMAP folder (`BOUNCE_MAILBOX=imap://…/Bounces`) is read as a POP3 maildrop is: reports
/// bounce and are removed, what is not understood stays, unread, and the INBOX beside it is not
/// touched. A message another client marked deleted is not read, and goes at the poll's CLOSE.
async fn an_imap_folder_is_read_like_a_pop3_maildrop(backend: Backend) {
    let Some(mailbox) = Dovecot::start() else { return };
    let sink = SmtpSink::start().await;
    let folder = Some("Bounces");
    let app = app_with_bounces(backend, &sink, Some(mailbox.imap_url(folder))).await;
    let (ws, campaign) = sent_campaign(&app).await;
    let token = |email: &'static str| {
        let app = &app;
        async move { row(app, email).await.token.unwrap() }
    };
    // The INBOX is not the folder configured: this report is not read.
    let in_inbox = hard_dsn(&token("anna@example.dk").await, "anna@example.dk");
    mailbox.deliver(&in_inbox);
    let junk: Vec<Vec<u8>> = vec![
        format!(
            "From: Ove <ove@example.dk>\r\nTo: bounces+{}@shop.example\r\nSubject: Autosvar\r\n\
             Auto-Submitted: auto-replied\r\n\r\nJeg er på ferie.\r\n",
            token("ove@example.dk").await
        )
        .into_bytes(),
        hard_dsn("ffffffffffffffffffff", "someone@example.dk"),
    ];
    for message in &junk {
        mailbox.deliver_to(folder, message);
    }
    mailbox.deliver_to(folder, &hard_dsn(&token("bo@example.dk").await, "bo@example.dk"));
    mailbox.deliver_to(
        folder,
        &dsn(
            &token("ingrid@example.no").await,
            "ingrid@example.no",
            "failed",
            "5.2.2",
            "552 5.2.2 mailbox full",
        ),
    );
    // Marked deleted by another client: not read.
    mailbox.deliver_with_flags(
        folder,
        &hard_dsn(&token("lars@example.no").await, "lars@example.no"),
        Some("T"),
    );

    let summary = poll(&app).await;
    assert_eq!(
        (summary.bounced, summary.ignored, summary.unrecognised),
        (2, 0, 2),
        "{summary:?}: {}",
        mailbox.log()
    );
    let bo = row(&app, "bo@example.dk").await;
    assert_eq!(bo.status, "bounced");
    assert!(bo.last_error.as_deref().unwrap().contains("5.1.1"), "{bo:?}");
    assert!(suppressed(&app, &ws, "bo@example.dk").await);
    assert_eq!(row(&app, "ingrid@example.no").await.status, "bounced");
    assert!(
        !suppressed(&app, &ws, "ingrid@example.no").await,
        "5.2.2 does not suppress"
    );
    for email in ["anna@example.dk", "lars@example.no"] {
        assert_eq!(row(&app, email).await.status, "sent", "{email}'s report was not read");
    }
    let left = mailbox.messages_in(folder);
    assert!(
        left.iter().all(|(flags, _)| flags.is_empty()),
        "what is left is neither read nor marked: {:?}",
        left.iter().map(|(flags, _)| flags).collect::<Vec<_>>()
    );
    let mut left: Vec<Vec<u8>> = left.into_iter().map(|(_, raw)| raw).collect();
    let mut expected = junk.clone();
    left.sort();
    expected.sort();
    assert_eq!(
        left, expected,
        "the reports recorded and the one marked deleted are removed, the rest kept byte for byte"
    );
    assert_eq!(mailbox.messages(), vec![in_inbox], "the INBOX is untouched");
    let report = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (report["delivered"].as_i64(), report["bounced"].as_i64()),
        (Some(6), Some(2))
    );

    // Polled again: nothing new, the unrecognised ones still there and not downloaded again.
    let summary = poll(&app).await;
    assert_eq!((summary.bounced, summary.unrecognised), (0, 2), "{summary:?}");
    assert_eq!(mailbox.messages_in(folder).len(), 2);

    // A folder that does not exist fails the poll with the server's answer.
    let app = app_with_bounces(backend, &sink, Some(mailbox.imap_url(Some("Nowhere")))).await;
    let poller = optbridge::startup::bounce_poller(&app.settings, &app.db).unwrap();
    let error = poller.poll_once().await.expect_err("no such folder").to_string();
    assert!(error.contains("SELECT") && error.contains("NO"), "{error}");
}

/// `optbridge worker` reads the mailbox by itself every BOUNCE_POLL_SECS, here over pop3s://
/// (Dovecot with the test certificate, trusted through SSL_CERT_FILE).
async fn the_worker_polls_the_mailbox_over_tls(backend: Backend) {
    worker_polls_over_tls(backend, Dovecot::tls_url).await;
}

/// The same over imaps://.
async fn the_worker_polls_an_imap_mailbox_over_tls(backend: Backend) {
    worker_polls_over_tls(backend, Dovecot::imaps_url).await;
}

/// And with STARTTLS on the plain ports (`?tls=required`), POP3's STLS and IMAP's STARTTLS.
async fn the_worker_polls_over_starttls(backend: Backend) {
    worker_polls_over_tls(backend, |d| d.starttls_url(false)).await;
    worker_polls_over_tls(backend, |d| d.starttls_url(true)).await;
}

async fn worker_polls_over_tls(backend: Backend, url: fn(&Dovecot) -> String) {
    let Some(mailbox) = Dovecot::start() else { return };
    let sink = SmtpSink::start().await;
    let app = app_with_bounces(backend, &sink, None).await;
    let (ws, _) = sent_campaign(&app).await;
    let token = row(&app, "bo@example.dk").await.token.unwrap();
    mailbox.deliver(&hard_dsn(&token, "bo@example.dk"));

    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .arg("worker")
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", app.settings.base_url.as_str())
        .env("SMTP_URL", sink.url())
        .env("OUTBOX_WORKERS", "1")
        .env("BOUNCE_ADDRESS", BOUNCE_ADDRESS)
        .env("BOUNCE_MAILBOX", url(&mailbox))
        .env("BOUNCE_POLL_SECS", "1")
        .env("RUST_LOG", "warn")
        .env_remove("SSL_CERT_DIR")
        .env(
            "SSL_CERT_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem"),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while row(&app, "bo@example.dk").await.status != "bounced" || !mailbox.messages().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not read the mailbox: {}",
            mailbox.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(suppressed(&app, &ws, "bo@example.dk").await);
    // Dovecot logs each login with how it was secured ("TLS", or "secured" for loopback in the
    // clear); its log also has the readiness probes' unfinished handshakes.
    let logins: Vec<String> = mailbox
        .log()
        .lines()
        .filter(|l| l.contains("Login: user=<"))
        .map(str::to_owned)
        .collect();
    assert!(
        !logins.is_empty() && logins.iter().all(|l| l.contains(", TLS,")),
        "every login was over TLS: {logins:#?}"
    );

    // A report arriving later is picked up by a later poll.
    let anna = row(&app, "anna@example.dk").await.token.unwrap();
    mailbox.deliver(&hard_dsn(&anna, "anna@example.dk"));
    while row(&app, "anna@example.dk").await.status != "bounced" {
        assert!(
            std::time::Instant::now() < deadline,
            "no second poll: {}",
            mailbox.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = worker.id().unwrap().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let status = tokio::time::timeout(Duration::from_secs(15), worker.wait())
        .await
        .expect("the worker stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A webhook receiver subscribed to `events` of the workspace.
async fn subscribed_receiver(app: &TestApp, ws: &TestWorkspace, events: &[&str]) -> Receiver {
    let receiver = Receiver::start(vec![]).await;
    let registered = app
        .post_json(
            &ws.token,
            "/api/v1/webhooks",
            &serde_json::json!({"url": receiver.url(), "events": events}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    receiver
}

/// The Message-IDs the invitations were sent with, by address, without angle brackets.
async fn message_ids(app: &TestApp) -> std::collections::HashMap<String, String> {
    app.with_db(|c| {
        invitations::table
            .select((invitations::email, invitations::message_id))
            .load::<(String, Option<String>)>(c)
            .unwrap()
    })
    .await
    .into_iter()
    .map(|(email, id)| {
        let id = id.expect("sent with a Message-ID");
        (email, id.trim_start_matches('<').trim_end_matches('>').to_owned())
    })
    .collect()
}

async fn suppression_reason(app: &TestApp, email: &'static str) -> Option<String> {
    app.with_db(move |c| {
        suppressions::table
            .filter(suppressions::address.eq(email))
            .select(suppressions::reason)
            .first::<String>(c)
            .optional()
            .unwrap()
    })
    .await
}

const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

/// A Mailgun webhook request as Mailgun signs it: HMAC-SHA256 (hex) of timestamp + token, keyed
/// by the webhook signing key (computed here with Python's `hmac`, not our code).
fn mailgun_request(key: &str, event_data: serde_json::Value) -> Vec<u8> {
    mailgun_request_at(key, chrono::Utc::now().timestamp(), event_data)
}

fn mailgun_request_at(key: &str, timestamp: i64, event_data: serde_json::Value) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let token = format!("{:050}", chrono::Utc::now().timestamp_nanos_opt().unwrap());
    let signature = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), (sys.argv[2] + sys.argv[3]).encode(), hashlib.sha256).hexdigest())",
            key,
            &timestamp,
            &token,
        ])
        .output()
        .unwrap();
    assert!(signature.status.success());
    let signature = String::from_utf8(signature.stdout).unwrap().trim().to_owned();
    serde_json::to_vec(&serde_json::json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }))
    .unwrap()
}

/// A Mailgun event about the message `message_id` to `recipient` (the fields Mailgun documents
/// for its webhooks; `extra` adds or replaces some).
fn mailgun_event(event: &str, recipient: &str, message_id: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut data = serde_json::json!({
        "event": event,
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1_521_233_195.375_624,
        "recipient": recipient,
        "recipient-domain": recipient.split('@').nth(1).unwrap(),
        "envelope": {"sender": "bounce+9d1c3f.4f1c@mg.shop.example", "transport": "smtp", "targets": recipient},
        "message": {"headers": {"message-id": message_id, "to": recipient, "from": "news@shop.example", "subject": "SMS?"}, "size": 5016},
        "flags": {"is-test-mode": false},
        "user-variables": {},
    });
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    data
}

/// The answer of an ESP webhook: what became of its events.
fn outcomes(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn post_raw(app: &TestApp, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Mail relayed through Mailgun: its bounces go to Mailgun, which reports them to
/// `/webhooks/mailgun`. A 5.1.1 bounces and suppresses (once, however often it is sent); a
/// complaint unsubscribes; a temporary failure, another's message or a wrong recipient change
/// nothing; a wrong signature is refused; an invitation not yet recorded as sent gets 503.
async fn mailgun_reports_bounces_and_complaints_through_its_webhook(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.mailgun_webhook_signing_key = Some(MAILGUN_KEY.into());
        a.webhook_allow_private = true;
    })
    .await;
    let (ws, campaign) = sent_campaign(&app).await;
    let ids = message_ids(&app).await;
    let receiver = subscribed_receiver(&app, &ws, &["contact.bounced", "contact.unsubscribed"]).await;
    let hard = mailgun_event(
        "failed",
        "bo@example.dk",
        &ids["bo@example.dk"],
        serde_json::json!({
            "severity": "permanent",
            "reason": "bounce",
            "delivery-status": {"code": 550, "enhanced-code": "5.1.1", "attempt-no": 1,
                "message": "5.1.1 The email account that you tried to reach does not exist.", "description": ""},
        }),
    );

    // Signed with another key, signed an hour ago, unsigned: refused, nothing recorded.
    let (status, _) = post_raw(
        &app,
        "/webhooks/mailgun",
        mailgun_request("key-someone-elses-key", hard.clone()),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    let an_hour_ago = chrono::Utc::now().timestamp() - 3600;
    let (status, _) = post_raw(
        &app,
        "/webhooks/mailgun",
        mailgun_request_at(MAILGUN_KEY, an_hour_ago, hard.clone()),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = post_raw(&app, "/webhooks/mailgun", b"{\"signature\": 1}".to_vec(), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(row(&app, "bo@example.dk").await.status, "sent");
    // SendGrid's webhook is not configured here.
    let (status, _) = post_raw(&app, "/webhooks/sendgrid", b"[]".to_vec(), &[]).await;
    assert_eq!(status, 404);

    let signed = mailgun_request(MAILGUN_KEY, hard.clone());
    let (status, body) = post_raw(&app, "/webhooks/mailgun", signed.clone(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(outcomes(&body)["bounced"], 1, "{body}");
    // Mailgun's retry of the very same request (its answer got lost): answered, nothing twice.
    let (status, body) = post_raw(&app, "/webhooks/mailgun", signed.clone(), &[]).await;
    assert_eq!((status, outcomes(&body)["ignored"].as_i64()), (200, Some(1)), "{body}");
    // Mailgun signs its timestamp and token, not the event: a captured signature must not carry
    // another event. A token is accepted with one body only.
    let mut forged: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    forged["event-data"]["recipient"] = "anna@example.dk".into();
    forged["event-data"]["message"]["headers"]["message-id"] = ids["anna@example.dk"].clone().into();
    let (status, body) = post_raw(&app, "/webhooks/mailgun", serde_json::to_vec(&forged).unwrap(), &[]).await;
    assert_eq!((status, body.as_str()), (403, "token used before"));
    assert_eq!(row(&app, "anna@example.dk").await.status, "sent");
    let bo = row(&app, "bo@example.dk").await;
    assert_eq!(bo.status, "bounced");
    assert!(
        bo.last_error
            .as_deref()
            .unwrap()
            .contains("Mailgun: failed (bounce) 550 5.1.1"),
        "{bo:?}"
    );
    assert!(suppressed(&app, &ws, "bo@example.dk").await);
    // Mailgun retries a webhook it could not deliver: the same event again changes nothing.
    let (status, body) = post_raw(&app, "/webhooks/mailgun", mailgun_request(MAILGUN_KEY, hard), &[]).await;
    assert_eq!((status, outcomes(&body)["ignored"].as_i64()), (200, Some(1)), "{body}");

    // A temporary failure (Mailgun retries it), a bounce naming someone else's Message-ID, and a
    // Message-ID of another system: nothing changes.
    for (event, note) in [
        (
            mailgun_event(
                "failed",
                "ove@example.dk",
                &ids["ove@example.dk"],
                serde_json::json!({"severity": "temporary", "reason": "generic", "delivery-status": {"code": 421, "message": "4.7.0 Try again later"}}),
            ),
            "ignored",
        ),
        (
            mailgun_event(
                "failed",
                "ove@example.dk",
                &ids["anna@example.dk"],
                serde_json::json!({"severity": "permanent", "delivery-status": {"code": 550, "message": "5.1.1 no such user"}}),
            ),
            "unmatched",
        ),
        (
            mailgun_event(
                "failed",
                "ove@example.dk",
                "20240101.abc@mg.other.example",
                serde_json::json!({"severity": "permanent", "delivery-status": {"code": 550, "message": "5.1.1 no such user"}}),
            ),
            "unmatched",
        ),
    ] {
        let (status, body) = post_raw(&app, "/webhooks/mailgun", mailgun_request(MAILGUN_KEY, event), &[]).await;
        assert_eq!((status, outcomes(&body)[note].as_i64()), (200, Some(1)), "{body}");
    }
    assert_eq!(row(&app, "ove@example.dk").await.status, "sent");
    assert_eq!(row(&app, "anna@example.dk").await.status, "sent");
    assert!(!suppressed(&app, &ws, "ove@example.dk").await);

    // A spam complaint: Anna is unsubscribed from email (the invitation stays delivered).
    let complaint = mailgun_event(
        "complained",
        "anna@example.dk",
        &ids["anna@example.dk"],
        serde_json::json!({}),
    );
    let (status, body) = post_raw(&app, "/webhooks/mailgun", mailgun_request(MAILGUN_KEY, complaint), &[]).await;
    assert_eq!(
        (status, outcomes(&body)["unsubscribed"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(row(&app, "anna@example.dk").await.status, "sent");
    assert_eq!(
        suppression_reason(&app, "anna@example.dk").await.as_deref(),
        Some("unsubscribed (spam complaint via Mailgun)")
    );
    let after = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (
            after["delivered"].as_i64(),
            after["bounced"].as_i64(),
            after["unsubscribed"].as_i64()
        ),
        (Some(7), Some(1), Some(1)),
        "{after}"
    );
    assert_eq!(bounce_events(&app).await, 1);
    app.drain_outbox(Duration::from_secs(20)).await;
    let mut got: Vec<serde_json::Value> = receiver
        .received()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    got.sort_by_key(|e| e["type"].as_str().unwrap().to_owned());
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        (
            got[0]["type"].as_str(),
            got[0]["data"]["email"].as_str(),
            got[0]["data"]["hard"].as_bool()
        ),
        (Some("contact.bounced"), Some("bo@example.dk"), Some(true))
    );
    assert_eq!(
        (got[1]["type"].as_str(), got[1]["data"]["email"].as_str()),
        (Some("contact.unsubscribed"), Some("anna@example.dk"))
    );

    // The dashboard's suppression list says why, in the marketer's language.
    let (cookie, _) = app.dashboard_session(&ws.id, "marketer@shop.example").await;
    let english = app.page_in(&cookie, "/app/suppressions", "en").await;
    assert!(
        english.contains("unsubscribed (spam complaint via Mailgun)"),
        "{english}"
    );
    assert!(
        english.contains("hard bounce: Mailgun: failed (bounce) 550 5.1.1"),
        "{english}"
    );
    let danish = app.page_in(&cookie, "/app/suppressions", "da").await;
    assert!(danish.contains("Afmeldt e-mail (spamklage via Mailgun)"), "{danish}");
    assert!(
        danish.contains("Hård afvisning: Mailgun: failed (bounce) 550 5.1.1"),
        "{danish}"
    );
    // And Anna's own page.
    let anna: String = app
        .with_db(|c| {
            optbridge::db::schema::contacts::table
                .filter(optbridge::db::schema::contacts::email_normalized.eq("anna@example.dk"))
                .select(optbridge::db::schema::contacts::id)
                .first(c)
                .unwrap()
        })
        .await;
    let page = app.page_in(&cookie, &format!("/app/contacts/{anna}"), "da").await;
    assert!(page.contains("Afmeldt e-mail (spamklage via Mailgun)"), "{page}");

    // Reported before the sender recorded the send (the relay accepted it, the commit is under
    // way): 503, so that Mailgun sends it again; nothing is recorded yet.
    app.with_db(|c| {
        diesel::update(invitations::table.filter(invitations::email.eq("lars@example.no")))
            .set((
                invitations::status.eq("queued"),
                invitations::message_id.eq(None::<String>),
            ))
            .execute(c)
            .unwrap()
    })
    .await;
    let early = mailgun_event(
        "failed",
        "lars@example.no",
        &ids["lars@example.no"],
        serde_json::json!({"severity": "permanent", "delivery-status": {"code": 550, "message": "5.1.1 no such user"}}),
    );
    let early = mailgun_request(MAILGUN_KEY, early);
    let (status, body) = post_raw(&app, "/webhooks/mailgun", early.clone(), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(row(&app, "lars@example.no").await.status, "queued");
    // A 503 leaves the token taken: its signature carries no other event either.
    let mut forged: serde_json::Value = serde_json::from_slice(&early).unwrap();
    forged["event-data"]["recipient"] = "anna@example.dk".into();
    forged["event-data"]["message"]["headers"]["message-id"] = ids["anna@example.dk"].clone().into();
    let (status, body) = post_raw(&app, "/webhooks/mailgun", serde_json::to_vec(&forged).unwrap(), &[]).await;
    assert_eq!((status, body.as_str()), (403, "token used before"));
    assert_eq!(
        row(&app, "anna@example.dk").await.status,
        "sent",
        "the forged bounce is not recorded"
    );
    // Mailgun's retry of it, once the send is recorded, is taken.
    app.with_db(|c| {
        diesel::update(invitations::table.filter(invitations::email.eq("lars@example.no")))
            .set(invitations::status.eq("sent"))
            .execute(c)
            .unwrap()
    })
    .await;
    let (status, body) = post_raw(&app, "/webhooks/mailgun", early, &[]).await;
    assert_eq!((status, outcomes(&body)["bounced"].as_i64()), (200, Some(1)), "{body}");
    assert_eq!(row(&app, "lars@example.no").await.status, "bounced");

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("optbridge_esp_events_total{esp=\"mailgun\",outcome=\"bounced\"}"),
        "{metrics}"
    );
}

/// SendGrid's Signed Event Webhook: a batch of events signed with ECDSA P-256 over timestamp +
/// body. A bounce with 5.1.1 bounces and suppresses, a `blocked` one bounces without
/// suppressing, a spam report unsubscribes, the rest change nothing; a changed body, a missing
/// signature or a body that is not a batch are refused.
async fn sendgrid_reports_bounces_and_complaints_through_its_signed_webhook(backend: Backend) {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let public = b64.encode(pair.public_key().as_der().unwrap().as_ref());
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.sendgrid_webhook_verification_key = Some(public);
    })
    .await;
    let (ws, campaign) = sent_campaign(&app).await;
    let ids = message_ids(&app).await;
    let sign = |timestamp: &str, body: &[u8]| {
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        b64.encode(
            pair.sign(&aws_lc_rs::rand::SystemRandom::new(), &signed)
                .unwrap()
                .as_ref(),
        )
    };
    let event = |event: &str, email: &str, extra: serde_json::Value| {
        let mut e = serde_json::json!({
            "email": email, "timestamp": 1_513_299_569, "smtp-id": format!("<{}>", ids[email]),
            "event": event, "category": "cat facts", "sg_event_id": "sg_event_id", "sg_message_id": "sg_message_id",
        });
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    let batch = serde_json::to_vec(&serde_json::json!([
        event("processed", "anna@example.dk", serde_json::json!({})),
        event("delivered", "anna@example.dk", serde_json::json!({"response": "250 OK"})),
        event("bounce", "bo@example.dk", serde_json::json!({"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 The email account that you tried to reach does not exist.", "bounce_classification": "Invalid Address"})),
        event("bounce", "ove@example.dk", serde_json::json!({"type": "blocked", "status": "5.7.1", "reason": "550 5.7.1 Message rejected due to policy", "bounce_classification": "Reputation"})),
        event("deferred", "ingrid@example.no", serde_json::json!({"response": "421 4.7.0 try later", "attempt": "1"})),
        event("spamreport", "lars@example.no", serde_json::json!({})),
    ]))
    .unwrap();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = sign(&timestamp, &batch);
    let headers = |signature: &str, timestamp: &str| -> Vec<(&'static str, String)> {
        vec![
            ("X-Twilio-Email-Event-Webhook-Signature", signature.to_owned()),
            ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp.to_owned()),
        ]
    };
    let post = |body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post_raw(app, "/webhooks/sendgrid", body, &headers).await
        }
    };

    // A changed body, another timestamp, no signature: refused, nothing recorded.
    let mut changed = batch.clone();
    let at = changed.iter().position(|&b| b == b'5').unwrap();
    changed[at] = b'4';
    assert_eq!(post(changed, headers(&signature, &timestamp)).await.0, 403);
    assert_eq!(post(batch.clone(), headers(&signature, "1588788367")).await.0, 403);
    assert_eq!(post(batch.clone(), vec![]).await.0, 403);
    assert_eq!(row(&app, "bo@example.dk").await.status, "sent");
    // Signed, but not a batch of events.
    let object = br#"{"event":"bounce"}"#.to_vec();
    let (status, _) = post(object.clone(), headers(&sign(&timestamp, &object), &timestamp)).await;
    assert_eq!(status, 400);
    // Mailgun's webhook is not configured here.
    assert_eq!(post_raw(&app, "/webhooks/mailgun", b"{}".to_vec(), &[]).await.0, 404);

    let (status, body) = post(batch.clone(), headers(&signature, &timestamp)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        serde_json::json!({"bounced": 2, "unsubscribed": 1, "ignored": 3, "unmatched": 0, "not_yet_sent": 0})
    );
    let bo = row(&app, "bo@example.dk").await;
    assert_eq!(bo.status, "bounced");
    assert!(
        bo.last_error
            .as_deref()
            .unwrap()
            .starts_with("SendGrid: bounce (Invalid Address) 5.1.1 550"),
        "{bo:?}"
    );
    assert!(suppressed(&app, &ws, "bo@example.dk").await);
    let ove = row(&app, "ove@example.dk").await;
    assert_eq!(ove.status, "bounced");
    assert!(
        !suppressed(&app, &ws, "ove@example.dk").await,
        "a policy block does not suppress"
    );
    assert_eq!(
        suppression_reason(&app, "lars@example.no").await.as_deref(),
        Some("unsubscribed (spam complaint via SendGrid)")
    );
    for email in ["anna@example.dk", "ingrid@example.no", "lars@example.no"] {
        assert_eq!(row(&app, email).await.status, "sent", "{email}");
    }
    // SendGrid sends a batch again when the answer did not reach it: nothing counts twice, and
    // the answer says so (the complaint too, as the mailbox's poll does).
    let (status, body) = post(batch, headers(&signature, &timestamp)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        serde_json::json!({"bounced": 0, "unsubscribed": 0, "ignored": 6, "unmatched": 0, "not_yet_sent": 0})
    );
    let after = funnel(&app, &ws, &campaign).await;
    assert_eq!(
        (
            after["delivered"].as_i64(),
            after["bounced"].as_i64(),
            after["unsubscribed"].as_i64()
        ),
        (Some(6), Some(2), Some(1)),
        "{after}"
    );
    assert_eq!(bounce_events(&app).await, 2);

    // A full batch (SendGrid posts up to 768 KB at once) is more than actix's default body limit.
    let processed = event(
        "processed",
        "anna@example.dk",
        serde_json::json!({"category": "x".repeat(400)}),
    );
    let big = serde_json::to_vec(&vec![processed; 2_000]).unwrap();
    assert!(big.len() > 900_000, "{}", big.len());
    let (status, body) = post(big.clone(), headers(&sign(&timestamp, &big), &timestamp)).await;
    assert_eq!(
        (status, outcomes(&body)["ignored"].as_i64()),
        (200, Some(2_000)),
        "{body}"
    );
}

/// A POP3 maildrop that refuses DELE (read-only) and holds what `message` holds, for any number
/// of sessions. Returns its port and the commands it received.
async fn read_only_maildrop(
    message: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let commands = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (message, seen) = (message.clone(), seen.clone());
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                socket.get_mut().write_all(b"+OK ready\r\n").await.unwrap();
                loop {
                    let mut line = String::new();
                    if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_owned();
                    seen.lock().unwrap().push(line.clone());
                    let held = message.lock().unwrap().clone();
                    let answer = match (line.as_str(), held) {
                        ("USER u" | "PASS p", _) => "+OK\r\n".to_owned(),
                        ("LIST", Some(m)) => format!("+OK\r\n1 {}\r\n.\r\n", m.len()),
                        ("UIDL", Some(_)) => "+OK\r\n1 report-1\r\n.\r\n".to_owned(),
                        ("LIST" | "UIDL", None) => "+OK\r\n.\r\n".to_owned(),
                        ("RETR 1", Some(m)) => {
                            let stuffed = String::from_utf8(m).unwrap().replace("\r\n.", "\r\n..");
                            format!("+OK\r\n{stuffed}.\r\n")
                        }
                        ("DELE 1", Some(_)) => "-ERR [SYS/PERM] read-only maildrop\r\n".to_owned(),
                        ("QUIT", _) => "+OK bye\r\n".to_owned(),
                        _ => "-ERR no such message\r\n".to_owned(),
                    };
                    socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
                    if line == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    (port, commands)
}

/// A mailbox that refuses to delete a report (read-only): the bounce is recorded once, and the
/// poller neither downloads nor counts the report again while it stays there. Once it is gone
/// the poller forgets it: the same report back is read again (and changes nothing).
async fn a_report_the_mailbox_will_not_delete_is_read_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    let message = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (port, commands) = read_only_maildrop(message.clone()).await;
    let app = app_with_bounces(backend, &sink, Some(format!("pop3://u:p@127.0.0.1:{port}"))).await;
    let (ws, _campaign) = sent_campaign(&app).await;
    let token = row(&app, "bo@example.dk").await.token.unwrap();
    *message.lock().unwrap() = Some(hard_dsn(&token, "bo@example.dk"));
    let count = |command: &str| commands.lock().unwrap().iter().filter(|c| *c == command).count();

    let poller = optbridge::startup::bounce_poller(&app.settings, &app.db).expect("BOUNCE_MAILBOX is set");
    let first = poller.poll_once().await.expect("poll");
    assert_eq!((first.bounced, first.ignored), (1, 0), "{first:?}");
    assert_eq!(row(&app, "bo@example.dk").await.status, "bounced");
    assert!(suppressed(&app, &ws, "bo@example.dk").await);
    assert_eq!((count("RETR 1"), count("DELE 1")), (1, 1));

    for _ in 0..2 {
        let again = poller.poll_once().await.expect("poll");
        assert_eq!(again, PollSummary::default(), "not counted again");
    }
    assert_eq!(
        (count("RETR 1"), count("DELE 1"), count("QUIT")),
        (1, 1, 3),
        "not read again"
    );

    // Removed by a person, then back: read again, and nothing changes twice.
    *message.lock().unwrap() = None;
    assert_eq!(poller.poll_once().await.expect("poll"), PollSummary::default());
    *message.lock().unwrap() = Some(hard_dsn(&token, "bo@example.dk"));
    let back = poller.poll_once().await.expect("poll");
    assert_eq!((back.bounced, back.ignored), (0, 1), "{back:?}");
    assert_eq!(count("RETR 1"), 2);
}

both_backends!(
    mailgun_reports_bounces_and_complaints_through_its_webhook,
    sendgrid_reports_bounces_and_complaints_through_its_signed_webhook,
    each_invitation_has_its_own_verp_envelope_sender,
    a_hard_bounce_report_bounces_suppresses_and_is_deleted,
    soft_bounce_reports_bounce_without_suppressing,
    unrecognised_and_malformed_messages_are_left_and_counted,
    the_worker_polls_the_mailbox_over_tls,
    the_worker_polls_an_imap_mailbox_over_tls,
    the_worker_polls_over_starttls,
    an_imap_folder_is_read_like_a_pop3_maildrop,
    a_feedback_loop_complaint_in_the_mailbox_unsubscribes,
    a_report_the_mailbox_will_not_delete_is_read_once,
);
