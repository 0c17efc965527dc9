//! Contacts: the people a retailer already has email marketing permission for.

pub mod erase;
pub mod import;
pub mod import_jobs;
pub mod sync;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{contacts, suppressions};
use crate::db::{DbConn, DbError};
use crate::domain::Channel;

#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = contacts)]
pub struct Contact {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub email: String,
    #[serde(skip)]
    pub email_normalized: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub locale: Option<String>,
    pub external_id: Option<String>,
    pub email_consent_at: Option<NaiveDateTime>,
    pub email_consent_source: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A contact of this workspace, or `None` (also when the id belongs to another workspace).
pub fn find(conn: &mut DbConn, workspace_id: &str, contact_id: &str) -> Result<Option<Contact>, DbError> {
    Ok(contacts::table
        .filter(contacts::workspace_id.eq(workspace_id))
        .filter(contacts::id.eq(contact_id))
        .select(Contact::as_select())
        .first(conn)
        .optional()?)
}

pub fn count(conn: &mut DbConn, workspace_id: &str) -> Result<i64, DbError> {
    Ok(contacts::table
        .filter(contacts::workspace_id.eq(workspace_id))
        .count()
        .get_result(conn)?)
}

/// Marks a contact changed (`updated_at`, what `GET /api/v1/contacts?updated_since=` reads): also
/// when only its SMS consent or suppression changed, so a nightly sync sees it.
pub fn touch(conn: &mut DbConn, contact_id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(contacts::table.find(contact_id))
        .set(contacts::updated_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// [`touch`] for the contact an invitation went to.
pub fn touch_recipient(conn: &mut DbConn, invitation_id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    use crate::db::schema::invitations;
    diesel::update(
        contacts::table.filter(
            contacts::id.eq_any(
                invitations::table
                    .filter(invitations::id.eq(invitation_id))
                    .select(invitations::contact_id),
            ),
        ),
    )
    .set(contacts::updated_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// Whether an address (email normalized, or E.164 phone) is on the workspace's suppression list.
pub fn is_suppressed(conn: &mut DbConn, workspace_id: &str, channel: Channel, address: &str) -> Result<bool, DbError> {
    let n: i64 = suppressions::table
        .filter(suppressions::workspace_id.eq(workspace_id))
        .filter(suppressions::channel.eq(channel))
        .filter(suppressions::address.eq(address))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Puts an address on the workspace's suppression list (no-op when it is there already).
/// Returns whether it was added now.
pub fn suppress(
    conn: &mut DbConn,
    workspace_id: &str,
    channel: Channel,
    address: &str,
    reason: &str,
) -> Result<bool, DbError> {
    if is_suppressed(conn, workspace_id, channel, address)? {
        return Ok(false);
    }
    let row = (
        suppressions::id.eq(crate::db::new_id()),
        suppressions::workspace_id.eq(workspace_id),
        suppressions::channel.eq(channel),
        suppressions::address.eq(address),
        suppressions::reason.eq(reason.chars().take(500).collect::<String>()),
        suppressions::created_at.eq(crate::db::now()),
    );
    // Two workers may suppress the same number at once (two STOPs): the later insert is a no-op.
    let inserted = crate::db::on_each_backend!(conn, |c| diesel::insert_into(suppressions::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}
