//! The dashboard invitation email: the outbox job handler for [`USER_INVITE_JOB`].
//!
//! Each attempt draws a fresh token, stores its SHA-256 and the expiry (while the job's lease is
//! still held), then sends a plain-text email from the workspace's sender with the link
//! `{BASE_URL}/app/invite/{token}`. A temporary failure is tried again with backoff; a permanent
//! one, or an invitation used or withdrawn meanwhile, ends the job.

use std::sync::Arc;

use askama::Template;
use chrono::Duration;
use diesel::prelude::*;
use futures_util::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use url::Url;

use super::invite::{INVITE_HOURS, USER_INVITE_JOB};
use crate::accounts::Role;
use crate::crypto;
use crate::db::schema::{user_invites, workspaces};
use crate::db::{self, DbError};
use crate::domain::Locale;
use crate::i18n::team;
use crate::mail::dkim::DkimSigner;
use crate::mail::{EmailError, Mailer, OutgoingEmail, SendError};
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};

#[derive(Template)]
#[template(path = "email/user_invite/subject.txt")]
struct SubjectTemplate<'a> {
    subject: &'a str,
}

#[derive(Template)]
#[template(path = "email/user_invite/body.txt")]
struct BodyTemplate<'a> {
    body: &'a str,
}

/// What the email says, and to whom.
pub struct InviteEmail<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub locale: Locale,
    pub workspace: &'a str,
    pub inviter: &'a str,
    pub role: Role,
    pub link: &'a str,
}

/// Renders the invitation as a plain-text message.
pub fn render(email: &InviteEmail<'_>) -> Result<OutgoingEmail, EmailError> {
    let t = team::strings(email.locale);
    let fill = |s: &str| {
        s.replace("{workspace}", email.workspace)
            .replace("{inviter}", email.inviter)
            .replace("{role}", team::role(email.locale, email.role))
            .replace("{link}", email.link)
    };
    let subject = SubjectTemplate {
        subject: &fill(t.mail_subject),
    }
    .render()?
    .trim()
    .to_owned();
    let text = BodyTemplate {
        body: &fill(t.mail_body),
    }
    .render()?;
    let from: Mailbox = email
        .from
        .parse()
        .map_err(|e| EmailError::Address(format!("from '{}': {e}", email.from)))?;
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| EmailError::Address(format!("to '{}': {e}", email.to)))?;
    let message_id = format!("<{}@{}>", db::new_id(), from.email.domain());
    let message = lettre::Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(subject.clone())
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(text.clone())
        .map_err(|e| EmailError::Build(e.to_string()))?;
    Ok(OutgoingEmail {
        from,
        to,
        subject,
        text,
        html: None,
        message_id,
        envelope: message.envelope().clone(),
        raw: message.formatted(),
    })
}

/// Sends dashboard invitations; registered for [`USER_INVITE_JOB`].
pub struct UserInviteSender {
    pub mailer: Mailer,
    pub dkim: Option<Arc<DkimSigner>>,
    /// The link in the email points here.
    pub base_url: Url,
}

/// An invitation to send, with its workspace's name and sender.
struct Pending {
    workspace_id: String,
    workspace: String,
    from: String,
    email: String,
    role: String,
    locale: String,
    invited_by: String,
}

impl UserInviteSender {
    async fn send_one(&self, queue: &Queue, owner: &str, job: Job) -> Result<(), WorkerError> {
        let token = crypto::random_secret();
        let (id, owner_id, job_id, hash) = (
            job.ref_id.clone(),
            owner.to_owned(),
            job.id.clone(),
            crypto::sha256_hex(token.as_bytes()),
        );
        let pending = queue
            .db
            .run(move |conn| -> Result<Option<Pending>, WorkerError> {
                db::write_tx(conn, |conn| {
                    if !outbox::holds(conn, &owner_id, &job_id)? {
                        return Ok(None);
                    }
                    let now = db::now();
                    let found: Option<Pending> = user_invites::table
                        .inner_join(workspaces::table)
                        .filter(user_invites::id.eq(&id))
                        .filter(user_invites::used_at.is_null())
                        .filter(user_invites::expires_at.gt(now))
                        .select((
                            user_invites::workspace_id,
                            workspaces::name,
                            workspaces::from_address,
                            user_invites::email,
                            user_invites::role,
                            user_invites::locale,
                            user_invites::invited_by,
                        ))
                        .first::<(String, String, String, String, String, String, String)>(conn)
                        .optional()?
                        .map(
                            |(workspace_id, workspace, from, email, role, locale, invited_by)| Pending {
                                workspace_id,
                                workspace,
                                from,
                                email,
                                role,
                                locale,
                                invited_by,
                            },
                        );
                    let Some(found) = found else {
                        // Used, withdrawn by a newer invitation, or gone: nothing to send.
                        outbox::finish(conn, &owner_id, std::slice::from_ref(&job_id))?;
                        return Ok(None);
                    };
                    diesel::update(user_invites::table.find(&id))
                        .set((
                            user_invites::token_sha256.eq(Some(&hash)),
                            user_invites::expires_at.eq(now + Duration::hours(INVITE_HOURS)),
                        ))
                        .execute(conn)?;
                    Ok(Some(found))
                })
            })
            .await?;
        let Some(p) = pending else {
            return Ok(());
        };
        let link = format!("{}/app/invite/{token}", self.base_url.as_str().trim_end_matches('/'));
        let rendered = render(&InviteEmail {
            from: &p.from,
            to: &p.email,
            locale: Locale::parse(&p.locale).unwrap_or(Locale::En),
            workspace: &p.workspace,
            inviter: &p.invited_by,
            role: Role::parse(&p.role).unwrap_or(Role::Viewer),
            link: &link,
        });
        let outcome = match rendered {
            Ok(email) => {
                let mut series = self.mailer.series::<()>();
                let mut outcomes = series.send((), &p.workspace_id, email, self.dkim.as_deref()).await;
                outcomes.extend(series.finish().await);
                outcomes
                    .pop()
                    .map_or(Err(SendError::Transient("no outcome".into())), |(_, r)| r)
            }
            Err(e) => Err(SendError::Permanent {
                code: None,
                hard_bounce: false,
                reason: e.to_string(),
            }),
        };
        let (max_attempts, base, max) = (
            queue.settings.max_attempts,
            queue.settings.retry_base,
            queue.settings.retry_max,
        );
        let (owner, job_id) = (owner.to_owned(), job.id.clone());
        queue
            .db
            .run(move |conn| -> Result<(), DbError> {
                match outcome {
                    Ok(()) => {
                        outbox::finish(conn, &owner, &[job_id])?;
                    }
                    Err(SendError::Transient(reason)) if job.attempts < max_attempts => {
                        let after = db::now()
                            + Duration::from_std(outbox::backoff(job.attempts, base, max))
                                .unwrap_or(Duration::hours(1));
                        outbox::retry_later(conn, &owner, &job_id, after, &reason)?;
                    }
                    Err(e) => {
                        tracing::warn!(invite = job.ref_id, error = %e, "dashboard invitation not sent");
                        outbox::finish(conn, &owner, &[job_id])?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

impl JobHandler for UserInviteSender {
    fn kinds(&self) -> &[JobKind] {
        &[USER_INVITE_JOB]
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
