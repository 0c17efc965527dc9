//! HTTP surfaces, one module each.

pub mod api;
pub mod app;
pub mod csv;
pub mod dev;
pub mod error;
pub mod health;
pub mod landing;
pub mod pages;
pub mod request_body;
pub mod tracking;
pub mod unsubscribe;
pub mod webhooks;

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::db::Db;
use crate::funnel::tracking::TrackingBuffer;
use crate::links::Keyring;
use crate::outbox::JobKind;

/// What every request handler shares (built by `startup`).
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub keyring: Arc<Keyring>,
    pub tracking: TrackingBuffer,
    pub campaigns: landing::cache::CampaignCache,
    /// Wakes this process's outbox workers when a request enqueued work.
    pub wake: Arc<Notify>,
    /// The number or name SMS come from (people text START to it).
    pub sms_sender: String,
    /// The SMS provider: reads its own callbacks (`webhooks::provider_callback`).
    pub sms: crate::sms::provider::SmsSender,
    /// Every outbox job kind a handler is registered for (listed in /metrics).
    pub job_kinds: Arc<[JobKind]>,
    /// The number the landing page's tap-to-text link texts; `None`: no tap-to-text.
    pub tap_to_text_number: Option<String>,
}

/// Every route of the service. The dev outbox pages exist only while the dev providers are
/// active; the SMS providers' webhooks when a provider is configured (each answers 404 unless
/// it is the one configured); the ESPs' event webhooks always (404 without the ESP's key).
pub fn configure(cfg: &mut web::ServiceConfig, dev_mail: bool, dev_sms: bool, sms_provider: bool) {
    cfg.service(health::healthz)
        .service(health::metrics)
        .service(pages::stylesheet)
        .service(link_scope("/o", tracking::pixel))
        .service(link_scope("/l", landing::dispatch))
        .service(link_scope("/u", unsubscribe::dispatch))
        .configure(api::configure)
        .configure(app::configure)
        .configure(webhooks::configure_esp);
    if dev_mail || dev_sms {
        cfg.service(dev::stylesheet);
    }
    if dev_mail {
        cfg.configure(dev::configure_mail);
    }
    if dev_sms {
        cfg.configure(dev::configure_sms);
    }
    if sms_provider {
        cfg.configure(webhooks::configure);
    }
    cfg.default_service(web::to(pages::fallback));
}

/// The signed-link routes (`/o/…`, `/l/…`, `/u/…`) are static-prefix scopes whose handler takes
/// the token from the path itself: actix matches a `{token}` segment with a backtracking regex,
/// which for a 400-character token cost a third of the CPU of the open pixel.
fn link_scope<F, Args>(prefix: &'static str, handler: F) -> actix_web::Scope
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::scope(prefix).default_service(web::to(handler))
}

/// The token of a link path like `/l/{token}`: one non-empty segment after `prefix`.
pub fn link_token<'a>(req: &'a actix_web::HttpRequest, prefix: &str) -> Option<&'a str> {
    req.path()
        .strip_prefix(prefix)
        .filter(|t| !t.is_empty() && !t.contains('/'))
}

/// A `%00` in the path or query decodes to a NUL character, which no id or search term holds
/// and PostgreSQL refuses even to compare (an error, not "not found"): answered 400 before any
/// handler runs, the same on both backends. Signed links are left alone: a token with a NUL
/// fails verification before any query, and gets what every bad link gets (the one 404 page, or
/// the pixel). The 400 is a response, not an error, so the headers middleware outside sees it.
pub async fn reject_nul_in_url(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let uri = req.uri();
    let has_nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    let signed_link = ["/o/", "/l/", "/u/"].iter().any(|p| uri.path().starts_with(p));
    if !signed_link && (has_nul(uri.path()) || uri.query().is_some_and(has_nul)) {
        let msg = "the address must not contain a NUL character (%00)";
        let err: actix_web::Error = if uri.path().starts_with("/api/") {
            api::ApiError::BadRequest(msg.into()).into()
        } else {
            actix_web::error::ErrorBadRequest(msg)
        };
        return Ok(req.error_response(err).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}
