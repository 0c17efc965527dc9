//! Streaming CSV import of contacts with email permission.
//!
//! The file is read record by record (never whole into memory) and written in batches, one write
//! transaction per batch. Bad rows are reported with their line number and skipped; good rows
//! are kept. Importing the same file again changes nothing (contacts are keyed by the
//! lower-cased email per workspace), and suppressed contacts stay suppressed because the
//! suppression list is separate from the contact rows and import never touches it.

pub mod formats;
pub mod problem;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::consent::ledger;
use crate::db::schema::contacts;
use crate::db::{self, DbConn, DbError};
use crate::domain::{EmailAddress, Locale, check_visible};
use formats::{ExportFormat, Field, Meaning, Permission};
use problem::{ExportMark, RowProblem};

/// Rows written per transaction: large enough to amortize the commit, small enough to keep the
/// SQLite write lock short for the landing page and webhooks running beside an import.
const BATCH_ROWS: usize = 1000;
/// Per-row errors listed in full; beyond this only their number is reported.
const MAX_LISTED_REJECTIONS: usize = 10_000;
const MAX_NAME_CHARS: usize = 200;
const MAX_SOURCE_CHARS: usize = 500;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportReport {
    /// What the header row says the file is: `shopify`, `mailchimp` or `klaviyo` (absent for
    /// optbridge's own columns, so that the answer for them is as it always was).
    #[serde(skip_serializing_if = "is_own_format")]
    pub format: ExportFormat,
    /// New contacts created.
    pub imported: u64,
    /// Rows that matched an existing contact of the workspace (by email); their non-empty fields
    /// were applied.
    pub updated: u64,
    pub rejected: Vec<RejectedRow>,
    /// Rejected rows beyond the first 10,000, counted but not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub rejected_not_listed: u64,
}

impl Default for ImportReport {
    fn default() -> Self {
        Self {
            format: ExportFormat::Optbridge,
            imported: 0,
            updated: 0,
            rejected: Vec::new(),
            rejected_not_listed: 0,
        }
    }
}

fn is_own_format(format: &ExportFormat) -> bool {
    *format == ExportFormat::Optbridge
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ImportReport {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.len() as u64 + self.rejected_not_listed
    }

    fn reject(&mut self, line: u64, error: String) {
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(RejectedRow { line, error });
        } else {
            self.rejected_not_listed += 1;
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RejectedRow {
    pub line: u64,
    pub error: String,
}

/// Whole-file problems: nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is empty: expected a header row with an 'email' column")]
    Empty,
    #[error(
        "the header row has no 'email' column (found: {}); the first row must name the columns, e.g. email,first_name,last_name,locale",
        problem::listed(found)
    )]
    MissingEmailColumn { found: Vec<String> },
    #[error("the header row is not valid UTF-8: save the file as UTF-8 CSV")]
    HeaderNotUtf8,
    #[error("the header row names the column '{0}' twice")]
    DuplicateColumn(String),
    #[error("could not read the file: {0}")]
    Read(String),
    /// The [`ImportJournal`] stopped the import (its job was taken over by another worker).
    #[error("the import was interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Where the importer is, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
struct Columns {
    format: ExportFormat,
    email: usize,
    first_name: Option<usize>,
    last_name: Option<usize>,
    locale: Option<usize>,
    external_id: Option<usize>,
    email_consent_at: Option<usize>,
    email_consent_at_fallback: Option<usize>,
    email_consent_source: Option<usize>,
    /// Columns that refuse a row (see [`formats::Permission`]): index, rule, reason, header.
    permissions: Vec<(usize, Permission, ExportMark, String)>,
    count: usize,
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            format: ExportFormat::Optbridge,
            email: 0,
            first_name: None,
            last_name: None,
            locale: None,
            external_id: None,
            email_consent_at: None,
            email_consent_at_fallback: None,
            email_consent_source: None,
            permissions: Vec::new(),
            count: 0,
        }
    }
}

/// A refused row with its original cells, for a journal that keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    pub line: u64,
    /// The row's cells as read (invalid UTF-8 replaced).
    pub cells: Vec<String>,
    pub problem: RowProblem,
}

/// How far an import got: records read (including refused and blank ones) and the counts so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub records: u64,
    pub imported: u64,
    pub updated: u64,
    pub refused: u64,
}

/// What a long-running import (the dashboard's import job) keeps along the way. Each call happens
/// inside the transaction that writes a batch of contacts, so the journal's record and the
/// contacts are committed together: resuming from the last checkpoint neither skips nor repeats
/// a row.
pub trait ImportJournal {
    /// The header row (cells as read) and the format it tells; called before any batch.
    fn header(&mut self, conn: &mut DbConn, cells: &[String], format: ExportFormat) -> Result<(), ImportError>;

    /// A batch is being written: where the import is after it, and the rows refused since the
    /// last batch.
    fn batch(&mut self, conn: &mut DbConn, at: Checkpoint, refused: &[RefusedRow]) -> Result<(), ImportError>;
}

/// One valid row, ready to write.
#[derive(Debug, Clone)]
struct ContactRow {
    email: EmailAddress,
    first_name: Option<String>,
    last_name: Option<String>,
    locale: Option<Locale>,
    external_id: Option<String>,
    email_consent_at: Option<NaiveDateTime>,
    email_consent_source: Option<String>,
}

/// Imports a CSV stream into a workspace. `on_progress` is called after every batch.
pub fn import_csv<R: Read>(
    conn: &mut DbConn,
    workspace_id: &str,
    input: R,
    on_progress: impl FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    import_journaled(conn, workspace_id, input, on_progress, None, Checkpoint::default())
}

/// [`import_csv`] with a journal, resuming after `from` (a checkpoint the journal recorded): the
/// records before it are read again only to know their emails (a later duplicate of one is
/// still refused), and the report's counts start from the checkpoint's. The report lists only
/// rows refused after `from`.
pub fn import_journaled<R: Read>(
    conn: &mut DbConn,
    workspace_id: &str,
    input: R,
    mut on_progress: impl FnMut(Progress),
    mut journal: Option<&mut dyn ImportJournal>,
    from: Checkpoint,
) -> Result<ImportReport, ImportError> {
    let mut input = CountingReader::new(input);
    let mut buffered = BufReader::with_capacity(64 * 1024, &mut input);
    let bom_len = skip_bom(&mut buffered)?;
    let delimiter = sniff_delimiter(&mut buffered)?;

    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(buffered);

    let mut record = csv::ByteRecord::new();
    let has_header = reader
        .read_byte_record(&mut record)
        .map_err(|e| ImportError::Read(e.to_string()))?;
    if !has_header || record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
        return Err(ImportError::Empty);
    }
    let columns = parse_header(&record)?;
    if let Some(journal) = journal.as_deref_mut() {
        journal.header(conn, &lossy_cells(&record), columns.format)?;
    }

    let mut report = ImportReport {
        format: columns.format,
        imported: from.imported,
        updated: from.updated,
        ..ImportReport::default()
    };
    // Refusals before the checkpoint were recorded by the journal already.
    let refused_before = from.refused;
    let mut pending: Vec<RefusedRow> = Vec::new();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let hasher = RandomState::new();
    let mut batch: Vec<(u64, ContactRow)> = Vec::with_capacity(BATCH_ROWS);
    let mut rows = 0u64;

    loop {
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => return Err(ImportError::Read(e.to_string())),
                // Only I/O errors are possible with a flexible byte reader; treat anything else as
                // a bad row and carry on.
                _ => {
                    let byte = e.position().map_or(0, csv::Position::byte) + bom_len;
                    let line = reader.get_mut().get_mut().line_at(byte);
                    let problem = RowProblem::UnreadableCsv { detail: e.to_string() };
                    report.reject(line, problem.to_string());
                    if journal.is_some() {
                        pending.push(RefusedRow {
                            line,
                            cells: Vec::new(),
                            problem,
                        });
                    }
                    continue;
                }
            },
        };
        if !more {
            break;
        }
        rows += 1;
        // csv's own line numbers drift on CRLF files, so count newlines ourselves: the record's
        // last line is where its terminator is; it starts as many lines earlier as its fields
        // hold line breaks.
        let end_byte = reader.position().byte() + bom_len;
        let end_line = reader.get_mut().get_mut().line_at(end_byte.saturating_sub(1));
        let breaks = record.iter().map(line_breaks).sum::<usize>() as u64;
        let line = end_line.saturating_sub(breaks).max(2);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // a blank line
        }
        let replayed = rows <= from.records;
        let refusal = match parse_row(&record, &columns, (line, end_line)) {
            Ok(row) => {
                let key = hasher.hash_one(row.email.normalized());
                if let Some(first) = seen.get(&key) {
                    Some(RowProblem::Duplicate {
                        first_line: *first,
                        email: row.email.to_string(),
                    })
                } else {
                    seen.insert(key, line);
                    if !replayed {
                        batch.push((line, row));
                    }
                    None
                }
            }
            Err(error) => Some(error),
        };
        if let Some(problem) = refusal {
            if !replayed {
                report.reject(line, problem.to_string());
                if journal.is_some() {
                    pending.push(RefusedRow {
                        line,
                        cells: lossy_cells(&record),
                        problem,
                    });
                }
            }
        }
        if batch.len() >= BATCH_ROWS || pending.len() >= BATCH_ROWS {
            let at = Checkpoint {
                records: rows,
                imported: 0,
                updated: 0,
                refused: refused_before + report.rejected_total(),
            };
            write_batch(
                conn,
                workspace_id,
                &mut batch,
                &mut report,
                &mut journal,
                &mut pending,
                at,
            )?;
            on_progress(Progress {
                rows,
                bytes: reader.get_ref().get_ref().bytes,
            });
        }
    }
    let at = Checkpoint {
        records: rows,
        imported: 0,
        updated: 0,
        refused: refused_before + report.rejected_total(),
    };
    write_batch(
        conn,
        workspace_id,
        &mut batch,
        &mut report,
        &mut journal,
        &mut pending,
        at,
    )?;
    // After a large load, refresh the planner's statistics right away instead of waiting for
    // autovacuum: campaign expansion right after an import would otherwise plan for an empty table.
    if report.imported >= 10_000
        && let DbConn::Pg(pg) = conn
    {
        diesel::sql_query("ANALYZE contacts").execute(pg)?;
    }
    on_progress(Progress {
        rows,
        bytes: reader.get_ref().get_ref().bytes,
    });
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

/// Skips a UTF-8 byte-order mark (Excel writes one); returns how many bytes were skipped.
fn skip_bom<R: BufRead>(reader: &mut R) -> Result<u64, ImportError> {
    let head = reader.fill_buf().map_err(|e| ImportError::Read(e.to_string()))?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
        return Ok(3);
    }
    Ok(0)
}

/// Spreadsheets in Nordic locales save CSV with `;` (the comma is the decimal separator), some
/// exports use tabs: pick whichever appears most in the header line, outside quotes.
fn sniff_delimiter<R: BufRead>(reader: &mut R) -> Result<u8, ImportError> {
    let head = reader.fill_buf().map_err(|e| ImportError::Read(e.to_string()))?;
    let (mut commas, mut semicolons, mut tabs, mut quoted) = (0, 0, 0, false);
    for &b in head {
        match b {
            b'\n' | b'\r' if !quoted => break,
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            b'\t' if !quoted => tabs += 1,
            _ => {}
        }
    }
    Ok(if semicolons > commas && semicolons >= tabs {
        b';'
    } else if tabs > commas && tabs > semicolons {
        b'\t'
    } else {
        b','
    })
}

fn parse_header(record: &csv::ByteRecord) -> Result<Columns, ImportError> {
    let mut headers = Vec::with_capacity(record.len());
    for field in record {
        let name = std::str::from_utf8(field).map_err(|_| ImportError::HeaderNotUtf8)?;
        headers.push(name.trim().trim_start_matches('\u{feff}').to_owned());
    }
    let names: Vec<String> = headers.iter().map(|h| formats::normalize(h)).collect();
    let format = formats::detect(&names);
    let mut columns = Columns {
        format,
        count: names.len(),
        ..Columns::default()
    };
    let mut email = None;
    for (i, name) in names.iter().enumerate() {
        let slot = match formats::meaning(format, name) {
            None => continue, // extra columns are allowed and ignored
            Some(Meaning::Permission(rule, why)) => {
                columns.permissions.push((i, rule, why, headers[i].clone()));
                continue;
            }
            Some(Meaning::Field(field)) => match field {
                Field::Email => &mut email,
                Field::FirstName => &mut columns.first_name,
                Field::LastName => &mut columns.last_name,
                Field::Locale => &mut columns.locale,
                Field::ExternalId => &mut columns.external_id,
                Field::EmailConsentAt => &mut columns.email_consent_at,
                Field::EmailConsentAtFallback => &mut columns.email_consent_at_fallback,
                Field::EmailConsentSource => &mut columns.email_consent_source,
            },
        };
        if slot.is_some() {
            return Err(ImportError::DuplicateColumn(name.clone()));
        }
        *slot = Some(i);
    }
    columns.email = email.ok_or_else(|| ImportError::MissingEmailColumn {
        found: if names.iter().all(String::is_empty) {
            Vec::new()
        } else {
            names.clone()
        },
    })?;
    Ok(columns)
}

/// A record's cells as text, for showing a refused row again.
fn lossy_cells(record: &csv::ByteRecord) -> Vec<String> {
    record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

fn parse_row(
    record: &csv::ByteRecord,
    columns: &Columns,
    (line, end_line): (u64, u64),
) -> Result<ContactRow, RowProblem> {
    let span = (end_line > line).then_some((line, end_line));
    if record.len() != columns.count {
        return Err(RowProblem::FieldCount {
            expected: columns.count,
            found: record.len(),
            span,
        });
    }
    let text = |idx: Option<usize>, name: &str| -> Result<Option<String>, RowProblem> {
        let Some(bytes) = idx.and_then(|i| record.get(i)) else {
            return Ok(None);
        };
        let value = std::str::from_utf8(bytes)
            .map_err(|_| RowProblem::NotUtf8 {
                column: name.to_owned(),
            })?
            .trim();
        // A line break inside a quoted cell is valid CSV, but never valid in these columns; it
        // usually means a quote was left open and swallowed the next rows.
        if value.contains(['\n', '\r']) {
            return Err(RowProblem::LineBreak {
                column: name.to_owned(),
                span,
            });
        }
        Ok((!value.is_empty()).then(|| value.to_owned()))
    };
    let limited = |value: Option<String>, name: &str, max: usize| -> Result<Option<String>, RowProblem> {
        match value {
            Some(v) if v.chars().count() > max => Err(RowProblem::TooLong {
                column: name.to_owned(),
                max,
            }),
            Some(v) if v.chars().any(char::is_control) => Err(RowProblem::ControlCharacters {
                column: name.to_owned(),
            }),
            other => Ok(other),
        }
    };

    // A name is shown to people (greeting, dashboard): no bidi or zero-width controls either.
    let person_name = |value: Option<String>, name: &str| -> Result<Option<String>, RowProblem> {
        let value = limited(value, name, MAX_NAME_CHARS)?;
        if let Some(v) = &value {
            check_visible(v).map_err(|found| RowProblem::invisible(name, found))?;
        }
        Ok(value)
    };

    for (i, rule, mark, header) in &columns.permissions {
        let cell = record.get(*i).map(String::from_utf8_lossy).unwrap_or_default();
        if let Some(problem) = formats::refusal(*rule, *mark, header, &cell) {
            return Err(problem);
        }
    }
    let email = text(Some(columns.email), "email")?.unwrap_or_default();
    let email = EmailAddress::parse(&email).map_err(RowProblem::email)?;
    let locale = match text(columns.locale, "locale")? {
        None => None,
        Some(raw) => Some(Locale::parse(&raw).ok_or(RowProblem::Locale { value: raw })?),
    };
    let consent_at = match text(columns.email_consent_at, "email_consent_at")? {
        None => text(columns.email_consent_at_fallback, "email_consent_at")?,
        some => some,
    };
    let email_consent_at = match consent_at {
        None => None,
        Some(raw) => Some(parse_consent_time(&raw)?),
    };
    // An export's rows came with the tool's permission: say which, unless the file says more.
    let email_consent_source = match text(columns.email_consent_source, "email_consent_source")? {
        None if columns.format != ExportFormat::Optbridge => Some(columns.format.label().to_owned()),
        other => other,
    };
    Ok(ContactRow {
        email,
        first_name: person_name(text(columns.first_name, "first_name")?, "first_name")?,
        last_name: person_name(text(columns.last_name, "last_name")?, "last_name")?,
        locale,
        external_id: limited(text(columns.external_id, "external_id")?, "external_id", MAX_NAME_CHARS)?,
        email_consent_at,
        email_consent_source: limited(email_consent_source, "email_consent_source", MAX_SOURCE_CHARS)?,
    })
}

/// Accepts RFC 3339 (`2024-05-01T10:00:00+02:00`), `2024-05-01 10:00:00` and `2024-05-01`
/// (both read as UTC). A time in the future cannot be when someone consented.
fn parse_consent_time(raw: &str) -> Result<NaiveDateTime, RowProblem> {
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc).naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M"))
        .or_else(|_| NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN)))
        .map_err(|_| RowProblem::ConsentTimeFormat { value: raw.to_owned() })?;
    if parsed > Utc::now().naive_utc() + chrono::Duration::minutes(5) {
        return Err(RowProblem::ConsentTimeFuture { value: raw.to_owned() });
    }
    Ok(parsed)
}

#[derive(Insertable)]
#[diesel(table_name = contacts, treat_none_as_default_value = false)]
struct NewContact<'a> {
    id: String,
    workspace_id: &'a str,
    email: &'a str,
    email_normalized: String,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    locale: Option<&'static str>,
    external_id: Option<&'a str>,
    email_consent_at: Option<NaiveDateTime>,
    email_consent_source: Option<&'a str>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = contacts)]
struct ExistingContact {
    id: String,
    email_normalized: String,
    first_name: Option<String>,
    last_name: Option<String>,
    locale: Option<String>,
    external_id: Option<String>,
    email_consent_at: Option<NaiveDateTime>,
    email_consent_source: Option<String>,
}

#[derive(AsChangeset)]
#[diesel(table_name = contacts)]
struct ContactChanges<'a> {
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    locale: Option<&'static str>,
    external_id: Option<&'a str>,
    email_consent_at: Option<NaiveDateTime>,
    email_consent_source: Option<&'a str>,
    updated_at: NaiveDateTime,
}

/// Writes a batch in one transaction, with the journal's checkpoint (its `imported` and
/// `updated` filled in here) when there is a journal.
fn write_batch(
    conn: &mut DbConn,
    workspace_id: &str,
    batch: &mut Vec<(u64, ContactRow)>,
    report: &mut ImportReport,
    journal: &mut Option<&mut dyn ImportJournal>,
    pending: &mut Vec<RefusedRow>,
    mut at: Checkpoint,
) -> Result<(), ImportError> {
    if batch.is_empty() && (journal.is_none() || pending.is_empty()) {
        return Ok(());
    }
    let (imported, updated) = db::write_tx(conn, |conn| {
        let counts = if batch.is_empty() {
            (0, 0)
        } else {
            write_batch_tx(conn, workspace_id, batch)?
        };
        if let Some(journal) = journal.as_deref_mut() {
            at.imported = report.imported + counts.0;
            at.updated = report.updated + counts.1;
            journal.batch(conn, at, pending)?;
        }
        Ok::<_, ImportError>(counts)
    })?;
    report.imported += imported;
    report.updated += updated;
    batch.clear();
    pending.clear();
    Ok(())
}

fn write_batch_tx(
    conn: &mut DbConn,
    workspace_id: &str,
    batch: &[(u64, ContactRow)],
) -> Result<(u64, u64), ImportError> {
    // Two imports into one workspace must not both insert the same new email.
    db::lock_for_transaction(conn, &format!("contacts-import:{workspace_id}"))?;
    let keys: Vec<String> = batch.iter().map(|(_, r)| r.email.normalized()).collect();
    let existing: HashMap<String, ExistingContact> = contacts::table
        .filter(contacts::workspace_id.eq(workspace_id))
        .filter(contacts::email_normalized.eq_any(&keys))
        .select(ExistingContact::as_select())
        .load(conn)?
        .into_iter()
        .map(|c| (c.email_normalized.clone(), c))
        .collect();

    let now = db::now();
    let mut new_rows = Vec::new();
    let mut updated = 0u64;
    for ((_, row), key) in batch.iter().zip(keys) {
        if let Some(current) = existing.get(&key) {
            updated += 1;
            if let Some(changes) = changes_for(current, row, now) {
                diesel::update(contacts::table.find(&current.id))
                    .set(&changes)
                    .execute(conn)?;
            }
            continue;
        }
        new_rows.push(NewContact {
            id: db::new_id(),
            workspace_id,
            email: row.email.as_str(),
            email_normalized: key,
            first_name: row.first_name.as_deref(),
            last_name: row.last_name.as_deref(),
            locale: row.locale.map(Locale::as_str),
            external_id: row.external_id.as_deref(),
            email_consent_at: row.email_consent_at,
            email_consent_source: row.email_consent_source.as_deref(),
            created_at: now,
            updated_at: now,
        });
    }
    let imported = new_rows.len() as u64;
    // The email permission each new contact arrives with is the first entry of its consent history.
    let entries: Vec<ledger::NewEntry<'_>> = new_rows
        .iter()
        .map(|c| ledger::NewEntry {
            contact_id: Some(&c.id),
            kind: ledger::LedgerKind::EmailPermissionImported,
            at: now,
            payload: serde_json::json!({
                "email": c.email,
                "email_consent_at": c.email_consent_at.map(|t| t.and_utc().to_rfc3339()),
                "email_consent_source": c.email_consent_source,
                "via": "csv import",
            }),
        })
        .collect();
    ledger::append(conn, workspace_id, &entries)?;
    // Bulk insert is backend-specific in diesel's MultiConnection: one multi-row INSERT on
    // SQLite, binary COPY on PostgreSQL (faster than a 12,000-parameter INSERT).
    match conn {
        DbConn::Sqlite(c) => {
            diesel::insert_into(contacts::table).values(&new_rows).execute(c)?;
        }
        DbConn::Pg(c) => {
            diesel::copy_from(contacts::table)
                .from_insertable(&new_rows)
                .execute(c)?;
        }
    }
    Ok((imported, updated))
}

/// Non-empty fields of the row replace stored ones; empty fields never erase data.
fn changes_for<'a>(current: &ExistingContact, row: &'a ContactRow, now: NaiveDateTime) -> Option<ContactChanges<'a>> {
    fn pick<'a>(new: Option<&'a str>, old: &Option<String>) -> Option<&'a str> {
        new.filter(|n| old.as_deref() != Some(*n))
    }
    let changes = ContactChanges {
        first_name: pick(row.first_name.as_deref(), &current.first_name),
        last_name: pick(row.last_name.as_deref(), &current.last_name),
        locale: pick(row.locale.map(Locale::as_str), &current.locale),
        external_id: pick(row.external_id.as_deref(), &current.external_id),
        email_consent_at: row.email_consent_at.filter(|t| current.email_consent_at != Some(*t)),
        email_consent_source: pick(row.email_consent_source.as_deref(), &current.email_consent_source),
        updated_at: now,
    };
    let changed = changes.first_name.is_some()
        || changes.last_name.is_some()
        || changes.locale.is_some()
        || changes.external_id.is_some()
        || changes.email_consent_at.is_some()
        || changes.email_consent_source.is_some();
    changed.then_some(changes)
}

/// Line breaks in `bytes`: LF, CRLF, and CR alone (classic Mac files end lines with CR, and the
/// csv crate ends records there too).
fn line_breaks(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count()
}

/// Counts bytes (for progress) and remembers where the line breaks are that the parser has not
/// passed yet (for line numbers); memory stays bounded by the read-ahead buffer.
struct CountingReader<R> {
    inner: R,
    bytes: u64,
    /// Offsets of the line breaks ahead: each LF, and each CR not followed by LF.
    newlines_ahead: VecDeque<u64>,
    lines_passed: u64,
    /// A CR that ended the last read: a line break unless the next read starts with LF.
    cr_at_end: Option<u64>,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            bytes: 0,
            newlines_ahead: VecDeque::new(),
            lines_passed: 0,
            cr_at_end: None,
        }
    }

    /// The 1-based line of the byte at `offset`. Offsets must not decrease between calls.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.newlines_ahead.front().is_some_and(|&nl| nl < offset) {
            self.newlines_ahead.pop_front();
            self.lines_passed += 1;
        }
        self.lines_passed + 1
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        if let Some(cr) = self.cr_at_end.take()
            && chunk.first() != Some(&b'\n')
        {
            self.newlines_ahead.push_back(cr);
        }
        for (i, &b) in chunk.iter().enumerate() {
            let at = self.bytes + i as u64;
            match (b, chunk.get(i + 1)) {
                (b'\n', _) => self.newlines_ahead.push_back(at),
                (b'\r', None) => self.cr_at_end = Some(at),
                (b'\r', Some(&next)) if next != b'\n' => self.newlines_ahead.push_back(at),
                _ => {}
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(line: &str) -> Result<Columns, ImportError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let mut record = csv::ByteRecord::new();
        assert!(reader.read_byte_record(&mut record).expect("read"));
        parse_header(&record)
    }

    #[test]
    fn header_needs_email() {
        assert!(matches!(
            header("name,phone"),
            Err(ImportError::MissingEmailColumn { .. })
        ));
        assert!(matches!(header("email,Email"), Err(ImportError::DuplicateColumn(_))));
        let cols = header(" Email , First Name,locale,extra").expect("header");
        assert_eq!(cols.email, 0);
        assert_eq!(cols.first_name, Some(1));
        assert_eq!(cols.locale, Some(2));
        assert_eq!(cols.count, 4);
    }

    #[test]
    fn delimiter_sniffing() {
        let sniff = |s: &str| sniff_delimiter(&mut BufReader::new(s.as_bytes())).expect("sniff");
        assert_eq!(sniff("email;first_name\na@b.dk;x"), b';');
        assert_eq!(sniff("email,first_name\n"), b',');
        assert_eq!(sniff("email\tfirst_name\n"), b'\t');
        assert_eq!(sniff("\"a;b\",email\n"), b',');
        assert_eq!(sniff("email\n"), b',');
    }

    #[test]
    fn line_breaks_are_lf_crlf_or_a_lone_cr() {
        assert_eq!(line_breaks(b"a\nb\r\nc\rd"), 3);
        assert_eq!(line_breaks(b"\r\r\n\n\r"), 4);
        assert_eq!(line_breaks(b"no break"), 0);
        // A CR at the end of one read and an LF at the start of the next are one break.
        let mut reader = CountingReader::new(std::io::Read::chain(&b"a\r"[..], &b"\nb\rc\r"[..]));
        let mut all = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all, b"a\r\nb\rc\r");
        assert_eq!(Vec::from(reader.newlines_ahead.clone()), [2, 4, 6]);
        assert_eq!(
            [
                reader.line_at(2),
                reader.line_at(3),
                reader.line_at(5),
                reader.line_at(7)
            ],
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn consent_times() {
        assert!(parse_consent_time("2024-05-01").is_ok());
        assert!(parse_consent_time("2024-05-01 10:00:00").is_ok());
        let t = parse_consent_time("2024-05-01T10:00:00+02:00").expect("rfc3339");
        assert_eq!(t.to_string(), "2024-05-01 08:00:00");
        assert!(parse_consent_time("01/05/2024").is_err());
        assert!(
            parse_consent_time("2999-01-01")
                .unwrap_err()
                .to_string()
                .contains("future")
        );
    }

    mod properties {
        use std::cell::RefCell;
        use std::collections::HashSet;

        use proptest::prelude::*;

        use super::*;

        thread_local! {
            /// One migrated in-memory database per test thread; every case imports into a new
            /// workspace of it.
            static DATABASE: RefCell<DbConn> = RefCell::new(migrated_database());
        }

        fn migrated_database() -> DbConn {
            let mut conn = DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite"));
            db::run_migrations(&mut conn).expect("migrations");
            conn
        }

        /// Imports `csv` twice into a new workspace: the report of each run and the number of
        /// contacts the workspace has after the first.
        fn import_twice(
            csv: &[u8],
        ) -> (
            Result<ImportReport, ImportError>,
            Result<ImportReport, ImportError>,
            i64,
        ) {
            DATABASE.with_borrow_mut(|conn| {
                let new = crate::workspace::NewWorkspace::parse("Fuzz", "Shop <news@shop.example>", "DK", "da", None)
                    .expect("workspace");
                let (workspace, _) = crate::workspace::create(conn, new).expect("workspace");
                let first = import_csv(conn, &workspace.id, csv, |_| {});
                let stored = contacts::table
                    .filter(contacts::workspace_id.eq(&workspace.id))
                    .count()
                    .get_result(conn)
                    .expect("count");
                let second = import_csv(conn, &workspace.id, csv, |_| {});
                (first, second, stored)
            })
        }

        /// What holds for every file the importer accepts: each row is imported or rejected once,
        /// with a line number inside the file and a reason; importing again imports nothing new
        /// and rejects the same rows for the same reasons.
        fn check_report(
            csv: &[u8],
            first: &ImportReport,
            second: &ImportReport,
            stored: i64,
        ) -> Result<(), TestCaseError> {
            let lines = 1 + line_breaks(csv) as u64;
            prop_assert_eq!(first.updated, 0, "a new workspace has nothing to update");
            prop_assert_eq!(i64::try_from(first.imported).ok(), Some(stored));
            prop_assert!(
                first.imported + first.rejected_total() < lines.max(2),
                "more rows than lines"
            );
            let mut seen = HashSet::new();
            for rejected in &first.rejected {
                prop_assert!(
                    (2..=lines).contains(&rejected.line),
                    "line {} of {}",
                    rejected.line,
                    lines
                );
                prop_assert!(seen.insert(rejected.line), "line {} rejected twice", rejected.line);
                prop_assert!(!rejected.error.is_empty());
            }
            prop_assert!(first.rejected.is_sorted_by_key(|r| r.line));
            prop_assert_eq!(second.imported, 0);
            prop_assert_eq!(second.updated, first.imported);
            prop_assert_eq!(&second.rejected, &first.rejected);
            Ok(())
        }

        /// Header names the importer knows, and one it ignores.
        const COLUMNS: [&str; 8] = [
            "email",
            "first_name",
            "last_name",
            "locale",
            "external_id",
            "email_consent_at",
            "email_consent_source",
            "shoe_size",
        ];

        /// A cell: plausible and broken emails, locales and dates, and arbitrary text with
        /// quotes, separators, line breaks and control characters.
        fn cell() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => "[a-zA-Z0-9._+-]{1,10}@[a-z0-9-]{1,8}\\.(dk|se|no|com)",
                1 => "[a-z@. \"]{0,12}",
                1 => prop::sample::select(vec!["da", "nb", "sv-SE", "en", "fr", "", " ", "2024-05-01", "2024-05-01 10:00:00", "2999-01-01", "01/05/2024"]).prop_map(String::from),
                2 => "[ -~\\t\\r\\n\u{0}æøå😀]{0,12}",
                1 => any::<String>(),
            ]
        }

        /// A well-formed CSV file (written by the csv crate) with a valid header, its rows, and
        /// the line each row starts on; rows may have too few or too many fields.
        fn csv_file() -> impl Strategy<Value = (Vec<u8>, Vec<(u64, Vec<String>)>)> {
            (
                prop::sample::subsequence(COLUMNS[1..].to_vec(), 0..=7).prop_shuffle(),
                any::<prop::sample::Index>(),
                prop::sample::select(vec![b',', b';', b'\t']),
                any::<bool>(),
                any::<bool>(),
                prop::collection::vec((prop::collection::vec(cell(), 8), -1..=1_i32, 0..4_u8), 0..12),
            )
                .prop_map(|(others, email_at, delimiter, crlf, bom, rows)| {
                    let mut header: Vec<&str> = others;
                    header.insert(email_at.index(header.len() + 1), "email");
                    // The separator is read from the header: a single column can only mean ','.
                    let delimiter = if header.len() == 1 { b',' } else { delimiter };
                    let terminator = if crlf {
                        csv::Terminator::CRLF
                    } else {
                        csv::Terminator::Any(b'\n')
                    };
                    let write = |record: &[String]| {
                        let mut writer = csv::WriterBuilder::new()
                            .delimiter(delimiter)
                            .terminator(terminator)
                            .flexible(true)
                            .from_writer(Vec::new());
                        writer.write_record(record).expect("write");
                        writer.into_inner().expect("flush")
                    };
                    let mut file = if bom { vec![0xEF, 0xBB, 0xBF] } else { Vec::new() };
                    file.extend(write(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()));
                    let mut placed = Vec::new();
                    for (cells, width_change, duplicate) in rows {
                        let width = usize::try_from(header.len() as i32 + width_change).unwrap_or(1).max(1);
                        let mut record: Vec<String> = cells.into_iter().cycle().take(width).collect();
                        // Now and then repeat an earlier row's email.
                        if duplicate == 0
                            && let Some((_, earlier)) = placed.last()
                        {
                            let earlier: &Vec<String> = earlier;
                            record[0] = earlier[0].clone();
                        }
                        let line = 1 + line_breaks(&file) as u64;
                        file.extend(write(&record));
                        placed.push((line, record));
                    }
                    (file, placed)
                })
        }

        /// Found by `arbitrary_bytes_are_imported_or_refused`: with CR line endings (classic Mac
        /// files) every row was reported on line 2.
        #[test]
        fn rows_of_a_file_with_cr_line_endings_have_their_own_lines() {
            let csv = b"email;first_name\rbad;A\rgood@example.dk;B\r\"x@example.dk\";\"two\rlines\"\rworse;C\r";
            let (first, second, stored) = import_twice(csv);
            let (first, second) = (first.expect("accepted"), second.expect("accepted"));
            assert_eq!(first.imported, 1);
            let lines: Vec<u64> = first.rejected.iter().map(|r| r.line).collect();
            assert_eq!(lines, [2, 4, 6], "{:?}", first.rejected);
            assert!(first.rejected[1].error.contains("lines 4–5"), "{:?}", first.rejected);
            check_report(csv, &first, &second, stored).expect("report");
        }

        proptest! {
            #![proptest_config(crate::fuzzing::config(256))]

            /// Every row of a well-formed file is either imported or rejected with the line it
            /// starts on (blank rows are skipped), whatever its cells hold.
            #[test]
            fn every_row_is_imported_or_rejected_with_its_line((csv, rows) in csv_file()) {
                let (first, second, stored) = import_twice(&csv);
                let (first, second) = (first.expect("a valid header is accepted"), second.expect("again"));
                check_report(&csv, &first, &second, stored)?;
                let blank = |cells: &[String]| cells.len() == 1 && cells[0].bytes().all(|b| b.is_ascii_whitespace());
                let row_lines: Vec<u64> = rows.iter().filter(|(_, cells)| !blank(cells)).map(|(line, _)| *line).collect();
                prop_assert_eq!(first.imported + first.rejected_total(), row_lines.len() as u64);
                for rejected in &first.rejected {
                    prop_assert!(row_lines.contains(&rejected.line), "{:?} is not where a row starts: {:?}", rejected, row_lines);
                }
            }

            /// Arbitrary bytes, alone or after a valid header: never a panic, never a read or
            /// database error; the file is refused whole, or accounted for row by row.
            #[test]
            fn arbitrary_bytes_are_imported_or_refused(
                header in prop::sample::select(vec!["", "email\n", "email,first_name,locale\r\n", "\u{feff}Email;Last-Name;e-mail\n", "\"email\"\t\"x\"\n"]),
                bytes in prop::collection::vec(any::<u8>(), 0..400),
            ) {
                let csv = [header.as_bytes(), &bytes].concat();
                match import_twice(&csv) {
                    (Ok(first), Ok(second), stored) => check_report(&csv, &first, &second, stored)?,
                    (Err(first), Err(second), _) => {
                        prop_assert!(!matches!(first, ImportError::Read(_) | ImportError::Db(_)), "{}", first);
                        prop_assert_eq!(first.to_string(), second.to_string());
                    }
                    (first, second, _) => prop_assert!(false, "runs disagree: {:?} then {:?}", first, second),
                }
            }
        }
    }
}
