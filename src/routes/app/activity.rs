//! The activity log page: who did what and when in the workspace, newest first, paged.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use super::AppSession;
use super::pages::Layout;
use crate::activity;
use crate::i18n::AppStrings;
use crate::i18n::team::{self, TeamStrings};
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;

/// Entries per page.
const PAGE: i64 = 50;

pub struct ActivityRow {
    at: String,
    who: String,
    action: activity::Action,
    what: &'static str,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "app/activity.html")]
struct ActivityPage {
    t: &'static AppStrings,
    u: &'static TeamStrings,
    layout: Layout,
    rows: Vec<ActivityRow>,
    /// The cursor of the next (older) page, when there is one.
    older: Option<String>,
    paged: bool,
}

#[derive(Deserialize)]
pub struct ActivityQuery {
    before: Option<String>,
}

#[get("/app/activity")]
pub async fn activity_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let before = query.before.clone().filter(|b| !b.is_empty());
    let cursor = before.clone();
    let mut entries = state
        .db
        .run(move |conn| activity::page(conn, &ws, cursor.as_deref(), PAGE + 1))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let older = (entries.len() as i64 > PAGE).then(|| {
        entries.truncate(PAGE as usize);
        entries.last().map(|e| e.id.clone()).unwrap_or_default()
    });
    let locale = super::locale(&req);
    let rows = entries
        .into_iter()
        .map(|e| ActivityRow {
            at: e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            who: e.actor,
            action: e.action,
            what: team::action(locale, e.action),
            subject: e.subject.unwrap_or_default(),
            detail: e.detail,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ActivityPage {
            t: super::strings(&req),
            u: team::strings(locale),
            layout: Layout::of(&session),
            rows,
            older,
            paged: before.is_some(),
        },
    ))
}
