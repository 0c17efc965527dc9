-- Why an import refused a row, as data (contacts::import::problem::RowProblem, JSON), beside
-- the English reason: the dashboard words it in the marketer's language. NULL for rows refused
-- before this column existed; their English reason is shown.
ALTER TABLE import_refusals ADD COLUMN problem TEXT;
