//! The JSON API under `/api/v1`, authenticated by a workspace API token.

mod activity;
mod auth;
mod campaigns;
mod consent_texts;
mod contacts;
pub mod error;
mod funnel;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, get, web};

pub use auth::Tenant;
pub use error::ApiError;

/// JSON bodies (consent texts, campaigns) are small; CSV imports stream separately.
const JSON_LIMIT: usize = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(from_fn(auth::require_api_token))
            .app_data(web::JsonConfig::default().limit(JSON_LIMIT).error_handler(|err, _| {
                let msg = match &err {
                    actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                    | actix_web::error::JsonPayloadError::Overflow { .. } => {
                        return ApiError::PayloadTooLarge {
                            limit: JSON_LIMIT as u64,
                        }
                        .into();
                    }
                    actix_web::error::JsonPayloadError::ContentType => {
                        "send the body as JSON with 'Content-Type: application/json'".to_owned()
                    }
                    other => format!("invalid JSON body: {other}"),
                };
                ApiError::BadRequest(msg).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()))
            .service(whoami)
            .service(activity::list)
            .service(contacts::import_contacts)
            .service(contacts::show)
            .service(contacts::consent)
            .service(contacts::erase)
            .service(consent_texts::create)
            .service(consent_texts::list)
            .service(consent_texts::show)
            .service(campaigns::create)
            .service(campaigns::list)
            .service(campaigns::show)
            .service(campaigns::send)
            .service(funnel::funnel)
            .service(funnel::recipients_csv)
            .service(funnel::consents_export)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::NotFound("route"))
            })),
    );
}

/// The workspace the token belongs to.
#[get("/workspace")]
async fn whoami(tenant: Tenant) -> HttpResponse {
    HttpResponse::Ok().json(&tenant.0)
}
