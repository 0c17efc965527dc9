DROP TABLE esp_webhook_tokens;
