DROP INDEX invitations_queued;
ALTER TABLE campaigns DROP COLUMN scheduled_at;
ALTER TABLE campaigns DROP COLUMN definition;
DROP TABLE campaign_test_sends;
DROP TABLE campaign_variant_locales;
DROP TABLE campaign_locales;
