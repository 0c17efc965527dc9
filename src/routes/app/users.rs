//! Users and roles (owners only): `/app/users` lists the workspace's users and open
//! invitations; owners invite by email, change roles and remove users. The invitee sets a
//! password at `/app/invite/{token}` (no session yet: a double-submit form token, as the login).

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::AppSession;
use super::pages::Layout;
use crate::accounts::{AccountError, Role};
use crate::domain::Locale;
use crate::i18n::AppStrings;
use crate::i18n::team::{self, TeamStrings};
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;
use crate::team::{self as members, Member, TeamError, invite};

const INVITE_CSRF_COOKIE: &str = "ob_invite_csrf";

pub struct MemberRow {
    id: String,
    email: String,
    role: Role,
    last_login: String,
    is_you: bool,
    remove_label: String,
}

pub struct InviteRow {
    email: String,
    role_name: &'static str,
    invited_by: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "app/users.html")]
struct UsersPage {
    t: &'static AppStrings,
    u: &'static TeamStrings,
    layout: Layout,
    members: Vec<MemberRow>,
    invites: Vec<InviteRow>,
    roles: Vec<(&'static str, &'static str)>,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    invite_email: String,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    done: Option<String>,
}

async fn users_page_with(
    req: &HttpRequest,
    state: &AppState,
    session: &AppSession,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    invite_email: String,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let (list, open) = state
        .db
        .run(
            move |conn| -> Result<(Vec<Member>, Vec<invite::PendingInvite>), crate::db::DbError> {
                Ok((members::members(conn, &ws)?, invite::pending(conn, &ws)?))
            },
        )
        .await
        .map_err(|e| PageError::dashboard(req, e))?;
    let locale = super::locale(req);
    let u = team::strings(locale);
    let page = UsersPage {
        t: super::strings(req),
        u,
        layout: Layout::of(session),
        members: list
            .into_iter()
            .map(|m| MemberRow {
                is_you: m.id == session.0.user_id,
                remove_label: u.remove_label.replace("{email}", &m.email),
                last_login: m
                    .last_login_at
                    .map_or_else(|| u.never.to_owned(), |at| at.format("%Y-%m-%d %H:%M").to_string()),
                id: m.id,
                email: m.email,
                role: m.role,
            })
            .collect(),
        invites: open
            .into_iter()
            .map(|i| InviteRow {
                role_name: Role::parse(&i.role).map_or("", |r| team::role(locale, r)),
                email: i.email,
                invited_by: i.invited_by,
                expires: i.expires_at.format("%Y-%m-%d %H:%M").to_string(),
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| (r.as_str(), team::role(locale, *r))).collect(),
        notice,
        error,
        invite_email,
    };
    Ok(render(status, &page))
}

#[get("/app/users")]
pub async fn users_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Owner)?;
    let u = team::strings(super::locale(&req));
    let notice = match query.done.as_deref() {
        Some("invited") => Some(u.invited),
        Some("role") => Some(u.role_changed),
        Some("removed") => Some(u.removed),
        _ => None,
    };
    users_page_with(&req, &state, &session, StatusCode::OK, notice, None, String::new()).await
}

fn done(what: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/app/users?done={what}")))
        .finish()
}

fn wrong_form_token() -> HttpResponse {
    HttpResponse::Forbidden().body("missing or wrong form token")
}

/// A refused change, shown on the users page with its reason.
async fn refused(
    req: &HttpRequest,
    state: &AppState,
    session: &AppSession,
    e: TeamError,
    invite_email: String,
) -> Result<HttpResponse, PageError> {
    let u = team::strings(super::locale(req));
    let (status, message) = match e {
        TeamError::LastOwner => (StatusCode::CONFLICT, u.last_owner),
        TeamError::Account(AccountError::Exists) => (StatusCode::CONFLICT, u.user_exists),
        TeamError::Account(AccountError::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, u.bad_email),
        TeamError::NotFound => return Err(PageError::not_found(req)),
        TeamError::Account(e) => return Err(PageError::dashboard(req, e)),
        TeamError::Db(e) => return Err(PageError::dashboard(req, e)),
    };
    users_page_with(req, state, session, status, None, Some(message), invite_email).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

#[post("/app/users/invite")]
pub async fn invite_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Owner)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(wrong_form_token());
    }
    let email = form.email.clone().unwrap_or_default();
    let Some(role) = form.role.as_deref().and_then(Role::parse) else {
        return Ok(HttpResponse::BadRequest().body("unknown role"));
    };
    let (ws, actor, locale, mail) = (
        session.workspace_id().to_owned(),
        session.actor(),
        super::locale(&req),
        email.clone(),
    );
    let created = state
        .db
        .run(move |conn| invite::create(conn, &ws, &mail, role, locale, &actor))
        .await;
    match created {
        Ok(_) => {
            state.wake.notify_waiters();
            Ok(done("invited"))
        }
        Err(e) => refused(&req, &state, &session, e, email).await,
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    csrf: Option<String>,
    role: Option<String>,
}

#[post("/app/users/{id}/role")]
pub async fn change_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Owner)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(wrong_form_token());
    }
    let Some(role) = form.role.as_deref().and_then(Role::parse) else {
        return Ok(HttpResponse::BadRequest().body("unknown role"));
    };
    let (ws, actor, user) = (session.workspace_id().to_owned(), session.actor(), id.into_inner());
    let changed = state
        .db
        .run(move |conn| members::change_role(conn, &ws, &user, role, &actor))
        .await;
    match changed {
        Ok(()) => Ok(done("role")),
        Err(e) => refused(&req, &state, &session, e, String::new()).await,
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

#[post("/app/users/{id}/remove")]
pub async fn remove_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Owner)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(wrong_form_token());
    }
    let (ws, actor, user) = (session.workspace_id().to_owned(), session.actor(), id.into_inner());
    let removed = state
        .db
        .run(move |conn| members::remove(conn, &ws, &user, &actor))
        .await;
    match removed {
        Ok(()) => Ok(done("removed")),
        Err(e) => refused(&req, &state, &session, e, String::new()).await,
    }
}

#[derive(Template)]
#[template(path = "app/invite.html")]
struct AcceptPage {
    t: &'static AppStrings,
    u: &'static TeamStrings,
    /// `None`: the link does not work (unknown, used or expired).
    intro: Option<String>,
    token: String,
    csrf: String,
    error: Option<&'static str>,
    done: bool,
}

fn accept_page(state: &AppState, status: StatusCode, page: AcceptPage) -> HttpResponse {
    let csrf = page.csrf.clone();
    let mut res = render(status, &page);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    if !csrf.is_empty() {
        let mut cookie = super::cookie(state, INVITE_CSRF_COOKIE, csrf, 3600);
        cookie.set_same_site(SameSite::Strict);
        let _ = res.add_cookie(&cookie);
    }
    res
}

fn intro(locale: Locale, invite: &invite::OpenInvite) -> String {
    team::strings(locale)
        .accept_intro
        .replace("{workspace}", &invite.workspace_name)
        .replace("{role}", team::role(locale, invite.role))
        .replace("{email}", &invite.email)
}

#[get("/app/invite/{token}")]
pub async fn accept_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let token = token.into_inner();
    let lookup = token.clone();
    let found = state
        .db
        .run(move |conn| invite::open(conn, &lookup))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let locale = super::locale(&req);
    let (status, intro, csrf) = match found {
        Some(invite) => (
            StatusCode::OK,
            Some(intro(locale, &invite)),
            crate::crypto::random_secret(),
        ),
        None => (StatusCode::NOT_FOUND, None, String::new()),
    };
    let page = AcceptPage {
        t: super::strings(&req),
        u: team::strings(locale),
        intro,
        token,
        csrf,
        error: None,
        done: false,
    };
    Ok(accept_page(&state, status, page))
}

#[derive(Deserialize)]
pub struct AcceptForm {
    csrf: Option<String>,
    password: Option<String>,
    password2: Option<String>,
}

#[post("/app/invite/{token}")]
pub async fn accept(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Form<AcceptForm>,
) -> Result<HttpResponse, PageError> {
    let token = token.into_inner();
    let locale = super::locale(&req);
    let u = team::strings(locale);
    let AcceptForm {
        csrf,
        password,
        password2,
    } = form.into_inner();
    let expected = req.cookie(INVITE_CSRF_COOKIE).map(|c| c.value().to_owned());
    let csrf_ok =
        matches!((&expected, &csrf), (Some(e), Some(c)) if crate::crypto::constant_time_eq(e.as_bytes(), c.as_bytes()));
    let lookup = token.clone();
    let found = state
        .db
        .run(move |conn| invite::open(conn, &lookup))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let Some(open) = found else {
        let page = AcceptPage {
            t: super::strings(&req),
            u,
            intro: None,
            token,
            csrf: String::new(),
            error: None,
            done: false,
        };
        return Ok(accept_page(&state, StatusCode::NOT_FOUND, page));
    };
    let again = |status: StatusCode, error: &'static str| {
        let page = AcceptPage {
            t: super::strings(&req),
            u,
            intro: Some(intro(locale, &open)),
            token: token.clone(),
            csrf: crate::crypto::random_secret(),
            error: Some(error),
            done: false,
        };
        accept_page(&state, status, page)
    };
    if !csrf_ok {
        return Ok(again(StatusCode::FORBIDDEN, u.form_expired));
    }
    let password = password.unwrap_or_default();
    if password2.as_deref() != Some(password.as_str()) {
        return Ok(again(StatusCode::UNPROCESSABLE_ENTITY, u.passwords_differ));
    }
    let used = token.clone();
    let accepted = state.db.run(move |conn| invite::accept(conn, &used, &password)).await;
    match accepted {
        Ok(Some(_)) => {
            let page = AcceptPage {
                t: super::strings(&req),
                u,
                intro: None,
                token,
                csrf: String::new(),
                error: None,
                done: true,
            };
            let mut res = accept_page(&state, StatusCode::OK, page);
            let _ = res.add_removal_cookie(&super::cookie(&state, INVITE_CSRF_COOKIE, String::new(), 0));
            Ok(res)
        }
        Ok(None) => {
            let page = AcceptPage {
                t: super::strings(&req),
                u,
                intro: None,
                token,
                csrf: String::new(),
                error: None,
                done: false,
            };
            Ok(accept_page(&state, StatusCode::NOT_FOUND, page))
        }
        Err(TeamError::Account(AccountError::Invalid(_))) => {
            Ok(again(StatusCode::UNPROCESSABLE_ENTITY, u.password_rule))
        }
        Err(TeamError::Account(AccountError::Exists)) => Ok(again(StatusCode::CONFLICT, u.user_exists)),
        Err(TeamError::Db(e)) => Err(PageError::dashboard(&req, e)),
        Err(e) => Err(PageError::dashboard(&req, e)),
    }
}

impl From<TeamError> for crate::routes::error::PageFailure {
    fn from(e: TeamError) -> Self {
        match e {
            TeamError::Db(e) => e.into(),
            TeamError::Account(e) => e.into(),
            TeamError::NotFound => Self::NotFound,
            other @ TeamError::LastOwner => Self::Internal(other.to_string()),
        }
    }
}
