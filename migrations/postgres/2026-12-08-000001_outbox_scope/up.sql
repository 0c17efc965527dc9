-- What a job's work belongs to, for asking about a group of jobs at once: an invitation job's
-- campaign. "Is anything of this campaign still queued?" (a campaign reads as sent when not) and
-- "wake this campaign's held jobs" (resume, cancel) ask the small outbox instead of the
-- invitations table.
--
-- It replaces the partial index invitations_queued (campaign_id WHERE status = 'queued'): an
-- index whose predicate names status makes every queued -> sent update of an invitation a
-- non-HOT update that writes every index of the table, and PostgreSQL's planner combined it into
-- the sender's UPDATE ... WHERE id = ANY(...) AND status = 'queued', scanning every queued
-- invitation of the table for each batch (bench/send.sh: 130 us of PostgreSQL time per
-- invitation, BENCHMARKS.md).
ALTER TABLE outbox_jobs ADD COLUMN scope TEXT;
UPDATE outbox_jobs SET scope = (SELECT campaign_id FROM invitations WHERE invitations.id = outbox_jobs.ref_id)
    WHERE kind IN ('invitation_batch', 'invitation_email');
CREATE INDEX outbox_jobs_scope ON outbox_jobs (scope) WHERE scope IS NOT NULL;
DROP INDEX invitations_queued;

-- VERP tokens only for invitations sent while BOUNCE_ADDRESS is set (campaigns::expand): the
-- unique index keeps none of the others, instead of one entry per invitation.
DROP INDEX invitations_bounce_token;
CREATE UNIQUE INDEX invitations_bounce_token ON invitations (bounce_token) WHERE bounce_token IS NOT NULL;
