//! One integration-test binary (linking once): every test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cli;
mod consent_texts;
mod health;
mod import;
mod tenancy;
