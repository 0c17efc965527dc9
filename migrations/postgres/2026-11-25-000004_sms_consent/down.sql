DROP TABLE inbound_messages;
DROP TABLE sms_messages;
DROP TRIGGER consent_ledger_no_update ON consent_ledger;
DROP FUNCTION consent_ledger_append_only();
DROP TABLE consent_ledger;
DROP TABLE sms_subscriptions;
DROP TABLE consent_requests;
