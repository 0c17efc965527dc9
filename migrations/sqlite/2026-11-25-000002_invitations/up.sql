-- Invitation campaigns: the email that asks an email subscriber for SMS consent.

CREATE TABLE campaigns (
    id                TEXT PRIMARY KEY NOT NULL,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id),
    name              TEXT NOT NULL,
    consent_text_id   TEXT NOT NULL REFERENCES consent_texts (id),
    subject           TEXT NOT NULL,
    intro             TEXT NOT NULL,
    frequency         TEXT,
    audience_locales  TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'sending', 'sent')),
    created_at        TIMESTAMP NOT NULL,
    send_requested_at TIMESTAMP,
    expanded_at       TIMESTAMP
);
CREATE INDEX campaigns_workspace ON campaigns (workspace_id, created_at);

CREATE TABLE campaign_variants (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    intro       TEXT NOT NULL,
    weight      INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, name)
);

-- One row per campaign and contact; also the per-recipient funnel state (first times).
CREATE TABLE invitations (
    id              TEXT PRIMARY KEY NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    campaign_id     TEXT NOT NULL REFERENCES campaigns (id),
    contact_id      TEXT NOT NULL REFERENCES contacts (id),
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
    UNIQUE (campaign_id, contact_id)
);
CREATE INDEX invitations_contact ON invitations (workspace_id, contact_id);

-- The durable outbox: work that must happen after a commit (send an email, expand a campaign).
-- Workers lease rows; a row disappears when its work is done or has finally failed.
-- workspace_id is empty for work that belongs to no workspace yet (an inbound SMS).
CREATE TABLE outbox_jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    workspace_id     TEXT,
    kind             TEXT NOT NULL,
    ref_id           TEXT NOT NULL,
    cursor           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_after        TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_error       TEXT,
    created_at       TIMESTAMP NOT NULL,
    UNIQUE (kind, ref_id)
);
CREATE INDEX outbox_jobs_ready ON outbox_jobs (run_after);
CREATE INDEX outbox_jobs_lease ON outbox_jobs (lease_expires_at);

-- Every funnel step as it happened (opens and clicks are counted here, not only first times).
CREATE TABLE funnel_events (
    id            TEXT PRIMARY KEY NOT NULL,
    workspace_id  TEXT NOT NULL,
    campaign_id   TEXT NOT NULL,
    invitation_id TEXT NOT NULL,
    kind          TEXT NOT NULL,
    at            TIMESTAMP NOT NULL,
    human         BOOLEAN,
    ip            TEXT,
    user_agent    TEXT,
    detail        TEXT
);
CREATE INDEX funnel_events_invitation ON funnel_events (invitation_id, at);
CREATE INDEX funnel_events_campaign ON funnel_events (campaign_id, at);

-- Distinct-recipient counters per campaign, variant, locale, metric and hour, maintained in the
-- same transaction as the first-time transition on the invitation row: the funnel of a campaign
-- is a small SUM, whatever its size.
CREATE TABLE funnel_counts (
    campaign_id TEXT NOT NULL,
    variant     TEXT NOT NULL,
    locale      TEXT NOT NULL,
    metric      TEXT NOT NULL,
    hour        TIMESTAMP NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, variant, locale, metric, hour)
);

-- Messages captured by the dev outboxes (no SMTP server / SMS provider configured).
CREATE TABLE dev_messages (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT,
    channel      TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    direction    TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    subject      TEXT,
    body_text    TEXT NOT NULL,
    body_html    TEXT,
    raw          TEXT,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX dev_messages_channel ON dev_messages (channel, created_at);
