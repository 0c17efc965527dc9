//! The durable outbox: a generic job queue for work that must happen after a commit, never
//! inline in a request.
//!
//! A request writes its outbox row in the same transaction as the state change. Workers claim
//! rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's `BEGIN IMMEDIATE`
//! serializes claimers), do the work, and delete the row, or reschedule it with backoff. A
//! worker that dies leaves its lease to expire; another worker then takes the row again, so a
//! crash loses nothing and repeats at most the rows that were leased at the time.
//!
//! The queue knows no channel and no business rule: a job is a [`JobKind`] and a reference, and
//! may name a scope, what it belongs to, so that a group of jobs can be asked about or woken at
//! once ([`pending_in_scope`], [`run_now_in_scope`]; an invitation job's scope is its campaign).
//! The modules that queue work define their kinds and register a handler for them with the
//! workers ([`worker::JobHandler`]); [`breaker`] is a tool for handlers that call a provider.

pub mod breaker;
pub mod worker;

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::outbox_jobs;
use crate::db::{self, DbConn, DbError};

/// What a job is for, as stored in `outbox_jobs.kind`. The outbox knows no kinds: each module
/// that queues work defines its kinds as constants and registers a [`worker::JobHandler`] for
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobKind(&'static str);

impl JobKind {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// A leased job.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox_jobs)]
pub struct Job {
    pub id: String,
    pub workspace_id: Option<String>,
    pub kind: String,
    pub ref_id: String,
    pub cursor: Option<String>,
    /// Including the current one.
    pub attempts: i32,
    pub last_error: Option<String>,
    pub payload: Option<String>,
}

impl Job {
    /// The items of a batch job (see [`enqueue_batches`]); none for a job of one item.
    pub fn batch_ids(&self) -> impl Iterator<Item = &str> {
        self.payload
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|id| !id.is_empty())
    }
}

#[derive(Insertable)]
#[diesel(table_name = outbox_jobs, treat_none_as_default_value = false)]
struct NewJob<'a> {
    id: String,
    workspace_id: Option<&'a str>,
    kind: &'static str,
    ref_id: &'a str,
    cursor: Option<&'a str>,
    attempts: i32,
    run_after: NaiveDateTime,
    lease_owner: Option<&'a str>,
    lease_expires_at: Option<NaiveDateTime>,
    last_error: Option<&'a str>,
    created_at: NaiveDateTime,
    payload: Option<String>,
    scope: Option<&'a str>,
}

fn new_job<'a>(workspace_id: Option<&'a str>, kind: JobKind, ref_id: &'a str, run_after: NaiveDateTime) -> NewJob<'a> {
    NewJob {
        id: db::new_id(),
        workspace_id,
        kind: kind.as_str(),
        ref_id,
        cursor: None,
        attempts: 0,
        run_after,
        lease_owner: None,
        lease_expires_at: None,
        last_error: None,
        created_at: db::now(),
        payload: None,
        scope: None,
    }
}

/// Enqueues one job unless the same `(kind, ref_id)` is already queued. Call inside the
/// transaction that makes the job necessary.
pub fn enqueue(
    conn: &mut DbConn,
    workspace_id: Option<&str>,
    kind: JobKind,
    ref_id: &str,
    run_after: NaiveDateTime,
) -> Result<(), DbError> {
    let exists: i64 = outbox_jobs::table
        .filter(outbox_jobs::kind.eq(kind.as_str()))
        .filter(outbox_jobs::ref_id.eq(ref_id))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(outbox_jobs::table)
            .values(new_job(workspace_id, kind, ref_id, run_after))
            .execute(conn)?;
    }
    Ok(())
}

/// Queues items, `batch` to a job of `kind` (`payload` = their refs, comma-separated; `ref_id` =
/// the first): one job per batch instead of one per item, so the outbox costs a few writes per
/// batch rather than three per item. A batch job is claimed whole and alone (see [`claim`]).
/// The items must not be queued yet. `scope` is what they belong to (see [`pending_in_scope`]).
pub fn enqueue_batches(
    conn: &mut DbConn,
    workspace_id: &str,
    kind: JobKind,
    scope: &str,
    refs: &[String],
    batch: usize,
    run_after: NaiveDateTime,
) -> Result<(), DbError> {
    let rows: Vec<NewJob<'_>> = refs
        .chunks(batch.max(1))
        .map(|ids| NewJob {
            payload: Some(ids.join(",")),
            scope: Some(scope),
            ..new_job(Some(workspace_id), kind, &ids[0], run_after)
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    db::on_each_backend!(conn, |c| diesel::insert_into(outbox_jobs::table)
        .values(&rows)
        .execute(c))?;
    Ok(())
}

/// A single job that already has a history, for [`enqueue_again`].
pub struct Again<'a> {
    pub workspace_id: &'a str,
    pub kind: JobKind,
    pub ref_id: &'a str,
    /// What it belongs to (see [`pending_in_scope`]).
    pub scope: Option<&'a str>,
    pub run_after: NaiveDateTime,
    /// Made so far.
    pub attempts: i32,
    pub error: Option<&'a str>,
}

/// Queues a single job that already has a history: one taken out of a batch to be tried again
/// at `run_after`, with the attempts made so far and the last error. Nothing happens when the
/// same `(kind, ref_id)` is queued already.
pub fn enqueue_again(conn: &mut DbConn, again: &Again<'_>) -> Result<(), DbError> {
    let error = again.error.map(|e| truncate(e, 1000));
    let row = NewJob {
        attempts: again.attempts,
        last_error: error.as_deref(),
        scope: again.scope,
        ..new_job(Some(again.workspace_id), again.kind, again.ref_id, again.run_after)
    };
    db::on_each_backend!(conn, |c| diesel::insert_into(outbox_jobs::table)
        .values(&row)
        .on_conflict((outbox_jobs::kind, outbox_jobs::ref_id))
        .do_nothing()
        .execute(c))?;
    Ok(())
}

/// Leases up to `limit` ready jobs (due, and not leased or with an expired lease) to `owner`,
/// in `run_after` order; a batch job (one with a payload, see [`enqueue_batches`]) counts as a
/// whole claim, so it is leased alone (when it comes first) or left for the next claim: a claim
/// still holds at most a batch's worth of work.
///
/// A leased job's `run_after` moves to its lease expiry. The scan for ready jobs, in `run_after`
/// order, then meets claimable rows only, instead of stepping over every row other workers hold;
/// and a job whose lease expires (its worker died) is due again by itself.
pub fn claim(conn: &mut DbConn, owner: &str, limit: i64, lease: Duration) -> Result<Vec<Job>, DbError> {
    let now = db::now();
    let expires = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    db::write_tx(conn, |conn| {
        let ready = outbox_jobs::table
            .filter(outbox_jobs::run_after.le(now))
            .filter(
                outbox_jobs::lease_expires_at
                    .is_null()
                    .or(outbox_jobs::lease_expires_at.lt(now)),
            )
            .order(outbox_jobs::run_after.asc())
            .select((outbox_jobs::id, outbox_jobs::payload.is_not_null()));
        let candidates: Vec<(String, bool)> = match conn {
            // Several app instances claim at once: skip rows another transaction holds. The first
            // due job comes first, alone: a batch is taken alone, and locking `limit` rows to take
            // one wrote a lock into each (62,000 per 100,000 invitations sent in rounds of 200,
            // BENCHMARKS.md "seventh session"). The second query returns that row again: a lock
            // of this transaction's own is not skipped.
            DbConn::Pg(c) => match ready.limit(1).for_update().skip_locked().load(c)?.pop() {
                Some(batch @ (_, true)) => vec![batch],
                Some(_) => ready.limit(limit).for_update().skip_locked().load(c)?,
                None => Vec::new(),
            },
            DbConn::Sqlite(c) => ready.limit(limit).load(c)?,
        };
        let ids: Vec<String> = match candidates.first() {
            None => return Ok(Vec::new()),
            Some((id, true)) => vec![id.clone()],
            Some(_) => candidates
                .into_iter()
                .take_while(|(_, is_batch)| !is_batch)
                .map(|(id, _)| id)
                .collect(),
        };
        let leased = diesel::update(outbox_jobs::table.filter(outbox_jobs::id.eq_any(&ids))).set((
            outbox_jobs::lease_owner.eq(owner),
            outbox_jobs::lease_expires_at.eq(expires),
            outbox_jobs::run_after.eq(expires),
            outbox_jobs::attempts.eq(outbox_jobs::attempts + 1),
        ));
        // RETURNING saves reading the rows back (SQLite ≥ 3.35 and PostgreSQL).
        let mut jobs: Vec<Job> = db::on_each_backend!(conn, |c| leased.returning(Job::as_returning()).get_results(c))?;
        // In the order they were due (RETURNING promises none).
        let position: std::collections::HashMap<&str, usize> =
            ids.iter().enumerate().map(|(n, id)| (id.as_str(), n)).collect();
        jobs.sort_by_key(|j| position.get(j.id.as_str()).copied().unwrap_or(usize::MAX));
        Ok(jobs)
    })
}

/// Whether `owner` still holds the lease of a job. On PostgreSQL the row stays locked until the
/// transaction ends, so nobody takes the job over in between.
pub fn holds(conn: &mut DbConn, owner: &str, job_id: &str) -> Result<bool, DbError> {
    let query = outbox_jobs::table
        .filter(outbox_jobs::id.eq(job_id))
        .filter(outbox_jobs::lease_owner.eq(owner))
        .select(outbox_jobs::id);
    let found: Vec<String> = match conn {
        // SQLite has no row locks: its write transaction (BEGIN IMMEDIATE) excludes every writer.
        DbConn::Pg(c) => query.for_update().load(c)?,
        DbConn::Sqlite(c) => query.load(c)?,
    };
    Ok(!found.is_empty())
}

/// Removes finished jobs this owner still holds. Returns how many were removed; fewer than
/// asked means a lease was lost to another worker (which then repeats that work).
pub fn finish(conn: &mut DbConn, owner: &str, job_ids: &[String]) -> Result<usize, DbError> {
    if job_ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq_any(job_ids))
            .filter(outbox_jobs::lease_owner.eq(owner)),
    )
    .execute(conn)?)
}

/// Puts a job back for a later attempt.
pub fn retry_later(
    conn: &mut DbConn,
    owner: &str,
    job_id: &str,
    run_after: NaiveDateTime,
    error: &str,
) -> Result<(), DbError> {
    diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq(job_id))
            .filter(outbox_jobs::lease_owner.eq(owner)),
    )
    .set((
        outbox_jobs::run_after.eq(run_after),
        outbox_jobs::lease_owner.eq(None::<String>),
        outbox_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
        outbox_jobs::last_error.eq(truncate(error, 1000)),
    ))
    .execute(conn)?;
    Ok(())
}

/// Whether any job of `kinds` belongs to `scope` (queued, held or waiting to be retried): for
/// invitations, whether anything of a campaign is still to be sent.
pub fn pending_in_scope(conn: &mut DbConn, kinds: &[JobKind], scope: &str) -> Result<bool, DbError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let found: Option<String> = outbox_jobs::table
        .filter(outbox_jobs::scope.eq(scope))
        .filter(outbox_jobs::kind.eq_any(&kinds))
        .select(outbox_jobs::id)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

/// Makes the jobs of `kinds` belonging to `scope` that no worker holds due now (a paused
/// campaign resumed or cancelled). Returns how many.
pub fn run_now_in_scope(conn: &mut DbConn, kinds: &[JobKind], scope: &str) -> Result<usize, DbError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let now = db::now();
    Ok(diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::scope.eq(scope))
            .filter(outbox_jobs::kind.eq_any(&kinds))
            .filter(outbox_jobs::lease_owner.is_null())
            .filter(outbox_jobs::run_after.gt(now)),
    )
    .set(outbox_jobs::run_after.eq(now))
    .execute(conn)?)
}

/// Makes the jobs of `kinds` for `refs` that no worker holds due now (held work released, e.g.
/// a cancelled campaign's scheduled expansion). Returns how many.
pub fn run_now(conn: &mut DbConn, kinds: &[JobKind], refs: &[String]) -> Result<usize, DbError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let now = db::now();
    let mut n = 0;
    for chunk in refs.chunks(500) {
        n += diesel::update(
            outbox_jobs::table
                .filter(outbox_jobs::kind.eq_any(&kinds))
                .filter(outbox_jobs::ref_id.eq_any(chunk))
                .filter(outbox_jobs::lease_owner.is_null())
                .filter(outbox_jobs::run_after.gt(now)),
        )
        .set(outbox_jobs::run_after.eq(now))
        .execute(conn)?;
    }
    Ok(n)
}

/// Extends the leases `owner` still holds on `job_ids` by `lease` from now: a round that runs
/// longer than half its lease (a slow relay) keeps its jobs, so no other worker sends them too.
/// Returns the jobs extended (those another worker took over are not).
pub fn extend_leases(
    conn: &mut DbConn,
    owner: &str,
    job_ids: &[String],
    lease: Duration,
) -> Result<Vec<String>, DbError> {
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let expires = db::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    let extended = diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq_any(job_ids))
            .filter(outbox_jobs::lease_owner.eq(owner)),
    )
    .set((
        outbox_jobs::lease_expires_at.eq(expires),
        outbox_jobs::run_after.eq(expires),
    ))
    .returning(outbox_jobs::id);
    Ok(db::on_each_backend!(conn, |c| extended.get_results(c))?)
}

/// Puts a job back for later without counting the attempt (it was not tried: quiet hours).
pub fn defer(conn: &mut DbConn, owner: &str, job_id: &str, run_after: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq(job_id))
            .filter(outbox_jobs::lease_owner.eq(owner)),
    )
    .set((
        outbox_jobs::run_after.eq(run_after),
        outbox_jobs::lease_owner.eq(None::<String>),
        outbox_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
        outbox_jobs::attempts.eq(outbox_jobs::attempts - 1),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records progress of a long job and extends its lease; progress also resets its attempts.
pub fn checkpoint(
    conn: &mut DbConn,
    owner: &str,
    job_id: &str,
    cursor: &str,
    lease: Duration,
) -> Result<bool, DbError> {
    let expires = db::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    let n = diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq(job_id))
            .filter(outbox_jobs::lease_owner.eq(owner)),
    )
    .set((
        outbox_jobs::cursor.eq(cursor),
        outbox_jobs::lease_expires_at.eq(expires),
        outbox_jobs::run_after.eq(expires),
        outbox_jobs::attempts.eq(1),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives back every lease of `owner` (graceful shutdown), so other workers need not wait for
/// the leases to expire. The attempt is not counted.
pub fn release_all(conn: &mut DbConn, owner: &str) -> Result<usize, DbError> {
    Ok(
        diesel::update(outbox_jobs::table.filter(outbox_jobs::lease_owner.eq(owner)))
            .set((
                outbox_jobs::lease_owner.eq(None::<String>),
                outbox_jobs::lease_expires_at.eq(None::<NaiveDateTime>),
                // Due now again (claiming moved it to the lease expiry).
                outbox_jobs::run_after.eq(db::now()),
                outbox_jobs::attempts.eq(outbox_jobs::attempts - 1),
            ))
            .execute(conn)?,
    )
}

/// Puts back the jobs `owner` still holds after its batch panicked (a bug). The attempt counts:
/// each job runs again after the usual backoff for its attempt number, with the panic as its last
/// error, so a job that panics every time is retried ever more slowly instead of in a loop, and
/// the rest of its batch goes on. `keep` stay held: the worker claimed them for its next round.
/// Returns how many jobs were put back.
pub fn release_after_panic(
    conn: &mut DbConn,
    owner: &str,
    panic: &str,
    keep: &[String],
    base: Duration,
    max: Duration,
) -> Result<usize, DbError> {
    let held: Vec<(String, i32)> = outbox_jobs::table
        .filter(outbox_jobs::lease_owner.eq(owner))
        .filter(outbox_jobs::id.ne_all(keep))
        .select((outbox_jobs::id, outbox_jobs::attempts))
        .load(conn)?;
    let now = db::now();
    let error = format!("the worker panicked while processing this job's batch: {panic}");
    for (id, attempts) in &held {
        let after =
            now + chrono::Duration::from_std(backoff(*attempts, base, max)).unwrap_or(chrono::Duration::hours(1));
        retry_later(conn, owner, id, after, &error)?;
    }
    Ok(held.len())
}

/// Jobs waiting per kind (for /metrics and tests); every kind in `known` is listed, with 0 when
/// none wait, and so is any other kind found waiting.
pub fn depth(conn: &mut DbConn, known: &[JobKind]) -> Result<Vec<(String, i64)>, DbError> {
    let waiting: Vec<(String, i64)> = outbox_jobs::table
        .group_by(outbox_jobs::kind)
        .select((outbox_jobs::kind, diesel::dsl::count_star()))
        .load(conn)?;
    let mut all: Vec<(String, i64)> = known.iter().map(|k| (k.as_str().to_owned(), 0)).collect();
    for (kind, n) in waiting {
        match all.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 = n,
            None => all.push((kind, n)),
        }
    }
    Ok(all)
}

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped at `max`, then scaled by a
/// random factor in [0.5, 1.5) so that many failed sends do not retry in lockstep.
pub fn backoff(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1) as u32)
        .min(max);
    let r = u16::from_be_bytes(crate::crypto::random_bytes::<2>());
    let factor = 0.5 + f64::from(r) / f64::from(u16::MAX);
    exp.mul_f64(factor)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(600);
        for _ in 0..100 {
            let first = backoff(1, base, max);
            assert!(
                first >= Duration::from_secs(5) && first < Duration::from_secs(15),
                "{first:?}"
            );
            let fourth = backoff(4, base, max);
            assert!(
                fourth >= Duration::from_secs(40) && fourth < Duration::from_secs(120),
                "{fourth:?}"
            );
            let capped = backoff(30, base, max);
            assert!(capped < Duration::from_secs(900), "{capped:?}");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("æøå", 3), "æ…");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
