//! Dashboard logins: users (argon2id password hashes) and sessions (a random cookie value,
//! stored only as its SHA-256, with a per-session form token).
//!
//! Guessing is throttled per client address: after `MAX_ATTEMPTS_PER_CLIENT` wrong logins in
//! `THROTTLE_MINUTES` the address gets 429 for any account, so the real user, elsewhere, still
//! gets in. An account takes `MAX_FAILED_LOGINS_PER_ACCOUNT` wrong passwords in a row (a
//! distributed guess) before it is locked for `THROTTLE_MINUTES`; a locked account answers like a
//! wrong password, in the same time, so nobody learns which accounts exist or are locked.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::activity;
use crate::crypto;
use crate::db::schema::{login_attempts, sessions, users};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::domain::EmailAddress;
use crate::workspace::{self, Workspace};

/// Wrong logins from one client address within `THROTTLE_MINUTES` before it gets 429.
pub const MAX_ATTEMPTS_PER_CLIENT: i64 = 10;
/// Wrong passwords in a row, from anywhere, before the account is locked for `THROTTLE_MINUTES`.
pub const MAX_FAILED_LOGINS_PER_ACCOUNT: i32 = 100;
pub const THROTTLE_MINUTES: i64 = 15;
pub const MIN_PASSWORD_CHARS: usize = 10;

db_enum! {
    /// `users.role`: what a dashboard user may do in its workspace. Owners also manage users;
    /// editors do everything else; viewers read.
    pub enum Role {
        Owner = "owner",
        Editor = "editor",
        Viewer = "viewer",
    }
}

impl Role {
    /// Whether this role includes the powers of `needed` (owner > editor > viewer).
    pub fn at_least(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Owner => 2,
            Self::Editor => 1,
            Self::Viewer => 0,
        }
    }
}

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

/// Creates a dashboard user of a workspace, as an owner.
pub fn create_user(conn: &mut DbConn, workspace_id: &str, email: &str, password: &str) -> Result<String, AccountError> {
    create_user_with_role(conn, workspace_id, email, password, Role::Owner)
}

/// Creates a dashboard user of a workspace with the given role.
pub fn create_user_with_role(
    conn: &mut DbConn,
    workspace_id: &str,
    email: &str,
    password: &str,
    role: Role,
) -> Result<String, AccountError> {
    let email = EmailAddress::parse(email).map_err(|e| AccountError::Invalid(e.to_string()))?;
    check_password_rules(password)?;
    let hash = hash_password(password)?;
    db::write_tx(conn, |conn| {
        workspace::find(conn, workspace_id)?
            .ok_or_else(|| AccountError::Invalid(format!("no workspace with id {workspace_id}")))?;
        insert_user(conn, workspace_id, &email, &hash, role)
    })
}

/// Inserts a user (the password already checked and hashed) in the caller's transaction;
/// refused when the email has a login already (in any workspace: the email is the login).
pub fn insert_user(
    conn: &mut DbConn,
    workspace_id: &str,
    email: &EmailAddress,
    password_hash: &str,
    role: Role,
) -> Result<String, AccountError> {
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
            users::password_hash.eq(password_hash),
            users::failed_logins.eq(0),
            users::created_at.eq(db::now()),
            users::role.eq(role),
        ))
        .execute(conn)?;
    Ok(id)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The session's cookie value (shown to the browser once, stored hashed).
    Success { cookie: String },
    /// Wrong email or password, or a locked account: one answer for all, so the form tells
    /// nobody which emails exist or are locked.
    Rejected,
    /// Too many wrong logins from this client address: nothing was checked.
    Throttled,
}

#[derive(Queryable)]
struct UserRow {
    id: String,
    password_hash: String,
    locked_until: Option<NaiveDateTime>,
    workspace_id: String,
    email: String,
}

/// Checks a login from `client` (the client's address) and opens a session. Slow on purpose
/// (argon2id, for known and unknown emails alike): call off the executor.
pub fn login(
    conn: &mut DbConn,
    client: &str,
    email: &str,
    password: &str,
    session_hours: i64,
) -> Result<LoginOutcome, AccountError> {
    let now = db::now();
    // The attempt is written before it is counted, so concurrent guesses each see the others.
    let attempt = db::new_id();
    diesel::insert_into(login_attempts::table)
        .values((
            login_attempts::id.eq(&attempt),
            login_attempts::client.eq(client),
            login_attempts::at.eq(now),
        ))
        .execute(conn)?;
    let window_start = now - Duration::minutes(THROTTLE_MINUTES);
    let recent: i64 = login_attempts::table
        .filter(login_attempts::client.eq(client))
        .filter(login_attempts::at.gt(window_start))
        .count()
        .get_result(conn)?;
    if recent > MAX_ATTEMPTS_PER_CLIENT {
        diesel::delete(login_attempts::table.find(&attempt)).execute(conn)?;
        return Ok(LoginOutcome::Throttled);
    }
    diesel::delete(login_attempts::table.filter(login_attempts::at.le(window_start))).execute(conn)?;

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
                users::locked_until,
                users::workspace_id,
                users::email,
            ))
            .first(conn)
            .optional()?
    };
    let Some(user) = user else {
        // Spend the same time as for a real account, so timing does not reveal which exist.
        let _ = Argon2::default().verify_password(password.as_bytes(), dummy_hash());
        return Ok(LoginOutcome::Rejected);
    };
    let right = Argon2::default()
        .verify_password(password.as_bytes(), user.password_hash.as_str())
        .is_ok();
    if user.locked_until.is_some_and(|until| until > now) {
        if right {
            // The right password does not count against the address of the real user.
            diesel::delete(login_attempts::table.find(&attempt)).execute(conn)?;
        }
        return Ok(LoginOutcome::Rejected);
    }
    if !right {
        let failed: i32 = diesel::update(users::table.find(&user.id))
            .set(users::failed_logins.eq(users::failed_logins + 1))
            .returning(users::failed_logins)
            .get_result(conn)?;
        if failed >= MAX_FAILED_LOGINS_PER_ACCOUNT {
            diesel::update(users::table.find(&user.id))
                .set((
                    users::failed_logins.eq(0),
                    users::locked_until.eq(Some(now + Duration::minutes(THROTTLE_MINUTES))),
                ))
                .execute(conn)?;
            tracing::warn!(
                user = user.id,
                failed,
                "dashboard account locked after wrong passwords from many addresses"
            );
        }
        return Ok(LoginOutcome::Rejected);
    }
    let cookie = crypto::random_secret();
    db::write_tx(conn, |conn| {
        diesel::delete(login_attempts::table.find(&attempt)).execute(conn)?;
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
        let actor = activity::Actor::User {
            email: user.email.clone(),
        };
        activity::record(conn, &user.workspace_id, &actor, activity::Action::Login, None, "")?;
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
    pub role: Role,
    pub workspace: Workspace,
}

pub fn session(conn: &mut DbConn, cookie: &str) -> Result<Option<Session>, DbError> {
    let found: Option<(String, String, String, String, NaiveDateTime, String, Role)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_sha256.eq(crypto::sha256_hex(cookie.as_bytes())))
        .select((
            sessions::id,
            users::id,
            users::email,
            sessions::csrf,
            sessions::expires_at,
            users::workspace_id,
            users::role,
        ))
        .first(conn)
        .optional()?;
    let Some((id, user_id, email, csrf, expires_at, workspace_id, role)) = found else {
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
        role,
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

/// The password rules for dashboard logins (at least [`MIN_PASSWORD_CHARS`] characters).
pub fn check_password_rules(password: &str) -> Result<(), AccountError> {
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
