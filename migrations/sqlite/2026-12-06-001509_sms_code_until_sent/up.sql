-- The double-opt-in code of an SMS waiting to be sent (src/sms/outbound.rs): `body` stores the
-- text with the code masked, and this column is emptied once the message is sent or given up.
ALTER TABLE sms_messages ADD COLUMN doi_code TEXT;
