//! The reminder email (issue 17, see `consent::reminder`) and the outbox job handler that sends
//! it: one message per job, built with lettre's message builder (reminders are few; the
//! invitation's hand-assembled fast path is not needed here).

use std::sync::Arc;

use askama::Template;
use futures_util::future::BoxFuture;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use url::Url;

use super::dkim::DkimSigner;
use super::{EmailError, Mailer, OutgoingEmail, SendError};
use crate::consent::reminder::{self, DOI_REMINDER_JOB, Reminder, ReminderDecision, ReminderStatus};
use crate::i18n::{self, ConversionStrings};
use crate::links::{Keyring, LinkPurpose};
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};

#[derive(Template)]
#[template(path = "email/reminder/body.txt")]
struct TextPart<'a> {
    t: &'a ConversionStrings,
    hello: &'a str,
    first_name: Option<&'a str>,
    body: &'a str,
    code_url: &'a str,
    why_received: &'a str,
    unsubscribe_label: &'a str,
    unsubscribe_url: &'a str,
    privacy_label: &'a str,
    privacy_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/reminder/body.html")]
struct HtmlPart<'a> {
    t: &'a ConversionStrings,
    lang: &'a str,
    company: &'a str,
    hello: &'a str,
    first_name: Option<&'a str>,
    body: &'a str,
    code_url: &'a str,
    why_received: &'a str,
    unsubscribe_label: &'a str,
    unsubscribe_url: &'a str,
    privacy_label: &'a str,
    privacy_url: &'a str,
}

/// The reminder as sent: text and HTML, localized, linking to the code page, with one-click
/// unsubscribe (RFC 8058) like the invitation it follows.
pub fn render(r: &Reminder, code_url: &str, unsubscribe_url: &str) -> Result<OutgoingEmail, EmailError> {
    let t = i18n::conversion(r.locale);
    let e = i18n::email(r.locale);
    let body = t.reminder_body.replace("{company}", &r.company);
    let why = i18n::why_received(r.locale, &r.company);
    let text = TextPart {
        t,
        hello: e.hello,
        first_name: r.first_name.as_deref(),
        body: &body,
        code_url,
        why_received: &why,
        unsubscribe_label: e.unsubscribe,
        unsubscribe_url,
        privacy_label: e.privacy,
        privacy_url: &r.privacy_url,
    }
    .render()?;
    let html = HtmlPart {
        t,
        lang: r.locale.as_str(),
        company: &r.company,
        hello: e.hello,
        first_name: r.first_name.as_deref(),
        body: &body,
        code_url,
        why_received: &why,
        unsubscribe_label: e.unsubscribe,
        unsubscribe_url,
        privacy_label: e.privacy,
        privacy_url: &r.privacy_url,
    }
    .render()?;
    let from: Mailbox = r
        .from
        .parse()
        .map_err(|e| EmailError::Address(format!("from '{}': {e}", r.from)))?;
    let to: Mailbox = r
        .to_email
        .parse()
        .map_err(|e| EmailError::Address(format!("to '{}': {e}", r.to_email)))?;
    let header = |name: &'static str, value: String| HeaderValue::new(HeaderName::new_from_ascii_str(name), value);
    let message = lettre::Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(t.reminder_subject)
        .message_id(Some(r.message_id.clone()))
        .raw_header(header("List-Unsubscribe", format!("<{unsubscribe_url}>")))
        .raw_header(header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_owned()))
        .multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
        .map_err(|e| EmailError::Build(e.to_string()))?;
    Ok(OutgoingEmail {
        envelope: message.envelope().clone(),
        raw: message.formatted(),
        from,
        to,
        subject: t.reminder_subject.to_owned(),
        text,
        html: Some(html),
        message_id: r.message_id.clone(),
    })
}

/// Sends reminders; registered for [`DOI_REMINDER_JOB`].
pub struct ReminderSender {
    pub mailer: Mailer,
    pub dkim: Option<Arc<DkimSigner>>,
    pub keyring: Arc<Keyring>,
    pub base_url: Url,
}

impl ReminderSender {
    fn link(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    async fn one(&self, queue: &Queue, owner: &str, job: Job) -> Result<(), WorkerError> {
        let invitation = job.ref_id.clone();
        let decision = queue.db.run(move |conn| reminder::prepare(conn, &invitation)).await?;
        let finish = |job_id: String| {
            let owner = owner.to_owned();
            queue.db.run(move |conn| outbox::finish(conn, &owner, &[job_id]))
        };
        let r = match decision {
            ReminderDecision::Skip(why) => {
                tracing::debug!(invitation = job.ref_id, why, "no reminder");
                finish(job.id).await?;
                return Ok(());
            }
            ReminderDecision::Send(r) => r,
        };
        let now = crate::db::now();
        let signed = self
            .keyring
            .sign(
                LinkPurpose::Landing,
                &r.invitation_id,
                &r.campaign_id,
                r.locale.as_str(),
                now,
            )
            .and_then(|landing| {
                self.keyring
                    .sign(
                        LinkPurpose::Unsubscribe,
                        &r.invitation_id,
                        &r.campaign_id,
                        r.locale.as_str(),
                        now,
                    )
                    .map(|unsubscribe| (landing, unsubscribe))
            });
        enum Outcome {
            Sent,
            /// Not delivered, worth another try (SMTP 4xx, connection trouble).
            Transient(String),
            Failed(String),
        }
        let outcome = match signed {
            Err(e) => Outcome::Failed(format!("signing the links: {e}")),
            Ok((landing, unsubscribe)) => {
                match render(
                    &r,
                    &self.link(&format!("l/{landing}/confirm")),
                    &self.link(&format!("u/{unsubscribe}")),
                ) {
                    Err(e) => Outcome::Failed(format!("rendering: {e}")),
                    Ok(email) => {
                        let mut series = self.mailer.series::<()>();
                        let mut results = series.send((), &r.workspace_id, email, self.dkim.as_deref()).await;
                        results.extend(series.finish().await);
                        match results.pop() {
                            Some((_, Ok(()))) => Outcome::Sent,
                            Some((_, Err(SendError::Transient(why)))) => Outcome::Transient(why),
                            Some((_, Err(SendError::Permanent { reason, .. }))) => Outcome::Failed(reason),
                            None => Outcome::Transient("no outcome from the mail transport".to_owned()),
                        }
                    }
                }
            }
        };
        let (invitation, job_id, owner) = (r.invitation_id.clone(), job.id.clone(), owner.to_owned());
        let settings = queue.settings.clone();
        let attempts = job.attempts;
        queue
            .db
            .run(move |conn| match outcome {
                Outcome::Transient(why) if attempts < settings.max_attempts => {
                    // Not delivered: the reservation goes, the job comes back later.
                    tracing::info!(invitation, error = why, "reminder email to be tried again");
                    reminder::release(conn, &invitation)?;
                    let wait = outbox::backoff(attempts, settings.retry_base, settings.retry_max);
                    let at = crate::db::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    outbox::retry_later(conn, &owner, &job_id, at, &why)
                }
                Outcome::Transient(why) | Outcome::Failed(why) => {
                    tracing::warn!(invitation, error = why, "reminder email not sent");
                    reminder::record(conn, &invitation, ReminderStatus::Failed, crate::db::now())?;
                    outbox::finish(conn, &owner, &[job_id]).map(drop)
                }
                Outcome::Sent => {
                    reminder::record(conn, &invitation, ReminderStatus::Sent, crate::db::now())?;
                    outbox::finish(conn, &owner, &[job_id]).map(drop)
                }
            })
            .await?;
        Ok(())
    }
}

impl JobHandler for ReminderSender {
    fn kinds(&self) -> &[JobKind] {
        &[DOI_REMINDER_JOB]
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            for job in jobs {
                self.one(queue, owner, job).await?;
            }
            Ok(())
        })
    }
}
