//! Invitations to the dashboard: an owner names an email and a role; the invitee gets an email
//! with a single-use link to `/app/invite/{token}`, valid [`INVITE_HOURS`], where they set a
//! password and so become a user of the workspace.
//!
//! The token never rests in the database: the email job ([`super::invite_mail`]) draws it when
//! it sends the message and stores only its SHA-256 (and the expiry counted from then). A send
//! that is tried again draws a new token, so only the last email's link works. Accepting marks
//! the invitation used and creates the user in one transaction: a link works once.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use super::{TeamError, lock_users};
use crate::accounts::{self, AccountError, Role};
use crate::activity::{self, Action, Actor};
use crate::crypto;
use crate::db::schema::{user_invites, users, workspaces};
use crate::db::{self, DbConn, DbError};
use crate::domain::{EmailAddress, Locale};
use crate::outbox::{self, JobKind};

/// Hours an invitation link stays valid after its email was sent.
pub const INVITE_HOURS: i64 = 72;
/// Send the invitation email of `ref_id` (a `user_invites.id`).
pub const USER_INVITE_JOB: JobKind = JobKind::new("user_invite_email");

/// An invitation not yet used nor expired, as the users page lists it.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct PendingInvite {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Invites `email` with `role` and queues the email (in `locale`, the inviter's dashboard
/// language). An earlier open invitation of the same email in this workspace stops working.
pub fn create(
    conn: &mut DbConn,
    workspace_id: &str,
    email: &str,
    role: Role,
    locale: Locale,
    actor: &Actor,
) -> Result<String, TeamError> {
    let email = EmailAddress::parse(email).map_err(|e| AccountError::Invalid(e.to_string()))?;
    db::write_tx_retrying(conn, 3, |conn| {
        lock_users(conn, workspace_id)?;
        let exists: i64 = users::table
            .filter(users::email.eq(email.normalized()))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(AccountError::Exists.into());
        }
        let now = db::now();
        diesel::update(
            user_invites::table
                .filter(user_invites::workspace_id.eq(workspace_id))
                .filter(user_invites::email.eq(email.normalized()))
                .filter(user_invites::used_at.is_null())
                .filter(user_invites::expires_at.gt(now)),
        )
        .set(user_invites::expires_at.eq(now))
        .execute(conn)?;
        let id = db::new_id();
        diesel::insert_into(user_invites::table)
            .values((
                user_invites::id.eq(&id),
                user_invites::workspace_id.eq(workspace_id),
                user_invites::email.eq(email.normalized()),
                user_invites::role.eq(role.as_str()),
                user_invites::locale.eq(locale.as_str()),
                user_invites::invited_by.eq(actor.display()),
                user_invites::token_sha256.eq(None::<String>),
                user_invites::created_at.eq(now),
                // Counted again from the send (see `invite_mail`); until then an unsent
                // invitation is listed as pending.
                user_invites::expires_at.eq(now + Duration::hours(INVITE_HOURS)),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, Some(workspace_id), USER_INVITE_JOB, &id, now)?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::UserInvited,
            Some(&email.normalized()),
            role.as_str(),
        )?;
        Ok(id)
    })
}

/// The workspace's open invitations, newest first.
pub fn pending(conn: &mut DbConn, workspace_id: &str) -> Result<Vec<PendingInvite>, DbError> {
    Ok(user_invites::table
        .filter(user_invites::workspace_id.eq(workspace_id))
        .filter(user_invites::used_at.is_null())
        .filter(user_invites::expires_at.gt(db::now()))
        .order(user_invites::created_at.desc())
        .select((
            user_invites::id,
            user_invites::email,
            user_invites::role,
            user_invites::invited_by,
            user_invites::created_at,
            user_invites::expires_at,
        ))
        .load(conn)?)
}

/// What an invitation link opens.
#[derive(Debug, Clone)]
pub struct OpenInvite {
    pub id: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub email: String,
    pub role: Role,
}

/// The open invitation `token` belongs to; `None` for an unknown, used or expired token (one
/// answer for all).
pub fn open(conn: &mut DbConn, token: &str) -> Result<Option<OpenInvite>, DbError> {
    let found: Option<(String, String, String, String, String)> = user_invites::table
        .inner_join(workspaces::table)
        .filter(user_invites::token_sha256.eq(crypto::sha256_hex(token.as_bytes())))
        .filter(user_invites::used_at.is_null())
        .filter(user_invites::expires_at.gt(db::now()))
        .select((
            user_invites::id,
            user_invites::workspace_id,
            workspaces::name,
            user_invites::email,
            user_invites::role,
        ))
        .first(conn)
        .optional()?;
    Ok(found.and_then(|(id, workspace_id, workspace_name, email, role)| {
        Some(OpenInvite {
            id,
            workspace_id,
            workspace_name,
            email,
            role: Role::parse(&role)?,
        })
    }))
}

/// Sets the invitee's password: uses the invitation up and creates the user with its role, in
/// one transaction. `Ok(None)` when the link is unknown, used or expired.
pub fn accept(conn: &mut DbConn, token: &str, password: &str) -> Result<Option<OpenInvite>, TeamError> {
    accounts::check_password_rules(password)?;
    let hash = accounts::hash_password(password)?;
    db::write_tx_retrying(conn, 3, |conn| {
        let Some(invite) = open(conn, token)? else {
            return Ok(None);
        };
        lock_users(conn, &invite.workspace_id)?;
        let used = diesel::update(
            user_invites::table
                .filter(user_invites::id.eq(&invite.id))
                .filter(user_invites::used_at.is_null()),
        )
        .set(user_invites::used_at.eq(db::now()))
        .execute(conn)?;
        if used != 1 {
            return Ok(None);
        }
        let email = EmailAddress::parse(&invite.email).map_err(|e| AccountError::Invalid(e.to_string()))?;
        accounts::insert_user(conn, &invite.workspace_id, &email, &hash, invite.role)?;
        activity::record(
            conn,
            &invite.workspace_id,
            &Actor::User {
                email: invite.email.clone(),
            },
            Action::UserJoined,
            Some(&invite.email),
            invite.role.as_str(),
        )?;
        Ok(Some(invite))
    })
}
