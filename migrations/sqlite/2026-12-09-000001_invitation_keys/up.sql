-- Invitations without foreign keys to workspaces, campaigns and contacts, as on PostgreSQL (see
-- that migration for why: each key is a lookup per inserted invitation, and the parents are
-- never deleted). SQLite cannot drop a constraint, so the table is rebuilt, the way SQLite's
-- documentation gives (ALTER TABLE, "other kinds of table schema changes"): outside diesel's
-- transaction (metadata.toml), with foreign keys off while the old table goes, so that
-- consent_requests' references to invitations (id) carry over to the new table.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE invitations_rebuilt (
    id              TEXT PRIMARY KEY NOT NULL,
    workspace_id    TEXT NOT NULL,
    campaign_id     TEXT NOT NULL,
    contact_id      TEXT NOT NULL,
    variant         TEXT NOT NULL,
    locale          TEXT NOT NULL,
    email           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'bounced', 'failed', 'skipped')),
    message_id      TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    queued_at       TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP,
    bounced_at      TIMESTAMP,
    opened_at       TIMESTAMP,
    human_opened_at TIMESTAMP,
    open_count      INTEGER NOT NULL DEFAULT 0,
    clicked_at      TIMESTAMP,
    click_count     INTEGER NOT NULL DEFAULT 0,
    submitted_at    TIMESTAMP,
    confirmed_at    TIMESTAMP,
    opted_out_at    TIMESTAMP,
    unsubscribed_at TIMESTAMP,
    bounce_token    TEXT,
    UNIQUE (campaign_id, contact_id)
);
INSERT INTO invitations_rebuilt (id, workspace_id, campaign_id, contact_id, variant, locale, email, status, message_id, attempts, last_error, queued_at, sent_at, bounced_at, opened_at, human_opened_at, open_count, clicked_at, click_count, submitted_at, confirmed_at, opted_out_at, unsubscribed_at, bounce_token)
    SELECT id, workspace_id, campaign_id, contact_id, variant, locale, email, status, message_id, attempts, last_error, queued_at, sent_at, bounced_at, opened_at, human_opened_at, open_count, clicked_at, click_count, submitted_at, confirmed_at, opted_out_at, unsubscribed_at, bounce_token FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_rebuilt RENAME TO invitations;
CREATE INDEX invitations_contact ON invitations (workspace_id, contact_id);
CREATE UNIQUE INDEX invitations_bounce_token ON invitations (bounce_token) WHERE bounce_token IS NOT NULL;
COMMIT;
PRAGMA foreign_keys = ON;
