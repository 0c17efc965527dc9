//! One `Settings` struct, read from the environment and CLI flags and validated once at start.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use url::Url;

/// Raw configuration as clap collects it from flags and the environment.
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigArgs {
    /// Database: `sqlite://PATH` (embedded default) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "sqlite://optbridge.db"
    )]
    pub database_url: String,

    /// Connections in the database pool (default: 8 for SQLite, 16 for PostgreSQL).
    #[arg(long, env = "DATABASE_POOL_SIZE", global = true)]
    pub database_pool_size: Option<u32>,

    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND", global = true, default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Public origin used in links (default: http://$BIND).
    #[arg(long, env = "BASE_URL", global = true)]
    pub base_url: Option<String>,

    /// SMTP server for outgoing email, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@host`.
    /// Unset: emails go to the dev outbox at /dev/mail.
    #[arg(long, env = "SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// SMS provider: `twilio`. Unset: SMS go to the dev outbox at /dev/sms.
    #[arg(long, env = "SMS_PROVIDER", global = true)]
    pub sms_provider: Option<String>,

    #[arg(long, env = "TWILIO_ACCOUNT_SID", global = true, hide = true)]
    pub twilio_account_sid: Option<String>,

    #[arg(
        long,
        env = "TWILIO_AUTH_TOKEN",
        global = true,
        hide = true,
        hide_env_values = true
    )]
    pub twilio_auth_token: Option<String>,

    #[arg(long, env = "TWILIO_FROM", global = true, hide = true)]
    pub twilio_from: Option<String>,

    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID", global = true, hide = true)]
    pub twilio_messaging_service_sid: Option<String>,

    #[arg(long, env = "TWILIO_API_BASE", global = true, hide = true)]
    pub twilio_api_base: Option<String>,

    /// Largest accepted CSV import body, in bytes.
    #[arg(long, env = "IMPORT_MAX_BYTES", global = true, default_value_t = 256 * 1024 * 1024)]
    pub import_max_bytes: u64,

    /// Milliseconds a SQLite writer waits for the write lock before giving up.
    #[arg(
        long,
        env = "SQLITE_BUSY_TIMEOUT_MS",
        global = true,
        default_value_t = 10_000
    )]
    pub sqlite_busy_timeout_ms: u64,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "HTTP_WORKERS", global = true)]
    pub http_workers: Option<usize>,

    /// Log format: `pretty` or `json`.
    #[arg(long, env = "LOG_FORMAT", global = true, default_value = "pretty")]
    pub log_format: String,
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
                return Err(bad(
                    "sqlite:// needs a file path, e.g. sqlite://optbridge.db",
                ));
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsProviderSettings {
    /// Messages are stored in the database and shown at /dev/sms.
    DevOutbox,
    Twilio(TwilioSettings),
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
    pub sqlite_busy_timeout: Duration,
    pub http_workers: Option<usize>,
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
    #[error("{name} is required when {because}")]
    Missing {
        name: &'static str,
        because: &'static str,
    },
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
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SMS_PROVIDER",
                    why: format!(
                        "unknown provider '{other}' (use 'twilio', or leave unset for the dev outbox)"
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
            sqlite_busy_timeout: Duration::from_millis(args.sqlite_busy_timeout_ms),
            http_workers: args.http_workers.filter(|n| *n > 0),
            log_format,
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let bad = |why: String| ConfigError::Invalid {
        name: "BASE_URL",
        why,
    };
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
            .ok_or(ConfigError::Missing {
                name,
                because: BECAUSE,
            })
    };
    let account_sid = required(&args.twilio_account_sid, "TWILIO_ACCOUNT_SID")?;
    let auth_token = required(&args.twilio_auth_token, "TWILIO_AUTH_TOKEN")?;
    let from = args.twilio_from.clone().filter(|v| !v.is_empty());
    let service = args
        .twilio_messaging_service_sid
        .clone()
        .filter(|v| !v.is_empty());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ConfigArgs {
        ConfigArgs {
            database_url: "sqlite://optbridge.db".into(),
            bind: "127.0.0.1:8080".into(),
            import_max_bytes: 1024,
            sqlite_busy_timeout_ms: 100,
            log_format: "pretty".into(),
            ..ConfigArgs::default()
        }
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
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("BIND")
        );
        let mut a = args();
        a.base_url = Some("ftp://x".into());
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("BASE_URL")
        );
        let mut a = args();
        a.smtp_url = Some("http://x".into());
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("SMTP_URL")
        );
        let mut a = args();
        a.sms_provider = Some("carrier-pigeon".into());
        assert!(
            Settings::from_args(&a)
                .unwrap_err()
                .to_string()
                .starts_with("SMS_PROVIDER")
        );
    }
}
