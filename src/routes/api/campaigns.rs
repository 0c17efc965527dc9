use actix_web::{HttpResponse, get, post, web};
use serde_json::json;

use super::{ApiError, Tenant};
use crate::campaigns::{self, CampaignError, CampaignRequest};
use crate::routes::AppState;

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::Invalid(msg) => ApiError::Unprocessable(msg),
            CampaignError::NotFound => ApiError::NotFound("campaign"),
            CampaignError::Db(e) => e.into(),
        }
    }
}

/// Creates a draft campaign: 201 with the campaign and its variants.
#[post("/campaigns")]
pub async fn create(
    state: web::Data<AppState>,
    tenant: Tenant,
    body: web::Json<CampaignRequest>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let req = body.into_inner();
    let actor = tenant.actor();
    let view = state
        .db
        .run(move |conn| campaigns::create(conn, &workspace_id, &req, &actor).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[get("/campaigns")]
pub async fn list(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let list = state
        .db
        .run(move |conn| campaigns::list(conn, &workspace_id).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[get("/campaigns/{id}")]
pub async fn show(state: web::Data<AppState>, tenant: Tenant, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let view = state
        .db
        .run(move |conn| campaigns::find(conn, &workspace_id, &id).map_err(ApiError::from))
        .await?
        .ok_or(ApiError::NotFound("campaign"))?;
    Ok(HttpResponse::Ok().json(view))
}

/// Starts sending: 202, the work continues in the outbox workers. Asking again is harmless.
#[post("/campaigns/{id}/send")]
pub async fn send(state: web::Data<AppState>, tenant: Tenant, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let actor = tenant.actor();
    let campaign = state
        .db
        .run(move |conn| campaigns::request_send(conn, &workspace_id, &id, &actor).map_err(ApiError::from))
        .await?;
    state.wake.notify_waiters();
    Ok(HttpResponse::Accepted().json(json!({"id": campaign.id, "status": campaign.status})))
}
