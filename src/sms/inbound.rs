//! Replies from phones: recorded once per provider message id, then processed by a worker.
//!
//! Keywords (case- and accent-insensitive first word, see `keywords`): a confirmation from a
//! number with exactly one pending request (or one locked by wrong codes on the page) confirms it; STOP opts the number out of every
//! workspace (one sender number serves them all) and suppresses it; START re-subscribes only a
//! number that opted out by keyword; HELP names the company. Anything else from a number with
//! a pending request gets a short hint, once.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::dispatch::INBOUND_SMS_JOB;
use super::keywords::{self, Keyword};
use super::outbound::{self, SmsKind};
use crate::consent::doi::{self, ConfirmedVia, ConsentRequest, ConsentRequestStatus};
use crate::consent::ledger::{self, LedgerKind, NewEntry};
use crate::consent::{SubscriptionStatus, WithdrawnVia};
use crate::db::schema::{
    campaigns, consent_requests, consent_texts, inbound_messages, invitations, sms_subscriptions, suppressions,
    workspaces,
};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Channel, Locale};
use crate::funnel::{self, Metric};
use crate::i18n;
use crate::outbox;

/// Stops by keyword are recorded with this suppression reason; START undoes only those.
const STOP_REASON: &str = "STOP keyword";

/// Stores an inbound SMS that `provider` (an `SmsGateway::name`) carried and enqueues its
/// processing, once per `message_sid` (providers retry webhooks). Every provider's replies come
/// through here. Returns whether it was new.
pub fn record(
    conn: &mut DbConn,
    provider: &str,
    message_sid: &str,
    from: &str,
    to: &str,
    body: &str,
) -> Result<bool, DbError> {
    db::write_tx(conn, |conn| {
        let seen: i64 = inbound_messages::table
            .filter(inbound_messages::message_sid.eq(message_sid))
            .count()
            .get_result(conn)?;
        if seen > 0 {
            return Ok(false);
        }
        let id = db::new_id();
        diesel::insert_into(inbound_messages::table)
            .values((
                inbound_messages::id.eq(&id),
                inbound_messages::message_sid.eq(message_sid),
                inbound_messages::phone.eq(from),
                inbound_messages::to_number.eq(to),
                inbound_messages::body.eq(body.chars().take(1600).collect::<String>()),
                inbound_messages::received_at.eq(db::now()),
                inbound_messages::provider.eq(provider),
            ))
            .execute(conn)?;
        // Which workspace a reply concerns is found out when it is processed.
        outbox::enqueue(conn, None, INBOUND_SMS_JOB, &id, db::now())?;
        Ok(true)
    })
}

#[derive(Debug, Clone, Queryable)]
struct Inbound {
    id: String,
    message_sid: String,
    phone: String,
    to_number: String,
    body: String,
    received_at: NaiveDateTime,
    processed_at: Option<NaiveDateTime>,
    provider: Option<String>,
}

/// The newest relationship of a number with any workspace: whom it talks to, in which language.
struct Relationship {
    workspace_id: String,
    country: String,
    locale: Locale,
    company: String,
    privacy_url: String,
}

fn relationship(conn: &mut DbConn, phone: &str) -> Result<Option<Relationship>, DbError> {
    let found: Option<(String, String, String, String, String)> = consent_requests::table
        .inner_join(consent_texts::table)
        .filter(consent_requests::phone.eq(phone))
        .order(consent_requests::submitted_at.desc())
        .select((
            consent_requests::workspace_id,
            consent_requests::country,
            consent_requests::locale,
            consent_texts::company_name,
            consent_texts::privacy_url,
        ))
        .first(conn)
        .optional()?;
    Ok(
        found.map(|(workspace_id, country, locale, company, privacy_url)| Relationship {
            workspace_id,
            country,
            locale: Locale::parse(&locale).unwrap_or(Locale::En),
            company,
            privacy_url,
        }),
    )
}

fn reply(
    conn: &mut DbConn,
    to: &Relationship,
    phone: &str,
    kind: SmsKind,
    body: &str,
    request: Option<&str>,
) -> Result<(), DbError> {
    outbound::queue(
        conn,
        outbound::NewSms {
            workspace_id: &to.workspace_id,
            consent_request_id: request,
            kind,
            phone,
            country: &to.country,
            body,
            // A reply to the person's own message: sent at once, whatever the hour.
            not_before: db::now(),
        },
    )?;
    Ok(())
}

/// Processes one stored inbound SMS (idempotent: a processed message is left alone). Returns
/// what happened, as recorded on the message.
pub fn process(conn: &mut DbConn, inbound_id: &str) -> Result<String, DbError> {
    db::write_tx_retrying(conn, 3, |conn| {
        let msg: Option<Inbound> = inbound_messages::table
            .find(inbound_id)
            .select((
                inbound_messages::id,
                inbound_messages::message_sid,
                inbound_messages::phone,
                inbound_messages::to_number,
                inbound_messages::body,
                inbound_messages::received_at,
                inbound_messages::processed_at,
                inbound_messages::provider,
            ))
            .first(conn)
            .optional()?;
        let Some(msg) = msg else {
            return Ok("missing".to_owned());
        };
        if msg.processed_at.is_some() {
            return Ok("already processed".to_owned());
        }
        let now = db::now();
        let outcome = match keywords::parse(&msg.body) {
            Some(Keyword::Confirm) => confirm(conn, &msg, now)?,
            Some(Keyword::Stop) => stop(conn, &msg.phone, now)?,
            Some(Keyword::Start) => start(conn, &msg.phone, now)?,
            Some(Keyword::Help) => match relationship(conn, &msg.phone)? {
                Some(rel) => {
                    let body = i18n::sms::help(rel.locale, &rel.company, &rel.privacy_url);
                    reply(conn, &rel, &msg.phone, SmsKind::KeywordReply, &body, None)?;
                    "help sent".to_owned()
                }
                None => "help from an unknown number: no reply".to_owned(),
            },
            None => hint(conn, &msg.phone, now)?,
        };
        diesel::update(inbound_messages::table.find(&msg.id))
            .set((
                inbound_messages::processed_at.eq(now),
                inbound_messages::outcome.eq(&outcome),
            ))
            .execute(conn)?;
        Ok(outcome)
    })
}

/// The unexpired requests of `phone` that wait for its reply, the newest per workspace (a newer
/// sign-up replaces an older one). A request locked by wrong codes on the page still waits: the
/// lock stops guessing on the web, and a reply from the phone itself proves possession.
fn pending_requests(conn: &mut DbConn, phone: &str, now: NaiveDateTime) -> Result<Vec<ConsentRequest>, DbError> {
    let waiting: Vec<ConsentRequest> = consent_requests::table
        .filter(consent_requests::phone.eq(phone))
        .filter(
            consent_requests::status
                .eq(ConsentRequestStatus::Pending)
                .or(consent_requests::status.eq(ConsentRequestStatus::Locked)),
        )
        .filter(consent_requests::expires_at.gt(now))
        .order(consent_requests::submitted_at.desc())
        .select(ConsentRequest::as_select())
        .load(conn)?;
    let mut workspaces = std::collections::HashSet::new();
    Ok(waiting
        .into_iter()
        .filter(|r| workspaces.insert(r.workspace_id.clone()))
        .collect())
}

/// The pending requests a reply from `phone` may answer. A number that sent STOP, or one signed
/// up with the request's workspace already, was sent no code for a sign-up made with it (see
/// `doi::SubmitOutcome`): its stray JA confirms nothing, and it gets no hint.
fn answerable_requests(conn: &mut DbConn, phone: &str, now: NaiveDateTime) -> Result<Vec<ConsentRequest>, DbError> {
    if doi::phone_opted_out(conn, phone)? {
        return Ok(Vec::new());
    }
    let subscribed: Vec<String> = sms_subscriptions::table
        .filter(sms_subscriptions::phone.eq(phone))
        .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active))
        .select(sms_subscriptions::workspace_id)
        .load(conn)?;
    Ok(pending_requests(conn, phone, now)?
        .into_iter()
        .filter(|r| !subscribed.contains(&r.workspace_id))
        .collect())
}

fn confirm(conn: &mut DbConn, msg: &Inbound, now: NaiveDateTime) -> Result<String, DbError> {
    let pending = answerable_requests(conn, &msg.phone, now)?;
    match pending.as_slice() {
        [] => Ok("confirmation without a pending request: ignored".to_owned()),
        [request] => {
            let evidence = json!({
                "message_sid": msg.message_sid,
                "from": msg.phone,
                "to": msg.to_number,
                "body": msg.body,
                "received_at": msg.received_at.and_utc().to_rfc3339(),
                "provider": msg.provider,
            });
            if !doi::activate(conn, request, ConfirmedVia::SmsReply, evidence, now)? {
                return Ok(format!("request {} was closed meanwhile: ignored", request.id));
            }
            Ok(format!("confirmed request {}", request.id))
        }
        [newest, ..] => {
            // Two workspaces (or two sign-ups) wait for this number: a bare "JA" cannot say
            // which, so ask for the code on the page instead of guessing.
            if let Some(rel) = relationship(conn, &msg.phone)? {
                reply(
                    conn,
                    &rel,
                    &msg.phone,
                    SmsKind::KeywordReply,
                    &i18n::sms::ambiguous(newest.locale()),
                    Some(&newest.id),
                )?;
            }
            Ok(format!("ambiguous: {} pending requests", pending.len()))
        }
    }
}

fn stop(conn: &mut DbConn, phone: &str, now: NaiveDateTime) -> Result<String, DbError> {
    let active: Vec<(String, String, String, String)> = sms_subscriptions::table
        .filter(sms_subscriptions::phone.eq(phone))
        .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active))
        .order(sms_subscriptions::id.asc())
        .select((
            sms_subscriptions::id,
            sms_subscriptions::workspace_id,
            sms_subscriptions::contact_id,
            sms_subscriptions::consent_request_id,
        ))
        .load(conn)?;
    for (id, workspace_id, contact_id, request_id) in &active {
        diesel::update(sms_subscriptions::table.find(id))
            .set((
                sms_subscriptions::status.eq(SubscriptionStatus::Withdrawn),
                sms_subscriptions::withdrawn_at.eq(now),
                sms_subscriptions::withdrawn_via.eq(WithdrawnVia::StopKeyword),
            ))
            .execute(conn)?;
        ledger::append(
            conn,
            workspace_id,
            &[NewEntry {
                contact_id: Some(contact_id),
                kind: LedgerKind::SmsConsentWithdrawn,
                at: now,
                payload: json!({"phone": phone, "via": "sms keyword STOP", "request_id": request_id}),
            }],
        )?;
        count_opt_out(conn, request_id, now)?;
    }
    // A locked request could still be confirmed by reply: STOP ends it too.
    diesel::update(
        consent_requests::table
            .filter(consent_requests::phone.eq(phone))
            .filter(
                consent_requests::status
                    .eq(ConsentRequestStatus::Pending)
                    .or(consent_requests::status.eq(ConsentRequestStatus::Locked)),
            ),
    )
    .set((
        consent_requests::status.eq(ConsentRequestStatus::Cancelled),
        consent_requests::closed_at.eq(now),
    ))
    .execute(conn)?;
    // One sender number serves every workspace: STOP to it stops them all.
    let all: Vec<String> = workspaces::table
        .select(workspaces::id)
        .order(workspaces::id.asc())
        .load(conn)?;
    for ws in &all {
        crate::contacts::suppress(conn, ws, Channel::Sms, phone, STOP_REASON)?;
    }
    if let Some(rel) = relationship(conn, phone)? {
        reply(
            conn,
            &rel,
            phone,
            SmsKind::KeywordReply,
            &i18n::sms::stopped(rel.locale, &rel.company),
            None,
        )?;
    }
    Ok(format!("stopped: {} consent(s) withdrawn", active.len()))
}

fn count_opt_out(conn: &mut DbConn, request_id: &str, now: NaiveDateTime) -> Result<(), DbError> {
    let inv: Option<(String, String, String, String)> = consent_requests::table
        .inner_join(invitations::table.on(consent_requests::invitation_id.eq(invitations::id.nullable())))
        .filter(consent_requests::id.eq(request_id))
        .filter(invitations::opted_out_at.is_null())
        .select((
            invitations::id,
            invitations::campaign_id,
            invitations::variant,
            invitations::locale,
        ))
        .first(conn)
        .optional()?;
    if let Some((invitation, campaign, variant, locale)) = inv {
        diesel::update(invitations::table.find(&invitation))
            .set(invitations::opted_out_at.eq(now))
            .execute(conn)?;
        funnel::increment(conn, &campaign, &variant, &locale, Metric::OptedOut, now, 1)?;
    }
    Ok(())
}

fn start(conn: &mut DbConn, phone: &str, now: NaiveDateTime) -> Result<String, DbError> {
    let stopped: i64 = suppressions::table
        .filter(suppressions::channel.eq(Channel::Sms))
        .filter(suppressions::address.eq(phone))
        .filter(suppressions::reason.eq(STOP_REASON))
        .count()
        .get_result(conn)?;
    if stopped == 0 {
        return Ok("START from a number that never sent STOP: ignored".to_owned());
    }
    diesel::delete(
        suppressions::table
            .filter(suppressions::channel.eq(Channel::Sms))
            .filter(suppressions::address.eq(phone))
            .filter(suppressions::reason.eq(STOP_REASON)),
    )
    .execute(conn)?;
    let withdrawn: Vec<(String, String, String)> = sms_subscriptions::table
        .filter(sms_subscriptions::phone.eq(phone))
        .filter(sms_subscriptions::status.eq(SubscriptionStatus::Withdrawn))
        .filter(sms_subscriptions::withdrawn_via.eq(WithdrawnVia::StopKeyword))
        .order(sms_subscriptions::id.asc())
        .select((
            sms_subscriptions::id,
            sms_subscriptions::workspace_id,
            sms_subscriptions::contact_id,
        ))
        .load(conn)?;
    for (id, workspace_id, contact_id) in &withdrawn {
        diesel::update(sms_subscriptions::table.find(id))
            .set((
                sms_subscriptions::status.eq(SubscriptionStatus::Active),
                sms_subscriptions::withdrawn_at.eq(None::<NaiveDateTime>),
                sms_subscriptions::withdrawn_via.eq(None::<WithdrawnVia>),
                sms_subscriptions::last_used_at.eq(now),
            ))
            .execute(conn)?;
        ledger::append(
            conn,
            workspace_id,
            &[NewEntry {
                contact_id: Some(contact_id),
                kind: LedgerKind::SmsResubscribed,
                at: now,
                payload: json!({"phone": phone, "via": "sms keyword START"}),
            }],
        )?;
    }
    if let Some(rel) = relationship(conn, phone)? {
        reply(
            conn,
            &rel,
            phone,
            SmsKind::KeywordReply,
            &i18n::sms::restarted(rel.locale, &rel.company),
            None,
        )?;
    }
    Ok(format!("restarted: {} consent(s) active again", withdrawn.len()))
}

fn hint(conn: &mut DbConn, phone: &str, now: NaiveDateTime) -> Result<String, DbError> {
    let pending = answerable_requests(conn, phone, now)?;
    let Some(request) = pending.into_iter().find(|r| !r.hint_sent) else {
        return Ok("not a keyword: ignored".to_owned());
    };
    diesel::update(consent_requests::table.find(&request.id))
        .set(consent_requests::hint_sent.eq(true))
        .execute(conn)?;
    let company: String = campaigns::table
        .inner_join(consent_texts::table)
        .filter(campaigns::id.eq(request.campaign_id.clone().unwrap_or_default()))
        .select(consent_texts::company_name)
        .first(conn)
        .optional()?
        .unwrap_or_default();
    let rel = Relationship {
        workspace_id: request.workspace_id.clone(),
        country: request.country.clone(),
        locale: request.locale(),
        company: company.clone(),
        privacy_url: String::new(),
    };
    reply(
        conn,
        &rel,
        phone,
        SmsKind::Hint,
        &i18n::sms::hint(request.locale(), &company),
        Some(&request.id),
    )?;
    Ok("not a keyword: hint sent".to_owned())
}
