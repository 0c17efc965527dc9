ALTER TABLE inbound_messages DROP COLUMN provider;
ALTER TABLE sms_messages DROP COLUMN provider;
