//! HTTP surfaces, one module each.

pub mod api;
pub mod app;
pub mod dev;
pub mod health;
pub mod landing;
pub mod pages;
pub mod tracking;
pub mod unsubscribe;
pub mod webhooks;

use actix_web::web;

/// Every route of the service. The dev outbox pages exist only while the dev providers are
/// active; Twilio's webhooks only when Twilio is the SMS provider.
pub fn configure(cfg: &mut web::ServiceConfig, dev_mail: bool, dev_sms: bool, twilio: bool) {
    cfg.service(health::healthz)
        .service(health::metrics)
        .service(pages::stylesheet)
        .service(link_scope("/o", tracking::pixel))
        .service(link_scope("/l", landing::dispatch))
        .service(link_scope("/u", unsubscribe::dispatch))
        .configure(api::configure)
        .configure(app::configure);
    if dev_mail || dev_sms {
        cfg.service(dev::stylesheet);
    }
    if dev_mail {
        cfg.configure(dev::configure_mail);
    }
    if dev_sms {
        cfg.configure(dev::configure_sms);
    }
    if twilio {
        cfg.service(webhooks::inbound).service(webhooks::status);
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
