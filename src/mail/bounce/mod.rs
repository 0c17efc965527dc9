//! Bounces after acceptance. Most relays accept a message at RCPT and report a failed delivery
//! later, by mail to the envelope sender: with `BOUNCE_ADDRESS` every invitation is sent from a
//! VERP address of its own ([`verp`]), and with `BOUNCE_MAILBOX` a [`BouncePoller`] reads that
//! mailbox ([`mailbox`]: POP3 or an IMAP folder) every `BOUNCE_POLL_SECS`, parses the reports
//! ([`report`]) and records each bounce as a refusal during the SMTP transaction would be: the
//! invitation moves from sent to bounced, the funnel counts it, a hard bounce suppresses the
//! address.
//!
//! A feedback loop's spam complaint (RFC 5965) in the same mailbox unsubscribes the recipient
//! from email, as the unsubscribe link does.
//!
//! A processed report is deleted from the mailbox; one that is not understood is left there
//! (and counted in /metrics), as is a report about an invitation not yet recorded as sent. A
//! report seen twice changes nothing the second time. A processed report the server refuses to
//! delete (a read-only mailbox) is not read again by the process.
//!
//! Mail relayed through an ESP bounces to the ESP, which reports it to its event webhook
//! instead ([`esp`]); [`record_reported`] records those bounces the same way, and its spam
//! complaints as unsubscribes.

pub mod esp;
pub mod imap;
pub mod mailbox;
pub mod pop3;
pub mod report;
pub mod verp;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::watch;

use self::mailbox::{Mailbox, MailboxError};
use self::report::{BounceReport, ReportOutcome};
use self::verp::BounceAddress;
use crate::campaigns::InvitationStatus;
use crate::campaigns::unsubscribe::Unsubscribed;
use crate::db::schema::{contacts, invitations};
use crate::db::{self, Db, DbConn, DbError};
use crate::domain::Channel;
use crate::funnel::{self, EventKind, Metric};
use crate::metrics::METRICS;

/// Bounds each exchange with the mailbox (fetching a large report included).
const MAILBOX_TIMEOUT: Duration = Duration::from_secs(60);
/// A larger message is no bounce report worth reading: it is left in the mailbox.
const MAX_MESSAGE_BYTES: u64 = 10 * 1024 * 1024;

/// What a bounce records besides the invitation row and the funnel, the same for a refusal
/// during the SMTP transaction (`deliver`) and for a report received later: a hard bounce
/// suppresses the address (see [`crate::mail::is_hard_bounce`]). Call inside the transaction
/// that moved the invitation to bounced.
pub(crate) fn record_consequences(
    conn: &mut DbConn,
    workspace_id: &str,
    invitation_id: &str,
    email_normalized: &str,
    hard: bool,
    reason: &str,
) -> Result<(), DbError> {
    let now = db::now();
    if hard {
        crate::contacts::touch_recipient(conn, invitation_id, now)?;
        crate::contacts::suppress(
            conn,
            workspace_id,
            Channel::Email,
            email_normalized,
            &format!("hard bounce: {reason}"),
        )?;
    }
    crate::webhooks::bounced(conn, invitation_id, hard, reason, now)?;
    db::after_commit(|| METRICS.emails_bounced.inc());
    tracing::info!(invitation = invitation_id, hard, reason, "invitation bounced");
    Ok(())
}

/// What a bounce report did to the invitation it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Moved from sent to bounced; the address suppressed when `hard`.
    Bounced { hard: bool },
    /// Already bounced, failed or skipped (a report seen before, or a refusal at send time), or
    /// for a complaint already unsubscribed: nothing changes.
    AlreadyFinal,
    /// Not recorded as sent yet (the report overtook the sender's bookkeeping): try again later.
    NotYetSent,
    /// No invitation has this token or Message-ID (another system's, or an erased contact's).
    Unknown,
    /// A spam complaint unsubscribed the recipient.
    Unsubscribed,
    /// The event reported nothing to record (delivered, a delay the ESP retries).
    Nothing,
}

/// The invitation a bounce is about, with its contact's address (read with the contacts joined).
#[derive(Queryable, Selectable)]
#[diesel(table_name = invitations)]
struct BouncedInvitation {
    id: String,
    workspace_id: String,
    campaign_id: String,
    variant: String,
    locale: String,
    status: InvitationStatus,
    sent_at: Option<chrono::NaiveDateTime>,
    #[diesel(select_expression = contacts::email_normalized)]
    email_normalized: String,
    message_id: Option<String>,
}

/// Records a bounce reported after the relay accepted the invitation with `token`. Call inside
/// a write transaction ([`db::write_tx`]).
pub fn record_bounce(conn: &mut DbConn, token: &str, hard: bool, reason: &str) -> Result<Recorded, DbError> {
    let found: Option<BouncedInvitation> = invitations::table
        .inner_join(contacts::table)
        .filter(invitations::bounce_token.eq(token))
        .select(BouncedInvitation::as_select())
        .first(conn)
        .optional()?;
    match found {
        Some(row) => bounce_found(conn, row, hard, reason),
        None => Ok(Recorded::Unknown),
    }
}

/// Records a spam complaint (a feedback loop's report in the bounce mailbox) about the
/// invitation with `token`: the recipient is unsubscribed from email, as by the unsubscribe link.
/// A complaint about an invitation unsubscribed before (the same report again, or the link
/// clicked first) changes nothing: [`Recorded::AlreadyFinal`].
pub fn record_complaint(conn: &mut DbConn, token: &str) -> Result<Recorded, DbError> {
    let found: Option<String> = invitations::table
        .filter(invitations::bounce_token.eq(token))
        .select(invitations::id)
        .first(conn)
        .optional()?;
    match found {
        None => Ok(Recorded::Unknown),
        Some(id) => complained(conn, &id, FEEDBACK_LOOP_COMPLAINT),
    }
}

/// Unsubscribes the recipient of invitation `id` for a spam complaint (`source` names where it
/// came from); a complaint about an invitation unsubscribed before counts as already final, the
/// same through the mailbox and through an ESP's webhook.
fn complained(conn: &mut DbConn, id: &str, source: &str) -> Result<Recorded, DbError> {
    Ok(match crate::campaigns::unsubscribe::unsubscribe(conn, id, source)? {
        Unsubscribed::Newly => Recorded::Unsubscribed,
        Unsubscribed::Already => Recorded::AlreadyFinal,
        Unsubscribed::NoSuchInvitation => Recorded::Unknown,
    })
}

/// How a feedback loop's complaint is named as the source of an unsubscribe (the suppression
/// reason reads `unsubscribed (spam complaint via feedback loop)`).
pub const FEEDBACK_LOOP_COMPLAINT: &str = "spam complaint via feedback loop";

/// Records what an ESP's event webhook reported ([`esp`]), one outcome per event: the bounces as
/// [`record_bounce`] does, in one transaction (a SendGrid batch holds hundreds), and the spam
/// complaints as unsubscribes from email (suppressed, ledger, `contact.unsubscribed`).
pub fn record_reported(conn: &mut DbConn, events: &[esp::EspEvent]) -> Result<Vec<Recorded>, DbError> {
    let mut recorded = vec![Recorded::Nothing; events.len()];
    if events
        .iter()
        .any(|e| matches!(e.kind, esp::EspEventKind::Bounce { .. }))
    {
        db::write_tx_retrying(conn, 5, |conn| {
            for (event, recorded) in events.iter().zip(recorded.iter_mut()) {
                if let esp::EspEventKind::Bounce { hard, reason } = &event.kind {
                    *recorded = match find_reported(conn, event)? {
                        Some(row) => bounce_found(conn, row, *hard, reason)?,
                        None => Recorded::Unknown,
                    };
                }
            }
            Ok::<_, DbError>(())
        })?;
    }
    for (event, recorded) in events.iter().zip(recorded.iter_mut()) {
        if let esp::EspEventKind::Complaint { reason } = &event.kind {
            *recorded = match find_reported(conn, event)? {
                Some(row) => complained(conn, &row.id, reason)?,
                None => Recorded::Unknown,
            };
        }
    }
    Ok(recorded)
}

/// The invitation an ESP's event is about. optbridge makes every Message-ID
/// `<{invitation id}@{From domain}>`; the invitation must also have been sent with that
/// Message-ID (or not be recorded as sent yet) and to the reported recipient.
fn find_reported(conn: &mut DbConn, event: &esp::EspEvent) -> Result<Option<BouncedInvitation>, DbError> {
    let Some((id, _domain)) = event.message_id.rsplit_once('@') else {
        return Ok(None);
    };
    let found: Option<BouncedInvitation> = invitations::table
        .inner_join(contacts::table)
        .filter(invitations::id.eq(id))
        .select(BouncedInvitation::as_select())
        .first(conn)
        .optional()?;
    let reported = format!("<{}>", event.message_id);
    Ok(found.filter(|row| {
        row.message_id
            .as_deref()
            .is_none_or(|sent| sent.eq_ignore_ascii_case(&reported))
            && row.email_normalized == event.recipient.trim().to_lowercase()
    }))
}

/// Moves a found invitation from sent to bounced and records the consequences.
fn bounce_found(conn: &mut DbConn, row: BouncedInvitation, hard: bool, reason: &str) -> Result<Recorded, DbError> {
    match row.status {
        InvitationStatus::Sent => {}
        InvitationStatus::Queued => return Ok(Recorded::NotYetSent),
        InvitationStatus::Bounced | InvitationStatus::Failed | InvitationStatus::Skipped => {
            return Ok(Recorded::AlreadyFinal);
        }
    }
    let now = db::now();
    let moved = diesel::update(
        invitations::table
            .filter(invitations::id.eq(&row.id))
            .filter(invitations::status.eq(InvitationStatus::Sent)),
    )
    .set((
        invitations::status.eq(InvitationStatus::Bounced),
        invitations::bounced_at.eq(now),
        invitations::last_error.eq(reason),
    ))
    .execute(conn)?;
    if moved == 0 {
        return Ok(Recorded::AlreadyFinal);
    }
    // It was counted delivered when the relay accepted it (in the hour it was sent): it is
    // bounced instead.
    let (campaign, variant, locale) = (&row.campaign_id, &row.variant, &row.locale);
    funnel::increment(conn, campaign, variant, locale, Metric::Bounced, now, 1)?;
    funnel::increment(
        conn,
        campaign,
        variant,
        locale,
        Metric::Delivered,
        row.sent_at.unwrap_or(now),
        -1,
    )?;
    funnel::record_events(
        conn,
        &[funnel::Event {
            workspace_id: &row.workspace_id,
            campaign_id: campaign,
            invitation_id: &row.id,
            kind: EventKind::Bounced,
            at: Some(now),
            human: None,
            ip: None,
            user_agent: None,
            detail: Some(reason),
        }],
    )?;
    record_consequences(conn, &row.workspace_id, &row.id, &row.email_normalized, hard, reason)?;
    Ok(Recorded::Bounced { hard })
}

/// Takes a Mailgun webhook token for a body (its SHA-256, hex): `true` when the token is new, or
/// was taken before with this very body (Mailgun's retry of a request whose answer it did not
/// get, or of one answered 503); `false` when it was taken with another body, i.e. a captured
/// signature carrying another event (see [`esp`]: Mailgun signs the token, not the event).
///
/// The token is taken before anything is recorded, in one statement that the first of two
/// concurrent requests wins, so no answer (503 included) leaves it open to another body. Tokens
/// too old to be accepted anyway are forgotten.
pub fn claim_mailgun_token(conn: &mut DbConn, token: &str, body_sha256: &str) -> Result<bool, DbError> {
    use crate::db::schema::esp_webhook_tokens as tokens;
    let now = db::now();
    db::write_tx_retrying(conn, 5, |conn| {
        // Twice the window: a token is refused by its timestamp by then.
        let old = now - chrono::Duration::seconds(2 * esp::MAILGUN_WINDOW_SECS);
        diesel::delete(tokens::table.filter(tokens::received_at.lt(old))).execute(conn)?;
        db::on_each_backend!(conn, |c| diesel::insert_into(tokens::table)
            .values((
                tokens::token.eq(token),
                tokens::body_sha256.eq(body_sha256),
                tokens::received_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c))?;
        let taken_with: String = tokens::table
            .filter(tokens::token.eq(token))
            .select(tokens::body_sha256)
            .first(conn)?;
        Ok(taken_with == body_sha256)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BounceError {
    #[error("bounce mailbox {target}: {source}")]
    Mailbox { target: String, source: MailboxError },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What one poll of the bounce mailbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PollSummary {
    /// Reports that bounced an invitation (deleted).
    pub bounced: usize,
    /// Feedback loop complaints that unsubscribed a recipient (deleted).
    pub unsubscribed: usize,
    /// Reports with nothing to record: delay warnings, success notices, reports seen before
    /// (deleted).
    pub ignored: usize,
    /// Reports about invitations not yet recorded as sent (left for the next poll).
    pub waiting: usize,
    /// Messages not understood (left in the mailbox).
    pub unrecognised: usize,
}

/// Reads the bounce mailbox and records what it finds.
pub struct BouncePoller {
    db: Db,
    mailbox: Mailbox,
    address: BounceAddress,
    /// Unique ids of the messages already found unrecognised: not downloaded, logged or counted
    /// again by this process.
    unrecognised: Mutex<HashSet<String>>,
    /// Unique ids of reports recorded whose deletion the server refused (a read-only mailbox):
    /// not downloaded, recorded or counted again by this process.
    undeletable: Mutex<HashSet<String>>,
}

impl BouncePoller {
    pub fn new(db: Db, mailbox: Mailbox, address: BounceAddress) -> Self {
        if mailbox.is_plaintext_remote() {
            tracing::warn!(
                mailbox = mailbox.target(),
                "BOUNCE_MAILBOX is pop3:// or imap:// to another host: the password crosses the network in the clear; use pop3s://, imaps:// or ?tls=required"
            );
        }
        Self {
            db,
            mailbox,
            address,
            unrecognised: Mutex::default(),
            undeletable: Mutex::default(),
        }
    }

    /// One pass over the mailbox. Deletions take effect when the session ends (POP3's QUIT,
    /// IMAP's CLOSE). A poll that fails half-way deletes nothing on POP3 and leaves its marks
    /// on IMAP; either way the next one finds what was already recorded.
    pub async fn poll_once(&self) -> Result<PollSummary, BounceError> {
        let target = self.mailbox.target();
        let failed = |source| BounceError::Mailbox {
            target: target.clone(),
            source,
        };
        let mut session = self.mailbox.open(MAILBOX_TIMEOUT).await.map_err(failed)?;
        let mut summary = PollSummary::default();
        let mut present = HashSet::new();
        for message in session.list().await.map_err(failed)? {
            present.insert(message.uid.clone());
            if is_known(&self.unrecognised, &message.uid) {
                summary.unrecognised += 1;
                continue;
            }
            if is_known(&self.undeletable, &message.uid) {
                continue;
            }
            if message.size > MAX_MESSAGE_BYTES {
                self.unrecognised(
                    &message.uid,
                    &format!("{} bytes, larger than any bounce report", message.size),
                );
                summary.unrecognised += 1;
                continue;
            }
            let raw = match session.fetch(&message).await {
                Ok(raw) => raw,
                // Removed meanwhile (another worker process reading the same mailbox).
                Err(MailboxError::Refused { reply, .. }) => {
                    tracing::debug!(
                        uid = message.uid,
                        reply,
                        "bounce mailbox: message gone before it was fetched"
                    );
                    continue;
                }
                Err(e) => return Err(failed(e)),
            };
            let report = match report::parse(&raw, &self.address) {
                Ok(report) => report,
                Err(why) => {
                    self.unrecognised(&message.uid, &why.to_string());
                    summary.unrecognised += 1;
                    continue;
                }
            };
            let counted = match self.record(report).await? {
                Some(Outcome::Bounced) => &mut summary.bounced,
                Some(Outcome::Unsubscribed) => &mut summary.unsubscribed,
                Some(Outcome::Ignored) => &mut summary.ignored,
                Some(Outcome::Wait) => {
                    summary.waiting += 1;
                    continue;
                }
                None => {
                    self.unrecognised(&message.uid, "its token names no invitation");
                    summary.unrecognised += 1;
                    continue;
                }
            };
            match session.delete(&message).await {
                Ok(()) => {}
                // Recorded all the same; left in the mailbox, so not read again.
                Err(MailboxError::Refused { reply, .. }) => self.undeletable(&message.uid, &reply),
                Err(e) => return Err(failed(e)),
            }
            *counted += 1;
        }
        session.close().await.map_err(failed)?;
        // Forget messages someone removed from the mailbox meanwhile.
        for known in [&self.unrecognised, &self.undeletable] {
            known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|uid| present.contains(uid));
        }
        METRICS.bounce_messages[0].add(summary.bounced as u64);
        METRICS.bounce_messages[1].add(summary.ignored as u64);
        METRICS.bounce_messages[3].add(summary.unsubscribed as u64);
        METRICS.bounce_unrecognised_left.set(summary.unrecognised as u64);
        METRICS
            .bounce_last_success
            .set(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default());
        if summary != PollSummary::default() {
            tracing::info!(?summary, "bounce mailbox polled");
        }
        Ok(summary)
    }

    /// Records a report; `None` when its token names no invitation.
    async fn record(&self, report: BounceReport) -> Result<Option<Outcome>, BounceError> {
        let token = report.token;
        let recorded = match report.outcome {
            ReportOutcome::Informational { action } => {
                tracing::debug!(token, action, "bounce mailbox: a report with nothing to record");
                return Ok(Some(Outcome::Ignored));
            }
            ReportOutcome::Complaint { reporter } => {
                tracing::info!(token, reporter, "bounce mailbox: a feedback loop's spam complaint");
                self.db.run(move |conn| record_complaint(conn, &token)).await?
            }
            ReportOutcome::Failed { hard, reason } => {
                self.db
                    .run(move |conn| db::write_tx_retrying(conn, 5, |conn| record_bounce(conn, &token, hard, &reason)))
                    .await?
            }
        };
        Ok(match recorded {
            Recorded::Bounced { .. } => Some(Outcome::Bounced),
            Recorded::Unsubscribed => Some(Outcome::Unsubscribed),
            Recorded::AlreadyFinal | Recorded::Nothing => Some(Outcome::Ignored),
            Recorded::NotYetSent => Some(Outcome::Wait),
            Recorded::Unknown => None,
        })
    }

    fn undeletable(&self, uid: &str, reply: &str) {
        if remember(&self.undeletable, uid) {
            tracing::warn!(
                uid,
                reply,
                "bounce mailbox: the server refused to delete a report that was recorded; it is left in the mailbox and not read again by this process (is the mailbox read-only?)"
            );
        }
    }

    fn unrecognised(&self, uid: &str, why: &str) {
        if remember(&self.unrecognised, uid) {
            METRICS.bounce_messages[2].inc();
            tracing::warn!(uid, why, "bounce mailbox: message not recognised; left in the mailbox");
        }
    }

    /// Polls every `every` until shut down. A failed poll (or a panic in one) is logged and
    /// counted, and the next one comes as usual.
    pub fn spawn(self: Arc<Self>, every: Duration) -> PollerHandle {
        let (shutdown, mut stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                // Stopping drops a poll under way, as a failed poll: what it recorded is found
                // recorded at the next poll.
                let polled = tokio::select! {
                    polled = crate::telemetry::catch_panic(self.poll_once()) => polled,
                    _ = stop.changed() => return,
                };
                match polled {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        METRICS.bounce_polls_failed.inc();
                        tracing::warn!(error = %e, "bounce mailbox poll failed; trying again at the next poll");
                    }
                    Err(panic) => {
                        METRICS.bounce_polls_failed.inc();
                        tracing::error!(panic, "bounce mailbox poll panicked; trying again at the next poll");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
            }
        });
        PollerHandle { shutdown, task }
    }
}

/// Whether `uid` is in one of the poller's sets of messages it no longer reads.
fn is_known(known: &Mutex<HashSet<String>>, uid: &str) -> bool {
    known.lock().unwrap_or_else(PoisonError::into_inner).contains(uid)
}

/// Adds `uid` to one of those sets; `true` when it was not there yet (log it once).
fn remember(known: &Mutex<HashSet<String>>, uid: &str) -> bool {
    known
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(uid.to_owned())
}

/// What became of a report: the first three are deleted, the last is left for the next poll.
enum Outcome {
    Bounced,
    Unsubscribed,
    /// Nothing to record (a delay warning, a report seen before).
    Ignored,
    Wait,
}

/// The running poller of [`BouncePoller::spawn`].
pub struct PollerHandle {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PollerHandle {
    /// Stops, abandoning a poll under way (see [`BouncePoller::spawn`]).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
