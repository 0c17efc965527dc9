//! Outbox workers: claim a batch of due jobs, hand each job to the handler registered for its
//! kind, and go on whatever a batch does.
//!
//! The queue knows no channel. A module that queues work defines its [`JobKind`]s and a
//! [`JobHandler`] for them; `startup` registers every handler with a [`Worker`], in the order
//! they run each round. A handler finishes, retries (with [`super::backoff`]) or defers each
//! job it is given through the functions of [`super`]; a job of a kind no handler takes is
//! left alone for a newer version. A panic in a round is contained and its jobs are put back.
//!
//! Run inside `optbridge serve` (`OUTBOX_WORKERS` tasks, [`WorkerPool`]) or as `optbridge
//! worker`. Tests drive the same code step by step with [`dispatch_once`] and
//! [`dispatch_all_pending`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};

use super::breaker::BreakerConfig;
use super::{Job, JobKind};
use crate::db::{self, Db, DbError};
use crate::metrics::METRICS;

/// How the outbox workers run: `OUTBOX_*`, `SMTP_CONCURRENCY` and `CIRCUIT_BREAKER_*` (see
/// `config`).
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Worker tasks per process.
    pub workers: usize,
    /// Jobs claimed at once by one worker.
    pub batch: u32,
    /// Invitations per batch job (`INVITATION_BATCH`): a worker claims one alone, as a round.
    pub invitation_batch: u32,
    /// How long a claimed job stays leased before another worker may take it over.
    pub lease: Duration,
    /// Sleep between polls when the outbox is empty (an in-process enqueue wakes workers early).
    pub poll: Duration,
    /// Attempts before a transient failure becomes final.
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Sends in flight at once per worker (a handler's mail sessions or API requests).
    pub send_concurrency: usize,
    /// For the circuit breaker each sending handler keeps per provider.
    pub breaker: BreakerConfig,
}

/// What handlers use of the queue.
pub struct Queue {
    pub db: Db,
    pub settings: OutboxSettings,
    /// Wakes idle workers in this process when work was enqueued here.
    pub wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// Data a job refers to is missing or contradicts itself.
    #[error("{0}")]
    Inconsistent(String),
    /// Outcomes a handler recorded apart from its round could not be written.
    #[error("recording the end of a batch failed: {0}")]
    Unrecorded(String),
}

impl db::AsDbError for WorkerError {
    fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Self::Db(e) => Some(e),
            Self::Inconsistent(_) | Self::Unrecorded(_) => None,
        }
    }
}

impl From<diesel::result::Error> for WorkerError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Processes claimed jobs of the kinds it names.
pub trait JobHandler: Send + Sync {
    /// The kinds this handler takes; no two handlers of a [`Worker`] share one.
    fn kinds(&self) -> &[JobKind];

    /// Whether a job of these kinds can take minutes (a campaign's expansion, an import): a
    /// worker claims no next round while it runs, so other workers take that work meanwhile.
    fn long_running(&self) -> bool {
        false
    }

    /// Processes `jobs` (of its kinds, in the order they were due), leased to `owner`: finishes,
    /// retries or defers each. An error ends the round; jobs not yet recorded keep their lease
    /// until it expires.
    fn handle<'a>(&'a self, queue: &'a Queue, owner: &'a str, jobs: Vec<Job>)
    -> BoxFuture<'a, Result<(), WorkerError>>;

    /// A handler may leave the end of a round (a last transaction) to run while `owner`'s next
    /// round works; it waits for it here: when the outbox is idle, before `owner` stops, and
    /// where a caller needs every outcome recorded ([`dispatch_once`]).
    fn settle<'a>(&'a self, _owner: &'a str) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The queue and the registry of job handlers: what the worker tasks of a process share.
pub struct Worker {
    pub queue: Queue,
    /// Run in this order each round, each with the claimed jobs of its kinds.
    handlers: Vec<Box<dyn JobHandler>>,
}

impl Worker {
    pub fn new(queue: Queue, handlers: Vec<Box<dyn JobHandler>>) -> Self {
        let worker = Self { queue, handlers };
        let kinds = worker.kinds();
        debug_assert!(
            kinds.iter().enumerate().all(|(n, k)| !kinds[..n].contains(k)),
            "a job kind has two handlers: {kinds:?}"
        );
        worker
    }

    /// Every kind a handler is registered for, in registration order.
    pub fn kinds(&self) -> Vec<JobKind> {
        self.handlers.iter().flat_map(|h| h.kinds().iter().copied()).collect()
    }

    /// Waits for what every handler left running for `owner` (see [`JobHandler::settle`]).
    pub async fn settle(&self, owner: &str) -> Result<(), WorkerError> {
        let mut first_error = None;
        for handler in &self.handlers {
            if let Err(e) = handler.settle(owner).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The position of the handler for a stored job kind.
    fn handler_for(&self, kind: &str) -> Option<usize> {
        self.handlers
            .iter()
            .position(|h| h.kinds().iter().any(|k| k.as_str() == kind))
    }
}

/// A handle on the worker tasks of this process.
pub struct WorkerPool {
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WorkerPool {
    pub fn spawn(worker: Arc<Worker>) -> Self {
        let (shutdown, rx) = watch::channel(false);
        let tasks = (0..worker.queue.settings.workers)
            .map(|n| tokio::spawn(run(worker.clone(), worker_id(n), rx.clone())))
            .collect();
        Self { shutdown, tasks }
    }

    /// Stops claiming, lets in-flight batches finish and gives back any remaining lease.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn worker_id(n: usize) -> String {
    format!(
        "{}-{}-{}",
        std::process::id(),
        n,
        crate::crypto::hex(&crate::crypto::random_bytes::<4>())
    )
}

async fn run(worker: Arc<Worker>, owner: String, mut shutdown: watch::Receiver<bool>) {
    tracing::debug!(owner, "outbox worker started");
    let queue = &worker.queue;
    let mut ahead: Option<Ahead> = None;
    while !*shutdown.borrow() {
        // A panic in a batch (a bug) must not end the worker: the process would go on serving
        // with fewer workers, or none, and nothing would say so.
        let outcome = match crate::telemetry::catch_panic(dispatch_round(&worker, &owner, Some(&mut ahead))).await {
            Ok(outcome) => outcome,
            Err(panic) => {
                // What an earlier round left running ends first: its batch is among the jobs
                // put back, and must not be taken over before its outcomes are recorded.
                if let Err(e) = worker.settle(&owner).await {
                    tracing::error!(owner, error = %e, "outbox worker: the end of a batch failed; its jobs' leases expire on their own");
                }
                // The next round's jobs were not in the round that panicked: they stay claimed.
                let next = match ahead.take() {
                    Some(claim) => claim.jobs().await.unwrap_or_default(),
                    None => Vec::new(),
                };
                let keep: Vec<String> = next.iter().map(|job| job.id.clone()).collect();
                recover_from_panic(&worker.queue, &owner, &panic, keep).await;
                ahead = Some(Ahead::Claimed(next));
                continue;
            }
        };
        match outcome {
            Ok(0) => {
                if let Err(e) = worker.settle(&owner).await {
                    tracing::error!(owner, error = %e, "outbox worker: the end of a batch failed; its jobs' leases expire on their own");
                }
                tokio::select! {
                    _ = tokio::time::sleep(queue.settings.poll) => {}
                    _ = queue.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(owner, error = %e, "outbox worker: batch failed; retrying after a pause");
                tokio::time::sleep(queue.settings.poll).await;
            }
        }
    }
    // A claim still under way ends before the leases are given back, so none stays behind.
    if let Some(claim) = ahead.take() {
        let _ = claim.jobs().await;
    }
    if let Err(e) = worker.settle(&owner).await {
        tracing::error!(owner, error = %e, "outbox worker: the end of a batch failed; its jobs' leases expire on their own");
    }
    let db = queue.db.clone();
    let o = owner.clone();
    match db.run(move |conn| super::release_all(conn, &o)).await {
        Ok(n) if n > 0 => tracing::info!(owner, released = n, "outbox worker released its leases"),
        Ok(_) => {}
        Err(e) => tracing::warn!(owner, error = %e, "outbox worker could not release leases; they expire on their own"),
    }
}

/// After a batch panicked: counts and logs it, and puts its unfinished jobs back for a later
/// attempt (see `outbox::release_after_panic`); `keep` are jobs claimed for the next round.
async fn recover_from_panic(queue: &Queue, owner: &str, panic: &str, keep: Vec<String>) {
    METRICS.worker_panics.inc();
    tracing::error!(
        owner,
        panic,
        "outbox worker: a batch panicked; its jobs are put back for a later attempt"
    );
    let (o, p) = (owner.to_owned(), panic.to_owned());
    let (base, max) = (queue.settings.retry_base, queue.settings.retry_max);
    match queue
        .db
        .run(move |conn| super::release_after_panic(conn, &o, &p, &keep, base, max))
        .await
    {
        Ok(n) => tracing::info!(owner, released = n, "outbox worker released the panicked batch"),
        Err(e) => {
            tracing::warn!(owner, error = %e, "could not release the panicked batch; its leases expire on their own")
        }
    }
    tokio::time::sleep(queue.settings.poll).await;
}

/// Claims and processes one batch, with every outcome recorded when it returns. Returns how
/// many jobs it claimed.
pub async fn dispatch_once(worker: &Worker, owner: &str) -> Result<usize, WorkerError> {
    let claimed = dispatch_round(worker, owner, None).await;
    let settled = worker.settle(owner).await;
    let claimed = claimed?;
    settled?;
    Ok(claimed)
}

/// The next round's jobs, claimed while the round before it works ([`dispatch_round`]).
enum Ahead {
    Claiming {
        task: tokio::task::JoinHandle<Result<Vec<Job>, DbError>>,
        at: std::time::Instant,
    },
    Claimed(Vec<Job>),
}

impl Ahead {
    fn start(queue: &Queue, owner: &str) -> Self {
        Self::Claiming {
            task: tokio::spawn(claiming(queue, owner)),
            at: std::time::Instant::now(),
        }
    }

    async fn jobs(self) -> Result<Vec<Job>, WorkerError> {
        match self {
            Self::Claiming { task, .. } => task
                .await
                .map_err(|e| WorkerError::Inconsistent(format!("claiming the next round: {e}")))?
                .map_err(WorkerError::from),
            Self::Claimed(jobs) => Ok(jobs),
        }
    }

    /// The jobs, still leased to `owner` for a whole lease. A round that took longer than half
    /// a lease (a slow relay) renews them first, and drops any that expired and went to another
    /// worker meanwhile: sending them too would repeat them.
    async fn take(self, queue: &Queue, owner: &str) -> Result<Vec<Job>, WorkerError> {
        let claimed_at = match &self {
            Self::Claiming { at, .. } => Some(*at),
            Self::Claimed(_) => None,
        };
        let mut jobs = self.jobs().await?;
        let lease = queue.settings.lease;
        if !jobs.is_empty() && claimed_at.is_none_or(|at| at.elapsed() > lease / 2) {
            let (o, ids) = (owner.to_owned(), jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>());
            let kept = queue
                .db
                .run(move |conn| super::extend_leases(conn, &o, &ids, lease))
                .await?;
            jobs.retain(|job| kept.contains(&job.id));
        }
        Ok(jobs)
    }
}

/// A claim of `owner`'s next jobs (`OUTBOX_BATCH`, or one invitation batch alone).
fn claiming(queue: &Queue, owner: &str) -> impl Future<Output = Result<Vec<Job>, DbError>> + Send + 'static {
    let (db, o) = (queue.db.clone(), owner.to_owned());
    let (batch, lease) = (i64::from(queue.settings.batch), queue.settings.lease);
    async move { db.run(move |conn| super::claim(conn, &o, batch, lease)).await }
}

/// Claims and processes one batch; a handler may leave the end of it running into the next
/// round (see [`JobHandler::settle`]). Returns how many jobs it claimed.
///
/// With `ahead` (the worker tasks), the next round's jobs are claimed as this round starts, so
/// its sends go on the moment this round's are done instead of after a claim: a write
/// transaction that waited 1 – 20 ms per round of 500 invitations (PostgreSQL's commit; SQLite's
/// write lock while a campaign's expansion holds it), while the round's lanes stood idle
/// (BENCHMARKS.md, "sixth session"). A claim ahead that found nothing is made again when its
/// turn comes, so work queued meanwhile is not missed; a round with a long-running job claims
/// nothing ahead ([`JobHandler::long_running`]).
async fn dispatch_round(
    worker: &Worker,
    owner: &str,
    mut ahead: Option<&mut Option<Ahead>>,
) -> Result<usize, WorkerError> {
    let queue = &worker.queue;
    let started = std::time::Instant::now();
    let claimed_ahead = match ahead.as_deref_mut().and_then(Option::take) {
        Some(claim) => claim.take(queue, owner).await?,
        None => Vec::new(),
    };
    let jobs = if claimed_ahead.is_empty() {
        claiming(queue, owner).await?
    } else {
        claimed_ahead
    };
    let claim_ms = started.elapsed().as_secs_f64() * 1000.0;
    let claimed = jobs.len();
    let mut by_handler: Vec<Vec<Job>> = worker.handlers.iter().map(|_| Vec::new()).collect();
    for job in jobs {
        match worker.handler_for(&job.kind) {
            Some(n) => by_handler[n].push(job),
            None => {
                tracing::error!(
                    kind = job.kind,
                    id = job.id,
                    "unknown outbox job kind; leaving it for a newer version"
                );
            }
        }
    }
    let long = worker
        .handlers
        .iter()
        .zip(&by_handler)
        .any(|(handler, jobs)| !jobs.is_empty() && handler.long_running());
    if let Some(slot) = ahead
        && claimed > 0
        && !long
    {
        *slot = Some(Ahead::start(queue, owner));
    }
    for (handler, jobs) in worker.handlers.iter().zip(by_handler) {
        if !jobs.is_empty() {
            handler.handle(queue, owner, jobs).await?;
        }
    }
    if claimed > 0 {
        tracing::debug!(
            owner,
            claimed,
            claim_ms,
            total_ms = started.elapsed().as_secs_f64() * 1000.0,
            "outbox batch done"
        );
    }
    Ok(claimed)
}

/// Runs the outbox until nothing is due (tests and `optbridge worker --drain`).
pub async fn dispatch_all_pending(worker: &Worker) -> Result<(), WorkerError> {
    let owner = worker_id(0);
    let drained = async {
        while dispatch_round(worker, &owner, None).await? > 0 {}
        Ok(())
    }
    .await;
    let settled = worker.settle(&owner).await;
    drained.and(settled)
}
