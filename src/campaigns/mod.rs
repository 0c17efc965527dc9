//! Invitation campaigns: an email to a workspace's email subscribers asking for SMS consent.
//!
//! Creating a campaign stores it as a draft. Sending it flips it to `sending` and, in the same
//! transaction, enqueues one `campaign_expand` outbox job; a worker expands the audience into
//! invitations (one per contact, `UNIQUE(campaign_id, contact_id)`) a page at a time, each page
//! enqueuing its `invitation_batch` jobs in the same transaction ([`expand`], whose job handler
//! the outbox workers run). A crash anywhere resumes from the last committed page.

pub mod expand;
pub mod public;
pub mod unsubscribe;

use crate::activity::{self, Action, Actor};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::consent::texts as consent_texts;
use crate::db::schema::{campaign_variants, campaigns};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};
use crate::domain::Locale;
use crate::outbox;

const MAX_VARIANTS: usize = 5;

db_enum! {
    /// `campaigns.status`: written, being expanded into invitations, or fully queued.
    pub enum CampaignStatus {
        Draft = "draft",
        Sending = "sending",
        Sent = "sent",
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    pub name: String,
    pub consent_text_id: String,
    pub subject: String,
    pub intro: String,
    /// How often subscribers will get SMS, shown in the email and on the landing page
    /// (e.g. "at most 4 times a month").
    #[serde(default)]
    pub frequency: Option<String>,
    #[serde(default)]
    pub variants: Vec<VariantRequest>,
    #[serde(default)]
    pub audience: Option<AudienceRequest>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub intro: Option<String>,
    #[serde(default)]
    pub weight: Option<i32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceRequest {
    /// Contacts whose locale (or, without one, the workspace's) is in this list.
    pub locales: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = campaigns)]
pub struct Campaign {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub name: String,
    pub consent_text_id: String,
    pub subject: String,
    pub intro: String,
    pub frequency: Option<String>,
    #[serde(serialize_with = "locales_as_list")]
    pub audience_locales: String,
    pub status: CampaignStatus,
    pub created_at: NaiveDateTime,
    pub send_requested_at: Option<NaiveDateTime>,
    pub expanded_at: Option<NaiveDateTime>,
}

fn locales_as_list<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    raw.split(',').collect::<Vec<_>>().serialize(s)
}

impl Campaign {
    pub fn audience(&self) -> Vec<Locale> {
        self.audience_locales.split(',').filter_map(Locale::parse).collect()
    }
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = campaign_variants)]
pub struct Variant {
    #[serde(skip)]
    pub campaign_id: String,
    pub name: String,
    pub subject: String,
    pub intro: String,
    pub weight: i32,
}

/// A campaign with its variants, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignView {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub variants: Vec<Variant>,
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{0}")]
    Invalid(String),
    #[error("campaign not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CampaignError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn check_text(field: &str, value: &str, max: usize, single_line: bool) -> Result<String, CampaignError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(CampaignError::Invalid(format!("{field} must be 1 to {max} characters")));
    }
    if single_line && value.contains(['\n', '\r']) {
        return Err(CampaignError::Invalid(format!("{field} must be a single line")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(CampaignError::Invalid(format!("{field} contains control characters")));
    }
    // The invitation asks for consent: the same rule as for the consent text applies (nothing
    // may be called free in return for consent).
    if let Some(word) = consent_texts::forbidden_word(value) {
        return Err(CampaignError::Invalid(format!(
            "{field} must not use the word '{word}': nothing may be called free in return for consent"
        )));
    }
    Ok(value.to_owned())
}

/// Validates and stores a draft campaign; `actor` is who the activity log names.
pub fn create(
    conn: &mut DbConn,
    workspace_id: &str,
    req: &CampaignRequest,
    actor: &Actor,
) -> Result<CampaignView, CampaignError> {
    let name = check_text("name", &req.name, 200, true)?;
    let subject = check_text("subject", &req.subject, 200, true)?;
    let intro = check_text("intro", &req.intro, 2000, false)?;
    let frequency = match &req.frequency {
        Some(f) if !f.trim().is_empty() => Some(check_text("frequency", f, 200, true)?),
        _ => None,
    };
    let text = consent_texts::find(conn, workspace_id, &req.consent_text_id)?.ok_or_else(|| {
        CampaignError::Invalid(format!(
            "consent_text_id '{}' is not a consent text of this workspace",
            req.consent_text_id
        ))
    })?;
    let text_locale = Locale::parse(&text.locale).unwrap_or(Locale::En);

    // Lawful by default: a campaign asks in the language of its consent text unless the
    // marketer widens the audience explicitly.
    let audience = match &req.audience {
        None => vec![text_locale],
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

    let id = db::new_id();
    let variants = build_variants(&id, &subject, &intro, &req.variants)?;
    let campaign = Campaign {
        id: id.clone(),
        workspace_id: workspace_id.to_owned(),
        name,
        consent_text_id: text.id,
        subject,
        intro,
        frequency,
        audience_locales: audience.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(","),
        status: CampaignStatus::Draft,
        created_at: db::now(),
        send_requested_at: None,
        expanded_at: None,
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
            ))
            .execute(conn)?;
        for v in &variants {
            diesel::insert_into(campaign_variants::table).values(v).execute(conn)?;
        }
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
    Ok(CampaignView { campaign, variants })
}

fn build_variants(
    campaign_id: &str,
    subject: &str,
    intro: &str,
    reqs: &[VariantRequest],
) -> Result<Vec<Variant>, CampaignError> {
    if reqs.is_empty() {
        return Ok(vec![Variant {
            campaign_id: campaign_id.to_owned(),
            name: "A".into(),
            subject: subject.to_owned(),
            intro: intro.to_owned(),
            weight: 1,
        }]);
    }
    if reqs.len() > MAX_VARIANTS {
        return Err(CampaignError::Invalid(format!("at most {MAX_VARIANTS} variants")));
    }
    let mut out: Vec<Variant> = Vec::with_capacity(reqs.len());
    for (i, v) in reqs.iter().enumerate() {
        let default_name = char::from(b'A' + i as u8).to_string();
        let name = v.name.clone().unwrap_or(default_name).trim().to_owned();
        if name.is_empty()
            || name.len() > 20
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(CampaignError::Invalid(format!(
                "variant name '{name}' must be 1 to 20 letters, digits, '-' or '_'"
            )));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&name)) {
            return Err(CampaignError::Invalid(format!("variant name '{name}' is used twice")));
        }
        let weight = v.weight.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            return Err(CampaignError::Invalid(format!(
                "variant '{name}': weight must be 1 to 1000"
            )));
        }
        let subject = match &v.subject {
            Some(s) => check_text(&format!("variant {name} subject"), s, 200, true)?,
            None => subject.to_owned(),
        };
        let intro = match &v.intro {
            Some(s) => check_text(&format!("variant {name} intro"), s, 2000, false)?,
            None => intro.to_owned(),
        };
        out.push(Variant {
            campaign_id: campaign_id.to_owned(),
            name,
            subject,
            intro,
            weight,
        });
    }
    Ok(out)
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
    let Some(campaign) = campaigns::table
        .filter(campaigns::workspace_id.eq(workspace_id))
        .filter(campaigns::id.eq(id))
        .select(Campaign::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let variants = variants_of(conn, &campaign.id)?;
    Ok(Some(CampaignView { campaign, variants }))
}

pub fn variants_of(conn: &mut DbConn, campaign_id: &str) -> Result<Vec<Variant>, DbError> {
    Ok(campaign_variants::table
        .filter(campaign_variants::campaign_id.eq(campaign_id))
        .order(campaign_variants::name.asc())
        .select(Variant::as_select())
        .load(conn)?)
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
    Ok(campaigns::table
        .filter(campaigns::workspace_id.eq(workspace_id))
        .order(campaigns::created_at.desc())
        .select(Campaign::as_select())
        .load(conn)?)
}

/// Starts sending: the draft becomes `sending` and the expansion job is enqueued in the same
/// transaction. Asking again for a campaign already sending or sent changes nothing.
pub fn request_send(conn: &mut DbConn, workspace_id: &str, id: &str, actor: &Actor) -> Result<Campaign, CampaignError> {
    db::write_tx(conn, |conn| {
        let campaign = campaigns::table
            .filter(campaigns::workspace_id.eq(workspace_id))
            .filter(campaigns::id.eq(id))
            .select(Campaign::as_select())
            .first(conn)
            .optional()?
            .ok_or(CampaignError::NotFound)?;
        if campaign.status != CampaignStatus::Draft {
            return Ok(campaign);
        }
        let now = db::now();
        diesel::update(campaigns::table.find(id))
            .set((
                campaigns::status.eq(CampaignStatus::Sending),
                campaigns::send_requested_at.eq(now),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, Some(workspace_id), expand::CAMPAIGN_EXPAND_JOB, id, now)?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::CampaignSent,
            Some(&campaign.name),
            id,
        )?;
        Ok(Campaign {
            status: CampaignStatus::Sending,
            send_requested_at: Some(now),
            ..campaign
        })
    })
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

    #[test]
    fn variants_default_and_validate() {
        let v = build_variants("c", "Subject", "Intro", &[]).expect("default");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "A");
        let req = |name: &str| VariantRequest {
            name: Some(name.into()),
            subject: None,
            intro: None,
            weight: None,
        };
        assert!(build_variants("c", "S", "I", &[req("A"), req("a")]).is_err());
        assert!(build_variants("c", "S", "I", &[req("bad name")]).is_err());
        let two = build_variants("c", "S", "I", &[req("control"), req("short-subject")]).expect("two");
        assert_eq!(two[1].subject, "S");
    }

    #[test]
    fn free_is_refused_in_the_invitation_too() {
        assert!(check_text("subject", "Get a free gift for signing up", 200, true).is_err());
        assert!(check_text("subject", "Få vores SMS-klub", 200, true).is_ok());
        assert!(check_text("subject", "two\nlines", 200, true).is_err());
    }
}
