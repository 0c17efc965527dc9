DROP INDEX invitations_bounce_token;
CREATE UNIQUE INDEX invitations_bounce_token ON invitations (bounce_token);
CREATE INDEX invitations_queued ON invitations (campaign_id) WHERE status = 'queued';
DROP INDEX outbox_jobs_scope;
ALTER TABLE outbox_jobs DROP COLUMN scope;
