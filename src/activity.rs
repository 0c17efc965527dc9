//! The activity log: who did what in a workspace, and when — imports, consent-text versions,
//! campaign actions, erasures, user changes, logins. Append-only: the application inserts rows
//! and never updates or deletes them. Each entry is written in the same transaction as the change
//! it describes, so the log and the data cannot disagree.
//!
//! Entries name people by their dashboard email or their API token's label; they never carry a
//! contact's personal data (an erasure names the contact id only), so erasing a contact never
//! needs to rewrite the log.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::activity;
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};

/// Who acted: a dashboard user, or an API token (by its label; tokens have no person).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User {
        email: String,
    },
    ApiToken {
        label: String,
    },
    /// The command line on the server (`optbridge …`), which has no login.
    Cli,
}

impl Actor {
    /// How the actor is stored and shown: the user's email, `API token <label>`, or `CLI`.
    pub fn display(&self) -> String {
        match self {
            Self::User { email } => email.clone(),
            Self::ApiToken { label } => format!("API token {label}"),
            Self::Cli => "CLI".to_owned(),
        }
    }
}

db_enum! {
    /// `activity.action`: what was done. New actions go at the end.
    pub enum Action {
        Login = "login",
        Import = "import",
        ConsentTextCreated = "consent_text_created",
        CampaignCreated = "campaign_created",
        CampaignEdited = "campaign_edited",
        CampaignTestSent = "campaign_test_sent",
        CampaignScheduled = "campaign_scheduled",
        CampaignSent = "campaign_sent",
        CampaignPaused = "campaign_paused",
        CampaignResumed = "campaign_resumed",
        CampaignCancelled = "campaign_cancelled",
        ContactErased = "contact_erased",
        UserInvited = "user_invited",
        UserRoleChanged = "user_role_changed",
        UserRemoved = "user_removed",
        WebhookCreated = "webhook_created",
        WebhookDeleted = "webhook_deleted",
        UserJoined = "user_joined",
    }
}

/// One entry of the log, as read back.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Entry {
    pub id: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: Action,
    pub subject: Option<String>,
    pub detail: String,
}

/// Appends an entry. Call it inside the transaction that makes the change it describes.
pub fn record(
    conn: &mut DbConn,
    workspace_id: &str,
    actor: &Actor,
    action: Action,
    subject: Option<&str>,
    detail: &str,
) -> Result<(), DbError> {
    diesel::insert_into(activity::table)
        .values((
            activity::id.eq(db::new_id()),
            activity::workspace_id.eq(workspace_id),
            activity::at.eq(db::now()),
            activity::actor.eq(actor.display()),
            activity::action.eq(action),
            activity::subject.eq(subject),
            activity::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// A page of the log, newest first. `before` is the id of the last entry of the previous page
/// (ids are UUIDv7, so they order like their time); at most `limit` entries.
pub fn page(conn: &mut DbConn, workspace_id: &str, before: Option<&str>, limit: i64) -> Result<Vec<Entry>, DbError> {
    let mut query = activity::table
        .filter(activity::workspace_id.eq(workspace_id))
        .select((
            activity::id,
            activity::at,
            activity::actor,
            activity::action,
            activity::subject,
            activity::detail,
        ))
        .order(activity::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(activity::id.lt(before.to_owned()));
    }
    Ok(query.load(conn)?)
}
