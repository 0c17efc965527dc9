//! `GET /u/{token}` shows a button; `POST /u/{token}` unsubscribes. The POST works without
//! cookies or a form token, as RFC 8058 one-click requires (mail clients post
//! `List-Unsubscribe=One-Click` themselves); the signed link is the authorization.

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::campaigns::unsubscribe;
use crate::domain::Locale;
use crate::i18n::{self, PageStrings};
use crate::links::{LinkClaims, LinkPurpose};
use crate::metrics::METRICS;
use crate::routes::pages;
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "pages/unsubscribe.html")]
struct UnsubscribePage<'a> {
    t: &'static PageStrings,
    company: &'a str,
    action: String,
}

#[derive(Template)]
#[template(path = "pages/unsubscribed.html")]
struct UnsubscribedPage<'a> {
    t: &'static PageStrings,
    company: &'a str,
}

async fn verify(req: &HttpRequest, state: &AppState, token: &str) -> Result<(LinkClaims, String), HttpResponse> {
    let claims = state
        .keyring
        .verify(token, LinkPurpose::Unsubscribe)
        .await
        .map_err(|e| {
            tracing::debug!(reason = %e, "unsubscribe with a bad link");
            pages::not_found(req)
        })?;
    let company = match state.campaigns.get(&state.db, &claims.cid).await {
        Ok(Some(c)) => c.company.clone(),
        Ok(None) => return Err(pages::not_found(req)),
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe: database unavailable");
            return Err(HttpResponse::ServiceUnavailable().finish());
        }
    };
    Ok((claims, company))
}

/// Everything under `/u/` (a prefix scope, see `routes::link_scope`).
pub async fn dispatch(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = super::link_token(&req, "/u/").map(str::to_owned) else {
        return pages::not_found(&req);
    };
    match *req.method() {
        Method::GET | Method::HEAD => show(req, state, token).await,
        Method::POST => confirm(req, state, token).await,
        _ => HttpResponse::MethodNotAllowed().finish(),
    }
}

async fn show(req: HttpRequest, state: web::Data<AppState>, token: String) -> HttpResponse {
    match verify(&req, &state, &token).await {
        Ok((claims, company)) => pages::render(
            StatusCode::OK,
            &UnsubscribePage {
                t: i18n::page(Locale::parse(&claims.loc).unwrap_or(Locale::En)),
                company: &company,
                action: format!("/u/{token}"),
            },
        ),
        Err(res) => res,
    }
}

async fn confirm(req: HttpRequest, state: web::Data<AppState>, token: String) -> HttpResponse {
    let (claims, company) = match verify(&req, &state, &token).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    let invitation = claims.sub.clone();
    let done = state
        .db
        .run(move |conn| unsubscribe::unsubscribe(conn, &invitation, "unsubscribe link"))
        .await;
    match done {
        Ok(true) => {
            METRICS.unsubscribes.inc();
            pages::render(
                StatusCode::OK,
                &UnsubscribedPage {
                    t: i18n::page(Locale::parse(&claims.loc).unwrap_or(Locale::En)),
                    company: &company,
                },
            )
        }
        Ok(false) => pages::not_found(&req),
        Err(e) => {
            // The sender retries one-click POSTs on 5xx; nothing was half-written.
            tracing::error!(error = %e, "unsubscribe failed");
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}
