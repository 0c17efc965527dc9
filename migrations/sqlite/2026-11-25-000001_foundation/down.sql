DROP TABLE signing_keys;
DROP TRIGGER consent_texts_no_delete;
DROP TRIGGER consent_texts_no_update;
DROP TABLE consent_texts;
DROP TABLE suppressions;
DROP TABLE contacts;
DROP TABLE api_tokens;
DROP TABLE workspaces;
