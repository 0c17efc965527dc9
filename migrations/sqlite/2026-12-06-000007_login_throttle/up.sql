-- Wrong dashboard logins by client address, for the per-address throttle (src/accounts.rs):
-- one row an attempt, kept for the throttle's window.
CREATE TABLE login_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    client TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX login_attempts_client_at ON login_attempts (client, at);
CREATE INDEX login_attempts_at ON login_attempts (at);
