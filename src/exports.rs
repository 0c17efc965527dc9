//! CSV exports as producers: each reads its rows a page at a time and hands them on as CSV
//! chunks to a sink, which says when to stop (the reader went away), so an export of a million
//! rows never sits in memory. The web layer runs a producer and streams its chunks.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{consent_requests, consent_texts, contacts, invitations, sms_subscriptions};
use crate::db::{DbConn, DbError};

const PAGE: i64 = 5000;

/// Where a producer puts its CSV chunks; `false` back means nobody reads any more: stop.
pub type CsvSink<'a> = dyn FnMut(Vec<u8>) -> bool + 'a;

fn csv_chunk(rows: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if let Err(e) = rows(&mut w) {
        tracing::error!(error = %e, "writing CSV");
    }
    w.into_inner().unwrap_or_default()
}

fn ts(t: Option<NaiveDateTime>) -> String {
    t.map(|t| t.and_utc().to_rfc3339()).unwrap_or_default()
}

#[derive(Queryable)]
struct RecipientRow {
    id: String,
    email: String,
    external_id: Option<String>,
    locale: String,
    variant: String,
    status: String,
    sent_at: Option<NaiveDateTime>,
    bounced_at: Option<NaiveDateTime>,
    opened_at: Option<NaiveDateTime>,
    human_opened_at: Option<NaiveDateTime>,
    open_count: i32,
    clicked_at: Option<NaiveDateTime>,
    click_count: i32,
    submitted_at: Option<NaiveDateTime>,
    confirmed_at: Option<NaiveDateTime>,
    opted_out_at: Option<NaiveDateTime>,
    unsubscribed_at: Option<NaiveDateTime>,
    last_error: Option<String>,
}

/// One row per recipient of a campaign with every funnel step's first time. No link tokens,
/// codes or other secrets.
pub fn campaign_recipients(conn: &mut DbConn, campaign_id: &str, sink: &mut CsvSink<'_>) -> Result<(), DbError> {
    let header = csv_chunk(|w| {
        w.write_record([
            "invitation_id",
            "email",
            "external_id",
            "locale",
            "variant",
            "status",
            "sent_at",
            "bounced_at",
            "opened_at",
            "human_opened_at",
            "open_count",
            "clicked_at",
            "click_count",
            "submitted_at",
            "confirmed_at",
            "opted_out_at",
            "unsubscribed_at",
            "error",
        ])
    });
    if !sink(header) {
        return Ok(());
    }
    let mut after = String::new();
    loop {
        let page: Vec<RecipientRow> = invitations::table
            .inner_join(contacts::table)
            .filter(invitations::campaign_id.eq(campaign_id))
            .filter(invitations::id.gt(&after))
            .order(invitations::id.asc())
            .limit(PAGE)
            .select((
                invitations::id,
                invitations::email,
                contacts::external_id,
                invitations::locale,
                invitations::variant,
                invitations::status,
                invitations::sent_at,
                invitations::bounced_at,
                invitations::opened_at,
                invitations::human_opened_at,
                invitations::open_count,
                invitations::clicked_at,
                invitations::click_count,
                invitations::submitted_at,
                invitations::confirmed_at,
                invitations::opted_out_at,
                invitations::unsubscribed_at,
                invitations::last_error,
            ))
            .load(conn)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = last.id.clone();
        let chunk = csv_chunk(|w| {
            for r in &page {
                w.write_record([
                    r.id.as_str(),
                    &r.email,
                    r.external_id.as_deref().unwrap_or_default(),
                    &r.locale,
                    &r.variant,
                    &r.status,
                    &ts(r.sent_at),
                    &ts(r.bounced_at),
                    &ts(r.opened_at),
                    &ts(r.human_opened_at),
                    &r.open_count.to_string(),
                    &ts(r.clicked_at),
                    &r.click_count.to_string(),
                    &ts(r.submitted_at),
                    &ts(r.confirmed_at),
                    &ts(r.opted_out_at),
                    &ts(r.unsubscribed_at),
                    r.last_error.as_deref().unwrap_or_default(),
                ])?;
            }
            Ok(())
        });
        if !sink(chunk) || (page.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

#[derive(Queryable)]
struct ConsentRow {
    subscription_id: String,
    phone: String,
    confirmed_at: NaiveDateTime,
    categories: String,
    email: String,
    external_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    request_id: String,
    submitted_at: NaiveDateTime,
    confirmed_via: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    campaign_id: Option<String>,
    variant: Option<String>,
    consent_text_id: String,
    consent_text_sha256: String,
    text_version: i32,
    text_locale: String,
    company: String,
}

/// Every active SMS consent of a workspace with its evidence.
pub fn active_consents(conn: &mut DbConn, workspace_id: &str, sink: &mut CsvSink<'_>) -> Result<(), DbError> {
    let header = csv_chunk(|w| {
        w.write_record([
            "phone",
            "email",
            "external_id",
            "first_name",
            "last_name",
            "company",
            "categories",
            "confirmed_at",
            "confirmed_via",
            "submitted_at",
            "ip",
            "user_agent",
            "campaign_id",
            "variant",
            "consent_text_id",
            "consent_text_version",
            "consent_text_locale",
            "consent_text_sha256",
            "consent_request_id",
        ])
    });
    if !sink(header) {
        return Ok(());
    }
    let mut after = String::new();
    loop {
        let page: Vec<ConsentRow> = sms_subscriptions::table
            .inner_join(
                consent_requests::table
                    .inner_join(consent_texts::table)
                    .inner_join(contacts::table),
            )
            .filter(sms_subscriptions::workspace_id.eq(workspace_id))
            .filter(sms_subscriptions::status.eq(crate::consent::SubscriptionStatus::Active))
            .filter(sms_subscriptions::id.gt(&after))
            .order(sms_subscriptions::id.asc())
            .limit(PAGE)
            .select((
                sms_subscriptions::id,
                sms_subscriptions::phone,
                sms_subscriptions::confirmed_at,
                sms_subscriptions::categories,
                contacts::email,
                contacts::external_id,
                contacts::first_name,
                contacts::last_name,
                consent_requests::id,
                consent_requests::submitted_at,
                consent_requests::confirmed_via,
                consent_requests::ip,
                consent_requests::user_agent,
                consent_requests::campaign_id,
                consent_requests::variant,
                consent_requests::consent_text_id,
                consent_requests::consent_text_sha256,
                consent_texts::version,
                consent_texts::locale,
                consent_texts::company_name,
            ))
            .load(conn)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = last.subscription_id.clone();
        let chunk = csv_chunk(|w| {
            for r in &page {
                let categories: Vec<String> = serde_json::from_str(&r.categories).unwrap_or_default();
                w.write_record([
                    r.phone.as_str(),
                    &r.email,
                    r.external_id.as_deref().unwrap_or_default(),
                    r.first_name.as_deref().unwrap_or_default(),
                    r.last_name.as_deref().unwrap_or_default(),
                    &r.company,
                    &categories.join("|"),
                    &ts(Some(r.confirmed_at)),
                    r.confirmed_via.as_deref().unwrap_or_default(),
                    &ts(Some(r.submitted_at)),
                    r.ip.as_deref().unwrap_or_default(),
                    r.user_agent.as_deref().unwrap_or_default(),
                    r.campaign_id.as_deref().unwrap_or_default(),
                    r.variant.as_deref().unwrap_or_default(),
                    &r.consent_text_id,
                    &r.text_version.to_string(),
                    &r.text_locale,
                    &r.consent_text_sha256,
                    &r.request_id,
                ])?;
            }
            Ok(())
        });
        if !sink(chunk) || (page.len() as i64) < PAGE {
            return Ok(());
        }
    }
}
