//! Twilio's webhooks: replies (`/webhooks/twilio/inbound`) and delivery reports
//! (`/webhooks/twilio/status`).
//!
//! Every call must carry a valid `X-Twilio-Signature` for the public URL
//! (`{BASE_URL}/webhooks/twilio/…`): HMAC-SHA1 over the URL and the sorted form parameters,
//! keyed by the account's auth token; anything else gets 403. Both answer fast: a reply is
//! stored and its processing queued, a status is applied in place. Twilio retries webhooks, so
//! both are idempotent per `MessageSid`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, post, web};

use crate::config::SmsProviderSettings;
use crate::metrics::METRICS;
use crate::routes::AppState;
use crate::routes::error::{PageError, PageFailure};
use crate::sms::{inbound as replies, outbound, twilio_signature};

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
