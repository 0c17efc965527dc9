//! Worker processes killed with SIGKILL at random points mid-send lose nothing, for the email
//! outbox (a real SMTP server) and the SMS outbox (the fake Twilio API); duplicates stay within
//! the leases the dead workers held.
//!
//! CI runs a reduced size; the full size of the reliability issue is
//! `CRASH_RECIPIENTS=10000 CRASH_WORKERS=8 cargo test --test api crash -- --nocapture`.
//!
//! `a_killed_serve_repeats_only_what_was_in_flight` is issue 18's scenario at full size: a `serve`
//! with the default outbox settings, SIGKILLed twice during a 2,000-recipient send to a relay that
//! takes 100 messages a second, repeats at most what was in flight (≤ 50 duplicates).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::fake_twilio::{FakeTwilio, TwilioFault};
use crate::helpers::{AUTH, Backend, FROM, SID, TestApp, both_backends, spawn_app, spawn_app_with};
use crate::smtp_sink::{Fault, SmtpSink};

const BATCH: usize = 10;
const KILLS: usize = 3;

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn recipients() -> usize {
    from_env("CRASH_RECIPIENTS", 600)
}

fn workers() -> usize {
    from_env("CRASH_WORKERS", 2)
}

/// Where killed workers send: the SMTP sink or the fake SMS API.
enum Provider<'a> {
    Smtp(&'a SmtpSink),
    Twilio(&'a FakeTwilio),
}

impl Provider<'_> {
    fn env(&self, command: &mut Command) {
        match self {
            Provider::Smtp(sink) => command.env("SMTP_URL", sink.url()).env_remove("SMS_PROVIDER"),
            Provider::Twilio(fake) => command
                .env_remove("SMTP_URL")
                .env("SMS_PROVIDER", "twilio")
                .env("TWILIO_ACCOUNT_SID", SID)
                .env("TWILIO_AUTH_TOKEN", AUTH)
                .env("TWILIO_FROM", FROM)
                .env("TWILIO_API_BASE", fake.base_url()),
        };
    }

    /// Messages accepted so far, per recipient.
    fn per_recipient(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        match self {
            Provider::Smtp(sink) => {
                for m in sink.messages() {
                    *counts.entry(m.rcpt_to[0].clone()).or_default() += 1;
                }
            }
            Provider::Twilio(fake) => {
                for m in fake.delivered() {
                    *counts.entry(m.to).or_default() += 1;
                }
            }
        }
        counts
    }

    fn accepted(&self) -> usize {
        self.per_recipient().values().sum()
    }
}

/// A worker process that is SIGKILLed when dropped (also when the test fails).
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(app: &TestApp, provider: &Provider<'_>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_optbridge"));
        command
            .arg("worker")
            .env("DATABASE_URL", &app.database.url)
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("OUTBOX_WORKERS", workers().to_string())
            .env("OUTBOX_BATCH", BATCH.to_string())
            .env("INVITATION_BATCH", BATCH.to_string())
            .env("OUTBOX_LEASE_SECS", "2")
            .env("OUTBOX_POLL_MS", "50")
            .env("SMTP_CONCURRENCY", "4")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        provider.env(&mut command);
        Self(command.spawn().expect("start optbridge worker"))
    }

    fn kill(mut self) {
        self.0.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix: no cleanup runs
        self.0.wait().expect("reap");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts workers, kills each at a random point of its share of the work, `KILLS` times; then
/// a draining worker finishes; checks every recipient got exactly what it should.
async fn kill_restart_and_check(app: &TestApp, provider: &Provider<'_>, backend: Backend, what: &str) {
    let n = recipients();
    for k in 1..=KILLS {
        let worker = WorkerProcess::spawn(app, provider);
        // A random point within the k-th quarter of the send.
        let span = (n / (KILLS + 1)).max(1);
        let random = u32::from_be_bytes(optbridge::crypto::random_bytes::<4>()) as usize;
        let target = (k - 1) * n / (KILLS + 1) + 1 + random % span;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while provider.accepted() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the workers made no progress"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.kill();
    }
    assert!(provider.accepted() < n, "{what}: the kills happened before the end");

    // Restart after the dead workers' leases expired: it finishes everything.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Async: the SMTP sink and fake API run on this test's runtime and must keep answering.
    let mut drain = tokio::process::Command::new(env!("CARGO_BIN_EXE_optbridge"));
    drain
        .args(["worker", "--drain"])
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", app.settings.base_url.as_str())
        .env("RUST_LOG", "warn");
    provider.env(drain.as_std_mut());
    assert!(drain.status().await.expect("run the drain").success());
    assert_eq!(app.outbox_len().await, 0, "{what}: the outbox ends empty");

    let per_recipient = provider.per_recipient();
    assert_eq!(per_recipient.len(), n, "{what}: every recipient got it");
    let duplicates: usize = per_recipient.values().map(|c| c - 1).sum();
    let bound = KILLS * workers() * BATCH;
    assert!(duplicates <= bound, "{what}: {duplicates} duplicates, bound {bound}");
    eprintln!(
        "crash test, {what} ({backend:?}): {n} delivered by {} workers, {duplicates} duplicates after {KILLS} kills \
         (bound {bound})",
        workers()
    );
}

async fn killed_email_workers_lose_nothing(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Crash").await;
    let mut csv = String::from("email,locale\n");
    for i in 0..recipients() {
        let address = format!("r{i:05}@example.dk");
        // Slow every tenth delivery a little so that kills land in the middle of batches.
        if i % 10 == 0 {
            sink.add_fault(
                &address,
                Fault::Stall {
                    duration: Duration::from_millis(60),
                    times: u32::MAX,
                },
            );
        }
        csv.push_str(&format!("{address},da\n"));
    }
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Crash", "consent_text_id": text, "subject": "S", "intro": "I"}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    kill_restart_and_check(&app, &Provider::Smtp(&sink), backend, "email").await;

    let sent = app.with_db(|c| invitations_with_status(c, "sent")).await;
    assert_eq!(sent, recipients() as i64);
}

async fn killed_sms_workers_lose_nothing(backend: Backend) {
    let fake = FakeTwilio::start(SID, AUTH).await;
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Crash").await;
    let ws_id = ws.id.clone();
    let n = recipients();
    let phones: Vec<String> = (0..n).map(|i| format!("+452{i:07}")).collect();
    for phone in phones.iter().step_by(10) {
        fake.add_fault(
            Some(phone),
            TwilioFault::Delay {
                duration: Duration::from_millis(60),
            },
            u32::MAX,
        );
    }
    app.with_db(move |c| {
        for phone in &phones {
            optbridge::sms::outbound::queue(
                c,
                optbridge::sms::outbound::NewSms {
                    workspace_id: &ws_id,
                    consent_request_id: None,
                    kind: optbridge::sms::outbound::SmsKind::Receipt,
                    phone,
                    country: "DK",
                    body: "Crash: tak, du er tilmeldt.",
                    not_before: optbridge::db::now(),
                },
            )
            .unwrap();
        }
    })
    .await;
    kill_restart_and_check(&app, &Provider::Twilio(&fake), backend, "SMS").await;

    let sent: i64 = app
        .with_db(|c| {
            use diesel::prelude::*;
            use optbridge::db::schema::sms_messages;
            sms_messages::table
                .filter(sms_messages::status.eq("sent"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(sent, n as i64);
}

/// A batch whose processing panicked (a bug): the worker lives on (`telemetry::catch_panic`,
/// unit-tested) and puts the jobs it still held back, each after the backoff for its attempt,
/// with the panic as the job's last error. Other workers' jobs are untouched.
async fn a_panicked_batch_is_put_back_for_a_later_attempt(backend: Backend) {
    use diesel::prelude::*;
    use optbridge::db::schema::outbox_jobs;
    use optbridge::outbox;
    use optbridge::sms::dispatch::INBOUND_SMS_JOB;

    let app = spawn_app(backend).await;
    let (held, other) = app
        .with_db(|c| {
            let now = optbridge::db::now();
            for n in 0..5 {
                outbox::enqueue(c, None, INBOUND_SMS_JOB, &format!("job-{n}"), now).unwrap();
            }
            let mine = outbox::claim(c, "worker-a", 3, Duration::from_secs(300)).unwrap();
            let theirs = outbox::claim(c, "worker-b", 2, Duration::from_secs(300)).unwrap();
            let released = outbox::release_after_panic(
                c,
                "worker-a",
                "index out of bounds",
                &[],
                Duration::from_secs(10),
                Duration::from_secs(600),
            )
            .unwrap();
            assert_eq!(released, mine.len());
            (mine, theirs)
        })
        .await;
    assert_eq!((held.len(), other.len()), (3, 2));
    let started = optbridge::db::now();
    type Row = (String, i32, Option<String>, Option<String>, chrono::NaiveDateTime);
    let rows: Vec<Row> = app
        .with_db(|c| {
            outbox_jobs::table
                .select((
                    outbox_jobs::id,
                    outbox_jobs::attempts,
                    outbox_jobs::lease_owner,
                    outbox_jobs::last_error,
                    outbox_jobs::run_after,
                ))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(rows.len(), 5, "no job is lost");
    for (id, attempts, owner, error, run_after) in rows {
        assert_eq!(attempts, 1, "{id}: the panicked attempt counts");
        if held.iter().any(|j| j.id == id) {
            assert_eq!(owner, None, "{id}: released");
            assert!(error.unwrap().contains("panicked"), "{id}");
            // Attempt 1 backs off 10 s ± 50 %: due again in the future, not at once.
            assert!(
                run_after > started + chrono::Duration::seconds(4),
                "{id}: due at {run_after}"
            );
        } else {
            assert_eq!(
                owner.as_deref(),
                Some("worker-b"),
                "{id}: another worker's lease is kept"
            );
            assert_eq!(error, None);
        }
    }
}

/// A batch of invitations is one job: a claim takes it alone, or stops before it, so a worker
/// never holds more than a batch's worth of sends however its claim limit and the batch size
/// compare.
async fn a_batch_job_is_claimed_alone(backend: Backend) {
    use optbridge::mail::deliver::INVITATION_BATCH_JOB;
    use optbridge::outbox;
    use optbridge::sms::dispatch::INBOUND_SMS_JOB;

    let app = spawn_app(backend).await;
    let claims = app
        .with_db(|c| {
            let t0 = optbridge::db::now();
            let at = |s: i64| t0 - chrono::Duration::seconds(10 - s);
            for n in 0..3 {
                outbox::enqueue(c, None, INBOUND_SMS_JOB, &format!("early-{n}"), at(n)).unwrap();
            }
            let invitations: Vec<String> = (0..7).map(|n| format!("invitation-{n}")).collect();
            outbox::enqueue_batches(c, "ws", INVITATION_BATCH_JOB, "campaign", &invitations, 5, at(4)).unwrap();
            for n in 0..2 {
                outbox::enqueue(c, None, INBOUND_SMS_JOB, &format!("late-{n}"), at(6 + n)).unwrap();
            }
            let mut claims = Vec::new();
            loop {
                let claim =
                    outbox::claim(c, &format!("worker-{}", claims.len()), 10, Duration::from_secs(300)).unwrap();
                if claim.is_empty() {
                    break claims;
                }
                claims.push(
                    claim
                        .iter()
                        .map(|j| match j.kind.as_str() {
                            "invitation_batch" => format!("batch:{}", j.batch_ids().collect::<Vec<_>>().join("+")),
                            _ => j.ref_id.clone(),
                        })
                        .collect::<Vec<_>>(),
                );
            }
        })
        .await;
    assert_eq!(
        claims,
        vec![
            vec!["early-0", "early-1", "early-2"],
            vec!["batch:invitation-0+invitation-1+invitation-2+invitation-3+invitation-4"],
            vec!["batch:invitation-5+invitation-6"],
            vec!["late-0", "late-1"],
        ]
    );
}

/// A worker whose batch lease expired while it was still sending (a stalled server) records what
/// it sent, but leaves the batch to the worker that took it over: it neither finishes the batch
/// nor queues retries of its own; the new holder does, once. Counters count each send once.
async fn a_lost_batch_lease_is_left_to_the_new_holder(backend: Backend) {
    use diesel::prelude::*;
    use optbridge::db::schema::{invitations, outbox_jobs};
    use optbridge::outbox::worker::dispatch_once;

    let sink = SmtpSink::start().await;
    // Both holders wait for anna longer than the lease; amy is always refused for now.
    sink.add_fault(
        "anna@example.dk",
        Fault::Stall {
            duration: Duration::from_millis(1600),
            times: 2,
        },
    );
    sink.add_fault(
        "amy@example.com",
        Fault::RejectRcpt {
            code: 451,
            times: u32::MAX,
        },
    );
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.outbox_lease_secs = 1;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    assert_eq!(
        dispatch_once(&app.worker, "expander").await.unwrap(),
        1,
        "the expansion"
    );

    let ctx = app.worker.clone();
    let a = tokio::spawn(async move { dispatch_once(&ctx, "worker-a").await.unwrap() });
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let ctx = app.worker.clone();
    let b = tokio::spawn(async move { dispatch_once(&ctx, "worker-b").await.unwrap() });
    assert_eq!(a.await.unwrap(), 1, "worker A held the batch");
    assert_eq!(
        b.await.unwrap(),
        1,
        "worker B took the batch over after A's lease expired"
    );

    let jobs: Vec<(String, String, i32)> = app
        .with_db(|c| {
            outbox_jobs::table
                .select((outbox_jobs::kind, outbox_jobs::ref_id, outbox_jobs::attempts))
                .load(c)
                .unwrap()
        })
        .await;
    let amy: String = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("amy@example.com"))
                .select(invitations::id)
                .first(c)
                .unwrap()
        })
        .await;
    // Attempt 2 is B's claim of the batch: A, whose claim was attempt 1, queued nothing.
    assert_eq!(
        jobs,
        vec![("invitation_email".to_owned(), amy, 2)],
        "only B's retry of amy is left"
    );
    let statuses: Vec<String> = app
        .with_db(|c| invitations::table.select(invitations::status).load(c).unwrap())
        .await;
    assert_eq!(statuses.iter().filter(|s| *s == "sent").count(), 7);
    let c = campaign.clone();
    let totals = app
        .with_db(move |conn| optbridge::funnel::totals(conn, &c).unwrap())
        .await;
    let sent: i64 = totals.iter().filter(|t| t.2 == "sent").map(|t| t.3).sum();
    assert_eq!(sent, 7, "each send counted once although both workers sent");
}

/// A group commit the database refuses (here a trigger fails every funnel counter write, as a
/// full disk or a failover would fail them all) is tried again until it goes through: what was
/// sent is recorded once and not sent again, and the batch is finished. The worker is told that
/// its round's end failed, and goes on meanwhile.
async fn a_refused_recording_is_tried_again_until_it_goes_through(backend: Backend) {
    use diesel::prelude::*;
    use optbridge::db::schema::outbox_jobs;
    use optbridge::outbox::worker::dispatch_once;

    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    assert_eq!(
        dispatch_once(&app.worker, "expander").await.unwrap(),
        1,
        "the expansion"
    );

    // Every write of a funnel counter fails while `refuse_counts` has a row.
    let refuse: &'static [&'static str] = match backend {
        Backend::Sqlite => &[
            "CREATE TABLE refuse_counts (x INTEGER)",
            "INSERT INTO refuse_counts VALUES (1)",
            "CREATE TRIGGER refuse BEFORE INSERT ON funnel_counts \
             WHEN EXISTS (SELECT 1 FROM refuse_counts) BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
        Backend::Postgres => &[
            "CREATE TABLE refuse_counts (x INTEGER)",
            "INSERT INTO refuse_counts VALUES (1)",
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM refuse_counts) THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON funnel_counts FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    };
    app.with_db(move |c| {
        for statement in refuse {
            diesel::sql_query(*statement).execute(c).unwrap();
        }
    })
    .await;
    let queued = |c: &mut optbridge::db::DbConn| invitations_with_status(c, "queued");

    let error = dispatch_once(&app.worker, "worker-a")
        .await
        .expect_err("the round's end could not be recorded");
    assert!(error.to_string().contains("refused by the test"), "{error}");
    assert_eq!(sink.messages().len(), 8, "every invitation was sent");
    assert_eq!(app.with_db(queued).await, 8, "and none of it recorded yet");

    app.with_db(|c| diesel::sql_query("DELETE FROM refuse_counts").execute(c).unwrap())
        .await;
    app.eventually("the recorder got everything in", move |c| {
        queued(c) == 0 && outbox_jobs::table.count().get_result::<i64>(c).unwrap() == 0
    })
    .await;
    assert_eq!(app.with_db(|c| invitations_with_status(c, "sent")).await, 8);
    assert_eq!(sink.messages().len(), 8, "nothing was sent again");
    let c = campaign.clone();
    let totals = app
        .with_db(move |conn| optbridge::funnel::totals(conn, &c).unwrap())
        .await;
    let counted: i64 = totals.iter().filter(|t| t.2 == "sent").map(|t| t.3).sum();
    assert_eq!(counted, 8, "each send counted once");
}

fn invitations_with_status(c: &mut optbridge::db::DbConn, status: &str) -> i64 {
    use diesel::prelude::*;
    use optbridge::db::schema::invitations;
    invitations::table
        .filter(invitations::status.eq(status))
        .count()
        .get_result(c)
        .unwrap()
}

/// A `serve` process (HTTP and the default outbox workers) that is SIGKILLed when dropped.
struct ServeProcess(Child);

impl ServeProcess {
    fn spawn(app: &TestApp, sink: &SmtpSink) -> Self {
        // CRASH_SERVE_BIN runs another build in the same scenario (the before/after figures in
        // BENCHMARKS.md).
        let bin = std::env::var("CRASH_SERVE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_optbridge").to_owned());
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .env("DATABASE_URL", &app.database.url)
            .env("BIND", "127.0.0.1:0")
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("SMTP_URL", sink.url())
            // The product's defaults (OUTBOX_WORKERS, INVITATION_BATCH, SMTP_CONCURRENCY, …), but a
            // lease short enough that the restart takes the dead process's batches over soon.
            .env("OUTBOX_LEASE_SECS", SERVE_LEASE_SECS.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for name in [
            "OUTBOX_WORKERS",
            "OUTBOX_BATCH",
            "INVITATION_BATCH",
            "SMTP_CONCURRENCY",
            "OUTBOX_POLL_MS",
            "SMS_PROVIDER",
        ] {
            command.env_remove(name);
        }
        Self(command.spawn().expect("start optbridge serve"))
    }

    fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SERVE_LEASE_SECS: u64 = 5;

/// Issue 18: outcomes are recorded as they arrive, so a SIGKILL repeats only the messages whose
/// outcome was not recorded yet (in flight at the relay, or in the last few tens of
/// milliseconds), not everything since a batch began.
async fn a_killed_serve_repeats_only_what_was_in_flight(backend: Backend) {
    const RECIPIENTS: usize = 2000;
    const MAX_DUPLICATES: usize = 50;
    let sink = SmtpSink::start().await;
    sink.throttle(100);
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Crash window").await;
    let mut csv = String::from("email,locale\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("w{i:05}@example.dk,da\n"));
    }
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Window", "consent_text_id": text, "subject": "S", "intro": "I"}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;

    let accepted = |sink: &SmtpSink| sink.messages().len();
    // Killed at about a third and at about two thirds of the send.
    for target in [RECIPIENTS / 3, 2 * RECIPIENTS / 3] {
        let serve = ServeProcess::spawn(&app, &sink);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while accepted(&sink) < target {
            assert!(std::time::Instant::now() < deadline, "serve made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        serve.kill();
    }
    // The last one finishes, taking the dead processes' batches over once their leases expired.
    let last = ServeProcess::spawn(&app, &sink);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while app.outbox_len().await > 0 {
        assert!(std::time::Instant::now() < deadline, "the outbox did not empty");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(last);

    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), RECIPIENTS, "every recipient got the invitation");
    let duplicates: usize = per_recipient.values().map(|c| c - 1).sum();
    eprintln!(
        "crash window ({backend:?}): {RECIPIENTS} recipients, 2 kills of serve at 100 msg/s: {duplicates} duplicates"
    );
    assert!(
        duplicates <= MAX_DUPLICATES,
        "{duplicates} duplicates after 2 kills, at most {MAX_DUPLICATES} allowed"
    );
}

/// A round that runs longer than its lease (a slow relay, one lane) extends the lease as it
/// records: a second worker looking after the first lease ran out finds nothing to take over,
/// and every recipient gets one message.
async fn a_long_round_keeps_its_lease(backend: Backend) {
    use optbridge::outbox::worker::dispatch_once;

    let sink = SmtpSink::start().await;
    // One lane sends the eight one after another; three of them take 400 ms each.
    for slow in ["bo@example.dk", "ingrid@example.no", "elsa@example.se"] {
        sink.add_fault(
            slow,
            Fault::Stall {
                duration: Duration::from_millis(400),
                times: 1,
            },
        );
    }
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.outbox_lease_secs = 1;
        a.smtp_concurrency = 1;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    assert_eq!(dispatch_once(&app.worker, "expander").await.unwrap(), 1);

    let ctx = app.worker.clone();
    let started = std::time::Instant::now();
    let a = tokio::spawn(async move { dispatch_once(&ctx, "worker-a").await.unwrap() });
    // Past the lease A's claim took (1 s); A has recorded after half of it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = dispatch_once(&app.worker, "worker-b").await.unwrap();
    assert_eq!(a.await.unwrap(), 1, "worker A held the batch");
    assert!(
        started.elapsed() > Duration::from_millis(1100),
        "the round outlasted its first lease"
    );
    assert_eq!(b, 0, "worker B found the batch still leased to A");
    let messages = sink.messages();
    let mut recipients: Vec<String> = messages.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    recipients.sort();
    let n = recipients.len();
    recipients.dedup();
    assert_eq!((n, recipients.len()), (8, 8), "each recipient once");
}

both_backends!(
    a_killed_serve_repeats_only_what_was_in_flight,
    a_refused_recording_is_tried_again_until_it_goes_through,
    a_long_round_keeps_its_lease,
    killed_email_workers_lose_nothing,
    killed_sms_workers_lose_nothing,
    a_panicked_batch_is_put_back_for_a_later_attempt,
    a_batch_job_is_claimed_alone,
    a_lost_batch_lease_is_left_to_the_new_holder
);
