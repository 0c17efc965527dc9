//! One-click unsubscribe from email (RFC 8058): suppress the address, record it, once.

use diesel::prelude::*;

use crate::contacts;
use crate::db::schema::{contacts as contacts_table, invitations};
use crate::db::{self, DbConn, DbError};
use crate::funnel::{self, Metric};

/// Unsubscribes the contact an invitation went to. Idempotent: the suppression and the funnel
/// count happen once, later calls succeed without changing anything. Returns `false` when the
/// invitation does not exist.
pub fn unsubscribe(conn: &mut DbConn, invitation_id: &str, source: &str) -> Result<bool, DbError> {
    db::write_tx(conn, |conn| {
        let found: Option<(String, String, String, String, Option<chrono::NaiveDateTime>, String)> = invitations::table
            .inner_join(contacts_table::table)
            .filter(invitations::id.eq(invitation_id))
            .select((
                invitations::workspace_id,
                invitations::campaign_id,
                invitations::variant,
                invitations::locale,
                invitations::unsubscribed_at,
                contacts_table::email_normalized,
            ))
            .first(conn)
            .optional()?;
        let Some((workspace_id, campaign_id, variant, locale, already, email)) = found else {
            return Ok(false);
        };
        contacts::suppress(
            conn,
            &workspace_id,
            "email",
            &email,
            &format!("unsubscribed ({source})"),
        )?;
        if already.is_none() {
            let now = db::now();
            diesel::update(invitations::table.find(invitation_id))
                .set(invitations::unsubscribed_at.eq(now))
                .execute(conn)?;
            funnel::increment(conn, &campaign_id, &variant, &locale, Metric::Unsubscribed, now, 1)?;
            funnel::record_event(
                conn,
                &funnel::Event {
                    workspace_id: &workspace_id,
                    campaign_id: &campaign_id,
                    invitation_id,
                    kind: "unsubscribed",
                    at: Some(now),
                    detail: Some(source),
                    ..funnel::Event::default()
                },
            )?;
        }
        Ok(true)
    })
}
