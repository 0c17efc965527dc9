-- Invitations without foreign keys to workspaces, campaigns and contacts.
--
-- PostgreSQL checks a foreign key with one query per inserted row (an AFTER trigger running
-- SELECT 1 ... FOR KEY SHARE on the parent). A campaign's expansion inserts an invitation per
-- recipient, so the three checks were most of the cost of writing it: 11.5 of 16.5 us per row,
-- and 12 us of PostgreSQL's 42 us of CPU per invitation sent in bench/send.sh (BENCHMARKS.md,
-- "sixth session").
--
-- What the keys guarded cannot happen: workspaces, campaigns and contacts are never deleted (an
-- erased contact is anonymised in place, contacts/erase.rs), and invitations are written only
-- by the expansion (campaigns/expand.rs), which reads the campaign and the page of contacts in
-- the same transaction. funnel_events, written once per event, has never had them.
ALTER TABLE invitations
    DROP CONSTRAINT invitations_workspace_id_fkey,
    DROP CONSTRAINT invitations_campaign_id_fkey,
    DROP CONSTRAINT invitations_contact_id_fkey;
