//! Email: the invitation message and the transports that deliver it.
//!
//! `SMTP_URL` set → SMTP through lettre's pooled async transport; unset → the dev outbox, which
//! stores each message in the database for `/dev/mail`.

pub mod dkim;
pub mod invitation;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::prelude::*;
use lettre::message::Mailbox;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use self::dkim::DkimSigner;
use url::Url;

use crate::db::schema::dev_messages;
use crate::db::{self, Db, DbError};

/// A message ready to hand to a transport.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub from: Mailbox,
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub message_id: String,
    pub message: lettre::Message,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    #[error("address: {0}")]
    Address(String),
    #[error("message: {0}")]
    Build(String),
}

/// The outcome class of a failed send, which decides retry versus bounce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: SMTP 4xx, connection refused or dropped, timeouts.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The server refused for good (SMTP 5xx). `hard_bounce`: the address itself is bad
    /// (550/551/553 or an enhanced status 5.1.x), so it is suppressed.
    #[error("permanent failure: {reason}")]
    Permanent {
        code: Option<u16>,
        hard_bounce: bool,
        reason: String,
    },
}

/// Where invitation emails go.
#[derive(Clone)]
pub enum Mailer {
    Smtp(SmtpMailer),
    DevOutbox(Db),
}

impl Mailer {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "smtp",
            Self::DevOutbox(_) => "dev-outbox",
        }
    }

    /// Signs (when DKIM is configured) and delivers one message.
    pub async fn send(
        &self,
        workspace_id: &str,
        email: &OutgoingEmail,
        dkim: Option<&DkimSigner>,
    ) -> Result<(), SendError> {
        let mut raw = email.message.formatted();
        if let Some(signer) = dkim {
            match signer.sign(&raw, chrono::Utc::now().timestamp()) {
                Ok(header) => raw = [header.as_bytes(), &raw].concat(),
                // A key that cannot sign will not sign on retry either; but the message is fine,
                // so retrying after the operator fixed the key is right.
                Err(e) => return Err(SendError::Transient(format!("DKIM signing failed: {e}"))),
            }
        }
        match self {
            Self::Smtp(smtp) => smtp.send_raw(email.message.envelope(), &raw).await,
            Self::DevOutbox(db) => {
                let row = DevMail::from_email(workspace_id, email, &raw);
                db.run(move |conn| row.insert(conn))
                    .await
                    .map_err(|e| SendError::Transient(format!("dev outbox: {e}")))
            }
        }
    }
}

#[derive(Clone)]
pub struct SmtpMailer {
    url: Url,
    connections: u32,
    timeout: Duration,
    transport: Arc<RwLock<AsyncSmtpTransport<Tokio1Executor>>>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.url.host_str())
            .finish()
    }
}

impl SmtpMailer {
    /// `smtp://host:port` (plain; add `?tls=required` for STARTTLS), `smtps://` (implicit TLS),
    /// `user:pass@` for AUTH. `connections` caps the pool; `timeout` bounds each whole send.
    pub fn new(url: &Url, connections: u32, timeout: Duration) -> Result<Self, String> {
        let transport = Self::build(url, connections, timeout)?;
        Ok(Self {
            url: url.clone(),
            connections,
            timeout,
            transport: Arc::new(RwLock::new(transport)),
        })
    }

    fn build(url: &Url, connections: u32, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
            .map_err(|e| format!("SMTP_URL: {e}"))?
            .pool_config(PoolConfig::new().max_size(connections.max(1)))
            .timeout(Some(timeout))
            .build())
    }

    /// Replaces the pool. A send cut off mid-transaction leaves its connection in lettre's pool
    /// in an unknown protocol state (the next MAIL FROM gets "503 nested MAIL command"), so
    /// after a timeout or a protocol error the pool starts fresh; sends already running keep
    /// the old one until they finish.
    fn reset_pool(&self) {
        match Self::build(&self.url, self.connections, self.timeout) {
            Ok(fresh) => {
                if let Ok(mut slot) = self.transport.write() {
                    *slot = fresh;
                }
            }
            Err(e) => tracing::error!(error = %e, "rebuilding the SMTP pool failed"),
        }
    }

    async fn send_raw(&self, envelope: &lettre::address::Envelope, raw: &[u8]) -> Result<(), SendError> {
        let transport = match self.transport.read() {
            Ok(t) => t.clone(),
            Err(_) => return Err(SendError::Transient("SMTP transport lock poisoned".into())),
        };
        // lettre's own timeout covers connecting only; bound the whole exchange.
        match tokio::time::timeout(self.timeout, transport.send_raw(envelope, raw)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let classified = classify_smtp_error(&e);
                if matches!(e.status().map(|c| c.to_string()).as_deref(), Some("503")) {
                    self.reset_pool();
                }
                Err(classified)
            }
            Err(_) => {
                self.reset_pool();
                Err(SendError::Transient(format!(
                    "no answer from the SMTP server within {} s",
                    self.timeout.as_secs()
                )))
            }
        }
    }
}

fn classify_smtp_error(e: &lettre::transport::smtp::Error) -> SendError {
    let reason = e.to_string();
    // 503 (bad sequence) is the client's protocol state, not the recipient: retry on a fresh
    // connection.
    if e.is_permanent() && !matches!(e.status().map(|c| c.to_string()).as_deref(), Some("503")) {
        let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
        // RFC 3463: 5.1.x is about the address (bad mailbox, bad domain); 550/551/553 mean the
        // mailbox does not exist or is not accepted.
        let hard_bounce = matches!(code, Some(550 | 551 | 553)) || reason.contains(" 5.1.");
        SendError::Permanent {
            code,
            hard_bounce,
            reason,
        }
    } else {
        SendError::Transient(reason)
    }
}

/// A message in the dev outbox.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = dev_messages)]
pub struct DevMail {
    pub id: String,
    pub workspace_id: Option<String>,
    pub channel: String,
    pub direction: String,
    pub sender: String,
    pub recipient: String,
    pub subject: Option<String>,
    pub body_text: String,
    pub body_html: Option<String>,
    pub raw: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

impl DevMail {
    fn from_email(workspace_id: &str, email: &OutgoingEmail, raw: &[u8]) -> Self {
        Self {
            id: db::new_id(),
            workspace_id: Some(workspace_id.to_owned()),
            channel: "email".into(),
            direction: "out".into(),
            sender: email.from.to_string(),
            recipient: email.to.to_string(),
            subject: Some(email.subject.clone()),
            body_text: email.text.clone(),
            body_html: email.html.clone(),
            raw: Some(String::from_utf8_lossy(raw).into_owned()),
            created_at: db::now(),
        }
    }

    fn insert(self, conn: &mut db::DbConn) -> Result<(), DbError> {
        diesel::insert_into(dev_messages::table).values(&self).execute(conn)?;
        Ok(())
    }
}
