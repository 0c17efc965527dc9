//! Recording what became of the invitations a process sends. One [`Recorder`] per
//! [`InvitationSender`](super::InvitationSender) takes the outcomes of every worker's lanes as
//! they arrive and commits them together, in one transaction every 10 – 40 ms (a group commit),
//! so a crash repeats only what was in flight or arrived in the last few milliseconds (issue 18).
//! The end of a round (what goes back to the outbox, the batch finished) goes in the same way,
//! after the round's outcomes.
//!
//! One recorder for all of a process's workers rather than one per worker: with four workers on
//! PostgreSQL each committed its own outcomes about every 30 ms, 1,700 transactions for 100,000
//! invitations, each queueing for the same funnel counter rows until the one before committed;
//! and a round could not end while its worker's last transaction waited (BENCHMARKS.md, "seventh
//! session").

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::{Delivery, INVITATION_EMAIL_JOB, Origin, Outcome, PendingInvitation};
use crate::campaigns::{self, InvitationStatus};
use crate::db::schema::invitations;
use crate::db::{self, Db, DbConn, DbError};
use crate::funnel::{self, EventKind, Metric};
use crate::metrics::METRICS;
use crate::outbox;
use crate::outbox::worker::{OutboxSettings, WorkerError};

/// How often outcomes that arrived are committed: every 10 ms when few arrive; the wait grows
/// by [`RECORD_EVERY`] per [`RECORD_GROWS_PER`] outcomes of the last commit, up to
/// [`RECORD_AT_MOST_EVERY`], so that a fast relay's outcomes still go in few large commits.
const RECORD_EVERY: Duration = Duration::from_millis(10);
const RECORD_GROWS_PER: u32 = 50;
const RECORD_AT_MOST_EVERY: Duration = Duration::from_millis(40);
/// After a failed commit the recorder waits this long, doubling per failure in a row, before it
/// tries again with everything still queued.
const RETRY_AT_MOST_EVERY: Duration = Duration::from_secs(2);
/// Commits a round's end may fail before its worker is told (and goes on: it stops waiting, the
/// recorder goes on trying).
const CLOSE_ATTEMPTS: u32 = 3;

/// Takes the outcomes of a process's sends and records them in group commits (see the module).
/// Dropped with its [`super::InvitationSender`]; its task records what is still queued, then
/// ends.
pub(super) struct Recorder {
    entries: mpsc::UnboundedSender<Entry>,
}

enum Entry {
    /// Final outcomes of `owner`'s sends.
    Outcomes {
        owner: String,
        outcomes: Vec<(Delivery, Outcome)>,
    },
    /// A round that has run for a third of a lease: its jobs are leased to `owner` for another.
    Renew {
        owner: String,
        jobs: Arc<Vec<String>>,
    },
    Close(Close),
    /// Commit what is queued now, without waiting for the next group commit; answered once
    /// that commit is made or has failed.
    Flush(oneshot::Sender<Result<(), WorkerError>>),
}

/// The end of a round: its batches finished (`batch_ids`) or put off (`put_off`: their campaign
/// was paused meanwhile), and the outcomes that put an invitation back to the outbox (`rest`).
struct Close {
    owner: String,
    batch_ids: Vec<String>,
    put_off: Vec<String>,
    rest: Vec<(Delivery, Outcome)>,
    /// Failed commits it was in.
    failures: u32,
    /// Answered once recorded, or after [`CLOSE_ATTEMPTS`] failed commits.
    done: Option<oneshot::Sender<Result<(), WorkerError>>>,
}

/// A round's end on its way to the database: [`Closing::finished`] says when it is recorded.
pub(super) struct Closing(oneshot::Receiver<Result<(), WorkerError>>);

/// What a worker is told when the recorder's task is gone (a bug ended it).
fn stopped() -> WorkerError {
    WorkerError::Unrecorded("the recorder stopped".into())
}

impl Closing {
    /// The answer, if it came already.
    pub(super) fn try_finished(&mut self) -> Option<Result<(), WorkerError>> {
        match self.0.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(stopped())),
        }
    }

    pub(super) async fn finished(self) -> Result<(), WorkerError> {
        self.0.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl Recorder {
    /// Starts the recorder's task on the current runtime.
    pub(super) fn start(db: Db, settings: OutboxSettings) -> Self {
        let (entries, queued) = mpsc::unbounded_channel();
        tokio::spawn(run(queued, db, settings));
        Self { entries }
    }

    fn send(&self, entry: Entry) {
        if self.entries.send(entry).is_err() {
            // Only after a bug ended the task: what was sent stays queued in the database, and
            // is sent again once the batch's lease expires.
            tracing::error!("the invitation recorder has stopped; outcomes are not recorded");
        }
    }

    /// Records `outcomes` of `owner`'s sends with the next group commit; those that put an
    /// invitation back to the outbox are returned, for the round's end.
    pub(super) fn record(&self, owner: &str, outcomes: Vec<(Delivery, Outcome)>) -> Vec<(Delivery, Outcome)> {
        let (now, later): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, o)| o.is_final());
        if !now.is_empty() {
            self.send(Entry::Outcomes {
                owner: owner.to_owned(),
                outcomes: now,
            });
        }
        later
    }

    /// Extends the leases of `owner`'s `jobs` with the next group commit.
    pub(super) fn renew(&self, owner: &str, jobs: Arc<Vec<String>>) {
        self.send(Entry::Renew {
            owner: owner.to_owned(),
            jobs,
        });
    }

    /// Records the end of `owner`'s round after every outcome recorded before it: `batch_ids`
    /// finished, `put_off` deferred (their campaign was paused), `rest` put back to the outbox.
    pub(super) fn close(
        &self,
        owner: &str,
        batch_ids: Vec<String>,
        put_off: Vec<String>,
        rest: Vec<(Delivery, Outcome)>,
    ) -> Closing {
        let (done, finished) = oneshot::channel();
        self.send(Entry::Close(Close {
            owner: owner.to_owned(),
            batch_ids,
            put_off,
            rest,
            failures: 0,
            done: Some(done),
        }));
        Closing(finished)
    }

    /// Commits what is queued without waiting for the next group commit; returns once it is
    /// committed (or the commit failed: it is tried again, in order, with the next one).
    pub(super) async fn flush(&self) -> Result<(), WorkerError> {
        let (done, flushed) = oneshot::channel();
        self.send(Entry::Flush(done));
        flushed.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl Outcome {
    /// Whether the outcome ends the invitation's sending (recorded as it arrives), rather than
    /// putting it back to the outbox (recorded with the round's end, which decides how).
    fn is_final(&self) -> bool {
        !matches!(self, Outcome::Retry(_) | Outcome::Paused(_))
    }
}

/// The recorder's task: gathers entries until the next commit is due (or a flush asks for it),
/// commits them in one transaction, and answers the rounds' ends it recorded.
async fn run(mut incoming: mpsc::UnboundedReceiver<Entry>, db: Db, settings: OutboxSettings) {
    let mut queued: Vec<Entry> = Vec::new();
    let mut open = true;
    let mut wait = Duration::ZERO;
    let mut last = tokio::time::Instant::now();
    let mut failures = 0u32;
    while open || !queued.is_empty() {
        if queued.is_empty() {
            match incoming.recv().await {
                Some(entry) => queued.push(entry),
                None => break,
            }
        }
        // Outcomes arriving after a quiet spell are committed at once; then at most every `wait`.
        let due = last + wait;
        let mut flush = queued.iter().any(|e| matches!(e, Entry::Flush(_)));
        while open && !flush {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(due) => break,
                entry = incoming.recv() => match entry {
                    Some(entry) => {
                        flush = matches!(entry, Entry::Flush(_));
                        queued.push(entry);
                    }
                    None => open = false,
                },
            }
        }
        while let Ok(entry) = incoming.try_recv() {
            queued.push(entry);
        }
        let mut flushes = Vec::new();
        let mut entries = Vec::with_capacity(queued.len());
        for entry in queued.drain(..) {
            match entry {
                Entry::Flush(done) => flushes.push(done),
                other => entries.push(other),
            }
        }
        if entries.is_empty() {
            for done in flushes {
                let _ = done.send(Ok(()));
            }
            continue;
        }
        last = tokio::time::Instant::now();
        let outcomes: usize = entries
            .iter()
            .map(|e| match e {
                Entry::Outcomes { outcomes, .. } => outcomes.len(),
                Entry::Close(close) => close.rest.len(),
                _ => 0,
            })
            .sum();
        // Shared with the blocking task, so that nothing is lost when it cannot run.
        let batch = Arc::new(Mutex::new(entries));
        let (b, s) = (batch.clone(), settings.clone());
        let started = std::time::Instant::now();
        let recorded = db
            .run(move |conn| {
                let entries = b.lock().unwrap_or_else(PoisonError::into_inner);
                db::write_tx_retrying(conn, 5, |conn| record_entries(conn, &s, &entries))
            })
            .await;
        let entries = std::mem::take(&mut *batch.lock().unwrap_or_else(PoisonError::into_inner));
        match recorded {
            Ok(()) => {
                failures = 0;
                let n = u32::try_from(outcomes).unwrap_or(u32::MAX);
                wait = (RECORD_EVERY * (1 + n / RECORD_GROWS_PER)).min(RECORD_AT_MOST_EVERY);
                tracing::debug!(
                    outcomes,
                    record_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "invitation outcomes recorded"
                );
                for entry in entries {
                    if let Entry::Close(Close { done: Some(done), .. }) = entry {
                        let _ = done.send(Ok(()));
                    }
                }
                for done in flushes {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) => {
                failures += 1;
                wait = (RECORD_EVERY * 2u32.saturating_pow(failures)).min(RETRY_AT_MOST_EVERY);
                tracing::warn!(error = %e, failures, outcomes, "recording sent invitations failed; trying again");
                // Tried again, in the same order, with what arrives meanwhile: what was sent is
                // recorded once the database takes it, and its batch finished, unless the
                // process stops first (then the batch is taken up again when its lease expires).
                queued = entries;
                for entry in &mut queued {
                    if let Entry::Close(close) = entry {
                        close.failures += 1;
                        if close.failures >= CLOSE_ATTEMPTS
                            && let Some(done) = close.done.take()
                        {
                            let _ = done.send(Err(WorkerError::Unrecorded(e.to_string())));
                        }
                    }
                }
                for done in flushes {
                    let _ = done.send(Err(WorkerError::Unrecorded(e.to_string())));
                }
                if !open && failures >= CLOSE_ATTEMPTS {
                    // Its sender is gone (the process is stopping): what was sent and not
                    // recorded is sent again once its batch's lease expires.
                    tracing::error!(error = %e, entries = queued.len(), "the invitation recorder gives up");
                    return;
                }
            }
        }
    }
}

/// What one owner's entries of a commit record.
struct Share<'a> {
    owner: &'a str,
    batch_ids: &'a [String],
    put_off: &'a [String],
    results: Vec<&'a (Delivery, Outcome)>,
}

/// Records a commit's entries: every owner's outcomes in one share each, then each round's end
/// in one of its own (its outcomes are in the same transaction or an earlier one).
fn record_entries(conn: &mut DbConn, settings: &OutboxSettings, entries: &[Entry]) -> Result<(), WorkerError> {
    let mut shares: Vec<Share<'_>> = Vec::new();
    let mut by_owner: BTreeMap<&str, Vec<&(Delivery, Outcome)>> = BTreeMap::new();
    for entry in entries {
        match entry {
            Entry::Outcomes { owner, outcomes } => by_owner.entry(owner).or_default().extend(outcomes),
            Entry::Renew { owner, jobs } => {
                outbox::extend_leases(conn, owner, jobs, settings.lease)?;
            }
            Entry::Close(_) | Entry::Flush(_) => {}
        }
    }
    shares.extend(by_owner.into_iter().map(|(owner, results)| Share {
        owner,
        batch_ids: &[],
        put_off: &[],
        results,
    }));
    shares.extend(entries.iter().filter_map(|entry| match entry {
        Entry::Close(close) => Some(Share {
            owner: &close.owner,
            batch_ids: &close.batch_ids,
            put_off: &close.put_off,
            results: close.rest.iter().collect(),
        }),
        _ => None,
    }));
    record_outcomes(conn, settings, &mut shares)
}

fn record_outcomes(conn: &mut DbConn, settings: &OutboxSettings, shares: &mut [Share<'_>]) -> Result<(), WorkerError> {
    let now = db::now();
    // Lock invitation rows in one order in every transaction (see funnel::Tally for counters).
    for share in shares.iter_mut() {
        share.results.sort_by(|a, b| a.0.invitation_id.cmp(&b.0.invitation_id));
    }
    let mut tally = funnel::Tally::default();
    // (invitation, kind, detail) for the events, written in one insert at the end.
    let mut events: Vec<(&PendingInvitation, EventKind, Option<String>)> = Vec::new();
    let mut finished_by_owner: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let bulk_sent = record_sent_in_bulk(conn, shares.iter().flat_map(|s| s.results.iter().copied()), now)?;
    for share in shares.iter() {
        // The batches this worker still holds. When a lease was lost (it expired and another
        // worker took the batch over), that worker sends what is still queued, so nothing of
        // that batch is put back or finished here; sends are recorded all the same, first one
        // wins. Asked only when something may go back to the outbox: finishing alone needs no
        // question, as `outbox::finish` removes only the jobs this owner still holds.
        let mut held = HashSet::new();
        let mut finished: Vec<String> = Vec::new();
        if share.results.iter().any(|(_, o)| !o.is_final()) {
            for id in share.batch_ids {
                if outbox::holds(conn, share.owner, id)? {
                    held.insert(id.as_str());
                }
            }
            finished.extend(held.iter().map(|id| (*id).to_owned()));
        } else {
            finished.extend(share.batch_ids.iter().cloned());
        }
        for (delivery, outcome) in share.results.iter().copied() {
            let attempts = delivery.attempts();
            // Done with this invitation: its own job goes; a batch goes once, above.
            let mut finish = || {
                if let Origin::Own(job) = &delivery.origin {
                    finished.push(job.id.clone());
                }
            };
            let Some(row) = &delivery.row else {
                finish();
                continue;
            };
            if bulk_sent.contains(row.id.as_str()) {
                tally.add(&row.campaign_id, &row.variant, &row.locale, Metric::Sent, now);
                tally.add(&row.campaign_id, &row.variant, &row.locale, Metric::Delivered, now);
                db::after_commit(|| METRICS.emails_sent.inc());
                finish();
                continue;
            }
            let queued = invitations::table
                .filter(invitations::id.eq(&row.id))
                .filter(invitations::status.eq(InvitationStatus::Queued));
            let mut count = |metric| tally.add(&row.campaign_id, &row.variant, &row.locale, metric, now);
            match outcome {
                Outcome::AlreadyDone => finish(),
                Outcome::Paused(pause) => {
                    let at = now + chrono::Duration::from_std(*pause).unwrap_or(chrono::Duration::minutes(1));
                    put_back(conn, share.owner, delivery, row, &held, at, PutBack::Deferred)?;
                }
                Outcome::Sent { message_id } => {
                    let n = diesel::update(queued)
                        .set((
                            invitations::status.eq(InvitationStatus::Sent),
                            invitations::sent_at.eq(now),
                            invitations::message_id.eq(message_id),
                            invitations::attempts.eq(attempts),
                            invitations::last_error.eq(None::<String>),
                        ))
                        .execute(conn)?;
                    if n == 1 {
                        count(Metric::Sent);
                        count(Metric::Delivered);
                        db::after_commit(|| METRICS.emails_sent.inc());
                    }
                    finish();
                }
                Outcome::Bounced { hard, reason } => {
                    let n = diesel::update(queued)
                        .set((
                            invitations::status.eq(InvitationStatus::Bounced),
                            invitations::bounced_at.eq(now),
                            invitations::attempts.eq(attempts),
                            invitations::last_error.eq(reason),
                        ))
                        .execute(conn)?;
                    if n == 1 {
                        count(Metric::Sent);
                        count(Metric::Bounced);
                        events.push((row, EventKind::Bounced, Some(reason.clone())));
                        crate::mail::bounce::record_consequences(
                            conn,
                            &row.workspace_id,
                            &row.id,
                            &row.email_normalized,
                            *hard,
                            reason,
                        )?;
                    }
                    finish();
                }
                Outcome::Skipped(reason) => {
                    let n = diesel::update(queued)
                        .set((
                            invitations::status.eq(InvitationStatus::Skipped),
                            invitations::last_error.eq(reason),
                        ))
                        .execute(conn)?;
                    if n == 1 {
                        events.push((row, EventKind::Skipped, Some(reason.clone())));
                    }
                    finish();
                }
                Outcome::Retry(reason) if attempts >= settings.max_attempts => {
                    let detail = format!("gave up after {} attempts: {reason}", attempts);
                    let n = diesel::update(queued)
                        .set((
                            invitations::status.eq(InvitationStatus::Failed),
                            invitations::attempts.eq(attempts),
                            invitations::last_error.eq(&detail),
                        ))
                        .execute(conn)?;
                    if n == 1 {
                        count(Metric::Failed);
                        tracing::warn!(invitation = row.id, detail, "invitation failed");
                        events.push((row, EventKind::Failed, Some(detail)));
                        db::after_commit(|| METRICS.emails_failed.inc());
                    }
                    finish();
                }
                Outcome::Retry(reason) => {
                    let delay = outbox::backoff(attempts, settings.retry_base, settings.retry_max);
                    let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(1));
                    diesel::update(invitations::table.find(&row.id))
                        .set((invitations::attempts.eq(attempts), invitations::last_error.eq(reason)))
                        .execute(conn)?;
                    put_back(conn, share.owner, delivery, row, &held, at, PutBack::Retry(reason))?;
                    db::after_commit(|| METRICS.emails_retried.inc());
                    tracing::info!(
                        invitation = row.id,
                        attempt = attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        reason,
                        "invitation will be retried"
                    );
                }
            }
        }
        let at = campaigns::lifecycle::paused_until();
        for id in share.put_off {
            outbox::defer(conn, share.owner, id, at)?;
        }
        finished_by_owner.entry(share.owner).or_default().append(&mut finished);
    }
    let events: Vec<funnel::Event<'_>> = events
        .iter()
        .map(|(row, kind, detail)| invitation_event(row, *kind, now, detail.as_deref()))
        .collect();
    funnel::record_events(conn, &events)?;
    for (owner, finished) in finished_by_owner {
        outbox::finish(conn, owner, &finished)?;
    }
    // Last: the counter rows are shared with other processes' recorders; they wait only for
    // this commit, not for the writes above.
    tally.flush(conn)?;
    Ok(())
}

/// Why an invitation goes back to the outbox.
enum PutBack<'a> {
    /// Not tried (the SMTP circuit is open): the attempt does not count.
    Deferred,
    /// Tried and failed for now.
    Retry(&'a str),
}

/// Puts an invitation back to be tried at `at`. Its own job is rescheduled; one from a batch
/// this worker still holds (`held`) gets an `invitation_email` job of its own, with the attempts
/// made so far; one from a batch whose lease was lost stays with the batch's new holder.
fn put_back(
    conn: &mut DbConn,
    owner: &str,
    delivery: &Delivery,
    row: &PendingInvitation,
    held: &HashSet<&str>,
    at: chrono::NaiveDateTime,
    why: PutBack<'_>,
) -> Result<(), DbError> {
    match (&delivery.origin, why) {
        (Origin::Own(job), PutBack::Deferred) => outbox::defer(conn, owner, &job.id, at),
        (Origin::Own(job), PutBack::Retry(reason)) => outbox::retry_later(conn, owner, &job.id, at, reason),
        (Origin::Batch { job_id, attempts }, why) if held.contains(job_id.as_str()) => {
            let (attempts, error) = match why {
                PutBack::Deferred => (attempts - 1, None),
                PutBack::Retry(reason) => (*attempts, Some(reason)),
            };
            outbox::enqueue_again(
                conn,
                &outbox::Again {
                    workspace_id: &row.workspace_id,
                    kind: INVITATION_EMAIL_JOB,
                    ref_id: &row.id,
                    scope: Some(&row.campaign_id),
                    run_after: at,
                    attempts,
                    error,
                },
            )
        }
        (Origin::Batch { .. }, _) => Ok(()),
    }
}

/// Marks the successfully sent invitations of a batch with one UPDATE per attempt count
/// instead of one per row (a round trip each on PostgreSQL). Returns the ids it marked; the
/// others were already handled by a worker that took over a lost lease, and are only finished.
///
/// The UPDATE locks the rows itself; on PostgreSQL it re-checks `status` of a row another
/// transaction changed meanwhile, so only still-queued invitations are marked and returned.
/// (Two workers meet on the same rows only after a lost lease; a deadlock between them is
/// resolved by `write_tx_retrying`.)
fn record_sent_in_bulk<'a>(
    conn: &mut DbConn,
    results: impl Iterator<Item = &'a (Delivery, Outcome)>,
    now: chrono::NaiveDateTime,
) -> Result<HashSet<&'a str>, WorkerError> {
    let mut by_attempts: BTreeMap<i32, Vec<&'a str>> = Default::default();
    for (delivery, outcome) in results {
        if let (Some(row), Outcome::Sent { .. }) = (&delivery.row, outcome) {
            by_attempts
                .entry(delivery.attempts())
                .or_default()
                .push(row.id.as_str());
        }
    }
    let mut marked = HashSet::new();
    for (attempts, ids) in by_attempts {
        let update = diesel::update(
            invitations::table
                .filter(invitations::id.eq_any(&ids))
                .filter(invitations::status.eq(InvitationStatus::Queued)),
        )
        .set((
            invitations::status.eq(InvitationStatus::Sent),
            invitations::sent_at.eq(now),
            invitations::attempts.eq(attempts),
            invitations::last_error.eq(None::<String>),
        ))
        .returning(invitations::id);
        let updated: HashSet<String> = db::on_each_backend!(conn, |c| update.get_results(c))?
            .into_iter()
            .collect();
        marked.extend(ids.into_iter().filter(|id| updated.contains(*id)));
    }
    Ok(marked)
}

fn invitation_event<'a>(
    row: &'a PendingInvitation,
    kind: EventKind,
    at: chrono::NaiveDateTime,
    detail: Option<&'a str>,
) -> funnel::Event<'a> {
    funnel::Event {
        workspace_id: &row.workspace_id,
        campaign_id: &row.campaign_id,
        invitation_id: &row.id,
        kind,
        at: Some(at),
        human: None,
        ip: None,
        user_agent: None,
        detail,
    }
}
