//! The JSON API under `/api/v1`, authenticated by a workspace API token.

mod activity;
mod auth;
mod campaigns;
mod consent_texts;
mod contacts;
pub mod error;
mod funnel;
pub mod openapi;
mod webhooks;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, get, web};

pub use auth::Tenant;
pub use error::ApiError;

/// JSON bodies (consent texts, campaigns) are small; CSV imports stream separately.
const JSON_LIMIT: usize = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before the scope, which would otherwise take the path and ask for a token.
    cfg.service(openapi::openapi_json).service(scope());
}

/// Every `/api/v1` route, registered and documented in one step.
///
/// To add a route: put `#[utoipa::path(…)]` on the handler, above its actix method attribute
/// (utoipa reads the method and path from it), listing its responses (and
/// `request_body`, `params` for `{…}` segments and the query), then `.service(handler)` below.
/// `service` here only takes documented handlers: an undocumented one does not compile, and
/// `tests/api/openapi.rs` fails for a route added any other way.
fn scope() -> utoipa_actix_web::scope::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    utoipa_actix_web::scope("/api/v1")
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
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| ApiError::BadRequest(format!("invalid query string: {err}")).into()),
        )
        .service(whoami)
        .service(activity::list)
        .service(contacts::import_contacts)
        .service(contacts::list)
        .service(contacts::show)
        .service(contacts::consent)
        .service(contacts::erase)
        .service(contacts::suppressions)
        .service(consent_texts::create)
        .service(consent_texts::list)
        .service(consent_texts::show)
        .service(campaigns::create)
        .service(campaigns::list)
        .service(campaigns::show)
        .service(campaigns::send)
        .service(campaigns::edit)
        .service(campaigns::pause)
        .service(campaigns::resume)
        .service(campaigns::cancel)
        .service(campaigns::test_send)
        .service(campaigns::preview_email)
        .service(campaigns::follow_up)
        .service(funnel::funnel)
        .service(funnel::recipients_csv)
        .service(funnel::consents_export)
        .service(webhooks::create)
        .service(webhooks::list)
        .service(webhooks::delete)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NotFound("route"))
        }))
}

/// The workspace the token belongs to.
#[utoipa::path(tag = "workspace", responses((status = 200, description = "The token's workspace", body = crate::workspace::Workspace)))]
#[get("/workspace")]
async fn whoami(tenant: Tenant) -> HttpResponse {
    HttpResponse::Ok().json(&tenant.0)
}
