//! Send, schedule, pause, resume, cancel: status changes, each in one transaction with the
//! outbox work it implies. Sends check the status ([`statuses`]) right before they go, so a
//! pause or cancel holds back every invitation not yet handed to the mail server, also across a
//! crash: the status is in the database, the invitations stay queued.
//!
//! ```text
//! draft ──send──▶ sending ──(all out)──▶ sent
//!   │  └─send at─▶ scheduled ──(at)──▶ sending ◀─resume── paused ◀─pause── sending
//!   └─────────────────┴── cancel ──▶ cancelled ◀── cancel ── sending / paused
//! ```

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::expand::CAMPAIGN_EXPAND_JOB;
use super::{Campaign, CampaignError, CampaignStatus};
use crate::activity::{self, Action, Actor};
use crate::db::schema::campaigns;
use crate::db::{self, DbConn, DbError};
use crate::mail::deliver::{INVITATION_BATCH_JOB, INVITATION_EMAIL_JOB};
use crate::outbox;

/// How long an invitation of a paused campaign waits before its job looks again. Resuming makes
/// the waiting jobs due at once; this only bounds the wait of a job that was being looked at
/// in the moment of the resume.
pub const PAUSED_RECHECK_SECS: i64 = 30;

fn load(conn: &mut DbConn, workspace_id: &str, id: &str) -> Result<Campaign, CampaignError> {
    let mut campaign = campaigns::table
        .filter(campaigns::workspace_id.eq(workspace_id))
        .filter(campaigns::id.eq(id))
        .select(Campaign::as_select())
        .first(conn)
        .optional()?
        .ok_or(CampaignError::NotFound)?;
    campaign.status = super::effective_status(conn, &campaign)?;
    Ok(campaign)
}

/// Changes the status and logs who did it, in the caller's transaction.
fn set_status(
    conn: &mut DbConn,
    campaign: Campaign,
    status: CampaignStatus,
    actor: &Actor,
    action: Action,
) -> Result<Campaign, CampaignError> {
    diesel::update(campaigns::table.find(&campaign.id))
        .set(campaigns::status.eq(status))
        .execute(conn)?;
    activity::record(
        conn,
        &campaign.workspace_id,
        actor,
        action,
        Some(&campaign.name),
        &campaign.id,
    )?;
    Ok(Campaign { status, ..campaign })
}

fn conflict(campaign: &Campaign, what: &str) -> CampaignError {
    let why = match campaign.status {
        CampaignStatus::Draft => "it is a draft that has not been sent",
        CampaignStatus::Scheduled => "it is scheduled and has not started (cancel it to change the time)",
        CampaignStatus::Sending => "it is sending",
        CampaignStatus::Paused => "it is paused (resume or cancel it)",
        CampaignStatus::Sent => "it is sent: every invitation has left",
        CampaignStatus::Cancelled => "it is cancelled",
    };
    CampaignError::Conflict(format!("cannot {what} this campaign: {why}"))
}

/// Sends a draft now, or at `at` (`scheduled` until then: the expansion job is due at `at`).
/// Asking again to send a campaign already sending or sent changes nothing.
pub fn send(
    conn: &mut DbConn,
    workspace_id: &str,
    id: &str,
    at: Option<NaiveDateTime>,
    actor: &Actor,
) -> Result<Campaign, CampaignError> {
    db::write_tx(conn, |conn| {
        let campaign = load(conn, workspace_id, id)?;
        let now = db::now();
        match campaign.status {
            CampaignStatus::Draft => {}
            CampaignStatus::Sending | CampaignStatus::Sent if at.is_none() => return Ok(campaign),
            _ => return Err(conflict(&campaign, "send")),
        }
        let at = at.filter(|at| *at > now);
        let status = if at.is_some() {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Sending
        };
        diesel::update(campaigns::table.find(id))
            .set((
                campaigns::status.eq(status),
                campaigns::send_requested_at.eq(now),
                campaigns::scheduled_at.eq(at),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, Some(workspace_id), CAMPAIGN_EXPAND_JOB, id, at.unwrap_or(now))?;
        match at {
            Some(at) => activity::record(
                conn,
                workspace_id,
                actor,
                Action::CampaignScheduled,
                Some(&campaign.name),
                &format!("{id} at {} UTC", at.format("%Y-%m-%d %H:%M")),
            )?,
            None => activity::record(
                conn,
                workspace_id,
                actor,
                Action::CampaignSent,
                Some(&campaign.name),
                id,
            )?,
        }
        Ok(Campaign {
            status,
            send_requested_at: Some(now),
            scheduled_at: at,
            ..campaign
        })
    })
}

/// Sending stops at each worker's next read of its batch (every 100 invitations,
/// `mail::deliver`); what a worker has read already goes out.
pub fn pause(conn: &mut DbConn, workspace_id: &str, id: &str, actor: &Actor) -> Result<Campaign, CampaignError> {
    db::write_tx(conn, |conn| {
        let campaign = load(conn, workspace_id, id)?;
        match campaign.status {
            CampaignStatus::Paused => Ok(campaign),
            CampaignStatus::Sending => {
                set_status(conn, campaign, CampaignStatus::Paused, actor, Action::CampaignPaused)
            }
            _ => Err(conflict(&campaign, "pause")),
        }
    })
}

/// Sends on: the held invitations' jobs are due at once.
pub fn resume(conn: &mut DbConn, workspace_id: &str, id: &str, actor: &Actor) -> Result<Campaign, CampaignError> {
    db::write_tx(conn, |conn| {
        let campaign = load(conn, workspace_id, id)?;
        match campaign.status {
            CampaignStatus::Sending => Ok(campaign),
            CampaignStatus::Paused => {
                wake_queued(conn, id)?;
                set_status(conn, campaign, CampaignStatus::Sending, actor, Action::CampaignResumed)
            }
            _ => Err(conflict(&campaign, "resume")),
        }
    })
}

/// Stops for good: invitations not yet sent are never sent (the sender skips them), a scheduled
/// campaign never starts.
pub fn cancel(conn: &mut DbConn, workspace_id: &str, id: &str, actor: &Actor) -> Result<Campaign, CampaignError> {
    db::write_tx(conn, |conn| {
        let campaign = load(conn, workspace_id, id)?;
        match campaign.status {
            CampaignStatus::Cancelled => Ok(campaign),
            CampaignStatus::Draft | CampaignStatus::Scheduled | CampaignStatus::Sending | CampaignStatus::Paused => {
                // Held jobs come due now, so the skipped invitations are recorded soon; a
                // scheduled expansion runs now and finds the campaign cancelled.
                wake_queued(conn, id)?;
                outbox::run_now(conn, &[CAMPAIGN_EXPAND_JOB], &[id.to_owned()])?;
                set_status(
                    conn,
                    campaign,
                    CampaignStatus::Cancelled,
                    actor,
                    Action::CampaignCancelled,
                )
            }
            CampaignStatus::Sent => Err(conflict(&campaign, "cancel")),
        }
    })
}

/// Makes the jobs of the campaign's queued invitations due now (their scope is the campaign,
/// see `outbox::enqueue_batches`).
fn wake_queued(conn: &mut DbConn, campaign_id: &str) -> Result<(), DbError> {
    outbox::run_now_in_scope(conn, &[INVITATION_BATCH_JOB, INVITATION_EMAIL_JOB], campaign_id)?;
    Ok(())
}

/// When a campaign's held invitations look again.
pub fn paused_until() -> NaiveDateTime {
    db::now() + chrono::Duration::seconds(PAUSED_RECHECK_SECS)
}
