//! Consent: text versions, the double opt-in, the ledger of every permission event.

pub mod doi;
pub mod history;
pub mod ledger;
pub mod retention;
pub mod texts;
