//! Workspaces (one per retailer) and the API tokens that act for them.
//!
//! Every other table carries a `workspace_id`; every query filters by it. A request is bound to
//! exactly one workspace by its token ([`authenticate`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::message::Mailbox;
use serde::Serialize;

use crate::crypto;
use crate::db::schema::{api_tokens, workspaces};
use crate::db::{self, DbConn, DbError};
use crate::domain::{CountryCode, Locale, check_visible};

/// A retailer using optbridge.
#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    /// The sender of invitation emails, e.g. `Shop <news@shop.example>`.
    pub from_address: String,
    pub country: String,
    pub locale: Locale,
    /// Countries whose mobile numbers the landing page accepts.
    pub allowed_countries: Vec<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces)]
struct WorkspaceRow {
    id: String,
    name: String,
    from_address: String,
    country: String,
    locale: String,
    allowed_countries: String,
    created_at: NaiveDateTime,
}

impl From<WorkspaceRow> for Workspace {
    fn from(row: WorkspaceRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            from_address: row.from_address,
            country: row.country,
            // Stored values were validated on the way in; fall back rather than fail a read.
            locale: Locale::parse(&row.locale).unwrap_or(Locale::En),
            allowed_countries: row.allowed_countries.split(',').map(str::to_owned).collect(),
            created_at: row.created_at,
        }
    }
}

/// A validated request to create a workspace.
#[derive(Debug, Clone)]
pub struct NewWorkspace {
    name: String,
    from: Mailbox,
    country: CountryCode,
    locale: Locale,
    allowed_countries: Vec<CountryCode>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for WorkspaceError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl NewWorkspace {
    /// `allowed_countries` defaults to the workspace's own country.
    pub fn parse(
        name: &str,
        from: &str,
        country: &str,
        locale: &str,
        allowed_countries: Option<&str>,
    ) -> Result<Self, WorkspaceError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(WorkspaceError::Invalid("name must be 1 to 200 characters".into()));
        }
        check_visible(name).map_err(|e| WorkspaceError::Invalid(format!("name {e}")))?;
        let from: Mailbox = from.trim().parse().map_err(|e| {
            WorkspaceError::Invalid(format!(
                "from address '{from}' is not a mailbox like 'Shop <news@shop.example>' ({e})"
            ))
        })?;
        // The sender's name is the company name the inbox shows.
        if let Some(display) = &from.name {
            check_visible(display).map_err(|e| WorkspaceError::Invalid(format!("the from address's name {e}")))?;
        }
        let country = CountryCode::parse(country).map_err(WorkspaceError::Invalid)?;
        let locale: Locale = locale.parse().map_err(WorkspaceError::Invalid)?;
        let allowed_countries = match allowed_countries {
            Some(list) => CountryCode::parse_list(list).map_err(WorkspaceError::Invalid)?,
            None => vec![country],
        };
        Ok(Self {
            name: name.to_owned(),
            from,
            country,
            locale,
            allowed_countries,
        })
    }
}

/// An API token in the clear: shown once at creation, stored only as its SHA-256.
#[derive(Debug, Clone)]
pub struct ApiTokenSecret(pub String);

const TOKEN_PREFIX: &str = "obk_";

impl ApiTokenSecret {
    fn generate() -> Self {
        Self(format!("{TOKEN_PREFIX}{}", crypto::random_secret()))
    }

    fn sha256(&self) -> String {
        token_sha256(&self.0)
    }
}

/// Tokens carry 256 random bits, so a plain SHA-256 (not a slow password hash) is enough to make
/// a leaked table useless, and it allows lookup by hash.
fn token_sha256(token: &str) -> String {
    crypto::sha256_hex(token.as_bytes())
}

pub fn create(conn: &mut DbConn, new: NewWorkspace) -> Result<(Workspace, ApiTokenSecret), WorkspaceError> {
    let row = WorkspaceRow {
        id: db::new_id(),
        name: new.name,
        from_address: new.from.to_string(),
        country: new.country.to_string(),
        locale: new.locale.to_string(),
        allowed_countries: new
            .allowed_countries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        created_at: db::now(),
    };
    db::write_tx(conn, |conn| {
        diesel::insert_into(workspaces::table).values(&row).execute(conn)?;
        let token = insert_token(conn, &row.id, "created with the workspace")?;
        Ok((Workspace::from(row), token))
    })
}

/// Issues an additional API token for a workspace.
pub fn create_token(conn: &mut DbConn, workspace_id: &str, label: &str) -> Result<ApiTokenSecret, WorkspaceError> {
    db::write_tx(conn, |conn| {
        find(conn, workspace_id)?
            .ok_or_else(|| WorkspaceError::Invalid(format!("no workspace with id {workspace_id}")))?;
        insert_token(conn, workspace_id, label)
    })
}

fn insert_token(conn: &mut DbConn, workspace_id: &str, label: &str) -> Result<ApiTokenSecret, WorkspaceError> {
    let secret = ApiTokenSecret::generate();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(db::new_id()),
            api_tokens::workspace_id.eq(workspace_id),
            api_tokens::token_sha256.eq(secret.sha256()),
            api_tokens::label.eq(label),
            api_tokens::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(secret)
}

/// Revokes every token of a workspace whose clear text is `token`. Returns whether one was found.
pub fn revoke_token(conn: &mut DbConn, workspace_id: &str, token: &str) -> Result<bool, DbError> {
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::workspace_id.eq(workspace_id))
            .filter(api_tokens::token_sha256.eq(token_sha256(token)))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(db::now()))
    .execute(conn)?;
    Ok(n > 0)
}

pub fn find(conn: &mut DbConn, workspace_id: &str) -> Result<Option<Workspace>, DbError> {
    let row = workspaces::table
        .find(workspace_id)
        .select(WorkspaceRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(Workspace::from))
}

pub fn list(conn: &mut DbConn) -> Result<Vec<Workspace>, DbError> {
    let rows = workspaces::table
        .order(workspaces::created_at.asc())
        .select(WorkspaceRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(Workspace::from).collect())
}

/// The workspace a bearer token acts for, if the token is known and not revoked.
pub fn authenticate(conn: &mut DbConn, token: &str) -> Result<Option<Workspace>, DbError> {
    Ok(authenticate_token(conn, token)?.map(|(workspace, _)| workspace))
}

/// Like [`authenticate`], with the token's label (how the activity log names the token).
pub fn authenticate_token(conn: &mut DbConn, token: &str) -> Result<Option<(Workspace, String)>, DbError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row = workspaces::table
        .inner_join(api_tokens::table)
        .filter(api_tokens::token_sha256.eq(token_sha256(token)))
        .filter(api_tokens::revoked_at.is_null())
        .select((WorkspaceRow::as_select(), api_tokens::label))
        .first(conn)
        .optional()?;
    Ok(row.map(|(row, label)| (Workspace::from(row), label)))
}
