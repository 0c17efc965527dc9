-- The VERP token of an invitation (src/mail/bounce/verp.rs): its envelope sender is
-- `local+<token>@domain` when BOUNCE_ADDRESS is set, and a bounce sent there finds it by this.
-- 80 random bits in lowercase hex; invitations queued before this migration get one here.
ALTER TABLE invitations ADD COLUMN bounce_token TEXT;
UPDATE invitations SET bounce_token = lower(hex(randomblob(10)));
CREATE UNIQUE INDEX invitations_bounce_token ON invitations (bounce_token);
