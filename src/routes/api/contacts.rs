use std::path::PathBuf;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{ApiError, Tenant};
use crate::contacts::sync::{
    self, ContactFilter, ContactListItem, Cursor, PageError, SmsConsentState, SuppressionItem,
};
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
#[utoipa::path(
    tag = "contacts",
    request_body(content = String, content_type = "text/csv", description = "Columns `email` (required), `first_name`, `last_name`, `locale`, `external_id`, `email_consent_at`, `email_consent_source`"),
    responses(
        (status = 200, description = "Counts and the rejected rows", body = csv_import::ImportReport),
        (status = 413, description = "Larger than IMPORT_MAX_BYTES", body = super::error::ErrorBody),
        (status = 415, description = "Not a CSV body", body = super::error::ErrorBody),
    )
)]
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

#[utoipa::path(
    tag = "contacts",
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "The contact", body = contacts::Contact),
        (status = 404, description = "No such contact in this workspace", body = super::error::ErrorBody),
    )
)]
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
#[utoipa::path(
    tag = "contacts",
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "Consent history with evidence", body = crate::consent::history::ContactConsent),
        (status = 404, description = "No such contact in this workspace", body = super::error::ErrorBody),
    )
)]
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
#[utoipa::path(
    tag = "contacts",
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "Erased (also when it was already)", body = Erased),
        (status = 404, description = "No such contact in this workspace", body = super::error::ErrorBody),
    )
)]
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
    Ok(HttpResponse::Ok().json(Erased { erased: true }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Erased {
    pub erased: bool,
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// `?limit=&after=`: taken as text, so that a bad value gets a clear 400 naming the rule.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Rows per page, 1 to 1000.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// The `next` of the previous page; absent for the first page.
    pub after: Option<String>,
}

impl Paging {
    fn parse(&self) -> Result<(i64, Option<Cursor>), ApiError> {
        let limit = sync::parse_limit(self.limit.as_deref())?;
        let after = self.after.as_deref().map(Cursor::decode).transpose()?;
        Ok((limit, after))
    }
}

/// The filters of the contact list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only contacts with this locale (`da`, `nb`, `sv`, `en`).
    pub locale: Option<String>,
    /// Only contacts whose SMS consent is `active`, `withdrawn` or `none`.
    #[param(value_type = Option<SmsConsentState>)]
    pub sms_consent: Option<String>,
    /// `true`: only contacts whose email or consented number is suppressed; `false`: only the others.
    #[param(value_type = Option<bool>)]
    pub suppressed: Option<String>,
    /// Only contacts changed (also their consent or suppression) at or after this RFC 3339 time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub updated_since: Option<String>,
}

impl ContactQuery {
    fn filter(&self) -> Result<ContactFilter, ApiError> {
        let sms_consent = match self.sms_consent.as_deref() {
            None => None,
            Some(raw) => Some(SmsConsentState::parse(raw).ok_or_else(|| PageError::Filter {
                name: "sms_consent",
                allowed: "active, withdrawn, none",
                value: raw.to_owned(),
            })?),
        };
        let suppressed = match self.suppressed.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(raw) => {
                return Err(PageError::Filter {
                    name: "suppressed",
                    allowed: "true, false",
                    value: raw.to_owned(),
                }
                .into());
            }
        };
        let updated_since = match self.updated_since.as_deref() {
            None => None,
            Some(raw) => Some(
                chrono::DateTime::parse_from_rfc3339(raw.trim())
                    .map_err(|_| PageError::Filter {
                        name: "updated_since",
                        allowed: "an RFC 3339 time such as 2026-12-01T00:00:00Z",
                        value: raw.to_owned(),
                    })?
                    .naive_utc(),
            ),
        };
        Ok(ContactFilter {
            locale: self.locale.clone(),
            sms_consent,
            suppressed,
            updated_since,
        })
    }
}

/// A page of contacts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ContactPage {
    pub data: Vec<ContactListItem>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// A page of the suppression list.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SuppressionPage {
    pub data: Vec<SuppressionItem>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// The workspace's contacts with their SMS consent state, least recently changed first, a page at
/// a time (for a nightly sync: keep the last `updated_at` seen and pass it as `updated_since`).
#[utoipa::path(
    tag = "contacts",
    params(Paging, ContactQuery),
    responses((status = 200, description = "A page of contacts", body = ContactPage))
)]
#[get("/contacts")]
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    paging: web::Query<Paging>,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = paging.parse()?;
    let filter = query.filter()?;
    let workspace_id = tenant.id().to_owned();
    let page = state
        .db
        .run(move |conn| {
            sync::contacts_page(conn, &workspace_id, &filter, after.as_ref(), limit).map_err(ApiError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ContactPage {
        data: page.data,
        next: page.next,
    }))
}

/// The workspace's suppression list (unsubscribes, STOPs, hard bounces), oldest first, a page at a time.
#[utoipa::path(
    tag = "contacts",
    params(Paging),
    responses((status = 200, description = "A page of suppressions", body = SuppressionPage))
)]
#[get("/suppressions")]
pub async fn suppressions(
    state: web::Data<AppState>,
    tenant: Tenant,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = paging.parse()?;
    let workspace_id = tenant.id().to_owned();
    let page = state
        .db
        .run(move |conn| sync::suppressions_page(conn, &workspace_id, after.as_ref(), limit).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(SuppressionPage {
        data: page.data,
        next: page.next,
    }))
}
