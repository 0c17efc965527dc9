use actix_web::{HttpResponse, get, patch, post, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Tenant};
use crate::activity::Actor;
use crate::campaigns::{self, Campaign, CampaignError, CampaignRequest, lifecycle};
use crate::mail::preview;
use crate::routes::AppState;

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::Invalid(msg) => ApiError::Unprocessable(msg),
            e @ CampaignError::Field(_) => ApiError::Unprocessable(e.to_string()),
            CampaignError::NotFound => ApiError::NotFound("campaign"),
            CampaignError::Conflict(msg) => ApiError::Conflict(msg),
            CampaignError::Limited(msg) => ApiError::TooManyRequests(msg),
            CampaignError::Db(e) => e.into(),
        }
    }
}

/// Creates a draft campaign: 201 with the campaign and its variants.
#[utoipa::path(
    tag = "campaigns",
    request_body = CampaignRequest,
    responses(
        (status = 201, description = "The draft campaign", body = campaigns::CampaignView),
        (status = 422, description = "Invalid campaign (e.g. an audience locale without a consent text in its language)", body = super::error::ErrorBody),
    )
)]
#[post("/campaigns")]
pub async fn create(
    state: web::Data<AppState>,
    tenant: Tenant,
    body: web::Json<CampaignRequest>,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, actor) = (tenant.id().to_owned(), tenant.actor());
    let req = body.into_inner();
    let view = state
        .db
        .run(move |conn| campaigns::create(conn, &workspace_id, &req, &actor).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(tag = "campaigns", responses((status = 200, description = "Every campaign", body = Vec<campaigns::Campaign>)))]
#[get("/campaigns")]
pub async fn list(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let list = state
        .db
        .run(move |conn| campaigns::list(conn, &workspace_id).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// The campaign with its content per locale and, before it is sent, how many contacts each
/// audience locale would invite (`audience_size`).
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign, with `audience_size` per locale", body = campaigns::CampaignView),
        (status = 404, description = "No such campaign in this workspace", body = super::error::ErrorBody),
    )
)]
#[get("/campaigns/{id}")]
pub async fn show(state: web::Data<AppState>, tenant: Tenant, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let (view, sizes) = state
        .db
        .run(move |conn| -> Result<_, ApiError> {
            let Some(view) = campaigns::find(conn, &workspace_id, &id)? else {
                return Err(ApiError::NotFound("campaign"));
            };
            let sizes = campaigns::audience_size(conn, &view.campaign)?;
            Ok((view, sizes))
        })
        .await?;
    let mut body = serde_json::to_value(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["audience_size"] = json!(sizes);
    Ok(HttpResponse::Ok().json(body))
}

/// Edits a draft: the given top-level fields replace the saved ones. 409 once sent.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = Object, description = "Top-level fields of the create body to replace (`null` removes one)"),
    responses(
        (status = 200, description = "The edited draft", body = campaigns::CampaignView),
        (status = 409, description = "Not a draft", body = super::error::ErrorBody),
        (status = 422, description = "Invalid campaign", body = super::error::ErrorBody),
    )
)]
#[patch("/campaigns/{id}")]
pub async fn edit(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    body: web::Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, actor) = (tenant.id().to_owned(), tenant.actor());
    let (id, changes) = (id.into_inner(), body.into_inner());
    let view = state
        .db
        .run(move |conn| campaigns::patch(conn, &workspace_id, &id, &changes, &actor).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// RFC 3339; in the future → `scheduled` until then.
    at: Option<String>,
}

/// Parses `at` (RFC 3339, any offset) into UTC.
fn parse_at(raw: &str) -> Result<chrono::NaiveDateTime, ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.naive_utc())
        .map_err(|e| {
            ApiError::Unprocessable(format!(
                "at: not an RFC 3339 time ({e}), e.g. 2026-12-24T09:00:00+01:00"
            ))
        })
}

/// A campaign's status after a send, pause, resume or cancel.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    pub id: String,
    pub status: campaigns::CampaignStatus,
    /// RFC 3339, when a scheduled send starts.
    pub scheduled_at: Option<String>,
}

fn status_body(c: &Campaign) -> StatusBody {
    StatusBody {
        id: c.id.clone(),
        status: c.status,
        scheduled_at: c.scheduled_at.map(|t| t.and_utc().to_rfc3339()),
    }
}

/// A queued test send.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TestQueued {
    pub id: String,
    /// Always `queued`.
    pub status: String,
}

/// An invitation as a recipient gets it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PreviewBody {
    pub locale: String,
    pub variant: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Starts sending (202), or schedules it with `{"at": RFC 3339}`. Asking again is harmless;
/// a paused, scheduled or cancelled campaign answers 409.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = Option<SendRequest>, description = "Optional: `at` schedules the send"),
    responses(
        (status = 202, description = "Sending, or scheduled", body = StatusBody),
        (status = 404, description = "No such campaign in this workspace", body = super::error::ErrorBody),
        (status = 409, description = "Scheduled, paused or cancelled", body = super::error::ErrorBody),
        (status = 422, description = "The campaign cannot be sent, or `at` is not RFC 3339", body = super::error::ErrorBody),
    )
)]
#[post("/campaigns/{id}/send")]
pub async fn send(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: SendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SendRequest { at: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let at = req.at.as_deref().map(parse_at).transpose()?;
    let (workspace_id, actor) = (tenant.id().to_owned(), tenant.actor());
    let id = id.into_inner();
    let campaign = state
        .db
        .run(move |conn| lifecycle::send(conn, &workspace_id, &id, at, &actor).map_err(ApiError::from))
        .await?;
    state.wake.notify_waiters();
    Ok(HttpResponse::Accepted().json(status_body(&campaign)))
}

/// [`lifecycle::pause`], [`lifecycle::resume`] or [`lifecycle::cancel`].
pub type Transition = fn(&mut crate::db::DbConn, &str, &str, &Actor) -> Result<Campaign, CampaignError>;

/// Pause, resume, cancel: 200 with the new status, 409 when the status does not allow it.
async fn transition(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: String,
    change: Transition,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, actor) = (tenant.id().to_owned(), tenant.actor());
    let campaign = state
        .db
        .run(move |conn| change(conn, &workspace_id, &id, &actor).map_err(ApiError::from))
        .await?;
    state.wake.notify_waiters();
    Ok(HttpResponse::Ok().json(status_body(&campaign)))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "The campaign's id")), responses((status = 200, description = "Paused", body = StatusBody), (status = 409, description = "Not sending", body = super::error::ErrorBody)))]
#[post("/campaigns/{id}/pause")]
pub async fn pause(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    transition(state, tenant, id.into_inner(), lifecycle::pause).await
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "The campaign's id")), responses((status = 200, description = "Sending again", body = StatusBody), (status = 409, description = "Not paused", body = super::error::ErrorBody)))]
#[post("/campaigns/{id}/resume")]
pub async fn resume(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    transition(state, tenant, id.into_inner(), lifecycle::resume).await
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "The campaign's id")), responses((status = 200, description = "Cancelled: unsent invitations are never sent", body = StatusBody), (status = 409, description = "Already sent", body = super::error::ErrorBody)))]
#[post("/campaigns/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    transition(state, tenant, id.into_inner(), lifecycle::cancel).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    email: String,
    locale: Option<String>,
    variant: Option<String>,
}

/// Queues a test send (202): through the outbox and the real transport, subject marked
/// "[TEST] ", links that record nothing; 20 per campaign per hour (429 beyond).
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body = TestRequest,
    responses(
        (status = 202, description = "Queued", body = TestQueued),
        (status = 422, description = "Bad address, locale or variant", body = super::error::ErrorBody),
        (status = 429, description = "20 test sends this hour already", body = super::error::ErrorBody),
    )
)]
#[post("/campaigns/{id}/test")]
pub async fn test_send(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    body: web::Json<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, actor) = (tenant.id().to_owned(), tenant.actor());
    let (id, req) = (id.into_inner(), body.into_inner());
    let test_id = state
        .db
        .run(move |conn| {
            preview::request_test(
                conn,
                &workspace_id,
                &id,
                &req.email,
                req.locale.as_deref(),
                req.variant.as_deref(),
                &actor,
            )
            .map_err(ApiError::from)
        })
        .await?;
    state.wake.notify_waiters();
    Ok(HttpResponse::Accepted().json(TestQueued {
        id: test_id,
        status: "queued".to_owned(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    locale: Option<String>,
    variant: Option<String>,
}

/// The invitation exactly as a recipient of `locale` and `variant` gets it.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    params(PreviewQuery),
    responses(
        (status = 200, description = "The invitation as that locale and variant receive it", body = PreviewBody),
        (status = 422, description = "A locale or variant outside the campaign", body = super::error::ErrorBody),
    )
)]
#[get("/campaigns/{id}/preview")]
pub async fn preview_email(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    query: web::Query<PreviewQuery>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let (id, q) = (id.into_inner(), query.into_inner());
    let (keyring, base_url) = (state.keyring.clone(), state.settings.base_url.clone());
    let body = state
        .db
        .run(move |conn| -> Result<_, ApiError> {
            let view = campaigns::find(conn, &workspace_id, &id)?.ok_or(ApiError::NotFound("campaign"))?;
            let (locale, variant) = preview::choose(&view, q.locale.as_deref(), q.variant.as_deref())?;
            let email = preview::render(
                conn,
                &keyring,
                &base_url,
                &view,
                locale,
                &variant,
                preview::PREVIEW_RECIPIENT,
                "preview",
                "",
            )
            .map_err(|e| match e {
                preview::PreviewError::Campaign(c) => ApiError::from(c),
                other => ApiError::Internal(other.to_string()),
            })?;
            Ok(PreviewBody {
                locale: locale.as_str().to_owned(),
                variant,
                subject: email.subject,
                text: email.text,
                html: email.html,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Creates a follow-up wave of a sent campaign (issue 17): 201 `{"id"}`, a draft sent like any
/// campaign.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The parent campaign's id")),
    request_body = campaigns::follow_up::FollowUpRequest,
    responses(
        (status = 201, description = "The follow-up draft", body = Created),
        (status = 404, description = "No such campaign in this workspace", body = super::error::ErrorBody),
        (status = 422, description = "A draft parent, an unknown audience or invalid texts", body = super::error::ErrorBody),
    )
)]
#[post("/campaigns/{id}/follow-ups")]
pub async fn follow_up(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    body: web::Json<campaigns::follow_up::FollowUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let actor = tenant.actor();
    let (parent, req) = (id.into_inner(), body.into_inner());
    let view = state
        .db
        .run(move |conn| {
            campaigns::follow_up::create(conn, &workspace_id, &parent, &req, &actor).map_err(ApiError::from)
        })
        .await?;
    Ok(HttpResponse::Created().json(Created { id: view.campaign.id }))
}

/// The id of what was created.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Created {
    pub id: String,
}
