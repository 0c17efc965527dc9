//! Invitation email: the outbox job handler that sends campaign invitations.
//!
//! Campaign expansion queues fresh invitations in [`INVITATION_BATCH_JOB`]s; an invitation to be
//! tried again later gets an [`INVITATION_EMAIL_JOB`] of its own. [`InvitationSender`] takes both:
//! it loads the claimed invitations and the suppressions in one read, renders each message
//! (from a per-campaign cache of prepared templates, each lane building its next message while
//! the server answers the one before), and sends them over `send_concurrency` SMTP lanes. One
//! recorder per process ([`record`]) writes the final outcomes (invitation status, funnel events
//! and counters) of every worker in group commits as they arrive, and a round's end (what goes
//! back to the outbox, the batch itself) after them, while the worker's next round sends. A
//! circuit breaker pauses sends while the relay keeps failing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel::prelude::*;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use url::Url;

use super::bounce::verp::BounceAddress;
use super::dkim::DkimSigner;
use super::invitation::{self, InvitationContent, PreparedInvitation};
use super::{Mailer, OutgoingEmail, SendError};
use crate::campaigns::{self, Campaign, CampaignStatus, InvitationStatus, Messages, Variant};
use crate::consent::texts::{self as consent_texts, ConsentTextVersion};
use crate::db::schema::{self, contacts, invitations, suppressions};
use crate::db::{self, Db, DbError};
use crate::domain::{Channel, Locale};
use crate::links::Keyring;
use crate::outbox::breaker::{Breaker, BreakerConfig, Permit};
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};
use crate::workspace::{self, Workspace};
use record::{Closing, Recorder};

mod record;

/// Send a batch of fresh invitations (`payload` = their ids; see [`outbox::enqueue_batches`]).
/// A batch is claimed whole and alone, so a claim still holds at most a batch's worth of sends.
pub const INVITATION_BATCH_JOB: JobKind = JobKind::new("invitation_batch");
/// Send one invitation (`ref_id` = invitation): a retry, or a deferred send.
pub const INVITATION_EMAIL_JOB: JobKind = JobKind::new("invitation_email");

/// Sends invitation emails; registered for [`INVITATION_BATCH_JOB`] and [`INVITATION_EMAIL_JOB`].
pub struct InvitationSender {
    mailer: Mailer,
    dkim: Option<Arc<DkimSigner>>,
    keyring: Arc<Keyring>,
    /// Links in the messages point here.
    base_url: Url,
    /// Pauses sends to a relay that keeps failing (shared by this process's workers).
    breaker: Breaker,
    /// `BOUNCE_ADDRESS`: each invitation's envelope sender is a VERP address made from it.
    bounce_address: Option<BounceAddress>,
    campaigns: Mutex<HashMap<String, Arc<CampaignContext>>>,
    /// Records every worker's outcomes; started with the first round.
    recorder: std::sync::OnceLock<Recorder>,
    /// Per worker (owner): its rounds' ends not yet recorded, oldest first, recorded while its
    /// next rounds send (see [`JobHandler::settle`]); at most [`ROUND_ENDS_AHEAD`].
    closing: Mutex<HashMap<String, VecDeque<Closing>>>,
}

/// Rounds a worker may end before the recorder has written the oldest of their ends: it waits
/// for that one beyond. Waiting for the round before's end at each round's end stalled a worker
/// on the recorder's 10 – 40 ms cadence: one worker with rounds of 200 (18 ms each) sent at
/// 0.53 – 0.56 of the baseline, against 0.75 – 0.76 before the recorder was shared; two rounds
/// ahead still waited (0.67 – 0.69; BENCHMARKS.md, "seventh session"). Bounded, so a worker does
/// not send on and on while the database refuses what it sent.
const ROUND_ENDS_AHEAD: usize = 4;

/// What an [`InvitationSender`] sends with.
pub struct InvitationSenderParts {
    pub mailer: Mailer,
    pub dkim: Option<Arc<DkimSigner>>,
    pub keyring: Arc<Keyring>,
    pub base_url: Url,
    pub breaker: BreakerConfig,
    pub bounce_address: Option<BounceAddress>,
}

impl InvitationSender {
    pub fn new(parts: InvitationSenderParts) -> Self {
        Self {
            mailer: parts.mailer,
            dkim: parts.dkim,
            keyring: parts.keyring,
            base_url: parts.base_url,
            breaker: Breaker::new("smtp", parts.breaker),
            bounce_address: parts.bounce_address,
            campaigns: Mutex::new(HashMap::new()),
            recorder: std::sync::OnceLock::new(),
            closing: Mutex::new(HashMap::new()),
        }
    }

    fn take_closing(&self, owner: &str) -> VecDeque<Closing> {
        self.closing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(owner)
            .unwrap_or_default()
    }

    fn link(&self, path: &str, token: &str) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        format!("{base}/{path}/{token}")
    }

    async fn campaign_context(&self, db: &Db, campaign_id: &str) -> Result<Arc<CampaignContext>, WorkerError> {
        if let Some(found) = self.campaigns.lock().ok().and_then(|c| c.get(campaign_id).cloned()) {
            return Ok(found);
        }
        let id = campaign_id.to_owned();
        let ctx = db
            .run(move |conn| -> Result<CampaignContext, WorkerError> {
                let campaign = campaigns::find_any(conn, &id)?
                    .ok_or_else(|| WorkerError::Inconsistent(format!("campaign {id} missing")))?;
                let variants = campaigns::variants_of(conn, &id)?;
                let workspace = workspace::find(conn, &campaign.workspace_id)?
                    .ok_or_else(|| WorkerError::Inconsistent(format!("workspace of campaign {id} missing")))?;
                let messages = campaigns::messages_of(conn, &campaign)?;
                let mut consents = HashMap::new();
                for l in &messages.locales {
                    let text = consent_texts::find(conn, &campaign.workspace_id, &l.consent_text_id)?
                        .ok_or_else(|| WorkerError::Inconsistent(format!("consent text of campaign {id} missing")))?;
                    consents.insert(l.locale.clone(), text);
                }
                Ok(CampaignContext {
                    campaign,
                    variants,
                    workspace,
                    messages,
                    consents,
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

    /// Sends the invitations of single jobs and batch jobs; the process's [`Recorder`] records
    /// their outcomes as they arrive, and the round's end (the batches, what goes back to the
    /// outbox) after them, while the worker's next round sends ([`Closing`]).
    async fn send_invitations(
        &self,
        queue: &Queue,
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
                suppressed: false,
            }));
        }
        deliveries.extend(jobs.into_iter().map(|job| Delivery {
            invitation_id: job.ref_id.clone(),
            origin: Origin::Own(job),
            row: None,
            suppressed: false,
        }));
        let recorder = self
            .recorder
            .get_or_init(|| Recorder::start(queue.db.clone(), queue.settings.clone()));
        // Every job of the round, whose leases a long round extends.
        let mut leased = batch_ids.clone();
        leased.extend(deliveries.iter().filter_map(|d| match &d.origin {
            Origin::Own(job) => Some(job.id.clone()),
            Origin::Batch { .. } => None,
        }));
        // A batch is loaded a chunk at a time: its lanes start on the first chunk, and the next is
        // read while they still have half a chunk (or two messages a lane) to send, instead of
        // idling through the whole read (8 – 25 ms of a 60 – 100 ms round of 500 on PostgreSQL
        // with the defaults, BENCHMARKS.md "fifth session"). A batch is claimed alone, so every
        // chunk is of one campaign; each chunk reads its status again, so a pause or a cancel
        // stops the round within about a chunk, as it would a round of 100.
        let mut later: Vec<Vec<Delivery>> = Vec::new();
        if batches.len() == 1 {
            let mut rest = deliveries.split_off(deliveries.len().min(LOAD_CHUNK));
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(LOAD_CHUNK));
                later.push(std::mem::replace(&mut rest, tail));
            }
        }
        let loading = std::time::Instant::now();
        let statuses = load_rows(&queue.db, &mut deliveries).await?;
        let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
        let (deliveries, batch_ids, cancelled) = hold_paused(queue, owner, &statuses, deliveries, batch_ids).await?;
        // A campaign a later chunk finds cancelled joins these: what is left of it is skipped.
        let cancelled = Mutex::new(cancelled);
        if batch_ids.is_empty() {
            // The batch was held (its campaign is paused): none of it is sent now.
            later.clear();
        }

        // `send_concurrency` lanes take invitations from one queue; each sends its share over one
        // SMTP session, a message's content in the same write as the next one's commands. Their
        // outcomes are recorded as they arrive; what goes back to the outbox, and the batches
        // themselves, at the end.
        let pending = Pending {
            queue: Mutex::new(VecDeque::from(deliveries)),
            more: tokio::sync::Notify::new(),
            low: tokio::sync::Notify::new(),
            // Enough left for the lanes to go on with while the next chunk is read.
            low_water: (LOAD_CHUNK / 2).max(2 * queue.settings.send_concurrency),
            loading: std::sync::atomic::AtomicBool::new(!later.is_empty()),
        };
        let arrivals = Arrivals {
            recorder,
            owner,
            rest: Mutex::default(),
            leased: Arc::new(leased),
            renew_every: queue.settings.lease / 3,
            renew_at: Mutex::new(std::time::Instant::now() + queue.settings.lease / 3),
        };
        let sending = std::time::Instant::now();
        let load_later = async {
            let mut ended = None;
            for mut chunk in later {
                pending.wait_until_low().await;
                match load_rows(&queue.db, &mut chunk).await {
                    Err(e) => {
                        ended = Some(Stopped::LoadFailed(e));
                        break;
                    }
                    Ok(statuses) => {
                        if statuses.values().any(|s| *s == CampaignStatus::Paused) {
                            // What is queued and not sent yet stays queued, in the batch.
                            pending.queue.lock().unwrap_or_else(PoisonError::into_inner).clear();
                            ended = Some(Stopped::Paused);
                            break;
                        }
                        // Cancelled: the lanes skip the rest (this chunk and what they have not
                        // taken yet), so the batch ends now rather than waiting to be looked at
                        // again after `PAUSED_RECHECK_SECS`.
                        cancelled.lock().unwrap_or_else(PoisonError::into_inner).extend(
                            statuses
                                .iter()
                                .filter(|(_, s)| **s == CampaignStatus::Cancelled)
                                .map(|(id, _)| id.clone()),
                        );
                    }
                }
                pending
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(chunk);
                pending.more.notify_waiters();
            }
            pending.loading.store(false, std::sync::atomic::Ordering::SeqCst);
            pending.more.notify_waiters();
            ended
        };
        let lanes = async {
            (0..queue.settings.send_concurrency.max(1))
                .map(|_| self.send_lane(queue, &pending, &arrivals, &cancelled))
                .collect::<futures_util::stream::FuturesUnordered<_>>()
                .collect::<Vec<()>>()
                .await;
        };
        let (stopped, ()) = tokio::join!(load_later, lanes);
        let rest = std::mem::take(&mut *arrivals.rest.lock().unwrap_or_else(PoisonError::into_inner));
        let send_ms = sending.elapsed().as_secs_f64() * 1000.0;
        // A batch stopped part way is not finished: what it still has queued is sent when it is
        // claimed again (what was sent is recorded all the same, and skipped then). A paused
        // campaign's batch is put back to look again when resumed (or after
        // `PAUSED_RECHECK_SECS`); one whose chunk could not be read stays leased until its lease
        // expires.
        let (batch_ids, put_off) = match stopped {
            None => (batch_ids, Vec::new()),
            Some(Stopped::Paused) => {
                tracing::info!(owner, "campaign paused during a batch; the rest of it waits");
                (Vec::new(), batch_ids)
            }
            Some(Stopped::LoadFailed(e)) => {
                tracing::warn!(owner, error = %e, "loading part of an invitation batch failed; the batch is taken up again when its lease expires");
                (Vec::new(), Vec::new())
            }
        };

        // Recorded after this round's outcomes, while the worker's next round sends: its lanes
        // would otherwise wait for the commit (4.75 ms of a 29 ms round of 100 with the defaults,
        // BENCHMARKS.md). Until then, the batches stay leased to this worker.
        let closing = recorder.close(owner, batch_ids, put_off, rest);
        tracing::debug!(load_ms, send_ms, "invitation batch sent");
        // Earlier rounds' ends already recorded are done with (a failure is reported now); the
        // oldest beyond `ROUND_ENDS_AHEAD` is waited for.
        let (answered, oldest) = {
            let mut closings = self.closing.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = closings.entry(owner.to_owned()).or_default();
            pending.push_back(closing);
            let mut answered = Ok(());
            while let Some(result) = pending.front_mut().and_then(Closing::try_finished) {
                pending.pop_front();
                answered = answered.and(result);
            }
            let oldest = (pending.len() > ROUND_ENDS_AHEAD)
                .then(|| pending.pop_front())
                .flatten();
            (answered, oldest)
        };
        answered?;
        match oldest {
            Some(oldest) => oldest.finished().await,
            None => Ok(()),
        }
    }

    /// The invitation's email, or the outcome that stands instead of sending it.
    async fn build_email(&self, queue: &Queue, row: &PendingInvitation) -> Result<OutgoingEmail, Outcome> {
        let cc = match self.campaign_context(&queue.db, &row.campaign_id).await {
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
        // One language per recipient: the locale's subject, intro, frequency and consent text.
        let (subject, intro) = variant
            .and_then(|v| cc.messages.subject_intro(&v.name, locale))
            .unwrap_or((cc.campaign.subject.as_str(), cc.campaign.intro.as_str()));
        let Some(consent) = cc.consents.get(locale.as_str()) else {
            return Err(Outcome::Skipped(format!(
                "the campaign has no consent text in '{locale}'"
            )));
        };
        let frequency = cc
            .messages
            .locale(locale)
            .map_or(cc.campaign.frequency.as_deref(), |l| l.frequency.as_deref());
        let now = db::now();
        let (landing, open, unsubscribe) =
            match self
                .keyring
                .sign_invitation(&row.id, &row.campaign_id, locale.as_str(), now)
            {
                Ok(t) => (
                    self.link("l", &t.landing),
                    self.link("o", &t.open),
                    self.link("u", &t.unsubscribe),
                ),
                Err(e) => return Err(Outcome::Retry(format!("signing links: {e}"))),
            };
        let categories = consent.category_list();
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
            company: &consent.company_name,
            subject,
            intro,
            categories: &categories,
            frequency,
            privacy_url: &consent.privacy_url,
            landing_url: &landing,
            pixel_url: &open,
            unsubscribe_url: &unsubscribe,
        };
        let rendered = match cc.prepared(variant_index, &content) {
            // Over SMTP only the message as sent is read; the dev outbox also stores its parts.
            Some(prepared) if matches!(self.mailer, Mailer::Smtp(_)) => prepared.render_raw(&content),
            Some(prepared) => prepared.render(&content),
            None => invitation::render(&content),
        };
        // A message that cannot be built never will be: record it, do not retry forever.
        let cannot_build = |e: String| Outcome::Bounced {
            hard: false,
            reason: format!("could not build the message: {e}"),
        };
        let mut email = rendered.map_err(|e| cannot_build(e.to_string()))?;
        // Bounces go to the invitation's own VERP address; the From header stays the workspace's.
        if let (Some(bounces), Some(token)) = (&self.bounce_address, &row.bounce_token) {
            let sender = bounces.envelope_sender(token).map_err(&cannot_build)?;
            email.envelope = lettre::address::Envelope::new(Some(sender), email.envelope.to().to_vec())
                .map_err(|e| cannot_build(e.to_string()))?;
        }
        Ok(email)
    }

    /// Sends invitations from `pending` until it is empty, over one [`super::MailSeries`]; hands
    /// each outcome to `arrivals` as soon as it is known.
    async fn send_lane(
        &self,
        queue: &Queue,
        pending: &Pending,
        arrivals: &Arrivals<'_>,
        cancelled: &Mutex<HashSet<String>>,
    ) {
        let mut series = self.mailer.series::<(Delivery, Permit, String)>();
        let settle = |done: Vec<((Delivery, Permit, String), _)>| {
            arrivals.push(
                done.into_iter()
                    .map(|((delivery, permit, message_id), result)| {
                        (delivery, self.sent_outcome(permit, message_id, result))
                    })
                    .collect(),
            );
        };
        // Every delivery taken from the queue gets exactly one outcome in `arrivals`: one never
        // recorded would stay queued with no job left to send it.
        let next_email = || async {
            loop {
                let delivery = pending.next().await?;
                let email = match &delivery.row {
                    None => Err(Outcome::Skipped("invitation no longer exists".into())),
                    Some(r) if r.status != InvitationStatus::Queued => Err(Outcome::AlreadyDone),
                    Some(r)
                        if cancelled
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .contains(&r.campaign_id) =>
                    {
                        Err(Outcome::Skipped("campaign cancelled".into()))
                    }
                    // Unsubscribed or bounced since the campaign was queued.
                    Some(_) if delivery.suppressed => Err(Outcome::Skipped("email address is suppressed".into())),
                    Some(r) => self.build_email(queue, r).await,
                };
                match email {
                    Ok(email) => return Some((delivery, email)),
                    Err(outcome) => arrivals.push(vec![(delivery, outcome)]),
                }
            }
        };
        // The next message is built while the server answers the one before it, so signing and
        // rendering are off the lane's round trip.
        let mut upcoming = next_email().await;
        while let Some((delivery, email)) = upcoming.take() {
            let permit = self.breaker.permit();
            if let Permit::Wait(pause) = permit {
                arrivals.push(vec![(delivery, Outcome::Paused(pause))]);
                upcoming = next_email().await;
                continue;
            }
            let workspace_id = delivery
                .row
                .as_ref()
                .map(|r| r.workspace_id.clone())
                .unwrap_or_default();
            let message_id = email.message_id.clone();
            let (done, next) = tokio::join!(
                series.send(
                    (delivery, permit, message_id),
                    &workspace_id,
                    email,
                    self.dkim.as_deref(),
                ),
                next_email()
            );
            settle(done);
            upcoming = next;
        }
        settle(series.finish().await.into_iter().collect());
    }

    /// The outcome of a send the mailer answered; tells the circuit breaker.
    fn sent_outcome(&self, permit: Permit, message_id: String, result: Result<(), SendError>) -> Outcome {
        let failed = matches!(result, Err(SendError::Transient(_)));
        self.breaker.record(permit, !failed, None);
        if let Some(pause) = self.breaker.paused_for().filter(|_| failed) {
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
}

impl JobHandler for InvitationSender {
    fn kinds(&self) -> &[JobKind] {
        &[INVITATION_BATCH_JOB, INVITATION_EMAIL_JOB]
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        let (batches, singles): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|job| job.kind == INVITATION_BATCH_JOB.as_str());
        Box::pin(self.send_invitations(queue, owner, singles, batches))
    }

    fn settle<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            // Also what a round that did not end (a panic) handed over: its sends are recorded
            // before its jobs are put back.
            let closings = self.take_closing(owner);
            if let Some(recorder) = self.recorder.get() {
                // The rounds' ends were in that commit or earlier ones: when it failed, the
                // recorder goes on trying without the worker waiting for it (a stop while the
                // database is away would otherwise wait for three attempts).
                recorder.flush().await?;
            }
            let mut result = Ok(());
            for closing in closings {
                result = result.and(closing.finished().await);
            }
            result
        })
    }
}

/// What every invitation of a campaign shares; campaigns do not change once sending.
struct CampaignContext {
    campaign: Campaign,
    variants: Vec<Variant>,
    workspace: Workspace,
    messages: Messages,
    /// The consent text per locale.
    consents: HashMap<String, ConsentTextVersion>,
    /// Invitations rendered once per variant (index), locale and whether the recipient has a
    /// first name; `None` where the prepared form could not be used.
    prepared: Mutex<HashMap<PreparedInvitationKey, Option<Arc<PreparedInvitation>>>>,
}

/// Variant (index), locale, and whether the recipient has a first name.
type PreparedInvitationKey = (Option<usize>, Locale, bool);

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

/// An invitation as the sender needs it.
#[derive(Debug, Clone, Queryable)]
struct PendingInvitation {
    id: String,
    workspace_id: String,
    campaign_id: String,
    variant: String,
    locale: String,
    email: String,
    status: InvitationStatus,
    message_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_normalized: String,
    /// Its VERP envelope sender's token (see `bounce::verp`).
    bounce_token: Option<String>,
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
    /// Its address is suppressed (unsubscribed or bounced since the campaign was queued).
    suppressed: bool,
}

/// Where a round's lanes hand their outcomes: the final ones to the [`Recorder`] at once, those
/// that put an invitation back to the outbox kept for the round's end.
///
/// A round that runs long (a slow relay) keeps its jobs while it makes progress: an outcome
/// arriving a third of a lease after the last renewal (or the round's start) has their leases
/// extended with the next group commit. A claim ahead is at most half a lease old when its round
/// starts (`worker::Ahead::take`), so a sixth is left at the first renewal. A round stuck
/// without outcomes for longer loses its lease, and another worker takes the batch over.
struct Arrivals<'a> {
    recorder: &'a Recorder,
    owner: &'a str,
    rest: Mutex<Vec<(Delivery, Outcome)>>,
    /// The round's jobs.
    leased: Arc<Vec<String>>,
    renew_every: Duration,
    renew_at: Mutex<std::time::Instant>,
}

impl Arrivals<'_> {
    fn push(&self, outcomes: Vec<(Delivery, Outcome)>) {
        if outcomes.is_empty() {
            return;
        }
        {
            let mut renew_at = self.renew_at.lock().unwrap_or_else(PoisonError::into_inner);
            let now = std::time::Instant::now();
            if now >= *renew_at {
                *renew_at = now + self.renew_every;
                self.recorder.renew(self.owner, self.leased.clone());
            }
        }
        let mut later = self.recorder.record(self.owner, outcomes);
        if !later.is_empty() {
            self.rest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(&mut later);
        }
    }
}

/// Invitations a batch's loader reads in one query while its lanes send what is loaded.
const LOAD_CHUNK: usize = 100;

/// The deliveries a round's lanes take, filled by its loader a chunk at a time.
struct Pending {
    queue: Mutex<VecDeque<Delivery>>,
    /// Notified when a chunk is added and when loading ends.
    more: tokio::sync::Notify,
    /// Notified when a lane takes a delivery and fewer than `low_water` are left.
    low: tokio::sync::Notify,
    low_water: usize,
    /// More chunks are still to come.
    loading: std::sync::atomic::AtomicBool,
}

impl Pending {
    /// The next delivery, waiting for the loader when the queue is empty but more is coming;
    /// `None` once everything is taken.
    async fn next(&self) -> Option<Delivery> {
        loop {
            // Registered before looking, so a chunk added in between is not missed.
            let more = self.more.notified();
            tokio::pin!(more);
            more.as_mut().enable();
            let (next, left) = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                (queue.pop_front(), queue.len())
            };
            if let Some(delivery) = next {
                if left < self.low_water {
                    // A permit is kept when the loader is not waiting yet.
                    self.low.notify_one();
                }
                return Some(delivery);
            }
            if !self.loading.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            more.await;
        }
    }

    /// Waits until the lanes have fewer than `low_water` left to take.
    async fn wait_until_low(&self) {
        while self.queue.lock().unwrap_or_else(PoisonError::into_inner).len() >= self.low_water {
            self.low.notified().await;
        }
    }
}

/// Why a batch's round ended before the whole batch was read.
enum Stopped {
    /// The campaign was paused meanwhile (a cancelled one's rest is skipped instead).
    Paused,
    LoadFailed(WorkerError),
}

/// Reads the invitations of `deliveries` in one query, with whether their addresses are
/// suppressed and their campaigns' statuses (returned, for `hold_paused`): each statement is a
/// round trip, which costs the database more than these rows do (BENCHMARKS.md, "fifth
/// session").
async fn load_rows(db: &Db, deliveries: &mut [Delivery]) -> Result<HashMap<String, CampaignStatus>, WorkerError> {
    let ids: Vec<String> = deliveries.iter().map(|d| d.invitation_id.clone()).collect();
    let loaded: Vec<(PendingInvitation, CampaignStatus, bool)> = db
        .run(move |conn| -> Result<_, WorkerError> {
            let suppressed = suppressions::table
                .filter(suppressions::workspace_id.eq(invitations::workspace_id))
                .filter(suppressions::channel.eq(Channel::Email))
                .filter(suppressions::address.eq(contacts::email_normalized));
            invitations::table
                .inner_join(contacts::table)
                .inner_join(schema::campaigns::table)
                .filter(invitations::id.eq_any(&ids))
                .select((
                    (
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
                        invitations::bounce_token,
                    ),
                    schema::campaigns::status,
                    diesel::dsl::exists(suppressed),
                ))
                .load(conn)
                .map_err(WorkerError::from)
        })
        .await?;
    let mut statuses = HashMap::new();
    let mut rows: HashMap<String, (PendingInvitation, bool)> = HashMap::with_capacity(loaded.len());
    for (row, status, suppressed) in loaded {
        statuses.entry(row.campaign_id.clone()).or_insert(status);
        rows.insert(row.id.clone(), (row, suppressed));
    }
    for delivery in deliveries {
        if let Some((row, suppressed)) = rows.remove(&delivery.invitation_id) {
            delivery.row = Some(row);
            delivery.suppressed = suppressed;
        }
    }
    Ok(statuses)
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

/// The status check right before sending (`statuses`: the campaigns' stored statuses, read with
/// the invitations): the jobs of a paused campaign's invitations go back to the outbox unsent
/// and uncounted (whole, a batch stays one job), to look again after
/// [`campaigns::lifecycle::PAUSED_RECHECK_SECS`] or when resumed. Returns the deliveries and
/// batches left to send, and the cancelled campaigns (whose invitations are skipped).
async fn hold_paused(
    queue: &Queue,
    owner: &str,
    statuses: &HashMap<String, CampaignStatus>,
    deliveries: Vec<Delivery>,
    batch_ids: Vec<String>,
) -> Result<(Vec<Delivery>, Vec<String>, HashSet<String>), WorkerError> {
    let status_of = |d: &Delivery| d.row.as_ref().and_then(|r| statuses.get(&r.campaign_id)).copied();
    let cancelled: HashSet<String> = statuses
        .iter()
        .filter(|(_, s)| **s == CampaignStatus::Cancelled)
        .map(|(id, _)| id.clone())
        .collect();
    let mut held_jobs: HashSet<String> = HashSet::new();
    for d in &deliveries {
        if status_of(d) == Some(CampaignStatus::Paused) {
            held_jobs.insert(match &d.origin {
                Origin::Own(job) => job.id.clone(),
                Origin::Batch { job_id, .. } => job_id.clone(),
            });
        }
    }
    if held_jobs.is_empty() {
        return Ok((deliveries, batch_ids, cancelled));
    }
    let job_of = |d: &Delivery| match &d.origin {
        Origin::Own(job) => job.id.clone(),
        Origin::Batch { job_id, .. } => job_id.clone(),
    };
    let deliveries: Vec<Delivery> = deliveries
        .into_iter()
        .filter(|d| !held_jobs.contains(&job_of(d)))
        .collect();
    let batch_ids: Vec<String> = batch_ids.into_iter().filter(|id| !held_jobs.contains(id)).collect();
    let owner = owner.to_owned();
    queue
        .db
        .run(move |conn| {
            db::write_tx(conn, |conn| {
                let at = campaigns::lifecycle::paused_until();
                for id in &held_jobs {
                    outbox::defer(conn, &owner, id, at)?;
                }
                Ok::<_, DbError>(())
            })
        })
        .await?;
    Ok((deliveries, batch_ids, cancelled))
}
