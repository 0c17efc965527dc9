//! Outgoing SMS: a row in `sms_messages` (what was sent, to whom, with which status) and an
//! outbox job that sends it, written in the transaction that decided to send it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::dispatch::SMS_JOB;
use crate::db::schema::sms_messages;
use crate::db::{self, DbConn, DbError};
use crate::outbox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsKind {
    /// The double-opt-in request with its code (a service message).
    DoiRequest,
    /// The confirmation receipt (a service message).
    Receipt,
    /// The answer to a keyword (STOP, START, HELP, an ambiguous confirmation).
    KeywordReply,
    /// The one-time hint for an unrecognized reply.
    Hint,
}

impl SmsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoiRequest => "doi",
            Self::Receipt => "receipt",
            Self::KeywordReply => "keyword_reply",
            Self::Hint => "hint",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::DoiRequest, Self::Receipt, Self::KeywordReply, Self::Hint]
            .into_iter()
            .find(|k| k.as_str() == raw)
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

/// Records an SMS to send and enqueues its job. Returns the message id.
pub fn queue(conn: &mut DbConn, sms: NewSms<'_>) -> Result<String, DbError> {
    let id = db::new_id();
    diesel::insert_into(sms_messages::table)
        .values((
            sms_messages::id.eq(&id),
            sms_messages::workspace_id.eq(sms.workspace_id),
            sms_messages::consent_request_id.eq(sms.consent_request_id),
            sms_messages::kind.eq(sms.kind.as_str()),
            sms_messages::phone.eq(sms.phone),
            sms_messages::country.eq(sms.country),
            sms_messages::body.eq(sms.body),
            sms_messages::status.eq("queued"),
            sms_messages::attempts.eq(0),
            sms_messages::not_before.eq(sms.not_before),
            sms_messages::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    outbox::enqueue(conn, Some(sms.workspace_id), SMS_JOB, &id, sms.not_before)?;
    Ok(id)
}

/// Whether the newest double-opt-in SMS of a request could not be sent (to tell the person).
pub fn latest_doi_failed(conn: &mut DbConn, request_id: &str) -> Result<bool, DbError> {
    let status: Option<String> = sms_messages::table
        .filter(sms_messages::consent_request_id.eq(request_id))
        .filter(sms_messages::kind.eq(SmsKind::DoiRequest.as_str()))
        .order(sms_messages::created_at.desc())
        .select(sms_messages::status)
        .first(conn)
        .optional()?;
    Ok(matches!(status.as_deref(), Some("failed" | "undelivered")))
}

/// Delivery states as Twilio reports them, in the order they can follow each other. A status
/// callback may arrive late or twice; a status never moves back.
pub fn status_rank(status: &str) -> Option<u8> {
    Some(match status {
        "queued" => 0,
        "accepted" | "scheduled" => 1,
        "sending" => 2,
        "sent" => 3,
        "delivered" | "undelivered" | "failed" | "canceled" | "read" => 4,
        _ => return None,
    })
}

/// Applies a provider status to the message with that provider id, if it moves forward.
/// Returns whether anything changed.
pub fn apply_status(conn: &mut DbConn, provider_sid: &str, status: &str, error: Option<&str>) -> Result<bool, DbError> {
    let Some(rank) = status_rank(status) else {
        return Ok(false);
    };
    let current: Option<(String, String)> = sms_messages::table
        .filter(sms_messages::provider_sid.eq(provider_sid))
        .select((sms_messages::id, sms_messages::status))
        .first(conn)
        .optional()?;
    let Some((id, current)) = current else {
        return Ok(false);
    };
    if status_rank(&current).is_some_and(|r| r >= rank) {
        return Ok(false);
    }
    diesel::update(sms_messages::table.find(id))
        .set((
            sms_messages::status.eq(status),
            sms_messages::status_at.eq(db::now()),
            sms_messages::error.eq(error),
        ))
        .execute(conn)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(status_rank("queued") < status_rank("sent"));
        assert!(status_rank("sent") < status_rank("delivered"));
        assert_eq!(status_rank("delivered"), status_rank("failed"));
        assert_eq!(status_rank("made-up"), None);
    }
}
