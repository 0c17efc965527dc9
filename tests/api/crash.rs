//! A worker process killed with SIGKILL mid-send loses nothing; duplicates stay within the
//! leases it held.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, both_backends, spawn_app};
use crate::smtp_sink::{Fault, SmtpSink};

const RECIPIENTS: usize = 600;
const WORKERS: usize = 2;
const BATCH: usize = 10;
const KILLS: usize = 3;

/// A worker process that is SIGKILLed when dropped (also when the test fails).
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(app: &TestApp, sink: &SmtpSink, extra: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_optbridge"))
            .arg("worker")
            .args(extra)
            .env("DATABASE_URL", &app.database.url)
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("SMTP_URL", sink.url())
            .env("OUTBOX_WORKERS", WORKERS.to_string())
            .env("OUTBOX_BATCH", BATCH.to_string())
            .env("OUTBOX_LEASE_SECS", "2")
            .env("OUTBOX_POLL_MS", "50")
            .env("SMTP_CONCURRENCY", "4")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start optbridge worker");
        Self(child)
    }

    fn kill(mut self) {
        self.0.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix: no cleanup runs
        self.0.wait().expect("reap");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn killed_workers_lose_nothing(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Crash").await;
    let mut csv = String::from("email,locale\n");
    for i in 0..RECIPIENTS {
        let address = format!("r{i:04}@example.dk");
        // Slow every tenth delivery a little so that kills land in the middle of batches.
        if i % 10 == 0 {
            sink.add_fault(
                &address,
                Fault::Stall {
                    duration: Duration::from_millis(60),
                    times: u32::MAX,
                },
            );
        }
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

    for k in 1..=KILLS {
        let worker = WorkerProcess::spawn(&app, &sink, &[]);
        sink.wait_for_messages(k * RECIPIENTS / (KILLS + 1), Duration::from_secs(60))
            .await;
        worker.kill();
    }
    assert!(sink.messages().len() < RECIPIENTS, "the kills happened before the end");

    // Restart after the dead workers' leases expired: it finishes everything.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Async: the SMTP sink runs on this test's runtime and must keep answering meanwhile.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .args(["worker", "--drain"])
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", app.settings.base_url.as_str())
        .env("SMTP_URL", sink.url())
        .env("RUST_LOG", "warn")
        .status()
        .await
        .expect("run the drain");
    assert!(status.success());
    app.drain_outbox(Duration::from_secs(30)).await;
    assert_eq!(app.outbox_len().await, 0, "the outbox ends empty");

    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), RECIPIENTS, "every recipient got the invitation");
    let duplicates: usize = per_recipient.values().map(|n| n - 1).sum();
    let bound = KILLS * WORKERS * BATCH;
    assert!(duplicates <= bound, "{duplicates} duplicates, bound {bound}");
    eprintln!(
        "crash test ({backend:?}): {RECIPIENTS} delivered, {duplicates} duplicates after {KILLS} kills (bound {bound})"
    );

    let sent: i64 = app
        .with_db(|c| {
            use diesel::prelude::*;
            use optbridge::db::schema::invitations;
            invitations::table
                .filter(invitations::status.eq("sent"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(sent, RECIPIENTS as i64);
}

both_backends!(killed_workers_lose_nothing);
