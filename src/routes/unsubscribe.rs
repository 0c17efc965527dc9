//! `GET /u/{token}` shows a button; `POST /u/{token}` unsubscribes. The POST works without
//! cookies or a form token, as RFC 8058 one-click requires (mail clients post
//! `List-Unsubscribe=One-Click` themselves); the signed link is the authorization.

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::campaigns::unsubscribe::{self, Unsubscribed};
use crate::domain::Locale;
use crate::i18n::{self, PageStrings};
use crate::links::{LinkClaims, LinkPurpose};
use crate::metrics::METRICS;
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages;

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

async fn verify(req: &HttpRequest, state: &AppState, token: &str) -> Result<(LinkClaims, String), PageError> {
    let claims = state
        .keyring
        .verify(token, LinkPurpose::Unsubscribe)
        .await
        .map_err(|e| {
            tracing::debug!(reason = %e, "unsubscribe with a bad link");
            PageError::not_found(req)
        })?;
    let claims = super::landing::with_context(req, state, claims).await?;
    let cached = state
        .campaigns
        .get(&state.db, &claims.cid, Locale::parse(&claims.loc).unwrap_or(Locale::En))
        .await
        .map_err(|e| PageError::public(req, e))?
        .ok_or_else(|| PageError::not_found(req))?;
    Ok((claims, cached.campaign.company.clone()))
}

/// Everything under `/u/` (a prefix scope, see `routes::link_scope`).
pub async fn dispatch(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let Some(token) = super::link_token(&req, "/u/").map(str::to_owned) else {
        return Err(PageError::not_found(&req));
    };
    match *req.method() {
        Method::GET | Method::HEAD => show(req, state, token).await,
        Method::POST => confirm(req, state, token).await,
        _ => Ok(HttpResponse::MethodNotAllowed().finish()),
    }
}

async fn show(req: HttpRequest, state: web::Data<AppState>, token: String) -> Result<HttpResponse, PageError> {
    let (claims, company) = verify(&req, &state, &token).await?;
    Ok(pages::render(
        StatusCode::OK,
        &UnsubscribePage {
            t: i18n::page(Locale::parse(&claims.loc).unwrap_or(Locale::En)),
            company: &company,
            action: format!("/u/{token}"),
        },
    ))
}

async fn confirm(req: HttpRequest, state: web::Data<AppState>, token: String) -> Result<HttpResponse, PageError> {
    let (claims, company) = verify(&req, &state, &token).await?;
    let invitation = claims.sub.clone();
    // The sender retries one-click POSTs on 5xx; nothing was half-written.
    let done = state
        .db
        .run(move |conn| unsubscribe::unsubscribe(conn, &invitation, "unsubscribe link"))
        .await
        .map_err(|e| PageError::public(&req, e))?;
    if done == Unsubscribed::NoSuchInvitation {
        return Err(PageError::not_found(&req));
    }
    METRICS.unsubscribes.inc();
    Ok(pages::render(
        StatusCode::OK,
        &UnsubscribedPage {
            t: i18n::page(Locale::parse(&claims.loc).unwrap_or(Locale::En)),
            company: &company,
        },
    ))
}
