-- Mailgun webhook tokens already accepted (src/mail/bounce/esp.rs, src/routes/webhooks.rs):
-- Mailgun's signature covers its timestamp and token, not the event, so a signed token carries
-- one body only (its SHA-256, hex: Mailgun's own retry of it is answered again), and only within
-- the freshness window; older rows are deleted as new ones come.
CREATE TABLE esp_webhook_tokens (
    token TEXT PRIMARY KEY NOT NULL,
    body_sha256 TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX esp_webhook_tokens_received_at ON esp_webhook_tokens (received_at);
