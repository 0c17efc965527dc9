//! The double opt-in: a consent given on the landing page becomes active only when the person
//! confirms it from their phone (reply keyword, or the code from the SMS typed on the page).
//! The Danish Consumer Ombudsman recommends double opt-in (seed 002); no reminder SMS is ever
//! sent to someone who did not confirm, so confirming is made easy on the spot instead.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::ledger::{self, LedgerKind, NewEntry};
use super::{SubscriptionStatus, WithdrawnVia};
use crate::campaigns::public::PublicCampaign;
use crate::db::schema::{consent_requests, invitations, sms_messages, sms_subscriptions, suppressions};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::domain::{Channel, CountryCode, Locale, MobileNumber, PhoneError};
use crate::funnel::{self, Metric};
use crate::i18n;
use crate::metrics::METRICS;
use crate::sms::outbound::{self, SmsKind};

/// Limits against SMS pumping (fraudsters making a form send SMS to premium numbers they are
/// paid for) and against harassing someone with codes.
#[derive(Debug, Clone)]
pub struct DoiSettings {
    /// How long a request waits for its confirmation.
    pub expiry: Duration,
    /// Wrong codes before the request locks.
    pub max_code_attempts: i32,
    /// SMS per request (the first and the resends).
    pub max_sends: i32,
    /// Wait between two SMS of one request.
    pub resend_after: Duration,
    pub limits: AbuseLimits,
    /// After this long a pending sign-up gets its one email reminder (issue 17); `None`: never.
    pub email_reminder: Option<Duration>,
}

/// Caps on double-opt-in SMS, each over the last 24 hours.
#[derive(Debug, Clone)]
pub struct AbuseLimits {
    /// Different phone numbers one landing link may be used for.
    pub per_token: i64,
    pub per_phone: i64,
    pub per_ip: i64,
    /// Per destination country (premium-rate pumping targets one country at a time).
    pub per_country: i64,
    pub per_workspace: i64,
}

db_enum! {
    /// `consent_requests.status`: a sign-up waiting for its confirmation, or how it ended.
    pub enum ConsentRequestStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        Expired = "expired",
        /// Too many wrong codes.
        Locked = "locked",
        /// Replaced by a newer sign-up with the number, or ended by STOP.
        Cancelled = "cancelled",
    }
}

db_enum! {
    /// `consent_requests.confirmed_via`: how the person confirmed from their phone.
    pub enum ConfirmedVia {
        /// The code from the SMS, typed on the page.
        Code = "code",
        /// A reply keyword to the SMS.
        SmsReply = "sms_reply",
        /// The prefilled text from the landing page's tap-to-text link (issue 17): consent and
        /// proof of the number in one message.
        TapToText = "tap_to_text",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Token,
    Phone,
    Ip,
    Country,
    Workspace,
    Resend,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Phone => "phone",
            Self::Ip => "ip",
            Self::Country => "country",
            Self::Workspace => "workspace",
            Self::Resend => "resend",
        }
    }
}

/// Problems with the form, shown next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    Phone(PhoneError),
    ConsentMissing,
    UnknownCategory(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DoiError {
    #[error("the form has errors")]
    Form(Vec<FormError>),
    #[error("limit reached: {}", .0.as_str())]
    Limited(LimitKind),
    /// The link does not belong to a usable invitation (deleted contact, other campaign).
    #[error("the invitation behind this link is gone")]
    Gone,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for DoiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl db::AsDbError for DoiError {
    fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Self::Db(e) => Some(e),
            _ => None,
        }
    }
}

/// What the landing form sent.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub campaign: &'a PublicCampaign,
    pub invitation_id: &'a str,
    pub token_jti: &'a str,
    pub locale: Locale,
    pub phone: &'a str,
    pub consent: bool,
    pub categories: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What a sound submission within the limits did. Every valid number gets a request and the
/// same answer, whether it is new, signed up already or opted out: the page must not tell
/// which numbers are known (issue 15, item 5). A number already signed up with the workspace
/// or opted out gets no SMS: the sender skips it (`sms::dispatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// A new request; its SMS is queued.
    CodeSent { request_id: String },
    /// This person already asked with this number; no new SMS (a repeated form post).
    AlreadyPending { request_id: String },
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = consent_requests)]
pub struct ConsentRequest {
    pub id: String,
    pub workspace_id: String,
    pub contact_id: String,
    pub invitation_id: Option<String>,
    pub campaign_id: Option<String>,
    pub variant: Option<String>,
    pub locale: String,
    pub phone: String,
    pub country: String,
    pub consent_text_id: String,
    pub consent_text_sha256: String,
    pub categories: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub token_jti: Option<String>,
    pub code_hash: String,
    pub code_attempts: i32,
    pub status: ConsentRequestStatus,
    pub sms_sent: i32,
    pub last_sms_at: Option<NaiveDateTime>,
    pub hint_sent: bool,
    pub submitted_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    pub confirmed_via: Option<ConfirmedVia>,
    pub closed_at: Option<NaiveDateTime>,
}

impl ConsentRequest {
    pub fn locale(&self) -> Locale {
        Locale::parse(&self.locale).unwrap_or(Locale::En)
    }
}

fn code_hash(request_id: &str, code: &str) -> String {
    crate::crypto::sha256_hex(format!("{request_id}:{code}").as_bytes())
}

/// Six uniformly random digits.
fn new_code() -> String {
    loop {
        let n = u32::from_be_bytes(crate::crypto::random_bytes::<4>());
        // Reject the top sliver so that `% 1_000_000` is uniform.
        if n < u32::MAX - (u32::MAX % 1_000_000) {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

fn day_ago() -> NaiveDateTime {
    db::now() - chrono::Duration::hours(24)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(24))
}

/// Whether a phone sent STOP (to any workspace: one sender number serves them all).
pub fn phone_opted_out(conn: &mut DbConn, phone: &str) -> Result<bool, DbError> {
    let n: i64 = suppressions::table
        .filter(suppressions::channel.eq(Channel::Sms))
        .filter(suppressions::address.eq(phone))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Validates the form and, when it is sound and within limits, records the request with its
/// evidence and queues the SMS, all in one transaction.
pub fn submit(conn: &mut DbConn, settings: &DoiSettings, s: &Submission<'_>) -> Result<SubmitOutcome, DoiError> {
    // National numbers are read with the recipient's country, not the workspace's.
    let default_country = CountryCode::parse(&s.campaign.phone_country()).map_err(|_| DoiError::Gone)?;
    let allowed: Vec<CountryCode> = s
        .campaign
        .allowed_countries
        .iter()
        .filter_map(|c| CountryCode::parse(c).ok())
        .collect();
    let mut errors = Vec::new();
    let phone = match MobileNumber::parse(s.phone, default_country, &allowed) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(FormError::Phone(e));
            None
        }
    };
    if !s.consent {
        errors.push(FormError::ConsentMissing);
    }
    for c in &s.categories {
        if !s.campaign.categories.contains(c) {
            errors.push(FormError::UnknownCategory(c.clone()));
        }
    }
    let Some(phone) = phone.filter(|_| errors.is_empty()) else {
        return Err(DoiError::Form(errors));
    };

    db::write_tx_retrying(conn, 3, |conn| submit_tx(conn, settings, s, &phone))
}

fn submit_tx(
    conn: &mut DbConn,
    settings: &DoiSettings,
    s: &Submission<'_>,
    phone: &MobileNumber,
) -> Result<SubmitOutcome, DoiError> {
    LimitScope::sign_up(s, phone).lock(conn)?;
    let workspace_id = s.campaign.workspace_id.as_str();
    let invitation: Option<(String, String, String, Option<NaiveDateTime>)> = invitations::table
        .filter(invitations::id.eq(s.invitation_id))
        .filter(invitations::campaign_id.eq(&s.campaign.campaign_id))
        .select((
            invitations::contact_id,
            invitations::variant,
            invitations::locale,
            invitations::submitted_at,
        ))
        .first(conn)
        .optional()?;
    let (contact_id, variant, inv_locale, submitted_at) = invitation.ok_or(DoiError::Gone)?;

    // The limits come before anything that depends on the number's history, so a link at its
    // limit answers alike for every number.
    check_limits(conn, &settings.limits, s, phone)?;
    let now = db::now();
    expire_stale(conn, phone.as_str(), now)?;
    let pending: Option<(String, String)> = consent_requests::table
        .filter(consent_requests::workspace_id.eq(workspace_id))
        .filter(consent_requests::phone.eq(phone.as_str()))
        .filter(consent_requests::status.eq(ConsentRequestStatus::Pending))
        .select((consent_requests::id, consent_requests::contact_id))
        .first(conn)
        .optional()?;
    if let Some((request_id, pending_contact)) = pending {
        if pending_contact == contact_id {
            return Ok(SubmitOutcome::AlreadyPending { request_id });
        }
        // Someone else entered this number: the newer request replaces the older one.
        close_request(conn, &request_id, ConsentRequestStatus::Cancelled, now)?;
    }

    let request_id = db::new_id();
    let code = new_code();
    let categories = serde_json::to_string(&s.categories).unwrap_or_else(|_| "[]".into());
    diesel::insert_into(consent_requests::table)
        .values((
            consent_requests::id.eq(&request_id),
            consent_requests::workspace_id.eq(workspace_id),
            consent_requests::contact_id.eq(&contact_id),
            consent_requests::invitation_id.eq(s.invitation_id),
            consent_requests::campaign_id.eq(&s.campaign.campaign_id),
            consent_requests::variant.eq(&variant),
            consent_requests::locale.eq(s.locale.as_str()),
            consent_requests::phone.eq(phone.as_str()),
            consent_requests::country.eq(phone.country().to_string()),
            consent_requests::consent_text_id.eq(&s.campaign.consent_text_id),
            consent_requests::consent_text_sha256.eq(&s.campaign.consent_sha256),
            consent_requests::categories.eq(&categories),
            consent_requests::ip.eq(&s.ip),
            consent_requests::user_agent.eq(&s.user_agent),
            consent_requests::token_jti.eq(s.token_jti),
            consent_requests::code_hash.eq(code_hash(&request_id, &code)),
            consent_requests::code_attempts.eq(0),
            consent_requests::status.eq(ConsentRequestStatus::Pending),
            consent_requests::sms_sent.eq(1),
            consent_requests::last_sms_at.eq(now),
            consent_requests::hint_sent.eq(false),
            consent_requests::submitted_at.eq(now),
            consent_requests::expires_at.eq(now + chrono_duration(settings.expiry)),
        ))
        .execute(conn)?;
    outbound::queue_with_code(
        conn,
        outbound::NewSms {
            workspace_id,
            consent_request_id: Some(&request_id),
            kind: SmsKind::DoiRequest,
            phone: phone.as_str(),
            country: &phone.country().to_string(),
            body: &i18n::sms::doi_request(s.locale, &s.campaign.company, outbound::CODE_MASK),
            not_before: now,
        },
        &code,
    )?;
    ledger::append(
        conn,
        workspace_id,
        &[NewEntry {
            contact_id: Some(&contact_id),
            kind: LedgerKind::SmsConsentRequested,
            at: now,
            payload: json!({
                "request_id": request_id,
                "phone": phone.as_str(),
                "channel": Channel::Sms,
                "company": s.campaign.company,
                "consent_text_id": s.campaign.consent_text_id,
                "consent_text_sha256": s.campaign.consent_sha256,
                "categories": s.categories,
                "source": {
                    "campaign_id": s.campaign.campaign_id,
                    "variant": variant,
                    "invitation_id": s.invitation_id,
                    "link_jti": s.token_jti,
                    "page": "landing",
                    "ip": s.ip,
                    "user_agent": s.user_agent,
                },
                "locale": s.locale.as_str(),
                "submitted_at": now.and_utc().to_rfc3339(),
            }),
        }],
    )?;
    if let Some(after) = settings.email_reminder {
        super::reminder::schedule(conn, workspace_id, s.invitation_id, now + chrono_duration(after))?;
    }
    if submitted_at.is_none() {
        diesel::update(invitations::table.find(s.invitation_id))
            .set(invitations::submitted_at.eq(now))
            .execute(conn)?;
        funnel::increment(
            conn,
            &s.campaign.campaign_id,
            &variant,
            &inv_locale,
            Metric::Submitted,
            now,
            1,
        )?;
    }
    Ok(SubmitOutcome::CodeSent { request_id })
}

fn check_limits(
    conn: &mut DbConn,
    limits: &AbuseLimits,
    s: &Submission<'_>,
    phone: &MobileNumber,
) -> Result<(), DoiError> {
    LimitScope::sign_up(s, phone).check(conn, limits)
}

/// What one code SMS counts against: the link and the client address for a sign-up (a resend
/// makes no new sign-up), and always the number, its country and the workspace.
struct LimitScope<'a> {
    token: Option<&'a str>,
    ip: Option<&'a str>,
    phone: &'a str,
    country: String,
    workspace_id: &'a str,
}

impl<'a> LimitScope<'a> {
    fn sign_up(s: &'a Submission<'_>, phone: &'a MobileNumber) -> Self {
        Self {
            token: Some(s.token_jti),
            ip: s.ip.as_deref(),
            phone: phone.as_str(),
            country: phone.country().to_string(),
            workspace_id: &s.campaign.workspace_id,
        }
    }

    fn resend(req: &'a ConsentRequest) -> Self {
        Self {
            token: None,
            ip: None,
            phone: &req.phone,
            country: req.country.clone(),
            workspace_id: &req.workspace_id,
        }
    }

    /// Makes sign-ups and resends that share a link, a number or a client address wait for each
    /// other until the transaction ends, so each counts what the others committed (PostgreSQL
    /// advisory locks; on SQLite `BEGIN IMMEDIATE` already serializes every writer). Always link,
    /// number, address in this order, and before any row lock, so two never wait on each other.
    /// Country and workspace take no lock: that would serialize every sign-up of a country, and
    /// their caps (1,000 and 10,000) can only be passed by the few sign-ups in flight at once.
    fn lock(&self, conn: &mut DbConn) -> Result<(), DbError> {
        if let Some(token) = self.token {
            db::lock_for_transaction(conn, &format!("doi-link:{token}"))?;
        }
        db::lock_for_transaction(conn, &format!("doi-phone:{}", self.phone))?;
        if let Some(ip) = self.ip {
            db::lock_for_transaction(conn, &format!("doi-ip:{ip}"))?;
        }
        Ok(())
    }

    /// The first limit one more code SMS would pass, as [`DoiError::Limited`]. Number, country and
    /// workspace count every code SMS of the last 24 hours (first sends and resends, through any
    /// link and workspace); link and address count sign-ups.
    fn check(&self, conn: &mut DbConn, limits: &AbuseLimits) -> Result<(), DoiError> {
        let since = day_ago();
        let doi_sms = || {
            sms_messages::table
                .filter(sms_messages::kind.eq(SmsKind::DoiRequest))
                .filter(sms_messages::created_at.gt(since))
                .into_boxed()
        };
        let hit = |kind: LimitKind| {
            METRICS.limit_hit(kind.as_str());
            tracing::warn!(limit = kind.as_str(), "double opt-in limit reached");
            Err(DoiError::Limited(kind))
        };
        if let Some(token) = self.token {
            let per_token: i64 = consent_requests::table
                .filter(consent_requests::token_jti.eq(token))
                .filter(consent_requests::submitted_at.gt(since))
                .count()
                .get_result(conn)?;
            if per_token >= limits.per_token {
                return hit(LimitKind::Token);
            }
        }
        let per_phone: i64 = doi_sms()
            .filter(sms_messages::phone.eq(self.phone))
            .count()
            .get_result(conn)?;
        if per_phone >= limits.per_phone {
            return hit(LimitKind::Phone);
        }
        if let Some(ip) = self.ip {
            let per_ip: i64 = consent_requests::table
                .filter(consent_requests::ip.eq(ip))
                .filter(consent_requests::submitted_at.gt(since))
                .count()
                .get_result(conn)?;
            if per_ip >= limits.per_ip {
                return hit(LimitKind::Ip);
            }
        }
        let per_country: i64 = doi_sms()
            .filter(sms_messages::country.eq(&self.country))
            .count()
            .get_result(conn)?;
        if per_country >= limits.per_country {
            return hit(LimitKind::Country);
        }
        let per_workspace: i64 = doi_sms()
            .filter(sms_messages::workspace_id.eq(self.workspace_id))
            .count()
            .get_result(conn)?;
        if per_workspace >= limits.per_workspace {
            return hit(LimitKind::Workspace);
        }
        Ok(())
    }
}

/// Marks pending requests of this phone whose time ran out as expired.
fn expire_stale(conn: &mut DbConn, phone: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(
        consent_requests::table
            .filter(consent_requests::phone.eq(phone))
            .filter(consent_requests::status.eq(ConsentRequestStatus::Pending))
            .filter(consent_requests::expires_at.le(now)),
    )
    .set((
        consent_requests::status.eq(ConsentRequestStatus::Expired),
        consent_requests::closed_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

fn close_request(
    conn: &mut DbConn,
    request_id: &str,
    status: ConsentRequestStatus,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(consent_requests::table.find(request_id))
        .set((consent_requests::status.eq(status), consent_requests::closed_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// The newest request made through an invitation (for the code page).
pub fn latest_for_invitation(conn: &mut DbConn, invitation_id: &str) -> Result<Option<ConsentRequest>, DbError> {
    let found: Option<ConsentRequest> = consent_requests::table
        .filter(consent_requests::invitation_id.eq(invitation_id))
        .order(consent_requests::submitted_at.desc())
        .select(ConsentRequest::as_select())
        .first(conn)
        .optional()?;
    Ok(found.map(expired_if_due))
}

/// A pending request past its time is reported as expired.
fn expired_if_due(mut r: ConsentRequest) -> ConsentRequest {
    if r.status == ConsentRequestStatus::Pending && r.expires_at <= db::now() {
        r.status = ConsentRequestStatus::Expired;
    }
    r
}

/// Reads a request again and, on PostgreSQL, locks its row until the transaction ends, so code
/// checks and resends of one sign-up run one after another on what the previous one committed
/// (SQLite's `BEGIN IMMEDIATE` already serializes them).
fn lock_request(conn: &mut DbConn, request_id: &str) -> Result<Option<ConsentRequest>, DbError> {
    let request = consent_requests::table.find(request_id);
    let found = match conn {
        DbConn::Pg(c) => request
            .select(ConsentRequest::as_select())
            .for_update()
            .first(c)
            .optional()?,
        DbConn::Sqlite(c) => request.select(ConsentRequest::as_select()).first(c).optional()?,
    };
    Ok(found.map(expired_if_due))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    Confirmed,
    /// Wrong code; attempts left before the request locks.
    Wrong {
        attempts_left: i32,
    },
    Locked,
    Expired,
    /// Nothing waits for a code (no request, or it is confirmed or closed already).
    NothingPending,
}

/// Checks a code typed on the page. Five wrong codes lock the request.
pub fn confirm_code(
    conn: &mut DbConn,
    settings: &DoiSettings,
    invitation_id: &str,
    code: &str,
    evidence: serde_json::Value,
) -> Result<CodeOutcome, DoiError> {
    db::write_tx_retrying(conn, 3, |conn| {
        let Some(latest) = latest_for_invitation(conn, invitation_id)? else {
            return Ok(CodeOutcome::NothingPending);
        };
        // Concurrent guesses wait for each other: at most `max_code_attempts` codes are compared.
        let Some(req) = lock_request(conn, &latest.id)? else {
            return Ok(CodeOutcome::NothingPending);
        };
        let now = db::now();
        match req.status {
            ConsentRequestStatus::Pending => {}
            ConsentRequestStatus::Expired => {
                close_request(conn, &req.id, ConsentRequestStatus::Expired, now)?;
                return Ok(CodeOutcome::Expired);
            }
            ConsentRequestStatus::Locked => return Ok(CodeOutcome::Locked),
            ConsentRequestStatus::Confirmed | ConsentRequestStatus::Cancelled => {
                return Ok(CodeOutcome::NothingPending);
            }
        }
        let typed: String = code.chars().filter(char::is_ascii_digit).collect();
        if typed.len() == 6
            && crate::crypto::constant_time_eq(code_hash(&req.id, &typed).as_bytes(), req.code_hash.as_bytes())
        {
            let confirmed = activate(conn, &req, ConfirmedVia::Code, evidence.clone(), now)?;
            return Ok(if confirmed {
                CodeOutcome::Confirmed
            } else {
                CodeOutcome::NothingPending
            });
        }
        let attempts = req.code_attempts + 1;
        let locked = attempts >= settings.max_code_attempts;
        diesel::update(consent_requests::table.find(&req.id))
            .set((
                consent_requests::code_attempts.eq(attempts),
                consent_requests::status.eq(if locked {
                    ConsentRequestStatus::Locked
                } else {
                    ConsentRequestStatus::Pending
                }),
            ))
            .execute(conn)?;
        Ok(if locked {
            CodeOutcome::Locked
        } else {
            CodeOutcome::Wrong {
                attempts_left: settings.max_code_attempts - attempts,
            }
        })
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendOutcome {
    Sent,
    TooSoon { wait_secs: i64 },
    NoMore,
    NothingPending,
}

/// Sends the code again: at most once a minute and three SMS per request in all.
pub fn resend(
    conn: &mut DbConn,
    settings: &DoiSettings,
    invitation_id: &str,
    company: &str,
) -> Result<ResendOutcome, DoiError> {
    db::write_tx_retrying(conn, 3, |conn| {
        let Some(latest) = latest_for_invitation(conn, invitation_id)? else {
            return Ok(ResendOutcome::NothingPending);
        };
        // The number's limit lock first, as a sign-up takes it, then the request's row.
        LimitScope::resend(&latest).lock(conn)?;
        let Some(req) = lock_request(conn, &latest.id)? else {
            return Ok(ResendOutcome::NothingPending);
        };
        if req.status != ConsentRequestStatus::Pending {
            return Ok(ResendOutcome::NothingPending);
        }
        if req.sms_sent >= settings.max_sends {
            METRICS.limit_hit(LimitKind::Resend.as_str());
            return Ok(ResendOutcome::NoMore);
        }
        let now = db::now();
        if let Some(last) = req.last_sms_at {
            let wait = (last + chrono_duration(settings.resend_after) - now).num_seconds();
            if wait > 0 {
                return Ok(ResendOutcome::TooSoon { wait_secs: wait });
            }
        }
        // A resend is one more code SMS to the number: it counts like a first send.
        match LimitScope::resend(&req).check(conn, &settings.limits) {
            Err(DoiError::Limited(_)) => return Ok(ResendOutcome::NoMore),
            other => other?,
        }
        // The request keeps only a hash of its code, so a resend carries a fresh code and the
        // old one stops working.
        let code = new_code();
        diesel::update(consent_requests::table.find(&req.id))
            .set((
                consent_requests::sms_sent.eq(req.sms_sent + 1),
                consent_requests::last_sms_at.eq(now),
                consent_requests::code_hash.eq(code_hash(&req.id, &code)),
            ))
            .execute(conn)?;
        outbound::queue_with_code(
            conn,
            outbound::NewSms {
                workspace_id: &req.workspace_id,
                consent_request_id: Some(&req.id),
                kind: SmsKind::DoiRequest,
                phone: &req.phone,
                country: &req.country,
                body: &i18n::sms::doi_request(req.locale(), company, outbound::CODE_MASK),
                not_before: now,
            },
            &code,
        )?;
        Ok(ResendOutcome::Sent)
    })
}

/// Makes a pending request an active consent: the subscription, the ledger entry, the funnel
/// count, and the confirmation receipt SMS (a service message, answering the person's own action).
/// Returns false, changing nothing, when the request's status is no longer the one in `req` (a
/// concurrent code check locked it, or a reply confirmed it first).
pub fn activate(
    conn: &mut DbConn,
    req: &ConsentRequest,
    via: ConfirmedVia,
    evidence: serde_json::Value,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let updated = diesel::update(
        consent_requests::table
            .filter(consent_requests::id.eq(&req.id))
            .filter(consent_requests::status.eq(req.status)),
    )
    .set((
        consent_requests::status.eq(ConsentRequestStatus::Confirmed),
        consent_requests::confirmed_at.eq(now),
        consent_requests::confirmed_via.eq(via),
        consent_requests::closed_at.eq(now),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Ok(false);
    }
    let existing: Option<String> = sms_subscriptions::table
        .filter(sms_subscriptions::workspace_id.eq(&req.workspace_id))
        .filter(sms_subscriptions::phone.eq(&req.phone))
        .select(sms_subscriptions::id)
        .first(conn)
        .optional()?;
    match existing {
        Some(id) => {
            diesel::update(sms_subscriptions::table.find(id))
                .set((
                    sms_subscriptions::contact_id.eq(&req.contact_id),
                    sms_subscriptions::status.eq(SubscriptionStatus::Active),
                    sms_subscriptions::consent_request_id.eq(&req.id),
                    sms_subscriptions::categories.eq(&req.categories),
                    sms_subscriptions::confirmed_at.eq(now),
                    sms_subscriptions::withdrawn_at.eq(None::<NaiveDateTime>),
                    sms_subscriptions::withdrawn_via.eq(None::<WithdrawnVia>),
                    sms_subscriptions::last_used_at.eq(now),
                ))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(sms_subscriptions::table)
                .values((
                    sms_subscriptions::id.eq(db::new_id()),
                    sms_subscriptions::workspace_id.eq(&req.workspace_id),
                    sms_subscriptions::contact_id.eq(&req.contact_id),
                    sms_subscriptions::phone.eq(&req.phone),
                    sms_subscriptions::status.eq(SubscriptionStatus::Active),
                    sms_subscriptions::consent_request_id.eq(&req.id),
                    sms_subscriptions::categories.eq(&req.categories),
                    sms_subscriptions::confirmed_at.eq(now),
                    sms_subscriptions::last_used_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    ledger::append(
        conn,
        &req.workspace_id,
        &[NewEntry {
            contact_id: Some(&req.contact_id),
            kind: LedgerKind::SmsConsentConfirmed,
            at: now,
            payload: json!({
                "request_id": req.id,
                "phone": req.phone,
                "via": via,
                "consent_text_id": req.consent_text_id,
                "consent_text_sha256": req.consent_text_sha256,
                "confirmation": evidence,
                "confirmed_at": now.and_utc().to_rfc3339(),
            }),
        }],
    )?;
    crate::contacts::touch(conn, &req.contact_id, now)?;
    crate::webhooks::consent_confirmed(conn, &req.id, now)?;
    if let (Some(invitation), Some(campaign), Some(variant)) = (&req.invitation_id, &req.campaign_id, &req.variant) {
        let n = diesel::update(
            invitations::table
                .filter(invitations::id.eq(invitation))
                .filter(invitations::confirmed_at.is_null()),
        )
        .set(invitations::confirmed_at.eq(now))
        .execute(conn)?;
        if n == 1 {
            let locale: String = invitations::table
                .find(invitation)
                .select(invitations::locale)
                .first(conn)?;
            funnel::increment(conn, campaign, variant, &locale, Metric::Confirmed, now, 1)?;
            // The funnel by path (issue 17).
            let path = match via {
                ConfirmedVia::SmsReply => Metric::ConfirmedFormReply,
                ConfirmedVia::Code => Metric::ConfirmedFormCode,
                ConfirmedVia::TapToText => Metric::ConfirmedTapToText,
            };
            funnel::increment(conn, campaign, variant, &locale, path, now, 1)?;
            if super::reminder::was_reminded(conn, invitation)? {
                funnel::increment(conn, campaign, variant, &locale, Metric::ConfirmedAfterReminder, now, 1)?;
            }
        }
    }
    // The receipt names what they signed up for, how often, what it costs and how to stop, in
    // the language of the consent text they agreed to.
    let info: Option<(String, Option<String>, String)> = match &req.campaign_id {
        Some(campaign) => {
            use crate::db::schema::{campaign_locales, campaigns, consent_texts};
            let text: Option<(String, String)> = consent_texts::table
                .find(&req.consent_text_id)
                .select((consent_texts::company_name, consent_texts::privacy_url))
                .first(conn)
                .optional()?;
            let frequency: Option<Option<String>> = campaign_locales::table
                .filter(campaign_locales::campaign_id.eq(campaign))
                .filter(campaign_locales::locale.eq(&req.locale))
                .select(campaign_locales::frequency)
                .first(conn)
                .optional()?;
            let frequency = match frequency {
                Some(f) => f,
                None => campaigns::table
                    .find(campaign)
                    .select(campaigns::frequency)
                    .first(conn)
                    .optional()?
                    .flatten(),
            };
            text.map(|(company, privacy)| (company, frequency, privacy))
        }
        None => None,
    };
    if let Some((company, frequency, privacy)) = info {
        outbound::queue(
            conn,
            outbound::NewSms {
                workspace_id: &req.workspace_id,
                consent_request_id: Some(&req.id),
                kind: SmsKind::Receipt,
                phone: &req.phone,
                country: &req.country,
                body: &i18n::sms::receipt(req.locale(), &company, frequency.as_deref(), &privacy),
                not_before: now,
            },
        )?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.chars().all(|d| d.is_ascii_digit()))
        );
        assert!(codes.len() > 190);
        assert_ne!(
            code_hash("r1", "123456"),
            code_hash("r2", "123456"),
            "salted per request"
        );
    }
}
