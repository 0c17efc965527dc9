//! `/api/v1/webhooks`: the retailer's endpoints for events (see `crate::webhooks`).

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};

use super::{ApiError, Tenant};
use crate::routes::AppState;
use crate::webhooks::{self, Endpoint, EventType, WebhookError, destination};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Db(e) => e.into(),
            WebhookError::Secret(e) => ApiError::Internal(e.to_string()),
            other => ApiError::Unprocessable(other.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where events are POSTed: a public `https://` (or `http://`) URL.
    #[schema(example = "https://shop.example/hooks/optbridge")]
    pub url: String,
    /// The event types to send there.
    #[schema(example = json!(["consent.confirmed", "consent.withdrawn"]))]
    pub events: Vec<String>,
}

/// A new endpoint with its signing secret, shown only in this answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointBody,
    /// `whsec_` + base64: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

/// A registered endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointBody {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: chrono::NaiveDateTime,
}

impl From<Endpoint> for EndpointBody {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            created_at: e.created_at,
        }
    }
}

/// Registers an endpoint; answers its id and signing secret. Private, loopback and link-local
/// destinations are refused with 422 (unless the operator set `WEBHOOK_ALLOW_PRIVATE=true`).
#[utoipa::path(
    tag = "webhooks",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Registered", body = CreatedEndpoint),
        (status = 422, description = "Unknown event, bad or private URL, too many endpoints", body = super::error::ErrorBody),
    )
)]
#[post("/webhooks")]
pub async fn create(
    state: web::Data<AppState>,
    tenant: Tenant,
    body: web::Json<NewEndpoint>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let events = webhooks::parse_events(&body.events)?;
    let url = destination::parse(&body.url).map_err(WebhookError::from)?;
    destination::check(&url, state.settings.webhook_allow_private)
        .await
        .map_err(WebhookError::from)?;
    let workspace_id = tenant.id().to_owned();
    let encryption = state.settings.signing_key_encryption.clone();
    let actor = tenant.actor();
    let (endpoint, secret) = state
        .db
        .run(move |conn| {
            webhooks::create(conn, &encryption, &workspace_id, &actor, url.as_str(), &events).map_err(ApiError::from)
        })
        .await?;
    Ok(HttpResponse::Created().json(CreatedEndpoint {
        endpoint: endpoint.into(),
        secret,
    }))
}

/// The workspace's endpoints (without their secrets).
#[utoipa::path(tag = "webhooks", responses((status = 200, description = "Endpoints, oldest first", body = Vec<EndpointBody>)))]
#[get("/webhooks")]
pub async fn list(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let endpoints = state
        .db
        .run(move |conn| webhooks::list(conn, &workspace_id).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(endpoints.into_iter().map(EndpointBody::from).collect::<Vec<_>>()))
}

/// Removes an endpoint; deliveries still waiting for it are dropped.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint in this workspace", body = super::error::ErrorBody),
    )
)]
#[delete("/webhooks/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let actor = tenant.actor();
    let deleted = state
        .db
        .run(move |conn| webhooks::delete(conn, &workspace_id, &actor, &id).map_err(ApiError::from))
        .await?;
    if !deleted {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    Ok(HttpResponse::NoContent().finish())
}
