//! CSV exports, streamed: rows are read a page at a time on a blocking thread and sent to the
//! client as they are written, so an export of a million rows never sits in memory.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{consent_requests, consent_texts, contacts, invitations, sms_subscriptions};
use crate::db::{Db, DbConn, DbError};

const PAGE: i64 = 5000;

/// Sends the CSV that `produce` writes, page by page; `produce` gets a sink that returns false
/// when the client went away (then it should stop).
pub fn stream_csv<F>(db: &Db, filename: &str, produce: F) -> HttpResponse
where
    F: FnOnce(&mut DbConn, &mut dyn FnMut(Vec<u8>) -> bool) -> Result<(), DbError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = |chunk: Vec<u8>| tx.blocking_send(Bytes::from(chunk)).is_ok();
        // A panic part-way must end the file like any other failure: unwinding would otherwise
        // just close the stream, and a cut-off export would look complete.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.get().and_then(|mut conn| produce(&mut conn, &mut sink))
        }))
        .unwrap_or_else(|payload| {
            tracing::error!(
                panic = crate::telemetry::panic_message(payload.as_ref()),
                "CSV export panicked"
            );
            Err(DbError::Panicked)
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "CSV export failed part-way");
            // The status is sent already: end with a line no CSV reader takes for data, so a
            // cut-off export is never mistaken for a complete one.
            let _ = sink(format!("\n# EXPORT FAILED: {e}\n").into_bytes());
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .streaming(body)
}

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
pub fn campaign_recipients(
    conn: &mut DbConn,
    campaign_id: &str,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), DbError> {
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
pub fn active_consents(
    conn: &mut DbConn,
    workspace_id: &str,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), DbError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_export_that_panics_part_way_ends_with_the_failure_line() {
        let url = crate::config::DatabaseUrl::Sqlite(":memory:".into());
        let db = Db::connect(&url, 1, Duration::from_millis(100)).expect("in-memory db");
        let res = stream_csv(&db, "x.csv", |_conn, sink| {
            sink(b"phone,email\n+4520123456,anna@example.dk\n".to_vec());
            panic!("bug while reading the second page");
        });
        let body = actix_web::body::to_bytes(res.into_body()).await.expect("body");
        assert_eq!(
            std::str::from_utf8(&body).expect("UTF-8"),
            "phone,email\n+4520123456,anna@example.dk\n\n# EXPORT FAILED: database task panicked (a bug; the panic is in the log)\n"
        );
    }
}
