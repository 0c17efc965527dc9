//! Deploying safely: each test does what an attacker or a careless operator did to a running
//! optbridge, and says what must hold instead.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use optbridge::config::Settings;
use optbridge::startup::{Application, StartupError};

use crate::helpers::{Backend, TestDatabase, base_args, both_backends, spawn_app_with};

/// `optbridge serve` with `env`, given `secs` to exit; `None` when it was still running then
/// (it was killed).
fn serve_exits_within(env: &[(&str, &str)], secs: u64) -> Option<(bool, String)> {
    let database = TestDatabase::new(Backend::Sqlite);
    let mut child = Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .arg("serve")
        .env("DATABASE_URL", &database.url)
        .env_remove("SMTP_URL")
        .env_remove("SMS_PROVIDER")
        .env_remove("DEV_OUTBOXES")
        .env_remove("BASE_URL")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run optbridge");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return Some((status.success(), stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Finding: `serve` on 0.0.0.0 without SMTP_URL / SMS_PROVIDER published every invitation link
/// and SMS code at /dev/mail and /dev/sms. It must refuse to start instead.
#[test]
fn serve_refuses_dev_outboxes_on_a_public_address() {
    for env in [
        &[("BIND", "0.0.0.0:0")][..],
        &[("BIND", "127.0.0.1:0"), ("BASE_URL", "https://optin.shop.example")][..],
        &[("BIND", "127.0.0.1:0"), ("BASE_URL", "http://optin.shop.example")][..],
    ] {
        let (ok, stderr) = serve_exits_within(env, 30).unwrap_or_else(|| panic!("serve kept running with {env:?}"));
        assert!(!ok, "{env:?}");
        assert!(stderr.contains("DEV_OUTBOXES=true"), "{env:?}: {stderr}");
        assert!(stderr.contains("would be public"), "{env:?}: {stderr}");
    }
}

async fn build(configure: impl FnOnce(&mut optbridge::config::ConfigArgs)) -> Result<Application, StartupError> {
    let database = TestDatabase::new(Backend::Sqlite);
    let mut args = base_args(&database.url);
    configure(&mut args);
    let settings = Settings::from_args(&args).expect("valid settings");
    let built = Application::build(settings, false).await;
    drop(database);
    built
}

#[tokio::test]
async fn dev_outboxes_go_public_only_when_the_operator_says_so() {
    let refused = build(|a| a.bind = "0.0.0.0:0".into()).await;
    assert!(
        matches!(refused, Err(StartupError::Config(ref m)) if m.contains("/dev/mail")),
        "{:?}",
        refused.err()
    );
    // Explicitly allowed: it starts (and warns).
    let allowed = build(|a| {
        a.bind = "0.0.0.0:0".into();
        a.dev_outboxes = true;
    })
    .await;
    assert!(allowed.is_ok(), "{:?}", allowed.err());
    // Real providers: nothing to guard.
    let real = build(|a| {
        a.bind = "0.0.0.0:0".into();
        a.smtp_url = Some("smtp://127.0.0.1:2525".into());
        a.sms_provider = Some("twilio".into());
        a.twilio_account_sid = Some("AC00000000000000000000000000000000".into());
        a.twilio_auth_token = Some("token".into());
        a.twilio_from = Some("+4512345678".into());
    })
    .await;
    assert!(real.is_ok(), "{:?}", real.err());
    // The newcomer's loopback set-up is unchanged.
    assert!(build(|_| {}).await.is_ok());
}

/// Finding: `/metrics` was public and counts across workspaces.
async fn metrics_need_the_token_when_one_is_set(backend: Backend) {
    let app = spawn_app_with(backend, |a| {
        a.metrics_token = Some("a-long-random-metrics-token".into())
    })
    .await;
    let scrape = |token: Option<&'static str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let res = scrape(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
    assert!(
        !res.text().await.unwrap().contains("optbridge_"),
        "no figures without the token"
    );
    assert_eq!(scrape(Some("wrong")).await.unwrap().status(), 401);
    let res = scrape(Some("a-long-random-metrics-token")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("optbridge_outbox_jobs"));
}

both_backends!(metrics_need_the_token_when_one_is_set);
