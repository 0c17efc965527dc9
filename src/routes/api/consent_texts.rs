use actix_web::{HttpResponse, get, post, web};

use super::{ApiError, Tenant};
use crate::consent::texts::{self, ConsentText, ConsentTextError, ConsentTextRequest};
use crate::routes::AppState;
use crate::sms::preview::{ConsentTextSms, SmsPreview};

impl From<ConsentTextError> for ApiError {
    fn from(e: ConsentTextError) -> Self {
        match e {
            ConsentTextError::Invalid(msg) => ApiError::Unprocessable(msg),
            ConsentTextError::Rules(problems) => ApiError::Rules {
                message: ConsentTextError::Rules(problems.clone()).to_string(),
                problems: problems.into_iter().map(|p| (p.field.to_owned(), p.message)).collect(),
            },
            ConsentTextError::Db(e) => e.into(),
        }
    }
}

/// Creates a consent-text version: 201 when new, 200 with the existing version when the
/// rendered text is identical to one already stored.
#[utoipa::path(
    tag = "consent texts",
    request_body = ConsentTextRequest,
    responses(
        (status = 201, description = "A new version", body = ConsentTextBody),
        (status = 200, description = "The identical version already stored", body = ConsentTextBody),
        (status = 422, description = "The text breaks a rule (e.g. the word \"free\")", body = super::error::ErrorBody),
    )
)]
#[post("/consent-texts")]
pub async fn create(
    state: web::Data<AppState>,
    tenant: Tenant,
    body: web::Json<ConsentTextRequest>,
) -> Result<HttpResponse, ApiError> {
    let text = ConsentText::parse(&body)?;
    let workspace_id = tenant.id().to_owned();
    let actor = tenant.actor();
    let (version, created) = state
        .db
        .run(move |conn| texts::create_version(conn, &workspace_id, &text, &actor))
        .await?;
    let mut res = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res.json(with_sms_preview(&version)))
}

/// The version as JSON plus `sms_preview`: the double-opt-in SMS this text's company name
/// produces, its encoding and how many segments it takes (one GSM-7 segment is the goal); and
/// `sms_previews`: the double-opt-in request and the receipt, each with its count.
fn with_sms_preview(version: &texts::ConsentTextVersion) -> ConsentTextBody {
    let sms = crate::sms::preview::for_version(version);
    ConsentTextBody {
        version: version.clone(),
        sms_preview: sms.doi_request.clone(),
        sms_previews: sms,
    }
}

/// A consent-text version with the SMS its company name and privacy URL produce.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConsentTextBody {
    #[serde(flatten)]
    pub version: texts::ConsentTextVersion,
    /// The double-opt-in request (kept for clients of the first version of this answer).
    pub sms_preview: SmsPreview,
    pub sms_previews: ConsentTextSms,
}

#[utoipa::path(tag = "consent texts", responses((status = 200, description = "Every version", body = Vec<texts::ConsentTextVersion>)))]
#[get("/consent-texts")]
pub async fn list(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let versions = state
        .db
        .run(move |conn| texts::list(conn, &workspace_id).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(versions))
}

#[utoipa::path(
    tag = "consent texts",
    params(("id" = String, Path, description = "The version's id")),
    responses(
        (status = 200, description = "The version", body = ConsentTextBody),
        (status = 404, description = "No such version in this workspace", body = super::error::ErrorBody),
    )
)]
#[get("/consent-texts/{id}")]
pub async fn show(state: web::Data<AppState>, tenant: Tenant, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let id = id.into_inner();
    let version = state
        .db
        .run(move |conn| texts::find(conn, &workspace_id, &id).map_err(ApiError::from))
        .await?
        .ok_or(ApiError::NotFound("consent text"))?;
    Ok(HttpResponse::Ok().json(with_sms_preview(&version)))
}
