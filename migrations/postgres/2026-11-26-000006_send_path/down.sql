ALTER TABLE outbox_jobs DROP COLUMN payload;
CREATE INDEX outbox_jobs_lease ON outbox_jobs (lease_expires_at);
ALTER TABLE invitations RESET (fillfactor);
