//! One integration-test binary (linking once): every database test runs on SQLite and on
//! PostgreSQL; `smtp_sink` is a real SMTP server for the mail tests, `fake_twilio`,
//! `fake_elks` and `fake_inmobile` local SMS provider APIs for the SMS tests; `browser` drives headless Chromium through chromedriver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod fake_elks;
mod fake_inmobile;
mod fake_twilio;
mod helpers;
mod mail_parse;
mod pop3_server;
mod smtp_sink;
mod webhook_receiver;

mod bounces;
mod browser_selftest;
mod campaign_console;
mod campaign_crash;
mod campaign_dashboard;
mod cli;
mod consent_texts;
mod conversion;
mod crash;
mod dashboard;
mod data_rights;
mod db_faults;
mod deployment;
mod doi;
mod enumeration;
mod fake_twilio_selftest;
mod faults;
mod funnel;
mod gateway_fakes_selftest;
mod health;
mod hostile_text;
mod http_hardening;
mod import;
mod invitations;
mod ledger;
mod links;
mod openapi;
mod outbox;
mod page_errors;
mod races;
mod scale_out;
mod secrets_at_rest;
mod security;
mod sms_gateways;
mod sms_length;
mod smtp_etiquette;
mod smtp_sink_selftest;
mod sync_lists;
mod team;
mod tenancy;
mod webhooks;
mod webhooks_out;
