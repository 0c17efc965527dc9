//! HTTP surfaces, one module each.

pub mod api;
pub mod health;

use actix_web::web;

/// Every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz).configure(api::configure);
}
