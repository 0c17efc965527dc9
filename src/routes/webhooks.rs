//! The SMS providers' webhooks: replies and delivery reports.
//!
//! Twilio (`/webhooks/twilio/inbound`, `/webhooks/twilio/status`): every call must carry a valid
//! `X-Twilio-Signature` for the public URL (`{BASE_URL}/webhooks/twilio/…`): HMAC-SHA1 over the
//! URL and the sorted form parameters, keyed by the account's auth token; anything else gets 403.
//!
//! 46elks and inMobile (`/webhooks/{46elks,inmobile}/{inbound,status}?secret=…`): the provider
//! reads and authenticates its own callbacks (`SmsGateway::callback`; a missing or wrong secret
//! gets 403, the secret is never logged), and every provider's events take the same path from
//! there: replies to `sms::inbound::record`, delivery reports to `outbound::apply_status`.
//!
//! All answer fast: a reply is stored and its processing queued, a status is applied in place.
//! Providers retry webhooks, so all are idempotent per provider message id.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, post, web};

use crate::config::SmsProviderSettings;
use crate::metrics::METRICS;
use crate::routes::AppState;
use crate::routes::error::{PageError, PageFailure};
use crate::sms::provider::{CallbackError, CallbackKind, CallbackRequest, ProviderEvent};
use crate::sms::{elks, inbound as replies, inmobile, outbound, twilio_signature};

/// Empty TwiML: no automatic reply from Twilio; our answers go out through the outbox.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

type Params = Vec<(String, String)>;

/// Why a webhook call was refused.
enum Refusal {
    NotConfigured,
    BadSignature,
    BadBaseUrl,
}

impl Refusal {
    fn response(self, req: &HttpRequest) -> Result<HttpResponse, PageError> {
        match self {
            Self::NotConfigured => Ok(HttpResponse::NotFound().finish()),
            Self::BadSignature => Ok(HttpResponse::Forbidden().body("invalid signature")),
            Self::BadBaseUrl => Err(PageError::public(
                req,
                PageFailure::Internal("BASE_URL cannot hold the webhook path".into()),
            )),
        }
    }
}

/// Parses the form and checks the signature.
fn verified(req: &HttpRequest, state: &AppState, body: &[u8], path: &str) -> Result<Params, Refusal> {
    let SmsProviderSettings::Twilio(twilio) = &state.settings.sms else {
        return Err(Refusal::NotConfigured);
    };
    let url = state
        .settings
        .base_url
        .join(path)
        .map_err(|_| Refusal::BadBaseUrl)?
        .to_string();
    let signature = req
        .headers()
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let params = twilio_signature::verified_form(&twilio.auth_token, &url, body, signature).ok_or_else(|| {
        METRICS.webhook_rejected.inc();
        tracing::warn!(path, "webhook with a missing or wrong X-Twilio-Signature refused");
        Refusal::BadSignature
    })?;
    // PostgreSQL text cannot hold U+0000: a signed field with one would fail (503) on every one of
    // Twilio's retries. No SMS text or Twilio id needs it.
    Ok(params
        .into_iter()
        .map(|(name, value)| (name.replace('\0', ""), value.replace('\0', "")))
        .collect())
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[post("/webhooks/twilio/inbound")]
pub async fn inbound(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let params = match verified(&req, &state, &body, "webhooks/twilio/inbound") {
        Ok(p) => p,
        Err(refusal) => return refusal.response(&req),
    };
    let (Some(sid), Some(from), Some(to)) = (
        param(&params, "MessageSid"),
        param(&params, "From"),
        param(&params, "To"),
    ) else {
        return Ok(HttpResponse::BadRequest().body("MessageSid, From and To are required"));
    };
    let (sid, from, to) = (sid.to_owned(), from.to_owned(), to.to_owned());
    let text = param(&params, "Body").unwrap_or_default().to_owned();
    // Twilio retries on 5xx: nothing was stored, nothing is lost.
    let new = state
        .db
        .run(move |conn| replies::record(conn, &sid, &from, &to, &text))
        .await
        .map_err(|e| PageError::public(&req, e))?;
    if new {
        METRICS.inbound_sms.inc();
        state.wake.notify_waiters();
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/xml")))
        .body(EMPTY_TWIML))
}

#[post("/webhooks/twilio/status")]
pub async fn status(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, PageError> {
    let params = match verified(&req, &state, &body, "webhooks/twilio/status") {
        Ok(p) => p,
        Err(refusal) => return refusal.response(&req),
    };
    let (Some(sid), Some(status)) = (param(&params, "MessageSid"), param(&params, "MessageStatus")) else {
        return Ok(HttpResponse::BadRequest().body("MessageSid and MessageStatus are required"));
    };
    let (sid, status) = (sid.to_owned(), status.to_owned());
    let error = param(&params, "ErrorCode").map(|c| format!("Twilio error {c}"));
    state
        .db
        .run(move |conn| outbound::apply_status(conn, &sid, &status, error.as_deref()))
        .await
        .map_err(|e| PageError::public(&req, e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every provider's webhook routes; each answers 404 unless its provider is the configured one.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(inbound)
        .service(status)
        .service(elks_inbound)
        .service(elks_status)
        .service(inmobile_inbound)
        .service(inmobile_status);
}

#[post("/webhooks/46elks/inbound")]
async fn elks_inbound(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    provider_callback(&req, &state, &body, elks::NAME, CallbackKind::Inbound).await
}

#[post("/webhooks/46elks/status")]
async fn elks_status(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    provider_callback(&req, &state, &body, elks::NAME, CallbackKind::Status).await
}

#[post("/webhooks/inmobile/inbound")]
async fn inmobile_inbound(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    provider_callback(&req, &state, &body, inmobile::NAME, CallbackKind::Inbound).await
}

#[post("/webhooks/inmobile/status")]
async fn inmobile_status(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    provider_callback(&req, &state, &body, inmobile::NAME, CallbackKind::Status).await
}

/// One provider callback: authenticated and read by the provider, then acted on the same way for
/// every provider. Answered 204 without a body: 46elks would send a body back as an SMS.
async fn provider_callback(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
    provider: &'static str,
    kind: CallbackKind,
) -> Result<HttpResponse, PageError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let request = CallbackRequest {
        query: req.query_string(),
        content_type: &content_type,
        body,
    };
    let events = match state.sms.callback(provider, kind, request) {
        Ok(events) => events,
        Err(CallbackError::NotHere) => return Ok(HttpResponse::NotFound().finish()),
        Err(CallbackError::Forbidden) => {
            METRICS.webhook_rejected.inc();
            // The path only: the query holds the secret (or a guess at it).
            tracing::warn!(path = req.path(), "webhook with a missing or wrong secret refused");
            return Ok(HttpResponse::Forbidden().body("missing or wrong secret"));
        }
        Err(CallbackError::Malformed(why)) => {
            tracing::warn!(path = req.path(), why, "malformed webhook refused");
            return Ok(HttpResponse::BadRequest().body(why));
        }
    };
    // Providers retry on 5xx: nothing was stored, nothing is lost.
    let new_replies = state
        .db
        .run(move |conn| {
            let mut new = 0_u64;
            for event in &events {
                match event {
                    ProviderEvent::Status {
                        provider_sid,
                        status: reached,
                        error,
                    } => {
                        outbound::apply_status(conn, provider_sid, reached.as_str(), error.as_deref())?;
                    }
                    ProviderEvent::Inbound {
                        message_sid,
                        from,
                        to,
                        text,
                    } => {
                        if replies::record(conn, message_sid, from, to, text)? {
                            new += 1;
                        }
                    }
                }
            }
            Ok::<_, crate::db::DbError>(new)
        })
        .await
        .map_err(|e| PageError::public(req, e))?;
    if new_replies > 0 {
        METRICS.inbound_sms.add(new_replies);
        state.wake.notify_waiters();
    }
    Ok(HttpResponse::NoContent().finish())
}
