//! One-click unsubscribe from email (RFC 8058): suppress the address, record it, once.

use diesel::prelude::*;

use crate::consent::ledger::{self, LedgerKind, NewEntry};
use crate::contacts;
use crate::db::schema::{contacts as contacts_table, invitations};
use crate::db::{self, DbConn, DbError};
use crate::domain::Channel;
use crate::funnel::{self, Metric};

#[derive(Queryable)]
struct Recipient {
    workspace_id: String,
    campaign_id: String,
    variant: String,
    locale: String,
    unsubscribed_at: Option<chrono::NaiveDateTime>,
    email: String,
    contact_id: String,
}

/// What [`unsubscribe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    /// No invitation has that id.
    NoSuchInvitation,
    /// Unsubscribed now: suppressed (unless it was already), recorded and counted.
    Newly,
    /// The recipient had unsubscribed through this invitation before: not counted or recorded
    /// again (the link clicked twice, a complaint about an invitation already unsubscribed).
    Already,
}

/// Unsubscribes the contact an invitation went to. Idempotent: the suppression and the funnel
/// count happen once, later calls succeed without changing anything ([`Unsubscribed::Already`]).
pub fn unsubscribe(conn: &mut DbConn, invitation_id: &str, source: &str) -> Result<Unsubscribed, DbError> {
    db::write_tx(conn, |conn| {
        let found: Option<Recipient> = invitations::table
            .inner_join(contacts_table::table)
            .filter(invitations::id.eq(invitation_id))
            .select((
                invitations::workspace_id,
                invitations::campaign_id,
                invitations::variant,
                invitations::locale,
                invitations::unsubscribed_at,
                contacts_table::email_normalized,
                contacts_table::id,
            ))
            .first(conn)
            .optional()?;
        let Some(Recipient {
            workspace_id,
            campaign_id,
            variant,
            locale,
            unsubscribed_at: already,
            email,
            contact_id,
        }) = found
        else {
            return Ok(Unsubscribed::NoSuchInvitation);
        };
        let newly = contacts::suppress(
            conn,
            &workspace_id,
            Channel::Email,
            &email,
            &format!("unsubscribed ({source})"),
        )?;
        if newly {
            let now = db::now();
            contacts::touch(conn, &contact_id, now)?;
            crate::webhooks::unsubscribed(conn, invitation_id, source, now)?;
            ledger::append(
                conn,
                &workspace_id,
                &[NewEntry {
                    contact_id: Some(&contact_id),
                    kind: LedgerKind::EmailUnsubscribed,
                    at: db::now(),
                    payload: serde_json::json!({
                        "email": email,
                        "via": source,
                        "campaign_id": campaign_id,
                        "invitation_id": invitation_id,
                    }),
                }],
            )?;
        }
        if already.is_some() {
            return Ok(Unsubscribed::Already);
        }
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
                kind: funnel::EventKind::Unsubscribed,
                at: Some(now),
                human: None,
                ip: None,
                user_agent: None,
                detail: Some(source),
            },
        )?;
        Ok(Unsubscribed::Newly)
    })
}
