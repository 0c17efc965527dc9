//! Reading contacts and suppressions back out page by page, for a retailer's nightly sync.
//!
//! Keyset pagination: rows in `(sort time, id)` order, and the cursor names the last row of a page,
//! so the next page starts right after it whatever was inserted meanwhile (no row skipped or
//! repeated, unlike OFFSET). Contacts go by `updated_at`: a contact that changes while a sync
//! pages moves behind the cursor and comes again later, never lost. Suppressions go by the time
//! they were made.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::Contact;
use crate::consent::SubscriptionStatus;
use crate::db::schema::{contacts, sms_subscriptions, suppressions};
use crate::db::text_enum::db_enum;
use crate::db::{DbConn, DbError};
use crate::domain::Channel;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}), not {0:?}")]
    Limit(String),
    #[error("after is not a cursor this API gave out: pass the `next` of the previous page as it was")]
    Cursor,
    #[error("{name} must be one of {allowed}, not {value:?}")]
    Filter {
        name: &'static str,
        allowed: &'static str,
        value: String,
    },
}

/// `?limit=`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub fn parse_limit(raw: Option<&str>) -> Result<i64, PageError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| PageError::Limit(raw.to_owned())),
    }
}

/// Where a page ends: the sort time and id of its last row. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    at: NaiveDateTime,
    id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.and_utc().timestamp_micros(), self.id))
    }

    pub fn decode(raw: &str) -> Result<Self, PageError> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| PageError::Cursor)?;
        let text = String::from_utf8(bytes).map_err(|_| PageError::Cursor)?;
        let (micros, id) = text.split_once('|').ok_or(PageError::Cursor)?;
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .ok_or(PageError::Cursor)?
            .naive_utc();
        if id.is_empty() || id.len() > 100 {
            return Err(PageError::Cursor);
        }
        Ok(Self { at, id: id.to_owned() })
    }
}

/// One page and the cursor of the next (`None` on the last page).
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next: Option<String>,
}

fn page_of<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|r| key(r).encode())
    } else {
        None
    };
    Page { data: rows, next }
}

db_enum! {
    /// A contact's SMS marketing consent with the workspace, as the contact list filters it.
    pub enum SmsConsentState {
        /// At least one number with an active consent.
        Active = "active",
        /// Consent given once, withdrawn since (STOP, erasure), none active.
        Withdrawn = "withdrawn",
        /// Never confirmed an SMS consent.
        NoConsent = "none",
    }
}

/// The filters of `GET /api/v1/contacts`.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub locale: Option<String>,
    pub sms_consent: Option<SmsConsentState>,
    /// Email address, or a number they consented with, on the suppression list.
    pub suppressed: Option<bool>,
    pub updated_since: Option<NaiveDateTime>,
}

/// A contact as the list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactListItem {
    #[serde(flatten)]
    pub contact: Contact,
    pub sms_consent: SmsConsentState,
    /// The number of the active consent (else of the latest withdrawn one), E.164.
    pub phone: Option<String>,
    pub suppressed: bool,
}

/// One page of the workspace's contacts in `(updated_at, id)` order.
pub fn contacts_page(
    conn: &mut DbConn,
    workspace_id: &str,
    filter: &ContactFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Page<ContactListItem>, DbError> {
    let subscribed = |statuses: &[SubscriptionStatus]| {
        sms_subscriptions::table
            .filter(sms_subscriptions::workspace_id.eq(workspace_id.to_owned()))
            .filter(sms_subscriptions::status.eq_any(statuses.to_vec()))
            .select(sms_subscriptions::contact_id)
    };
    let suppressed_emails = suppressions::table
        .filter(suppressions::workspace_id.eq(workspace_id.to_owned()))
        .filter(suppressions::channel.eq(Channel::Email))
        .select(suppressions::address);
    let suppressed_phones = sms_subscriptions::table
        .filter(sms_subscriptions::workspace_id.eq(workspace_id.to_owned()))
        .filter(
            sms_subscriptions::phone.eq_any(
                suppressions::table
                    .filter(suppressions::workspace_id.eq(workspace_id.to_owned()))
                    .filter(suppressions::channel.eq(Channel::Sms))
                    .select(suppressions::address),
            ),
        )
        .select(sms_subscriptions::contact_id);

    let mut q = contacts::table
        .filter(contacts::workspace_id.eq(workspace_id))
        .select(Contact::as_select())
        .into_boxed();
    if let Some(locale) = &filter.locale {
        q = q.filter(contacts::locale.eq(locale.clone()));
    }
    if let Some(since) = filter.updated_since {
        q = q.filter(contacts::updated_at.ge(since));
    }
    match filter.sms_consent {
        None => {}
        Some(SmsConsentState::Active) => q = q.filter(contacts::id.eq_any(subscribed(&[SubscriptionStatus::Active]))),
        Some(SmsConsentState::Withdrawn) => {
            q = q
                .filter(contacts::id.eq_any(subscribed(&[SubscriptionStatus::Withdrawn])))
                .filter(contacts::id.ne_all(subscribed(&[SubscriptionStatus::Active])))
        }
        Some(SmsConsentState::NoConsent) => q = q.filter(contacts::id.ne_all(subscribed(SubscriptionStatus::ALL))),
    }
    match filter.suppressed {
        None => {}
        Some(true) => {
            q = q.filter(
                contacts::email_normalized
                    .eq_any(suppressed_emails)
                    .or(contacts::id.eq_any(suppressed_phones)),
            )
        }
        Some(false) => {
            q = q
                .filter(contacts::email_normalized.ne_all(suppressed_emails))
                .filter(contacts::id.ne_all(suppressed_phones))
        }
    }
    if let Some(c) = after {
        q = q.filter(
            contacts::updated_at
                .gt(c.at)
                .or(contacts::updated_at.eq(c.at).and(contacts::id.gt(c.id.clone()))),
        );
    }
    let rows: Vec<Contact> = q
        .order((contacts::updated_at.asc(), contacts::id.asc()))
        .limit(limit + 1)
        .load(conn)?;
    let page = page_of(rows, limit, |c| Cursor {
        at: c.updated_at,
        id: c.id.clone(),
    });

    // What the list shows of each contact's consent and suppression, for the page at once.
    let ids: Vec<&str> = page.data.iter().map(|c| c.id.as_str()).collect();
    let subs: Vec<(String, String, SubscriptionStatus, NaiveDateTime)> = sms_subscriptions::table
        .filter(sms_subscriptions::workspace_id.eq(workspace_id))
        .filter(sms_subscriptions::contact_id.eq_any(&ids))
        .order(sms_subscriptions::confirmed_at.asc())
        .select((
            sms_subscriptions::contact_id,
            sms_subscriptions::phone,
            sms_subscriptions::status,
            sms_subscriptions::confirmed_at,
        ))
        .load(conn)?;
    let emails: Vec<&str> = page.data.iter().map(|c| c.email_normalized.as_str()).collect();
    let mut addresses: Vec<&str> = emails.clone();
    addresses.extend(subs.iter().map(|s| s.1.as_str()));
    let suppressed: std::collections::HashSet<String> = suppressions::table
        .filter(suppressions::workspace_id.eq(workspace_id))
        .filter(suppressions::address.eq_any(&addresses))
        .select(suppressions::address)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let data = page
        .data
        .into_iter()
        .map(|contact| {
            let mine: Vec<_> = subs.iter().filter(|s| s.0 == contact.id).collect();
            let active = mine.iter().rev().find(|s| s.2 == SubscriptionStatus::Active);
            let (sms_consent, phone) = match (active, mine.last()) {
                (Some(s), _) => (SmsConsentState::Active, Some(s.1.clone())),
                (None, Some(s)) => (SmsConsentState::Withdrawn, Some(s.1.clone())),
                (None, None) => (SmsConsentState::NoConsent, None),
            };
            // An erased contact's numbers read `erased:…`: none to show.
            let phone = phone.filter(|p| p.starts_with('+'));
            let is_suppressed =
                suppressed.contains(&contact.email_normalized) || mine.iter().any(|s| suppressed.contains(&s.1));
            ContactListItem {
                contact,
                sms_consent,
                phone,
                suppressed: is_suppressed,
            }
        })
        .collect();
    Ok(Page { data, next: page.next })
}

/// A suppression as the list shows it: who must not be contacted on which channel, why, since when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SuppressionItem {
    #[serde(skip)]
    pub id: String,
    pub channel: Channel,
    /// For `email`: the address (normalized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// For `sms`: the number, E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub reason: String,
    pub suppressed_at: NaiveDateTime,
}

/// One page of the workspace's suppression list in `(created_at, id)` order.
pub fn suppressions_page(
    conn: &mut DbConn,
    workspace_id: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Page<SuppressionItem>, DbError> {
    let mut q = suppressions::table
        .filter(suppressions::workspace_id.eq(workspace_id))
        .select((
            suppressions::id,
            suppressions::channel,
            suppressions::address,
            suppressions::reason,
            suppressions::created_at,
        ))
        .into_boxed();
    if let Some(c) = after {
        q = q.filter(
            suppressions::created_at
                .gt(c.at)
                .or(suppressions::created_at.eq(c.at).and(suppressions::id.gt(c.id.clone()))),
        );
    }
    let rows: Vec<(String, Channel, String, String, NaiveDateTime)> = q
        .order((suppressions::created_at.asc(), suppressions::id.asc()))
        .limit(limit + 1)
        .load(conn)?;
    let items = rows
        .into_iter()
        .map(|(id, channel, address, reason, at)| SuppressionItem {
            id,
            channel,
            email: (channel == Channel::Email).then(|| address.clone()),
            phone: (channel == Channel::Sms).then_some(address),
            reason,
            suppressed_at: at,
        })
        .collect();
    Ok(page_of(items, limit, |s| Cursor {
        at: s.suppressed_at,
        id: s.id.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let at = chrono::DateTime::from_timestamp_micros(1_765_000_000_123_456)
            .unwrap()
            .naive_utc();
        let c = Cursor {
            at,
            id: "0193a6f0-aaaa".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in ["", "!!", "bm9waXBl", "MTIzfA"] {
            assert_eq!(Cursor::decode(bad), Err(PageError::Cursor), "{bad}");
        }
    }

    #[test]
    fn limits_are_1_to_1000() {
        assert_eq!(parse_limit(None), Ok(100));
        assert_eq!(parse_limit(Some("1000")), Ok(1000));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        for bad in ["0", "1001", "-5", "ten", ""] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
