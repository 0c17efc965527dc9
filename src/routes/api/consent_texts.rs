use actix_web::{HttpResponse, get, post, web};

use super::{ApiError, Tenant};
use crate::consent::texts::{self, ConsentText, ConsentTextError, ConsentTextRequest};
use crate::routes::AppState;

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
/// produces, its encoding and how many segments it takes (one GSM-7 segment is the goal).
fn with_sms_preview(version: &texts::ConsentTextVersion) -> serde_json::Value {
    let locale = crate::domain::Locale::parse(&version.locale).unwrap_or(crate::domain::Locale::En);
    let text = crate::i18n::sms::doi_request(locale, &version.company_name, "123456");
    let count = crate::sms::segments::count(&text);
    let mut value = serde_json::to_value(version).unwrap_or_default();
    value["sms_preview"] = serde_json::json!({
        "text": text,
        "encoding": count.encoding,
        "segments": count.segments,
        "units": count.units,
    });
    value
}

#[get("/consent-texts")]
pub async fn list(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    let workspace_id = tenant.id().to_owned();
    let versions = state
        .db
        .run(move |conn| texts::list(conn, &workspace_id).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(versions))
}

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
