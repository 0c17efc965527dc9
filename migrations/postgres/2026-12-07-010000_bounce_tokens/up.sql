-- The VERP token of an invitation (src/mail/bounce/verp.rs): its envelope sender is
-- `local+<token>@domain` when BOUNCE_ADDRESS is set, and a bounce sent there finds it by this.
-- 80 random bits in lowercase hex; invitations queued before this migration get one here
-- (from gen_random_uuid(): its first 20 hex digits hold 76 random bits).
ALTER TABLE invitations ADD COLUMN bounce_token TEXT;
UPDATE invitations SET bounce_token = substr(replace(gen_random_uuid()::text, '-', ''), 1, 20);
CREATE UNIQUE INDEX invitations_bounce_token ON invitations (bounce_token);
