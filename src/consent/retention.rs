//! Retention: evidence of an SMS consent is kept for two years after the consent was last
//! used, then purged (PRODUCT.md "Consent rules"). A person with an active SMS consent keeps
//! all evidence; for everyone else, once their last SMS activity (sign-up, confirmation,
//! withdrawal) is older than the retention period, their sign-ups lose number, IP address and
//! user agent, and their SMS ledger entries are redacted (hashes stay: the chain verifies).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use super::SubscriptionStatus;
use super::ledger::LedgerKind;
use crate::db::schema::{consent_ledger, consent_requests, sms_subscriptions};
use crate::db::{self, DbConn, DbError};

pub const DEFAULT_RETENTION_DAYS: i64 = 730;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub cutoff: Option<NaiveDateTime>,
    /// Contacts whose SMS evidence is (or would be) purged.
    pub contacts: usize,
    pub consent_requests: usize,
    pub ledger_entries: usize,
}

const SMS_KINDS: [LedgerKind; 4] = [
    LedgerKind::SmsConsentRequested,
    LedgerKind::SmsConsentConfirmed,
    LedgerKind::SmsConsentWithdrawn,
    LedgerKind::SmsResubscribed,
];

/// What a purged sign-up's phone column holds.
const PURGED: &str = "purged";

/// Purges (or with `dry_run` only counts) evidence older than `retention`.
pub fn purge(conn: &mut DbConn, retention: Duration, dry_run: bool) -> Result<PurgeReport, DbError> {
    let cutoff = db::now() - retention;
    db::write_tx(conn, |conn| {
        // Last SMS activity per (workspace, contact) among sign-ups not purged yet.
        // A sign-up still pending counts as active until it expires.
        type RequestTimes = (
            String,
            String,
            NaiveDateTime,
            NaiveDateTime,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        );
        let requests: Vec<RequestTimes> = consent_requests::table
            .filter(consent_requests::phone.ne(PURGED))
            .select((
                consent_requests::workspace_id,
                consent_requests::contact_id,
                consent_requests::submitted_at,
                consent_requests::expires_at,
                consent_requests::confirmed_at,
                consent_requests::closed_at,
            ))
            .load(conn)?;
        let mut last: BTreeMap<(String, String), NaiveDateTime> = BTreeMap::new();
        for (ws, contact, submitted, expires, confirmed, closed) in requests {
            let at = [Some(submitted), Some(expires), confirmed, closed]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(submitted);
            let slot = last.entry((ws, contact)).or_insert(at);
            *slot = (*slot).max(at);
        }
        let subs: Vec<(String, String, SubscriptionStatus, NaiveDateTime, Option<NaiveDateTime>)> =
            sms_subscriptions::table
                .select((
                    sms_subscriptions::workspace_id,
                    sms_subscriptions::contact_id,
                    sms_subscriptions::status,
                    sms_subscriptions::last_used_at,
                    sms_subscriptions::withdrawn_at,
                ))
                .load(conn)?;
        for (ws, contact, status, used, withdrawn) in subs {
            let key = (ws, contact);
            if status == SubscriptionStatus::Active {
                last.remove(&key); // an active consent keeps its evidence
                continue;
            }
            if let Some(slot) = last.get_mut(&key) {
                *slot = (*slot).max(withdrawn.unwrap_or(used)).max(used);
            }
        }
        let due: Vec<(String, String)> = last
            .into_iter()
            .filter(|(_, at)| *at < cutoff)
            .map(|(k, _)| k)
            .collect();
        let mut report = PurgeReport {
            dry_run,
            cutoff: Some(cutoff),
            contacts: due.len(),
            ..PurgeReport::default()
        };
        for (ws, contact) in &due {
            let requests = consent_requests::table
                .filter(consent_requests::workspace_id.eq(ws))
                .filter(consent_requests::contact_id.eq(contact))
                .filter(consent_requests::phone.ne(PURGED));
            let entries = consent_ledger::table
                .filter(consent_ledger::workspace_id.eq(ws))
                .filter(consent_ledger::contact_id.eq(contact))
                .filter(consent_ledger::kind.eq_any(SMS_KINDS))
                .filter(consent_ledger::redacted_at.is_null());
            if dry_run {
                report.consent_requests += requests.count().get_result::<i64>(conn)? as usize;
                report.ledger_entries += entries.count().get_result::<i64>(conn)? as usize;
                continue;
            }
            report.consent_requests += diesel::update(requests)
                .set((
                    consent_requests::phone.eq(PURGED),
                    consent_requests::ip.eq(None::<String>),
                    consent_requests::user_agent.eq(None::<String>),
                    consent_requests::token_jti.eq(None::<String>),
                ))
                .execute(conn)?;
            let withdrawn: Vec<String> = sms_subscriptions::table
                .filter(sms_subscriptions::workspace_id.eq(ws))
                .filter(sms_subscriptions::contact_id.eq(contact))
                .filter(sms_subscriptions::status.eq(SubscriptionStatus::Withdrawn))
                .select(sms_subscriptions::id)
                .load(conn)?;
            for id in withdrawn {
                diesel::update(sms_subscriptions::table.find(&id))
                    .set(sms_subscriptions::phone.eq(format!("purged:{id}")))
                    .execute(conn)?;
            }
            report.ledger_entries += diesel::update(entries)
                .set((
                    consent_ledger::payload.eq(None::<String>),
                    consent_ledger::redacted_at.eq(db::now()),
                ))
                .execute(conn)?;
        }
        Ok(report)
    })
}
