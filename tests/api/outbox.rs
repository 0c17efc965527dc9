//! The outbox as a generic queue: a worker hands each claimed job to the handler registered for
//! its kind, handlers in the order they were registered, and leaves a kind nobody handles alone.

use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use optbridge::db::schema::outbox_jobs;
use optbridge::outbox::worker::{JobHandler, Queue, Worker, WorkerError, dispatch_once};
use optbridge::outbox::{self, Job, JobKind};

use crate::helpers::{Backend, both_backends, spawn_app};

const FIRST: JobKind = JobKind::new("test_first");
const SECOND: JobKind = JobKind::new("test_second");
const SECOND_TOO: JobKind = JobKind::new("test_second_too");

/// Notes the jobs it is given (by `ref_id`) and finishes them.
struct Recorder {
    kinds: &'static [JobKind],
    seen: Arc<Mutex<Vec<String>>>,
}

impl JobHandler for Recorder {
    fn kinds(&self) -> &[JobKind] {
        self.kinds
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().extend(jobs.iter().map(|j| j.ref_id.clone()));
            let (owner, ids) = (owner.to_owned(), jobs.into_iter().map(|j| j.id).collect::<Vec<_>>());
            queue.db.run(move |conn| outbox::finish(conn, &owner, &ids)).await?;
            Ok(())
        })
    }
}

async fn handlers_run_in_registration_order_and_unknown_kinds_stay(backend: Backend) {
    let app = spawn_app(backend).await;
    app.with_db(|c| {
        let t0 = optbridge::db::now() - chrono::Duration::seconds(10);
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        outbox::enqueue(c, None, SECOND, "second-1", at(0)).unwrap();
        outbox::enqueue(c, None, JobKind::new("from_a_newer_version"), "unknown-1", at(1)).unwrap();
        outbox::enqueue(c, None, FIRST, "first-1", at(2)).unwrap();
        outbox::enqueue(c, None, SECOND_TOO, "second-too-1", at(3)).unwrap();
    })
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = |kinds| -> Box<dyn JobHandler> {
        Box::new(Recorder {
            kinds,
            seen: seen.clone(),
        })
    };
    let queue = Queue {
        db: app.db.clone(),
        settings: app.settings.outbox.clone(),
        wake: Default::default(),
    };
    let worker = Worker::new(queue, vec![recorder(&[FIRST]), recorder(&[SECOND, SECOND_TOO])]);
    assert_eq!(worker.kinds(), [FIRST, SECOND, SECOND_TOO]);

    assert_eq!(
        dispatch_once(&worker, "worker-a").await.unwrap(),
        4,
        "every due job is claimed"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["first-1", "second-1", "second-too-1"],
        "the first handler's jobs first; each handler's jobs in the order they were due"
    );
    let left: Vec<(String, Option<String>)> = app
        .with_db(|c| {
            outbox_jobs::table
                .select((outbox_jobs::ref_id, outbox_jobs::lease_owner))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(
        left,
        [("unknown-1".to_owned(), Some("worker-a".to_owned()))],
        "a kind no handler takes is left to its lease, for a newer version"
    );
}

/// Holds the first job it is given until told to go on; finishes every job.
struct Holder {
    long: bool,
    seen: Arc<Mutex<Vec<String>>>,
    started: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

impl JobHandler for Holder {
    fn kinds(&self) -> &[JobKind] {
        &[FIRST]
    }

    fn long_running(&self) -> bool {
        self.long
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            let first = {
                let mut seen = self.seen.lock().unwrap();
                seen.extend(jobs.iter().map(|j| j.ref_id.clone()));
                seen.len() == jobs.len()
            };
            if first {
                self.started.notify_one();
                self.go.notified().await;
            }
            let (owner, ids) = (owner.to_owned(), jobs.into_iter().map(|j| j.id).collect::<Vec<_>>());
            queue.db.run(move |conn| outbox::finish(conn, &owner, &ids)).await?;
            Ok(())
        })
    }
}

/// A worker task claims its next round while the current one works, and a worker that stops
/// gives that claim back unspent: not sent, its attempt not counted, due at once for another.
async fn the_next_round_is_claimed_ahead_and_given_back_on_stop(backend: Backend) {
    claim_ahead(backend, false).await;
}

/// A round with a long-running job (an expansion, an import) claims nothing ahead: other workers
/// take the next jobs meanwhile.
async fn a_long_round_claims_nothing_ahead(backend: Backend) {
    claim_ahead(backend, true).await;
}

async fn claim_ahead(backend: Backend, long: bool) {
    let app = spawn_app(backend).await;
    app.with_db(|c| {
        let t0 = optbridge::db::now() - chrono::Duration::seconds(10);
        outbox::enqueue(c, None, FIRST, "round-1", t0).unwrap();
        outbox::enqueue(c, None, FIRST, "round-2", t0 + chrono::Duration::seconds(1)).unwrap();
    })
    .await;
    let mut settings = app.settings.outbox.clone();
    settings.workers = 1;
    settings.batch = 1;
    let (started, go) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let holder = Holder {
        long,
        seen: seen.clone(),
        started: started.clone(),
        go: go.clone(),
    };
    let queue = Queue {
        db: app.db.clone(),
        settings,
        wake: Default::default(),
    };
    let pool = optbridge::outbox::worker::WorkerPool::spawn(Arc::new(Worker::new(queue, vec![Box::new(holder)])));
    tokio::time::timeout(std::time::Duration::from_secs(10), started.notified())
        .await
        .expect("the first round starts");

    let lease_of_round_2 = || {
        app.with_db(|c| {
            outbox_jobs::table
                .filter(outbox_jobs::ref_id.eq("round-2"))
                .select((outbox_jobs::lease_owner, outbox_jobs::attempts))
                .first::<(Option<String>, i32)>(c)
                .unwrap()
        })
    };
    if long {
        // Time for a claim ahead, were one made.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(lease_of_round_2().await, (None, 0), "not claimed while round 1 works");
    } else {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (owner, attempts) = lease_of_round_2().await;
            if owner.is_some() {
                assert_eq!(attempts, 1);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round 2 is claimed while round 1 works"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    let stopping = tokio::spawn(pool.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    go.notify_one();
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("the worker stops")
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["round-1"], "round 2 was not worked on");
    assert_eq!(
        lease_of_round_2().await,
        (None, 0),
        "given back, the attempt not counted"
    );
    let left: i64 = app.with_db(|c| outbox_jobs::table.count().get_result(c).unwrap()).await;
    assert_eq!(left, 1, "round 1 finished, round 2 waiting");
}

both_backends!(
    handlers_run_in_registration_order_and_unknown_kinds_stay,
    the_next_round_is_claimed_ahead_and_given_back_on_stop,
    a_long_round_claims_nothing_ahead
);
