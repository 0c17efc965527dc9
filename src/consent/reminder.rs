//! The one email reminder to a sign-up still unconfirmed `DOI_EMAIL_REMINDER_SECS` after the
//! landing form (issue 17).
//!
//! Seed 002: a double opt-in loses about a fifth of sign-ups, and no SMS may remind someone
//! who has not confirmed (there is no SMS consent yet). The reminder therefore goes by email, the
//! channel the person already allowed, once, and only while the sign-up is pending: never after
//! confirmation, expiry, unsubscribe, suppression or erasure. It links back to the code page,
//! where the person can have the SMS sent again or correct a mistyped number.
//!
//! Once means once: `doi_reminders` has one row per invitation (its primary key), written
//! before the email goes out. A worker killed between that row and the send leaves it
//! `sending`; it is not sent again (at most once: a second nudge is worse than none).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::doi::{self, ConsentRequestStatus};
use crate::db::schema::{consent_texts, contacts, doi_reminders, invitations, suppressions, workspaces};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::domain::{Channel, Locale};
use crate::funnel::{self, Metric};
use crate::outbox::{self, JobKind};

/// Remind one pending sign-up (`ref_id` = invitation).
pub const DOI_REMINDER_JOB: JobKind = JobKind::new("doi_email_reminder");

db_enum! {
    /// `doi_reminders.status`.
    pub enum ReminderStatus {
        /// Reserved; the email is being sent (left so by a worker that died meanwhile).
        Sending = "sending",
        Sent = "sent",
        /// The mail server refused it for good.
        Failed = "failed",
    }
}

/// Queues the reminder of a sign-up, due `at`; inside the sign-up's transaction. One job per
/// invitation while queued; the handler decides at `at` whether it is still wanted.
pub fn schedule(conn: &mut DbConn, workspace_id: &str, invitation_id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    outbox::enqueue(conn, Some(workspace_id), DOI_REMINDER_JOB, invitation_id, at)
}

/// Whether the invitation's reminder went out (for `confirmed_after_reminder`).
pub fn was_reminded(conn: &mut DbConn, invitation_id: &str) -> Result<bool, DbError> {
    let n: i64 = doi_reminders::table
        .filter(doi_reminders::invitation_id.eq(invitation_id))
        .filter(doi_reminders::status.eq(ReminderStatus::Sent))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Everything the reminder email says.
#[derive(Debug, Clone)]
pub struct Reminder {
    pub invitation_id: String,
    pub workspace_id: String,
    pub campaign_id: String,
    pub locale: Locale,
    pub to_email: String,
    pub first_name: Option<String>,
    pub from: String,
    pub company: String,
    pub privacy_url: String,
    pub message_id: String,
}

/// What to do with a reminder job.
#[derive(Debug, Clone)]
pub enum ReminderDecision {
    /// Send it (reserved: its row says `sending`).
    Send(Box<Reminder>),
    /// Not wanted (any more), or done already.
    Skip(&'static str),
}

#[derive(Queryable)]
struct Recipient {
    workspace_id: String,
    campaign_id: String,
    locale: String,
    email: String,
    unsubscribed_at: Option<NaiveDateTime>,
    opted_out_at: Option<NaiveDateTime>,
    confirmed_at: Option<NaiveDateTime>,
    contact_email: String,
    first_name: Option<String>,
    from: String,
}

/// Decides, and reserves when it is to be sent, in one transaction.
pub fn prepare(conn: &mut DbConn, invitation_id: &str) -> Result<ReminderDecision, DbError> {
    db::write_tx(conn, |conn| {
        let existing: Option<ReminderStatus> = doi_reminders::table
            .find(invitation_id)
            .select(doi_reminders::status)
            .first(conn)
            .optional()?;
        if let Some(status) = existing {
            return Ok(ReminderDecision::Skip(match status {
                ReminderStatus::Sending => "reminded already (interrupted send: not repeated)",
                ReminderStatus::Sent => "reminded already",
                ReminderStatus::Failed => "the reminder failed for good",
            }));
        }
        let Some(request) = doi::latest_for_invitation(conn, invitation_id)? else {
            return Ok(ReminderDecision::Skip("no sign-up"));
        };
        // Pending and not yet expired (`latest_for_invitation` reports an overdue one as expired).
        if request.status != ConsentRequestStatus::Pending {
            return Ok(ReminderDecision::Skip("the sign-up is no longer pending"));
        }
        let found: Option<Recipient> = invitations::table
            .inner_join(contacts::table)
            .inner_join(workspaces::table.on(workspaces::id.eq(invitations::workspace_id)))
            .filter(invitations::id.eq(invitation_id))
            .select((
                invitations::workspace_id,
                invitations::campaign_id,
                invitations::locale,
                invitations::email,
                invitations::unsubscribed_at,
                invitations::opted_out_at,
                invitations::confirmed_at,
                contacts::email_normalized,
                contacts::first_name,
                workspaces::from_address,
            ))
            .first(conn)
            .optional()?;
        let Some(r) = found else {
            return Ok(ReminderDecision::Skip("the invitation is gone"));
        };
        if r.confirmed_at.is_some() {
            return Ok(ReminderDecision::Skip("confirmed"));
        }
        if r.unsubscribed_at.is_some() || r.opted_out_at.is_some() {
            return Ok(ReminderDecision::Skip("unsubscribed"));
        }
        if r.contact_email.starts_with("erased:") || r.email == "erased" {
            return Ok(ReminderDecision::Skip("erased"));
        }
        let suppressed: i64 = suppressions::table
            .filter(suppressions::workspace_id.eq(&r.workspace_id))
            .filter(suppressions::channel.eq(Channel::Email))
            .filter(suppressions::address.eq(&r.contact_email))
            .count()
            .get_result(conn)?;
        if suppressed > 0 {
            return Ok(ReminderDecision::Skip("suppressed"));
        }
        let (company, privacy_url): (String, String) = consent_texts::table
            .find(&request.consent_text_id)
            .select((consent_texts::company_name, consent_texts::privacy_url))
            .first(conn)?;
        let domain = r
            .from
            .rsplit_once('@')
            .map_or("optbridge.invalid", |(_, d)| d.trim_end_matches('>'));
        let message_id = format!("<reminder-{invitation_id}@{domain}>");
        diesel::insert_into(doi_reminders::table)
            .values((
                doi_reminders::invitation_id.eq(invitation_id),
                doi_reminders::workspace_id.eq(&r.workspace_id),
                doi_reminders::campaign_id.eq(&r.campaign_id),
                doi_reminders::consent_request_id.eq(&request.id),
                doi_reminders::status.eq(ReminderStatus::Sending),
                doi_reminders::message_id.eq(&message_id),
                doi_reminders::created_at.eq(db::now()),
            ))
            .execute(conn)?;
        Ok(ReminderDecision::Send(Box::new(Reminder {
            invitation_id: invitation_id.to_owned(),
            workspace_id: r.workspace_id,
            campaign_id: r.campaign_id,
            locale: Locale::parse(&r.locale).unwrap_or(Locale::En),
            to_email: r.email,
            first_name: r.first_name,
            from: r.from,
            company,
            privacy_url,
            message_id,
        })))
    })
}

/// Records the outcome of a reserved reminder: `sent` counts `reminded` in the funnel once.
pub fn record(
    conn: &mut DbConn,
    invitation_id: &str,
    status: ReminderStatus,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    db::write_tx(conn, |conn| {
        let updated = diesel::update(
            doi_reminders::table
                .filter(doi_reminders::invitation_id.eq(invitation_id))
                .filter(doi_reminders::status.eq(ReminderStatus::Sending)),
        )
        .set((
            doi_reminders::status.eq(status),
            doi_reminders::sent_at.eq((status == ReminderStatus::Sent).then_some(now)),
        ))
        .execute(conn)?;
        if updated == 1 && status == ReminderStatus::Sent {
            let (campaign, variant, locale): (String, String, String) = invitations::table
                .find(invitation_id)
                .select((invitations::campaign_id, invitations::variant, invitations::locale))
                .first(conn)?;
            funnel::increment(conn, &campaign, &variant, &locale, Metric::Reminded, now, 1)?;
        }
        Ok(())
    })
}

/// Gives back the reservation of a reminder that was not delivered (a temporary failure), so
/// its job may try again.
pub fn release(conn: &mut DbConn, invitation_id: &str) -> Result<(), DbError> {
    diesel::delete(
        doi_reminders::table
            .filter(doi_reminders::invitation_id.eq(invitation_id))
            .filter(doi_reminders::status.eq(ReminderStatus::Sending)),
    )
    .execute(conn)?;
    Ok(())
}
