//! `GET /api/v1/activity?limit=&after=`: the workspace's activity log, newest first, paged with
//! a cursor: `{"data": [...], "next": "<cursor>"|null}`.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Tenant};
use crate::activity;
use crate::routes::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    /// The `next` of the previous page.
    after: Option<String>,
}

#[get("/activity")]
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let workspace_id = tenant.id().to_owned();
    let after = query.after.clone().filter(|a| !a.is_empty());
    let mut entries = state
        .db
        .run(move |conn| activity::page(conn, &workspace_id, after.as_deref(), limit + 1))
        .await?;
    let next = (entries.len() as i64 > limit).then(|| {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id.clone())
    });
    let data: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": e.at.and_utc().to_rfc3339(),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "detail": e.detail,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data, "next": next.flatten() })))
}
