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

both_backends!(handlers_run_in_registration_order_and_unknown_kinds_stay);
