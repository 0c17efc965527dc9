use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;

/// What the JSON API answers when something is wrong: a status and `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API token: send 'Authorization: Bearer <workspace API token>'")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    /// 422 listing every broken rule: `{"error": "…; …", "problems": [{"field", "error"}]}`.
    #[error("{message}")]
    Rules {
        message: String,
        problems: Vec<(String, String)>,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the database is not available right now; try again")]
    Unavailable(#[source] DbError),
    #[error("internal error")]
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            e if e.is_connection_lost() => Self::Unavailable(e),
            e if e.is_invalid_text() => Self::BadRequest("text must not contain NUL (\\u0000) characters".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) | Self::Rules { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(detail) => tracing::error!(error = %detail, "API request failed"),
            Self::Unavailable(source) => {
                tracing::warn!(error = %source, "API request: database unavailable")
            }
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if matches!(self, Self::Unavailable(_)) {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let Self::Rules { problems, .. } = self {
            let problems: Vec<_> = problems
                .iter()
                .map(|(field, error)| json!({ "field": field, "error": error }))
                .collect();
            return res.json(json!({ "error": self.to_string(), "problems": problems }));
        }
        res.json(json!({ "error": self.to_string() }))
    }
}
