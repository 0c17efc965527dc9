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

mod bounces;
mod browser_selftest;
mod cli;
mod consent_text_form;
mod consent_texts;
mod contacts_page;
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
mod import_formats;
mod import_page;
mod invitations;
mod ledger;
mod links;
mod marketer_browser;
mod outbox;
mod page_errors;
mod races;
mod secrets_at_rest;
mod security;
mod sms_gateways;
mod smtp_sink_selftest;
mod team;
mod tenancy;
mod webhooks;
