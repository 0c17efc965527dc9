ALTER TABLE sms_messages DROP COLUMN doi_code;
