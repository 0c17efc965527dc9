//! optbridge: turns a retailer's email marketing permissions into documented SMS marketing
//! permissions. See README.md for the architecture.

pub mod cli;
pub mod config;
pub mod consent;
pub mod contacts;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod domain;
pub mod routes;
pub mod signing;
pub mod startup;
pub mod telemetry;
pub mod workspace;
