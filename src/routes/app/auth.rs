//! Login and logout. The login form has no session yet, so it is protected by a double-submit
//! token: a random value in a cookie (SameSite=Strict) and the same value in the form.

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::{AppSession, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_HOURS};
use crate::accounts::{self, LoginOutcome};
use crate::i18n::AppStrings;
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;

#[derive(Template)]
#[template(path = "app/login.html")]
struct LoginPage {
    t: &'static AppStrings,
    csrf: String,
    error: Option<&'static str>,
    email: String,
}

fn login_form(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    error: Option<&'static str>,
    email: String,
) -> HttpResponse {
    let csrf = crate::crypto::random_secret();
    let mut res = render(
        status,
        &LoginPage {
            t: super::strings(req),
            csrf: csrf.clone(),
            error,
            email,
        },
    );
    let mut cookie = super::cookie(state, LOGIN_CSRF_COOKIE, csrf, 3600);
    cookie.set_same_site(SameSite::Strict);
    let _ = res.add_cookie(&cookie);
    res
}

#[get("/app/login")]
pub async fn login_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    login_form(&req, &state, StatusCode::OK, None, String::new())
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

#[post("/app/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let t = super::strings(&req);
    let LoginForm { email, password, csrf } = form.into_inner();
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned());
    if !expected.is_some_and(|e| crate::crypto::constant_time_eq(e.as_bytes(), csrf.as_bytes())) {
        return Ok(login_form(
            &req,
            &state,
            StatusCode::FORBIDDEN,
            Some(t.login_expired_form),
            email,
        ));
    }
    let who = email.clone();
    let client = crate::routes::pages::client_ip(&req, state.settings.trust_forwarded_for)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let outcome = state
        .db
        .run(move |conn| accounts::login(conn, &client, &who, &password, SESSION_HOURS))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    Ok(match outcome {
        LoginOutcome::Success { cookie } => {
            let mut res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/app"))
                .finish();
            let _ = res.add_cookie(&super::cookie(&state, SESSION_COOKIE, cookie, SESSION_HOURS * 3600));
            let _ = res.add_removal_cookie(&super::cookie(&state, LOGIN_CSRF_COOKIE, String::new(), 0));
            res
        }
        LoginOutcome::Rejected => login_form(&req, &state, StatusCode::UNAUTHORIZED, Some(t.login_failed), email),
        LoginOutcome::Throttled => {
            let mut res = login_form(
                &req,
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some(t.login_throttled),
                email,
            );
            let retry_after = (accounts::THROTTLE_MINUTES * 60).to_string();
            if let Ok(value) = header::HeaderValue::from_str(&retry_after) {
                res.headers_mut().insert(header::RETRY_AFTER, value);
            }
            res
        }
    })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

#[post("/app/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(HttpResponse::Forbidden().body("missing or wrong form token"));
    }
    let id = session.0.id.clone();
    state
        .db
        .run(move |conn| accounts::logout(conn, &id))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/app/login"))
        .finish();
    let _ = res.add_removal_cookie(&super::cookie(&state, SESSION_COOKIE, String::new(), 0));
    Ok(res)
}
