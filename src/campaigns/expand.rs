//! Expansion of a campaign's audience into invitations, one page of contacts per transaction,
//! and the outbox job handler that runs it ([`ExpansionHandler`]).

use std::collections::HashSet;
use std::sync::Arc;

use diesel::prelude::*;
use futures_util::future::BoxFuture;

use super::{Campaign, CampaignStatus, InvitationStatus, Variant, assign_variant};
use crate::consent::SubscriptionStatus;
use crate::db::schema::{campaigns, contacts, invitations, sms_subscriptions, suppressions};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Channel, Locale};
use crate::funnel::{self, Metric};
use crate::mail::deliver::INVITATION_BATCH_JOB;
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};
use crate::workspace;

/// Turn a campaign's audience into invitations, a page at a time (`ref_id` = campaign; `cursor`
/// = the last contact expanded).
pub const CAMPAIGN_EXPAND_JOB: JobKind = JobKind::new("campaign_expand");

/// Contacts per page: one write transaction each.
pub const PAGE_SIZE: i64 = 1000;

#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More contacts may follow the cursor (the last contact id of this page).
    More {
        cursor: String,
        queued: usize,
    },
    Done {
        queued: usize,
    },
    /// The expansion job's lease went to another worker, which goes on from the last page
    /// committed; this page wrote nothing.
    LeaseLost,
}

/// The expansion job a page belongs to: the page's transaction renews its lease and moves its
/// cursor, so a page and its checkpoint commit together.
struct PageJob<'a> {
    owner: &'a str,
    job_id: &'a str,
    lease: std::time::Duration,
}

#[derive(Queryable)]
struct AudienceRow {
    id: String,
    email: String,
    email_normalized: String,
    locale: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = invitations, treat_none_as_default_value = false)]
struct NewInvitation<'a> {
    id: String,
    message_id: String,
    workspace_id: &'a str,
    campaign_id: &'a str,
    contact_id: &'a str,
    variant: &'a str,
    locale: &'static str,
    email: &'a str,
    status: InvitationStatus,
    attempts: i32,
    queued_at: chrono::NaiveDateTime,
    open_count: i32,
    click_count: i32,
    /// The envelope sender's VERP token when `BOUNCE_ADDRESS` is set (`mail::bounce::verp`).
    bounce_token: Option<String>,
}

/// Queues invitations for the page of contacts after `cursor`. Contacts are skipped when their
/// locale is outside the audience, their email is suppressed, they have an active SMS consent
/// with the workspace already (nothing left to ask), or they already have an invitation for this
/// campaign (a page repeated after a crash). A cancelled campaign queues nothing more. The new
/// invitations are queued for sending `batch` to an outbox job. The same transaction renews the
/// job's lease and stores the new cursor: one write transaction per page, not two (on SQLite each
/// waits for the one write lock).
fn expand_page(
    conn: &mut DbConn,
    expansion: &Expansion,
    job: &PageJob<'_>,
    cursor: Option<&str>,
    batch: usize,
) -> Result<Progress, DbError> {
    let Expansion {
        campaign,
        variants,
        workspace_locale,
        message_domain,
        verp,
    } = expansion;
    let (workspace_locale, verp) = (*workspace_locale, *verp);
    let audience = campaign.audience();
    db::write_tx(conn, |conn| {
        // First, so a worker that lost the job writes nothing; the row stays ours until commit
        // (locked on PostgreSQL; SQLite has one writer).
        if outbox::extend_leases(conn, job.owner, &[job.job_id.to_owned()], job.lease)?.is_empty() {
            return Ok(Progress::LeaseLost);
        }
        let status: CampaignStatus = campaigns::table
            .find(&campaign.id)
            .select(campaigns::status)
            .first(conn)?;
        if status == CampaignStatus::Cancelled {
            finish(conn, &campaign.id)?;
            return Ok(Progress::Done { queued: 0 });
        }
        let mut query = contacts::table
            .filter(contacts::workspace_id.eq(&campaign.workspace_id))
            .order(contacts::id.asc())
            .limit(PAGE_SIZE)
            .select((
                contacts::id,
                contacts::email,
                contacts::email_normalized,
                contacts::locale,
            ))
            .into_boxed();
        if let Some(after) = cursor {
            query = query.filter(contacts::id.gt(after.to_owned()));
        }
        let page: Vec<AudienceRow> = query.load(conn)?;
        let Some(last) = page.last().map(|c| c.id.clone()) else {
            finish(conn, &campaign.id)?;
            return Ok(Progress::Done { queued: 0 });
        };

        let emails: Vec<&str> = page.iter().map(|c| c.email_normalized.as_str()).collect();
        let suppressed: HashSet<String> = suppressions::table
            .filter(suppressions::workspace_id.eq(&campaign.workspace_id))
            .filter(suppressions::channel.eq(Channel::Email))
            .filter(suppressions::address.eq_any(&emails))
            .select(suppressions::address)
            .load(conn)?
            .into_iter()
            .collect();
        let ids: Vec<&str> = page.iter().map(|c| c.id.as_str()).collect();
        // A follow-up wave (issue 17) goes only to its parent's recipients matching its audience,
        // as they stand now, when it is sent.
        let follow_up = match super::follow_up::spec(conn, &campaign.id)? {
            Some((parent, audience)) => Some(super::follow_up::audience_among(
                conn,
                &campaign.workspace_id,
                &parent,
                audience,
                &ids,
            )?),
            None => None,
        };
        // The page is every contact of the workspace after the cursor up to `last`, so a range of
        // the (campaign_id, contact_id) index finds its invitations: one index descent instead of
        // one per contact (3 – 6 µs an invitation on PostgreSQL, BENCHMARKS.md "fifth session").
        let mut invited = invitations::table
            .filter(invitations::campaign_id.eq(&campaign.id))
            .filter(invitations::contact_id.le(&last))
            .select(invitations::contact_id)
            .into_boxed();
        if let Some(after) = cursor {
            invited = invited.filter(invitations::contact_id.gt(after.to_owned()));
        }
        let invited: HashSet<String> = invited.load(conn)?.into_iter().collect();
        let subscribed: HashSet<String> = sms_subscriptions::table
            .filter(sms_subscriptions::workspace_id.eq(&campaign.workspace_id))
            .filter(sms_subscriptions::contact_id.eq_any(&ids))
            .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active))
            .select(sms_subscriptions::contact_id)
            .load(conn)?
            .into_iter()
            .collect();

        let now = db::now();
        let mut rows = Vec::new();
        for contact in &page {
            let locale = contact
                .locale
                .as_deref()
                .and_then(Locale::parse)
                .unwrap_or(workspace_locale);
            if !audience.contains(&locale)
                || follow_up
                    .as_ref()
                    .is_some_and(|eligible| !eligible.contains(&contact.id))
                || suppressed.contains(&contact.email_normalized)
                || invited.contains(&contact.id)
                || subscribed.contains(&contact.id)
            {
                continue;
            }
            let variant = assign_variant(&campaign.id, &contact.id, variants);
            let id = db::new_id();
            rows.push(NewInvitation {
                // Fixed when queued: every retry is the same message, so receivers can drop a
                // duplicate delivery (RFC 5322 3.6.4).
                message_id: format!("<{id}@{message_domain}>"),
                id,
                workspace_id: &campaign.workspace_id,
                campaign_id: &campaign.id,
                contact_id: &contact.id,
                variant: &variant.name,
                locale: locale.as_str(),
                email: &contact.email,
                status: InvitationStatus::Queued,
                attempts: 0,
                queued_at: now,
                open_count: 0,
                click_count: 0,
                // Only when bounces go to VERP addresses: each token is an entry in a unique
                // index, which every insert pays for (BENCHMARKS.md, "Invitation sending").
                bounce_token: verp.then(crate::mail::bounce::verp::new_token),
            });
        }
        match conn {
            DbConn::Sqlite(c) => diesel::insert_into(invitations::table).values(&rows).execute(c)?,
            // COPY: a multi-row INSERT of 1,000 rows binds 13,000 parameters, and parsing and
            // planning them cost PostgreSQL more than storing the rows (bench/send.sh).
            DbConn::Pg(c) => diesel::copy_from(invitations::table)
                .from_insertable(&rows)
                .execute(c)?,
        };
        let job_refs: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        outbox::enqueue_batches(
            conn,
            &campaign.workspace_id,
            INVITATION_BATCH_JOB,
            &campaign.id,
            &job_refs,
            batch,
            now,
        )?;

        let mut tally = funnel::Tally::default();
        for r in &rows {
            tally.add(&campaign.id, r.variant, r.locale, Metric::Recipients, now);
        }
        tally.flush(conn)?;

        let queued = rows.len();
        if (page.len() as i64) < PAGE_SIZE {
            finish(conn, &campaign.id)?;
            Ok(Progress::Done { queued })
        } else {
            outbox::checkpoint(conn, job.owner, job.job_id, &last, job.lease)?;
            Ok(Progress::More { cursor: last, queued })
        }
    })
}

/// The audience is queued; the campaign reads as sent once the sends are done
/// ([`super::effective_status`]).
fn finish(conn: &mut DbConn, campaign_id: &str) -> Result<(), DbError> {
    let now = db::now();
    diesel::update(campaigns::table.find(campaign_id))
        .set(campaigns::expanded_at.eq(now))
        .execute(conn)?;
    crate::webhooks::campaign_sent(conn, campaign_id, now)?;
    Ok(())
}

/// Expands campaigns' audiences; registered for [`CAMPAIGN_EXPAND_JOB`].
pub struct ExpansionHandler {
    /// `BOUNCE_ADDRESS` is set: each invitation gets the token of its VERP envelope sender.
    pub verp: bool,
}

impl JobHandler for ExpansionHandler {
    fn kinds(&self) -> &[JobKind] {
        &[CAMPAIGN_EXPAND_JOB]
    }

    fn long_running(&self) -> bool {
        true
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            for job in jobs {
                expand_campaign(queue, owner, job, self.verp).await?;
            }
            Ok(())
        })
    }
}

/// What expanding a campaign needs besides its contacts; campaigns do not change once sending.
struct Expansion {
    campaign: Campaign,
    variants: Vec<Variant>,
    workspace_locale: Locale,
    /// The domain of the invitations' Message-IDs: the workspace's sender domain.
    message_domain: String,
    /// Whether invitations get a VERP token (`BOUNCE_ADDRESS` is set).
    verp: bool,
}

/// Expands one campaign page by page from the job's cursor, checkpointing each page; finishes
/// the job when the audience is done.
async fn expand_campaign(queue: &Queue, owner: &str, job: Job, verp: bool) -> Result<(), WorkerError> {
    let id = job.ref_id.clone();
    let expansion = queue
        .db
        .run(move |conn| -> Result<Option<Expansion>, WorkerError> {
            let campaign = super::find_any(conn, &id)?
                .ok_or_else(|| WorkerError::Inconsistent(format!("campaign {id} missing")))?;
            match campaign.status {
                // A cancelled (or never sent) campaign expands to nothing.
                CampaignStatus::Cancelled | CampaignStatus::Draft => return Ok(None),
                // The scheduler: this job was due at the scheduled time.
                CampaignStatus::Scheduled => {
                    diesel::update(
                        campaigns::table
                            .find(&id)
                            .filter(campaigns::status.eq(CampaignStatus::Scheduled)),
                    )
                    .set(campaigns::status.eq(CampaignStatus::Sending))
                    .execute(conn)?;
                }
                _ => {}
            }
            let variants = super::variants_of(conn, &id)?;
            let workspace = workspace::find(conn, &campaign.workspace_id)?
                .ok_or_else(|| WorkerError::Inconsistent(format!("workspace of campaign {id} missing")))?;
            let message_domain = workspace
                .from_address
                .rsplit_once('@')
                .map_or("optbridge.invalid", |(_, d)| d.trim_end_matches('>'))
                .to_owned();
            Ok(Some(Expansion {
                campaign,
                variants,
                workspace_locale: workspace.locale,
                message_domain,
                verp,
            }))
        })
        .await?;
    let Some(expansion) = expansion else {
        let (o, id) = (owner.to_owned(), job.id.clone());
        queue.db.run(move |conn| outbox::finish(conn, &o, &[id])).await?;
        return Ok(());
    };
    let expansion = Arc::new(expansion);
    let batch = usize::try_from(queue.settings.invitation_batch).unwrap_or(1);
    let mut cursor = job.cursor.clone();
    loop {
        let e = expansion.clone();
        let after = cursor.clone();
        let (o, id, lease) = (owner.to_owned(), job.id.clone(), queue.settings.lease);
        let started = std::time::Instant::now();
        let progress = queue
            .db
            .run(move |conn| {
                let page_job = PageJob {
                    owner: &o,
                    job_id: &id,
                    lease,
                };
                expand_page(conn, &e, &page_job, after.as_deref(), batch)
            })
            .await?;
        queue.wake.notify_waiters();
        tracing::debug!(
            campaign = job.ref_id,
            page_ms = started.elapsed().as_secs_f64() * 1000.0,
            "audience page queued"
        );
        match progress {
            Progress::More { cursor: next, .. } => cursor = Some(next),
            Progress::LeaseLost => {
                tracing::warn!(
                    campaign = job.ref_id,
                    "lost the expansion lease; another worker continues"
                );
                return Ok(());
            }
            Progress::Done { .. } => {
                let (o, id) = (owner.to_owned(), job.id.clone());
                queue.db.run(move |conn| outbox::finish(conn, &o, &[id])).await?;
                tracing::info!(campaign = job.ref_id, "campaign audience queued");
                return Ok(());
            }
        }
    }
}
