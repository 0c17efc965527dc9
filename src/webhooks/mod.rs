//! Webhooks out: the retailer's systems hear of every consent, withdrawal, unsubscribe, bounce and
//! finished campaign, signed per the Standard Webhooks specification ([`signature`]).
//!
//! [`emit`] is called in the transaction that makes the change: it writes one delivery (the exact
//! body every attempt sends, its id the `webhook-id` of every attempt) and one outbox job per
//! subscribed endpoint, so an event is sent if and only if its change committed. [`delivery`]'s
//! job handler sends them with retries; [`destination`] keeps them off private networks.

pub mod delivery;
pub mod destination;
pub mod signature;

use chrono::{NaiveDateTime, SecondsFormat};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::activity::{self, Action, Actor};
use crate::consent::WithdrawnVia;
use crate::db::schema::{
    campaigns, consent_requests, consent_texts, contacts, invitations, webhook_deliveries, webhook_endpoints,
};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::outbox::{self, JobKind};
use crate::signing::{KeyEncryption, SigningKeyError};

pub use destination::DestinationError;

/// One outbox job per delivery; `ref_id` is the delivery id.
pub const WEBHOOK_DELIVERY_JOB: JobKind = JobKind::new("webhook_delivery");

/// Endpoints one workspace may register.
pub const MAX_ENDPOINTS: i64 = 20;

db_enum! {
    /// What happened (the body's `type`, and what an endpoint subscribes to).
    pub enum EventType {
        /// An SMS consent became active (double opt-in confirmed).
        ConsentConfirmed = "consent.confirmed",
        /// An SMS consent ended (STOP, erasure).
        ConsentWithdrawn = "consent.withdrawn",
        /// Someone unsubscribed from email (the invitation's link or List-Unsubscribe).
        ContactUnsubscribed = "contact.unsubscribed",
        /// An invitation email bounced.
        ContactBounced = "contact.bounced",
        /// A campaign's invitations were all queued for sending.
        CampaignSent = "campaign.sent",
    }
}

db_enum! {
    /// `webhook_deliveries.status`.
    pub enum DeliveryStatus {
        /// Not delivered yet; attempts go on.
        Pending = "pending",
        Delivered = "delivered",
        /// Every attempt failed (or the endpoint answered 410 Gone).
        Failed = "failed",
    }
}

/// An event, ready to be sent.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub at: NaiveDateTime,
    pub data: Value,
}

impl Event {
    /// The body as sent and signed: `{"type","timestamp","data"}`, compact JSON.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            r#type: EventType,
            timestamp: String,
            data: &'a Value,
        }
        serde_json::to_string(&Body {
            r#type: self.kind,
            timestamp: rfc3339(self.at),
            data: &self.data,
        })
        .unwrap_or_default()
    }
}

/// UTC, RFC 3339, as every timestamp in a webhook body.
pub fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A registered endpoint (never with its secret).
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("name at least one event: {}", known_events())]
    NoEvents,
    #[error("unknown event {name:?}: use {}", known_events())]
    UnknownEvent { name: String },
    #[error("a workspace can register at most {MAX_ENDPOINTS} webhook endpoints")]
    TooMany,
    #[error(transparent)]
    Secret(#[from] SigningKeyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for WebhookError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn known_events() -> String {
    EventType::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
}

/// The event types named in a request, each once, in the order of [`EventType::ALL`].
pub fn parse_events(raw: &[String]) -> Result<Vec<EventType>, WebhookError> {
    let mut events = Vec::new();
    for name in raw {
        let kind = EventType::parse(name.trim()).ok_or_else(|| WebhookError::UnknownEvent { name: name.clone() })?;
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    if events.is_empty() {
        return Err(WebhookError::NoEvents);
    }
    events.sort();
    Ok(events)
}

fn events_column(events: &[EventType]) -> String {
    events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
}

fn events_of(column: &str) -> Vec<EventType> {
    column.split(',').filter_map(EventType::parse).collect()
}

/// What the secret of an endpoint is sealed with (the row it belongs to).
fn secret_context(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// Registers an endpoint (its URL checked already, see [`destination::check`]). Returns it with
/// its new secret, shown this once.
pub fn create(
    conn: &mut DbConn,
    encryption: &KeyEncryption,
    workspace_id: &str,
    actor: &Actor,
    url: &str,
    events: &[EventType],
) -> Result<(Endpoint, String), WebhookError> {
    db::write_tx(conn, |conn| {
        let existing: i64 = webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .count()
            .get_result(conn)?;
        if existing >= MAX_ENDPOINTS {
            return Err(WebhookError::TooMany);
        }
        let id = db::new_id();
        let secret = signature::new_secret();
        let now = db::now();
        diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::id.eq(&id),
                webhook_endpoints::workspace_id.eq(workspace_id),
                webhook_endpoints::url.eq(url),
                webhook_endpoints::events.eq(events_column(events)),
                webhook_endpoints::secret.eq(encryption.seal_secret(&secret_context(&id), &secret)?),
                webhook_endpoints::created_at.eq(now),
            ))
            .execute(conn)?;
        activity::record(conn, workspace_id, actor, Action::WebhookCreated, Some(&id), url)?;
        Ok((
            Endpoint {
                id,
                url: url.to_owned(),
                events: events.to_vec(),
                created_at: now,
            },
            secret,
        ))
    })
}

/// The workspace's endpoints, oldest first.
pub fn list(conn: &mut DbConn, workspace_id: &str) -> Result<Vec<Endpoint>, DbError> {
    let rows: Vec<(String, String, String, NaiveDateTime)> = webhook_endpoints::table
        .filter(webhook_endpoints::workspace_id.eq(workspace_id))
        .order((webhook_endpoints::created_at.asc(), webhook_endpoints::id.asc()))
        .select((
            webhook_endpoints::id,
            webhook_endpoints::url,
            webhook_endpoints::events,
            webhook_endpoints::created_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, url, events, created_at)| Endpoint {
            id,
            url,
            events: events_of(&events),
            created_at,
        })
        .collect())
}

/// Removes an endpoint of the workspace with its deliveries (waiting ones are not sent). Returns
/// false when there is no such endpoint in this workspace.
pub fn delete(conn: &mut DbConn, workspace_id: &str, actor: &Actor, endpoint_id: &str) -> Result<bool, DbError> {
    db::write_tx(conn, |conn| {
        let found: Option<String> = webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .filter(webhook_endpoints::id.eq(endpoint_id))
            .select(webhook_endpoints::url)
            .first(conn)
            .optional()?;
        let Some(url) = found else {
            return Ok(false);
        };
        let deliveries = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .select(webhook_deliveries::id);
        diesel::delete(
            crate::db::schema::outbox_jobs::table
                .filter(crate::db::schema::outbox_jobs::kind.eq(WEBHOOK_DELIVERY_JOB.as_str()))
                .filter(crate::db::schema::outbox_jobs::ref_id.eq_any(deliveries)),
        )
        .execute(conn)?;
        diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(endpoint_id)))
            .execute(conn)?;
        diesel::delete(webhook_endpoints::table.find(endpoint_id)).execute(conn)?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::WebhookDeleted,
            Some(endpoint_id),
            &url,
        )?;
        Ok(true)
    })
}

/// Queues `event` for every endpoint of the workspace that subscribes to its type: one delivery
/// and one outbox job each. Call inside the transaction of the change the event reports. Returns
/// how many deliveries were queued.
pub fn emit(conn: &mut DbConn, workspace_id: &str, event: &Event) -> Result<usize, DbError> {
    let endpoints: Vec<(String, String)> = webhook_endpoints::table
        .filter(webhook_endpoints::workspace_id.eq(workspace_id))
        .select((webhook_endpoints::id, webhook_endpoints::events))
        .load(conn)?;
    let subscribed: Vec<String> = endpoints
        .into_iter()
        .filter(|(_, events)| events_of(events).contains(&event.kind))
        .map(|(id, _)| id)
        .collect();
    if subscribed.is_empty() {
        return Ok(0);
    }
    let body = event.body();
    let now = db::now();
    for endpoint_id in &subscribed {
        // The `msg_` prefix as in the specification's examples; time-ordered like every id here.
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::id.eq(&id),
                webhook_deliveries::workspace_id.eq(workspace_id),
                webhook_deliveries::endpoint_id.eq(endpoint_id),
                webhook_deliveries::event_type.eq(event.kind),
                webhook_deliveries::body.eq(&body),
                webhook_deliveries::status.eq(DeliveryStatus::Pending),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::created_at.eq(now),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, Some(workspace_id), WEBHOOK_DELIVERY_JOB, &id, now)?;
    }
    Ok(subscribed.len())
}

/// The `data` of a consent event: who, which number, exactly which text they agreed to, how and
/// when they confirmed, from which campaign. `None` when the request is gone.
fn consent_data(conn: &mut DbConn, request_id: &str) -> Result<Option<(String, Value)>, DbError> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        i32,
        String,
        String,
        String,
        Option<NaiveDateTime>,
        Option<crate::consent::doi::ConfirmedVia>,
        Option<String>,
        String,
    );
    let row: Option<Row> = consent_requests::table
        .inner_join(contacts::table)
        .inner_join(consent_texts::table)
        .filter(consent_requests::id.eq(request_id))
        .select((
            consent_requests::workspace_id,
            consent_requests::phone,
            contacts::email,
            contacts::id,
            contacts::external_id,
            consent_texts::id,
            consent_texts::version,
            consent_requests::consent_text_sha256,
            consent_requests::locale,
            consent_requests::categories,
            consent_requests::confirmed_at,
            consent_requests::confirmed_via,
            consent_requests::campaign_id,
            consent_requests::id,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(
            ws,
            phone,
            email,
            contact_id,
            external_id,
            text_id,
            version,
            sha256,
            locale,
            categories,
            at,
            via,
            campaign,
            id,
        )| {
            let categories: Value = serde_json::from_str(&categories).unwrap_or_else(|_| json!([]));
            (
                ws,
                json!({
                    "phone": phone,
                    "email": email,
                    "contact_id": contact_id,
                    "external_id": external_id,
                    "consent_text_id": text_id,
                    "consent_text_version": version,
                    "consent_text_sha256": sha256,
                    "locale": locale,
                    "categories": categories,
                    "confirmed_at": at.map(rfc3339),
                    "confirmed_via": via,
                    "campaign_id": campaign,
                    "consent_request_id": id,
                }),
            )
        },
    ))
}

/// `consent.confirmed` for a request just confirmed (inside its transaction).
pub fn consent_confirmed(conn: &mut DbConn, request_id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    if let Some((workspace_id, data)) = consent_data(conn, request_id)? {
        emit(
            conn,
            &workspace_id,
            &Event {
                kind: EventType::ConsentConfirmed,
                at,
                data,
            },
        )?;
    }
    Ok(())
}

/// `consent.withdrawn` for the consent a request gave (inside the withdrawal's transaction, before
/// anything of the person is erased).
pub fn consent_withdrawn(
    conn: &mut DbConn,
    request_id: &str,
    via: WithdrawnVia,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    if let Some((workspace_id, mut data)) = consent_data(conn, request_id)? {
        data["withdrawn_at"] = json!(rfc3339(at));
        data["withdrawn_via"] = json!(via);
        emit(
            conn,
            &workspace_id,
            &Event {
                kind: EventType::ConsentWithdrawn,
                at,
                data,
            },
        )?;
    }
    Ok(())
}

/// The contact an invitation went to and its campaign, for the email events.
fn recipient(conn: &mut DbConn, invitation_id: &str) -> Result<Option<(String, Value)>, DbError> {
    let row: Option<(String, String, String, Option<String>, String)> = invitations::table
        .inner_join(contacts::table)
        .filter(invitations::id.eq(invitation_id))
        .select((
            invitations::workspace_id,
            contacts::id,
            contacts::email,
            contacts::external_id,
            invitations::campaign_id,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(ws, contact_id, email, external_id, campaign_id)| {
        (
            ws,
            json!({
                "contact_id": contact_id,
                "email": email,
                "external_id": external_id,
                "campaign_id": campaign_id,
            }),
        )
    }))
}

/// `contact.unsubscribed`: the person behind an invitation left the email list (`via`: how).
pub fn unsubscribed(conn: &mut DbConn, invitation_id: &str, via: &str, at: NaiveDateTime) -> Result<(), DbError> {
    if let Some((workspace_id, mut data)) = recipient(conn, invitation_id)? {
        data["unsubscribed_at"] = json!(rfc3339(at));
        data["via"] = json!(via);
        emit(
            conn,
            &workspace_id,
            &Event {
                kind: EventType::ContactUnsubscribed,
                at,
                data,
            },
        )?;
    }
    Ok(())
}

/// `contact.bounced`: an invitation email bounced, `hard` when the address is dead for good (it is
/// suppressed then). The one function every bounce path calls (SMTP refusals at send time, and
/// bounces that arrive later), inside the transaction that records the bounce.
pub fn bounced(
    conn: &mut DbConn,
    invitation_id: &str,
    hard: bool,
    reason: &str,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    if let Some((workspace_id, mut data)) = recipient(conn, invitation_id)? {
        data["bounced_at"] = json!(rfc3339(at));
        data["hard"] = json!(hard);
        data["reason"] = json!(reason.chars().take(500).collect::<String>());
        emit(
            conn,
            &workspace_id,
            &Event {
                kind: EventType::ContactBounced,
                at,
                data,
            },
        )?;
    }
    Ok(())
}

/// `campaign.sent`: every invitation of the campaign is queued for sending.
pub fn campaign_sent(conn: &mut DbConn, campaign_id: &str, at: NaiveDateTime) -> Result<(), DbError> {
    let found: Option<(String, String)> = campaigns::table
        .find(campaign_id)
        .select((campaigns::workspace_id, campaigns::name))
        .first(conn)
        .optional()?;
    let Some((workspace_id, name)) = found else {
        return Ok(());
    };
    let recipients: i64 = invitations::table
        .filter(invitations::campaign_id.eq(campaign_id))
        .count()
        .get_result(conn)?;
    emit(
        conn,
        &workspace_id,
        &Event {
            kind: EventType::CampaignSent,
            at,
            data: json!({
                "campaign_id": campaign_id,
                "name": name,
                "recipients": recipients,
                "sent_at": rfc3339(at),
            }),
        },
    )?;
    Ok(())
}

/// A delivery as the dashboard shows it.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub endpoint_url: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub response_status: Option<i32>,
    pub created_at: NaiveDateTime,
    pub last_attempt_at: Option<NaiveDateTime>,
}

/// The workspace's latest deliveries, newest first.
pub fn recent_deliveries(conn: &mut DbConn, workspace_id: &str, limit: i64) -> Result<Vec<DeliveryView>, DbError> {
    Ok(webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::workspace_id.eq(workspace_id))
        .order((webhook_deliveries::created_at.desc(), webhook_deliveries::id.desc()))
        .limit(limit)
        .select((
            webhook_deliveries::id,
            webhook_endpoints::url,
            webhook_deliveries::event_type,
            webhook_deliveries::status,
            webhook_deliveries::attempts,
            webhook_deliveries::last_error,
            webhook_deliveries::response_status,
            webhook_deliveries::created_at,
            webhook_deliveries::last_attempt_at,
        ))
        .load(conn)?)
}

/// Queues a delivery of the workspace again, with the same id and body (the specification's
/// manual retry). Nothing changes while it is still queued. Returns false when there is no such
/// delivery in this workspace.
pub fn send_again(conn: &mut DbConn, workspace_id: &str, delivery_id: &str) -> Result<bool, DbError> {
    db::write_tx(conn, |conn| {
        let n = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::workspace_id.eq(workspace_id))
                .filter(webhook_deliveries::id.eq(delivery_id)),
        )
        .set(webhook_deliveries::status.eq(DeliveryStatus::Pending))
        .execute(conn)?;
        if n == 0 {
            return Ok(false);
        }
        outbox::enqueue(conn, Some(workspace_id), WEBHOOK_DELIVERY_JOB, delivery_id, db::now())?;
        Ok(true)
    })
}

/// Brings every stored endpoint secret under the current `SIGNING_KEY_ENCRYPTION_KEY` (as
/// `signing::seal_stored` does for the link keys). Returns how many were (re)sealed.
pub fn seal_stored_secrets(conn: &mut DbConn, encryption: &KeyEncryption) -> Result<usize, SigningKeyError> {
    db::write_tx(conn, |conn| {
        let rows: Vec<(String, String)> = webhook_endpoints::table
            .select((webhook_endpoints::id, webhook_endpoints::secret))
            .load(conn)?;
        let mut sealed = 0;
        for (id, stored) in rows {
            let context = secret_context(&id);
            let (secret, under_previous) = encryption.open_secret(&context, &stored)?;
            if encryption.current.is_none() || (KeyEncryption::is_sealed(&stored) && !under_previous) {
                continue;
            }
            diesel::update(webhook_endpoints::table.find(&id))
                .set(webhook_endpoints::secret.eq(encryption.seal_secret(&context, &secret)?))
                .execute(conn)?;
            sealed += 1;
        }
        Ok(sealed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_type_timestamp_data() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap().naive_utc();
        let event = Event {
            kind: EventType::ContactBounced,
            at,
            data: json!({"email": "a@example.dk"}),
        };
        assert_eq!(
            event.body(),
            r#"{"type":"contact.bounced","timestamp":"2023-11-14T22:13:20Z","data":{"email":"a@example.dk"}}"#
        );
    }

    #[test]
    fn events_parse_once_each_and_refuse_unknown_names() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_events(&names(&["campaign.sent", "consent.confirmed", "campaign.sent"])).unwrap(),
            vec![EventType::ConsentConfirmed, EventType::CampaignSent]
        );
        assert!(matches!(parse_events(&[]), Err(WebhookError::NoEvents)));
        assert!(matches!(
            parse_events(&names(&["consent.created"])),
            Err(WebhookError::UnknownEvent { .. })
        ));
        assert_eq!(events_of("consent.withdrawn,bogus"), vec![EventType::ConsentWithdrawn]);
    }
}
