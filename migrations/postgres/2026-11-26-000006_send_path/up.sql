-- Sending rewrites every invitation once (queued → sent) and tracking again (opened, clicked).
-- Room left in each page lets those updates stay on their page as heap-only tuples, which
-- leave the table's three indexes alone; at the default (100) every such update writes all
-- three. Measured with bench/send.sh: at 70 about half of the sends were such updates, at 50
-- all of them; the table takes ~600 bytes per invitation instead of ~300.
ALTER TABLE invitations SET (fillfactor = 50);

-- Nothing looks jobs up by lease expiry (claiming scans outbox_jobs_ready, ordered by run_after,
-- which a lease moves); the index only cost a write at every enqueue, claim and release.
DROP INDEX outbox_jobs_lease;

-- What a job works on when one reference is not enough: an `invitation_batch` job lists the
-- invitations it sends (one job instead of one per invitation).
ALTER TABLE outbox_jobs ADD COLUMN payload TEXT;
