-- Campaign expansion pages through a workspace's contacts in id order.
CREATE INDEX contacts_workspace_id ON contacts (workspace_id, id);
