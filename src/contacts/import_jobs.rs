//! Imports started from the dashboard, run as durable jobs: a large file must not hold a request
//! open for minutes.
//!
//! The upload is spooled to a file; one transaction stores an `import_jobs` row and queues an
//! outbox job ([`IMPORT_JOB`]). [`ImportJobHandler`] imports the file with the same parser and
//! rules as the API and the CLI ([`super::import`]), recording in each batch's transaction how
//! far it got and every refused row (cells and reason). A job taken over after a crash resumes
//! after its last batch; a whole-file problem fails the job with the reason. The spooled file is
//! deleted when the job ends either way.

use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use futures_util::future::BoxFuture;

use super::import::{
    self, Checkpoint, ImportError, ImportJournal, RefusedRow,
    formats::ExportFormat,
    problem::{FileProblem, RowProblem},
};
use crate::db::schema::{import_jobs, import_refusals};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::outbox::worker::{JobHandler, Queue, WorkerError};
use crate::outbox::{self, Job, JobKind};

/// Imports a spooled file; `ref_id` is the `import_jobs` row.
pub const IMPORT_JOB: JobKind = JobKind::new("contacts.import");

/// Attempts after which a job that keeps failing on the database is given up.
const MAX_ATTEMPTS: i32 = 5;

db_enum! {
    /// Where an import job is.
    pub enum ImportJobStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

impl ImportJobStatus {
    /// Whether the job has ended (its status page stops refreshing).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = import_jobs)]
pub struct ImportJob {
    pub id: String,
    pub workspace_id: String,
    pub status: ImportJobStatus,
    pub file_name: String,
    pub spool_path: String,
    pub bytes: i64,
    pub format: Option<ExportFormat>,
    pub header: Option<String>,
    pub records: i64,
    pub imported: i64,
    pub updated: i64,
    pub refused: i64,
    /// Why it failed, in English (the API's words).
    pub error: Option<String>,
    /// Why it failed, as data ([`FileProblem`], JSON), when it is about the file.
    pub problem: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

impl ImportJob {
    /// Why the job failed, when this version can read it (see [`FileProblem::from_json`]).
    pub fn problem(&self) -> Option<FileProblem> {
        self.problem.as_deref().and_then(FileProblem::from_json)
    }

    /// The header cells of the file, once read.
    pub fn header_cells(&self) -> Vec<String> {
        self.header
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default()
    }
}

/// A refused row as stored.
#[derive(Debug, Clone, Queryable)]
pub struct Refusal {
    pub line: i64,
    /// JSON array of the row's cells.
    pub cells: String,
    /// In English, as the CLI and the API say it.
    pub reason: String,
    /// The reason as data ([`RowProblem`], JSON); `None` for rows refused before it was stored.
    pub problem: Option<String>,
}

impl Refusal {
    pub fn cell_list(&self) -> Vec<String> {
        serde_json::from_str(&self.cells).unwrap_or_default()
    }

    /// Why the row was refused, when this version can read it (see [`RowProblem::from_json`]).
    pub fn problem(&self) -> Option<RowProblem> {
        self.problem.as_deref().and_then(RowProblem::from_json)
    }
}

/// An uploaded file waiting to be imported.
pub struct NewImportJob<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub file_name: &'a str,
    pub spool_path: &'a Path,
    pub bytes: u64,
    /// Who started it (the dashboard user's email).
    pub created_by: &'a str,
}

/// Where the upload of job `id` is spooled in `dir`.
pub fn spool_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("import-{id}.csv"))
}

/// Stores the job and queues its outbox job, in one transaction (so a job is never queued for
/// a row that does not exist, nor a row left without its job). Call inside a write transaction
/// when the caller records more (the activity log).
pub fn create(conn: &mut DbConn, new: &NewImportJob<'_>) -> Result<(), DbError> {
    let now = db::now();
    diesel::insert_into(import_jobs::table)
        .values((
            import_jobs::id.eq(new.id),
            import_jobs::workspace_id.eq(new.workspace_id),
            import_jobs::status.eq(ImportJobStatus::Queued),
            import_jobs::file_name.eq(new.file_name.chars().take(200).collect::<String>()),
            import_jobs::spool_path.eq(new.spool_path.to_string_lossy().as_ref()),
            import_jobs::bytes.eq(i64::try_from(new.bytes).unwrap_or(i64::MAX)),
            import_jobs::created_by.eq(new.created_by),
            import_jobs::created_at.eq(now),
        ))
        .execute(conn)?;
    outbox::enqueue(conn, Some(new.workspace_id), IMPORT_JOB, new.id, now)
}

/// A job of this workspace, or `None` (also when it belongs to another workspace).
pub fn find(conn: &mut DbConn, workspace_id: &str, id: &str) -> Result<Option<ImportJob>, DbError> {
    Ok(import_jobs::table
        .filter(import_jobs::workspace_id.eq(workspace_id))
        .filter(import_jobs::id.eq(id))
        .select(ImportJob::as_select())
        .first(conn)
        .optional()?)
}

/// The workspace's latest jobs, newest first.
pub fn recent(conn: &mut DbConn, workspace_id: &str, limit: i64) -> Result<Vec<ImportJob>, DbError> {
    Ok(import_jobs::table
        .filter(import_jobs::workspace_id.eq(workspace_id))
        .order(import_jobs::created_at.desc())
        .limit(limit)
        .select(ImportJob::as_select())
        .load(conn)?)
}

/// The first `limit` refused rows of a job, by line.
pub fn refusals(conn: &mut DbConn, job_id: &str, after_line: i64, limit: i64) -> Result<Vec<Refusal>, DbError> {
    Ok(import_refusals::table
        .filter(import_refusals::job_id.eq(job_id))
        .filter(import_refusals::line.gt(after_line))
        .order(import_refusals::line.asc())
        .limit(limit)
        .select((
            import_refusals::line,
            import_refusals::cells,
            import_refusals::reason,
            import_refusals::problem,
        ))
        .load(conn)?)
}

/// Imports job files; registered for [`IMPORT_JOB`].
pub struct ImportJobHandler;

impl JobHandler for ImportJobHandler {
    fn kinds(&self) -> &[JobKind] {
        &[IMPORT_JOB]
    }

    fn long_running(&self) -> bool {
        true
    }

    fn handle<'a>(
        &'a self,
        queue: &'a Queue,
        owner: &'a str,
        jobs: Vec<Job>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async move {
            for job in jobs {
                let owner = owner.to_owned();
                let lease = queue.settings.lease;
                queue.db.run(move |conn| run_job(conn, &owner, &job, lease)).await?;
            }
            Ok(())
        })
    }
}

/// The journal of one job: checkpoints and refusals go to its row, and every batch extends the
/// outbox lease (an import of a large file outlives one lease).
struct JobJournal<'a> {
    job_id: &'a str,
    outbox_job_id: &'a str,
    owner: &'a str,
    lease: std::time::Duration,
}

impl ImportJournal for JobJournal<'_> {
    fn header(&mut self, conn: &mut DbConn, cells: &[String], format: ExportFormat) -> Result<(), ImportError> {
        diesel::update(import_jobs::table.find(self.job_id))
            .set((
                import_jobs::header.eq(serde_json::to_string(cells).unwrap_or_default()),
                import_jobs::format.eq(format),
                import_jobs::status.eq(ImportJobStatus::Running),
            ))
            .execute(conn)?;
        Ok(())
    }

    fn batch(&mut self, conn: &mut DbConn, at: Checkpoint, refused: &[RefusedRow]) -> Result<(), ImportError> {
        let cursor = at.records.to_string();
        if !outbox::checkpoint(conn, self.owner, self.outbox_job_id, &cursor, self.lease)? {
            return Err(ImportError::Interrupted("another worker took the job over".into()));
        }
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        diesel::update(import_jobs::table.find(self.job_id))
            .set((
                import_jobs::records.eq(as_i64(at.records)),
                import_jobs::imported.eq(as_i64(at.imported)),
                import_jobs::updated.eq(as_i64(at.updated)),
                import_jobs::refused.eq(as_i64(at.refused)),
            ))
            .execute(conn)?;
        for row in refused {
            diesel::insert_into(import_refusals::table)
                .values((
                    import_refusals::id.eq(db::new_id()),
                    import_refusals::job_id.eq(self.job_id),
                    import_refusals::line.eq(as_i64(row.line)),
                    import_refusals::cells.eq(serde_json::to_string(&row.cells).unwrap_or_default()),
                    import_refusals::reason.eq(row.problem.to_string()),
                    import_refusals::problem.eq(Some(row.problem.to_json())),
                ))
                .execute(conn)?;
        }
        Ok(())
    }
}

/// Runs (or resumes) one job to its end, on a blocking thread.
fn run_job(conn: &mut DbConn, owner: &str, job: &Job, lease: std::time::Duration) -> Result<(), WorkerError> {
    let Some(row) = import_jobs::table
        .find(&job.ref_id)
        .select(ImportJob::as_select())
        .first(conn)
        .optional()?
    else {
        tracing::warn!(job = job.ref_id, "import job row missing; dropping its outbox job");
        outbox::finish(conn, owner, std::slice::from_ref(&job.id))?;
        return Ok(());
    };
    if row.status.is_finished() {
        remove_spool(&row.spool_path);
        outbox::finish(conn, owner, std::slice::from_ref(&job.id))?;
        return Ok(());
    }
    let file = match std::fs::File::open(&row.spool_path) {
        Ok(file) => file,
        Err(e) => {
            let problem = FileProblem::FileGone { detail: e.to_string() };
            return end(conn, owner, job, &row, Err((problem.to_string(), Some(problem))));
        }
    };
    let from = Checkpoint {
        records: u64::try_from(row.records).unwrap_or(0),
        imported: u64::try_from(row.imported).unwrap_or(0),
        updated: u64::try_from(row.updated).unwrap_or(0),
        refused: u64::try_from(row.refused).unwrap_or(0),
    };
    if from.records > 0 {
        tracing::info!(job = row.id, records = from.records, "resuming an import job");
    }
    let mut journal = JobJournal {
        job_id: &row.id,
        outbox_job_id: &job.id,
        owner,
        lease,
    };
    let started = std::time::Instant::now();
    let result = import::import_journaled(
        conn,
        &row.workspace_id,
        std::io::BufReader::new(file),
        |_| {},
        Some(&mut journal),
        from,
    );
    match result {
        Ok(report) => {
            tracing::info!(
                workspace = row.workspace_id,
                job = row.id,
                imported = report.imported,
                updated = report.updated,
                refused = from.refused + report.rejected_total(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "import job done"
            );
            end(conn, owner, job, &row, Ok(()))
        }
        Err(ImportError::Interrupted(why)) => {
            tracing::warn!(job = row.id, why, "import job interrupted");
            Ok(())
        }
        Err(ImportError::Db(e)) if job.attempts < MAX_ATTEMPTS => {
            let wait = chrono::Duration::seconds(30 * i64::from(job.attempts.max(1)));
            tracing::warn!(job = row.id, error = %e, "import job failed on the database; trying again");
            outbox::retry_later(conn, owner, &job.id, db::now() + wait, &e.to_string())?;
            Ok(())
        }
        Err(e) => end(conn, owner, job, &row, Err((e.to_string(), FileProblem::of(&e)))),
    }
}

/// Ends a job: done, or failed with the reason (in English, and as data when it is about the
/// file); the outbox job goes and so does the file.
fn end(
    conn: &mut DbConn,
    owner: &str,
    job: &Job,
    row: &ImportJob,
    outcome: Result<(), (String, Option<FileProblem>)>,
) -> Result<(), WorkerError> {
    let (status, error, problem) = match outcome {
        Ok(()) => (ImportJobStatus::Done, None, None),
        Err((error, problem)) => (ImportJobStatus::Failed, Some(error), problem.map(|p| p.to_json())),
    };
    db::write_tx(conn, |conn| -> Result<(), DbError> {
        if !outbox::holds(conn, owner, &job.id)? {
            return Ok(());
        }
        diesel::update(import_jobs::table.find(&row.id))
            .set((
                import_jobs::status.eq(status),
                import_jobs::error.eq(error.as_deref()),
                import_jobs::problem.eq(problem.as_deref()),
                import_jobs::finished_at.eq(db::now()),
            ))
            .execute(conn)?;
        outbox::finish(conn, owner, std::slice::from_ref(&job.id))?;
        Ok(())
    })?;
    remove_spool(&row.spool_path);
    Ok(())
}

fn remove_spool(path: &str) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path, error = %e, "could not remove an uploaded import file"),
    }
}
