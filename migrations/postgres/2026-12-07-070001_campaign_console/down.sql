ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check CHECK (status IN ('draft', 'sending', 'sent'));
DROP INDEX invitations_queued;
ALTER TABLE campaigns DROP COLUMN scheduled_at;
ALTER TABLE campaigns DROP COLUMN definition;
DROP TABLE campaign_test_sends;
DROP TABLE campaign_variant_locales;
DROP TABLE campaign_locales;
