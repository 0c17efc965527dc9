//! `/app/webhooks` (owners only): the workspace's webhook endpoints, their latest deliveries
//! (status, attempts, last error) and a "send again" button per delivery. Endpoints are
//! registered through the API (`POST /api/v1/webhooks`), which shows the secret once.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::AppSession;
use super::pages::Layout;
use crate::accounts::Role;
use crate::i18n::{AppStrings, WebhookStrings};
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;
use crate::webhooks::{self, DeliveryStatus};

/// Deliveries the page lists.
const SHOWN: i64 = 50;

struct EndpointRow {
    url: String,
    events: String,
    created: String,
}

struct DeliveryRow {
    id: String,
    event: String,
    url: String,
    status: &'static str,
    failed: bool,
    attempts: i32,
    last_error: String,
    created: String,
    last_attempt: String,
}

#[derive(Template)]
#[template(path = "app/webhooks.html")]
struct WebhooksPage {
    t: &'static AppStrings,
    w: &'static WebhookStrings,
    layout: Layout,
    endpoints: Vec<EndpointRow>,
    deliveries: Vec<DeliveryRow>,
    queued: bool,
}

#[derive(Deserialize)]
pub struct PageQuery {
    queued: Option<String>,
}

fn time(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[get("/app/webhooks")]
pub async fn webhooks_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Owner)?;
    let ws = session.workspace_id().to_owned();
    let (endpoints, deliveries) = state
        .db
        .run(move |conn| {
            Ok::<_, crate::db::DbError>((
                webhooks::list(conn, &ws)?,
                webhooks::recent_deliveries(conn, &ws, SHOWN)?,
            ))
        })
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let w = crate::i18n::webhooks(super::locale(&req));
    let page = WebhooksPage {
        t: super::strings(&req),
        w,
        layout: Layout::of(&session),
        endpoints: endpoints
            .into_iter()
            .map(|e| EndpointRow {
                url: e.url,
                events: e.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "),
                created: time(e.created_at),
            })
            .collect(),
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryRow {
                id: d.id,
                event: d.event_type.as_str().to_owned(),
                url: d.endpoint_url,
                status: match d.status {
                    DeliveryStatus::Pending => w.pending,
                    DeliveryStatus::Delivered => w.delivered,
                    DeliveryStatus::Failed => w.failed,
                },
                failed: d.status == DeliveryStatus::Failed,
                attempts: d.attempts,
                last_error: d.last_error.unwrap_or_default(),
                created: time(d.created_at),
                last_attempt: d.last_attempt_at.map(time).unwrap_or_default(),
            })
            .collect(),
        queued: query.queued.is_some(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct SendAgainForm {
    csrf: Option<String>,
}

/// Queues a delivery again: the same `webhook-id` and body, a new signature and timestamp.
#[post("/app/webhooks/deliveries/{id}/send-again")]
pub async fn send_again(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<SendAgainForm>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Owner)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(HttpResponse::Forbidden().body("missing or wrong form token"));
    }
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let queued = state
        .db
        .run(move |conn| webhooks::send_again(conn, &ws, &id))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    if !queued {
        return Err(PageError::not_found(&req));
    }
    state.wake.notify_waiters();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/app/webhooks?queued=1"))
        .finish())
}
