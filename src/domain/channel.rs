//! How a message travels, as stored in `suppressions.channel` and the dev outbox.

use crate::db::text_enum::db_enum;

db_enum! {
    /// The medium of a message or a suppression.
    pub enum Channel {
        Email = "email",
        Sms = "sms",
    }
}

db_enum! {
    /// Whether a dev-outbox message went out to a recipient or came in from a phone.
    pub enum Direction {
        Out = "out",
        In = "in",
    }
}
