DROP TABLE dev_messages;
DROP TABLE funnel_counts;
DROP TABLE funnel_events;
DROP TABLE outbox_jobs;
DROP TABLE invitations;
DROP TABLE campaign_variants;
DROP TABLE campaigns;
