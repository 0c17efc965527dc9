-- Webhooks out (issue 19): the retailer's endpoints and every delivery to them, with the
-- indexes the paged lists of contacts and suppressions read in keyset order.

CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    url          TEXT NOT NULL,
    -- Event types, comma-separated (`consent.confirmed,contact.unsubscribed`).
    events       TEXT NOT NULL,
    -- `whsec_…` in clear, or sealed under SIGNING_KEY_ENCRYPTION_KEY (`v1:<nonce>:<ciphertext>`).
    secret       TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id);

-- One message to one endpoint; its id is the `webhook-id` of every attempt.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_type      TEXT NOT NULL,
    -- The exact body every attempt sends (signed as is).
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    response_status INTEGER,
    created_at      TIMESTAMP NOT NULL,
    last_attempt_at TIMESTAMP,
    delivered_at    TIMESTAMP
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
CREATE INDEX webhook_deliveries_workspace ON webhook_deliveries (workspace_id, created_at);

CREATE INDEX contacts_sync_order ON contacts (workspace_id, updated_at, id);
CREATE INDEX suppressions_sync_order ON suppressions (workspace_id, created_at, id);
