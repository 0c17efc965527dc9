DROP INDEX campaigns_parent;
ALTER TABLE campaigns DROP COLUMN audience;
ALTER TABLE campaigns DROP COLUMN parent_campaign_id;
DROP TABLE doi_reminders;
DROP TABLE landing_views;
