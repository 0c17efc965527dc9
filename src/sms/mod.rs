//! SMS: the double-opt-in request and its answers.
//!
//! Pure text rules (`segments`, `keywords`, `twilio_signature`, `quiet_hours`), the outgoing
//! queue (`outbound`), providers (`provider`: the gateway trait, Twilio and the dev outbox;
//! `elks`: 46elks; `inmobile`: inMobile), the handling of
//! replies (`inbound`) and the outbox work that sends and processes them (`dispatch`).

pub mod dispatch;
pub mod elks;
pub mod inbound;
pub mod inmobile;
pub mod keywords;
pub mod outbound;
pub mod provider;
pub mod quiet_hours;
pub mod segments;
pub mod twilio_signature;
