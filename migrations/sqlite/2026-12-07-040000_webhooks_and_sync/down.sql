DROP INDEX suppressions_sync_order;
DROP INDEX contacts_sync_order;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
