DROP TABLE inbound_messages;
DROP TABLE sms_messages;
DROP TRIGGER consent_ledger_no_delete;
DROP TRIGGER consent_ledger_no_update;
DROP TABLE consent_ledger;
DROP TABLE sms_subscriptions;
DROP TABLE consent_requests;
