//! The dev outboxes, mounted only while the dev providers are active: `/dev/mail` lists the
//! emails that would have been sent, with the rendered HTML part and the raw source.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use diesel::prelude::*;

use crate::db::schema::dev_messages;
use crate::mail::DevMail;
use crate::routes::pages;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(mail_list)
        .service(mail_show)
        .service(mail_html)
        .service(mail_raw)
        .service(stylesheet);
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

async fn load(state: &AppState, id: Option<String>) -> Result<Vec<DevMail>, HttpResponse> {
    state
        .db
        .run(move |conn| {
            let mut q = dev_messages::table
                .filter(dev_messages::channel.eq("email"))
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
        .map_err(|e| {
            tracing::error!(error = %e, "dev outbox: database error");
            HttpResponse::ServiceUnavailable().finish()
        })
}

async fn one(req: &HttpRequest, state: &AppState, id: String) -> Result<DevMail, HttpResponse> {
    load(state, Some(id)).await?.pop().ok_or_else(|| pages::not_found(req))
}

#[get("/dev/mail")]
async fn mail_list(state: web::Data<AppState>) -> HttpResponse {
    match load(&state, None).await {
        Ok(messages) => pages::render(StatusCode::OK, &MailList { messages }),
        Err(res) => res,
    }
}

#[get("/dev/mail/{id}")]
async fn mail_show(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    match one(&req, &state, id.into_inner()).await {
        // This page frames the HTML part, so it needs frame-src on top of the page policy.
        Ok(m) => match (MailShow { m }).render() {
            Ok(body) => {
                let mut res = pages::html(StatusCode::OK, body);
                res.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'self'; frame-src 'self'; frame-ancestors 'none'",
                    ),
                );
                res
            }
            Err(e) => {
                tracing::error!(error = %e, "dev mail page failed");
                HttpResponse::InternalServerError().finish()
            }
        },
        Err(res) => res,
    }
}

/// The HTML part exactly as sent, in a sandbox: no script, inline styles and images allowed (it
/// loads the open pixel, so viewing it here counts as an open, as in a real mail client).
#[get("/dev/mail/{id}/html")]
async fn mail_html(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    match one(&req, &state, id.into_inner()).await {
        Ok(m) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'"),
            ))
            .body(m.body_html.unwrap_or_default()),
        Err(res) => res,
    }
}

#[get("/dev/mail/{id}/raw")]
async fn mail_raw(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    match one(&req, &state, id.into_inner()).await {
        Ok(m) => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
            .body(m.raw.unwrap_or_default()),
        Err(res) => res,
    }
}

#[get("/assets/dev.css")]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        ))
        .body(include_str!("../../assets/dev.css"))
}
