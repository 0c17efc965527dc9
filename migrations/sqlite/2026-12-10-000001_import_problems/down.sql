ALTER TABLE import_jobs DROP COLUMN problem;
ALTER TABLE import_refusals DROP COLUMN problem;
