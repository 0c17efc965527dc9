//! Email: the invitation message, the outbox job handler that sends it ([`deliver`]) and the
//! transports that deliver it.
//!
//! `SMTP_URL` set → SMTP through our connection pool ([`smtp::SmtpPool`]); unset → the dev
//! outbox, which stores each message in the database for `/dev/mail`.

pub mod bounce;
pub mod deliver;
pub mod dkim;
pub mod invitation;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use lettre::message::Mailbox;

use self::dkim::DkimSigner;
use self::smtp::SmtpPool;
use url::Url;

use crate::db::schema::dev_messages;
use crate::db::{self, Db, DbError};
use crate::domain::{Channel, Direction};

/// A message ready to hand to a transport.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub from: Mailbox,
    pub to: Mailbox,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub message_id: String,
    pub envelope: lettre::address::Envelope,
    /// The whole message as sent (RFC 5322, CRLF line ends), before DKIM signing.
    pub raw: Vec<u8>,
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

    /// Starts a series of messages: over one SMTP session, each message's content sent with
    /// the next message's first commands ([`smtp::SmtpSeries`]); or one dev outbox row each.
    pub fn series<K>(&self) -> MailSeries<'_, K> {
        match self {
            Self::Smtp(smtp) => MailSeries::Smtp(smtp.pool.series()),
            Self::DevOutbox(db) => MailSeries::DevOutbox(db),
        }
    }
}

/// Messages delivered one after another; see [`Mailer::series`]. Outcomes come back keyed by
/// `K`, over SMTP one message late: call [`MailSeries::finish`] for the last one.
pub enum MailSeries<'a, K> {
    Smtp(smtp::SmtpSeries<'a, K>),
    DevOutbox(&'a Db),
}

impl<K> MailSeries<'_, K> {
    /// Signs (when DKIM is configured) and sends one message; returns the outcomes that became
    /// known.
    pub async fn send(
        &mut self,
        key: K,
        workspace_id: &str,
        email: OutgoingEmail,
        dkim: Option<&DkimSigner>,
    ) -> Vec<(K, Result<(), SendError>)> {
        let raw = match dkim {
            None => None,
            Some(signer) => match signer.sign(&email.raw, chrono::Utc::now().timestamp()) {
                Ok(header) => Some([header.as_bytes(), &email.raw].concat()),
                // A key that cannot sign will not sign on retry either; but the message is fine,
                // so retrying after the operator fixed the key is right.
                Err(e) => return vec![(key, Err(SendError::Transient(format!("DKIM signing failed: {e}"))))],
            },
        };
        match self {
            Self::Smtp(series) => {
                let envelope = email.envelope;
                series.send(key, &envelope, raw.unwrap_or(email.raw)).await
            }
            Self::DevOutbox(db) => {
                let row = DevMail::from_email(workspace_id, &email, raw.as_deref().unwrap_or(&email.raw));
                let stored = db
                    .run(move |conn| row.insert(conn))
                    .await
                    .map_err(|e| SendError::Transient(format!("dev outbox: {e}")));
                vec![(key, stored)]
            }
        }
    }

    /// The last message's outcome, once it is known; the SMTP session goes back to the pool.
    pub async fn finish(self) -> Option<(K, Result<(), SendError>)> {
        match self {
            Self::Smtp(series) => series.finish().await,
            Self::DevOutbox(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SmtpMailer {
    pool: Arc<SmtpPool>,
}

impl SmtpMailer {
    /// See [`SmtpPool::from_url`] for the URL forms. `connections` caps concurrent sessions;
    /// `timeout` bounds each whole send.
    pub fn new(url: &Url, connections: u32, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            pool: Arc::new(SmtpPool::from_url(url, connections as usize, timeout)?),
        })
    }
}

/// Sorts a refused step of a mail transaction (MAIL, RCPT, DATA, end of data) into retry or
/// bounce.
pub(crate) fn classify_reply(stage: &str, reply: &smtp::Reply) -> SendError {
    let reason = format!("{stage}: {reply}");
    let code = Some(reply.code);
    // 503 (bad sequence) is the client's protocol state, not the recipient: retry on a fresh
    // connection. A refused MAIL FROM (530 authentication required, a sender the relay does not
    // accept) is the configuration's problem, not the recipient's or the message's: retrying
    // lets the operator fix it, and the circuit breaker pauses sending while it lasts, instead
    // of every invitation of the campaign ending as bounced.
    if reply.code < 500 || reply.code == 503 || reply.code == 530 || stage == "MAIL FROM" {
        return SendError::Transient(reason);
    }
    SendError::Permanent {
        code,
        hard_bounce: is_hard_bounce(code, &reply.text),
        reason,
    }
}

/// Whether a permanent failure is about the address itself, so that it is suppressed: RFC 3463
/// status 5.1.x (bad mailbox, bad domain, …) in `text`, or, when there is no enhanced status,
/// SMTP `code` 550/551/553. A 5.7.x (policy, e.g. relaying denied), 5.2.2 (mailbox full) or
/// 4.x.x says nothing lasting about the address, so it is not suppressed. Used for refusals
/// during the SMTP transaction and for bounce reports received later (`bounce`).
pub(crate) fn is_hard_bounce(code: Option<u16>, text: &str) -> bool {
    match enhanced_status(text) {
        Some((5, 1)) => true,
        Some(_) => false,
        None => code.is_some_and(|c| matches!(c, 550 | 551 | 553)),
    }
}

/// The class and subject of the first RFC 3463 enhanced status code in a text (`5.1.1` → (5, 1);
/// also qmail's `(#5.1.1)`).
pub(crate) fn enhanced_status(text: &str) -> Option<(u8, u16)> {
    text.split_whitespace().find_map(|word| {
        let mut parts = word
            .trim_matches(['(', ')', '[', ']', '#', ',', ';', ':', '\'', '.'])
            .split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        (parts.next().is_none() && matches!(class, 2 | 4 | 5) && subject < 1000 && detail < 1000)
            .then_some((class, subject))
    })
}

/// A message in the dev outbox.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = dev_messages)]
pub struct DevMail {
    pub id: String,
    pub workspace_id: Option<String>,
    pub channel: Channel,
    pub direction: Direction,
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
            channel: Channel::Email,
            direction: Direction::Out,
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

#[cfg(test)]
mod tests {
    use super::enhanced_status;

    #[test]
    fn enhanced_status_codes_are_found_in_reply_text() {
        assert_eq!(
            enhanced_status("550 5.1.1 <bo@example.dk>: Recipient address rejected"),
            Some((5, 1))
        );
        assert_eq!(enhanced_status("554 5.7.1 Relay access denied"), Some((5, 7)));
        assert_eq!(enhanced_status("permanent error (550): mailbox unavailable"), None);
        assert_eq!(enhanced_status("version 1.2.3 of something"), None);
        assert_eq!(enhanced_status("no mailbox here by that name. (#5.1.1)"), Some((5, 1)));
    }
}
