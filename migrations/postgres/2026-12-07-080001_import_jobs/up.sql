-- Dashboard imports run as jobs (src/contacts/import_jobs.rs): the uploaded file waits on disk,
-- an outbox job imports it batch by batch, and each batch's transaction records where the job
-- is, so a restarted job resumes after its last batch. Every refused row is kept with its
-- original cells and the reason, for the status page and its CSV download.
CREATE TABLE import_jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    status       TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    spool_path   TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    format       TEXT,
    header       TEXT,
    records      BIGINT NOT NULL DEFAULT 0,
    imported     BIGINT NOT NULL DEFAULT 0,
    updated      BIGINT NOT NULL DEFAULT 0,
    refused      BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP
);
CREATE INDEX import_jobs_workspace_created ON import_jobs (workspace_id, created_at);

CREATE TABLE import_refusals (
    id     TEXT PRIMARY KEY NOT NULL,
    job_id TEXT NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    line   BIGINT NOT NULL,
    cells  TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX import_refusals_job_line ON import_refusals (job_id, line);
