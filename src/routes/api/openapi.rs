//! The OpenAPI 3.1 description of `/api/v1`, served at `GET /api/v1/openapi.json` without a token.
//! Built from the same scope the server registers (see `super::scope`), so every route the API
//! serves is in it with the schemas of its handler's `#[utoipa::path]`.

use std::sync::LazyLock;

use actix_web::{HttpResponse, get};
use utoipa::OpenApi as _;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa_actix_web::OpenApiFactory as _;

use super::error::ErrorBody;

/// The name of the bearer-token security scheme.
const BEARER: &str = "api_token";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "optbridge API",
        description = "Turns a retailer's email marketing permissions into documented SMS marketing permissions. \
                       Every route but this document needs `Authorization: Bearer <workspace API token>`; errors \
                       answer `{\"error\": \"…\"}`."
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(build);
    &DOC
}

fn build() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let scope = super::scope();
    let mut schemas = Vec::new();
    doc.paths.merge(scope.paths());
    scope.schemas(&mut schemas);
    doc.paths.merge(openapi_json.paths());
    openapi_json.schemas(&mut schemas);
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.extend(schemas);
    components.add_security_scheme(BEARER, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);

    // The answers every authenticated route may give, in the one error shape.
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        for (method, op) in operations
            .into_iter()
            .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
        {
            // Handler names repeat across modules (`list`, `show`): ids from method and path are unique.
            op.operation_id = Some(operation_id(method, path));
            // `security(())` on a handler: open to anyone (this document).
            if op.security.is_some() {
                continue;
            }
            let responses = &mut op.responses.responses;
            for (status, description) in [
                ("400", "Malformed request (the message says what is wrong)"),
                ("401", "Missing or invalid API token"),
                ("500", "Internal error"),
                (
                    "503",
                    "The database is not available right now; try again (Retry-After)",
                ),
            ] {
                responses.entry(status.to_owned()).or_insert_with(|| error(description));
            }
        }
    }
    doc
}

/// `get /api/v1/consent-texts/{id}` → `get_consent_texts_by_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.trim_start_matches("/api/v1/").split('/') {
        id.push('_');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                id.push_str("by_");
                id.push_str(param);
            }
            None => id.extend(segment.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })),
        }
    }
    id
}

/// This document.
#[utoipa::path(
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of /api/v1", content_type = "application/json"))
)]
#[get("/api/v1/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    static JSON: LazyLock<String> = LazyLock::new(|| document().to_json().unwrap_or_default());
    HttpResponse::Ok().content_type("application/json").body(JSON.as_str())
}
