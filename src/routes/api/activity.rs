//! `GET /api/v1/activity?limit=&after=`: the workspace's activity log, newest first, paged with
//! a cursor: `{"data": [...], "next": "<cursor>"|null}`.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;

use super::{ApiError, Tenant};
use crate::activity;
use crate::routes::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// One entry of the activity log.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ActivityItem {
    id: String,
    /// When, RFC 3339 UTC.
    at: String,
    /// The dashboard user's email, `API token <label>` or `CLI`.
    actor: String,
    action: activity::Action,
    /// What it was done to (a campaign, consent text, contact or user id), if anything.
    subject: Option<String>,
    detail: String,
}

/// A page of the activity log, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ActivityPage {
    data: Vec<ActivityItem>,
    /// Pass as `after` for the next (older) page; `null` on the last page.
    next: Option<String>,
}

/// Who did what in the workspace, and when: imports, consent texts, campaign actions,
/// erasures, user changes, logins. Append-only.
#[utoipa::path(
    tag = "activity",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the activity log", body = ActivityPage),
        (status = 400, description = "A bad limit", body = super::error::ErrorBody),
    )
)]
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
    let data = entries
        .into_iter()
        .map(|e| ActivityItem {
            id: e.id,
            at: e.at.and_utc().to_rfc3339(),
            actor: e.actor,
            action: e.action,
            subject: e.subject,
            detail: e.detail,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ActivityPage {
        data,
        next: next.flatten(),
    }))
}
