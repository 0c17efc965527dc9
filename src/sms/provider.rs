//! Where SMS go: one [`SmsGateway`] trait, implemented by Twilio's Programmable Messaging API
//! (here), 46elks (`elks`), inMobile (`inmobile`) and the dev outbox (here), chosen by
//! `SMS_PROVIDER`. Every provider sorts its failures into the same [`SmsSendError`] (so the
//! outbox's retry, backoff and circuit breaker treat them alike) and turns its callbacks into the
//! same [`ProviderEvent`]s (so delivery reports and replies take one path, whoever carried them).

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use url::Url;

use super::outbound::SmsStatus;
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

/// Which of a provider's callback URLs was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// A delivery report for a message we sent.
    Status,
    /// A message from a phone (a reply, STOP, START, a code).
    Inbound,
}

/// A provider callback as the HTTP layer received it.
#[derive(Debug, Clone, Copy)]
pub struct CallbackRequest<'a> {
    /// The public URL the provider called, `{BASE_URL}/webhooks/…` without the query (what
    /// Twilio signs).
    pub public_url: &'a str,
    /// The request's signature header, for providers that sign (`X-Twilio-Signature`).
    pub signature: Option<&'a str>,
    /// The raw query string (where 46elks and inMobile callbacks carry their secret).
    pub query: &'a str,
    /// The media type of the body, without parameters, lower-case.
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// What a provider callback says, in the provider's neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// The message with this provider id reached `status`.
    Status {
        provider_sid: String,
        status: SmsStatus,
        error: Option<String>,
    },
    /// A phone sent us a message; `message_sid` is unique per message at the provider (callbacks
    /// are retried, and the same message must be acted on once).
    Inbound {
        message_sid: String,
        from: String,
        to: String,
        text: String,
    },
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The callback's secret is missing or wrong (never say which, never log it).
    #[error("missing or wrong callback secret")]
    Forbidden,
    /// Authenticated, but not a callback this provider sends.
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// The active provider has no such callback (another provider's URL).
    #[error("no such callback for this SMS provider")]
    NotHere,
}

/// One SMS provider: sends messages, and reads its own callbacks (delivery reports, replies).
pub trait SmsGateway: Send + Sync {
    /// `SMS_PROVIDER`'s value for it (`twilio`, `46elks`, `inmobile`, `dev-outbox`).
    fn name(&self) -> &'static str;

    /// The number or name the SMS come from (people text STOP/START to it).
    fn sender(&self) -> String;

    /// Sends one SMS; returns the provider's message id.
    fn send<'a>(
        &'a self,
        workspace_id: &'a str,
        to: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<String, SmsSendError>>;

    /// Authenticates and reads one callback (the dev outbox has none: [`CallbackError::NotHere`]).
    fn callback(&self, kind: CallbackKind, request: CallbackRequest<'_>) -> Result<Vec<ProviderEvent>, CallbackError> {
        let _ = (kind, request);
        Err(CallbackError::NotHere)
    }
}

/// The configured provider, shared by the outbox workers and the webhook routes.
#[derive(Clone)]
pub struct SmsSender(Arc<dyn SmsGateway>);

impl SmsSender {
    pub fn new(gateway: impl SmsGateway + 'static) -> Self {
        Self(Arc::new(gateway))
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The number or name the SMS come from (shown in the dev outbox).
    pub fn sender(&self) -> String {
        self.0.sender()
    }

    /// Sends one SMS; returns the provider's message id.
    pub async fn send(&self, workspace_id: &str, to: &str, body: &str) -> Result<String, SmsSendError> {
        self.0.send(workspace_id, to, body).await
    }

    /// Authenticates and reads a callback of provider `provider` (the name in its URL).
    pub fn callback(
        &self,
        provider: &str,
        kind: CallbackKind,
        request: CallbackRequest<'_>,
    ) -> Result<Vec<ProviderEvent>, CallbackError> {
        if provider != self.0.name() {
            return Err(CallbackError::NotHere);
        }
        self.0.callback(kind, request)
    }
}

/// A reqwest client with the SMS timeout (a timeout is a temporary failure).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // A provider API never redirects; following one would send the credentials elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// A request that got no answer: always worth retrying.
pub(crate) fn unreachable(provider: &str, e: &reqwest::Error) -> SmsSendError {
    SmsSendError::Transient {
        reason: if e.is_timeout() {
            format!("{provider} did not answer in time")
        } else {
            format!("{provider} unreachable: {e}")
        },
        retry_after: None,
    }
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

/// The classification every provider shares for an HTTP error answer: 429 and 5xx are
/// temporary (honouring Retry-After); 401 is the operator's credentials, retried once they are
/// fixed; `None` for the rest, which each provider reads in its own terms.
pub(crate) fn transient_status(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    reason: &str,
) -> Option<SmsSendError> {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Some(SmsSendError::Transient {
            reason: reason.to_owned(),
            retry_after,
        });
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Some(SmsSendError::Transient {
            reason: reason.to_owned(),
            retry_after: None,
        });
    }
    None
}

/// The fields of an `application/x-www-form-urlencoded` body or query. PostgreSQL text cannot
/// hold U+0000, and no SMS text or provider id needs it: dropped.
pub(crate) fn form_fields(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.replace('\0', ""), v.replace('\0', "")))
        .collect()
}

pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Whether the query carries exactly the expected `secret` (compared in constant time). An empty
/// expected secret never matches.
pub(crate) fn secret_matches(query: &str, expected: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let given: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .collect();
    // A repeated `secret` is not a callback URL optbridge handed out.
    matches!(given.as_slice(), [one] if crate::crypto::constant_time_eq(one.as_bytes(), expected.as_bytes()))
}

/// `{base_url}/{path}?secret={secret}`: a callback URL optbridge hands out to a provider.
pub(crate) fn callback_url(base_url: &Url, path: &str, secret: &str) -> Result<Url, String> {
    let mut url = base_url.join(path).map_err(|e| format!("BASE_URL: {e}"))?;
    url.query_pairs_mut().clear().append_pair("secret", secret);
    Ok(url)
}

/// The dev outbox: messages are stored and shown at `/dev/sms`.
#[derive(Clone)]
pub struct DevOutbox(pub Db);

/// The dev outbox's sender name.
pub const DEV_SENDER: &str = "optbridge-dev";

impl SmsGateway for DevOutbox {
    fn name(&self) -> &'static str {
        "dev-outbox"
    }

    fn sender(&self) -> String {
        DEV_SENDER.to_owned()
    }

    fn send<'a>(
        &'a self,
        workspace_id: &'a str,
        to: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<String, SmsSendError>> {
        Box::pin(async move {
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
            self.0
                .run(move |conn| {
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
        })
    }
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
        let http = http_client(timeout)?;
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

    async fn send_sms(&self, to: &str, body: &str) -> Result<String, SmsSendError> {
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
            .map_err(|e| unreachable("Twilio", &e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
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
        if let Some(transient) = transient_status(status, retry_after, &reason) {
            return Err(transient);
        }
        if status == reqwest::StatusCode::FORBIDDEN {
            // Twilio's 403 is the account's permissions: the operator's problem, not the recipient's.
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

impl SmsGateway for TwilioClient {
    fn name(&self) -> &'static str {
        "twilio"
    }

    /// Twilio signs every webhook: `X-Twilio-Signature`, HMAC-SHA1 over the public URL and the
    /// sorted form fields, keyed by the auth token (`twilio_signature`).
    fn callback(&self, kind: CallbackKind, request: CallbackRequest<'_>) -> Result<Vec<ProviderEvent>, CallbackError> {
        let signature = request.signature.unwrap_or_default();
        let Some(signed) = super::twilio_signature::verified_form(
            &self.settings.auth_token,
            request.public_url,
            request.body,
            signature,
        ) else {
            return Err(CallbackError::Forbidden);
        };
        // PostgreSQL text cannot hold U+0000: a signed field with one would fail (503) on every one
        // of Twilio's retries. No SMS text or Twilio id needs it.
        let fields: Vec<(String, String)> = signed
            .into_iter()
            .map(|(k, v)| (k.replace('\0', ""), v.replace('\0', "")))
            .collect();
        let field = |name| field(&fields, name);
        match kind {
            CallbackKind::Inbound => {
                let (Some(sid), Some(from), Some(to)) = (field("MessageSid"), field("From"), field("To")) else {
                    return Err(CallbackError::Malformed("MessageSid, From and To are required".into()));
                };
                Ok(vec![ProviderEvent::Inbound {
                    message_sid: sid.to_owned(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                    text: field("Body").unwrap_or_default().to_owned(),
                }])
            }
            CallbackKind::Status => {
                let (Some(sid), Some(status)) = (field("MessageSid"), field("MessageStatus")) else {
                    return Err(CallbackError::Malformed(
                        "MessageSid and MessageStatus are required".into(),
                    ));
                };
                // Twilio's statuses are ours by name; one this version does not know changes nothing.
                let Some(status) = SmsStatus::parse(status) else {
                    return Ok(Vec::new());
                };
                Ok(vec![ProviderEvent::Status {
                    provider_sid: sid.to_owned(),
                    status,
                    error: field("ErrorCode").map(|c| format!("Twilio error {c}")),
                }])
            }
        }
    }

    fn sender(&self) -> String {
        match &self.settings.sender {
            TwilioSender::From(from) => from.clone(),
            TwilioSender::MessagingService(sid) => sid.clone(),
        }
    }

    fn send<'a>(
        &'a self,
        _workspace_id: &'a str,
        to: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<String, SmsSendError>> {
        Box::pin(self.send_sms(to, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_must_be_given_once_and_exactly() {
        assert!(secret_matches("secret=abc", "abc"));
        assert!(secret_matches("x=1&secret=a%2Bb", "a+b"));
        assert!(!secret_matches("secret=abd", "abc"));
        assert!(!secret_matches("secret=ab", "abc"));
        assert!(!secret_matches("", "abc"));
        assert!(!secret_matches("secret=abc&secret=abc", "abc"));
        assert!(!secret_matches("secret=", ""));
    }

    #[test]
    fn callback_urls_carry_the_secret_encoded() {
        let base = Url::parse("https://shop.example/").unwrap();
        let url = callback_url(&base, "webhooks/46elks/status", "a+b/c").unwrap();
        assert_eq!(
            url.as_str(),
            "https://shop.example/webhooks/46elks/status?secret=a%2Bb%2Fc"
        );
        assert!(secret_matches(url.query().unwrap(), "a+b/c"));
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        headers.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
