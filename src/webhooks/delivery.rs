//! Sends queued webhook deliveries: one signed POST per attempt, each with the delivery's id as
//! `webhook-id` and a fresh `webhook-timestamp`; a 2xx answer delivers; anything else (another
//! status, a redirect, a timeout, a refused address) is a failed attempt, retried with the outbox's
//! backoff until `OUTBOX_MAX_ATTEMPTS`, then marked failed. `410 Gone` fails at once: the receiver
//! says it wants nothing more (Standard Webhooks, "Delivery success and failure").

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

use super::{DeliveryStatus, WEBHOOK_DELIVERY_JOB, destination, secret_context, signature};
use crate::db::schema::{webhook_deliveries, webhook_endpoints};
use crate::db::{self, DbConn};
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};
use crate::signing::KeyEncryption;

/// How long the receiver has to answer one attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The job handler for [`WEBHOOK_DELIVERY_JOB`].
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    allow_private: bool,
    encryption: KeyEncryption,
}

impl WebhookSender {
    pub fn new(allow_private: bool, encryption: KeyEncryption) -> Result<Self, String> {
        let client = destination::client(TIMEOUT, allow_private)
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            allow_private,
            encryption,
        })
    }
}

/// What one delivery is sent with.
struct Pending {
    id: String,
    url: String,
    stored_secret: String,
    endpoint_id: String,
    body: String,
    status: DeliveryStatus,
    attempts: i32,
}

#[derive(Debug)]
enum Outcome {
    /// The delivery or its endpoint is gone, or it was delivered already.
    Nothing,
    Delivered {
        status: u16,
    },
    Failed {
        error: String,
        status: Option<u16>,
        last: bool,
    },
}

impl JobHandler for WebhookSender {
    fn kinds(&self) -> &[JobKind] {
        &[WEBHOOK_DELIVERY_JOB]
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            let ids: Vec<String> = jobs.iter().map(|j| j.ref_id.clone()).collect();
            let rows: Vec<Pending> = queue
                .db
                .run(move |conn| -> Result<_, WorkerError> {
                    let rows: Vec<(String, String, String, String, String, DeliveryStatus, i32)> =
                        webhook_deliveries::table
                            .inner_join(webhook_endpoints::table)
                            .filter(webhook_deliveries::id.eq_any(&ids))
                            .select((
                                webhook_deliveries::id,
                                webhook_endpoints::url,
                                webhook_endpoints::secret,
                                webhook_endpoints::id,
                                webhook_deliveries::body,
                                webhook_deliveries::status,
                                webhook_deliveries::attempts,
                            ))
                            .load(conn)?;
                    Ok(rows
                        .into_iter()
                        .map(
                            |(id, url, stored_secret, endpoint_id, body, status, attempts)| Pending {
                                id,
                                url,
                                stored_secret,
                                endpoint_id,
                                body,
                                status,
                                attempts,
                            },
                        )
                        .collect())
                })
                .await?;
            let mut rows: std::collections::HashMap<String, Pending> =
                rows.into_iter().map(|r| (r.id.clone(), r)).collect();
            let work = jobs.into_iter().map(|job| {
                let row = rows.remove(&job.ref_id);
                async move {
                    let outcome = match &row {
                        None => Outcome::Nothing,
                        Some(r) if r.status == DeliveryStatus::Delivered => Outcome::Nothing,
                        Some(r) => self.attempt(r).await,
                    };
                    self.record(queue, owner, job, row, outcome).await
                }
            });
            let results: Vec<Result<(), WorkerError>> = futures_util::stream::iter(work)
                .buffer_unordered(queue.settings.send_concurrency.max(1))
                .collect()
                .await;
            results.into_iter().collect()
        })
    }
}

impl WebhookSender {
    /// One signed POST.
    async fn attempt(&self, r: &Pending) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            error,
            status: None,
            last: false,
        };
        let secret = match self
            .encryption
            .open_secret(&secret_context(&r.endpoint_id), &r.stored_secret)
        {
            Ok((secret, _)) => secret,
            Err(e) => return failed(format!("the endpoint's secret cannot be read: {e}")),
        };
        let Some(key) = signature::decode_secret(&secret) else {
            return failed("the endpoint's secret is not a whsec_ secret".into());
        };
        let url = match url::Url::parse(&r.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("invalid URL: {e}")),
        };
        if let Err(e) = destination::literal_is_allowed(&url, self.allow_private) {
            return failed(format!("refused: {e}"));
        }
        let timestamp = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &r.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature::sign(&key, &r.id, timestamp, &r.body))
            .body(r.body.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => Outcome::Delivered {
                status: res.status().as_u16(),
            },
            Ok(res) => {
                let status = res.status();
                Outcome::Failed {
                    error: format!("the endpoint answered {status}"),
                    status: Some(status.as_u16()),
                    last: status == reqwest::StatusCode::GONE,
                }
            }
            Err(e) if e.is_timeout() => failed(format!("no answer within {} s", TIMEOUT.as_secs())),
            Err(e) => failed(describe(&e)),
        }
    }

    async fn record(
        &self,
        queue: &Queue,
        owner: &str,
        job: Job,
        row: Option<Pending>,
        outcome: Outcome,
    ) -> Result<(), WorkerError> {
        let owner = owner.to_owned();
        let settings = queue.settings.clone();
        queue
            .db
            .run(move |conn| {
                db::write_tx_retrying(conn, 5, |conn| {
                    record(conn, &owner, &settings, &job, row.as_ref(), &outcome)
                })
            })
            .await
    }
}

fn record(
    conn: &mut DbConn,
    owner: &str,
    settings: &outbox::worker::OutboxSettings,
    job: &Job,
    row: Option<&Pending>,
    outcome: &Outcome,
) -> Result<(), WorkerError> {
    // Another worker took the job over (this one was too slow): it records the attempt it makes.
    if !outbox::holds(conn, owner, &job.id)? {
        return Ok(());
    }
    let now = db::now();
    let (Some(row), false) = (row, matches!(outcome, Outcome::Nothing)) else {
        outbox::finish(conn, owner, std::slice::from_ref(&job.id))?;
        return Ok(());
    };
    let attempts = row.attempts + 1;
    let this = webhook_deliveries::table.find(&row.id);
    match outcome {
        Outcome::Nothing => {}
        Outcome::Delivered { status } => {
            diesel::update(this)
                .set((
                    webhook_deliveries::status.eq(DeliveryStatus::Delivered),
                    webhook_deliveries::attempts.eq(attempts),
                    webhook_deliveries::last_error.eq(None::<String>),
                    webhook_deliveries::response_status.eq(i32::from(*status)),
                    webhook_deliveries::last_attempt_at.eq(now),
                    webhook_deliveries::delivered_at.eq(now),
                ))
                .execute(conn)?;
            outbox::finish(conn, owner, std::slice::from_ref(&job.id))?;
        }
        Outcome::Failed { error, status, last } => {
            let gave_up = *last || job.attempts >= settings.max_attempts;
            let error = if gave_up && !*last {
                format!("gave up after {} attempts: {error}", job.attempts)
            } else {
                error.clone()
            };
            diesel::update(this)
                .set((
                    webhook_deliveries::status.eq(if gave_up {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Pending
                    }),
                    webhook_deliveries::attempts.eq(attempts),
                    webhook_deliveries::last_error.eq(&error),
                    webhook_deliveries::response_status.eq(status.map(i32::from)),
                    webhook_deliveries::last_attempt_at.eq(now),
                ))
                .execute(conn)?;
            if gave_up {
                tracing::warn!(delivery = row.id, error, "webhook delivery failed");
                outbox::finish(conn, owner, std::slice::from_ref(&job.id))?;
            } else {
                let delay = outbox::backoff(job.attempts, settings.retry_base, settings.retry_max);
                let at: NaiveDateTime = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(1));
                tracing::info!(
                    delivery = row.id,
                    attempt = job.attempts,
                    error,
                    "webhook delivery will be retried"
                );
                outbox::retry_later(conn, owner, &job.id, at, &error)?;
            }
        }
    }
    Ok(())
}

/// A transport error with its causes (reqwest's own message says only "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}
