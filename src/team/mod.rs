//! A workspace's dashboard users, as its owners manage them: list with roles, change a role,
//! remove, invite by email ([`invite`]).
//!
//! A workspace always keeps an owner: demoting or removing the last one is refused. The check
//! and the change run in one write transaction that first takes the workspace's user lock
//! ([`db::lock_for_transaction`] on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serializes every
//! writer), so two owners demoting each other at once cannot both succeed. Every change is
//! written to the activity log in the same transaction.

pub mod invite;
pub mod invite_mail;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::Role;
use crate::activity::{self, Action, Actor};
use crate::db::schema::{sessions, users};
use crate::db::{self, DbConn, DbError};

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    /// The change would leave the workspace without an owner.
    #[error("a workspace needs an owner: make another user owner first")]
    LastOwner,
    #[error("no such user in this workspace")]
    NotFound,
    #[error(transparent)]
    Account(#[from] crate::accounts::AccountError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for TeamError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl db::AsDbError for TeamError {
    fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Self::Db(e) => Some(e),
            _ => None,
        }
    }
}

/// A dashboard user as the users page shows it.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub created_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
}

/// The workspace's users, owners first, then by email.
pub fn members(conn: &mut DbConn, workspace_id: &str) -> Result<Vec<Member>, DbError> {
    let mut list: Vec<Member> = users::table
        .filter(users::workspace_id.eq(workspace_id))
        .select((
            users::id,
            users::email,
            users::role,
            users::created_at,
            users::last_login_at,
        ))
        .order(users::email.asc())
        .load(conn)?;
    list.sort_by_key(|m| std::cmp::Reverse(role_rank(m.role)));
    Ok(list)
}

fn role_rank(role: Role) -> u8 {
    Role::ALL.iter().filter(|r| role.at_least(**r)).count() as u8
}

/// Serializes user changes of one workspace until the transaction ends.
fn lock_users(conn: &mut DbConn, workspace_id: &str) -> Result<(), DbError> {
    db::lock_for_transaction(conn, &format!("users:{workspace_id}"))
}

/// The user's email and role, locked for this transaction's change.
fn member(conn: &mut DbConn, workspace_id: &str, user_id: &str) -> Result<(String, Role), TeamError> {
    lock_users(conn, workspace_id)?;
    users::table
        .filter(users::workspace_id.eq(workspace_id))
        .filter(users::id.eq(user_id))
        .select((users::email, users::role))
        .first(conn)
        .optional()?
        .ok_or(TeamError::NotFound)
}

/// Owners of the workspace other than `user_id`.
fn other_owners(conn: &mut DbConn, workspace_id: &str, user_id: &str) -> Result<i64, DbError> {
    Ok(users::table
        .filter(users::workspace_id.eq(workspace_id))
        .filter(users::role.eq(Role::Owner))
        .filter(users::id.ne(user_id))
        .count()
        .get_result(conn)?)
}

/// Gives a user another role. Refused when it would demote the workspace's last owner.
pub fn change_role(
    conn: &mut DbConn,
    workspace_id: &str,
    user_id: &str,
    role: Role,
    actor: &Actor,
) -> Result<(), TeamError> {
    db::write_tx_retrying(conn, 3, |conn| {
        let (email, old) = member(conn, workspace_id, user_id)?;
        if old == role {
            return Ok(());
        }
        if old == Role::Owner && other_owners(conn, workspace_id, user_id)? == 0 {
            return Err(TeamError::LastOwner);
        }
        diesel::update(users::table.find(user_id))
            .set(users::role.eq(role))
            .execute(conn)?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::UserRoleChanged,
            Some(&email),
            &format!("{old} → {role}"),
        )?;
        Ok(())
    })
}

/// Removes a user and ends their sessions. Refused for the workspace's last owner.
pub fn remove(conn: &mut DbConn, workspace_id: &str, user_id: &str, actor: &Actor) -> Result<(), TeamError> {
    db::write_tx_retrying(conn, 3, |conn| {
        let (email, role) = member(conn, workspace_id, user_id)?;
        if role == Role::Owner && other_owners(conn, workspace_id, user_id)? == 0 {
            return Err(TeamError::LastOwner);
        }
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
        diesel::delete(users::table.find(user_id)).execute(conn)?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::UserRemoved,
            Some(&email),
            role.as_str(),
        )?;
        Ok(())
    })
}
