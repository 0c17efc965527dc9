//! Bearer-token authentication for `/api/v1`: the middleware binds each request to one workspace.

use std::future::{Ready, ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use super::error::ApiError;
use crate::activity::Actor;
use crate::routes::AppState;
use crate::workspace::{self, Workspace};

/// The workspace the request's token acts for. Every handler that reads or writes data takes
/// this and scopes its queries by `tenant.0.id`.
#[derive(Debug, Clone)]
pub struct Tenant(pub Workspace, TokenLabel);

/// The label the API token was created with, naming it in the activity log.
#[derive(Debug, Clone)]
struct TokenLabel(String);

impl Tenant {
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The token, as the activity log names it.
    pub fn actor(&self) -> Actor {
        Actor::ApiToken {
            label: self.1.0.clone(),
        }
    }
}

/// A request without a valid token is answered here (401, or 503 when the database is away), as
/// a response rather than an error, so that the headers middleware outside sees it.
pub async fn require_api_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match tenant_of(&req).await {
        Ok(tenant) => {
            req.extensions_mut().insert(tenant);
            next.call(req).await.map(ServiceResponse::map_into_left_body)
        }
        Err(err) => Ok(req.error_response(err).map_into_right_body()),
    }
}

async fn tenant_of(req: &ServiceRequest) -> Result<Tenant, ApiError> {
    let token = bearer_token(req.request()).ok_or(ApiError::Unauthorized)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?
        .clone();
    let found = state
        .db
        .run(move |conn| workspace::authenticate_token(conn, &token).map_err(ApiError::from))
        .await?;
    found
        .map(|(workspace, label)| Tenant(workspace, TokenLabel(label)))
        .ok_or(ApiError::Unauthorized)
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Tenant>().cloned().ok_or(ApiError::Unauthorized))
    }
}
