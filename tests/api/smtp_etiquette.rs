//! SMTP manners (issue 18): sessions end with QUIT (RFC 5321 §3.8) when `worker --drain` is done
//! and when a process stops on SIGTERM; EHLO names a fully-qualified domain (§4.1.1.1).

use std::time::Duration;

use crate::helpers::{Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use crate::smtp_sink::SmtpSink;

/// The real binary against the app's database and the sink.
fn optbridge(app: &TestApp, sink: &SmtpSink, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_optbridge"));
    command
        .args(args)
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", app.settings.base_url.as_str())
        .env("SMTP_URL", sink.url())
        .env("BIND", "127.0.0.1:0")
        .env("OUTBOX_POLL_MS", "50")
        .env("RUST_LOG", "warn")
        .env_remove("SMS_PROVIDER")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn queued_campaign(app: &TestApp) {
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
}

/// Every session the sink saw, once everything settled, ended with a QUIT.
async fn every_session_said_quit(sink: &SmtpSink, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sink.quits() < sink.connections() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sink.connections() > 0, "{what}: mail was sent");
    assert_eq!(sink.quits(), sink.connections(), "{what}: a QUIT for every session");
}

async fn a_drained_worker_says_quit(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_app(backend).await;
    queued_campaign(&app).await;
    let status = optbridge(&app, &sink, &["worker", "--drain"])
        .status()
        .await
        .expect("run the drain");
    assert!(status.success());
    assert_eq!(sink.messages().len(), 8, "the campaign went out");
    every_session_said_quit(&sink, "worker --drain").await;
}

async fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill -TERM");
    assert!(status.success());
}

/// `serve` (HTTP and workers) and `worker` stopped by SIGTERM after sending.
async fn a_process_stopped_by_sigterm_says_quit(backend: Backend) {
    for args in [&["serve"][..], &["worker"][..]] {
        let sink = SmtpSink::start().await;
        let app = spawn_app(backend).await;
        queued_campaign(&app).await;
        let mut process = optbridge(&app, &sink, args).spawn().expect("start");
        sink.wait_for_messages(8, Duration::from_secs(30)).await;
        // The sessions wait in the pool now; the outbox is empty.
        tokio::time::sleep(Duration::from_millis(300)).await;
        sigterm(&process).await;
        let status = tokio::time::timeout(Duration::from_secs(20), process.wait())
            .await
            .expect("stops within 20 s")
            .expect("exit status");
        assert!(status.success(), "{args:?}: {status}");
        every_session_said_quit(&sink, &format!("{args:?} after SIGTERM")).await;
    }
}

/// EHLO gives BASE_URL's host when it is a domain name; else the sender's domain; the
/// `SMTP_URL` path overrides both.
async fn ehlo_names_a_fully_qualified_domain(backend: Backend) {
    for (base_url, path, expected) in [
        (Some("https://sms.nordlys-sko.dk"), "", "sms.nordlys-sko.dk"),
        // The test app's own address: an IP, so the From address's domain.
        (None, "", "shop.example"),
        (
            Some("https://sms.nordlys-sko.dk"),
            "/mta.nordlys-sko.dk",
            "mta.nordlys-sko.dk",
        ),
    ] {
        let sink = SmtpSink::start().await;
        let url = format!("{}{path}", sink.url());
        let app = spawn_app_with(backend, move |a| {
            a.smtp_url = Some(url);
            if let Some(base) = base_url {
                a.base_url = Some(base.to_owned());
                a.dev_outboxes = true;
            }
        })
        .await;
        queued_campaign(&app).await;
        app.drain_outbox(Duration::from_secs(20)).await;
        let hellos = sink.hellos();
        assert!(!hellos.is_empty());
        assert!(
            hellos.iter().all(|h| h == expected),
            "BASE_URL {base_url:?}, path {path:?}: EHLO {hellos:?}, expected {expected}"
        );
    }
}

both_backends!(
    a_drained_worker_says_quit,
    a_process_stopped_by_sigterm_says_quit,
    ehlo_names_a_fully_qualified_domain
);
