DROP TABLE signing_keys;
DROP TRIGGER consent_texts_no_change ON consent_texts;
DROP FUNCTION consent_texts_immutable();
DROP TABLE consent_texts;
DROP TABLE suppressions;
DROP TABLE contacts;
DROP TABLE api_tokens;
DROP TABLE workspaces;
