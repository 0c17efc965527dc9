//! CSV exports as producers: each reads its rows a page at a time and hands them on as CSV
//! chunks to a sink, which says when to stop (the reader went away), so an export of a million
//! rows never sits in memory. The web layer runs a producer and streams its chunks. Every cell
//! goes through [`spreadsheet_safe`]: names, ids and user agents come from outside the workspace.

use std::borrow::Cow;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{consent_requests, consent_texts, contacts, invitations, sms_subscriptions};
use crate::db::{DbConn, DbError};

const PAGE: i64 = 5000;

/// Where a producer puts its CSV chunks; `false` back means nobody reads any more: stop.
pub type CsvSink<'a> = dyn FnMut(Vec<u8>) -> bool + 'a;

/// A cell as a spreadsheet may show it: one that Excel, LibreOffice or Google Sheets would run
/// as a formula (it starts with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`,
/// as OWASP's "CSV Injection" advises. A phone number in E.164 (`+` and digits) stays readable.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let e164 = cell
        .strip_prefix('+')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if risky && !e164 {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The one way exports write CSV: each record's cells pass [`spreadsheet_safe`].
struct CsvRows(csv::Writer<Vec<u8>>);

impl CsvRows {
    fn new() -> Self {
        Self(csv::Writer::from_writer(Vec::new()))
    }

    fn write<'c>(&mut self, cells: impl IntoIterator<Item = &'c str>) -> csv::Result<()> {
        for cell in cells {
            self.0.write_field(spreadsheet_safe(cell).as_bytes())?;
        }
        // An empty iterator ends the record whose fields were written one by one.
        self.0.write_record(None::<&[u8]>)
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap_or_default()
    }
}

fn csv_chunk(rows: impl FnOnce(&mut CsvRows) -> csv::Result<()>) -> Vec<u8> {
    let mut w = CsvRows::new();
    if let Err(e) = rows(&mut w) {
        tracing::error!(error = %e, "writing CSV");
    }
    w.into_bytes()
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
        w.write([
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
                w.write([
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
        w.write([
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
            "inbound_message_sid",
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
        // The text that gave a tap-to-text consent (issue 17); other paths keep theirs in the ledger.
        let request_ids: Vec<&str> = page.iter().map(|r| r.request_id.as_str()).collect();
        let tapped: std::collections::HashMap<String, String> = crate::db::schema::landing_views::table
            .filter(crate::db::schema::landing_views::consent_request_id.eq_any(&request_ids))
            .filter(crate::db::schema::landing_views::used_message_sid.is_not_null())
            .select((
                crate::db::schema::landing_views::consent_request_id.assume_not_null(),
                crate::db::schema::landing_views::used_message_sid.assume_not_null(),
            ))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect();
        let chunk = csv_chunk(|w| {
            for r in &page {
                let categories: Vec<String> = serde_json::from_str(&r.categories).unwrap_or_default();
                w.write([
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
                    tapped.get(&r.request_id).map(String::as_str).unwrap_or_default(),
                ])?;
            }
            Ok(())
        });
        if !sink(chunk) || (page.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

/// Every row an import job refused, as the file had it, with its line and the reason (as
/// `reason` words it: the dashboard's language): the header of the file plus `line` and
/// `reason`. Fixed, it can be imported again as it is (the importer ignores the two extra
/// columns).
pub fn import_refusals(
    conn: &mut DbConn,
    job: &crate::contacts::import_jobs::ImportJob,
    sink: &mut CsvSink<'_>,
    reason: impl Fn(&crate::contacts::import_jobs::Refusal) -> String,
) -> Result<(), DbError> {
    let mut header = job.header_cells();
    let width = header.len();
    header.extend(["line".to_owned(), "reason".to_owned()]);
    if !sink(csv_chunk(|w| w.write(header.iter().map(String::as_str)))) {
        return Ok(());
    }
    let mut after = 0;
    loop {
        let page = crate::contacts::import_jobs::refusals(conn, &job.id, after, PAGE)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.line;
        let chunk = csv_chunk(|w| {
            for r in &page {
                let mut cells = r.cell_list();
                // A row too short or too long for the header keeps its cells; the two columns
                // still come last, under their names, when the row is as wide as the header.
                if cells.len() < width {
                    cells.resize(width, String::new());
                }
                let (line, reason) = (r.line.to_string(), reason(r));
                w.write(cells.iter().map(String::as_str).chain([line.as_str(), reason.as_str()]))?;
            }
            Ok(())
        });
        if !sink(chunk) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What a spreadsheet reads back: the cells of every record of `csv`.
    fn cells(csv: &[u8]) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv)
            .records()
            .map(|r| r.expect("valid CSV").iter().map(str::to_owned).collect())
            .collect()
    }

    fn starts_dangerously(cell: &str) -> bool {
        cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
    }

    fn is_e164(cell: &str) -> bool {
        cell.strip_prefix('+')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    #[test]
    fn formulas_are_neutralised_and_phone_numbers_kept() {
        for (cell, shown) in [
            (
                "=HYPERLINK(\"http://evil.example\",\"x\")",
                "'=HYPERLINK(\"http://evil.example\",\"x\")",
            ),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("-2+3", "'-2+3"),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
            ("+", "'+"),
            ("+45 20 12 34 56", "'+45 20 12 34 56"),
            ("+4520123456", "+4520123456"),
            ("Anna", "Anna"),
            ("a=b", "a=b"),
            ("'=already quoted", "'=already quoted"),
            ("", ""),
            ("2026-12-06T10:00:00+00:00", "2026-12-06T10:00:00+00:00"),
        ] {
            assert_eq!(spreadsheet_safe(cell), shown, "{cell:?}");
        }
    }

    #[test]
    fn every_record_goes_through_the_rule() {
        let chunk = csv_chunk(|w| {
            w.write(["phone", "first_name"])?;
            w.write(["+4520123456", "=1+1"])
        });
        assert_eq!(
            String::from_utf8(chunk).expect("UTF-8"),
            "phone,first_name\n+4520123456,'=1+1\n"
        );
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            // A byte-order mark at the very start is taken for one by CSV readers, not for data.
            any::<String>().prop_map(|s| s.replace('\u{feff}', "")),
            "[=+@\\-\t\r'\" ,a-z0-9()|!]{0,12}",
            "\\+[0-9]{0,16}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No cell of arbitrary input comes out starting like a formula, unless it is a phone
        /// number in E.164; every cell reads back as given, or as given behind one `'`.
        #[test]
        fn no_exported_cell_is_a_formula(
            rows in (1usize..6).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(cell(), n), 1..8))
        ) {
            let chunk = csv_chunk(|w| {
                for row in &rows {
                    w.write(row.iter().map(String::as_str))?;
                }
                Ok(())
            });
            let back = cells(&chunk);
            prop_assert_eq!(back.len(), rows.len());
            for (row, read) in rows.iter().zip(&back) {
                prop_assert_eq!(row.len(), read.len());
                for (given, shown) in row.iter().zip(read) {
                    prop_assert!(!starts_dangerously(shown) || is_e164(shown), "{:?}", shown);
                    if starts_dangerously(given) && !is_e164(given) {
                        prop_assert_eq!(shown, &format!("'{given}"));
                    } else {
                        prop_assert_eq!(shown, given);
                    }
                }
            }
        }
    }
}
