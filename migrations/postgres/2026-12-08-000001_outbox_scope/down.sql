CREATE INDEX invitations_queued ON invitations (campaign_id) WHERE status = 'queued';
DROP INDEX outbox_jobs_scope;
ALTER TABLE outbox_jobs DROP COLUMN scope;
