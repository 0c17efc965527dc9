//! Tap-to-text: the landing page offers `sms:<number>?&body=<YES word> <CODE>`, so a person can
//! sign up by sending one prefilled text instead of typing a number and a code.
//!
//! The page view that showed the link is recorded with the consent-text version and SHA-256 it
//! displayed and the code it carried (kept as a hash only): that record is evidence, not consent,
//! so the landing GET still changes no consent state. The consent is the inbound text itself:
//! sent from the person's own phone after the exact consent text was shown (seed 002: active,
//! informed, specific), it is the confirmation and the proof of the number at once, so the
//! consent becomes active with `confirmed_via = tap_to_text`. A code works once, until the link
//! expires, for the invitation it was shown for; reused or from another number it creates
//! nothing and gets at most one polite answer per code.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::SubscriptionStatus;
use super::doi::{self, ConfirmedVia, ConsentRequest, ConsentRequestStatus};
use super::ledger::{self, LedgerKind, NewEntry};
use crate::db::schema::{consent_requests, consent_texts, invitations, landing_views, sms_subscriptions, workspaces};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Channel, CountryCode, Locale, MobileNumber};
use crate::funnel::{self, Metric};
use crate::i18n;
use crate::sms::outbound::{self, SmsKind};

/// Crockford's base32 alphabet (no I, L, O, U): what people can read back and type.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_LEN: usize = 6;

/// Six Crockford base32 characters: 30 random bits. Six alphabet look-ups, not worth a crate.
pub fn new_code() -> String {
    let n = u32::from_be_bytes(crate::crypto::random_bytes::<4>()) >> 2;
    (0..CODE_LEN)
        .rev()
        .map(|i| char::from(CROCKFORD[((n >> (5 * i)) & 31) as usize]))
        .collect()
}

/// A word of a text read as a code: case-insensitive, with Crockford's reading of look-alikes
/// (O as 0, I and L as 1) and hyphens ignored; `None` unless it is six alphabet characters.
pub fn normalize(word: &str) -> Option<String> {
    let code: String = word
        .chars()
        .filter(|c| *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CROCKFORD.contains(&b))).then_some(code)
}

/// The stored form of a code. Keyed by a fixed context so the hashes mean nothing elsewhere.
fn code_hash(code: &str) -> String {
    crate::crypto::sha256_hex(format!("optbridge-tap-to-text:{code}").as_bytes())
}

/// The codes a text may carry, in order.
fn candidates(body: &str) -> Vec<String> {
    body.split(|c: char| !c.is_alphanumeric() && c != '-')
        // A keyword is never a code, even one spelled in the alphabet (CANCEL reads as CANCE1).
        .filter(|word| crate::sms::keywords::parse(word).is_none())
        .filter_map(normalize)
        .collect()
}

/// What the landing page showed, to record with its code.
#[derive(Debug, Clone)]
pub struct PageView<'a> {
    pub workspace_id: &'a str,
    pub invitation_id: &'a str,
    pub campaign_id: &'a str,
    pub consent_text_id: &'a str,
    pub consent_text_sha256: &'a str,
    pub locale: Locale,
    pub link_jti: &'a str,
    /// The number the page asked to text.
    pub number: &'a str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// When the link (and so the code) expires.
    pub expires_at: NaiveDateTime,
}

/// Records a page view and returns the fresh code it shows. A new code per view: a code is
/// stored only as a hash, so it cannot be shown twice.
pub fn record_view(conn: &mut DbConn, view: &PageView<'_>) -> Result<String, DbError> {
    let mut last_error = None;
    // 2^30 codes: a clash with a live code is rare; drawing again settles it.
    for _ in 0..5 {
        let code = new_code();
        let hash = code_hash(&code);
        let inserted = diesel::insert_into(landing_views::table)
            .values((
                landing_views::id.eq(db::new_id()),
                landing_views::workspace_id.eq(view.workspace_id),
                landing_views::invitation_id.eq(view.invitation_id),
                landing_views::campaign_id.eq(view.campaign_id),
                landing_views::consent_text_id.eq(view.consent_text_id),
                landing_views::consent_text_sha256.eq(view.consent_text_sha256),
                landing_views::locale.eq(view.locale.as_str()),
                landing_views::link_jti.eq(view.link_jti),
                landing_views::tap_number.eq(view.number),
                landing_views::tap_code_hash.eq(&hash),
                landing_views::ip.eq(&view.ip),
                landing_views::user_agent.eq(&view.user_agent),
                landing_views::shown_at.eq(db::now()),
                landing_views::expires_at.eq(view.expires_at),
                landing_views::reply_sent.eq(false),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => return Ok(code),
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, info)) => {
                last_error = Some(DbError::from(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    info,
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error.unwrap_or_else(|| DbError::from(diesel::result::Error::NotFound)))
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = landing_views)]
struct ShownCode {
    id: String,
    workspace_id: String,
    invitation_id: String,
    campaign_id: String,
    consent_text_id: String,
    consent_text_sha256: String,
    locale: String,
    link_jti: String,
    ip: Option<String>,
    user_agent: Option<String>,
    shown_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    reply_sent: bool,
}

/// An inbound text as tap-to-text reads it.
#[derive(Debug, Clone)]
pub struct InboundText<'a> {
    pub message_sid: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub received_at: NaiveDateTime,
}

/// Handles an inbound text carrying a tap-to-text code, inside the caller's transaction.
/// `None` when the text carries no code a page showed (then it is an ordinary reply).
pub fn handle_inbound(
    conn: &mut DbConn,
    text: &InboundText<'_>,
    now: NaiveDateTime,
) -> Result<Option<String>, DbError> {
    let mut shown = None;
    for code in candidates(text.body) {
        let found: Option<ShownCode> = landing_views::table
            .filter(landing_views::tap_code_hash.eq(code_hash(&code)))
            .select(ShownCode::as_select())
            .first(conn)
            .optional()?;
        if found.is_some() {
            shown = found;
            break;
        }
    }
    let Some(shown) = shown else {
        return Ok(None);
    };
    let locale = Locale::parse(&shown.locale).unwrap_or(Locale::En);
    let Some((country, allowed)) = workspaces::table
        .find(&shown.workspace_id)
        .select((workspaces::country, workspaces::allowed_countries))
        .first::<(String, String)>(conn)
        .optional()?
    else {
        return Ok(Some("tap-to-text code of a deleted workspace: ignored".to_owned()));
    };
    let Ok(default_country) = CountryCode::parse(&country) else {
        return Ok(Some(
            "tap-to-text code of a workspace without a country: ignored".to_owned(),
        ));
    };
    let allowed = CountryCode::parse_list(&allowed).unwrap_or_default();
    // A number outside the workspace's countries gets nothing, not even an answer (SMS pumping).
    let Ok(phone) = MobileNumber::parse(text.from, default_country, &allowed) else {
        return Ok(Some(
            "tap-to-text from a number outside the allowed countries: ignored".to_owned(),
        ));
    };
    if doi::phone_opted_out(conn, phone.as_str())? {
        return Ok(Some("tap-to-text from a number that sent STOP: ignored".to_owned()));
    }
    let invitation: Option<(String, String, Option<NaiveDateTime>, Option<NaiveDateTime>)> = invitations::table
        .find(&shown.invitation_id)
        .select((
            invitations::contact_id,
            invitations::variant,
            invitations::submitted_at,
            invitations::confirmed_at,
        ))
        .first(conn)
        .optional()?;
    let Some((contact_id, variant, submitted_at, confirmed_at)) = invitation else {
        return Ok(Some("tap-to-text code of an erased invitation: ignored".to_owned()));
    };
    let company: String = consent_texts::table
        .find(&shown.consent_text_id)
        .select(consent_texts::company_name)
        .first(conn)
        .optional()?
        .unwrap_or_default();
    let subscribed: i64 = sms_subscriptions::table
        .filter(sms_subscriptions::workspace_id.eq(&shown.workspace_id))
        .filter(sms_subscriptions::phone.eq(phone.as_str()))
        .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active))
        .count()
        .get_result(conn)?;
    if shown.used_at.is_some() || shown.expires_at <= now || confirmed_at.is_some() || subscribed > 0 {
        return refuse(conn, &shown, &phone, locale, &company, now);
    }
    // Claimed before anything else: a second text with the code, even one processed at the same
    // time by another worker, finds it used (the update is conditional).
    let claimed = diesel::update(
        landing_views::table
            .filter(landing_views::id.eq(&shown.id))
            .filter(landing_views::used_at.is_null()),
    )
    .set((
        landing_views::used_at.eq(now),
        landing_views::used_message_sid.eq(text.message_sid),
    ))
    .execute(conn)?;
    if claimed == 0 {
        return refuse(conn, &shown, &phone, locale, &company, now);
    }
    // The person's other sign-ups through this link (a form they did not confirm) are settled by
    // this one.
    diesel::update(
        consent_requests::table
            .filter(consent_requests::invitation_id.eq(&shown.invitation_id))
            .filter(
                consent_requests::status
                    .eq(ConsentRequestStatus::Pending)
                    .or(consent_requests::status.eq(ConsentRequestStatus::Locked)),
            ),
    )
    .set((
        consent_requests::status.eq(ConsentRequestStatus::Cancelled),
        consent_requests::closed_at.eq(now),
    ))
    .execute(conn)?;
    let request_id = db::new_id();
    diesel::insert_into(consent_requests::table)
        .values((
            consent_requests::id.eq(&request_id),
            consent_requests::workspace_id.eq(&shown.workspace_id),
            consent_requests::contact_id.eq(&contact_id),
            consent_requests::invitation_id.eq(&shown.invitation_id),
            consent_requests::campaign_id.eq(&shown.campaign_id),
            consent_requests::variant.eq(&variant),
            consent_requests::locale.eq(locale.as_str()),
            consent_requests::phone.eq(phone.as_str()),
            consent_requests::country.eq(phone.country().to_string()),
            consent_requests::consent_text_id.eq(&shown.consent_text_id),
            consent_requests::consent_text_sha256.eq(&shown.consent_text_sha256),
            consent_requests::categories.eq("[]"),
            consent_requests::ip.eq(&shown.ip),
            consent_requests::user_agent.eq(&shown.user_agent),
            consent_requests::token_jti.eq(&shown.link_jti),
            // No code to type: the hash of the tap code under another salt matches no typed code.
            consent_requests::code_hash.eq(code_hash(&format!("request:{request_id}"))),
            consent_requests::code_attempts.eq(0),
            consent_requests::status.eq(ConsentRequestStatus::Pending),
            consent_requests::sms_sent.eq(0),
            consent_requests::hint_sent.eq(true),
            consent_requests::submitted_at.eq(now),
            consent_requests::expires_at.eq(shown.expires_at),
        ))
        .execute(conn)?;
    diesel::update(landing_views::table.find(&shown.id))
        .set(landing_views::consent_request_id.eq(&request_id))
        .execute(conn)?;
    let page = json!({
        "page": "landing (tap-to-text)",
        "landing_view_id": shown.id,
        "shown_at": shown.shown_at.and_utc().to_rfc3339(),
        "consent_text_id": shown.consent_text_id,
        "consent_text_sha256": shown.consent_text_sha256,
        "link_jti": shown.link_jti,
        "ip": shown.ip,
        "user_agent": shown.user_agent,
    });
    ledger::append(
        conn,
        &shown.workspace_id,
        &[NewEntry {
            contact_id: Some(&contact_id),
            kind: LedgerKind::SmsConsentRequested,
            at: now,
            payload: json!({
                "request_id": request_id,
                "phone": phone.as_str(),
                "channel": Channel::Sms,
                "company": company,
                "consent_text_id": shown.consent_text_id,
                "consent_text_sha256": shown.consent_text_sha256,
                "categories": Vec::<String>::new(),
                "source": {
                    "campaign_id": shown.campaign_id,
                    "variant": variant,
                    "invitation_id": shown.invitation_id,
                    "link_jti": shown.link_jti,
                    "page": page,
                    "inbound_message_sid": text.message_sid,
                },
                "locale": locale.as_str(),
                "submitted_at": now.and_utc().to_rfc3339(),
            }),
        }],
    )?;
    if submitted_at.is_none() {
        diesel::update(invitations::table.find(&shown.invitation_id))
            .set(invitations::submitted_at.eq(now))
            .execute(conn)?;
        let inv_locale: String = invitations::table
            .find(&shown.invitation_id)
            .select(invitations::locale)
            .first(conn)?;
        funnel::increment(
            conn,
            &shown.campaign_id,
            &variant,
            &inv_locale,
            Metric::Submitted,
            now,
            1,
        )?;
    }
    let request: ConsentRequest = consent_requests::table
        .find(&request_id)
        .select(ConsentRequest::as_select())
        .first(conn)?;
    let evidence = json!({
        "message_sid": text.message_sid,
        "from": phone.as_str(),
        "to": text.to,
        "body": text.body,
        "received_at": text.received_at.and_utc().to_rfc3339(),
        "landing_view_id": shown.id,
        "consent_text_sha256_shown": shown.consent_text_sha256,
        "shown_at": shown.shown_at.and_utc().to_rfc3339(),
    });
    if !doi::activate(conn, &request, ConfirmedVia::TapToText, evidence, now)? {
        return Ok(Some(format!(
            "tap-to-text request {request_id} closed meanwhile: ignored"
        )));
    }
    Ok(Some(format!("confirmed by tap-to-text: request {request_id}")))
}

/// A code used already, expired, or for someone signed up already: nothing is created; the
/// first such text per code gets one polite answer, later ones none.
fn refuse(
    conn: &mut DbConn,
    shown: &ShownCode,
    phone: &MobileNumber,
    locale: Locale,
    company: &str,
    now: NaiveDateTime,
) -> Result<Option<String>, DbError> {
    if shown.reply_sent {
        return Ok(Some("tap-to-text code used again: ignored".to_owned()));
    }
    diesel::update(landing_views::table.find(&shown.id))
        .set(landing_views::reply_sent.eq(true))
        .execute(conn)?;
    outbound::queue(
        conn,
        outbound::NewSms {
            workspace_id: &shown.workspace_id,
            consent_request_id: None,
            kind: SmsKind::KeywordReply,
            phone: phone.as_str(),
            country: &phone.country().to_string(),
            body: &i18n::tap_code_used(locale, company),
            not_before: now,
        },
    )?;
    Ok(Some("tap-to-text code used again: one answer sent".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_crockford_characters_that_read_back() {
        let codes: std::collections::HashSet<String> = (0..500).map(|_| new_code()).collect();
        assert!(codes.len() > 495, "30 random bits each");
        for code in &codes {
            assert_eq!(normalize(code).as_deref(), Some(code.as_str()));
            assert_eq!(normalize(&code.to_lowercase()).as_deref(), Some(code.as_str()));
        }
        assert_eq!(normalize("o1l-ab2"), Some("011AB2".to_owned()));
        assert_eq!(normalize("ABCDEU"), None, "U is not Crockford");
        assert_eq!(normalize("ABCDE"), None);
        assert_eq!(candidates("JA 7K3M9Q"), vec!["7K3M9Q".to_owned()]);
        assert_eq!(candidates("YES, k7m2qx!"), vec!["K7M2QX".to_owned()]);
    }
}
