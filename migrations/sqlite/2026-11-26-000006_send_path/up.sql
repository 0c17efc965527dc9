-- Nothing looks jobs up by lease expiry (claiming scans outbox_jobs_ready, ordered by run_after,
-- which a lease moves); the index only cost a write at every enqueue, claim and release.
DROP INDEX outbox_jobs_lease;

-- What a job works on when one reference is not enough: an `invitation_batch` job lists the
-- invitations it sends (one job instead of one per invitation).
ALTER TABLE outbox_jobs ADD COLUMN payload TEXT;
