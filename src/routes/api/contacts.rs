use std::path::PathBuf;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{ApiError, Tenant};
use crate::contacts::{self, import as csv_import};
use crate::routes::AppState;

impl From<csv_import::ImportError> for ApiError {
    fn from(e: csv_import::ImportError) -> Self {
        match e {
            csv_import::ImportError::Db(e) => e.into(),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

/// `POST /api/v1/contacts/import` with the CSV as the raw body.
///
/// The body is first spooled to a temporary file (never held in memory) so that an oversized
/// upload is refused with 413 before any row is written; then it is imported in batches.
#[post("/contacts/import")]
pub async fn import_contacts(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.settings.import_max_bytes;
    check_content_type(&req)?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }

    let spool = SpoolFile::new();
    let mut file = tokio::fs::File::create(&spool.0)
        .await
        .map_err(|e| ApiError::Internal(format!("creating spool file: {e}")))?;
    let mut received = 0u64;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body failed: {e}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("writing spool file: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(format!("writing spool file: {e}")))?;
    drop(file);

    let workspace_id = tenant.id().to_owned();
    let actor = tenant.actor();
    let started = std::time::Instant::now();
    let report = state
        .db
        .run(move |conn| {
            let file =
                std::fs::File::open(&spool.0).map_err(|e| ApiError::Internal(format!("reading spool file: {e}")))?;
            let report = csv_import::import_csv(conn, &workspace_id, file, |_| {}).map_err(ApiError::from)?;
            // The import commits in batches; its entry follows the last one.
            crate::activity::record(
                conn,
                &workspace_id,
                &actor,
                crate::activity::Action::Import,
                None,
                &format!(
                    "imported {}, updated {}, rejected {}",
                    report.imported,
                    report.updated,
                    report.rejected_total()
                ),
            )?;
            Ok::<_, ApiError>(report)
        })
        .await?;
    tracing::info!(
        workspace = tenant.id(),
        bytes = received,
        imported = report.imported,
        updated = report.updated,
        rejected = report.rejected_total(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "contacts imported"
    );
    Ok(HttpResponse::Ok().json(report))
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ct = ct.to_ascii_lowercase();
    if ct.starts_with("multipart/") || ct.starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send the CSV file itself as the request body with 'Content-Type: text/csv' (not a form upload or JSON)"
                .into(),
        ));
    }
    Ok(())
}

/// A temporary file removed when dropped (also when the request is cancelled).
struct SpoolFile(PathBuf);

impl SpoolFile {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("optbridge-import-{}.csv", crate::db::new_id())))
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[get("/contacts/{id}")]
pub async fn show(state: web::Data<AppState>, tenant: Tenant, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let contact = state
        .db
        .run(move |conn| contacts::find(conn, &workspace_id, &id).map_err(ApiError::from))
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    Ok(HttpResponse::Ok().json(contact))
}

/// The contact's full consent history with evidence.
#[get("/contacts/{id}/consent")]
pub async fn consent(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let history = state
        .db
        .run(move |conn| crate::consent::history::of_contact(conn, &workspace_id, &id).map_err(ApiError::from))
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    Ok(HttpResponse::Ok().json(history))
}

/// Erases the contact's personal data (GDPR art. 17); anonymous statistics and the verifiable
/// ledger remain. Idempotent.
#[delete("/contacts/{id}")]
pub async fn erase(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let actor = tenant.actor();
    let erased = state
        .db
        .run(move |conn| crate::contacts::erase::erase(conn, &workspace_id, &id, "api", &actor).map_err(ApiError::from))
        .await?;
    if !erased {
        return Err(ApiError::NotFound("contact"));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"erased": true})))
}
