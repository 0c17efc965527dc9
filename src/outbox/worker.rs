//! Outbox workers: claim a batch, do the work, record every outcome in one transaction.
//!
//! Run inside `optbridge serve` (`OUTBOX_WORKERS` tasks) or as `optbridge worker`. Tests drive
//! the same code step by step with [`dispatch_all_pending`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel::prelude::*;
use futures_util::StreamExt as _;
use tokio::sync::{Notify, watch};
use url::Url;

use super::breaker::{Breaker, BreakerConfig, Permit};
use super::{Job, JobKind};
use crate::campaigns::{self, Campaign, Variant, expand};
use crate::consent::texts::{self as consent_texts, ConsentTextVersion};
use crate::db::schema::{contacts, invitations, suppressions};
use crate::db::{self, Db, DbConn, DbError};
use crate::domain::Locale;
use crate::funnel::{self, Metric};
use crate::links::Keyring;
use crate::mail::dkim::DkimSigner;
use crate::mail::invitation::{self, InvitationContent, PreparedInvitation};
use crate::mail::{Mailer, OutgoingEmail, SendError};
use crate::metrics::METRICS;
use crate::sms::provider::SmsSender;
use crate::sms::quiet_hours::QuietHours;
use crate::workspace::{self, Workspace};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker tasks per process.
    pub workers: usize,
    /// Jobs claimed at once by one worker.
    pub batch: i64,
    pub lease: Duration,
    /// Sleep between polls when the outbox is empty (an in-process enqueue wakes workers early).
    pub poll: Duration,
    /// Attempts before a transient failure becomes final.
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Emails in flight at once per worker.
    pub send_concurrency: usize,
    pub breaker: BreakerConfig,
}

/// What workers share.
pub struct WorkerContext {
    pub db: Db,
    pub mailer: Mailer,
    pub dkim: Option<Arc<DkimSigner>>,
    pub sms: SmsSender,
    /// When messages that do not answer the recipient's own action may go out.
    pub quiet_hours: QuietHours,
    pub keyring: Arc<Keyring>,
    pub base_url: Url,
    pub config: WorkerConfig,
    /// Wakes idle workers in this process when work was enqueued here.
    pub wake: Arc<Notify>,
    /// Pause sends to a provider that keeps failing (shared by this process's workers).
    pub smtp_breaker: Breaker,
    pub sms_breaker: Breaker,
    campaigns: Mutex<HashMap<String, Arc<CampaignContext>>>,
}

/// What every invitation of a campaign shares; campaigns do not change once sending.
struct CampaignContext {
    campaign: Campaign,
    variants: Vec<Variant>,
    workspace: Workspace,
    consent: ConsentTextVersion,
    /// Invitations rendered once per variant (index), locale and whether the recipient has a
    /// first name; `None` where the prepared form could not be used.
    prepared: Mutex<HashMap<PreparedKey, Option<Arc<PreparedInvitation>>>>,
}

/// Variant (index), locale, and whether the recipient has a first name.
type PreparedKey = (Option<usize>, Locale, bool);

impl CampaignContext {
    /// The prepared invitation `content` (of variant `variant`) belongs to, prepared on first use.
    fn prepared(&self, variant: Option<usize>, content: &InvitationContent<'_>) -> Option<Arc<PreparedInvitation>> {
        let key = (variant, content.locale, content.first_name.is_some());
        if let Some(hit) = self.prepared.lock().ok()?.get(&key) {
            return hit.clone();
        }
        let prepared = match PreparedInvitation::new(content) {
            Ok(prepared) => prepared.map(Arc::new),
            Err(e) => {
                tracing::warn!(campaign = self.campaign.id, error = %e, "could not prepare the invitation; rendering each in full");
                None
            }
        };
        self.prepared.lock().ok()?.insert(key, prepared.clone());
        prepared
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Db(#[from] DbError),
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

impl WorkerContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        mailer: Mailer,
        dkim: Option<Arc<DkimSigner>>,
        sms: SmsSender,
        quiet_hours: QuietHours,
        keyring: Arc<Keyring>,
        base_url: Url,
        config: WorkerConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            mailer,
            dkim,
            sms,
            quiet_hours,
            keyring,
            base_url,
            smtp_breaker: Breaker::smtp(config.breaker),
            sms_breaker: Breaker::sms(config.breaker),
            config,
            wake,
            campaigns: Mutex::new(HashMap::new()),
        }
    }

    fn link(&self, path: &str, token: &str) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        format!("{base}/{path}/{token}")
    }

    async fn campaign_context(&self, campaign_id: &str) -> Result<Arc<CampaignContext>, WorkerError> {
        if let Some(found) = self.campaigns.lock().ok().and_then(|c| c.get(campaign_id).cloned()) {
            return Ok(found);
        }
        let id = campaign_id.to_owned();
        let ctx = self
            .db
            .run(move |conn| -> Result<CampaignContext, WorkerError> {
                let campaign = campaigns::find_any(conn, &id)?
                    .ok_or_else(|| WorkerError::Inconsistent(format!("campaign {id} missing")))?;
                let variants = campaigns::variants_of(conn, &id)?;
                let workspace = workspace::find(conn, &campaign.workspace_id)?
                    .ok_or_else(|| WorkerError::Inconsistent(format!("workspace of campaign {id} missing")))?;
                let consent = consent_texts::find(conn, &campaign.workspace_id, &campaign.consent_text_id)?
                    .ok_or_else(|| WorkerError::Inconsistent(format!("consent text of campaign {id} missing")))?;
                Ok(CampaignContext {
                    campaign,
                    variants,
                    workspace,
                    consent,
                    prepared: Mutex::default(),
                })
            })
            .await?;
        let ctx = Arc::new(ctx);
        if let Ok(mut cache) = self.campaigns.lock() {
            cache.insert(campaign_id.to_owned(), ctx.clone());
        }
        Ok(ctx)
    }
}

/// A handle on the worker tasks of this process.
pub struct WorkerPool {
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WorkerPool {
    pub fn spawn(ctx: Arc<WorkerContext>) -> Self {
        let (shutdown, rx) = watch::channel(false);
        let tasks = (0..ctx.config.workers)
            .map(|n| tokio::spawn(run(ctx.clone(), worker_id(n), rx.clone())))
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

async fn run(ctx: Arc<WorkerContext>, owner: String, mut shutdown: watch::Receiver<bool>) {
    tracing::debug!(owner, "outbox worker started");
    while !*shutdown.borrow() {
        // A panic in a batch (a bug) must not end the worker: the process would go on serving
        // with fewer workers, or none, and nothing would say so.
        let outcome = match crate::telemetry::catch_panic(dispatch_once(&ctx, &owner)).await {
            Ok(outcome) => outcome,
            Err(panic) => {
                recover_from_panic(&ctx, &owner, &panic).await;
                continue;
            }
        };
        match outcome {
            Ok(0) => {
                tokio::select! {
                    _ = tokio::time::sleep(ctx.config.poll) => {}
                    _ = ctx.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(owner, error = %e, "outbox worker: batch failed; retrying after a pause");
                tokio::time::sleep(ctx.config.poll).await;
            }
        }
    }
    let db = ctx.db.clone();
    let o = owner.clone();
    match db.run(move |conn| super::release_all(conn, &o)).await {
        Ok(n) if n > 0 => tracing::info!(owner, released = n, "outbox worker released its leases"),
        Ok(_) => {}
        Err(e) => tracing::warn!(owner, error = %e, "outbox worker could not release leases; they expire on their own"),
    }
}

/// After a batch panicked: counts and logs it, and puts its unfinished jobs back for a later
/// attempt (see `outbox::release_after_panic`).
async fn recover_from_panic(ctx: &WorkerContext, owner: &str, panic: &str) {
    METRICS.worker_panics.inc();
    tracing::error!(
        owner,
        panic,
        "outbox worker: a batch panicked; its jobs are put back for a later attempt"
    );
    let (o, p) = (owner.to_owned(), panic.to_owned());
    let (base, max) = (ctx.config.retry_base, ctx.config.retry_max);
    match ctx
        .db
        .run(move |conn| super::release_after_panic(conn, &o, &p, base, max))
        .await
    {
        Ok(n) => tracing::info!(owner, released = n, "outbox worker released the panicked batch"),
        Err(e) => {
            tracing::warn!(owner, error = %e, "could not release the panicked batch; its leases expire on their own")
        }
    }
    tokio::time::sleep(ctx.config.poll).await;
}

/// Claims and processes one batch. Returns how many jobs it claimed.
pub async fn dispatch_once(ctx: &WorkerContext, owner: &str) -> Result<usize, WorkerError> {
    let o = owner.to_owned();
    let (batch, lease) = (ctx.config.batch, ctx.config.lease);
    let started = std::time::Instant::now();
    let jobs = ctx.db.run(move |conn| super::claim(conn, &o, batch, lease)).await?;
    let claim_ms = started.elapsed().as_secs_f64() * 1000.0;
    let claimed = jobs.len();
    let mut emails = Vec::new();
    let mut batches = Vec::new();
    let mut sms = Vec::new();
    let mut inbound = Vec::new();
    for job in jobs {
        match JobKind::parse(&job.kind) {
            Some(JobKind::InvitationEmail) => emails.push(job),
            Some(JobKind::InvitationBatch) => batches.push(job),
            Some(JobKind::Sms) => sms.push(job),
            Some(JobKind::InboundSms) => inbound.push(job),
            Some(JobKind::CampaignExpand) => expand_campaign(ctx, owner, job).await?,
            None => {
                tracing::error!(
                    kind = job.kind,
                    id = job.id,
                    "unknown outbox job kind; leaving it for a newer version"
                );
            }
        }
    }
    // Replies first: a confirmation queues the receipt this same round.
    if !inbound.is_empty() {
        crate::sms::dispatch::process_inbound(ctx, owner, inbound).await?;
    }
    if !sms.is_empty() {
        crate::sms::dispatch::send_batch(ctx, owner, sms).await?;
    }
    if !emails.is_empty() || !batches.is_empty() {
        send_invitations(ctx, owner, emails, batches).await?;
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
pub async fn dispatch_all_pending(ctx: &WorkerContext) -> Result<(), WorkerError> {
    let owner = worker_id(0);
    while dispatch_once(ctx, &owner).await? > 0 {}
    Ok(())
}

async fn expand_campaign(ctx: &WorkerContext, owner: &str, job: Job) -> Result<(), WorkerError> {
    let campaign_ctx = ctx.campaign_context(&job.ref_id).await?;
    let batch = ctx.config.batch;
    let mut cursor = job.cursor.clone();
    loop {
        let cc = campaign_ctx.clone();
        let after = cursor.clone();
        let progress = ctx
            .db
            .run(move |conn| {
                let domain = cc
                    .workspace
                    .from_address
                    .rsplit_once('@')
                    .map_or("optbridge.invalid", |(_, d)| d.trim_end_matches('>'));
                expand::expand_page(
                    conn,
                    &cc.campaign,
                    &cc.variants,
                    cc.workspace.locale,
                    domain,
                    after.as_deref(),
                    usize::try_from(batch).unwrap_or(1),
                )
            })
            .await?;
        ctx.wake.notify_waiters();
        match progress {
            expand::Progress::More { cursor: next, .. } => {
                let (o, id, c, lease) = (owner.to_owned(), job.id.clone(), next.clone(), ctx.config.lease);
                let still_ours = ctx
                    .db
                    .run(move |conn| super::checkpoint(conn, &o, &id, &c, lease))
                    .await?;
                if !still_ours {
                    tracing::warn!(
                        campaign = job.ref_id,
                        "lost the expansion lease; another worker continues"
                    );
                    return Ok(());
                }
                cursor = Some(next);
            }
            expand::Progress::Done { .. } => {
                let (o, id) = (owner.to_owned(), job.id.clone());
                ctx.db.run(move |conn| super::finish(conn, &o, &[id])).await?;
                tracing::info!(campaign = job.ref_id, "campaign audience queued");
                return Ok(());
            }
        }
    }
}

/// An invitation as the sender needs it.
#[derive(Debug, Clone, Queryable)]
struct PendingInvitation {
    id: String,
    workspace_id: String,
    campaign_id: String,
    variant: String,
    locale: String,
    email: String,
    status: String,
    message_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_normalized: String,
}

/// Where an invitation being sent came from, which decides how it is finished or put back.
#[derive(Debug)]
enum Origin {
    /// Its own `invitation_email` job (a retry or a deferred send): finished, deferred or
    /// retried in place.
    Own(Job),
    /// One of an `invitation_batch` job's invitations: the batch is finished once for all of
    /// them; one to try again later gets a job of its own.
    Batch { job_id: String, attempts: i32 },
}

/// One invitation of a claimed batch of work.
#[derive(Debug)]
struct Delivery {
    invitation_id: String,
    origin: Origin,
    /// `None` when the invitation no longer exists (erased).
    row: Option<PendingInvitation>,
}

impl Delivery {
    /// Attempts so far, including this one.
    fn attempts(&self) -> i32 {
        match &self.origin {
            Origin::Own(job) => job.attempts,
            Origin::Batch { attempts, .. } => *attempts,
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Sent {
        message_id: String,
    },
    Bounced {
        hard: bool,
        reason: String,
    },
    Retry(String),
    Skipped(String),
    /// The invitation left `queued` already (sent by an earlier lease holder); just drop the job.
    AlreadyDone,
    /// The SMTP circuit is open: back to the queue for this long, not counted as an attempt.
    Paused(Duration),
}

/// Sends the invitations of single jobs and batch jobs, and records every outcome in one
/// transaction.
async fn send_invitations(
    ctx: &WorkerContext,
    owner: &str,
    jobs: Vec<Job>,
    batches: Vec<Job>,
) -> Result<(), WorkerError> {
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut batch_ids = Vec::with_capacity(batches.len());
    for batch in &batches {
        batch_ids.push(batch.id.clone());
        deliveries.extend(batch.batch_ids().map(|id| Delivery {
            invitation_id: id.to_owned(),
            origin: Origin::Batch {
                job_id: batch.id.clone(),
                attempts: batch.attempts,
            },
            row: None,
        }));
    }
    deliveries.extend(jobs.into_iter().map(|job| Delivery {
        invitation_id: job.ref_id.clone(),
        origin: Origin::Own(job),
        row: None,
    }));
    let ids: Vec<String> = deliveries.iter().map(|d| d.invitation_id.clone()).collect();
    let (rows, suppressed) = ctx
        .db
        .run(move |conn| -> Result<_, WorkerError> {
            let rows: Vec<PendingInvitation> = invitations::table
                .inner_join(contacts::table)
                .filter(invitations::id.eq_any(&ids))
                .select((
                    invitations::id,
                    invitations::workspace_id,
                    invitations::campaign_id,
                    invitations::variant,
                    invitations::locale,
                    invitations::email,
                    invitations::status,
                    invitations::message_id,
                    contacts::first_name,
                    contacts::last_name,
                    contacts::email_normalized,
                ))
                .load(conn)?;
            let addresses: Vec<&str> = rows.iter().map(|r| r.email_normalized.as_str()).collect();
            let suppressed: HashSet<(String, String)> = suppressions::table
                .filter(suppressions::channel.eq("email"))
                .filter(suppressions::address.eq_any(&addresses))
                .select((suppressions::workspace_id, suppressions::address))
                .load(conn)?
                .into_iter()
                .collect();
            Ok((rows, suppressed))
        })
        .await?;
    let rows: HashMap<String, PendingInvitation> = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    for delivery in &mut deliveries {
        delivery.row = rows.get(&delivery.invitation_id).cloned();
    }

    // `send_concurrency` lanes take invitations from one queue; each sends its share over one
    // SMTP session, a message's content in the same write as the next one's commands.
    let queue = Mutex::new(VecDeque::from(deliveries));
    let lanes = (0..ctx.config.send_concurrency.max(1)).map(|_| send_lane(ctx, &queue, &suppressed));
    let sending = std::time::Instant::now();
    let lanes: Vec<Vec<(Delivery, Outcome)>> = lanes
        .collect::<futures_util::stream::FuturesUnordered<_>>()
        .collect()
        .await;
    let mut results: Vec<(Delivery, Outcome)> = lanes.into_iter().flatten().collect();
    let send_ms = sending.elapsed().as_secs_f64() * 1000.0;
    let recording = std::time::Instant::now();

    let owner = owner.to_owned();
    let config = ctx.config.clone();
    let n = results.len();
    // Lock invitation rows in one order in every transaction (see funnel::Tally for counters).
    results.sort_by(|a, b| a.0.invitation_id.cmp(&b.0.invitation_id));
    ctx.db
        .run(move |conn| {
            db::write_tx_retrying(conn, 5, |conn| {
                record_outcomes(conn, &owner, &config, &batch_ids, &results)
            })
        })
        .await?;
    tracing::debug!(
        emails = n,
        send_ms,
        record_ms = recording.elapsed().as_secs_f64() * 1000.0,
        "invitation batch"
    );
    Ok(())
}

/// The invitation's email, or the outcome that stands instead of sending it.
async fn build_email(ctx: &WorkerContext, row: &PendingInvitation) -> Result<OutgoingEmail, Outcome> {
    let cc = match ctx.campaign_context(&row.campaign_id).await {
        Ok(cc) => cc,
        Err(e) => return Err(Outcome::Retry(format!("loading campaign: {e}"))),
    };
    let locale = Locale::parse(&row.locale).unwrap_or(cc.workspace.locale);
    let variant_index = cc
        .variants
        .iter()
        .position(|v| v.name == row.variant)
        .or((!cc.variants.is_empty()).then_some(0));
    let variant = variant_index.and_then(|i| cc.variants.get(i));
    let (subject, intro) = match variant {
        Some(v) => (v.subject.as_str(), v.intro.as_str()),
        None => (cc.campaign.subject.as_str(), cc.campaign.intro.as_str()),
    };
    let now = db::now();
    let (landing, open, unsubscribe) =
        match ctx
            .keyring
            .sign_invitation(&row.id, &row.campaign_id, locale.as_str(), now)
        {
            Ok(t) => (
                ctx.link("l", &t.landing),
                ctx.link("o", &t.open),
                ctx.link("u", &t.unsubscribe),
            ),
            Err(e) => return Err(Outcome::Retry(format!("signing links: {e}"))),
        };
    let categories = cc.consent.category_list();
    let full_name = match (&row.first_name, &row.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(l)) => Some(l.clone()),
        (None, None) => None,
    };
    let content = InvitationContent {
        invitation_id: &row.id,
        message_id: row.message_id.as_deref(),
        locale,
        from: &cc.workspace.from_address,
        to_email: &row.email,
        to_name: full_name,
        first_name: row.first_name.as_deref(),
        company: &cc.consent.company_name,
        subject,
        intro,
        categories: &categories,
        frequency: cc.campaign.frequency.as_deref(),
        privacy_url: &cc.consent.privacy_url,
        landing_url: &landing,
        pixel_url: &open,
        unsubscribe_url: &unsubscribe,
    };
    let rendered = match cc.prepared(variant_index, &content) {
        Some(prepared) => prepared.render(&content),
        None => invitation::render(&content),
    };
    // A message that cannot be built never will be: record it, do not retry forever.
    rendered.map_err(|e| Outcome::Bounced {
        hard: false,
        reason: format!("could not build the message: {e}"),
    })
}

/// Sends invitations from `queue` until it is empty, over one [`MailSeries`].
async fn send_lane(
    ctx: &WorkerContext,
    queue: &Mutex<VecDeque<Delivery>>,
    suppressed: &HashSet<(String, String)>,
) -> Vec<(Delivery, Outcome)> {
    let mut series = ctx.mailer.series::<(Delivery, Permit, String)>();
    let mut results = Vec::new();
    let settle = |results: &mut Vec<(Delivery, Outcome)>, done: Vec<((Delivery, Permit, String), _)>| {
        for ((delivery, permit, message_id), result) in done {
            results.push((delivery, sent_outcome(ctx, permit, message_id, result)));
        }
    };
    // Every delivery taken from the queue gets exactly one outcome in `results`: one never
    // recorded would stay queued with no job left to send it.
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
    while let Some(delivery) = next() {
        let email = match &delivery.row {
            None => Err(Outcome::Skipped("invitation no longer exists".into())),
            Some(r) if r.status != "queued" => Err(Outcome::AlreadyDone),
            // Unsubscribed or bounced since the campaign was queued.
            Some(r) if suppressed.contains(&(r.workspace_id.clone(), r.email_normalized.clone())) => {
                Err(Outcome::Skipped("email address is suppressed".into()))
            }
            Some(r) => build_email(ctx, r).await,
        };
        let email = match email {
            Ok(email) => email,
            Err(outcome) => {
                results.push((delivery, outcome));
                continue;
            }
        };
        let permit = ctx.smtp_breaker.permit();
        if let Permit::Wait(pause) = permit {
            results.push((delivery, Outcome::Paused(pause)));
            continue;
        }
        let workspace_id = delivery
            .row
            .as_ref()
            .map(|r| r.workspace_id.clone())
            .unwrap_or_default();
        let message_id = email.message_id.clone();
        let done = series
            .send(
                (delivery, permit, message_id),
                &workspace_id,
                email,
                ctx.dkim.as_deref(),
            )
            .await;
        settle(&mut results, done);
    }
    settle(&mut results, series.finish().await.into_iter().collect());
    results
}

/// The outcome of a send the mailer answered; tells the circuit breaker.
fn sent_outcome(ctx: &WorkerContext, permit: Permit, message_id: String, result: Result<(), SendError>) -> Outcome {
    let failed = matches!(result, Err(SendError::Transient(_)));
    ctx.smtp_breaker.record(permit, !failed, None);
    if let Some(pause) = ctx.smtp_breaker.paused_for().filter(|_| failed) {
        return Outcome::Paused(pause);
    }
    match result {
        Ok(()) => Outcome::Sent { message_id },
        Err(SendError::Transient(reason)) => Outcome::Retry(reason),
        Err(SendError::Permanent {
            hard_bounce, reason, ..
        }) => Outcome::Bounced {
            hard: hard_bounce,
            reason,
        },
    }
}

fn record_outcomes(
    conn: &mut DbConn,
    owner: &str,
    config: &WorkerConfig,
    batch_ids: &[String],
    results: &[(Delivery, Outcome)],
) -> Result<(), WorkerError> {
    let now = db::now();
    // The batches this worker still holds. When a lease was lost (it expired and another
    // worker took the batch over), that worker sends what is still queued, so nothing of that
    // batch is put back or finished here; sends are recorded all the same, first one wins.
    let mut held = HashSet::new();
    for id in batch_ids {
        if super::holds(conn, owner, id)? {
            held.insert(id.as_str());
        }
    }
    let mut finished: Vec<String> = held.iter().map(|id| (*id).to_owned()).collect();
    let mut tally = funnel::Tally::default();
    // (invitation, kind, detail) for the events, written in one insert at the end.
    let mut events: Vec<(&PendingInvitation, &'static str, Option<String>)> = Vec::new();
    let bulk_sent = record_sent_in_bulk(conn, results, now)?;
    for (delivery, outcome) in results {
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
            events.push((row, "sent", None));
            db::after_commit(|| METRICS.emails_sent.inc());
            finish();
            continue;
        }
        let queued = invitations::table
            .filter(invitations::id.eq(&row.id))
            .filter(invitations::status.eq("queued"));
        let mut count = |metric| tally.add(&row.campaign_id, &row.variant, &row.locale, metric, now);
        match outcome {
            Outcome::AlreadyDone => finish(),
            Outcome::Paused(pause) => {
                let at = now + chrono::Duration::from_std(*pause).unwrap_or(chrono::Duration::minutes(1));
                put_back(conn, owner, delivery, row, &held, at, PutBack::Deferred)?;
            }
            Outcome::Sent { message_id } => {
                let n = diesel::update(queued)
                    .set((
                        invitations::status.eq("sent"),
                        invitations::sent_at.eq(now),
                        invitations::message_id.eq(message_id),
                        invitations::attempts.eq(attempts),
                        invitations::last_error.eq(None::<String>),
                    ))
                    .execute(conn)?;
                if n == 1 {
                    count(Metric::Sent);
                    count(Metric::Delivered);
                    events.push((row, "sent", None));
                    db::after_commit(|| METRICS.emails_sent.inc());
                }
                finish();
            }
            Outcome::Bounced { hard, reason } => {
                let n = diesel::update(queued)
                    .set((
                        invitations::status.eq("bounced"),
                        invitations::bounced_at.eq(now),
                        invitations::attempts.eq(attempts),
                        invitations::last_error.eq(reason),
                    ))
                    .execute(conn)?;
                if n == 1 {
                    count(Metric::Sent);
                    count(Metric::Bounced);
                    events.push((row, "bounced", Some(reason.clone())));
                    if *hard {
                        crate::contacts::suppress(
                            conn,
                            &row.workspace_id,
                            "email",
                            &row.email_normalized,
                            &format!("hard bounce: {reason}"),
                        )?;
                    }
                    db::after_commit(|| METRICS.emails_bounced.inc());
                    tracing::info!(invitation = row.id, hard, reason, "invitation bounced");
                }
                finish();
            }
            Outcome::Skipped(reason) => {
                let n = diesel::update(queued)
                    .set((invitations::status.eq("skipped"), invitations::last_error.eq(reason)))
                    .execute(conn)?;
                if n == 1 {
                    events.push((row, "skipped", Some(reason.clone())));
                }
                finish();
            }
            Outcome::Retry(reason) if attempts >= config.max_attempts => {
                let detail = format!("gave up after {} attempts: {reason}", attempts);
                let n = diesel::update(queued)
                    .set((
                        invitations::status.eq("failed"),
                        invitations::attempts.eq(attempts),
                        invitations::last_error.eq(&detail),
                    ))
                    .execute(conn)?;
                if n == 1 {
                    count(Metric::Failed);
                    tracing::warn!(invitation = row.id, detail, "invitation failed");
                    events.push((row, "failed", Some(detail)));
                    db::after_commit(|| METRICS.emails_failed.inc());
                }
                finish();
            }
            Outcome::Retry(reason) => {
                let delay = super::backoff(attempts, config.retry_base, config.retry_max);
                let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(1));
                diesel::update(invitations::table.find(&row.id))
                    .set((invitations::attempts.eq(attempts), invitations::last_error.eq(reason)))
                    .execute(conn)?;
                put_back(conn, owner, delivery, row, &held, at, PutBack::Retry(reason))?;
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
    let events: Vec<funnel::Event<'_>> = events
        .iter()
        .map(|(row, kind, detail)| invitation_event(row, kind, now, detail.as_deref()))
        .collect();
    funnel::record_events(conn, &events)?;
    super::finish(conn, owner, &finished)?;
    // Last: every worker's batch updates the same few counter rows, and holds them until it
    // commits; the other workers wait only for the commit, not for the writes above.
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
        (Origin::Own(job), PutBack::Deferred) => super::defer(conn, owner, &job.id, at),
        (Origin::Own(job), PutBack::Retry(reason)) => super::retry_later(conn, owner, &job.id, at, reason),
        (Origin::Batch { job_id, attempts }, why) if held.contains(job_id.as_str()) => {
            let (attempts, error) = match why {
                PutBack::Deferred => (attempts - 1, None),
                PutBack::Retry(reason) => (*attempts, Some(reason)),
            };
            super::enqueue_again(
                conn,
                &row.workspace_id,
                JobKind::InvitationEmail,
                &row.id,
                at,
                attempts,
                error,
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
    results: &'a [(Delivery, Outcome)],
    now: chrono::NaiveDateTime,
) -> Result<HashSet<&'a str>, WorkerError> {
    let mut by_attempts: std::collections::BTreeMap<i32, Vec<&'a str>> = Default::default();
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
                .filter(invitations::status.eq("queued")),
        )
        .set((
            invitations::status.eq("sent"),
            invitations::sent_at.eq(now),
            invitations::attempts.eq(attempts),
            invitations::last_error.eq(None::<String>),
        ))
        .returning(invitations::id);
        let updated: HashSet<String> = match conn {
            DbConn::Pg(c) => update.get_results(c)?,
            DbConn::Sqlite(c) => update.get_results(c)?,
        }
        .into_iter()
        .collect();
        marked.extend(ids.into_iter().filter(|id| updated.contains(*id)));
    }
    Ok(marked)
}

fn invitation_event<'a>(
    row: &'a PendingInvitation,
    kind: &'a str,
    at: chrono::NaiveDateTime,
    detail: Option<&'a str>,
) -> funnel::Event<'a> {
    funnel::Event {
        workspace_id: &row.workspace_id,
        campaign_id: &row.campaign_id,
        invitation_id: &row.id,
        kind,
        at: Some(at),
        detail,
        ..funnel::Event::default()
    }
}
