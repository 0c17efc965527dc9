//! optbridge: turns a retailer's email marketing permissions into documented SMS marketing
//! permissions. See README.md for the architecture.

pub mod accounts;
pub mod activity;
pub mod campaigns;
pub mod cli;
pub mod config;
pub mod consent;
pub mod contacts;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod domain;
pub mod exports;
pub mod funnel;
#[cfg(test)]
mod fuzzing;
pub mod i18n;
pub mod links;
pub mod mail;
pub mod metrics;
pub mod outbox;
pub mod routes;
pub mod signing;
pub mod slots;
pub mod sms;
pub mod startup;
pub mod team;
pub mod telemetry;
pub mod workspace;
