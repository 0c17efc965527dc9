//! One `Settings` struct, read from the environment and CLI flags and validated once at start.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use url::Url;

use crate::outbox::breaker::BreakerConfig;
use crate::outbox::worker::OutboxSettings;

/// Every default, in one place: clap's attributes and [`ConfigArgs::default`] both read them
/// (README's configuration table documents them).
mod defaults {
    pub const DATABASE_URL: &str = "sqlite://optbridge.db";
    pub const BIND: &str = "127.0.0.1:8080";
    pub const IMPORT_MAX_BYTES: u64 = 256 * 1024 * 1024;
    /// Under the system's temporary directory when `IMPORT_DIR` is not set.
    pub const IMPORT_DIR_NAME: &str = "optbridge-imports";
    pub const REQUEST_BODY_TIMEOUT_SECS: u64 = 30;
    pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
    pub const LINK_TTL_DAYS: u32 = 30;
    /// How often a running process re-reads the link-signing keys (a `keys rotate` elsewhere).
    pub const SIGNING_KEY_RELOAD_SECS: u64 = 60;
    pub const SMTP_TIMEOUT_SECS: u64 = 30;
    pub const DOI_EXPIRY_HOURS: u32 = 24;
    pub const DOI_MAX_SENDS: u32 = 3;
    pub const DOI_RESEND_SECS: u64 = 60;
    pub const DOI_MAX_CODE_ATTEMPTS: u32 = 5;
    pub const LIMIT_DOI_PER_TOKEN: u32 = 3;
    pub const LIMIT_DOI_PER_PHONE: u32 = 3;
    pub const LIMIT_DOI_PER_IP: u32 = 10;
    pub const LIMIT_DOI_PER_COUNTRY: u32 = 1000;
    pub const LIMIT_DOI_PER_WORKSPACE: u32 = 10_000;
    /// The sending window from the seeds (08:00–20:00 recipient local time, as
    /// `sms::quiet_hours::QuietHours::default`).
    pub const QUIET_HOURS_WINDOW: &str = "08-20";
    pub const SMS_TIMEOUT_SECS: u64 = 10;
    pub const TRUSTED_PROXY_HOPS: u8 = 1;
    pub const FORWARDED_HEADER: &str = "x-forwarded-for";
    pub const LOG_FORMAT: &str = "pretty";
    // The outbox workers (`OUTBOX_*`, `SMTP_CONCURRENCY`, `CIRCUIT_BREAKER_*`).
    pub const WORKERS: usize = 2;
    pub const BATCH: u32 = 100;
    /// Invitations per `invitation_batch` job: one worker round sends one. Each round costs the
    /// database a fixed number of round trips (claim, load, closing transaction), and its lanes
    /// idle while the last messages of the round are answered, so larger rounds cost less per
    /// message: 1,000 (an expansion page) sent at 0.94 – 0.95 of the baseline where 500 sent at
    /// 0.88 – 0.90 (BENCHMARKS.md, "sixth session"). A crash repeats only what was in flight, and
    /// a pause stops a round within a chunk of 100, whatever the size.
    pub const INVITATION_BATCH: u32 = 1000;
    pub const LEASE_SECS: u64 = 300;
    pub const POLL_MS: u64 = 1000;
    pub const MAX_ATTEMPTS: u32 = 8;
    pub const RETRY_BASE_MS: u64 = 30_000;
    pub const RETRY_MAX_MS: u64 = 3_600_000;
    pub const SMTP_CONCURRENCY: usize = 8;
    pub const CIRCUIT_BREAKER_FAILURES: u32 = 10;
    pub const CIRCUIT_BREAKER_COOLDOWN_MS: u64 = 30_000;
    pub const CIRCUIT_BREAKER_MAX_COOLDOWN_MS: u64 = 600_000;
    /// Issue 17: the one email reminder to a sign-up still unconfirmed after an hour (0 = off).
    pub const DOI_EMAIL_REMINDER_SECS: u64 = 3600;
    pub const BOUNCE_POLL_SECS: u64 = 60;
    // The Nordic SMS gateways (`SMS_PROVIDER=46elks|inmobile`).
    pub const ELKS_API_BASE: &str = "https://api.46elks.com";
    pub const INMOBILE_API_BASE: &str = "https://api.inmobile.com";
}

/// Raw configuration as clap collects it from flags and the environment.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Database: `sqlite://PATH` (embedded default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", global = true, default_value = defaults::DATABASE_URL)]
    pub database_url: String,

    /// Connections in the database pool (default: 8 for SQLite, 16 for PostgreSQL).
    #[arg(long, env = "DATABASE_POOL_SIZE", global = true)]
    pub database_pool_size: Option<u32>,

    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND", global = true, default_value = defaults::BIND)]
    pub bind: String,

    /// Public origin used in links (default: http://$BIND).
    #[arg(long, env = "BASE_URL", global = true)]
    pub base_url: Option<String>,

    /// SMTP server for outgoing email, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@host`.
    /// Unset: emails go to the dev outbox at /dev/mail.
    #[arg(long, env = "SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// SMS provider: `twilio`, `46elks` or `inmobile`. Unset: SMS go to the dev outbox at /dev/sms.
    #[arg(long, env = "SMS_PROVIDER", global = true)]
    pub sms_provider: Option<String>,

    #[arg(long, env = "TWILIO_ACCOUNT_SID", global = true, hide = true)]
    pub twilio_account_sid: Option<String>,

    #[arg(long, env = "TWILIO_AUTH_TOKEN", global = true, hide = true, hide_env_values = true)]
    pub twilio_auth_token: Option<String>,

    #[arg(long, env = "TWILIO_FROM", global = true, hide = true)]
    pub twilio_from: Option<String>,

    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID", global = true, hide = true)]
    pub twilio_messaging_service_sid: Option<String>,

    #[arg(long, env = "TWILIO_API_BASE", global = true, hide = true)]
    pub twilio_api_base: Option<String>,

    #[arg(long, env = "ELKS_API_USERNAME", global = true, hide = true)]
    pub elks_api_username: Option<String>,

    #[arg(long, env = "ELKS_API_PASSWORD", global = true, hide = true, hide_env_values = true)]
    pub elks_api_password: Option<String>,

    /// 46elks sender: a number in E.164, or an alphanumeric sender of at most 11 characters.
    #[arg(long, env = "ELKS_FROM", global = true, hide = true)]
    pub elks_from: Option<String>,

    #[arg(long, env = "ELKS_API_BASE", global = true, hide = true, default_value = defaults::ELKS_API_BASE)]
    pub elks_api_base: String,

    /// The secret in 46elks' callback URLs (`?secret=…`).
    #[arg(
        long,
        env = "ELKS_WEBHOOK_SECRET",
        global = true,
        hide = true,
        hide_env_values = true
    )]
    pub elks_webhook_secret: Option<String>,

    #[arg(long, env = "INMOBILE_API_KEY", global = true, hide = true, hide_env_values = true)]
    pub inmobile_api_key: Option<String>,

    /// inMobile sender: a text sender of 3–11 characters or a number of up to 14 digits.
    #[arg(long, env = "INMOBILE_FROM", global = true, hide = true)]
    pub inmobile_from: Option<String>,

    #[arg(long, env = "INMOBILE_API_BASE", global = true, hide = true, default_value = defaults::INMOBILE_API_BASE)]
    pub inmobile_api_base: String,

    /// The secret in inMobile's callback URLs (`?secret=…`); unset: derived from the API key.
    #[arg(
        long,
        env = "INMOBILE_WEBHOOK_SECRET",
        global = true,
        hide = true,
        hide_env_values = true
    )]
    pub inmobile_webhook_secret: Option<String>,

    /// Largest accepted CSV import body, in bytes.
    #[arg(long, env = "IMPORT_MAX_BYTES", global = true, default_value_t = defaults::IMPORT_MAX_BYTES)]
    pub import_max_bytes: u64,

    /// Directory where files uploaded on the dashboard's import page wait for their import job
    /// (default: `optbridge-imports` in the system's temporary directory). Instances that run
    /// workers must share it.
    #[arg(long, env = "IMPORT_DIR", global = true)]
    pub import_dir: Option<std::path::PathBuf>,

    /// Seconds a request body may take to arrive, plus one per 500 bytes received (a slow but
    /// steady upload goes on; a trickle is answered 408 and the connection closed).
    #[arg(long, env = "REQUEST_BODY_TIMEOUT_SECS", global = true, default_value_t = defaults::REQUEST_BODY_TIMEOUT_SECS)]
    pub request_body_timeout_secs: u64,

    /// Milliseconds a SQLite writer waits for the write lock before giving up.
    #[arg(long, env = "SQLITE_BUSY_TIMEOUT_MS", global = true, default_value_t = defaults::SQLITE_BUSY_TIMEOUT_MS)]
    pub sqlite_busy_timeout_ms: u64,

    /// Days a link in an invitation stays valid.
    #[arg(long, env = "LINK_TTL_DAYS", global = true, default_value_t = defaults::LINK_TTL_DAYS)]
    pub link_ttl_days: u32,

    /// Seconds between two re-reads of the link-signing keys by a running process, so that a
    /// `keys rotate` run elsewhere is signed with everywhere within this time.
    #[arg(long, env = "SIGNING_KEY_RELOAD_SECS", global = true, default_value_t = defaults::SIGNING_KEY_RELOAD_SECS)]
    pub signing_key_reload_secs: u64,

    /// Outbox worker tasks in `serve` and `worker` (0 in `serve` = HTTP only).
    #[arg(long, env = "OUTBOX_WORKERS", global = true, default_value_t = defaults::WORKERS)]
    pub outbox_workers: usize,

    /// Jobs one worker claims at once.
    #[arg(long, env = "OUTBOX_BATCH", global = true, default_value_t = defaults::BATCH)]
    pub outbox_batch: u32,

    /// Invitations per `invitation_batch` job, which a worker claims alone and sends as one round.
    #[arg(long, env = "INVITATION_BATCH", global = true, default_value_t = defaults::INVITATION_BATCH)]
    pub invitation_batch: u32,

    /// Seconds a claimed job stays leased before another worker may take it over.
    #[arg(long, env = "OUTBOX_LEASE_SECS", global = true, default_value_t = defaults::LEASE_SECS)]
    pub outbox_lease_secs: u64,

    /// Milliseconds an idle worker waits before looking for new jobs.
    #[arg(long, env = "OUTBOX_POLL_MS", global = true, default_value_t = defaults::POLL_MS)]
    pub outbox_poll_ms: u64,

    /// Attempts before a temporary failure is final.
    #[arg(long, env = "OUTBOX_MAX_ATTEMPTS", global = true, default_value_t = defaults::MAX_ATTEMPTS)]
    pub outbox_max_attempts: u32,

    /// First retry delay in milliseconds; doubles per attempt (with jitter).
    #[arg(long, env = "OUTBOX_RETRY_BASE_MS", global = true, default_value_t = defaults::RETRY_BASE_MS)]
    pub outbox_retry_base_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long, env = "OUTBOX_RETRY_MAX_MS", global = true, default_value_t = defaults::RETRY_MAX_MS)]
    pub outbox_retry_max_ms: u64,

    /// SMTP sessions per worker, each sending its share of a batch one message after another
    /// (also sizes the SMTP connection pool); SMS requests in flight per worker.
    #[arg(long, env = "SMTP_CONCURRENCY", global = true, default_value_t = defaults::SMTP_CONCURRENCY)]
    pub smtp_concurrency: usize,

    /// Temporary failures in a row after which sends to that provider (SMTP, SMS) pause; 0: never.
    #[arg(long, env = "CIRCUIT_BREAKER_FAILURES", global = true, default_value_t = defaults::CIRCUIT_BREAKER_FAILURES)]
    pub circuit_breaker_failures: u32,

    /// First pause in milliseconds once the circuit opens; doubles while probes keep failing.
    #[arg(long, env = "CIRCUIT_BREAKER_COOLDOWN_MS", global = true, default_value_t = defaults::CIRCUIT_BREAKER_COOLDOWN_MS)]
    pub circuit_breaker_cooldown_ms: u64,

    /// Longest pause in milliseconds.
    #[arg(
        long,
        env = "CIRCUIT_BREAKER_MAX_COOLDOWN_MS",
        global = true,
        default_value_t = defaults::CIRCUIT_BREAKER_MAX_COOLDOWN_MS
    )]
    pub circuit_breaker_max_cooldown_ms: u64,

    /// Seconds before an SMTP command times out (counts as a temporary failure).
    #[arg(long, env = "SMTP_TIMEOUT_SECS", global = true, default_value_t = defaults::SMTP_TIMEOUT_SECS)]
    pub smtp_timeout_secs: u64,

    /// PEM private key (RSA or Ed25519) to DKIM-sign invitation emails.
    #[arg(long, env = "DKIM_KEY_PATH", global = true)]
    pub dkim_key_path: Option<std::path::PathBuf>,

    /// DKIM selector (the DNS record is `<selector>._domainkey.<domain>`).
    #[arg(long, env = "DKIM_SELECTOR", global = true)]
    pub dkim_selector: Option<String>,

    /// DKIM signing domain (`d=`); should be the domain of the workspaces' From addresses.
    #[arg(long, env = "DKIM_DOMAIN", global = true)]
    pub dkim_domain: Option<String>,

    /// Hours a double-opt-in request waits for its confirmation.
    #[arg(long, env = "DOI_EXPIRY_HOURS", global = true, default_value_t = defaults::DOI_EXPIRY_HOURS)]
    pub doi_expiry_hours: u32,

    /// SMS one double-opt-in request may send (the first and resends).
    #[arg(long, env = "DOI_MAX_SENDS", global = true, default_value_t = defaults::DOI_MAX_SENDS)]
    pub doi_max_sends: u32,

    /// Seconds between two SMS of one request.
    #[arg(long, env = "DOI_RESEND_SECS", global = true, default_value_t = defaults::DOI_RESEND_SECS)]
    pub doi_resend_secs: u64,

    /// Wrong codes before a request locks.
    #[arg(long, env = "DOI_MAX_CODE_ATTEMPTS", global = true, default_value_t = defaults::DOI_MAX_CODE_ATTEMPTS)]
    pub doi_max_code_attempts: u32,

    /// Different phone numbers one landing link may be used for per 24 h.
    #[arg(long, env = "LIMIT_DOI_PER_TOKEN", global = true, default_value_t = defaults::LIMIT_DOI_PER_TOKEN)]
    pub limit_doi_per_token: u32,

    /// Double-opt-in SMS per phone number per 24 h.
    #[arg(long, env = "LIMIT_DOI_PER_PHONE", global = true, default_value_t = defaults::LIMIT_DOI_PER_PHONE)]
    pub limit_doi_per_phone: u32,

    /// Sign-ups per client IP address per 24 h.
    #[arg(long, env = "LIMIT_DOI_PER_IP", global = true, default_value_t = defaults::LIMIT_DOI_PER_IP)]
    pub limit_doi_per_ip: u32,

    /// Double-opt-in SMS per destination country per 24 h.
    #[arg(long, env = "LIMIT_DOI_PER_COUNTRY", global = true, default_value_t = defaults::LIMIT_DOI_PER_COUNTRY)]
    pub limit_doi_per_country: u32,

    /// Double-opt-in SMS per workspace per 24 h.
    #[arg(long, env = "LIMIT_DOI_PER_WORKSPACE", global = true, default_value_t = defaults::LIMIT_DOI_PER_WORKSPACE)]
    pub limit_doi_per_workspace: u32,

    /// Hours (recipient's local time) when SMS that do not answer their own action may go out.
    #[arg(long, env = "QUIET_HOURS_WINDOW", global = true, default_value = defaults::QUIET_HOURS_WINDOW)]
    pub quiet_hours_window: String,

    /// Seconds before a call to the SMS provider times out (a temporary failure).
    #[arg(long, env = "SMS_TIMEOUT_SECS", global = true, default_value_t = defaults::SMS_TIMEOUT_SECS)]
    pub sms_timeout_secs: u64,

    /// Take the client address from the header a trusted reverse proxy appends to (only behind one).
    #[arg(long, env = "TRUST_FORWARDED_FOR", global = true)]
    pub trust_forwarded_for: bool,

    /// Trusted proxies in front, each appending the address it saw: the client is the address
    /// this many entries from the right of the header (with TRUST_FORWARDED_FOR).
    #[arg(long, env = "TRUSTED_PROXY_HOPS", global = true, default_value_t = defaults::TRUSTED_PROXY_HOPS)]
    pub trusted_proxy_hops: u8,

    /// The header the trusted proxy appends to: `x-forwarded-for` or `forwarded` (RFC 7239).
    #[arg(long, env = "FORWARDED_HEADER", global = true, default_value = defaults::FORWARDED_HEADER)]
    pub forwarded_header: String,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "HTTP_WORKERS", global = true)]
    pub http_workers: Option<usize>,

    /// Log format: `pretty` or `json`.
    #[arg(long, env = "LOG_FORMAT", global = true, default_value = defaults::LOG_FORMAT)]
    pub log_format: String,

    /// When set, `/metrics` answers only requests with `Authorization: Bearer <this token>`.
    #[arg(long, env = "METRICS_TOKEN", global = true, hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Encrypts the link-signing keys stored in the database: 32 bytes in base64 (AES-256-GCM),
    /// e.g. from `openssl rand -base64 32`.
    #[arg(long, env = "SIGNING_KEY_ENCRYPTION_KEY", global = true, hide_env_values = true)]
    pub signing_key_encryption_key: Option<String>,

    /// The previous SIGNING_KEY_ENCRYPTION_KEY while changing it: keys sealed with it are
    /// re-encrypted with the new one on start (or `optbridge migrate`).
    #[arg(long, env = "SIGNING_KEY_ENCRYPTION_KEY_OLD", global = true, hide_env_values = true)]
    pub signing_key_encryption_key_old: Option<String>,

    /// Serve the dev outboxes (/dev/mail, /dev/sms) on a public BIND or BASE_URL anyway: they
    /// show every invitation link and SMS code and let anyone reply as any phone.
    #[arg(long = "dev-outboxes", env = "DEV_OUTBOXES", global = true)]
    pub dev_outboxes: bool,

    /// Let webhook endpoints be private, loopback or link-local addresses (an intranet receiver;
    /// tests). Off: such URLs are refused at registration and at every delivery.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", global = true)]
    pub webhook_allow_private: bool,

    /// The number people can text for tap-to-text sign-up (E.164, e.g. +4512345678). Default:
    /// TWILIO_FROM when it is a number, the dev outbox's pretend number; none for a messaging
    /// service or an alphanumeric sender (then the landing page offers no tap-to-text).
    #[arg(long, env = "SMS_INBOUND_NUMBER", global = true)]
    pub sms_inbound_number: Option<String>,

    /// Seconds after a sign-up that is still unconfirmed before its one email reminder (0 = off).
    #[arg(long, env = "DOI_EMAIL_REMINDER_SECS", global = true, default_value_t = defaults::DOI_EMAIL_REMINDER_SECS)]
    pub doi_email_reminder_secs: u64,
    /// Envelope sender for bounces, e.g. `bounces@shop.example`: each invitation is sent from
    /// `bounces+<token>@shop.example` (VERP). Unset: the envelope sender is the From address.
    #[arg(long, env = "BOUNCE_ADDRESS", global = true)]
    pub bounce_address: Option<String>,

    /// The mailbox BOUNCE_ADDRESS delivers to, read by the workers: `pop3://user:pass@host:port`
    /// or `pop3s://…` (TLS).
    #[arg(long, env = "BOUNCE_MAILBOX", global = true, hide_env_values = true)]
    pub bounce_mailbox: Option<String>,

    /// Seconds between two reads of BOUNCE_MAILBOX.
    #[arg(long, env = "BOUNCE_POLL_SECS", global = true, default_value_t = defaults::BOUNCE_POLL_SECS)]
    pub bounce_poll_secs: u64,

    /// Mailgun's HTTP webhook signing key: turns on `POST /webhooks/mailgun` (bounces and spam
    /// complaints of mail relayed through Mailgun).
    #[arg(long, env = "MAILGUN_WEBHOOK_SIGNING_KEY", global = true, hide_env_values = true)]
    pub mailgun_webhook_signing_key: Option<String>,

    /// SendGrid's Signed Event Webhook verification key (base64): turns on
    /// `POST /webhooks/sendgrid` (bounces and spam complaints of mail relayed through SendGrid).
    #[arg(long, env = "SENDGRID_WEBHOOK_VERIFICATION_KEY", global = true)]
    pub sendgrid_webhook_verification_key: Option<String>,
}

/// The same defaults as the command line, without reading the environment (for tests and
/// embedding).
impl Default for ConfigArgs {
    fn default() -> Self {
        Self {
            database_url: defaults::DATABASE_URL.into(),
            database_pool_size: None,
            bind: defaults::BIND.into(),
            base_url: None,
            smtp_url: None,
            sms_provider: None,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_from: None,
            twilio_messaging_service_sid: None,
            twilio_api_base: None,
            elks_api_username: None,
            elks_api_password: None,
            elks_from: None,
            elks_api_base: defaults::ELKS_API_BASE.into(),
            elks_webhook_secret: None,
            inmobile_api_key: None,
            inmobile_from: None,
            inmobile_api_base: defaults::INMOBILE_API_BASE.into(),
            inmobile_webhook_secret: None,
            import_max_bytes: defaults::IMPORT_MAX_BYTES,
            import_dir: None,
            request_body_timeout_secs: defaults::REQUEST_BODY_TIMEOUT_SECS,
            sqlite_busy_timeout_ms: defaults::SQLITE_BUSY_TIMEOUT_MS,
            link_ttl_days: defaults::LINK_TTL_DAYS,
            signing_key_reload_secs: defaults::SIGNING_KEY_RELOAD_SECS,
            outbox_workers: defaults::WORKERS,
            outbox_batch: defaults::BATCH,
            invitation_batch: defaults::INVITATION_BATCH,
            outbox_lease_secs: defaults::LEASE_SECS,
            outbox_poll_ms: defaults::POLL_MS,
            outbox_max_attempts: defaults::MAX_ATTEMPTS,
            outbox_retry_base_ms: defaults::RETRY_BASE_MS,
            outbox_retry_max_ms: defaults::RETRY_MAX_MS,
            smtp_concurrency: defaults::SMTP_CONCURRENCY,
            circuit_breaker_failures: defaults::CIRCUIT_BREAKER_FAILURES,
            circuit_breaker_cooldown_ms: defaults::CIRCUIT_BREAKER_COOLDOWN_MS,
            circuit_breaker_max_cooldown_ms: defaults::CIRCUIT_BREAKER_MAX_COOLDOWN_MS,
            smtp_timeout_secs: defaults::SMTP_TIMEOUT_SECS,
            dkim_key_path: None,
            dkim_selector: None,
            dkim_domain: None,
            doi_expiry_hours: defaults::DOI_EXPIRY_HOURS,
            doi_max_sends: defaults::DOI_MAX_SENDS,
            doi_resend_secs: defaults::DOI_RESEND_SECS,
            doi_max_code_attempts: defaults::DOI_MAX_CODE_ATTEMPTS,
            limit_doi_per_token: defaults::LIMIT_DOI_PER_TOKEN,
            limit_doi_per_phone: defaults::LIMIT_DOI_PER_PHONE,
            limit_doi_per_ip: defaults::LIMIT_DOI_PER_IP,
            limit_doi_per_country: defaults::LIMIT_DOI_PER_COUNTRY,
            limit_doi_per_workspace: defaults::LIMIT_DOI_PER_WORKSPACE,
            quiet_hours_window: defaults::QUIET_HOURS_WINDOW.into(),
            sms_timeout_secs: defaults::SMS_TIMEOUT_SECS,
            trust_forwarded_for: false,
            trusted_proxy_hops: defaults::TRUSTED_PROXY_HOPS,
            forwarded_header: defaults::FORWARDED_HEADER.into(),
            http_workers: None,
            log_format: defaults::LOG_FORMAT.into(),
            metrics_token: None,
            signing_key_encryption_key: None,
            signing_key_encryption_key_old: None,
            dev_outboxes: false,
            webhook_allow_private: false,
            sms_inbound_number: None,
            doi_email_reminder_secs: defaults::DOI_EMAIL_REMINDER_SECS,
            bounce_address: None,
            bounce_mailbox: None,
            bounce_poll_secs: defaults::BOUNCE_POLL_SECS,
            mailgun_webhook_signing_key: None,
            sendgrid_webhook_verification_key: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Path of the SQLite file (as SQLite's `open` takes it).
    Sqlite(String),
    /// A libpq connection URI.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Invalid {
            name: "DATABASE_URL",
            why: why.to_owned(),
        };
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(bad("sqlite:// needs a file path, e.g. sqlite://optbridge.db"));
            }
            Ok(Self::Sqlite(path.to_owned()))
        } else if let Some(path) = raw.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(bad("sqlite: needs a file path, e.g. sqlite://optbridge.db"));
            }
            Ok(Self::Sqlite(path.to_owned()))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| bad(&format!("not a valid PostgreSQL URL: {e}")))?;
            Ok(Self::Postgres(raw.to_owned()))
        } else {
            Err(bad(
                "use sqlite://PATH (embedded) or postgres://USER@HOST:PORT/DB (production)",
            ))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: String,
    pub sender: TwilioSender,
    pub api_base: Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioSender {
    From(String),
    MessagingService(String),
}

/// 46elks (`SMS_PROVIDER=46elks`): <https://46elks.com/docs/send-sms>.
#[derive(Clone, PartialEq, Eq)]
pub struct ElksSettings {
    pub api_username: String,
    pub api_password: String,
    /// An E.164 number (replies possible) or an alphanumeric sender of at most 11 characters.
    pub from: String,
    pub api_base: Url,
    /// Carried as `?secret=…` in the callback URLs; a callback without it gets 403.
    pub webhook_secret: String,
}

/// inMobile (`SMS_PROVIDER=inmobile`): the v4 REST API.
#[derive(Clone, PartialEq, Eq)]
pub struct InMobileSettings {
    pub api_key: String,
    pub from: String,
    pub api_base: Url,
    /// Carried as `?secret=…` in the callback URLs (inMobile documents no signature).
    pub webhook_secret: String,
}

// Credentials stay out of `{:?}` (settings are logged on start-up errors).
impl std::fmt::Debug for ElksSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElksSettings")
            .field("api_username", &self.api_username)
            .field("from", &self.from)
            .field("api_base", &self.api_base.as_str())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for InMobileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMobileSettings")
            .field("from", &self.from)
            .field("api_base", &self.api_base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsProviderSettings {
    /// Messages are stored in the database and shown at /dev/sms.
    DevOutbox,
    Twilio(TwilioSettings),
    Elks(ElksSettings),
    InMobile(InMobileSettings),
}

/// Where the client's address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyTrust {
    /// The socket's peer is the client.
    Direct,
    /// `hops` trusted proxies in front, each appending the address it saw to `header`; anything
    /// left of those entries was written by the client and is not believed.
    Behind { header: ForwardedHeader, hops: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Validated configuration. Built once by [`Settings::from_args`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub database_pool_size: u32,
    pub bind: SocketAddr,
    pub base_url: Url,
    /// `None` means the dev mail outbox.
    pub smtp_url: Option<Url>,
    pub sms: SmsProviderSettings,
    pub import_max_bytes: u64,
    /// Where dashboard uploads wait for their import job (`IMPORT_DIR`).
    pub import_dir: std::path::PathBuf,
    pub request_body_timeout: Duration,
    pub sqlite_busy_timeout: Duration,
    pub http_workers: Option<usize>,
    pub link_ttl: Duration,
    /// See `SIGNING_KEY_RELOAD_SECS`.
    pub signing_key_reload: Duration,
    pub outbox: OutboxSettings,
    pub smtp_timeout: Duration,
    pub dkim: Option<DkimSettings>,
    pub doi: crate::consent::doi::DoiSettings,
    pub quiet_hours: crate::sms::quiet_hours::QuietHours,
    pub sms_timeout: Duration,
    pub trust_forwarded_for: ProxyTrust,
    pub log_format: LogFormat,
    pub metrics_token: Option<String>,
    /// Encrypts the link-signing keys at rest (`SIGNING_KEY_ENCRYPTION_KEY`, `…_OLD`).
    pub signing_key_encryption: crate::signing::KeyEncryption,
    /// The operator allows the dev outboxes on a public address (`DEV_OUTBOXES`).
    pub dev_outboxes: bool,
    /// Webhooks may go to private addresses (`WEBHOOK_ALLOW_PRIVATE`).
    pub webhook_allow_private: bool,
    /// `SMS_INBOUND_NUMBER`: the number tap-to-text asks people to text, when set.
    pub sms_inbound_number: Option<String>,
    /// `BOUNCE_ADDRESS`, `BOUNCE_MAILBOX`, `BOUNCE_POLL_SECS`.
    pub bounces: BounceSettings,
}

/// Where bounces go and where they are read (`crate::mail::bounce`).
#[derive(Debug, Clone)]
pub struct BounceSettings {
    /// VERP envelope senders are made from it; `None`: the From address is the envelope sender.
    pub address: Option<crate::mail::bounce::verp::BounceAddress>,
    /// Read every `poll` by the workers.
    pub mailbox: Option<crate::mail::bounce::mailbox::Mailbox>,
    pub poll: Duration,
    /// `MAILGUN_WEBHOOK_SIGNING_KEY`: Mailgun's event webhook is served when set.
    pub mailgun: Option<crate::mail::bounce::esp::MailgunKey>,
    /// `SENDGRID_WEBHOOK_VERIFICATION_KEY`: SendGrid's event webhook is served when set.
    pub sendgrid: Option<crate::mail::bounce::esp::SendGridKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    pub key_path: std::path::PathBuf,
    pub selector: String,
    pub domain: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
    #[error("{name} is required when {because}")]
    Missing { name: &'static str, because: &'static str },
}

impl Settings {
    pub fn from_args(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(&args.database_url)?;
        let database_pool_size = match args.database_pool_size {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    name: "DATABASE_POOL_SIZE",
                    why: "must be at least 1".into(),
                });
            }
            Some(n) => n,
            None => match database_url {
                DatabaseUrl::Sqlite(_) => 8,
                DatabaseUrl::Postgres(_) => 16,
            },
        };

        let bind = args
            .bind
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| ConfigError::Invalid {
                name: "BIND",
                why: format!("'{}' is not HOST:PORT", args.bind),
            })?;

        let base_url = match &args.base_url {
            Some(raw) => parse_base_url(raw)?,
            None => parse_base_url(&format!("http://{}", args.bind))?,
        };

        let smtp_url = match args.smtp_url.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => {
                let url = Url::parse(raw).map_err(|e| ConfigError::Invalid {
                    name: "SMTP_URL",
                    why: format!("not a URL ({e})"),
                })?;
                if !matches!(url.scheme(), "smtp" | "smtps") {
                    return Err(ConfigError::Invalid {
                        name: "SMTP_URL",
                        why: "scheme must be smtp:// (STARTTLS when offered, or ?tls=required) or smtps:// (implicit TLS)".into(),
                    });
                }
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(ConfigError::Invalid {
                        name: "SMTP_URL",
                        why: "needs a host, e.g. smtp://127.0.0.1:2525".into(),
                    });
                }
                Some(url)
            }
        };

        let sms = match args.sms_provider.as_deref().filter(|s| !s.is_empty()) {
            None | Some("dev") => SmsProviderSettings::DevOutbox,
            Some("twilio") => SmsProviderSettings::Twilio(twilio_settings(args)?),
            Some("46elks") => SmsProviderSettings::Elks(elks_settings(args)?),
            Some("inmobile") => SmsProviderSettings::InMobile(inmobile_settings(args)?),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SMS_PROVIDER",
                    why: format!(
                        "unknown provider '{other}' (use 'twilio', '46elks' or 'inmobile', or leave unset for the dev outbox)"
                    ),
                });
            }
        };

        let log_format = match args.log_format.as_str() {
            "pretty" | "" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    why: format!("'{other}' (use pretty or json)"),
                });
            }
        };

        Ok(Self {
            database_url,
            database_pool_size,
            bind,
            base_url,
            smtp_url,
            sms,
            import_max_bytes: args.import_max_bytes,
            import_dir: args
                .import_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(defaults::IMPORT_DIR_NAME)),
            request_body_timeout: Duration::from_secs(positive(
                args.request_body_timeout_secs,
                "REQUEST_BODY_TIMEOUT_SECS",
            )?),
            sqlite_busy_timeout: Duration::from_millis(args.sqlite_busy_timeout_ms),
            http_workers: args.http_workers.filter(|n| *n > 0),
            link_ttl: Duration::from_secs(u64::from(positive(args.link_ttl_days, "LINK_TTL_DAYS")?) * 86_400),
            signing_key_reload: Duration::from_secs(positive(args.signing_key_reload_secs, "SIGNING_KEY_RELOAD_SECS")?),
            outbox: OutboxSettings {
                workers: args.outbox_workers,
                batch: positive(args.outbox_batch, "OUTBOX_BATCH")?,
                invitation_batch: positive(args.invitation_batch, "INVITATION_BATCH")?,
                lease: Duration::from_secs(positive(args.outbox_lease_secs, "OUTBOX_LEASE_SECS")?),
                poll: Duration::from_millis(positive(args.outbox_poll_ms, "OUTBOX_POLL_MS")?),
                max_attempts: positive(args.outbox_max_attempts, "OUTBOX_MAX_ATTEMPTS")?
                    .try_into()
                    .unwrap_or(i32::MAX),
                retry_base: Duration::from_millis(args.outbox_retry_base_ms),
                retry_max: Duration::from_millis(args.outbox_retry_max_ms.max(args.outbox_retry_base_ms)),
                send_concurrency: positive(args.smtp_concurrency, "SMTP_CONCURRENCY")?,
                breaker: BreakerConfig {
                    failures: args.circuit_breaker_failures,
                    cooldown: Duration::from_millis(positive(
                        args.circuit_breaker_cooldown_ms,
                        "CIRCUIT_BREAKER_COOLDOWN_MS",
                    )?),
                    max_cooldown: Duration::from_millis(
                        args.circuit_breaker_max_cooldown_ms
                            .max(args.circuit_breaker_cooldown_ms),
                    ),
                },
            },
            smtp_timeout: Duration::from_secs(positive(args.smtp_timeout_secs, "SMTP_TIMEOUT_SECS")?),
            dkim: dkim_settings(args)?,
            doi: crate::consent::doi::DoiSettings {
                expiry: Duration::from_secs(u64::from(positive(args.doi_expiry_hours, "DOI_EXPIRY_HOURS")?) * 3600),
                max_code_attempts: positive(args.doi_max_code_attempts, "DOI_MAX_CODE_ATTEMPTS")?
                    .try_into()
                    .unwrap_or(i32::MAX),
                max_sends: positive(args.doi_max_sends, "DOI_MAX_SENDS")?
                    .try_into()
                    .unwrap_or(i32::MAX),
                resend_after: Duration::from_secs(args.doi_resend_secs),
                limits: crate::consent::doi::AbuseLimits {
                    per_token: i64::from(positive(args.limit_doi_per_token, "LIMIT_DOI_PER_TOKEN")?),
                    per_phone: i64::from(positive(args.limit_doi_per_phone, "LIMIT_DOI_PER_PHONE")?),
                    per_ip: i64::from(positive(args.limit_doi_per_ip, "LIMIT_DOI_PER_IP")?),
                    per_country: i64::from(positive(args.limit_doi_per_country, "LIMIT_DOI_PER_COUNTRY")?),
                    per_workspace: i64::from(positive(args.limit_doi_per_workspace, "LIMIT_DOI_PER_WORKSPACE")?),
                },
                email_reminder: (args.doi_email_reminder_secs > 0)
                    .then(|| Duration::from_secs(args.doi_email_reminder_secs)),
            },
            quiet_hours: parse_quiet_hours(&args.quiet_hours_window)?,
            sms_timeout: Duration::from_secs(positive(args.sms_timeout_secs, "SMS_TIMEOUT_SECS")?),
            trust_forwarded_for: proxy_trust(args)?,
            log_format,
            metrics_token: args.metrics_token.clone().filter(|t| !t.is_empty()),
            signing_key_encryption: key_encryption(args)?,
            dev_outboxes: args.dev_outboxes,
            webhook_allow_private: args.webhook_allow_private,
            sms_inbound_number: inbound_number(args)?,
            bounces: bounce_settings(args)?,
        })
    }
}

/// `SMS_INBOUND_NUMBER`, which goes into `sms:` links: a `+` and 7 to 15 digits (E.164).
fn inbound_number(args: &ConfigArgs) -> Result<Option<String>, ConfigError> {
    let Some(raw) = args
        .sms_inbound_number
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        return Ok(None);
    };
    if crate::sms::provider::is_phone_number(raw) {
        Ok(Some(raw.to_owned()))
    } else {
        Err(ConfigError::Invalid {
            name: "SMS_INBOUND_NUMBER",
            why: format!("'{raw}' is not a number in international format, e.g. +4512345678"),
        })
    }
}

fn bounce_settings(args: &ConfigArgs) -> Result<BounceSettings, ConfigError> {
    use crate::mail::bounce::{esp, mailbox::Mailbox, verp::BounceAddress};
    // An optional setting: unset or blank is `None`; otherwise `parse` it, its error naming it.
    fn optional<T>(
        raw: &Option<String>,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        raw.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|raw| parse(raw).map_err(|why| ConfigError::Invalid { name, why }))
            .transpose()
    }
    let address = optional(&args.bounce_address, "BOUNCE_ADDRESS", BounceAddress::parse)?;
    let mailbox = optional(&args.bounce_mailbox, "BOUNCE_MAILBOX", |raw| {
        let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        Mailbox::from_url(&url)
    })?;
    if mailbox.is_some() && address.is_none() {
        return Err(ConfigError::Missing {
            name: "BOUNCE_ADDRESS",
            because: "BOUNCE_MAILBOX is set (bounces are matched to invitations by their VERP address)",
        });
    }
    Ok(BounceSettings {
        address,
        mailbox,
        poll: Duration::from_secs(positive(args.bounce_poll_secs, "BOUNCE_POLL_SECS")?),
        mailgun: optional(
            &args.mailgun_webhook_signing_key,
            "MAILGUN_WEBHOOK_SIGNING_KEY",
            esp::MailgunKey::new,
        )?,
        sendgrid: optional(
            &args.sendgrid_webhook_verification_key,
            "SENDGRID_WEBHOOK_VERIFICATION_KEY",
            esp::SendGridKey::parse,
        )?,
    })
}

fn key_encryption(args: &ConfigArgs) -> Result<crate::signing::KeyEncryption, ConfigError> {
    let parse = |raw: &Option<String>, name: &'static str| {
        raw.as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(|r| crate::crypto::EncryptionKey::from_base64(r).map_err(|why| ConfigError::Invalid { name, why }))
            .transpose()
    };
    let current = parse(&args.signing_key_encryption_key, "SIGNING_KEY_ENCRYPTION_KEY")?;
    let previous = parse(&args.signing_key_encryption_key_old, "SIGNING_KEY_ENCRYPTION_KEY_OLD")?;
    if current.is_none() && previous.is_some() {
        return Err(ConfigError::Missing {
            name: "SIGNING_KEY_ENCRYPTION_KEY",
            because: "SIGNING_KEY_ENCRYPTION_KEY_OLD is set (it names the key being replaced)",
        });
    }
    Ok(crate::signing::KeyEncryption { current, previous })
}

fn dkim_settings(args: &ConfigArgs) -> Result<Option<DkimSettings>, ConfigError> {
    let Some(key_path) = args.dkim_key_path.clone() else {
        return Ok(None);
    };
    const BECAUSE: &str = "DKIM_KEY_PATH is set";
    let selector = args
        .dkim_selector
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ConfigError::Missing {
            name: "DKIM_SELECTOR",
            because: BECAUSE,
        })?;
    let domain = args
        .dkim_domain
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ConfigError::Missing {
            name: "DKIM_DOMAIN",
            because: BECAUSE,
        })?;
    Ok(Some(DkimSettings {
        key_path,
        selector,
        domain,
    }))
}

/// `08-20`: sending allowed from 08:00 to 20:00 local time.
fn parse_quiet_hours(raw: &str) -> Result<crate::sms::quiet_hours::QuietHours, ConfigError> {
    let bad = || ConfigError::Invalid {
        name: "QUIET_HOURS_WINDOW",
        why: format!("'{raw}' is not START-END in hours, e.g. 08-20"),
    };
    let (start, end) = raw.split_once('-').ok_or_else(bad)?;
    let start: u32 = start.trim().parse().map_err(|_| bad())?;
    let end: u32 = end.trim().parse().map_err(|_| bad())?;
    if start >= end || end > 24 {
        return Err(bad());
    }
    Ok(crate::sms::quiet_hours::QuietHours {
        start_hour: start,
        end_hour: end,
    })
}

fn proxy_trust(args: &ConfigArgs) -> Result<ProxyTrust, ConfigError> {
    if !args.trust_forwarded_for {
        return Ok(ProxyTrust::Direct);
    }
    let header = match args.forwarded_header.to_ascii_lowercase().as_str() {
        "x-forwarded-for" => ForwardedHeader::XForwardedFor,
        "forwarded" => ForwardedHeader::Forwarded,
        other => {
            return Err(ConfigError::Invalid {
                name: "FORWARDED_HEADER",
                why: format!("'{other}' (use x-forwarded-for or forwarded)"),
            });
        }
    };
    Ok(ProxyTrust::Behind {
        header,
        hops: positive(args.trusted_proxy_hops, "TRUSTED_PROXY_HOPS")?,
    })
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(value: T, name: &'static str) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            why: format!("must be greater than 0 (got {value})"),
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let bad = |why: String| ConfigError::Invalid { name: "BASE_URL", why };
    let url = Url::parse(raw).map_err(|e| bad(format!("'{raw}' is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("'{raw}' must start with http:// or https://")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!("'{raw}' must not have a query or fragment")));
    }
    Ok(url)
}

fn twilio_settings(args: &ConfigArgs) -> Result<TwilioSettings, ConfigError> {
    const BECAUSE: &str = "SMS_PROVIDER=twilio";
    let required = |value: &Option<String>, name: &'static str| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing { name, because: BECAUSE })
    };
    let account_sid = required(&args.twilio_account_sid, "TWILIO_ACCOUNT_SID")?;
    let auth_token = required(&args.twilio_auth_token, "TWILIO_AUTH_TOKEN")?;
    let from = args.twilio_from.clone().filter(|v| !v.is_empty());
    let service = args.twilio_messaging_service_sid.clone().filter(|v| !v.is_empty());
    let sender = match (from, service) {
        (_, Some(sid)) => TwilioSender::MessagingService(sid),
        (Some(from), None) => TwilioSender::From(from),
        (None, None) => {
            return Err(ConfigError::Missing {
                name: "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID",
                because: BECAUSE,
            });
        }
    };
    let raw_base = args
        .twilio_api_base
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "https://api.twilio.com".to_owned());
    let api_base = Url::parse(&raw_base).map_err(|e| ConfigError::Invalid {
        name: "TWILIO_API_BASE",
        why: format!("'{raw_base}' is not a URL ({e})"),
    })?;
    Ok(TwilioSettings {
        account_sid,
        auth_token,
        sender,
        api_base,
    })
}

fn required_for(value: &Option<String>, name: &'static str, because: &'static str) -> Result<String, ConfigError> {
    value
        .clone()
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing { name, because })
}

fn api_base(raw: &str, name: &'static str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::Invalid {
        name,
        why: format!("'{raw}' is not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            name,
            why: format!("'{raw}' must start with http:// or https://"),
        });
    }
    Ok(url)
}

/// E.164: `+`, a country code not starting with 0, 8 to 15 digits in all.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

/// An alphanumeric sender id: `min..=11` ASCII letters, digits or spaces, with at least one
/// letter (all digits would read as a number) — what GSM networks carry as a text sender.
fn is_text_sender(from: &str, min: usize) -> bool {
    (min..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
}

fn elks_settings(args: &ConfigArgs) -> Result<ElksSettings, ConfigError> {
    const BECAUSE: &str = "SMS_PROVIDER=46elks";
    let from = required_for(&args.elks_from, "ELKS_FROM", BECAUSE)?;
    if !is_e164(&from) && !is_text_sender(&from, 1) {
        return Err(ConfigError::Invalid {
            name: "ELKS_FROM",
            why: format!(
                "'{from}' is neither an E.164 number (+46700000000) nor an alphanumeric sender of at most 11 characters"
            ),
        });
    }
    Ok(ElksSettings {
        api_username: required_for(&args.elks_api_username, "ELKS_API_USERNAME", BECAUSE)?,
        api_password: required_for(&args.elks_api_password, "ELKS_API_PASSWORD", BECAUSE)?,
        from,
        api_base: api_base(&args.elks_api_base, "ELKS_API_BASE")?,
        // 46elks signs nothing: the secret in the URL is all that tells its callbacks from anyone's.
        webhook_secret: required_for(&args.elks_webhook_secret, "ELKS_WEBHOOK_SECRET", BECAUSE)?,
    })
}

fn inmobile_settings(args: &ConfigArgs) -> Result<InMobileSettings, ConfigError> {
    const BECAUSE: &str = "SMS_PROVIDER=inmobile";
    let api_key = required_for(&args.inmobile_api_key, "INMOBILE_API_KEY", BECAUSE)?;
    let from = required_for(&args.inmobile_from, "INMOBILE_FROM", BECAUSE)?;
    let digits = from.strip_prefix('+').unwrap_or(&from);
    let number = (1..=14).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if !number && !is_text_sender(&from, 3) {
        return Err(ConfigError::Invalid {
            name: "INMOBILE_FROM",
            why: format!("'{from}' is neither a text sender of 3 to 11 characters nor a number of up to 14 digits"),
        });
    }
    let webhook_secret = match args.inmobile_webhook_secret.clone().filter(|s| !s.trim().is_empty()) {
        Some(secret) => secret,
        // Unguessable without the API key, and stable across restarts and instances.
        None => {
            crate::crypto::hmac_sha256_hex(api_key.as_bytes(), b"optbridge inmobile callback secret")[..32].to_owned()
        }
    };
    Ok(InMobileSettings {
        api_key,
        from,
        api_base: api_base(&args.inmobile_api_base, "INMOBILE_API_BASE")?,
        webhook_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ConfigArgs {
        ConfigArgs::default()
    }

    /// `Default` must say what clap's attributes say.
    #[test]
    fn default_matches_the_command_line() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ConfigArgs,
        }
        let vars = [
            "DATABASE_URL",
            "BIND",
            "BASE_URL",
            "SMTP_URL",
            "SMS_PROVIDER",
            "LOG_FORMAT",
            "OUTBOX_WORKERS",
        ];
        if vars.iter().any(|v| std::env::var_os(v).is_some()) {
            return; // the environment would change clap's answer
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["optbridge"]).expect("parses");
        assert_eq!(format!("{:?}", parsed.args), format!("{:?}", ConfigArgs::default()));
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::from_args(&args()).expect("defaults");
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("optbridge.db".into()));
        assert_eq!(s.base_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(s.sms, SmsProviderSettings::DevOutbox);
        assert!(s.smtp_url.is_none());
        assert_eq!(s.database_pool_size, 8);
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://postgres@127.0.0.1/test"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let err = DatabaseUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn twilio_requires_credentials_and_sender() {
        let mut a = args();
        a.sms_provider = Some("twilio".into());
        let err = Settings::from_args(&a).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "TWILIO_ACCOUNT_SID",
                because: "SMS_PROVIDER=twilio"
            }
        );
        a.twilio_account_sid = Some("AC1".into());
        a.twilio_auth_token = Some("tok".into());
        assert!(Settings::from_args(&a).is_err(), "sender missing");
        a.twilio_from = Some("+4512345678".into());
        let s = Settings::from_args(&a).expect("complete twilio config");
        let SmsProviderSettings::Twilio(t) = s.sms else {
            panic!("expected twilio")
        };
        assert_eq!(t.api_base.as_str(), "https://api.twilio.com/");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let mut a = args();
        a.bind = "nonsense".into();
        assert!(Settings::from_args(&a).unwrap_err().to_string().starts_with("BIND"));
        let mut a = args();
        a.base_url = Some("ftp://x".into());
        assert!(Settings::from_args(&a).unwrap_err().to_string().starts_with("BASE_URL"));
        let mut a = args();
        a.smtp_url = Some("http://x".into());
        assert!(Settings::from_args(&a).unwrap_err().to_string().starts_with("SMTP_URL"));
        let mut a = args();
        a.sms_provider = Some("carrier-pigeon".into());
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("SMS_PROVIDER")
        );
    }

    #[test]
    fn bounce_settings_are_checked() {
        let s = Settings::from_args(&args()).unwrap();
        assert!(s.bounces.address.is_none() && s.bounces.mailbox.is_none());
        assert_eq!(s.bounces.poll, Duration::from_secs(60));
        let mut a = args();
        a.bounce_mailbox = Some("pop3s://bounces:pw@mail.shop.example".into());
        let e = Settings::from_args(&a).unwrap_err().to_string();
        assert!(e.starts_with("BOUNCE_ADDRESS is required"), "{e}");
        a.bounce_address = Some("bounces@shop.example".into());
        let s = Settings::from_args(&a).unwrap();
        assert!(s.bounces.address.is_some() && s.bounces.mailbox.is_some());
        assert!(!format!("{s:?}").contains("pw@"), "no password in debug output");
        a.bounce_mailbox = Some("imaps://bounces:pw@mail.shop.example/Bounces".into());
        let s = Settings::from_args(&a).unwrap();
        assert_eq!(
            s.bounces.mailbox.as_ref().map(|m| m.target()).as_deref(),
            Some("mail.shop.example:993/Bounces")
        );
        assert!(!format!("{s:?}").contains("pw@"), "no password in debug output");
        for unusable in [
            "imap4://bounces:pw@mail.shop.example",
            "https://mail.shop.example",
            "pop3s://mail.shop.example",
        ] {
            a.bounce_mailbox = Some(unusable.into());
            let e = Settings::from_args(&a).unwrap_err().to_string();
            assert!(e.starts_with("BOUNCE_MAILBOX"), "{unusable}: {e}");
        }
        a.bounce_mailbox = None;
        a.bounce_address = Some("not an address".into());
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("BOUNCE_ADDRESS")
        );
        a.bounce_address = None;
        a.bounce_poll_secs = 0;
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("BOUNCE_POLL_SECS")
        );
        a.bounce_poll_secs = 60;
        a.mailgun_webhook_signing_key = Some("key-0123456789abcdef".into());
        a.sendgrid_webhook_verification_key = Some("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==".into());
        let s = Settings::from_args(&a).unwrap();
        assert!(s.bounces.mailgun.is_some() && s.bounces.sendgrid.is_some());
        assert!(
            !format!("{s:?}").contains("0123456789abcdef"),
            "no signing key in debug output"
        );
        a.sendgrid_webhook_verification_key = Some("c2VuZGdyaWQ=".into());
        let e = Settings::from_args(&a).unwrap_err().to_string();
        assert!(e.starts_with("SENDGRID_WEBHOOK_VERIFICATION_KEY"), "{e}");
        a.sendgrid_webhook_verification_key = None;
        a.mailgun_webhook_signing_key = Some("short".into());
        let e = Settings::from_args(&a).unwrap_err().to_string();
        assert!(e.starts_with("MAILGUN_WEBHOOK_SIGNING_KEY"), "{e}");
    }

    fn elks_args() -> ConfigArgs {
        let mut a = args();
        a.sms_provider = Some("46elks".into());
        a.elks_api_username = Some("u0123".into());
        a.elks_api_password = Some("pw".into());
        a.elks_from = Some("Skobutik".into());
        a.elks_webhook_secret = Some("hook-secret".into());
        a
    }

    #[test]
    fn elks_requires_credentials_a_valid_sender_and_a_webhook_secret() {
        let s = Settings::from_args(&elks_args()).expect("complete 46elks config");
        let SmsProviderSettings::Elks(e) = &s.sms else {
            panic!("expected 46elks")
        };
        assert_eq!(e.api_base.as_str(), "https://api.46elks.com/");
        assert!(
            !format!("{:?}", s.sms).contains("hook-secret"),
            "secrets stay out of Debug"
        );

        let mut a = elks_args();
        a.elks_webhook_secret = None;
        assert_eq!(
            Settings::from_args(&a).unwrap_err(),
            ConfigError::Missing {
                name: "ELKS_WEBHOOK_SECRET",
                because: "SMS_PROVIDER=46elks"
            }
        );
        for ok in ["+46766861004", "ElkCo", "Sko Butik 1", "A2345678901"] {
            let mut a = elks_args();
            a.elks_from = Some(ok.into());
            assert!(Settings::from_args(&a).is_ok(), "{ok}");
        }
        for bad in [
            "Skobutikken1",
            "46766861004",
            "+0123456789",
            "Sko-butik",
            "12345",
            "Skø",
        ] {
            let mut a = elks_args();
            a.elks_from = Some(bad.into());
            let err = Settings::from_args(&a).unwrap_err().to_string();
            assert!(err.starts_with("ELKS_FROM"), "{bad}: {err}");
        }
    }

    #[test]
    fn inmobile_requires_key_and_sender_and_derives_a_callback_secret() {
        let mut a = args();
        a.sms_provider = Some("inmobile".into());
        a.inmobile_api_key = Some("key-1".into());
        assert_eq!(
            Settings::from_args(&a).unwrap_err(),
            ConfigError::Missing {
                name: "INMOBILE_FROM",
                because: "SMS_PROVIDER=inmobile"
            }
        );
        a.inmobile_from = Some("FancyShop".into());
        let SmsProviderSettings::InMobile(first) = Settings::from_args(&a).unwrap().sms else {
            panic!("expected inmobile")
        };
        assert_eq!(first.api_base.as_str(), "https://api.inmobile.com/");
        assert_eq!(first.webhook_secret.len(), 32);
        assert!(!first.webhook_secret.contains("key-1"));
        a.inmobile_api_key = Some("key-2".into());
        let SmsProviderSettings::InMobile(second) = Settings::from_args(&a).unwrap().sms else {
            panic!("expected inmobile")
        };
        assert_ne!(first.webhook_secret, second.webhook_secret, "derived from the key");
        a.inmobile_webhook_secret = Some("chosen".into());
        let SmsProviderSettings::InMobile(chosen) = Settings::from_args(&a).unwrap().sms else {
            panic!("expected inmobile")
        };
        assert_eq!(chosen.webhook_secret, "chosen");
        a.inmobile_from = Some("AB".into());
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("INMOBILE_FROM")
        );
        a.inmobile_from = Some("4570202020".into());
        assert!(Settings::from_args(&a).is_ok());
    }
}
