//! The dev outboxes, mounted only while the dev providers are active: `/dev/mail` lists the
//! emails that would have been sent, with the rendered HTML part and the raw source.
//!
//! The reply form of `/dev/sms` confirms consents and withdraws them (JA, STOP): it takes only
//! same-origin posts carrying the page's form token. The dev pages have no session, so the token
//! is double-submitted, as on the dashboard's login form: a random value in a cookie
//! (SameSite=Strict, HttpOnly, Path=/dev) and the same value in the form.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use diesel::prelude::*;

use crate::db::schema::dev_messages;
use crate::mail::DevMail;
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages;

/// The cookie half of the `/dev/sms` reply form's token.
pub const DEV_CSRF_COOKIE: &str = "ob_dev_csrf";

pub fn configure_mail(cfg: &mut web::ServiceConfig) {
    cfg.service(mail_list)
        .service(mail_show)
        .service(mail_html)
        .service(mail_raw);
}

/// `/dev/sms`: each phone's thread, and a form to answer as the phone would; the answer goes
/// through the same inbound handling as a provider's webhook.
pub fn configure_sms(cfg: &mut web::ServiceConfig) {
    cfg.service(sms_threads).service(sms_reply);
}

#[derive(Template)]
#[template(path = "dev/mail_list.html")]
struct MailList {
    messages: Vec<DevMail>,
}

#[derive(Template)]
#[template(path = "dev/mail_show.html")]
struct MailShow {
    m: DevMail,
}

async fn load(req: &HttpRequest, state: &AppState, id: Option<String>) -> Result<Vec<DevMail>, PageError> {
    state
        .db
        .run(move |conn| {
            let mut q = dev_messages::table
                .filter(dev_messages::channel.eq(crate::domain::Channel::Email))
                .order(dev_messages::created_at.desc())
                .limit(200)
                .select(DevMail::as_select())
                .into_boxed();
            if let Some(id) = id {
                q = q.filter(dev_messages::id.eq(id));
            }
            q.load(conn).map_err(crate::db::DbError::from)
        })
        .await
        .map_err(|e| PageError::public(req, e))
}

async fn one(req: &HttpRequest, state: &AppState, id: String) -> Result<DevMail, PageError> {
    load(req, state, Some(id))
        .await?
        .pop()
        .ok_or_else(|| PageError::not_found(req))
}

#[get("/dev/mail")]
async fn mail_list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let messages = load(&req, &state, None).await?;
    Ok(pages::render(StatusCode::OK, &MailList { messages }))
}

#[get("/dev/mail/{id}")]
async fn mail_show(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let m = one(&req, &state, id.into_inner()).await?;
    let body = (MailShow { m }).render().map_err(|e| PageError::public(&req, e))?;
    let mut res = pages::html(StatusCode::OK, body);
    // This page frames the HTML part, so it needs frame-src on top of the page policy.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; frame-src 'self'; frame-ancestors 'none'"),
    );
    Ok(res)
}

/// The HTML part exactly as sent, in a sandbox: no script, inline styles and images allowed (it
/// loads the open pixel, so viewing it here counts as an open, as in a real mail client).
#[get("/dev/mail/{id}/html")]
async fn mail_html(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let m = one(&req, &state, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'"),
        ))
        .body(m.body_html.unwrap_or_default()))
}

#[get("/dev/mail/{id}/raw")]
async fn mail_raw(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let m = one(&req, &state, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .body(m.raw.unwrap_or_default()))
}

#[get("/assets/dev.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        ))
        .body(include_str!("../../assets/dev.css"))
}

/// One phone's conversation with optbridge.
struct Thread {
    phone: String,
    messages: Vec<DevMail>,
}

#[derive(Template)]
#[template(path = "dev/sms.html")]
struct SmsThreads {
    threads: Vec<Thread>,
    sender: String,
    csrf: String,
}

#[get("/dev/sms")]
async fn sms_threads(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let messages = state
        .db
        .run(|conn| {
            dev_messages::table
                .filter(dev_messages::channel.eq(crate::domain::Channel::Sms))
                .order(dev_messages::created_at.desc())
                .limit(500)
                .select(DevMail::as_select())
                .load(conn)
                .map_err(crate::db::DbError::from)
        })
        .await
        .map_err(|e| PageError::public(&req, e))?;
    let mut threads: Vec<Thread> = Vec::new();
    for m in messages {
        let phone = if m.direction == crate::domain::Direction::In {
            m.sender.clone()
        } else {
            m.recipient.clone()
        };
        match threads.iter_mut().find(|t| t.phone == phone) {
            Some(t) => t.messages.push(m),
            None => threads.push(Thread {
                phone,
                messages: vec![m],
            }),
        }
    }
    for t in &mut threads {
        t.messages.reverse(); // oldest first within a thread
    }
    // The token of an earlier visit stays valid, so that forms in other tabs keep working.
    let csrf = req
        .cookie(DEV_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(crate::crypto::random_secret);
    let mut res = pages::render(
        StatusCode::OK,
        &SmsThreads {
            threads,
            sender: crate::sms::provider::DEV_SENDER.to_owned(),
            csrf: csrf.clone(),
        },
    );
    let cookie = Cookie::build(DEV_CSRF_COOKIE, csrf)
        .path("/dev")
        .http_only(true)
        .secure(state.settings.base_url.scheme() == "https")
        .same_site(SameSite::Strict)
        .finish();
    let _ = res.add_cookie(&cookie);
    Ok(res)
}

#[derive(serde::Deserialize)]
struct Reply {
    phone: String,
    body: String,
    #[serde(default)]
    csrf: String,
}

/// A browser's post from another site: an `Origin` other than BASE_URL's (RFC 6454 §7), or
/// `Sec-Fetch-Site: cross-site` (Fetch Metadata).
fn cross_site(req: &HttpRequest, base_url: &url::Url) -> bool {
    let headers = req.headers();
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() != base_url.origin().ascii_serialization().as_bytes())
}

/// Answers as the phone would: the reply is stored and processed like a provider webhook.
#[actix_web::post("/dev/sms/reply")]
async fn sms_reply(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Reply>,
) -> Result<HttpResponse, PageError> {
    let Reply { phone, body, csrf } = form.into_inner();
    if cross_site(&req, &state.settings.base_url) {
        return Ok(HttpResponse::Forbidden().body("replies are taken only from this site's own /dev/sms page"));
    }
    let expected = req.cookie(DEV_CSRF_COOKIE).map(|c| c.value().to_owned());
    if !expected.is_some_and(|e| !e.is_empty() && crate::crypto::constant_time_eq(e.as_bytes(), csrf.as_bytes())) {
        return Ok(HttpResponse::Forbidden().body("missing or wrong form token: reload /dev/sms and answer again"));
    }
    if phone.trim().is_empty() || body.trim().is_empty() {
        return Ok(HttpResponse::BadRequest().body("phone and body are required"));
    }
    let sid = format!("DEVIN{}", crate::db::new_id().replace('-', ""));
    state
        .db
        .run(move |conn| {
            diesel::insert_into(dev_messages::table)
                .values((
                    dev_messages::id.eq(crate::db::new_id()),
                    dev_messages::channel.eq(crate::domain::Channel::Sms),
                    dev_messages::direction.eq(crate::domain::Direction::In),
                    dev_messages::sender.eq(&phone),
                    dev_messages::recipient.eq(crate::sms::provider::DEV_SENDER),
                    dev_messages::body_text.eq(&body),
                    dev_messages::created_at.eq(crate::db::now()),
                ))
                .execute(conn)?;
            crate::sms::inbound::record(
                conn,
                "dev-outbox",
                &sid,
                &phone,
                crate::sms::provider::DEV_SENDER,
                &body,
            )
        })
        .await
        .map_err(|e| PageError::public(&req, e))?;
    state.wake.notify_waiters();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/dev/sms"))
        .finish())
}
