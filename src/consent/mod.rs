//! Consent: text versions now; the consent ledger and evidence build on them.

pub mod texts;
