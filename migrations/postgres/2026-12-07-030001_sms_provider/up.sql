-- Which SMS provider (`SMS_PROVIDER`: twilio, 46elks, inmobile, dev-outbox) sent a message or
-- carried a reply: part of the evidence of a confirmation by SMS, and it tells whose message id
-- `provider_sid`/`message_sid` is. Rows from before are left NULL (they were Twilio's or the
-- dev outbox's).
ALTER TABLE sms_messages ADD COLUMN provider TEXT;
ALTER TABLE inbound_messages ADD COLUMN provider TEXT;
