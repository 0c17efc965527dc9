-- Why an import refused a row, or stopped before the end of its file, as data
-- (contacts::import::problem, JSON), beside the English words: the dashboard words them in the
-- marketer's language. NULL for what was stored before these columns existed (its English is
-- shown), and for a failure that is not about the file.
ALTER TABLE import_refusals ADD COLUMN problem TEXT;
ALTER TABLE import_jobs ADD COLUMN problem TEXT;
