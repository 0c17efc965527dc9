//! Consent: text versions, the double opt-in, the ledger of every permission event.

pub mod doi;
pub mod history;
pub mod ledger;
pub mod reminder;
pub mod retention;
pub mod tap_to_text;
pub mod texts;

use crate::db::text_enum::db_enum;

db_enum! {
    /// `sms_subscriptions.status`: whether a number's SMS consent with a workspace holds.
    pub enum SubscriptionStatus {
        Active = "active",
        Withdrawn = "withdrawn",
    }
}

db_enum! {
    /// `sms_subscriptions.withdrawn_via`: how a consent ended; START restores only a STOP.
    pub enum WithdrawnVia {
        StopKeyword = "stop_keyword",
        Erasure = "erasure",
    }
}
