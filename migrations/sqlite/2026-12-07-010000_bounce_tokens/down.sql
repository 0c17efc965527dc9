DROP INDEX invitations_bounce_token;
ALTER TABLE invitations DROP COLUMN bounce_token;
