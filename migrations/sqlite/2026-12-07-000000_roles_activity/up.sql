-- Dashboard roles (src/accounts.rs): owner, editor or viewer. Existing users keep their powers.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';

-- The activity log (src/activity.rs): who did what, when. Append-only: rows are never updated
-- or deleted by the application.
CREATE TABLE activity (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX activity_workspace_at ON activity (workspace_id, at, id);
