use actix_web::{HttpResponse, get, web};

use super::{ApiError, Tenant};
use crate::campaigns;
use crate::funnel::report;
use crate::routes::AppState;

/// The funnel with the campaign's follow-up waves and their combined total (issue 17).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FunnelWithWaves {
    #[serde(flatten)]
    report: report::FunnelReport,
    #[serde(flatten)]
    waves: campaigns::follow_up::Waves,
}

/// The campaign's funnel: counts, rates, per variant and locale, A/B test, time series, and its
/// follow-ups.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The funnel", body = FunnelWithWaves),
        (status = 404, description = "No such campaign in this workspace", body = super::error::ErrorBody),
    )
)]
#[get("/campaigns/{id}/funnel")]
pub async fn funnel(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let report = state
        .db
        .run(move |conn| {
            let view = campaigns::find(conn, &workspace_id, &id)?.ok_or(ApiError::NotFound("campaign"))?;
            let order: Vec<String> = view.variants.iter().map(|v| v.name.clone()).collect();
            Ok::<_, ApiError>(FunnelWithWaves {
                report: report::campaign_funnel(conn, &view.campaign, &order)?,
                waves: campaigns::follow_up::waves(conn, &workspace_id, &id)?,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// One CSV row per recipient with the time of each funnel step.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "One row per recipient", body = String, content_type = "text/csv"),
        (status = 404, description = "No such campaign in this workspace", body = super::error::ErrorBody),
    )
)]
#[get("/campaigns/{id}/recipients.csv")]
pub async fn recipients_csv(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let check = id.clone();
    state
        .db
        .run(move |conn| campaigns::find(conn, &workspace_id, &check)?.ok_or(ApiError::NotFound("campaign")))
        .await?;
    let filename = format!("campaign-{id}-recipients.csv");
    Ok(crate::routes::csv::stream_csv(
        &state.db,
        &filename,
        move |conn, sink| crate::exports::campaign_recipients(conn, &id, sink),
    ))
}

/// Every active SMS consent of the workspace with its evidence, as CSV.
#[utoipa::path(
    tag = "contacts",
    responses((status = 200, description = "Active SMS consents with evidence", body = String, content_type = "text/csv"))
)]
#[get("/consents/export")]
pub async fn consents_export(state: web::Data<AppState>, tenant: Tenant) -> HttpResponse {
    let workspace_id = tenant.id().to_owned();
    crate::routes::csv::stream_csv(&state.db, "sms-consents.csv", move |conn, sink| {
        crate::exports::active_consents(conn, &workspace_id, sink)
    })
}
