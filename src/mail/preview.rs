//! Campaign previews and test sends (issue 16, items 5 and 6): the invitation exactly as a
//! recipient of one locale and variant gets it — the same [`invitation::render`] the sender uses
//! — for a sample recipient, with links that open a preview landing page and record nothing
//! (`LinkPurpose::Preview`). A test send goes through the outbox and the real transport, its
//! subject marked, and is no recipient: no invitation, no funnel count, no status change.

use std::sync::Arc;

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use url::Url;

use super::dkim::DkimSigner;
use super::invitation::{self, InvitationContent};
use super::{EmailError, Mailer, OutgoingEmail, SendError};
use crate::campaigns::{self, CampaignError, CampaignView, Messages};
use crate::consent::texts as consent_texts;
use crate::db::schema::campaign_test_sends;
use crate::db::{self, DbConn, DbError};
use crate::domain::{EmailAddress, Locale};
use crate::links::{Keyring, LinkError, LinkPurpose};
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};
use crate::workspace;

/// Send one test of a campaign (`ref_id` = the `campaign_test_sends` row).
pub const TEST_SEND_JOB: JobKind = JobKind::new("campaign_test_email");
/// Marks a test send in the recipient's inbox.
pub const TEST_SUBJECT_PREFIX: &str = "[TEST] ";
/// Test sends per campaign per hour: enough to check every locale and variant, too few to mail
/// a list through the back door.
pub const TEST_SENDS_PER_HOUR: i64 = 20;

/// Who a preview is addressed to.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub email: &'a str,
    pub first_name: Option<&'a str>,
}

/// The recipient a preview shows: a first name, so the greeting shows as recipients with one
/// see it.
pub const PREVIEW_RECIPIENT: Sample<'static> = Sample {
    email: "anna@example.com",
    first_name: Some("Anna"),
};

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error("signing the links: {0}")]
    Links(#[from] LinkError),
    #[error(transparent)]
    Email(#[from] EmailError),
}

impl From<DbError> for PreviewError {
    fn from(e: DbError) -> Self {
        Self::Campaign(CampaignError::Db(e))
    }
}

/// The locale and variant asked for, checked against the campaign; by default its first locale
/// and first variant.
pub fn choose(
    view: &CampaignView,
    locale: Option<&str>,
    variant: Option<&str>,
) -> Result<(Locale, String), CampaignError> {
    let audience: Vec<Locale> = view.locales.iter().filter_map(|l| Locale::parse(&l.locale)).collect();
    let locale = match locale.filter(|l| !l.is_empty()) {
        None => *audience
            .first()
            .ok_or_else(|| CampaignError::Invalid("the campaign has no locale".into()))?,
        Some(raw) => {
            let l: Locale = raw.parse().map_err(CampaignError::Invalid)?;
            if !audience.contains(&l) {
                return Err(CampaignError::Invalid(format!(
                    "locale '{l}' is not in the campaign's audience"
                )));
            }
            l
        }
    };
    let variant = match variant.filter(|v| !v.is_empty()) {
        None => view
            .variants
            .first()
            .map(|v| v.name.clone())
            .ok_or_else(|| CampaignError::Invalid("the campaign has no variant".into()))?,
        Some(v) => view
            .variants
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(v))
            .map(|x| x.name.clone())
            .ok_or_else(|| CampaignError::Invalid(format!("variant '{v}' is not in the campaign")))?,
    };
    Ok((locale, variant))
}

fn link(base_url: &Url, path: &str, token: &str) -> String {
    format!("{}/{path}/{token}", base_url.as_str().trim_end_matches('/'))
}

/// The campaign's invitation for `to` in `locale` and `variant`, its links preview links.
#[allow(clippy::too_many_arguments)]
pub fn render(
    conn: &mut DbConn,
    keyring: &Keyring,
    base_url: &Url,
    view: &CampaignView,
    locale: Locale,
    variant: &str,
    to: Sample<'_>,
    message_ref: &str,
    subject_prefix: &str,
) -> Result<OutgoingEmail, PreviewError> {
    let campaign = &view.campaign;
    let ws = workspace::find(conn, &campaign.workspace_id)?.ok_or(CampaignError::NotFound)?;
    let messages = Messages {
        locales: view.locales.clone(),
        variants: view.variant_locales.clone(),
    };
    let content = messages
        .locale(locale)
        .ok_or_else(|| CampaignError::Invalid(format!("locale '{locale}' is not in the campaign's audience")))?;
    let text =
        consent_texts::find(conn, &campaign.workspace_id, &content.consent_text_id)?.ok_or(CampaignError::NotFound)?;
    let (subject, intro) = messages
        .subject_intro(variant, locale)
        .ok_or_else(|| CampaignError::Invalid(format!("variant '{variant}' is not in the campaign")))?;
    let subject = format!("{subject_prefix}{subject}");
    let token = keyring.sign(
        LinkPurpose::Preview,
        message_ref,
        &campaign.id,
        locale.as_str(),
        db::now(),
    )?;
    let landing = link(base_url, "l", &token);
    let pixel = link(base_url, "o", &token);
    let unsubscribe = link(base_url, "u", &token);
    let categories = text.category_list();
    Ok(invitation::render(&InvitationContent {
        invitation_id: message_ref,
        message_id: None,
        locale,
        from: &ws.from_address,
        to_email: to.email,
        to_name: to.first_name.map(str::to_owned),
        first_name: to.first_name,
        company: &text.company_name,
        subject: &subject,
        intro,
        categories: &categories,
        frequency: content.frequency.as_deref(),
        privacy_url: &text.privacy_url,
        landing_url: &landing,
        pixel_url: &pixel,
        unsubscribe_url: &unsubscribe,
    })?)
}

/// Queues a test send of a campaign to `email`: 20 per campaign per hour at most
/// ([`CampaignError::Limited`] beyond).
pub fn request_test(
    conn: &mut DbConn,
    workspace_id: &str,
    campaign_id: &str,
    email: &str,
    locale: Option<&str>,
    variant: Option<&str>,
    actor: &crate::activity::Actor,
) -> Result<String, CampaignError> {
    let address = EmailAddress::parse(email).map_err(|e| CampaignError::Invalid(format!("email: {e}")))?;
    db::write_tx(conn, |conn| {
        let view = campaigns::find(conn, workspace_id, campaign_id)?.ok_or(CampaignError::NotFound)?;
        let (locale, variant) = choose(&view, locale, variant)?;
        let now = db::now();
        let recent: i64 = campaign_test_sends::table
            .filter(campaign_test_sends::campaign_id.eq(campaign_id))
            .filter(campaign_test_sends::created_at.gt(now - chrono::Duration::hours(1)))
            .count()
            .get_result(conn)?;
        if recent >= TEST_SENDS_PER_HOUR {
            return Err(CampaignError::Limited(format!(
                "at most {TEST_SENDS_PER_HOUR} test sends per campaign per hour; try again later"
            )));
        }
        let id = db::new_id();
        diesel::insert_into(campaign_test_sends::table)
            .values((
                campaign_test_sends::id.eq(&id),
                campaign_test_sends::campaign_id.eq(campaign_id),
                campaign_test_sends::email.eq(address.as_str()),
                campaign_test_sends::locale.eq(locale.as_str()),
                campaign_test_sends::variant.eq(&variant),
                campaign_test_sends::created_at.eq(now),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, Some(workspace_id), TEST_SEND_JOB, &id, now)?;
        crate::activity::record(
            conn,
            workspace_id,
            actor,
            crate::activity::Action::CampaignTestSent,
            Some(&view.campaign.name),
            &format!("{campaign_id} to {} ({locale}, variant {variant})", address.as_str()),
        )?;
        Ok(id)
    })
}

/// Sends test sends; registered for [`TEST_SEND_JOB`].
pub struct TestSendHandler {
    pub mailer: Mailer,
    pub dkim: Option<Arc<DkimSigner>>,
    pub keyring: Arc<Keyring>,
    pub base_url: Url,
}

#[derive(Queryable)]
struct TestSend {
    id: String,
    campaign_id: String,
    email: String,
    locale: String,
    variant: String,
}

/// The workspace a test send belongs to, and its message (or why it could not be built).
type BuiltTest = (String, Result<OutgoingEmail, String>);

impl TestSendHandler {
    async fn send_one(&self, queue: &Queue, owner: &str, job: Job) -> Result<(), WorkerError> {
        let (keyring, base_url, id) = (self.keyring.clone(), self.base_url.clone(), job.ref_id.clone());
        let built = queue
            .db
            .run(move |conn| -> Result<Option<BuiltTest>, WorkerError> {
                let Some(row) = campaign_test_sends::table
                    .find(&id)
                    .filter(campaign_test_sends::sent_at.is_null())
                    .select((
                        campaign_test_sends::id,
                        campaign_test_sends::campaign_id,
                        campaign_test_sends::email,
                        campaign_test_sends::locale,
                        campaign_test_sends::variant,
                    ))
                    .first::<TestSend>(conn)
                    .optional()?
                else {
                    return Ok(None);
                };
                let Some(campaign) = campaigns::find_any(conn, &row.campaign_id)? else {
                    return Ok(None);
                };
                let Some(view) = campaigns::find(conn, &campaign.workspace_id, &campaign.id)? else {
                    return Ok(None);
                };
                let locale = Locale::parse(&row.locale).unwrap_or(Locale::En);
                let to = Sample {
                    email: &row.email,
                    first_name: None,
                };
                let email = render(
                    conn,
                    &keyring,
                    &base_url,
                    &view,
                    locale,
                    &row.variant,
                    to,
                    &row.id,
                    TEST_SUBJECT_PREFIX,
                )
                .map_err(|e| e.to_string());
                Ok(Some((campaign.workspace_id, email)))
            })
            .await?;
        let outcome = match built {
            None => Ok(()),
            Some((_, Err(e))) => Err(SendError::Permanent {
                code: None,
                hard_bounce: false,
                reason: format!("could not build the message: {e}"),
            }),
            Some((workspace_id, Ok(email))) => {
                let mut series = self.mailer.series::<()>();
                let mut results = series.send((), &workspace_id, email, self.dkim.as_deref()).await;
                results.extend(series.finish().await);
                results
                    .into_iter()
                    .next()
                    .map_or(Err(SendError::Transient("no answer".into())), |(_, r)| r)
            }
        };
        let (owner, settings) = (owner.to_owned(), queue.settings.clone());
        queue
            .db
            .run(move |conn| {
                db::write_tx(conn, |conn| -> Result<(), DbError> {
                    let row = campaign_test_sends::table.find(&job.ref_id);
                    match outcome {
                        Ok(()) => {
                            diesel::update(row)
                                .set(campaign_test_sends::sent_at.eq(db::now()))
                                .execute(conn)?;
                        }
                        Err(SendError::Transient(reason)) if job.attempts < settings.max_attempts => {
                            let delay = outbox::backoff(job.attempts, settings.retry_base, settings.retry_max);
                            let at =
                                db::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(1));
                            return outbox::retry_later(conn, &owner, &job.id, at, &reason);
                        }
                        Err(e) => {
                            diesel::update(row)
                                .set(campaign_test_sends::last_error.eq(e.to_string()))
                                .execute(conn)?;
                        }
                    }
                    outbox::finish(conn, &owner, std::slice::from_ref(&job.id))?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }
}

impl JobHandler for TestSendHandler {
    fn kinds(&self) -> &[JobKind] {
        &[TEST_SEND_JOB]
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            for job in jobs {
                self.send_one(queue, owner, job).await?;
            }
            Ok(())
        })
    }
}
