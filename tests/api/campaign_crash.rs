//! Pause, resume and cancel across a crash (issue 16, item 7): worker processes killed with
//! SIGKILL while a campaign is paused, and after it was cancelled mid-send. Counted at the SMTP
//! sink: every recipient gets the invitation exactly once, and after a cancel nobody more.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestWorkspace, both_backends, json, spawn_app_with};
use crate::smtp_sink::{Fault, SmtpSink};

const RECIPIENTS: usize = 240;

/// A worker process, SIGKILLed when dropped (also when the test fails).
struct Worker(Child);

impl Worker {
    fn spawn(app: &TestApp, sink: &SmtpSink) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_optbridge"))
            .arg("worker")
            .env("DATABASE_URL", &app.database.url)
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("SMTP_URL", sink.url())
            .env("OUTBOX_WORKERS", "2")
            .env("OUTBOX_BATCH", "10")
            .env("INVITATION_BATCH", "10")
            .env("OUTBOX_LEASE_SECS", "2")
            .env("OUTBOX_POLL_MS", "50")
            .env("SMTP_CONCURRENCY", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start optbridge worker");
        Self(child)
    }

    /// std's kill is SIGKILL on Unix: no cleanup runs.
    fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A campaign to `RECIPIENTS` contacts whose deliveries are slowed a little (so a pause lands
/// mid-send), sent; the app itself runs no workers.
async fn sending_campaign(backend: Backend, sink: &SmtpSink) -> (TestApp, TestWorkspace, String) {
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await;
    let ws = app.create_workspace("Crash").await;
    let mut csv = String::from("email,locale\n");
    for i in 0..RECIPIENTS {
        let address = format!("r{i:04}@example.dk");
        sink.add_fault(
            &address,
            Fault::Stall {
                duration: Duration::from_millis(25),
                times: u32::MAX,
            },
        );
        csv.push_str(&format!("{address},da\n"));
    }
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Crash", "consent_text_id": text, "subject": "S", "intro": "I"}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    (app, ws, campaign)
}

async fn act(app: &TestApp, ws: &TestWorkspace, campaign: &str, what: &str) -> String {
    let res = app
        .post_json(&ws.token, &format!("/api/v1/campaigns/{campaign}/{what}"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "{what}");
    json(res).await["status"].as_str().unwrap().to_owned()
}

async fn wait_for_accepted(sink: &SmtpSink, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.messages().len() < at_least {
        assert!(Instant::now() < deadline, "the workers made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn sent_in_db(app: &TestApp, status: &'static str) -> usize {
    app.with_db(move |c| {
        invitations::table
            .filter(invitations::status.eq(status))
            .count()
            .get_result::<i64>(c)
            .unwrap() as usize
    })
    .await
}

/// Waits until the messages in flight are done: the sink's count stands still and every message
/// it accepted is recorded as sent. Returns that count.
async fn settled(app: &TestApp, sink: &SmtpSink) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = sink.messages().len();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = sink.messages().len();
        if before == after && sent_in_db(app, "sent").await == after {
            return after;
        }
        assert!(Instant::now() < deadline, "the sends never settled");
    }
}

fn per_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in sink.messages() {
        *counts.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    counts
}

async fn drain(app: &TestApp, sink: &SmtpSink) {
    let mut drain = tokio::process::Command::new(env!("CARGO_BIN_EXE_optbridge"));
    drain
        .args(["worker", "--drain"])
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", app.settings.base_url.as_str())
        .env("SMTP_URL", sink.url())
        .env("RUST_LOG", "warn");
    assert!(drain.status().await.expect("run the drain").success());
}

async fn killed_while_paused_resumes_exactly_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    let (app, ws, campaign) = sending_campaign(backend, &sink).await;
    let worker = Worker::spawn(&app, &sink);
    wait_for_accepted(&sink, RECIPIENTS / 5).await;
    assert_eq!(act(&app, &ws, &campaign, "pause").await, "paused");
    let before = settled(&app, &sink).await;
    assert!(before < RECIPIENTS, "paused mid-send ({before} of {RECIPIENTS})");
    worker.kill();

    // A fresh worker after the dead one's leases expired sends nothing while paused.
    let worker = Worker::spawn(&app, &sink);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sink.messages().len(), before, "nothing leaves a paused campaign");
    worker.kill();

    assert_eq!(act(&app, &ws, &campaign, "resume").await, "sending");
    drain(&app, &sink).await;
    assert_eq!(app.outbox_len().await, 0);
    let counts = per_recipient(&sink);
    assert_eq!(counts.len(), RECIPIENTS, "every recipient got it");
    assert!(counts.values().all(|n| *n == 1), "exactly once");
    assert_eq!(sent_in_db(&app, "sent").await, RECIPIENTS);
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    assert_eq!(shown["status"], "sent");
    eprintln!("pause/SIGKILL/resume ({backend:?}): {before} sent before the pause, {RECIPIENTS} once each in the end");
}

async fn cancelled_mid_send_and_killed_sends_no_more(backend: Backend) {
    let sink = SmtpSink::start().await;
    let (app, ws, campaign) = sending_campaign(backend, &sink).await;
    let worker = Worker::spawn(&app, &sink);
    wait_for_accepted(&sink, RECIPIENTS / 4).await;
    assert_eq!(act(&app, &ws, &campaign, "cancel").await, "cancelled");
    let before = settled(&app, &sink).await;
    assert!(before < RECIPIENTS, "cancelled mid-send ({before} of {RECIPIENTS})");
    worker.kill();

    drain(&app, &sink).await;
    assert_eq!(app.outbox_len().await, 0);
    assert_eq!(sink.messages().len(), before, "no invitation left after the cancel");
    assert!(per_recipient(&sink).values().all(|n| *n == 1), "none twice");
    assert_eq!(sent_in_db(&app, "sent").await, before);
    assert_eq!(
        sent_in_db(&app, "skipped").await,
        RECIPIENTS - before,
        "the rest are skipped"
    );
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    assert_eq!(shown["status"], "cancelled");
    eprintln!(
        "cancel/SIGKILL ({backend:?}): {before} sent before the cancel, {} never",
        RECIPIENTS - before
    );
}

both_backends!(
    killed_while_paused_resumes_exactly_once,
    cancelled_mid_send_and_killed_sends_no_more,
);
