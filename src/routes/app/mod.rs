//! The marketer's dashboard under `/app`: login, campaigns with their funnel, consent texts,
//! contacts with their consent history, the suppression list. Server-rendered, no JavaScript.
//!
//! Every page but the login needs a session cookie (`ob_session`: HttpOnly, SameSite=Lax, Path
//! /app, Secure when BASE_URL is https); every form carries the session's form token.

mod activity;
mod auth;
mod campaigns;
mod charts;
mod consent_texts;
mod import;
mod pages;
mod users;
mod webhooks;

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use super::error::PageError;
use crate::accounts::{self, Role, Session};
use crate::activity::Actor;
use crate::domain::Locale;
use crate::i18n::{self, AppStrings};
use crate::routes::AppState;

pub const SESSION_COOKIE: &str = "ob_session";
pub const LOGIN_CSRF_COOKIE: &str = "ob_login_csrf";
/// Hours a dashboard session lasts.
pub const SESSION_HOURS: i64 = 12;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(auth::login_page)
        .service(auth::login)
        .service(auth::logout)
        .service(pages::campaigns_page)
        .service(campaigns::new_page)
        .service(campaigns::create)
        .service(pages::campaign_page)
        .service(campaigns::edit_page)
        .service(campaigns::edit)
        .service(campaigns::send)
        .service(campaigns::pause)
        .service(campaigns::resume)
        .service(campaigns::cancel)
        .service(campaigns::test_send)
        .service(pages::campaign_csv)
        .service(pages::consent_texts_page)
        .service(pages::contacts_page)
        .service(pages::contact_evidence)
        .service(pages::contact_page)
        .service(pages::erase_contact)
        .service(pages::suppressions_page)
        .service(pages::consents_csv)
        .service(users::users_page)
        .service(users::invite_user)
        .service(users::change_role)
        .service(users::remove_user)
        .service(users::accept_form)
        .service(users::accept)
        .service(activity::activity_page)
        .service(webhooks::webhooks_page)
        .service(webhooks::send_again)
        .service(import::import_form)
        .service(import::upload)
        .service(import::job_page)
        .service(import::refused_csv)
        .service(consent_texts::new_text)
        .service(consent_texts::create_text)
        .service(stylesheet)
        .route("/", web::get().to(home));
}

/// `/` leads to the dashboard (which asks for a login first); recipients never come here, their
/// links go to `/l/…`.
async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/app"))
        .finish()
}

/// Every dashboard POST that changes something, with the role it needs (the handler calls
/// [`AppSession::require`] with it before anything else). A new action gets a row here:
/// `tests/api/roles.rs` finds every `#[post]` route under `src/routes/app/` and fails for one
/// without a row, then posts to each as a viewer (403, nothing changed) and to the owner-only
/// ones as an editor (403).
pub const ACTIONS: &[(&str, Role)] = &[
    ("/app/contacts/{id}/erase", Role::Editor),
    ("/app/campaigns/new", Role::Editor),
    ("/app/campaigns/{id}/edit", Role::Editor),
    ("/app/campaigns/{id}/send", Role::Editor),
    ("/app/campaigns/{id}/pause", Role::Editor),
    ("/app/campaigns/{id}/resume", Role::Editor),
    ("/app/campaigns/{id}/cancel", Role::Editor),
    ("/app/campaigns/{id}/test", Role::Editor),
    ("/app/users/invite", Role::Owner),
    ("/app/users/{id}/role", Role::Owner),
    ("/app/users/{id}/remove", Role::Owner),
    ("/app/webhooks/deliveries/{id}/send-again", Role::Owner),
    ("/app/import", Role::Editor),
    ("/app/consent-texts/new", Role::Editor),
];

/// POST routes open to everyone: they act on the poster's own login, not on the workspace.
pub const OPEN_POSTS: &[&str] = &["/app/login", "/app/logout", "/app/invite/{token}"];

/// The dashboard speaks Danish to Danish browsers and English to everyone else.
pub fn locale(req: &HttpRequest) -> Locale {
    match super::pages::preferred_locale(req) {
        Locale::Da => Locale::Da,
        _ => Locale::En,
    }
}

pub fn strings(req: &HttpRequest) -> &'static AppStrings {
    i18n::app(locale(req))
}

pub fn cookie<'a>(state: &AppState, name: &'a str, value: String, max_age_secs: i64) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/app")
        .http_only(true)
        .secure(state.settings.base_url.scheme() == "https")
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// A logged-in user. Extracting it from a request without a valid session answers with a
/// redirect to the login page (GET) or 403 (anything else).
pub struct AppSession(pub Session);

#[derive(Debug)]
pub struct NotLoggedIn {
    get: bool,
}

impl std::fmt::Display for NotLoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not logged in")
    }
}

impl ResponseError for NotLoggedIn {
    fn status_code(&self) -> StatusCode {
        if self.get {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FORBIDDEN
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.get {
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/app/login"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        } else {
            HttpResponse::Forbidden().body("log in first")
        }
    }
}

impl FromRequest for AppSession {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let get = req.method() == actix_web::http::Method::GET;
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let (Some(cookie), Some(state)) = (cookie, state) else {
                return Err(NotLoggedIn { get }.into());
            };
            let found = state
                .db
                .run(move |conn| accounts::session(conn, &cookie))
                .await
                .map_err(|e| PageError::dashboard(&req, e))?;
            found.map(AppSession).ok_or_else(|| NotLoggedIn { get }.into())
        })
    }
}

impl AppSession {
    /// Whether a posted form carries this session's form token.
    pub fn csrf_ok(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| crate::crypto::constant_time_eq(t.as_bytes(), self.0.csrf.as_bytes()))
    }

    pub fn workspace_id(&self) -> &str {
        &self.0.workspace.id
    }

    /// Refuses (403, a localized page, nothing changed) unless the user's role includes
    /// `needed`. Every dashboard POST calls it before it changes anything: editors and owners
    /// act, owners also manage users, viewers only read.
    pub fn require(&self, req: &HttpRequest, needed: Role) -> Result<(), PageError> {
        if self.0.role.at_least(needed) {
            Ok(())
        } else {
            tracing::info!(user = %self.0.user_id, role = %self.0.role, needed = %needed, path = %req.path(), "dashboard: role refused");
            Err(PageError::dashboard(req, super::error::PageFailure::Forbidden))
        }
    }

    /// The user, as the activity log names them.
    pub fn actor(&self) -> Actor {
        Actor::User {
            email: self.0.email.clone(),
        }
    }
}

#[actix_web::get("/assets/app.css")]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .body(include_str!("../../../assets/app.css"))
}
