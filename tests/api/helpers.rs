//! The test harness: `spawn_app(backend)` starts the real application on port 0 against a fresh
//! database (a temporary SQLite file, or a new PostgreSQL database dropped afterwards).

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use optbridge::config::{ConfigArgs, Settings};
use optbridge::db::schema::{invitations, sms_subscriptions};
use optbridge::db::{Db, DbConn};
use optbridge::links::LinkPurpose;
use optbridge::startup::Application;
use optbridge::workspace::{self, NewWorkspace};
use serde_json::Value;

use crate::fake_twilio::{FakeTwilio, post_signed};
use crate::smtp_sink::{Fault, SmtpSink};

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
        // The reminder job of every sign-up would wait an hour in the outbox: tests that want
        // reminders turn them on (tests/api/conversion.rs).
        doi_email_reminder_secs: 0,
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

/// Starts another instance of the application on an existing database (as a restart, or a
/// second server, would) with settings adjusted by `configure`; returns its address.
pub async fn start_instance(
    database_url: &str,
    configure: impl FnOnce(&mut ConfigArgs),
) -> Result<String, optbridge::startup::StartupError> {
    let mut args = base_args(database_url);
    configure(&mut args);
    let settings = Settings::from_args(&args).expect("valid settings");
    let app = Application::build(settings, false).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok(address)
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

    /// `GET /metrics` (no `METRICS_TOKEN` in tests), as text.
    pub async fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.expect("request");
        assert_eq!(res.status(), 200);
        res.text().await.expect("metrics text")
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

// Scenarios and constants shared by the test files.

// The fake Twilio account (SID, AUTH), the number SMS are sent from, and the two recipients
// of the SMS tests.
pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH: &str = "twilio-auth-token";
pub const FROM: &str = "+4570202020";
pub const ANNA: &str = "+4520123456";
pub const BO: &str = "+4520654321";

/// The application with Twilio as SMS provider, pointed at a fake Twilio.
pub async fn twilio_app(backend: Backend, extra: impl FnOnce(&mut ConfigArgs)) -> (TestApp, FakeTwilio) {
    let fake = FakeTwilio::start(SID, AUTH).await;
    let base = fake.base_url();
    let app = spawn_app_with(backend, move |a| {
        a.sms_provider = Some("twilio".into());
        a.twilio_account_sid = Some(SID.into());
        a.twilio_auth_token = Some(AUTH.into());
        a.twilio_from = Some(FROM.into());
        a.twilio_api_base = Some(base);
        a.sms_timeout_secs = 1;
        extra(a);
    })
    .await;
    (app, fake)
}

// The fake 46elks and inMobile accounts (issue 19): credentials, sender and callback secrets.
pub const ELKS_USER: &str = "u0123456789abcdef";
pub const ELKS_PASSWORD: &str = "elks-api-password";
pub const ELKS_FROM: &str = "+46766861004";
pub const ELKS_SECRET: &str = "elks-hook-secret-0123456789";
pub const INMOBILE_KEY: &str = "inmobile-api-key-0123";
pub const INMOBILE_FROM: &str = "Skobutik";
pub const INMOBILE_SECRET: &str = "inmobile-hook-secret-0123";

/// The application with 46elks as SMS provider, pointed at a fake 46elks.
pub async fn elks_app(backend: Backend, extra: impl FnOnce(&mut ConfigArgs)) -> (TestApp, crate::fake_elks::FakeElks) {
    let fake = crate::fake_elks::FakeElks::start(ELKS_USER, ELKS_PASSWORD).await;
    let base = fake.base_url();
    let app = spawn_app_with(backend, move |a| {
        a.sms_provider = Some("46elks".into());
        a.elks_api_username = Some(ELKS_USER.into());
        a.elks_api_password = Some(ELKS_PASSWORD.into());
        a.elks_from = Some(ELKS_FROM.into());
        a.elks_api_base = base;
        a.elks_webhook_secret = Some(ELKS_SECRET.into());
        a.sms_timeout_secs = 1;
        extra(a);
    })
    .await;
    (app, fake)
}

/// The application with inMobile as SMS provider, pointed at a fake inMobile.
pub async fn inmobile_app(
    backend: Backend,
    extra: impl FnOnce(&mut ConfigArgs),
) -> (TestApp, crate::fake_inmobile::FakeInMobile) {
    let fake = crate::fake_inmobile::FakeInMobile::start(INMOBILE_KEY).await;
    let base = fake.base_url();
    let app = spawn_app_with(backend, move |a| {
        a.sms_provider = Some("inmobile".into());
        a.inmobile_api_key = Some(INMOBILE_KEY.into());
        a.inmobile_from = Some(INMOBILE_FROM.into());
        a.inmobile_api_base = base;
        a.inmobile_webhook_secret = Some(INMOBILE_SECRET.into());
        a.sms_timeout_secs = 1;
        extra(a);
    })
    .await;
    (app, fake)
}

/// Eight contacts in four locales; `ove` has no locale (the workspace's, da).
pub const CONTACTS: &str = "email,first_name,locale\n\
    anna@example.dk,Anna,da\n\
    bo@example.dk,Bo,da\n\
    ove@example.dk,Ove,\n\
    ingrid@example.no,Ingrid,nb\n\
    lars@example.no,Lars,nb\n\
    elsa@example.se,Elsa,sv\n\
    nils@example.se,Nils,sv\n\
    amy@example.com,Amy,en\n";

/// A sent campaign; returns the workspace and a landing link for each of anna and bo.
pub struct Invited {
    pub ws: TestWorkspace,
    pub anna: String,
    pub bo: String,
    pub anna_invitation: String,
}

/// The value of the form field `name` in an HTML page.
pub fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// The `Set-Cookie` header that sets cookie `name`.
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The value a `Set-Cookie` header sets.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

impl TestApp {
    /// A workspace with the eight contacts, a consent text per locale and a campaign to every
    /// locale, each locale's recipients reading their own language.
    pub async fn campaign_for_all(&self) -> (TestWorkspace, String) {
        let ws = self.create_workspace("Skobutikken").await;
        self.import(&ws.token, CONTACTS).await;
        let texts = self.consent_texts_for_all(&ws.token).await;
        let id = self
            .campaign(
                &ws.token,
                &serde_json::json!({
                    "name": "Spring", "consent_texts": texts,
                    "subject": {"da": "Skobutikken på SMS", "nb": "Skobutikken på SMS (nb)",
                                "sv": "Skobutikken via SMS", "en": "Skobutikken by SMS"},
                    "intro": {"da": "Hør først om udsalg.\n\nDu vælger selv emnerne.",
                              "nb": "Hør først om salg.\n\nDu velger selv emnene.",
                              "sv": "Hör först om rean.\n\nDu väljer själv ämnena.",
                              "en": "Hear about sales first.\n\nYou choose the topics."},
                    "frequency": {"da": "højst 4 gange om måneden", "nb": "høyst 4 ganger i måneden",
                                  "sv": "högst 4 gånger i månaden", "en": "at most 4 times a month"},
                    "audience": {"locales": ["da", "nb", "sv", "en"]}
                }),
            )
            .await;
        (ws, id)
    }

    /// A consent text in each of da, nb, sv and en: `{"da": ID, …}` for a campaign's
    /// `consent_texts`.
    pub async fn consent_texts_for_all(&self, token: &str) -> serde_json::Value {
        let mut texts = serde_json::Map::new();
        for locale in ["da", "nb", "sv", "en"] {
            texts.insert(locale.into(), self.consent_text(token, locale).await.into());
        }
        serde_json::Value::Object(texts)
    }

    /// Sends [`TestApp::campaign_for_all`] and signs a landing link for anna and for bo.
    pub async fn invited(&self) -> Invited {
        let (ws, campaign) = self.campaign_for_all().await;
        let campaign = campaign.clone();
        self.send_campaign(&ws.token, &campaign).await;
        self.drain_outbox(std::time::Duration::from_secs(10)).await;
        let campaign_id = campaign.clone();
        let ids: Vec<(String, String)> = self
            .with_db(move |c| {
                use diesel::prelude::*;
                invitations::table
                    .filter(invitations::campaign_id.eq(&campaign_id))
                    .filter(invitations::email.eq_any(["anna@example.dk", "bo@example.dk"]))
                    .order(invitations::email.asc())
                    .select((invitations::id, invitations::campaign_id))
                    .load(c)
                    .unwrap()
            })
            .await;
        let link = |(inv, campaign): &(String, String)| {
            self.keyring
                .sign(LinkPurpose::Landing, inv, campaign, "da", optbridge::db::now())
                .unwrap()
        };
        Invited {
            anna: link(&ids[0]),
            bo: link(&ids[1]),
            anna_invitation: ids[0].0.clone(),
            ws,
        }
    }

    /// A workspace whose campaign went to `n` contacts; returns it and one landing link per
    /// contact (distinct links, as `n` people would have in their mail).
    pub async fn invited_many(&self, n: usize) -> (TestWorkspace, Vec<String>) {
        use diesel::prelude::*;
        let ws = self.create_workspace("Skobutikken").await;
        let mut csv = String::from("email,first_name,locale\n");
        for i in 0..n {
            csv.push_str(&format!("r{i}@example.dk,R{i},da\n"));
        }
        self.import(&ws.token, &csv).await;
        let text = self.consent_text(&ws.token, "da").await;
        let campaign = self
            .campaign(
                &ws.token,
                &serde_json::json!({"name": "Many", "consent_text_id": text, "subject": "SMS?", "intro": "Hej."}),
            )
            .await;
        self.send_campaign(&ws.token, &campaign).await;
        self.drain_outbox(std::time::Duration::from_secs(30)).await;
        let ids: Vec<String> = self
            .with_db({
                let campaign = campaign.clone();
                move |c| {
                    invitations::table
                        .filter(invitations::campaign_id.eq(&campaign))
                        .select(invitations::id)
                        .load(c)
                        .unwrap()
                }
            })
            .await;
        assert_eq!(ids.len(), n);
        let links = ids
            .iter()
            .map(|inv| {
                self.keyring
                    .sign(LinkPurpose::Landing, inv, &campaign, "da", optbridge::db::now())
                    .unwrap()
            })
            .collect();
        (ws, links)
    }

    /// GETs a dashboard page as a logged-in browser asking for `language` would; it must answer 200.
    pub async fn page_in(&self, cookie: &str, path: &str, language: &str) -> String {
        let res = self
            .client
            .get(self.url(path))
            .header("Cookie", cookie)
            .header("Accept-Language", language)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.text().await.unwrap()
    }

    /// GETs a page without credentials: its status and body.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// POSTs a form without credentials: status, body and `Location`.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let res = self.client.post(self.url(path)).form(form).send().await.unwrap();
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (status, res.text().await.unwrap(), location)
    }

    /// Opens the landing page of link `token` and submits it.
    pub async fn submit_landing(
        &self,
        token: &str,
        phone: &str,
        consent: bool,
        categories: &[&str],
    ) -> (u16, String, Option<String>) {
        let (status, landing) = self.page(&format!("/l/{token}")).await;
        assert_eq!(status, 200);
        let csrf = field(&landing, "csrf");
        let mut form = vec![("csrf", csrf.as_str()), ("phone", phone)];
        if consent {
            form.push(("consent", "yes"));
        }
        for c in categories {
            form.push(("categories", c));
        }
        self.post_form(&format!("/l/{token}"), &form).await
    }

    /// Posts an SMS reply as Twilio would, signed for the public URL.
    pub async fn sms_reply(&self, from: &str, body: &str, sid: &str) -> reqwest::Response {
        let public = self
            .settings
            .base_url
            .join("webhooks/twilio/inbound")
            .unwrap()
            .to_string();
        post_signed(
            &self.client,
            &self.url("/webhooks/twilio/inbound"),
            &public,
            AUTH,
            &[
                ("MessageSid", sid),
                ("From", from),
                ("To", FROM),
                ("Body", body),
                ("AccountSid", SID),
            ],
        )
        .await
    }

    /// Answers as `phone` through the dev outbox's reply form, as a browser on `/dev/sms` does:
    /// the page's form token in the form and in its cookie.
    pub async fn dev_sms_reply(&self, phone: &str, body: &str) -> reqwest::Response {
        let page = self.client.get(self.url("/dev/sms")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let token = cookie_value(&set_cookie(&page, "ob_dev_csrf").expect("dev SMS form token cookie"));
        self.client
            .post(self.url("/dev/sms/reply"))
            .header("Cookie", format!("ob_dev_csrf={token}"))
            .form(&[("phone", phone), ("body", body), ("csrf", &token)])
            .send()
            .await
            .unwrap()
    }

    /// Sends `body` to `to` as `phone` through the dev outbox's "send as a phone" form (issue 17).
    pub async fn dev_sms_send_as(&self, phone: &str, body: &str, to: &str) -> reqwest::Response {
        let page = self.client.get(self.url("/dev/sms")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let token = cookie_value(&set_cookie(&page, "ob_dev_csrf").expect("dev SMS form token cookie"));
        self.client
            .post(self.url("/dev/sms/reply"))
            .header("Cookie", format!("ob_dev_csrf={token}"))
            .form(&[("phone", phone), ("body", body), ("to", to), ("csrf", &token)])
            .send()
            .await
            .unwrap()
    }

    /// The status of the SMS subscription of `phone`, if there is one.
    pub async fn subscription_status(&self, phone: &'static str) -> Option<String> {
        self.with_db(move |c| {
            use diesel::prelude::*;
            sms_subscriptions::table
                .filter(sms_subscriptions::phone.eq(phone))
                .select(sms_subscriptions::status)
                .first(c)
                .optional()
                .unwrap()
        })
        .await
    }

    /// Logs in to the dashboard through the form; returns the response of the POST.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.login_from(&self.client, email, password, None).await
    }

    /// Logs in through `client` (say, one bound to another loopback address), with an
    /// `X-Forwarded-For` header when given (as a proxy in front would add it).
    pub async fn login_from(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let page = client.get(self.url("/app/login")).send().await.unwrap();
        let csrf_cookie = cookie_value(&set_cookie(&page, "ob_login_csrf").expect("login form token cookie"));
        let csrf = field(&page.text().await.unwrap(), "csrf");
        let mut post = client
            .post(self.url("/app/login"))
            .header("Cookie", format!("ob_login_csrf={csrf_cookie}"));
        if let Some(forwarded_for) = forwarded_for {
            post = post.header("X-Forwarded-For", forwarded_for);
        }
        post.form(&[("email", email), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap()
    }
}

/// Anna (and Bo) signed up by SMS reply; returns the app, the invitations and the fake.
pub async fn signed_up(backend: Backend) -> (TestApp, Invited, FakeTwilio) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    assert_eq!(
        app.submit_landing(&inv.anna, "20 12 34 56", true, &["Tilbud"]).await.0,
        303
    );
    assert_eq!(app.submit_landing(&inv.bo, BO, true, &[]).await.0, 303);
    app.drain_outbox(std::time::Duration::from_secs(10)).await;
    app.sms_reply(ANNA, "JA", "SMdr0001").await;
    app.sms_reply(BO, "JA", "SMdr0002").await;
    app.drain_outbox(std::time::Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    assert_eq!(app.subscription_status(BO).await.as_deref(), Some("active"));
    app.eventually("both landing-page clicks are recorded", |c| {
        use diesel::prelude::*;
        invitations::table
            .filter(invitations::clicked_at.is_not_null())
            .count()
            .get_result::<i64>(c)
            .unwrap()
            == 2
    })
    .await;
    (app, inv, fake)
}

/// A browser user agent the tracking counts as a human.
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";

/// A campaign with known behaviour: see [`scripted`].
pub struct Scripted {
    pub app: TestApp,
    pub token: String,
    pub campaign: String,
    /// Invitation id and campaign id per recipient p0..p9.
    links: Vec<(String, String)>,
    _sink: SmtpSink,
}

impl Scripted {
    /// A link of recipient `p{i}`.
    pub fn link(&self, i: usize, purpose: LinkPurpose) -> String {
        let (inv, campaign) = &self.links[i];
        self.app
            .keyring
            .sign(purpose, inv, campaign, "da", optbridge::db::now())
            .unwrap()
    }

    async fn hit(&self, path: String, user_agent: &str) {
        let res = self
            .app
            .client
            .get(self.app.url(&path))
            .header("User-Agent", user_agent)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }

    async fn confirm_by_sms(&self, phone: &str) {
        let res = self.app.dev_sms_reply(phone, "JA").await;
        assert_eq!(res.status(), 303);
    }

    /// The campaign's workspace id.
    pub async fn app_workspace(&self) -> String {
        let c = self.campaign.clone();
        self.app
            .with_db(move |conn| {
                use diesel::prelude::*;
                use optbridge::db::schema::campaigns;
                campaigns::table
                    .find(&c)
                    .select(campaigns::workspace_id)
                    .first(conn)
                    .unwrap()
            })
            .await
    }
}

/// Ten recipients; p9's mailbox does not exist.
///  p0 opens five times; p1 is only fetched by Apple's privacy proxy; p2 opens, clicks, signs up
///  and confirms; p3 clicks (images off), signs up, confirms; p4 clicks and signs up but never
///  confirms; p5 opens and clicks; p6–p8 do nothing.
pub async fn scripted(backend: Backend) -> Scripted {
    use diesel::prelude::*;
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "p9@example.dk",
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await;
    let ws = app.create_workspace("Skobutikken").await;
    let mut csv = String::from("email,first_name,locale,external_id\n");
    for i in 0..10 {
        csv.push_str(&format!("p{i}@example.dk,P{i},da,ext-{i}\n"));
    }
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &serde_json::json!({"name": "Scripted", "consent_text_id": text, "subject": "SMS?", "intro": "Hej."}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(std::time::Duration::from_secs(15)).await;
    let c = campaign.clone();
    let links: Vec<(String, String)> = app
        .with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .order(invitations::email.asc())
                .select((invitations::id, invitations::campaign_id))
                .load(conn)
                .unwrap()
        })
        .await;
    assert_eq!(links.len(), 10);
    let s = Scripted {
        app,
        token: ws.token,
        campaign,
        links,
        _sink: sink,
    };

    for _ in 0..5 {
        s.hit(format!("/o/{}", s.link(0, LinkPurpose::Open)), IPHONE).await;
    }
    s.hit(format!("/o/{}", s.link(1, LinkPurpose::Open)), "Mozilla/5.0")
        .await;
    s.hit(format!("/o/{}", s.link(2, LinkPurpose::Open)), IPHONE).await;
    s.hit(format!("/o/{}", s.link(5, LinkPurpose::Open)), IPHONE).await;
    for i in [2, 3, 4, 5] {
        s.hit(format!("/l/{}", s.link(i, LinkPurpose::Landing)), IPHONE).await;
    }
    for (i, phone) in [(2, "+45 20 12 34 52"), (3, "+45 20 12 34 53"), (4, "+45 20 12 34 54")] {
        let (status, _, _) = s
            .app
            .submit_landing(&s.link(i, LinkPurpose::Landing), phone, true, &[])
            .await;
        assert_eq!(status, 303);
    }
    s.app.drain_outbox(std::time::Duration::from_secs(10)).await;
    s.confirm_by_sms("+4520123452").await;
    s.confirm_by_sms("+4520123453").await;
    s.app.drain_outbox(std::time::Duration::from_secs(10)).await;
    // The tracking buffer writes within 50 ms; wait until all events are in: 8 opens, and 7
    // clicks (the 4 visits plus the 3 page loads before each form post).
    s.app
        .eventually("tracking events written", |c| {
            use optbridge::db::schema::funnel_events;
            funnel_events::table
                .filter(funnel_events::kind.eq_any(["opened", "clicked"]))
                .count()
                .get_result::<i64>(c)
                .unwrap()
                == 15
        })
        .await;
    s
}

#[derive(diesel::QueryableByName)]
struct NameRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row: String,
}

/// Every row of every table as text, one line each, prefixed with the table's name.
pub fn dump(conn: &mut DbConn) -> String {
    let mut out = String::new();
    match conn {
        DbConn::Sqlite(c) => {
            let tables: Vec<NameRow> =
                diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                    .load(c)
                    .unwrap();
            for table in tables {
                let columns: Vec<NameRow> =
                    diesel::sql_query(format!("SELECT name FROM pragma_table_info('{}')", table.name))
                        .load(c)
                        .unwrap();
                let row = columns
                    .iter()
                    .map(|c| format!("quote(\"{}\")", c.name))
                    .collect::<Vec<_>>()
                    .join(" || ',' || ");
                let rows: Vec<TextRow> = diesel::sql_query(format!("SELECT {row} AS row FROM \"{}\"", table.name))
                    .load(c)
                    .unwrap();
                for r in rows {
                    out.push_str(&format!("{}: {}\n", table.name, r.row));
                }
            }
        }
        DbConn::Pg(c) => {
            let tables: Vec<NameRow> =
                diesel::sql_query("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
                    .load(c)
                    .unwrap();
            for table in tables {
                let rows: Vec<TextRow> = diesel::sql_query(format!("SELECT t::text AS row FROM \"{}\" t", table.name))
                    .load(c)
                    .unwrap();
                for r in rows {
                    out.push_str(&format!("{}: {}\n", table.name, r.row));
                }
            }
        }
    }
    out
}

/// The Python of the test venv (`scripts/setup-test-deps` creates it with the independent
/// implementations tests check against: openapi-spec-validator, standardwebhooks).
pub fn test_python() -> PathBuf {
    let python = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-deps (it installs the Python tools the tests call)",
        python.display()
    );
    python
}

/// The password of the dashboard users made by [`TestApp::dashboard_session`].
pub const DASHBOARD_PASSWORD: &str = "a long enough password";

impl TestApp {
    /// Creates dashboard user `email` in the workspace and logs in: the `Cookie` header value of
    /// the session, and the form token its pages carry.
    pub async fn dashboard_session(&self, workspace_id: &str, email: &str) -> (String, String) {
        let (id, user) = (workspace_id.to_owned(), email.to_owned());
        self.with_db(move |c| optbridge::accounts::create_user(c, &id, &user, DASHBOARD_PASSWORD).unwrap())
            .await;
        let res = self.login(email, DASHBOARD_PASSWORD).await;
        assert_eq!(res.status(), 303, "login");
        let cookie = format!(
            "ob_session={}",
            cookie_value(&set_cookie(&res, "ob_session").expect("session cookie"))
        );
        let page = self
            .client
            .get(self.url("/app/import"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        let csrf = field(&page.text().await.unwrap(), "csrf");
        (cookie, csrf)
    }

    /// Uploads `csv` as the file of the dashboard's import form (multipart/form-data, as a
    /// browser sends it: the form token first, then the file).
    pub async fn upload_import(&self, cookie: &str, csrf: &str, file_name: &str, csv: &[u8]) -> reqwest::Response {
        let boundary = "----optbridgeTestBoundary7MA4YWxkTrZu0gW";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(csv);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.client
            .post(self.url("/app/import"))
            .header("Cookie", cookie)
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a file on the import page, runs the import job and returns the job's status page.
    pub async fn import_through_page(&self, cookie: &str, csrf: &str, file_name: &str, csv: &[u8]) -> (String, String) {
        let res = self.upload_import(cookie, csrf, file_name, csv).await;
        assert_eq!(res.status(), 303, "upload: {}", res.text().await.unwrap_or_default());
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        self.drain_outbox(std::time::Duration::from_secs(30)).await;
        let page = self
            .client
            .get(self.url(&location))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        (location, page.text().await.unwrap())
    }
}

/// A sample export from `tests/fixtures/imports/`.
pub fn sample_export(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/imports/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample export")
}

/// The number in a `data-metric="{name}"` element of a page.
pub fn metric(page: &str, name: &str) -> i64 {
    let marker = format!("data-metric=\"{name}\">");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} on the page")) + marker.len();
    page[start..]
        .split('<')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("a number")
}
