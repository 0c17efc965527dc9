//! Dashboard logins: users (argon2id password hashes, lockout after repeated failures) and
//! sessions (a random cookie value, stored only as its SHA-256, with a per-session form token).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::crypto;
use crate::db::schema::{sessions, users};
use crate::db::{self, DbConn, DbError};
use crate::domain::EmailAddress;
use crate::workspace::{self, Workspace};

/// Wrong passwords in a row before the account is locked for `LOCKOUT_MINUTES`.
pub const MAX_FAILED_LOGINS: i32 = 5;
pub const LOCKOUT_MINUTES: i64 = 15;
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with this email exists already")]
    Exists,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AccountError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Creates a dashboard user of a workspace.
pub fn create_user(conn: &mut DbConn, workspace_id: &str, email: &str, password: &str) -> Result<String, AccountError> {
    let email = EmailAddress::parse(email).map_err(|e| AccountError::Invalid(e.to_string()))?;
    check_password_rules(password)?;
    let hash = hash_password(password)?;
    db::write_tx(conn, |conn| {
        workspace::find(conn, workspace_id)?
            .ok_or_else(|| AccountError::Invalid(format!("no workspace with id {workspace_id}")))?;
        let exists: i64 = users::table
            .filter(users::email.eq(email.normalized()))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(AccountError::Exists);
        }
        let id = db::new_id();
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::workspace_id.eq(workspace_id),
                users::email.eq(email.normalized()),
                users::password_hash.eq(&hash),
                users::failed_logins.eq(0),
                users::created_at.eq(db::now()),
            ))
            .execute(conn)?;
        Ok(id)
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The session's cookie value (shown to the browser once, stored hashed).
    Success { cookie: String },
    /// Wrong email or password: one answer for both, so the form tells nobody which emails exist.
    Rejected,
    /// Too many wrong passwords: locked until this time.
    Locked { until: NaiveDateTime },
}

#[derive(Queryable)]
struct UserRow {
    id: String,
    password_hash: String,
    failed_logins: i32,
    locked_until: Option<NaiveDateTime>,
}

/// Checks a login and opens a session. Slow on purpose (argon2id): call off the executor.
pub fn login(conn: &mut DbConn, email: &str, password: &str, session_hours: i64) -> Result<LoginOutcome, AccountError> {
    let key = email.trim().to_lowercase();
    // No address holds a NUL, and PostgreSQL would refuse to compare one: a plain rejection.
    let user: Option<UserRow> = if key.contains('\0') {
        None
    } else {
        users::table
            .filter(users::email.eq(&key))
            .select((
                users::id,
                users::password_hash,
                users::failed_logins,
                users::locked_until,
            ))
            .first(conn)
            .optional()?
    };
    let now = db::now();
    let Some(user) = user else {
        // Spend the same time as for a real account, so timing does not reveal which exist.
        let _ = Argon2::default().verify_password(password.as_bytes(), dummy_hash());
        return Ok(LoginOutcome::Rejected);
    };
    if let Some(until) = user.locked_until.filter(|u| *u > now) {
        return Ok(LoginOutcome::Locked { until });
    }
    if Argon2::default()
        .verify_password(password.as_bytes(), user.password_hash.as_str())
        .is_err()
    {
        let failed = user.failed_logins + 1;
        let locked = failed >= MAX_FAILED_LOGINS;
        let until = now + Duration::minutes(LOCKOUT_MINUTES);
        diesel::update(users::table.find(&user.id))
            .set((
                users::failed_logins.eq(if locked { 0 } else { failed }),
                users::locked_until.eq(locked.then_some(until)),
            ))
            .execute(conn)?;
        return Ok(if locked {
            tracing::warn!(
                user = user.id,
                "dashboard account locked after repeated wrong passwords"
            );
            LoginOutcome::Locked { until }
        } else {
            LoginOutcome::Rejected
        });
    }
    let cookie = crypto::random_secret();
    db::write_tx(conn, |conn| {
        diesel::update(users::table.find(&user.id))
            .set((
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<NaiveDateTime>),
                users::last_login_at.eq(now),
            ))
            .execute(conn)?;
        diesel::insert_into(sessions::table)
            .values((
                sessions::id.eq(db::new_id()),
                sessions::token_sha256.eq(crypto::sha256_hex(cookie.as_bytes())),
                sessions::user_id.eq(&user.id),
                sessions::csrf.eq(crypto::random_secret()),
                sessions::created_at.eq(now),
                sessions::expires_at.eq(now + Duration::hours(session_hours)),
            ))
            .execute(conn)?;
        Ok::<_, AccountError>(())
    })?;
    Ok(LoginOutcome::Success { cookie })
}

/// A valid session: who is logged in, for which workspace, and the form token of the session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub csrf: String,
    pub workspace: Workspace,
}

pub fn session(conn: &mut DbConn, cookie: &str) -> Result<Option<Session>, DbError> {
    let found: Option<(String, String, String, String, NaiveDateTime, String)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_sha256.eq(crypto::sha256_hex(cookie.as_bytes())))
        .select((
            sessions::id,
            users::id,
            users::email,
            sessions::csrf,
            sessions::expires_at,
            users::workspace_id,
        ))
        .first(conn)
        .optional()?;
    let Some((id, user_id, email, csrf, expires_at, workspace_id)) = found else {
        return Ok(None);
    };
    if expires_at <= db::now() {
        diesel::delete(sessions::table.find(&id)).execute(conn)?;
        return Ok(None);
    }
    let Some(workspace) = workspace::find(conn, &workspace_id)? else {
        return Ok(None);
    };
    Ok(Some(Session {
        id,
        user_id,
        email,
        csrf,
        workspace,
    }))
}

/// Sets a user's password, lifts any lockout and ends the user's sessions. Returns false when no
/// user has this email.
pub fn set_password(conn: &mut DbConn, email: &str, password: &str) -> Result<bool, AccountError> {
    let email = EmailAddress::parse(email).map_err(|e| AccountError::Invalid(e.to_string()))?;
    check_password_rules(password)?;
    let hash = hash_password(password)?;
    db::write_tx(conn, |conn| {
        let id: Option<String> = users::table
            .filter(users::email.eq(email.normalized()))
            .select(users::id)
            .first(conn)
            .optional()?;
        let Some(id) = id else {
            return Ok(false);
        };
        diesel::update(users::table.find(&id))
            .set((
                users::password_hash.eq(&hash),
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        diesel::delete(sessions::table.filter(sessions::user_id.eq(&id))).execute(conn)?;
        Ok(true)
    })
}

fn check_password_rules(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

pub fn logout(conn: &mut DbConn, session_id: &str) -> Result<(), DbError> {
    diesel::delete(sessions::table.find(session_id)).execute(conn)?;
    Ok(())
}

/// An argon2id hash of a random password, verified against when the email is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&crypto::random_secret()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", hash.as_str())
                .is_ok()
        );
        assert!(Argon2::default().verify_password(b"wrong", hash.as_str()).is_err());
        assert!(dummy_hash().starts_with("$argon2id$"));
    }
}
