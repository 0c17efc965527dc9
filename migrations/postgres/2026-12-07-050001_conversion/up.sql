-- Issue 17: tap-to-text, the one email reminder, follow-up waves.

-- A landing page view that offered tap-to-text: the evidence of what the page showed (the
-- consent-text version and its SHA-256) and the single-use code it displayed, kept only as a hash.
CREATE TABLE landing_views (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    invitation_id       TEXT NOT NULL,
    campaign_id         TEXT NOT NULL,
    consent_text_id     TEXT NOT NULL,
    consent_text_sha256 TEXT NOT NULL,
    locale              TEXT NOT NULL,
    link_jti            TEXT NOT NULL,
    tap_number          TEXT NOT NULL,
    tap_code_hash       TEXT NOT NULL UNIQUE,
    ip                  TEXT,
    user_agent          TEXT,
    shown_at            TIMESTAMP NOT NULL,
    expires_at          TIMESTAMP NOT NULL,
    used_at             TIMESTAMP,
    used_message_sid    TEXT,
    consent_request_id  TEXT,
    reply_sent          BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX landing_views_invitation ON landing_views (invitation_id);

-- The one email reminder per sign-up (invitation): the primary key is what makes it one, even
-- when a worker dies between sending and recording.
CREATE TABLE doi_reminders (
    invitation_id      TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    campaign_id        TEXT NOT NULL,
    consent_request_id TEXT NOT NULL,
    status             TEXT NOT NULL,
    message_id         TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    sent_at            TIMESTAMP
);

-- A follow-up wave: a campaign sent to the recipients of its parent matching `audience`.
ALTER TABLE campaigns ADD COLUMN parent_campaign_id TEXT;
ALTER TABLE campaigns ADD COLUMN audience TEXT;
CREATE INDEX campaigns_parent ON campaigns (parent_campaign_id);
