//! `/app/import`: a CSV upload (multipart/form-data) spooled to `IMPORT_DIR` with the API's size
//! limit, imported by a job (`contacts::import_jobs`); `/app/import/{id}` shows the job, and
//! refreshes itself until it ends with a `Refresh` header (no script: the CSP allows none; the
//! header, not `<meta http-equiv="refresh">`, which axe refuses, and with a link that turns it
//! off, WCAG 2.2.1); `/app/import/{id}/refused.csv` gives back every refused row with its reason.

use std::path::PathBuf;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::AppSession;
use super::pages::Layout;
use crate::accounts::Role;
use crate::activity::{self, Action};
use crate::contacts::import::problem::{ExportMark, FileProblem, RowProblem, Span};
use crate::contacts::import_jobs::{self, ImportJob, ImportJobStatus, NewImportJob, Refusal};
use crate::db::{self, DbError};
use crate::domain::Locale;
use crate::i18n::{self, AppStrings, ImportProblemStrings, MarketerStrings};
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;
use crate::slots::Slotted;

/// Refused rows shown on the status page; the CSV has them all.
const SHOWN_REFUSALS: i64 = 20;
/// Seconds between refreshes of a running job's page.
const REFRESH_SECS: u32 = 2;
/// Room for the form's other fields and the multipart framing around the file.
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;

fn marketer(req: &HttpRequest) -> &'static MarketerStrings {
    i18n::marketer(super::locale(req))
}

/// `1.5 MB`, `256 MB`: a size as people read it.
fn size(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    let mb = bytes as f64 / MB;
    if mb >= 10.0 || mb.fract() == 0.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{mb:.1} MB")
    }
}

pub struct JobRow {
    id: String,
    file_name: String,
    started: String,
    status: &'static str,
    imported: i64,
    updated: i64,
    refused: i64,
}

fn status_text(s: &MarketerStrings, status: ImportJobStatus) -> &'static str {
    match status {
        ImportJobStatus::Queued => s.status_queued,
        ImportJobStatus::Running => s.status_running,
        ImportJobStatus::Done => s.status_done,
        ImportJobStatus::Failed => s.status_failed,
    }
}

#[derive(Template)]
#[template(path = "app/import.html")]
struct ImportPage {
    t: &'static AppStrings,
    s: &'static MarketerStrings,
    layout: Layout,
    hint: String,
    error: Option<String>,
    jobs: Vec<JobRow>,
}

async fn import_page(
    req: &HttpRequest,
    state: &AppState,
    session: &AppSession,
    status: StatusCode,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let jobs = state
        .db
        .run(move |conn| import_jobs::recent(conn, &ws, 10))
        .await
        .map_err(|e| PageError::dashboard(req, e))?;
    let s = marketer(req);
    let jobs = jobs
        .into_iter()
        .map(|j| JobRow {
            started: j.created_at.format("%Y-%m-%d %H:%M").to_string(),
            status: status_text(s, j.status),
            id: j.id,
            file_name: j.file_name,
            imported: j.imported,
            updated: j.updated,
            refused: j.refused,
        })
        .collect();
    Ok(render(
        status,
        &ImportPage {
            t: super::strings(req),
            s,
            layout: Layout::of(session),
            hint: s
                .import_file_hint
                .replace("{max}", &size(state.settings.import_max_bytes)),
            error,
            jobs,
        },
    ))
}

#[get("/app/import")]
pub async fn import_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
) -> Result<HttpResponse, PageError> {
    import_page(&req, &state, &session, StatusCode::OK, None).await
}

/// An uploaded file on its way to disk; removed when dropped unless kept (also when the request
/// is cancelled part-way).
struct Spool {
    path: PathBuf,
    keep: bool,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why an upload was refused, each a page with the form again.
enum UploadError {
    Form,
    NoFile,
    TooLarge,
    Broken,
}

#[post("/app/import")]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    mut form: Multipart,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Editor)?;
    let s = marketer(&req);
    let limit = state.settings.import_max_bytes;
    let max = size(limit);
    let refuse = |e: UploadError| {
        let (status, text) = match e {
            UploadError::Form => (StatusCode::FORBIDDEN, s.import_error_form.to_owned()),
            UploadError::NoFile => (StatusCode::BAD_REQUEST, s.import_error_no_file.to_owned()),
            UploadError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                s.import_error_too_large.replace("{max}", &max),
            ),
            UploadError::Broken => (StatusCode::BAD_REQUEST, s.import_error_upload.to_owned()),
        };
        (status, text)
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit.saturating_add(FORM_OVERHEAD_BYTES)) {
        let (status, text) = refuse(UploadError::TooLarge);
        return close_after(import_page(&req, &state, &session, status, Some(text)).await);
    }

    let id = db::new_id();
    let dir = state.settings.import_dir.clone();
    let received = receive(&session, &mut form, &dir, &id, limit).await;
    let (spool, file_name, bytes) = match received {
        Ok(upload) => upload,
        Err(e) => {
            let too_large = matches!(e, UploadError::TooLarge);
            let (status, text) = refuse(e);
            let page = import_page(&req, &state, &session, status, Some(text)).await;
            // The rest of an oversized body is not read: close the connection after answering.
            return if too_large { close_after(page) } else { page };
        }
    };

    let ws = session.workspace_id().to_owned();
    let who = session.0.email.clone();
    let actor = session.actor();
    let (job_id, path) = (id.clone(), spool.path.clone());
    state
        .db
        .run(move |conn| {
            db::write_tx(conn, |conn| -> Result<(), DbError> {
                import_jobs::create(
                    conn,
                    &NewImportJob {
                        id: &job_id,
                        workspace_id: &ws,
                        file_name: &file_name,
                        spool_path: &path,
                        bytes,
                        created_by: &who,
                    },
                )?;
                let detail = format!("{file_name} ({bytes} bytes), import job {job_id}");
                activity::record(conn, &ws, &actor, Action::Import, Some(&job_id), &detail)
            })
        })
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let mut spool = spool;
    spool.keep = true;
    state.wake.notify_waiters();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/app/import/{id}")))
        .finish())
}

fn close_after(page: Result<HttpResponse, PageError>) -> Result<HttpResponse, PageError> {
    page.map(|mut res| {
        res.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        res
    })
}

/// Reads the form: the form token first (the page puts it before the file, and a file is not
/// stored for a form without a valid token), then the file, streamed to `dir`.
async fn receive(
    session: &AppSession,
    form: &mut Multipart,
    dir: &std::path::Path,
    id: &str,
    limit: u64,
) -> Result<(Spool, String, u64), UploadError> {
    let mut csrf_ok = false;
    let mut received = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| UploadError::Broken)?;
        match field.name() {
            Some("csrf") => {
                let mut token = Vec::new();
                while let Some(chunk) = field.next().await {
                    token.extend_from_slice(&chunk.map_err(|_| UploadError::Broken)?);
                    if token.len() > 256 {
                        return Err(UploadError::Form);
                    }
                }
                csrf_ok = session.csrf_ok(std::str::from_utf8(&token).ok());
            }
            Some("file") if received.is_none() => {
                if !csrf_ok {
                    return Err(UploadError::Form);
                }
                let file_name = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect::<String>())
                    .unwrap_or_default();
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot create IMPORT_DIR");
                    UploadError::Broken
                })?;
                let spool = Spool {
                    path: import_jobs::spool_path(dir, id),
                    keep: false,
                };
                let mut file = tokio::fs::File::create(&spool.path).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot create an import spool file");
                    UploadError::Broken
                })?;
                let mut bytes = 0u64;
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|_| UploadError::Broken)?;
                    bytes += chunk.len() as u64;
                    if bytes > limit {
                        return Err(UploadError::TooLarge);
                    }
                    file.write_all(&chunk).await.map_err(|_| UploadError::Broken)?;
                }
                file.flush().await.map_err(|_| UploadError::Broken)?;
                if bytes == 0 {
                    return Err(UploadError::NoFile);
                }
                received = Some((spool, file_name, bytes));
            }
            // Anything else (a second file, a field of no use) is read past.
            _ => {
                while let Some(chunk) = field.next().await {
                    chunk.map_err(|_| UploadError::Broken)?;
                }
            }
        }
    }
    if !csrf_ok {
        return Err(UploadError::Form);
    }
    received.ok_or(UploadError::NoFile)
}

pub struct RefusalRow {
    line: i64,
    reason: String,
    row: String,
}

impl RefusalRow {
    fn new(r: &Refusal, locale: Locale) -> Self {
        Self {
            line: r.line,
            row: r.cell_list().join(", "),
            reason: reason_words(r, locale),
        }
    }
}

/// Why a row was refused, in the dashboard's language: English is the importer's own words (as
/// stored); Danish is worded from the stored [`RowProblem`]. A row refused before problems were
/// stored has only its English reason.
fn reason_words(refusal: &Refusal, locale: Locale) -> String {
    match (i18n::import_problems(locale), refusal.problem()) {
        (Some(s), Some(problem)) => problem_words(s, &problem),
        _ => refusal.reason.clone(),
    }
}

fn problem_words(s: &ImportProblemStrings, problem: &RowProblem) -> String {
    let span = |span: Span| match span {
        Some((first, last)) => fill(s.span, [("{first}", &first.to_string()), ("{last}", &last.to_string())]),
        None => String::new(),
    };
    match problem {
        RowProblem::UnreadableCsv { detail } => fill(s.unreadable_csv, [("{detail}", detail)]),
        RowProblem::Duplicate { first_line, email } => {
            fill(s.duplicate, [("{line}", &first_line.to_string()), ("{email}", email)])
        }
        RowProblem::Marked { mark, header, cell } => {
            let mark = match mark {
                ExportMark::NotAccepting => s.not_accepting,
                ExportMark::Unsubscribed => s.unsubscribed,
                ExportMark::Cleaned => s.cleaned,
                ExportMark::NotSubscribed => s.not_subscribed,
            };
            let cell = if cell.is_empty() { s.blank } else { cell };
            fill(s.marked, [("{mark}", mark), ("{header}", header), ("{cell}", cell)])
        }
        RowProblem::FieldCount {
            expected,
            found,
            span: lines,
        } => fill(
            s.field_count,
            [
                ("{expected}", &expected.to_string()),
                ("{found}", &found.to_string()),
                ("{span}", &span(*lines)),
            ],
        ),
        RowProblem::NotUtf8 { column } => fill(s.not_utf8, [("{column}", column)]),
        RowProblem::LineBreak { column, span: lines } => {
            fill(s.line_break, [("{column}", column), ("{span}", &span(*lines))])
        }
        RowProblem::TooLong { column, max } => fill(s.too_long, [("{column}", column), ("{max}", &max.to_string())]),
        RowProblem::ControlCharacters { column } => fill(s.control, [("{column}", column)]),
        RowProblem::Invisible { column, found } => {
            fill(s.invisible, [("{column}", column), ("{char}", &found.label())])
        }
        RowProblem::EmailEmpty => s.email_empty.to_owned(),
        RowProblem::EmailMalformed { value } => fill(s.email_malformed, [("{value}", value)]),
        RowProblem::EmailTooLong { value } => fill(s.email_too_long, [("{value}", value)]),
        RowProblem::Locale { value } => fill(s.locale, [("{value}", value)]),
        RowProblem::ConsentTimeFormat { value } => fill(s.consent_time_format, [("{value}", value)]),
        RowProblem::ConsentTimeFuture { value } => fill(s.consent_time_future, [("{value}", value)]),
    }
}

/// Why a job failed, in the dashboard's language (see [`reason_words`]).
fn failure_words(job: &ImportJob, locale: Locale) -> Option<String> {
    let english = job.error.clone()?;
    let (Some(s), Some(problem)) = (i18n::import_problems(locale), job.problem()) else {
        return Some(english);
    };
    Some(match problem {
        FileProblem::Empty => s.file_empty.to_owned(),
        FileProblem::MissingEmailColumn { found } => {
            let found = if found.is_empty() {
                s.file_no_columns.to_owned()
            } else {
                found.join(", ")
            };
            fill(s.file_no_email_column, [("{found}", &found)])
        }
        FileProblem::HeaderNotUtf8 => s.file_header_not_utf8.to_owned(),
        FileProblem::DuplicateColumn { column } => fill(s.file_duplicate_column, [("{column}", &column)]),
        FileProblem::Unreadable { detail } => fill(s.file_unreadable, [("{detail}", &detail)]),
        FileProblem::FileGone { detail } => fill(s.file_gone, [("{detail}", &detail)]),
    })
}

/// `template` with every `{name}` of `values` filled in in one pass: a value from the file (a
/// header, a cell) that holds another placeholder stays as it was written.
fn fill<const N: usize>(template: &str, values: [(&str, &str); N]) -> String {
    Slotted::split(template, &values.map(|(marker, _)| marker)).fill(&values.map(|(_, value)| value))
}

#[derive(Template)]
#[template(path = "app/import_job.html")]
struct JobPage {
    t: &'static AppStrings,
    s: &'static MarketerStrings,
    layout: Layout,
    job: ImportJob,
    status: &'static str,
    format: &'static str,
    /// Whether the page refreshes itself (the job runs, and the reader did not turn it off).
    refreshing: bool,
    /// Why the job failed, in the dashboard's language.
    failure: Option<String>,
    refusals: Vec<RefusalRow>,
}

#[derive(serde::Deserialize)]
pub struct JobQuery {
    /// `off` stops the refreshing.
    refresh: Option<String>,
}

#[get("/app/import/{id}")]
pub async fn job_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    query: web::Query<JobQuery>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let loaded = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let Some(job) = import_jobs::find(conn, &ws, &id)? else {
                return Ok(None);
            };
            let refusals = import_jobs::refusals(conn, &job.id, 0, SHOWN_REFUSALS)?;
            Ok(Some((job, refusals)))
        })
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let (job, refusals) = loaded.ok_or_else(|| PageError::not_found(&req))?;
    let s = marketer(&req);
    let refreshing = !job.status.is_finished() && query.refresh.as_deref() != Some("off");
    let locale = super::locale(&req);
    let mut res = render(
        StatusCode::OK,
        &JobPage {
            t: super::strings(&req),
            s,
            layout: Layout::of(&session),
            status: status_text(s, job.status),
            format: job.format.map_or("", |f| f.label()),
            refreshing,
            failure: failure_words(&job, locale),
            refusals: refusals.iter().map(|r| RefusalRow::new(r, locale)).collect(),
            job,
        },
    );
    if refreshing {
        res.headers_mut().insert(
            header::HeaderName::from_static("refresh"),
            header::HeaderValue::from(REFRESH_SECS),
        );
    }
    Ok(res)
}

#[get("/app/import/{id}/refused.csv")]
pub async fn refused_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let job = state
        .db
        .run(move |conn| import_jobs::find(conn, &ws, &id))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?
        .ok_or_else(|| PageError::not_found(&req))?;
    let filename = format!("import-{}-refused.csv", job.id);
    let locale = super::locale(&req);
    Ok(crate::routes::csv::stream_csv(
        &state.db,
        &filename,
        move |conn, sink| crate::exports::import_refusals(conn, &job, sink, |r| reason_words(r, locale)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_the_file_are_filled_in_as_written() {
        let s = i18n::import_problems(Locale::Da).expect("Danish words");
        let marked = RowProblem::Marked {
            mark: ExportMark::NotAccepting,
            header: "Samtykke {cell}".into(),
            cell: "{header}".into(),
        };
        assert_eq!(
            problem_words(s, &marked),
            "Ikke importeret: eksporten angiver, at personen ikke tager imod markedsføring på e-mail \
             (Samtykke {cell}: {header}). En invitation på e-mail ville gå imod det valg."
        );
        let blank = RowProblem::Marked {
            mark: ExportMark::Cleaned,
            header: "CLEAN_TIME".into(),
            cell: String::new(),
        };
        assert!(problem_words(s, &blank).contains("(CLEAN_TIME: (tom))"));
        let spanning = RowProblem::LineBreak {
            column: "first_name".into(),
            span: Some((4, 6)),
        };
        assert_eq!(
            problem_words(s, &spanning),
            "Kolonnen first_name indeholder et linjeskift. Rækken løber over linje 4–6: se efter et \
             anførselstegn, der ikke er lukket."
        );
    }
}
