//! Outgoing SMS: a row in `sms_messages` (what was sent, to whom, with which status) and an
//! outbox job that sends it, written in the transaction that decided to send it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::dispatch::SMS_JOB;
use crate::db::schema::sms_messages;
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::outbox;

db_enum! {
    /// `sms_messages.kind`: why an SMS is sent.
    pub enum SmsKind {
        /// The double-opt-in request with its code (a service message).
        DoiRequest = "doi",
        /// The confirmation receipt (a service message).
        Receipt = "receipt",
        /// The answer to a keyword (STOP, START, HELP, an ambiguous confirmation).
        KeywordReply = "keyword_reply",
        /// The one-time hint for an unrecognized reply.
        Hint = "hint",
    }
}

db_enum! {
    /// `sms_messages.status`: ours until the provider takes the message (queued, then sent,
    /// skipped or failed), then the delivery states Twilio reports in its status callbacks.
    pub enum SmsStatus {
        Queued = "queued",
        Accepted = "accepted",
        Scheduled = "scheduled",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Undelivered = "undelivered",
        Failed = "failed",
        Canceled = "canceled",
        Read = "read",
        /// Not sent: the number opted out or the request was closed before sending.
        Skipped = "skipped",
    }
}

impl SmsStatus {
    /// Where a status stands in the order Twilio's statuses can follow each other; `None` for
    /// one no callback moves (skipped). A callback may arrive late or twice; a status never
    /// moves back.
    pub fn rank(self) -> Option<u8> {
        Some(match self {
            Self::Queued => 0,
            Self::Accepted | Self::Scheduled => 1,
            Self::Sending => 2,
            Self::Sent => 3,
            Self::Delivered | Self::Undelivered | Self::Failed | Self::Canceled | Self::Read => 4,
            Self::Skipped => return None,
        })
    }
}

pub struct NewSms<'a> {
    pub workspace_id: &'a str,
    pub consent_request_id: Option<&'a str>,
    pub kind: SmsKind,
    pub phone: &'a str,
    pub country: &'a str,
    pub body: &'a str,
    /// Not to be sent before (quiet hours).
    pub not_before: NaiveDateTime,
}

/// Stands in for a double-opt-in code in the stored body (`sms_messages.body`): a copy of the
/// database never shows a code that was sent.
pub const CODE_MASK: &str = "******";

/// Records an SMS to send and enqueues its job. Returns the message id.
pub fn queue(conn: &mut DbConn, sms: NewSms<'_>) -> Result<String, DbError> {
    insert(conn, sms, None)
}

/// Like [`queue`] for a body that shows `code` as [`CODE_MASK`]: the code is kept beside it only
/// until the message is sent or given up, and put in place when it is sent ([`text_to_send`]).
pub fn queue_with_code(conn: &mut DbConn, sms: NewSms<'_>, code: &str) -> Result<String, DbError> {
    insert(conn, sms, Some(code))
}

/// The text the provider gets: the stored body with the code in place of the last
/// [`CODE_MASK`] (the code comes after the company name in every message that carries one).
pub fn text_to_send(body: &str, code: Option<&str>) -> String {
    match (code, body.rfind(CODE_MASK)) {
        (Some(code), Some(at)) => format!("{}{code}{}", &body[..at], &body[at + CODE_MASK.len()..]),
        _ => body.to_owned(),
    }
}

fn insert(conn: &mut DbConn, sms: NewSms<'_>, code: Option<&str>) -> Result<String, DbError> {
    let id = db::new_id();
    diesel::insert_into(sms_messages::table)
        .values((
            sms_messages::id.eq(&id),
            sms_messages::workspace_id.eq(sms.workspace_id),
            sms_messages::consent_request_id.eq(sms.consent_request_id),
            sms_messages::kind.eq(sms.kind),
            sms_messages::phone.eq(sms.phone),
            sms_messages::country.eq(sms.country),
            sms_messages::body.eq(sms.body),
            sms_messages::status.eq(SmsStatus::Queued),
            sms_messages::attempts.eq(0),
            sms_messages::not_before.eq(sms.not_before),
            sms_messages::created_at.eq(db::now()),
            sms_messages::doi_code.eq(code),
        ))
        .execute(conn)?;
    outbox::enqueue(conn, Some(sms.workspace_id), SMS_JOB, &id, sms.not_before)?;
    Ok(id)
}

/// Whether the newest double-opt-in SMS of a request could not be sent (to tell the person).
pub fn latest_doi_failed(conn: &mut DbConn, request_id: &str) -> Result<bool, DbError> {
    let status: Option<SmsStatus> = sms_messages::table
        .filter(sms_messages::consent_request_id.eq(request_id))
        .filter(sms_messages::kind.eq(SmsKind::DoiRequest))
        .order(sms_messages::created_at.desc())
        .select(sms_messages::status)
        .first(conn)
        .optional()?;
    Ok(matches!(status, Some(SmsStatus::Failed | SmsStatus::Undelivered)))
}

/// Applies a provider status to the message with that provider id, if it moves forward.
/// Returns whether anything changed.
pub fn apply_status(conn: &mut DbConn, provider_sid: &str, status: &str, error: Option<&str>) -> Result<bool, DbError> {
    // A status this version does not know, or one no callback sets, changes nothing.
    let Some((status, rank)) = SmsStatus::parse(status).and_then(|s| s.rank().map(|r| (s, r))) else {
        return Ok(false);
    };
    let behind: Vec<SmsStatus> = SmsStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.rank().is_some_and(|r| r < rank))
        .collect();
    // One conditional statement: callbacks for one message race (Twilio sends them in parallel),
    // and a read-then-write could put `sent` back over `delivered`.
    let changed = diesel::update(
        sms_messages::table
            .filter(sms_messages::provider_sid.eq(provider_sid))
            .filter(sms_messages::status.eq_any(behind)),
    )
    .set((
        sms_messages::status.eq(status),
        sms_messages::status_at.eq(db::now()),
        sms_messages::error.eq(error),
    ))
    .execute(conn)?;
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Locale;

    #[test]
    fn the_code_goes_where_the_mask_stands_and_nowhere_else() {
        for locale in [Locale::Da, Locale::Nb, Locale::Sv, Locale::En] {
            // A company name may itself hold the mask: only the code's place is filled.
            for company in ["Skobutikken", "Sko ****** & Co"] {
                let stored = crate::i18n::sms::doi_request(locale, company, CODE_MASK);
                assert_eq!(
                    text_to_send(&stored, Some("042917")),
                    crate::i18n::sms::doi_request(locale, company, "042917")
                );
                assert!(!stored.contains("042917"));
            }
        }
        assert_eq!(text_to_send("no code here", Some("123456")), "no code here");
        assert_eq!(text_to_send("Kode ******", None), "Kode ******");
    }

    #[test]
    fn statuses_only_move_forward() {
        assert!(SmsStatus::Queued.rank() < SmsStatus::Sent.rank());
        assert!(SmsStatus::Sent.rank() < SmsStatus::Delivered.rank());
        assert_eq!(SmsStatus::Delivered.rank(), SmsStatus::Failed.rank());
        assert_eq!(SmsStatus::parse("made-up"), None);
    }
}
