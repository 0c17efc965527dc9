//! A contact's full consent history with its evidence (GDPR access requests, proving a consent).

use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::doi::{ConfirmedVia, ConsentRequest, ConsentRequestStatus};
use super::ledger::{self, Entry};
use super::{SubscriptionStatus, WithdrawnVia};
use crate::contacts::{self, Contact};
use crate::db::schema::{consent_requests, sms_subscriptions, suppressions};
use crate::db::{DbConn, DbError};
use crate::domain::Channel;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactConsent {
    pub contact: Contact,
    pub email: EmailPermission,
    /// Current SMS consent per phone number.
    pub sms: Vec<SmsConsent>,
    /// Every sign-up with its evidence: the exact text version, where, when, how confirmed.
    pub requests: Vec<RequestEvidence>,
    /// The hash-chained ledger entries of this contact, oldest first.
    pub ledger: Vec<Entry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailPermission {
    pub consent_at: Option<chrono::NaiveDateTime>,
    pub source: Option<String>,
    pub suppressed: bool,
    pub suppression_reason: Option<String>,
}

#[derive(Debug, Serialize, Queryable, utoipa::ToSchema)]
pub struct SmsConsent {
    pub phone: String,
    pub status: SubscriptionStatus,
    pub consent_request_id: String,
    #[serde(serialize_with = "json_text")]
    #[schema(value_type = Vec<String>)]
    pub categories: String,
    pub confirmed_at: chrono::NaiveDateTime,
    pub withdrawn_at: Option<chrono::NaiveDateTime>,
    pub withdrawn_via: Option<WithdrawnVia>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestEvidence {
    pub id: String,
    pub status: ConsentRequestStatus,
    pub phone: String,
    pub consent_text_id: String,
    pub consent_text_sha256: String,
    #[schema(value_type = Vec<String>)]
    pub categories: Value,
    pub campaign_id: Option<String>,
    pub variant: Option<String>,
    pub locale: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub submitted_at: chrono::NaiveDateTime,
    pub confirmed_at: Option<chrono::NaiveDateTime>,
    pub confirmed_via: Option<ConfirmedVia>,
    /// For `tap_to_text`: the inbound text that gave the consent and the page view that showed
    /// the code (with the consent-text SHA-256 that page displayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_to_text: Option<TapEvidence>,
}

#[derive(Debug, Serialize, Queryable, utoipa::ToSchema)]
pub struct TapEvidence {
    pub inbound_message_sid: Option<String>,
    pub landing_view_id: String,
    pub consent_text_sha256_shown: String,
    pub shown_at: chrono::NaiveDateTime,
}

fn json_text<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    serde_json::from_str::<Value>(raw).unwrap_or(Value::Null).serialize(s)
}

impl From<ConsentRequest> for RequestEvidence {
    fn from(r: ConsentRequest) -> Self {
        Self {
            id: r.id,
            status: r.status,
            phone: r.phone,
            consent_text_id: r.consent_text_id,
            consent_text_sha256: r.consent_text_sha256,
            categories: serde_json::from_str(&r.categories).unwrap_or(Value::Null),
            campaign_id: r.campaign_id,
            variant: r.variant,
            locale: r.locale,
            ip: r.ip,
            user_agent: r.user_agent,
            submitted_at: r.submitted_at,
            confirmed_at: r.confirmed_at,
            confirmed_via: r.confirmed_via,
            tap_to_text: None,
        }
    }
}

/// `None` when the contact is not one of this workspace's.
pub fn of_contact(conn: &mut DbConn, workspace_id: &str, contact_id: &str) -> Result<Option<ContactConsent>, DbError> {
    let Some(contact) = contacts::find(conn, workspace_id, contact_id)? else {
        return Ok(None);
    };
    let suppression: Option<String> = suppressions::table
        .filter(suppressions::workspace_id.eq(workspace_id))
        .filter(suppressions::channel.eq(Channel::Email))
        .filter(suppressions::address.eq(&contact.email_normalized))
        .select(suppressions::reason)
        .first(conn)
        .optional()?;
    let sms = sms_subscriptions::table
        .filter(sms_subscriptions::workspace_id.eq(workspace_id))
        .filter(sms_subscriptions::contact_id.eq(contact_id))
        .order(sms_subscriptions::confirmed_at.asc())
        .select((
            sms_subscriptions::phone,
            sms_subscriptions::status,
            sms_subscriptions::consent_request_id,
            sms_subscriptions::categories,
            sms_subscriptions::confirmed_at,
            sms_subscriptions::withdrawn_at,
            sms_subscriptions::withdrawn_via,
        ))
        .load(conn)?;
    let mut requests: Vec<RequestEvidence> = consent_requests::table
        .filter(consent_requests::workspace_id.eq(workspace_id))
        .filter(consent_requests::contact_id.eq(contact_id))
        .order(consent_requests::submitted_at.asc())
        .select(ConsentRequest::as_select())
        .load(conn)?
        .into_iter()
        .map(RequestEvidence::from)
        .collect();
    for r in &mut requests {
        if r.confirmed_via == Some(ConfirmedVia::TapToText) {
            r.tap_to_text = crate::db::schema::landing_views::table
                .filter(crate::db::schema::landing_views::consent_request_id.eq(&r.id))
                .select((
                    crate::db::schema::landing_views::used_message_sid,
                    crate::db::schema::landing_views::id,
                    crate::db::schema::landing_views::consent_text_sha256,
                    crate::db::schema::landing_views::shown_at,
                ))
                .first(conn)
                .optional()?;
        }
    }
    let ledger = ledger::of_contact(conn, workspace_id, contact_id)?;
    Ok(Some(ContactConsent {
        email: EmailPermission {
            consent_at: contact.email_consent_at,
            source: contact.email_consent_source.clone(),
            suppressed: suppression.is_some(),
            suppression_reason: suppression,
        },
        contact,
        sms,
        requests,
        ledger,
    }))
}
