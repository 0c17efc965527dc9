//! The outbox job handlers for SMS: sending queued messages ([`OutgoingSmsHandler`]) and acting
//! on replies ([`InboundSmsHandler`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

use super::outbound::{SmsKind, SmsStatus};
use super::provider::{SmsSendError, SmsSender};
use super::quiet_hours::{self, QuietHours};
use crate::consent::SubscriptionStatus;
use crate::consent::doi::ConsentRequestStatus;
use crate::db::schema::{consent_requests, sms_messages, sms_subscriptions, suppressions, workspaces};
use crate::db::{self, DbConn, DbError};
use crate::domain::Channel;
use crate::metrics::METRICS;
use crate::outbox::breaker::{Breaker, BreakerConfig, Permit};
use crate::outbox::worker::{JobHandler, OutboxSettings, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};

/// Send one SMS (`ref_id` = sms message).
pub const SMS_JOB: JobKind = JobKind::new("sms");
/// Act on one SMS reply (`ref_id` = inbound message).
pub const INBOUND_SMS_JOB: JobKind = JobKind::new("inbound_sms");

/// The SMS job handlers, in the order a worker runs them each round: replies first, so that a
/// confirmation queues its receipt before this round's sends.
pub fn handlers(sender: SmsSender, quiet_hours: QuietHours, breaker: BreakerConfig) -> Vec<Box<dyn JobHandler>> {
    vec![
        Box::new(InboundSmsHandler),
        Box::new(OutgoingSmsHandler {
            sender,
            quiet_hours,
            breaker: Breaker::new("sms", breaker),
        }),
    ]
}

/// Sends queued SMS; registered for [`SMS_JOB`].
pub struct OutgoingSmsHandler {
    sender: SmsSender,
    /// When messages that do not answer the recipient's own action may go out.
    quiet_hours: QuietHours,
    /// Pauses sends to a provider that keeps failing (shared by this process's workers).
    breaker: Breaker,
}

impl JobHandler for OutgoingSmsHandler {
    fn kinds(&self) -> &[JobKind] {
        &[SMS_JOB]
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(send_batch(self, queue, owner, jobs))
    }
}

/// Acts on SMS replies (keywords, confirmation codes); registered for [`INBOUND_SMS_JOB`].
pub struct InboundSmsHandler;

impl JobHandler for InboundSmsHandler {
    fn kinds(&self) -> &[JobKind] {
        &[INBOUND_SMS_JOB]
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(process_inbound(queue, owner, jobs))
    }
}

/// An SMS sent within this long of the action it answers is a direct reply (no quiet hours);
/// a retry that comes later is not, and waits for the recipient's daytime.
const DIRECT_REPLY_WINDOW_MINUTES: i64 = 15;

#[derive(Debug, Clone, Queryable)]
struct QueuedSms {
    id: String,
    workspace_id: String,
    consent_request_id: Option<String>,
    kind: SmsKind,
    phone: String,
    country: String,
    body: String,
    status: SmsStatus,
    created_at: NaiveDateTime,
    /// The code the body shows masked, until the message is sent or given up.
    doi_code: Option<String>,
}

#[derive(Debug)]
enum Outcome {
    Sent(String),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Failed {
        reason: String,
        opted_out: bool,
    },
    Skipped(String),
    /// Quiet hours: try again when the recipient's window opens (not counted as an attempt).
    Deferred(NaiveDateTime),
    /// The SMS provider's circuit is open: back to the queue for this long (not an attempt).
    Paused(Duration),
    AlreadyDone,
}

async fn send_batch(
    handler: &OutgoingSmsHandler,
    queue: &Queue,
    owner: &str,
    jobs: Vec<Job>,
) -> Result<(), WorkerError> {
    let ids: Vec<String> = jobs.iter().map(|j| j.ref_id.clone()).collect();
    let (rows, known) = queue
        .db
        .run(move |conn| -> Result<_, WorkerError> {
            let rows: Vec<QueuedSms> = sms_messages::table
                .filter(sms_messages::id.eq_any(&ids))
                .select((
                    sms_messages::id,
                    sms_messages::workspace_id,
                    sms_messages::consent_request_id,
                    sms_messages::kind,
                    sms_messages::phone,
                    sms_messages::country,
                    sms_messages::body,
                    sms_messages::status,
                    sms_messages::created_at,
                    sms_messages::doi_code,
                ))
                .load(conn)?;
            let request_ids: Vec<&str> = rows.iter().filter_map(|r| r.consent_request_id.as_deref()).collect();
            let pending: HashSet<String> = consent_requests::table
                .filter(consent_requests::id.eq_any(&request_ids))
                .filter(consent_requests::status.eq(ConsentRequestStatus::Pending))
                .select(consent_requests::id)
                .load(conn)?
                .into_iter()
                .collect();
            let phones: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
            let opted_out: HashSet<String> = suppressions::table
                .filter(suppressions::channel.eq(Channel::Sms))
                .filter(suppressions::address.eq_any(&phones))
                .select(suppressions::address)
                .load(conn)?
                .into_iter()
                .collect();
            let subscribed: HashSet<(String, String)> = sms_subscriptions::table
                .filter(sms_subscriptions::phone.eq_any(&phones))
                .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active))
                .select((sms_subscriptions::workspace_id, sms_subscriptions::phone))
                .load(conn)?
                .into_iter()
                .collect();
            Ok((
                rows,
                Known {
                    pending,
                    opted_out,
                    subscribed,
                },
            ))
        })
        .await?;
    let rows: HashMap<String, QueuedSms> = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    let now = db::now();

    let work = jobs.into_iter().map(|job| {
        let row = rows.get(&job.ref_id).cloned();
        let decision = row.as_ref().map(|r| decide(handler, r, &known, now));
        async move {
            let outcome = match (&row, decision) {
                (None, _) => Outcome::Skipped("message no longer exists".into()),
                (Some(_), Some(Some(early))) => early,
                (Some(r), _) => send_one(handler, r).await,
            };
            (job, row, outcome)
        }
    });
    let results: Vec<(Job, Option<QueuedSms>, Outcome)> = futures_util::stream::iter(work)
        .buffer_unordered(queue.settings.send_concurrency.max(1))
        .collect()
        .await;

    let owner = owner.to_owned();
    let settings = queue.settings.clone();
    let provider = handler.sender.name();
    queue
        .db
        .run(move |conn| db::write_tx_retrying(conn, 5, |conn| record(conn, &owner, &settings, provider, &results)))
        .await
}

/// Sends one message unless the provider's circuit is open.
async fn send_one(handler: &OutgoingSmsHandler, r: &QueuedSms) -> Outcome {
    let permit = handler.breaker.permit();
    if let Permit::Wait(pause) = permit {
        return Outcome::Paused(pause);
    }
    let text = super::outbound::text_to_send(&r.body, r.doi_code.as_deref());
    let result = handler.sender.send(&r.workspace_id, &r.phone, &text).await;
    let retry_after = match &result {
        Err(SmsSendError::Transient { retry_after, .. }) => *retry_after,
        _ => None,
    };
    let failed = matches!(result, Err(SmsSendError::Transient { .. }));
    handler.breaker.record(permit, !failed, retry_after);
    if let Some(pause) = handler.breaker.paused_for().filter(|_| failed) {
        return Outcome::Paused(pause);
    }
    match result {
        Ok(sid) => Outcome::Sent(sid),
        Err(SmsSendError::Transient { reason, retry_after }) => Outcome::Retry { reason, retry_after },
        Err(SmsSendError::Permanent { reason, opted_out, .. }) => Outcome::Failed { reason, opted_out },
    }
}

/// What a batch's messages meet when they are about to be sent.
struct Known {
    /// Sign-ups still waiting for their confirmation.
    pending: HashSet<String>,
    /// Numbers that sent STOP.
    opted_out: HashSet<String>,
    /// (workspace, number) with an active consent.
    subscribed: HashSet<(String, String)>,
}

/// What to do with a message without sending it, if anything.
fn decide(handler: &OutgoingSmsHandler, r: &QueuedSms, known: &Known, now: NaiveDateTime) -> Option<Outcome> {
    if r.status != SmsStatus::Queued {
        return Some(Outcome::AlreadyDone);
    }
    let kind = r.kind;
    if kind == SmsKind::DoiRequest
        && !r
            .consent_request_id
            .as_ref()
            .is_some_and(|id| known.pending.contains(id))
    {
        return Some(Outcome::Skipped("the sign-up is no longer pending".into()));
    }
    // The answer to STOP must still reach the number; nothing else may.
    if kind != SmsKind::KeywordReply && known.opted_out.contains(&r.phone) {
        return Some(Outcome::Skipped("the number sent STOP".into()));
    }
    // A number already signed up gets no new code; the landing page said the same to every
    // number, so it does not tell who is signed up (issue 15, item 5).
    if kind == SmsKind::DoiRequest && known.subscribed.contains(&(r.workspace_id.clone(), r.phone.clone())) {
        return Some(Outcome::Skipped("the number is already signed up".into()));
    }
    let direct = now - r.created_at < chrono::Duration::minutes(DIRECT_REPLY_WINDOW_MINUTES);
    if !direct {
        let next = quiet_hours::next_allowed(now.and_utc(), &r.country, handler.quiet_hours).naive_utc();
        if next > now {
            return Some(Outcome::Deferred(next));
        }
    }
    None
}

fn record(
    conn: &mut DbConn,
    owner: &str,
    config: &OutboxSettings,
    provider: &str,
    results: &[(Job, Option<QueuedSms>, Outcome)],
) -> Result<(), WorkerError> {
    let now = db::now();
    let mut finished = Vec::new();
    for (job, row, outcome) in results {
        let Some(row) = row else {
            finished.push(job.id.clone());
            continue;
        };
        let queued = sms_messages::table
            .filter(sms_messages::id.eq(&row.id))
            .filter(sms_messages::status.eq(SmsStatus::Queued));
        match outcome {
            Outcome::AlreadyDone => finished.push(job.id.clone()),
            Outcome::Sent(sid) => {
                diesel::update(queued)
                    .set((
                        sms_messages::status.eq(SmsStatus::Sent),
                        sms_messages::provider_sid.eq(sid),
                        sms_messages::provider.eq(provider),
                        sms_messages::sent_at.eq(now),
                        sms_messages::attempts.eq(job.attempts),
                        sms_messages::error.eq(None::<String>),
                        sms_messages::doi_code.eq(None::<String>),
                    ))
                    .execute(conn)?;
                db::after_commit(|| METRICS.sms_sent.inc());
                finished.push(job.id.clone());
            }
            Outcome::Skipped(reason) => {
                diesel::update(queued)
                    .set((
                        sms_messages::status.eq(SmsStatus::Skipped),
                        sms_messages::error.eq(reason),
                        sms_messages::doi_code.eq(None::<String>),
                    ))
                    .execute(conn)?;
                finished.push(job.id.clone());
            }
            Outcome::Failed { reason, opted_out } => {
                fail(conn, row, job.attempts, reason)?;
                if *opted_out {
                    let all: Vec<String> = workspaces::table.select(workspaces::id).load(conn)?;
                    for ws in &all {
                        crate::contacts::suppress(conn, ws, Channel::Sms, &row.phone, "opted out at the SMS provider")?;
                    }
                }
                finished.push(job.id.clone());
            }
            Outcome::Retry { reason, .. } if job.attempts >= config.max_attempts => {
                fail(
                    conn,
                    row,
                    job.attempts,
                    &format!("gave up after {} attempts: {reason}", job.attempts),
                )?;
                finished.push(job.id.clone());
            }
            Outcome::Retry { reason, retry_after } => {
                // Honour the provider's Retry-After when it asks for more than our backoff.
                let backoff = outbox::backoff(job.attempts, config.retry_base, config.retry_max);
                let delay = retry_after.map_or(backoff, |ra| ra.max(backoff));
                let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(1));
                diesel::update(sms_messages::table.find(&row.id))
                    .set((sms_messages::attempts.eq(job.attempts), sms_messages::error.eq(reason)))
                    .execute(conn)?;
                outbox::retry_later(conn, owner, &job.id, at, reason)?;
                db::after_commit(|| METRICS.sms_retried.inc());
                tracing::info!(
                    sms = row.id,
                    attempt = job.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    reason,
                    "SMS will be retried"
                );
            }
            Outcome::Deferred(at) => {
                outbox::defer(conn, owner, &job.id, *at)?;
            }
            Outcome::Paused(pause) => {
                let at = now + chrono::Duration::from_std(*pause).unwrap_or(chrono::Duration::minutes(1));
                outbox::defer(conn, owner, &job.id, at)?;
            }
        }
    }
    outbox::finish(conn, owner, &finished)?;
    Ok(())
}

fn fail(conn: &mut DbConn, row: &QueuedSms, attempts: i32, reason: &str) -> Result<(), DbError> {
    diesel::update(
        sms_messages::table
            .filter(sms_messages::id.eq(&row.id))
            .filter(sms_messages::status.eq(SmsStatus::Queued)),
    )
    .set((
        sms_messages::status.eq(SmsStatus::Failed),
        sms_messages::attempts.eq(attempts),
        sms_messages::error.eq(reason),
        sms_messages::doi_code.eq(None::<String>),
    ))
    .execute(conn)?;
    db::after_commit(|| METRICS.sms_failed.inc());
    tracing::warn!(sms = row.id, reason, "SMS failed");
    Ok(())
}

/// Processes replies one by one (each in its own transaction).
async fn process_inbound(queue: &Queue, owner: &str, jobs: Vec<Job>) -> Result<(), WorkerError> {
    for job in jobs {
        let id = job.ref_id.clone();
        let result = queue.db.run(move |conn| super::inbound::process(conn, &id)).await;
        let owner = owner.to_owned();
        let config = queue.settings.clone();
        match result {
            Ok(outcome) => {
                tracing::info!(inbound = job.ref_id, outcome, "SMS reply processed");
                queue
                    .db
                    .run(move |conn| outbox::finish(conn, &owner, &[job.id]))
                    .await?;
            }
            Err(e) => {
                tracing::error!(inbound = job.ref_id, error = %e, "processing an SMS reply failed; will retry");
                let delay = outbox::backoff(job.attempts, config.retry_base, config.retry_max);
                let at = db::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(1));
                let reason = e.to_string();
                queue
                    .db
                    .run(move |conn| outbox::retry_later(conn, &owner, &job.id, at, &reason))
                    .await?;
            }
        }
    }
    queue.wake.notify_waiters();
    Ok(())
}
