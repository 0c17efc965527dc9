//! The SMS providers' webhooks: replies and delivery reports.
//!
//! `/webhooks/{twilio,46elks,inmobile}/{inbound,status}`: the configured provider authenticates
//! and reads its own callbacks (`SmsGateway::callback`), and every provider's events take the
//! same path from there: replies to `sms::inbound::record`, delivery reports to
//! `outbound::apply_status`. Another provider's URLs answer 404.
//!
//! Twilio signs: `X-Twilio-Signature` for the public URL (`{BASE_URL}/webhooks/twilio/…`),
//! HMAC-SHA1 over the URL and the sorted form parameters, keyed by the account's auth token.
//! 46elks and inMobile do not: their callback URLs carry `?secret=…`, compared in constant time
//! and never logged. Anything unauthenticated gets 403.
//!
//! All answer fast: a reply is stored and its processing queued, a status is applied in place.
//! Providers retry webhooks, so all are idempotent per provider message id.
//!
//! `/webhooks/{mailgun,sendgrid}`: the email service providers' event webhooks, for mail relayed
//! through them (their bounces never reach `BOUNCE_ADDRESS`). Served when the ESP's key is
//! configured, 404 otherwise; authenticated and read by `mail::bounce::esp` (403 for a missing or
//! wrong signature), recorded by `mail::bounce::record_reported`. An event about an invitation
//! not yet recorded as sent gets 503, so that the ESP sends it again later.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, post, web};

use crate::mail::bounce::esp::{self, Esp, EspError, EspEvent};
use crate::mail::bounce::{self, Recorded};
use crate::metrics::METRICS;
use crate::routes::AppState;
use crate::routes::error::{PageError, PageFailure};
use crate::sms::provider::{CallbackError, CallbackKind, CallbackRequest, ProviderEvent};
use crate::sms::{elks, inbound as replies, inmobile, outbound};

/// Empty TwiML: no automatic reply from Twilio; our answers go out through the outbox.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

const TWILIO: &str = "twilio";

/// Every provider's webhook routes; each answers 404 unless its provider is the configured one.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(inbound)
        .service(status)
        .service(elks_inbound)
        .service(elks_status)
        .service(inmobile_inbound)
        .service(inmobile_status);
}

/// The largest ESP webhook body accepted. SendGrid posts its events in batches of up to 768 KB;
/// actix's default limit (256 KiB) would refuse a full batch with 413 on every retry.
const ESP_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The ESPs' event webhooks; each answers 404 unless its key is configured.
pub fn configure_esp(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        ("/webhooks/mailgun", web::post().to(mailgun_events)),
        ("/webhooks/sendgrid", web::post().to(sendgrid_events)),
    ] {
        cfg.service(
            web::resource(path)
                .app_data(web::PayloadConfig::new(ESP_BODY_LIMIT))
                .route(handler),
        );
    }
}

async fn mailgun_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let Some(key) = &state.settings.bounces.mailgun else {
        return Ok(HttpResponse::NotFound().finish());
    };
    let request = match esp::mailgun_events(key, &body, chrono::Utc::now().timestamp()) {
        Ok(request) => request,
        Err(e) => return esp_callback(&req, &state, Esp::Mailgun, Err(e)).await,
    };
    // A token is taken with one body: the same body again is Mailgun's own retry (recording is
    // idempotent), never another event. Taken before recording, so a 503 leaves no opening.
    let body_sha256 = crate::crypto::sha256_hex(&body);
    let token = request.token;
    let claimed = state
        .db
        .run(move |conn| bounce::claim_mailgun_token(conn, &token, &body_sha256))
        .await
        .map_err(|e| PageError::public(&req, e))?;
    if !claimed {
        METRICS.webhook_rejected.inc();
        tracing::warn!(
            path = req.path(),
            "Mailgun webhook with a token used before for another body refused"
        );
        return Ok(HttpResponse::Forbidden().body("token used before"));
    }
    esp_callback(&req, &state, Esp::Mailgun, Ok(request.events)).await
}

async fn sendgrid_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let Some(key) = &state.settings.bounces.sendgrid else {
        return Ok(HttpResponse::NotFound().finish());
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let events = esp::sendgrid_events(
        key,
        header("X-Twilio-Email-Event-Webhook-Signature"),
        header("X-Twilio-Email-Event-Webhook-Timestamp"),
        &body,
    );
    esp_callback(&req, &state, Esp::SendGrid, events).await
}

/// Records an ESP's authenticated events; answers 200 with what became of them, or 503 when one
/// is about an invitation not yet recorded as sent (the ESP sends the request again; what was
/// recorded meanwhile is recorded once).
async fn esp_callback(
    req: &HttpRequest,
    state: &AppState,
    esp: Esp,
    events: Result<Vec<EspEvent>, EspError>,
) -> Result<HttpResponse, PageError> {
    let events = match events {
        Ok(events) => events,
        Err(EspError::Forbidden) => {
            METRICS.webhook_rejected.inc();
            tracing::warn!(
                path = req.path(),
                "ESP webhook with a missing or wrong signature refused"
            );
            return Ok(HttpResponse::Forbidden().body("invalid signature"));
        }
        Err(EspError::Malformed(why)) => {
            tracing::warn!(path = req.path(), why, "malformed ESP webhook refused");
            return Ok(HttpResponse::BadRequest().body(why));
        }
    };
    let recorded = state
        .db
        .run(move |conn| {
            let recorded = bounce::record_reported(conn, &events)?;
            for (event, _) in events.iter().zip(&recorded).filter(|(_, r)| **r == Recorded::Unknown) {
                tracing::info!(
                    esp = esp.name(),
                    message_id = event.message_id,
                    "ESP event names no invitation of ours; ignored"
                );
            }
            Ok::<_, crate::db::DbError>(recorded)
        })
        .await
        .map_err(|e| PageError::public(req, e))?;
    // Indices into metrics::ESP_NAMES and metrics::ESP_OUTCOMES.
    let counters = &METRICS.esp_events[match esp {
        Esp::Mailgun => 0,
        Esp::SendGrid => 1,
    }];
    let mut counts = [0_u64; 5];
    for recorded in &recorded {
        counts[match recorded {
            Recorded::Bounced { .. } => 0,
            Recorded::Unsubscribed => 1,
            Recorded::AlreadyFinal | Recorded::Nothing => 2,
            Recorded::Unknown => 3,
            Recorded::NotYetSent => 4,
        }] += 1;
    }
    for (counter, n) in counters.iter().zip(counts) {
        counter.add(n);
    }
    let summary = serde_json::json!({
        "bounced": counts[0],
        "unsubscribed": counts[1],
        "ignored": counts[2],
        "unmatched": counts[3],
        "not_yet_sent": counts[4],
    });
    if counts[4] > 0 {
        return Ok(HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, HeaderValue::from_static("60")))
            .json(summary));
    }
    Ok(HttpResponse::Ok().json(summary))
}

#[post("/webhooks/twilio/inbound")]
pub async fn inbound(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    provider_callback(&req, &state, &body, TWILIO, CallbackKind::Inbound).await
}

#[post("/webhooks/twilio/status")]
pub async fn status(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, PageError> {
    provider_callback(&req, &state, &body, TWILIO, CallbackKind::Status).await
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
/// every provider. Answered 204 without a body (46elks would send a body back as an SMS), except
/// a Twilio reply: empty TwiML.
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
    let Ok(public_url) = state.settings.base_url.join(req.path().trim_start_matches('/')) else {
        return Err(PageError::public(
            req,
            PageFailure::Internal("BASE_URL cannot hold the webhook path".into()),
        ));
    };
    let request = CallbackRequest {
        public_url: public_url.as_str(),
        signature: req.headers().get("X-Twilio-Signature").and_then(|v| v.to_str().ok()),
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
            tracing::warn!(
                path = req.path(),
                "webhook with a missing or wrong signature or secret refused"
            );
            return Ok(HttpResponse::Forbidden().body(if provider == TWILIO {
                "invalid signature"
            } else {
                "missing or wrong secret"
            }));
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
                        if replies::record(conn, provider, message_sid, from, to, text)? {
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
    if provider == TWILIO && kind == CallbackKind::Inbound {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/xml")))
            .body(EMPTY_TWIML));
    }
    Ok(HttpResponse::NoContent().finish())
}
