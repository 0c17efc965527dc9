//! Erasing a contact (GDPR art. 17): personal data goes; what remains is anonymous, so funnel
//! statistics still add up and the consent ledger still verifies (its payloads are redacted,
//! their hashes stay, and an `contact_erased` entry records the erasure).
//!
//! Kept on purpose: suppression-list rows (email address or number), because honouring an
//! objection requires remembering it (art. 21); and the hashes in the ledger.

use std::collections::BTreeSet;

use diesel::prelude::*;
use serde_json::json;

use crate::activity::{self, Action, Actor};
use crate::consent::ledger::{self, LedgerKind, NewEntry};
use crate::consent::{SubscriptionStatus, WithdrawnVia};
use crate::db::schema::{
    consent_requests, contacts, dev_messages, funnel_events, inbound_messages, invitations, sms_messages,
    sms_subscriptions,
};
use crate::db::{self, DbConn, DbError};

/// What an erased phone or email column holds instead of the person's data.
const ERASED: &str = "erased";

/// Erases a contact of a workspace. Returns false when there is no such contact. Idempotent.
/// `by` goes into the ledger entry; `actor` is who the activity log names.
pub fn erase(
    conn: &mut DbConn,
    workspace_id: &str,
    contact_id: &str,
    by: &str,
    actor: &Actor,
) -> Result<bool, DbError> {
    db::write_tx(conn, |conn| {
        let found: Option<(String, String)> = contacts::table
            .filter(contacts::workspace_id.eq(workspace_id))
            .filter(contacts::id.eq(contact_id))
            .select((contacts::email_normalized, contacts::email))
            .first(conn)
            .optional()?;
        let Some((email, email_as_given)) = found else {
            return Ok(false);
        };
        let now = db::now();
        let erased_email = format!("erased:{contact_id}");
        if email == erased_email {
            return Ok(true);
        }
        let mut phones: BTreeSet<String> = consent_requests::table
            .filter(consent_requests::contact_id.eq(contact_id))
            .select(consent_requests::phone)
            .load::<String>(conn)?
            .into_iter()
            .collect();
        phones.extend(
            sms_subscriptions::table
                .filter(sms_subscriptions::contact_id.eq(contact_id))
                .select(sms_subscriptions::phone)
                .load::<String>(conn)?,
        );
        let phones: Vec<String> = phones.into_iter().filter(|p| p.starts_with('+')).collect();

        diesel::update(contacts::table.find(contact_id))
            .set((
                contacts::email.eq(&erased_email),
                contacts::email_normalized.eq(&erased_email),
                contacts::first_name.eq(None::<String>),
                contacts::last_name.eq(None::<String>),
                contacts::external_id.eq(None::<String>),
                contacts::email_consent_source.eq(None::<String>),
                contacts::updated_at.eq(now),
            ))
            .execute(conn)?;
        let invitation_ids: Vec<String> = invitations::table
            .filter(invitations::contact_id.eq(contact_id))
            .select(invitations::id)
            .load(conn)?;
        diesel::update(invitations::table.filter(invitations::contact_id.eq(contact_id)))
            .set((
                invitations::email.eq(ERASED),
                invitations::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        diesel::update(funnel_events::table.filter(funnel_events::invitation_id.eq_any(&invitation_ids)))
            .set((
                funnel_events::ip.eq(None::<String>),
                funnel_events::user_agent.eq(None::<String>),
                funnel_events::detail.eq(None::<String>),
            ))
            .execute(conn)?;
        diesel::update(consent_requests::table.filter(consent_requests::contact_id.eq(contact_id)))
            .set((
                consent_requests::phone.eq(ERASED),
                consent_requests::ip.eq(None::<String>),
                consent_requests::user_agent.eq(None::<String>),
                consent_requests::token_jti.eq(None::<String>),
            ))
            .execute(conn)?;
        // An erased person has no consent left; the number column keeps its uniqueness.
        let subs: Vec<(String, SubscriptionStatus)> = sms_subscriptions::table
            .filter(sms_subscriptions::contact_id.eq(contact_id))
            .select((sms_subscriptions::id, sms_subscriptions::status))
            .load(conn)?;
        for (id, status) in subs {
            diesel::update(sms_subscriptions::table.find(&id))
                .set((
                    sms_subscriptions::phone.eq(format!("erased:{id}")),
                    sms_subscriptions::status.eq(SubscriptionStatus::Withdrawn),
                    sms_subscriptions::withdrawn_via
                        .eq((status == SubscriptionStatus::Active).then_some(WithdrawnVia::Erasure)),
                    sms_subscriptions::withdrawn_at.eq(now),
                ))
                .execute(conn)?;
        }
        diesel::update(
            sms_messages::table
                .filter(sms_messages::workspace_id.eq(workspace_id))
                .filter(sms_messages::phone.eq_any(&phones)),
        )
        .set((
            sms_messages::phone.eq(ERASED),
            sms_messages::body.eq(""),
            sms_messages::doi_code.eq(None::<String>),
        ))
        .execute(conn)?;
        // Replies are not tied to a workspace: erase those of numbers no other workspace knows.
        for phone in &phones {
            let elsewhere: i64 = consent_requests::table
                .filter(consent_requests::phone.eq(phone))
                .filter(consent_requests::workspace_id.ne(workspace_id))
                .count()
                .get_result(conn)?;
            if elsewhere == 0 {
                diesel::update(inbound_messages::table.filter(inbound_messages::phone.eq(phone)))
                    .set((inbound_messages::phone.eq(ERASED), inbound_messages::body.eq("")))
                    .execute(conn)?;
            }
        }
        // Dev outbox: SMS carry the bare number, emails a display form (`Anna <anna@…>`).
        let mut addresses = phones.clone();
        addresses.extend([email.clone(), email_as_given.clone()]);
        let bracketed = |a: &str| format!("%<{}>", a.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let (named, named_as_given) = (bracketed(&email), bracketed(&email_as_given));
        diesel::delete(
            dev_messages::table
                .filter(dev_messages::workspace_id.eq(workspace_id))
                .filter(
                    dev_messages::recipient
                        .eq_any(&addresses)
                        .or(dev_messages::sender.eq_any(&addresses))
                        .or(dev_messages::recipient.like(&named).escape('\\'))
                        .or(dev_messages::recipient.like(&named_as_given).escape('\\')),
                ),
        )
        .execute(conn)?;

        ledger::redact_contact(conn, workspace_id, contact_id)?;
        ledger::append(
            conn,
            workspace_id,
            &[NewEntry {
                contact_id: Some(contact_id),
                kind: LedgerKind::ContactErased,
                at: now,
                payload: json!({"erased_by": by, "erased_at": now.and_utc().to_rfc3339()}),
            }],
        )?;
        activity::record(conn, workspace_id, actor, Action::ContactErased, Some(contact_id), "")?;
        tracing::info!(workspace = workspace_id, contact = contact_id, by, "contact erased");
        Ok(true)
    })
}
