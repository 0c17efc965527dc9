//! The test harness: `spawn_app(backend)` starts the real application on port 0 against a fresh
//! database (a temporary SQLite file, or a new PostgreSQL database dropped afterwards).

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use optbridge::config::{ConfigArgs, Settings};
use optbridge::db::{Db, DbConn};
use optbridge::startup::Application;
use optbridge::workspace::{self, NewWorkspace};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each named `async fn name(backend: Backend)`.
/// PostgreSQL tests skip (with a note) when no server is reachable, unless `CI=true` or
/// `OPTBRIDGE_REQUIRE_POSTGRES=1`, where an unreachable server fails them.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if !$crate::helpers::postgres_available() {
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use both_backends;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("OPTBRIDGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Whether PostgreSQL tests can run. Panics when they are required but the server is down.
pub fn postgres_available() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = AVAILABLE.get_or_init(|| {
        diesel::PgConnection::establish(&admin_url())
            .map(drop)
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => true,
        Err(e) if postgres_required() => {
            panic!(
                "PostgreSQL is required for this run (CI=true) but {} is not reachable: {e}",
                admin_url()
            )
        }
        Err(e) => {
            static WARNED: OnceLock<()> = OnceLock::new();
            WARNED.get_or_init(|| eprintln!("note: skipping PostgreSQL tests, {} is not reachable: {e}", admin_url()));
            false
        }
    }
}

/// A fresh, empty database; removed when dropped.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
    dir: Option<PathBuf>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("optbridge-test-{id}"));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                Self {
                    url: format!("sqlite://{}", dir.join("test.db").display()),
                    pg_name: None,
                    dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("optbridge_test_{id}");
                let mut admin = diesel::PgConnection::establish(&admin_url()).expect("connect to PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url()).expect("admin url");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    pg_name: Some(name),
                    dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut admin) = diesel::PgConnection::establish(&admin_url())
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn base_args(database_url: &str) -> ConfigArgs {
    ConfigArgs {
        database_url: database_url.to_owned(),
        database_pool_size: Some(4),
        bind: "127.0.0.1:0".into(),
        import_max_bytes: 10 * 1024 * 1024,
        http_workers: Some(1),
        // Tests drive the outbox themselves; retries come quickly.
        outbox_workers: 0,
        outbox_retry_base_ms: 20,
        outbox_retry_max_ms: 200,
        smtp_timeout_secs: 5,
        ..ConfigArgs::default()
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Db,
    /// The settings the app runs with (BASE_URL names the bound port).
    pub settings: Settings,
    /// Drives the outbox step by step, as a worker would (the app runs no background workers).
    pub worker: std::sync::Arc<optbridge::outbox::worker::Worker>,
    /// Signs links as the invitations carry them.
    pub keyring: std::sync::Arc<optbridge::links::Keyring>,
    /// Kept for the test's duration; dropping it removes the database.
    pub database: TestDatabase,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the application with settings adjusted by `configure`.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ConfigArgs)) -> TestApp {
    init_test_logging();
    let database = TestDatabase::new(backend);
    let mut args = base_args(&database.url);
    configure(&mut args);
    let mut settings = Settings::from_args(&args).expect("valid test settings");
    let app = Application::build(settings.clone(), false)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    settings.base_url = app.base_url().clone();
    tokio::spawn(app.run_until_stopped());
    let db = optbridge::startup::open_db(&settings).await.expect("test pool");
    let services = optbridge::startup::services(&settings, &db)
        .await
        .expect("mail and SMS transports, link keys");
    let worker = optbridge::startup::worker(&settings, &db, &services, Default::default());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        db,
        settings,
        worker,
        keyring: services.keyring,
        database,
    }
}

fn init_test_logging() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            optbridge::telemetry::init(&optbridge::config::LogFormat::Pretty);
        }
    });
}

/// A workspace and its API token.
pub struct TestWorkspace {
    pub id: String,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Runs blocking database code against the app's database.
    pub async fn with_db<T: Send + 'static>(&self, f: impl FnOnce(&mut DbConn) -> T + Send + 'static) -> T {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("test connection");
            f(&mut conn)
        })
        .await
        .expect("db task")
    }

    pub async fn create_workspace(&self, name: &str) -> TestWorkspace {
        let name = name.to_owned();
        self.with_db(move |conn| {
            let new = NewWorkspace::parse(&name, "Shop <news@shop.example>", "DK", "da", Some("DK,NO,SE"))
                .expect("valid workspace");
            let (ws, token) = workspace::create(conn, new).expect("workspace created");
            TestWorkspace {
                id: ws.id,
                token: token.0,
            }
        })
        .await
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_csv(&self, token: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/contacts/import"))
            .bearer_auth(token)
            .header("Content-Type", "text/csv")
            .body(body)
            .send()
            .await
            .expect("request")
    }
}

/// Decodes a JSON response body, failing the test with the body text when it is not JSON.
pub async fn json(res: reqwest::Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs the `optbridge` binary with the given database and arguments.
pub fn run_cli(database_url: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("SMTP_URL")
        .env_remove("SMS_PROVIDER")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run optbridge binary")
}

pub fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {text}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

/// The messy sample shipped in `demo/`: BOM, `;`, CRLF, a duplicate, an invalid email, a
/// multi-line quoted field, a bad date, a short row, an unknown locale, a non-UTF-8 byte.
pub fn messy_csv() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/messy-contacts.csv")).expect("messy sample")
}

/// The line numbers and errors the messy sample must produce, in order.
pub const MESSY_REJECTED_LINES: [u64; 7] = [3, 4, 5, 7, 8, 9, 11];

pub const DANISH_CONSENT: &str = "Ja tak, Skobutikken må sende mig nyheder og tilbud på SMS, højst 4 gange om måneden. \
                                  Jeg kan altid trække mit samtykke tilbage ved at svare STOP.";

impl TestApp {
    /// Imports contacts; panics unless every row was accepted.
    pub async fn import(&self, token: &str, csv: &str) {
        let body = json(self.post_csv(token, csv.to_owned()).await).await;
        assert_eq!(body["rejected"], serde_json::json!([]), "{body}");
    }

    /// A valid consent text for `locale`; returns its id.
    pub async fn consent_text(&self, token: &str, locale: &str) -> String {
        let body = match locale {
            "da" => DANISH_CONSENT.to_owned(),
            _ => {
                "Yes, Skobutikken may text me news and offers by SMS, at most 4 times a month. Reply STOP to withdraw."
                    .to_owned()
            }
        };
        let res = self
            .post_json(
                token,
                "/api/v1/consent-texts",
                &serde_json::json!({
                    "locale": locale, "company_name": "Skobutikken", "body": body,
                    "categories": ["Nyheder", "Tilbud"], "privacy_url": "https://skobutikken.example/privatliv"
                }),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        json(res).await["id"].as_str().expect("id").to_owned()
    }

    /// Creates a campaign from a JSON body; returns its id.
    pub async fn campaign(&self, token: &str, body: &Value) -> String {
        let res = self.post_json(token, "/api/v1/campaigns", body).await;
        let status = res.status();
        let body = json(res).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn send_campaign(&self, token: &str, campaign_id: &str) {
        let res = self
            .post_json(
                token,
                &format!("/api/v1/campaigns/{campaign_id}/send"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }

    /// Runs everything in the outbox that is due now.
    pub async fn dispatch_all(&self) {
        optbridge::outbox::worker::dispatch_all_pending(&self.worker)
            .await
            .expect("dispatch");
    }

    /// Runs the outbox, retries included, until it is empty; panics after `limit`.
    pub async fn drain_outbox(&self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            self.dispatch_all().await;
            if self.outbox_len().await == 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "outbox not empty after {limit:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn outbox_len(&self) -> i64 {
        self.with_db(|c| {
            use diesel::prelude::*;
            optbridge::db::schema::outbox_jobs::table
                .count()
                .get_result::<i64>(c)
                .expect("count")
        })
        .await
    }

    /// Polls `check` until it returns true (the tracking buffer writes asynchronously).
    pub async fn eventually(&self, what: &str, check: impl Fn(&mut DbConn) -> bool + Send + Sync + Clone + 'static) {
        for _ in 0..200 {
            let c = check.clone();
            if self.with_db(move |conn| c(conn)).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}
