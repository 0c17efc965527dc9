//! Where SMS go: Twilio's Programmable Messaging API, or the dev outbox.

use std::time::Duration;

use diesel::prelude::*;
use serde::Deserialize;
use url::Url;

use crate::config::{TwilioSender, TwilioSettings};
use crate::db::schema::dev_messages;
use crate::db::{self, Db};
use crate::domain::{Channel, Direction};

/// Twilio error codes (https://www.twilio.com/docs/api/errors) that will not change on retry.
const INVALID_NUMBER: u32 = 21211;
const NOT_MOBILE: u32 = 21614;
/// The recipient sent STOP to Twilio (carrier-level opt-out): suppress them here too.
const UNSUBSCRIBED_RECIPIENT: u32 = 21610;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsSendError {
    /// Worth retrying: 429 (with its Retry-After), 5xx, timeouts, connection errors.
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused for good (invalid or non-mobile number, recipient opted out, …).
    #[error("refused: {reason}")]
    Permanent {
        code: Option<u32>,
        reason: String,
        /// The recipient is opted out at the provider: suppress the number.
        opted_out: bool,
    },
}

#[derive(Clone)]
pub enum SmsSender {
    Twilio(Box<TwilioClient>),
    DevOutbox(Db),
}

impl SmsSender {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Twilio(_) => "twilio",
            Self::DevOutbox(_) => "dev-outbox",
        }
    }

    /// The number or name the SMS come from (shown in the dev outbox).
    pub fn sender(&self) -> String {
        match self {
            Self::Twilio(t) => match &t.settings.sender {
                TwilioSender::From(from) => from.clone(),
                TwilioSender::MessagingService(sid) => sid.clone(),
            },
            Self::DevOutbox(_) => DEV_SENDER.to_owned(),
        }
    }

    /// The number people can text, for tap-to-text (issue 17): `configured` (SMS_INBOUND_NUMBER)
    /// if set, else the sender when it is a number (an alphanumeric sender cannot receive, and a
    /// messaging service has no single number), else the dev outbox's pretend number.
    pub fn inbound_number(&self, configured: Option<&str>) -> Option<String> {
        if let Some(number) = configured {
            return Some(number.to_owned());
        }
        match self {
            Self::Twilio(t) => match &t.settings.sender {
                TwilioSender::From(from) if is_phone_number(from) => Some(from.clone()),
                TwilioSender::From(_) | TwilioSender::MessagingService(_) => None,
            },
            Self::DevOutbox(_) => Some(DEV_INBOUND_NUMBER.to_owned()),
        }
    }

    /// Sends one SMS; returns the provider's message id.
    pub async fn send(&self, workspace_id: &str, to: &str, body: &str) -> Result<String, SmsSendError> {
        match self {
            Self::Twilio(t) => t.send(to, body).await,
            Self::DevOutbox(db) => {
                let id = db::new_id();
                let row = (
                    dev_messages::id.eq(id.clone()),
                    dev_messages::workspace_id.eq(Some(workspace_id.to_owned())),
                    dev_messages::channel.eq(Channel::Sms),
                    dev_messages::direction.eq(Direction::Out),
                    dev_messages::sender.eq(DEV_SENDER),
                    dev_messages::recipient.eq(to.to_owned()),
                    dev_messages::body_text.eq(body.to_owned()),
                    dev_messages::created_at.eq(db::now()),
                );
                db.run(move |conn| {
                    diesel::insert_into(dev_messages::table)
                        .values(row)
                        .execute(conn)
                        .map_err(db::DbError::from)
                })
                .await
                .map_err(|e| SmsSendError::Transient {
                    reason: format!("dev outbox: {e}"),
                    retry_after: None,
                })?;
                Ok(format!("DEV{}", id.replace('-', "")))
            }
        }
    }
}

/// The dev outbox's sender name.
pub const DEV_SENDER: &str = "optbridge-dev";

/// The number the dev outbox pretends to receive texts on (no Danish number starts with 0).
pub const DEV_INBOUND_NUMBER: &str = "+4500000000";

/// A number in international format (E.164): `+` and 7 to 15 digits.
pub fn is_phone_number(raw: &str) -> bool {
    raw.strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    settings: TwilioSettings,
    messages_url: Url,
    status_callback: Url,
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

impl TwilioClient {
    /// `base_url` is optbridge's public origin: Twilio posts delivery reports to
    /// `{base_url}/webhooks/twilio/status`.
    pub fn new(settings: TwilioSettings, base_url: &Url, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let messages_url = settings
            .api_base
            .join(&format!("2010-04-01/Accounts/{}/Messages.json", settings.account_sid))
            .map_err(|e| format!("TWILIO_API_BASE: {e}"))?;
        let status_callback = base_url
            .join("webhooks/twilio/status")
            .map_err(|e| format!("BASE_URL: {e}"))?;
        Ok(Self {
            http,
            settings,
            messages_url,
            status_callback,
        })
    }

    async fn send(&self, to: &str, body: &str) -> Result<String, SmsSendError> {
        let mut form = vec![
            ("To", to.to_owned()),
            ("Body", body.to_owned()),
            ("StatusCallback", self.status_callback.to_string()),
        ];
        match &self.settings.sender {
            TwilioSender::From(from) => form.push(("From", from.clone())),
            TwilioSender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.clone())),
        }
        let response = self
            .http
            .post(self.messages_url.clone())
            .basic_auth(&self.settings.account_sid, Some(&self.settings.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SmsSendError::Transient {
                reason: if e.is_timeout() {
                    "Twilio did not answer in time".to_owned()
                } else {
                    format!("Twilio unreachable: {e}")
                },
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str::<MessageResource>(&text)
                .map(|m| m.sid)
                .map_err(|e| SmsSendError::Transient {
                    reason: format!("unexpected Twilio answer ({e})"),
                    retry_after: None,
                });
        }
        let detail: Option<TwilioErrorBody> = serde_json::from_str(&text).ok();
        let code = detail.as_ref().and_then(|d| d.code);
        let message = detail
            .and_then(|d| d.message)
            .unwrap_or_else(|| text.chars().take(200).collect());
        let reason = format!(
            "HTTP {}{}: {message}",
            status.as_u16(),
            code.map(|c| format!(" (Twilio {c})")).unwrap_or_default()
        );
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(SmsSendError::Transient { reason, retry_after });
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            // Credentials: the operator's problem, not the recipient's; retry once fixed.
            return Err(SmsSendError::Transient {
                reason,
                retry_after: None,
            });
        }
        Err(SmsSendError::Permanent {
            code,
            opted_out: code == Some(UNSUBSCRIBED_RECIPIENT),
            reason: match code {
                Some(INVALID_NUMBER) => format!("invalid number: {reason}"),
                Some(NOT_MOBILE) => format!("not a mobile number: {reason}"),
                _ => reason,
            },
        })
    }
}
