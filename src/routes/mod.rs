//! HTTP surfaces, one module each.

pub mod api;
pub mod dev;
pub mod health;
pub mod landing;
pub mod pages;
pub mod tracking;
pub mod unsubscribe;

use actix_web::web;

/// Every route of the service. The dev outbox pages exist only while the dev providers are
/// active (`dev_outbox`).
pub fn configure(cfg: &mut web::ServiceConfig, dev_outbox: bool) {
    cfg.service(health::healthz)
        .service(health::metrics)
        .service(pages::stylesheet)
        .service(tracking::pixel)
        .service(landing::show)
        .service(unsubscribe::show)
        .service(unsubscribe::confirm)
        .configure(api::configure);
    if dev_outbox {
        cfg.configure(dev::configure);
    }
    cfg.default_service(web::to(pages::fallback));
}
