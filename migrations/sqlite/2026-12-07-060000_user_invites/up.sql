-- Invitations to a workspace's dashboard (src/team/): an owner invites an email with a role; the
-- invitee sets a password through a single-use link. Only the SHA-256 of the link's token is
-- stored, set when the email is sent (NULL until then); `used_at` marks the one use.
CREATE TABLE user_invites (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    locale TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    token_sha256 TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX user_invites_workspace ON user_invites (workspace_id, created_at);
