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
    /// Jobs claimed at once by one worker, and items per batch job.
    pub batch: u32,
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
}

impl db::AsDbError for WorkerError {
    fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Self::Db(e) => Some(e),
            Self::Inconsistent(_) => None,
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

    /// Processes `jobs` (of its kinds, in the order they were due), leased to `owner`: finishes,
    /// retries or defers each. An error ends the round; jobs not yet recorded keep their lease
    /// until it expires.
    fn handle<'a>(&'a self, queue: &'a Queue, owner: &'a str, jobs: Vec<Job>)
    -> BoxFuture<'a, Result<(), WorkerError>>;
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
    while !*shutdown.borrow() {
        // A panic in a batch (a bug) must not end the worker: the process would go on serving
        // with fewer workers, or none, and nothing would say so.
        let outcome = match crate::telemetry::catch_panic(dispatch_once(&worker, &owner)).await {
            Ok(outcome) => outcome,
            Err(panic) => {
                recover_from_panic(&worker.queue, &owner, &panic).await;
                continue;
            }
        };
        match outcome {
            Ok(0) => {
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
    let db = queue.db.clone();
    let o = owner.clone();
    match db.run(move |conn| super::release_all(conn, &o)).await {
        Ok(n) if n > 0 => tracing::info!(owner, released = n, "outbox worker released its leases"),
        Ok(_) => {}
        Err(e) => tracing::warn!(owner, error = %e, "outbox worker could not release leases; they expire on their own"),
    }
}

/// After a batch panicked: counts and logs it, and puts its unfinished jobs back for a later
/// attempt (see `outbox::release_after_panic`).
async fn recover_from_panic(queue: &Queue, owner: &str, panic: &str) {
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
        .run(move |conn| super::release_after_panic(conn, &o, &p, base, max))
        .await
    {
        Ok(n) => tracing::info!(owner, released = n, "outbox worker released the panicked batch"),
        Err(e) => {
            tracing::warn!(owner, error = %e, "could not release the panicked batch; its leases expire on their own")
        }
    }
    tokio::time::sleep(queue.settings.poll).await;
}

/// Claims and processes one batch. Returns how many jobs it claimed.
pub async fn dispatch_once(worker: &Worker, owner: &str) -> Result<usize, WorkerError> {
    let queue = &worker.queue;
    let o = owner.to_owned();
    let (batch, lease) = (i64::from(queue.settings.batch), queue.settings.lease);
    let started = std::time::Instant::now();
    let jobs = queue.db.run(move |conn| super::claim(conn, &o, batch, lease)).await?;
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
    while dispatch_once(worker, &owner).await? > 0 {}
    Ok(())
}
