ALTER TABLE import_refusals DROP COLUMN problem;
