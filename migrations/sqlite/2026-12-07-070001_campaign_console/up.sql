-- A campaign's content per audience locale (issue 16, item 10): the consent text in that
-- language, and subject, intro and frequency as that locale's recipients read them. The
-- campaign's own columns keep the first locale's values.
CREATE TABLE campaign_locales (
    campaign_id     TEXT NOT NULL REFERENCES campaigns (id),
    locale          TEXT NOT NULL,
    consent_text_id TEXT NOT NULL REFERENCES consent_texts (id),
    subject         TEXT NOT NULL,
    intro           TEXT NOT NULL,
    frequency       TEXT,
    PRIMARY KEY (campaign_id, locale)
);

-- Each variant's subject and intro per locale, resolved when the campaign is saved.
CREATE TABLE campaign_variant_locales (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    variant     TEXT NOT NULL,
    locale      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    intro       TEXT NOT NULL,
    PRIMARY KEY (campaign_id, variant, locale)
);

-- Test sends of a draft (issue 16, item 6): not recipients; counted for the hourly limit.
CREATE TABLE campaign_test_sends (
    id          TEXT PRIMARY KEY NOT NULL,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    email       TEXT NOT NULL,
    locale      TEXT NOT NULL,
    variant     TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    sent_at     TIMESTAMP,
    last_error  TEXT
);
CREATE INDEX campaign_test_sends_campaign ON campaign_test_sends (campaign_id, created_at);

-- When a scheduled campaign starts; the request the campaign was saved from (JSON), which an
-- edit of the draft starts from.
ALTER TABLE campaigns ADD COLUMN definition TEXT;
ALTER TABLE campaigns ADD COLUMN scheduled_at TIMESTAMP;

-- Queued invitations of a campaign: resume finds their jobs, and "sent" means none is left.
CREATE INDEX invitations_queued ON invitations (campaign_id) WHERE status = 'queued';

-- SQLite cannot alter a CHECK: the status moves to a new column with the wider check, and the
-- old column (whose check is its own, so DROP COLUMN may remove it) goes.
ALTER TABLE campaigns RENAME COLUMN status TO status_before_scheduling;
ALTER TABLE campaigns ADD COLUMN status TEXT NOT NULL DEFAULT 'draft'
    CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled'));
UPDATE campaigns SET status = status_before_scheduling;
ALTER TABLE campaigns DROP COLUMN status_before_scheduling;
