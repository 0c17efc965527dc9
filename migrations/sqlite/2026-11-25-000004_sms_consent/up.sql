-- SMS consent: what a recipient asked for on the landing page (with its evidence), the consent
-- that a confirmation made active, the append-only ledger, and the SMS traffic.

-- A submitted consent (double opt-in request), with the evidence of how it was given.
CREATE TABLE consent_requests (
    id                  TEXT PRIMARY KEY NOT NULL,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    contact_id          TEXT NOT NULL REFERENCES contacts (id),
    invitation_id       TEXT REFERENCES invitations (id),
    campaign_id         TEXT,
    variant             TEXT,
    locale              TEXT NOT NULL,
    phone               TEXT NOT NULL,
    country             TEXT NOT NULL,
    consent_text_id     TEXT NOT NULL REFERENCES consent_texts (id),
    consent_text_sha256 TEXT NOT NULL,
    categories          TEXT NOT NULL,
    ip                  TEXT,
    user_agent          TEXT,
    token_jti           TEXT,
    code_hash           TEXT NOT NULL,
    code_attempts       INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'expired', 'locked', 'cancelled')),
    sms_sent            INTEGER NOT NULL DEFAULT 0,
    last_sms_at         TIMESTAMP,
    hint_sent           BOOLEAN NOT NULL DEFAULT FALSE,
    submitted_at        TIMESTAMP NOT NULL,
    expires_at          TIMESTAMP NOT NULL,
    confirmed_at        TIMESTAMP,
    confirmed_via       TEXT,
    closed_at           TIMESTAMP
);
CREATE INDEX consent_requests_phone ON consent_requests (phone, status);
CREATE INDEX consent_requests_invitation ON consent_requests (invitation_id);
CREATE INDEX consent_requests_ip ON consent_requests (ip, submitted_at);
CREATE INDEX consent_requests_workspace ON consent_requests (workspace_id, submitted_at);
CREATE INDEX consent_requests_contact ON consent_requests (contact_id);

-- The current SMS consent of a phone with a workspace; the evidence is its request.
CREATE TABLE sms_subscriptions (
    id                 TEXT PRIMARY KEY NOT NULL,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    contact_id         TEXT NOT NULL REFERENCES contacts (id),
    phone              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'withdrawn')),
    consent_request_id TEXT NOT NULL REFERENCES consent_requests (id),
    categories         TEXT NOT NULL,
    confirmed_at       TIMESTAMP NOT NULL,
    withdrawn_at       TIMESTAMP,
    withdrawn_via      TEXT,
    last_used_at       TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, phone)
);
CREATE INDEX sms_subscriptions_phone ON sms_subscriptions (phone);
CREATE INDEX sms_subscriptions_contact ON sms_subscriptions (contact_id);

-- Append-only: every entry's hash covers the workspace's previous hash, its own sequence
-- number, kind, time and the SHA-256 of its payload, so editing, deleting or reordering any row
-- breaks the chain (`optbridge ledger verify`). The payload (personal data: phone, IP, …) may
-- later be redacted for erasure or retention; its hash stays, so the chain still verifies.
CREATE TABLE consent_ledger (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    seq          BIGINT NOT NULL,
    contact_id   TEXT,
    kind         TEXT NOT NULL,
    at           TIMESTAMP NOT NULL,
    payload      TEXT,
    payload_hash TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    redacted_at  TIMESTAMP,
    UNIQUE (workspace_id, seq)
);
CREATE INDEX consent_ledger_contact ON consent_ledger (contact_id, seq);

-- Every SMS optbridge sends, with the provider's id and delivery status.
CREATE TABLE sms_messages (
    id                 TEXT PRIMARY KEY NOT NULL,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    consent_request_id TEXT REFERENCES consent_requests (id),
    kind               TEXT NOT NULL,
    phone              TEXT NOT NULL,
    country            TEXT NOT NULL,
    body               TEXT NOT NULL,
    status             TEXT NOT NULL,
    provider_sid       TEXT UNIQUE,
    error              TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    not_before         TIMESTAMP NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    sent_at            TIMESTAMP,
    status_at          TIMESTAMP
);
CREATE INDEX sms_messages_phone ON sms_messages (phone, created_at);
CREATE INDEX sms_messages_workspace ON sms_messages (workspace_id, created_at);
CREATE INDEX sms_messages_country ON sms_messages (country, created_at);

-- Replies from phones, stored once per provider message id, then processed by a worker.
CREATE TABLE inbound_messages (
    id           TEXT PRIMARY KEY NOT NULL,
    message_sid  TEXT NOT NULL UNIQUE,
    phone        TEXT NOT NULL,
    to_number    TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  TIMESTAMP NOT NULL,
    processed_at TIMESTAMP,
    outcome      TEXT
);
CREATE INDEX inbound_messages_phone ON inbound_messages (phone, received_at);

CREATE TRIGGER consent_ledger_no_update
BEFORE UPDATE OF id, workspace_id, seq, contact_id, kind, at, payload_hash, prev_hash, hash ON consent_ledger
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;
CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;
