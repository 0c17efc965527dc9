ALTER TABLE invitations
    ADD CONSTRAINT invitations_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES workspaces (id),
    ADD CONSTRAINT invitations_campaign_id_fkey FOREIGN KEY (campaign_id) REFERENCES campaigns (id),
    ADD CONSTRAINT invitations_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id);
