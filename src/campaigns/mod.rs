//! Invitation campaigns: an email to a workspace's email subscribers asking for SMS consent.
//!
//! Creating a campaign stores it as a draft (editable until sent). Sending it flips it to
//! `sending` — or `scheduled`, with the expansion job due at the chosen time — and, in the same
//! transaction, enqueues one `campaign_expand` outbox job; a worker expands the audience into
//! invitations (one per contact, `UNIQUE(campaign_id, contact_id)`) a page at a time, each page
//! enqueuing its `invitation_batch` jobs in the same transaction ([`expand`], whose job handler
//! the outbox workers run). A crash anywhere resumes from the last committed page. Pausing and
//! cancelling ([`lifecycle`]) only change the status: the sender checks it before each send.
//!
//! Every recipient reads one language: a campaign names a consent text per audience locale, and
//! its subject, intro and frequency are stored per locale ([`LocaleContent`], [`VariantLocale`]).

pub mod expand;
pub mod field;
pub mod follow_up;
pub mod lifecycle;
pub mod public;
pub mod unsubscribe;

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::activity::{self, Action, Actor};
use crate::consent::texts::{self as consent_texts, ConsentTextVersion};
use crate::db::schema::{campaign_locales, campaign_variant_locales, campaign_variants, campaigns};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::domain::Locale;
pub use field::{Field, FieldError, Rule};

const MAX_VARIANTS: usize = 5;

db_enum! {
    /// `campaigns.status`. `sending` covers the expansion and the sends; a campaign reads as
    /// `sent` once expanded with no invitation left queued ([`effective_status`]).
    pub enum CampaignStatus {
        Draft = "draft",
        Scheduled = "scheduled",
        Sending = "sending",
        Paused = "paused",
        Sent = "sent",
        Cancelled = "cancelled",
    }
}

db_enum! {
    /// `invitations.status`: what became of one invitation email.
    pub enum InvitationStatus {
        Queued = "queued",
        Sent = "sent",
        Bounced = "bounced",
        Failed = "failed",
        Skipped = "skipped",
    }
}

/// A text given once (a campaign in one language) or per locale (`{"da": "…", "sv": "…"}`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Localized {
    One(String),
    PerLocale(BTreeMap<String, String>),
}

impl From<&str> for Localized {
    fn from(s: &str) -> Self {
        Self::One(s.to_owned())
    }
}

impl Localized {
    /// The text for each audience locale, checked. A single text serves a one-language audience
    /// only: every recipient reads one language (issue 16, item 10).
    fn resolve(
        &self,
        field: &Field,
        audience: &[Locale],
        max: usize,
        single_line: bool,
    ) -> Result<Vec<(Locale, String)>, CampaignError> {
        match self {
            Self::One(text) => {
                if audience.len() > 1 {
                    let example: Vec<String> = audience.iter().map(|l| format!("\"{l}\": \"…\"")).collect();
                    return Err(CampaignError::Invalid(format!(
                        "{}: the audience reads {}; give one text per locale ({{{}}}) so every recipient reads one language",
                        field.path(None),
                        locale_list(audience),
                        example.join(", ")
                    )));
                }
                let text = check_text(field, None, text, max, single_line)?;
                Ok(audience.iter().map(|l| (*l, text.clone())).collect())
            }
            Self::PerLocale(map) => {
                for key in map.keys() {
                    let locale: Locale = key
                        .parse()
                        .map_err(|e| CampaignError::Invalid(format!("{}: {e}", field.path(None))))?;
                    if !audience.contains(&locale) {
                        return Err(CampaignError::Invalid(format!(
                            "{}.{key}: '{key}' is not in the audience ({})",
                            field.path(None),
                            locale_list(audience)
                        )));
                    }
                }
                audience
                    .iter()
                    .map(|l| {
                        let text = map
                            .iter()
                            .find(|(k, _)| Locale::parse(k) == Some(*l))
                            .map(|(_, v)| v)
                            .ok_or_else(|| {
                                CampaignError::Invalid(format!(
                                    "{} is missing: the audience includes '{l}'",
                                    field.path(Some(*l))
                                ))
                            })?;
                        Ok((*l, check_text(field, Some(*l), text, max, single_line)?))
                    })
                    .collect()
            }
        }
    }
}

fn locale_list(locales: &[Locale]) -> String {
    locales.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    pub name: String,
    /// The consent text of a one-language campaign; [`CampaignRequest::consent_texts`] names one
    /// per locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_text_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_texts: Option<BTreeMap<String, String>>,
    pub subject: Localized,
    pub intro: Localized,
    /// How often subscribers will get SMS, shown in the email and on the landing page
    /// (e.g. "at most 4 times a month").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<Localized>,
    #[serde(default)]
    pub variants: Vec<VariantRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<AudienceRequest>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Localized>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intro: Option<Localized>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceRequest {
    /// Contacts whose locale (or, without one, the workspace's) is in this list.
    pub locales: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = campaigns)]
pub struct Campaign {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub name: String,
    /// The consent text of the first audience locale; [`CampaignView::consent_texts`] has all.
    pub consent_text_id: String,
    pub subject: String,
    pub intro: String,
    pub frequency: Option<String>,
    #[serde(serialize_with = "locales_as_list")]
    #[schema(value_type = Vec<String>)]
    pub audience_locales: String,
    pub status: CampaignStatus,
    pub created_at: NaiveDateTime,
    pub send_requested_at: Option<NaiveDateTime>,
    pub expanded_at: Option<NaiveDateTime>,
    pub scheduled_at: Option<NaiveDateTime>,
    #[serde(skip)]
    pub definition: Option<String>,
}

fn locales_as_list<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    raw.split(',').collect::<Vec<_>>().serialize(s)
}

impl Campaign {
    pub fn audience(&self) -> Vec<Locale> {
        self.audience_locales.split(',').filter_map(Locale::parse).collect()
    }
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, Insertable, utoipa::ToSchema)]
#[diesel(table_name = campaign_variants)]
pub struct Variant {
    #[serde(skip)]
    pub campaign_id: String,
    pub name: String,
    pub subject: String,
    pub intro: String,
    pub weight: i32,
}

/// A campaign's content for one audience locale.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, Insertable, utoipa::ToSchema)]
#[diesel(table_name = campaign_locales)]
pub struct LocaleContent {
    #[serde(skip)]
    pub campaign_id: String,
    pub locale: String,
    pub consent_text_id: String,
    pub subject: String,
    pub intro: String,
    pub frequency: Option<String>,
}

/// A variant's subject and intro for one locale.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, Insertable, utoipa::ToSchema)]
#[diesel(table_name = campaign_variant_locales)]
pub struct VariantLocale {
    #[serde(skip)]
    pub campaign_id: String,
    pub variant: String,
    pub locale: String,
    pub subject: String,
    pub intro: String,
}

/// Everything a campaign says, per locale and variant.
#[derive(Debug, Clone, Default)]
pub struct Messages {
    pub locales: Vec<LocaleContent>,
    pub variants: Vec<VariantLocale>,
}

impl Messages {
    pub fn locale(&self, locale: Locale) -> Option<&LocaleContent> {
        self.locales.iter().find(|l| l.locale == locale.as_str())
    }

    /// The variant's subject and intro in `locale`, or the locale's own.
    pub fn subject_intro(&self, variant: &str, locale: Locale) -> Option<(&str, &str)> {
        self.variants
            .iter()
            .find(|v| v.variant == variant && v.locale == locale.as_str())
            .map(|v| (v.subject.as_str(), v.intro.as_str()))
            .or_else(|| self.locale(locale).map(|l| (l.subject.as_str(), l.intro.as_str())))
    }
}

/// A campaign with its variants, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub variants: Vec<Variant>,
    /// The consent text per audience locale.
    pub consent_texts: BTreeMap<String, String>,
    /// Subject, intro, frequency and consent text per locale.
    pub locales: Vec<LocaleContent>,
    /// Each variant's subject and intro per locale.
    pub variant_locales: Vec<VariantLocale>,
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{0}")]
    Invalid(String),
    /// A field breaks a rule the dashboard's form says in the marketer's language.
    #[error("{0}")]
    Field(FieldError),
    #[error("campaign not found")]
    NotFound,
    /// The campaign's status does not allow this (editing a sent campaign, pausing a draft).
    #[error("{0}")]
    Conflict(String),
    /// Too many of something (test sends) for now.
    #[error("{0}")]
    Limited(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CampaignError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn check_text(
    field: &Field,
    locale: Option<Locale>,
    value: &str,
    max: usize,
    single_line: bool,
) -> Result<String, CampaignError> {
    let broken = |rule| Err(CampaignError::Field(FieldError::new(field.clone(), locale, rule)));
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return broken(Rule::Length { max });
    }
    if single_line && value.contains(['\n', '\r']) {
        return broken(Rule::SingleLine);
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return broken(Rule::ControlCharacters);
    }
    // The invitation asks for consent: the same rule as for the consent text applies (nothing
    // may be called free in return for consent).
    if let Some(word) = consent_texts::forbidden_word(value) {
        return broken(Rule::ForbiddenWord(word));
    }
    Ok(value.to_owned())
}

/// A request checked against the workspace: what [`create`] and [`update`] store.
struct Resolved {
    name: String,
    audience: Vec<Locale>,
    locales: Vec<LocaleContent>,
    variants: Vec<Variant>,
    variant_locales: Vec<VariantLocale>,
    definition: String,
}

/// The consent texts a request names, by locale, each checked to be of this workspace and in
/// the language it is named for.
fn consent_texts_of(
    conn: &mut DbConn,
    workspace_id: &str,
    req: &CampaignRequest,
) -> Result<Vec<(Locale, ConsentTextVersion)>, CampaignError> {
    let mut find = |locale: Option<Locale>, id: &str| {
        consent_texts::find(conn, workspace_id, id)?.ok_or_else(|| {
            CampaignError::Field(FieldError::new(
                Field::ConsentText,
                locale,
                Rule::UnknownConsentText(id.to_owned()),
            ))
        })
    };
    match (&req.consent_text_id, &req.consent_texts) {
        (Some(_), Some(_)) => Err(CampaignError::Invalid(
            "give consent_texts (one per locale) or consent_text_id, not both".into(),
        )),
        (None, None) => Err(CampaignError::Invalid(
            "consent_texts ({\"da\": ID, …}, one per audience locale) or consent_text_id is required".into(),
        )),
        (Some(id), None) => {
            let text = find(None, id)?;
            let locale = Locale::parse(&text.locale).unwrap_or(Locale::En);
            Ok(vec![(locale, text)])
        }
        (None, Some(map)) => {
            let mut out: Vec<(Locale, ConsentTextVersion)> = Vec::new();
            for (key, id) in map {
                let locale: Locale = key
                    .parse()
                    .map_err(|e| CampaignError::Invalid(format!("consent_texts: {e}")))?;
                let text = find(Some(locale), id)?;
                if Locale::parse(&text.locale) != Some(locale) {
                    return Err(CampaignError::Invalid(format!(
                        "consent_texts.{key}: consent text '{id}' is in '{}', not '{key}'",
                        text.locale
                    )));
                }
                out.push((locale, text));
            }
            if out.is_empty() {
                return Err(CampaignError::Field(FieldError::new(
                    Field::Languages,
                    None,
                    Rule::NoLanguage,
                )));
            }
            Ok(out)
        }
    }
}

fn resolve(
    conn: &mut DbConn,
    workspace_id: &str,
    campaign_id: &str,
    req: &CampaignRequest,
) -> Result<Resolved, CampaignError> {
    let name = check_text(&Field::Name, None, &req.name, 200, true)?;
    let texts = consent_texts_of(conn, workspace_id, req)?;
    // Lawful by default: a campaign asks in the languages of its consent texts unless the
    // marketer names the audience explicitly.
    let audience: Vec<Locale> = match &req.audience {
        None => Locale::ALL
            .into_iter()
            .filter(|l| texts.iter().any(|(t, _)| t == l))
            .collect(),
        Some(a) => {
            let mut out: Vec<Locale> = Vec::new();
            for raw in &a.locales {
                let l: Locale = raw.parse().map_err(CampaignError::Invalid)?;
                if !out.contains(&l) {
                    out.push(l);
                }
            }
            if out.is_empty() {
                return Err(CampaignError::Invalid(
                    "audience.locales must name at least one locale".into(),
                ));
            }
            out
        }
    };
    // A consent given on a text the person may not read is weak evidence.
    for l in &audience {
        if !texts.iter().any(|(t, _)| t == l) {
            return Err(CampaignError::Invalid(format!(
                "audience locale '{l}' has no consent text in that language: name one as consent_texts.{l}"
            )));
        }
    }
    for (l, _) in &texts {
        if !audience.contains(l) {
            return Err(CampaignError::Invalid(format!(
                "consent_texts.{l}: '{l}' is not in the audience ({})",
                locale_list(&audience)
            )));
        }
    }
    let subjects = req.subject.resolve(&Field::Subject, &audience, 200, true)?;
    let intros = req.intro.resolve(&Field::Intro, &audience, 2000, false)?;
    let frequencies: Vec<(Locale, Option<String>)> = match &req.frequency {
        Some(Localized::One(f)) if f.trim().is_empty() => audience.iter().map(|l| (*l, None)).collect(),
        Some(f) => f
            .resolve(&Field::Frequency, &audience, 200, true)?
            .into_iter()
            .map(|(l, f)| (l, Some(f)))
            .collect(),
        None => audience.iter().map(|l| (*l, None)).collect(),
    };
    let locales: Vec<LocaleContent> = audience
        .iter()
        .enumerate()
        .map(|(i, l)| LocaleContent {
            campaign_id: campaign_id.to_owned(),
            locale: l.as_str().to_owned(),
            consent_text_id: texts
                .iter()
                .find(|(t, _)| t == l)
                .map(|(_, v)| v.id.clone())
                .unwrap_or_default(),
            subject: subjects[i].1.clone(),
            intro: intros[i].1.clone(),
            frequency: frequencies[i].1.clone(),
        })
        .collect();
    let (variants, variant_locales) = build_variants(campaign_id, &locales, &req.variants)?;
    let definition = serde_json::to_string(req).map_err(|e| CampaignError::Invalid(e.to_string()))?;
    Ok(Resolved {
        name,
        audience,
        locales,
        variants,
        variant_locales,
        definition,
    })
}

fn insert_content(conn: &mut DbConn, r: &Resolved) -> Result<(), CampaignError> {
    for v in &r.variants {
        diesel::insert_into(campaign_variants::table).values(v).execute(conn)?;
    }
    for l in &r.locales {
        diesel::insert_into(campaign_locales::table).values(l).execute(conn)?;
    }
    for v in &r.variant_locales {
        diesel::insert_into(campaign_variant_locales::table)
            .values(v)
            .execute(conn)?;
    }
    Ok(())
}

/// Validates and stores a draft campaign.
pub fn create(
    conn: &mut DbConn,
    workspace_id: &str,
    req: &CampaignRequest,
    actor: &Actor,
) -> Result<CampaignView, CampaignError> {
    let id = db::new_id();
    let r = resolve(conn, workspace_id, &id, req)?;
    let first = &r.locales[0];
    let campaign = Campaign {
        id: id.clone(),
        workspace_id: workspace_id.to_owned(),
        name: r.name.clone(),
        consent_text_id: first.consent_text_id.clone(),
        subject: first.subject.clone(),
        intro: first.intro.clone(),
        frequency: first.frequency.clone(),
        audience_locales: locale_list(&r.audience).replace(", ", ","),
        status: CampaignStatus::Draft,
        created_at: db::now(),
        send_requested_at: None,
        expanded_at: None,
        scheduled_at: None,
        definition: Some(r.definition.clone()),
    };
    db::write_tx(conn, |conn| {
        diesel::insert_into(campaigns::table)
            .values((
                campaigns::id.eq(&campaign.id),
                campaigns::workspace_id.eq(&campaign.workspace_id),
                campaigns::name.eq(&campaign.name),
                campaigns::consent_text_id.eq(&campaign.consent_text_id),
                campaigns::subject.eq(&campaign.subject),
                campaigns::intro.eq(&campaign.intro),
                campaigns::frequency.eq(&campaign.frequency),
                campaigns::audience_locales.eq(&campaign.audience_locales),
                campaigns::status.eq(campaign.status),
                campaigns::created_at.eq(campaign.created_at),
                campaigns::definition.eq(&campaign.definition),
            ))
            .execute(conn)?;
        insert_content(conn, &r)?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::CampaignCreated,
            Some(&campaign.name),
            &campaign.id,
        )?;
        Ok::<_, CampaignError>(())
    })?;
    Ok(view_of(campaign, r.variants, r.locales, r.variant_locales))
}

fn view_of(
    campaign: Campaign,
    variants: Vec<Variant>,
    locales: Vec<LocaleContent>,
    variant_locales: Vec<VariantLocale>,
) -> CampaignView {
    CampaignView {
        consent_texts: locales
            .iter()
            .map(|l| (l.locale.clone(), l.consent_text_id.clone()))
            .collect(),
        campaign,
        variants,
        locales,
        variant_locales,
    }
}

/// The request a draft was saved from: what an edit starts from. Campaigns saved before
/// requests were kept get one rebuilt from their stored content.
pub fn definition(view: &CampaignView) -> CampaignRequest {
    if let Some(req) = view
        .campaign
        .definition
        .as_deref()
        .and_then(|d| serde_json::from_str::<CampaignRequest>(d).ok())
    {
        return req;
    }
    let per_locale = |f: &dyn Fn(&LocaleContent) -> Option<String>| -> Localized {
        Localized::PerLocale(
            view.locales
                .iter()
                .filter_map(|l| Some((l.locale.clone(), f(l)?)))
                .collect(),
        )
    };
    CampaignRequest {
        name: view.campaign.name.clone(),
        consent_text_id: None,
        consent_texts: Some(view.consent_texts.clone()),
        subject: per_locale(&|l| Some(l.subject.clone())),
        intro: per_locale(&|l| Some(l.intro.clone())),
        frequency: view
            .locales
            .iter()
            .any(|l| l.frequency.is_some())
            .then(|| per_locale(&|l| l.frequency.clone())),
        variants: view
            .variants
            .iter()
            .map(|v| VariantRequest {
                name: Some(v.name.clone()),
                subject: None,
                intro: None,
                weight: Some(v.weight),
            })
            .collect(),
        audience: Some(AudienceRequest {
            locales: view.locales.iter().map(|l| l.locale.clone()).collect(),
        }),
    }
}

/// Replaces a draft's content with `req` (checked like a new campaign). Only drafts change:
/// anything else is [`CampaignError::Conflict`].
pub fn update(
    conn: &mut DbConn,
    workspace_id: &str,
    id: &str,
    req: &CampaignRequest,
    actor: &Actor,
) -> Result<CampaignView, CampaignError> {
    let r = resolve(conn, workspace_id, id, req)?;
    db::write_tx(conn, |conn| {
        let status: CampaignStatus = campaigns::table
            .filter(campaigns::workspace_id.eq(workspace_id))
            .filter(campaigns::id.eq(id))
            .select(campaigns::status)
            .first(conn)
            .optional()?
            .ok_or(CampaignError::NotFound)?;
        if status != CampaignStatus::Draft {
            return Err(CampaignError::Conflict(format!(
                "only a draft can be edited; this campaign is {status}"
            )));
        }
        let first = &r.locales[0];
        diesel::update(campaigns::table.find(id))
            .set((
                campaigns::name.eq(&r.name),
                campaigns::consent_text_id.eq(&first.consent_text_id),
                campaigns::subject.eq(&first.subject),
                campaigns::intro.eq(&first.intro),
                campaigns::frequency.eq(&first.frequency),
                campaigns::audience_locales.eq(locale_list(&r.audience).replace(", ", ",")),
                campaigns::definition.eq(&r.definition),
            ))
            .execute(conn)?;
        diesel::delete(campaign_variants::table.filter(campaign_variants::campaign_id.eq(id))).execute(conn)?;
        diesel::delete(campaign_locales::table.filter(campaign_locales::campaign_id.eq(id))).execute(conn)?;
        diesel::delete(campaign_variant_locales::table.filter(campaign_variant_locales::campaign_id.eq(id)))
            .execute(conn)?;
        insert_content(conn, &r)?;
        activity::record(conn, workspace_id, actor, Action::CampaignEdited, Some(&r.name), id)?;
        Ok(())
    })?;
    find(conn, workspace_id, id)?.ok_or(CampaignError::NotFound)
}

/// Resolves each variant for every locale: its own subject and intro where it gives them, the
/// locale's otherwise. The variant rows keep the first locale's.
fn build_variants(
    campaign_id: &str,
    locales: &[LocaleContent],
    reqs: &[VariantRequest],
) -> Result<(Vec<Variant>, Vec<VariantLocale>), CampaignError> {
    let audience: Vec<Locale> = locales.iter().filter_map(|l| Locale::parse(&l.locale)).collect();
    let default = [VariantRequest {
        name: Some("A".into()),
        subject: None,
        intro: None,
        weight: None,
    }];
    let reqs = if reqs.is_empty() { &default[..] } else { reqs };
    if reqs.len() > MAX_VARIANTS {
        return Err(CampaignError::Invalid(format!("at most {MAX_VARIANTS} variants")));
    }
    let mut out: Vec<Variant> = Vec::with_capacity(reqs.len());
    let mut per_locale: Vec<VariantLocale> = Vec::new();
    for (i, v) in reqs.iter().enumerate() {
        let default_name = char::from(b'A' + i as u8).to_string();
        let name = v.name.clone().unwrap_or(default_name).trim().to_owned();
        let broken = |rule| {
            Err(CampaignError::Field(FieldError::new(
                Field::Variant(name.clone()),
                None,
                rule,
            )))
        };
        if name.is_empty()
            || name.len() > 20
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return broken(Rule::VariantName);
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&name)) {
            return broken(Rule::DuplicateVariantName);
        }
        let weight = v.weight.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            return broken(Rule::Weight);
        }
        let subjects = match &v.subject {
            Some(s) => Some(s.resolve(&Field::VariantSubject(name.clone()), &audience, 200, true)?),
            None => None,
        };
        let intros = match &v.intro {
            Some(s) => Some(s.resolve(&Field::VariantIntro(name.clone()), &audience, 2000, false)?),
            None => None,
        };
        for (j, l) in locales.iter().enumerate() {
            per_locale.push(VariantLocale {
                campaign_id: campaign_id.to_owned(),
                variant: name.clone(),
                locale: l.locale.clone(),
                subject: subjects.as_ref().map_or_else(|| l.subject.clone(), |s| s[j].1.clone()),
                intro: intros.as_ref().map_or_else(|| l.intro.clone(), |s| s[j].1.clone()),
            });
        }
        let first = per_locale
            .iter()
            .find(|p| p.variant == name)
            .ok_or_else(|| CampaignError::Invalid("a campaign needs at least one locale".into()))?;
        out.push(Variant {
            campaign_id: campaign_id.to_owned(),
            name: name.clone(),
            subject: first.subject.clone(),
            intro: first.intro.clone(),
            weight,
        });
    }
    Ok((out, per_locale))
}

/// The variant a contact gets: a stable hash of campaign and contact, spread by weight, so
/// re-running the expansion after a crash assigns the same variant.
pub fn assign_variant<'a>(campaign_id: &str, contact_id: &str, variants: &'a [Variant]) -> &'a Variant {
    let total: u64 = variants.iter().map(|v| v.weight.max(1) as u64).sum();
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{campaign_id}:{contact_id}").as_bytes(),
    );
    let mut first8 = [0u8; 8];
    first8.copy_from_slice(&digest.as_ref()[..8]);
    let mut point = u64::from_be_bytes(first8) % total.max(1);
    for v in variants {
        let w = v.weight.max(1) as u64;
        if point < w {
            return v;
        }
        point -= w;
    }
    &variants[variants.len() - 1]
}

pub fn find(conn: &mut DbConn, workspace_id: &str, id: &str) -> Result<Option<CampaignView>, DbError> {
    let Some(mut campaign) = campaigns::table
        .filter(campaigns::workspace_id.eq(workspace_id))
        .filter(campaigns::id.eq(id))
        .select(Campaign::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    campaign.status = effective_status(conn, &campaign)?;
    let variants = variants_of(conn, &campaign.id)?;
    let messages = messages_of(conn, &campaign)?;
    Ok(Some(view_of(campaign, variants, messages.locales, messages.variants)))
}

/// The status as a marketer sees it: `sending` ends (`sent`) once the audience is expanded and
/// no invitation waits in the queue: none of the campaign's invitation jobs is left in the
/// outbox (every queued invitation has one, whose scope is its campaign).
pub fn effective_status(conn: &mut DbConn, campaign: &Campaign) -> Result<CampaignStatus, DbError> {
    use crate::mail::deliver::{INVITATION_BATCH_JOB, INVITATION_EMAIL_JOB};
    if campaign.status != CampaignStatus::Sending || campaign.expanded_at.is_none() {
        return Ok(campaign.status);
    }
    let waiting = crate::outbox::pending_in_scope(conn, &[INVITATION_BATCH_JOB, INVITATION_EMAIL_JOB], &campaign.id)?;
    Ok(if waiting {
        CampaignStatus::Sending
    } else {
        CampaignStatus::Sent
    })
}

pub fn variants_of(conn: &mut DbConn, campaign_id: &str) -> Result<Vec<Variant>, DbError> {
    Ok(campaign_variants::table
        .filter(campaign_variants::campaign_id.eq(campaign_id))
        .order(campaign_variants::name.asc())
        .select(Variant::as_select())
        .load(conn)?)
}

/// A campaign's content per locale and variant. Campaigns stored before content was kept per
/// locale (or by code that writes only the campaign row) read as their one text in every
/// audience locale.
pub fn messages_of(conn: &mut DbConn, campaign: &Campaign) -> Result<Messages, DbError> {
    let locales: Vec<LocaleContent> = campaign_locales::table
        .filter(campaign_locales::campaign_id.eq(&campaign.id))
        .select(LocaleContent::as_select())
        .load(conn)?;
    let variants: Vec<VariantLocale> = campaign_variant_locales::table
        .filter(campaign_variant_locales::campaign_id.eq(&campaign.id))
        .select(VariantLocale::as_select())
        .load(conn)?;
    let audience = campaign.audience();
    let mut ordered: Vec<LocaleContent> = Vec::new();
    for l in &audience {
        match locales.iter().find(|c| c.locale == l.as_str()) {
            Some(c) => ordered.push(c.clone()),
            None => ordered.push(LocaleContent {
                campaign_id: campaign.id.clone(),
                locale: l.as_str().to_owned(),
                consent_text_id: campaign.consent_text_id.clone(),
                subject: campaign.subject.clone(),
                intro: campaign.intro.clone(),
                frequency: campaign.frequency.clone(),
            }),
        }
    }
    let variants = if variants.is_empty() {
        let stored = variants_of(conn, &campaign.id)?;
        stored
            .iter()
            .flat_map(|v| {
                audience.iter().map(move |l| VariantLocale {
                    campaign_id: v.campaign_id.clone(),
                    variant: v.name.clone(),
                    locale: l.as_str().to_owned(),
                    subject: v.subject.clone(),
                    intro: v.intro.clone(),
                })
            })
            .collect()
    } else {
        variants
    };
    Ok(Messages {
        locales: ordered,
        variants,
    })
}

/// Loads a campaign by id alone, for workers and public pages that reached it through a signed
/// link (the link names the campaign; the workspace comes from the row).
pub fn find_any(conn: &mut DbConn, id: &str) -> Result<Option<Campaign>, DbError> {
    Ok(campaigns::table
        .find(id)
        .select(Campaign::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn, workspace_id: &str) -> Result<Vec<Campaign>, DbError> {
    let mut list: Vec<Campaign> = campaigns::table
        .filter(campaigns::workspace_id.eq(workspace_id))
        .order(campaigns::created_at.desc())
        .select(Campaign::as_select())
        .load(conn)?;
    for c in &mut list {
        c.status = effective_status(conn, c)?;
    }
    Ok(list)
}

/// Applies a partial request (the JSON of [`CampaignRequest`], top-level keys replaced, `null`
/// removes) to a draft: the result is checked like a new campaign.
pub fn patch(
    conn: &mut DbConn,
    workspace_id: &str,
    id: &str,
    changes: &serde_json::Map<String, serde_json::Value>,
    actor: &Actor,
) -> Result<CampaignView, CampaignError> {
    let view = find(conn, workspace_id, id)?.ok_or(CampaignError::NotFound)?;
    if view.campaign.status != CampaignStatus::Draft {
        return Err(CampaignError::Conflict(format!(
            "only a draft can be edited; this campaign is {}",
            view.campaign.status
        )));
    }
    let mut merged = serde_json::to_value(definition(&view)).map_err(|e| CampaignError::Invalid(e.to_string()))?;
    if let Some(obj) = merged.as_object_mut() {
        // One way of naming consent texts replaces the other.
        if changes.contains_key("consent_texts") {
            obj.remove("consent_text_id");
        }
        if changes.contains_key("consent_text_id") {
            obj.remove("consent_texts");
        }
        for (k, v) in changes {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    let req: CampaignRequest =
        serde_json::from_value(merged).map_err(|e| CampaignError::Invalid(format!("invalid campaign: {e}")))?;
    update(conn, workspace_id, id, &req, actor)
}

/// How many contacts each audience locale would invite now: contacts of that locale (or, without
/// one, of the workspace's) whose email is not suppressed and who have no active SMS consent
/// with the workspace yet — the same rules as the expansion.
pub fn audience_size(conn: &mut DbConn, campaign: &Campaign) -> Result<BTreeMap<String, i64>, DbError> {
    use crate::consent::SubscriptionStatus;
    use crate::db::schema::{contacts, sms_subscriptions, suppressions};
    use crate::domain::Channel;
    use diesel::dsl::{count_star, exists, not};
    let workspace_locale = crate::workspace::find(conn, &campaign.workspace_id)?
        .map(|w| w.locale)
        .unwrap_or(Locale::En);
    let rows: Vec<(Option<String>, i64)> = contacts::table
        .filter(contacts::workspace_id.eq(&campaign.workspace_id))
        .filter(not(exists(
            suppressions::table
                .filter(suppressions::workspace_id.eq(contacts::workspace_id))
                .filter(suppressions::channel.eq(Channel::Email))
                .filter(suppressions::address.eq(contacts::email_normalized)),
        )))
        .filter(not(exists(
            sms_subscriptions::table
                .filter(sms_subscriptions::contact_id.eq(contacts::id))
                .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active)),
        )))
        .group_by(contacts::locale)
        .select((contacts::locale, count_star()))
        .load(conn)?;
    let audience = campaign.audience();
    let mut sizes: BTreeMap<String, i64> = audience.iter().map(|l| (l.as_str().to_owned(), 0)).collect();
    for (locale, n) in rows {
        let locale = locale.as_deref().and_then(Locale::parse).unwrap_or(workspace_locale);
        if let Some(size) = sizes.get_mut(locale.as_str()) {
            *size += n;
        }
    }
    Ok(sizes)
}

/// Starts sending now; see [`lifecycle::send`] for scheduling.
pub fn request_send(conn: &mut DbConn, workspace_id: &str, id: &str, actor: &Actor) -> Result<Campaign, CampaignError> {
    lifecycle::send(conn, workspace_id, id, None, actor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(name: &str, weight: i32) -> Variant {
        Variant {
            campaign_id: "c".into(),
            name: name.into(),
            subject: "s".into(),
            intro: "i".into(),
            weight,
        }
    }

    #[test]
    fn variant_assignment_is_stable_and_follows_weights() {
        let variants = vec![variant("A", 3), variant("B", 1)];
        let mut counts = [0u32; 2];
        for i in 0..4000 {
            let contact = format!("contact-{i}");
            let v = assign_variant("camp", &contact, &variants);
            assert_eq!(v.name, assign_variant("camp", &contact, &variants).name, "stable");
            counts[usize::from(v.name == "B")] += 1;
        }
        // 3:1 split within a few percent.
        assert!((2850..=3150).contains(&counts[0]), "{counts:?}");
    }

    fn locale(l: &str, subject: &str) -> LocaleContent {
        LocaleContent {
            campaign_id: "c".into(),
            locale: l.into(),
            consent_text_id: "t".into(),
            subject: subject.into(),
            intro: "I".into(),
            frequency: None,
        }
    }

    #[test]
    fn variants_default_and_validate() {
        let da = [locale("da", "S")];
        let (v, _) = build_variants("c", &da, &[]).expect("default");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "A");
        let req = |name: &str| VariantRequest {
            name: Some(name.into()),
            subject: None,
            intro: None,
            weight: None,
        };
        assert!(build_variants("c", &da, &[req("A"), req("a")]).is_err());
        assert!(build_variants("c", &da, &[req("bad name")]).is_err());
        let (two, _) = build_variants("c", &da, &[req("control"), req("short-subject")]).expect("two");
        assert_eq!(two[1].subject, "S");
    }

    #[test]
    fn every_locale_gets_its_own_text() {
        let both = [locale("da", "Dansk emne"), locale("sv", "Svensk rubrik")];
        let mut b = VariantRequest {
            name: Some("B".into()),
            subject: Some(Localized::PerLocale(
                [("da".into(), "B på dansk".into()), ("sv".into(), "B på svenska".into())].into(),
            )),
            intro: None,
            weight: None,
        };
        let (_, per_locale) = build_variants("c", &both, &[b.clone()]).expect("per locale");
        let sv = per_locale.iter().find(|v| v.locale == "sv").expect("sv");
        assert_eq!((sv.subject.as_str(), sv.intro.as_str()), ("B på svenska", "I"));
        // One text for two languages would show one of them to the other's readers.
        b.subject = Some(Localized::One("Only Danish".into()));
        let err = build_variants("c", &both, &[b.clone()]).unwrap_err().to_string();
        assert!(err.contains("one text per locale"), "{err}");
        b.subject = Some(Localized::PerLocale([("da".into(), "Kun dansk".into())].into()));
        let err = build_variants("c", &both, &[b]).unwrap_err().to_string();
        assert!(err.contains("subject.sv is missing"), "{err}");
    }

    #[test]
    fn free_is_refused_in_the_invitation_too() {
        let check = |text| check_text(&Field::Subject, None, text, 200, true);
        assert!(check("Get a free gift for signing up").is_err());
        assert!(check("Få vores SMS-klub").is_ok());
        assert!(check("two\nlines").is_err());
    }
}
