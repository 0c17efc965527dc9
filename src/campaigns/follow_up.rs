//! Follow-up waves (issue 17): a draft campaign with its parent's consent text and locales, sent
//! to the parent's recipients who did not open, did not click, or did not sign up.
//!
//! The audience is fixed when the follow-up is sent (its expansion reads the parent's
//! invitations then). Never included: anyone whose email is suppressed (expansion skips them),
//! who unsubscribed or opted out from the parent, whose parent email bounced or was never
//! delivered, or who has an active SMS consent with the workspace already. Each contact gets a
//! follow-up at most once (`UNIQUE(campaign_id, contact_id)` on invitations).

use std::collections::HashSet;

use diesel::dsl::count;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    AudienceRequest, CampaignError, CampaignRequest, CampaignStatus, CampaignView, InvitationStatus, VariantRequest,
};
use crate::consent::SubscriptionStatus;
use crate::db::schema::{campaigns, invitations, sms_subscriptions};
use crate::db::text_enum::db_enum;
use crate::db::{DbConn, DbError};

db_enum! {
    /// `campaigns.audience` of a follow-up: which of the parent's recipients it goes to.
    pub enum FollowUpAudience {
        NotOpened = "not_opened",
        NotClicked = "not_clicked",
        /// Did not sign up on the landing page (no sign-up, pending or confirmed).
        NotSignedUp = "not_signed_up",
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpRequest {
    /// `not_opened`, `not_clicked` or `not_signed_up`.
    pub audience: String,
    /// One text for a one-language parent, or one per locale (`{"da": "…", "sv": "…"}`).
    pub subject: super::Localized,
    pub intro: super::Localized,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub variants: Vec<VariantRequest>,
}

/// Creates the follow-up of `parent_id` as a draft.
pub fn create(
    conn: &mut DbConn,
    workspace_id: &str,
    parent_id: &str,
    req: &FollowUpRequest,
    actor: &crate::activity::Actor,
) -> Result<CampaignView, CampaignError> {
    let audience = FollowUpAudience::parse(&req.audience).ok_or_else(|| {
        CampaignError::Invalid("audience must be one of not_opened, not_clicked, not_signed_up".into())
    })?;
    let parent_view = super::find(conn, workspace_id, parent_id)?.ok_or(CampaignError::NotFound)?;
    let parent = &parent_view.campaign;
    if parent.status == CampaignStatus::Draft {
        return Err(CampaignError::Invalid(
            "the campaign has not been sent: a follow-up needs its recipients".into(),
        ));
    }
    let request = CampaignRequest {
        name: req
            .name
            .clone()
            .unwrap_or_else(|| format!("{} – follow-up ({})", parent.name, audience.as_str())),
        // The parent's consent text and frequency per locale: every recipient keeps reading the
        // text they were shown in their own language.
        consent_text_id: None,
        consent_texts: Some(parent_view.consent_texts.clone()),
        subject: req.subject.clone(),
        intro: req.intro.clone(),
        frequency: {
            let per_locale: std::collections::BTreeMap<String, String> = parent_view
                .locales
                .iter()
                .filter_map(|l| l.frequency.clone().map(|f| (l.locale.clone(), f)))
                .collect();
            if per_locale.is_empty() {
                parent.frequency.clone().map(super::Localized::One)
            } else {
                Some(super::Localized::PerLocale(per_locale))
            }
        },
        variants: req.variants.clone(),
        audience: Some(AudienceRequest {
            locales: parent.audience_locales.split(',').map(str::to_owned).collect(),
        }),
    };
    let view = super::create(conn, workspace_id, &request, actor)?;
    diesel::update(campaigns::table.find(&view.campaign.id))
        .set((
            campaigns::parent_campaign_id.eq(parent_id),
            campaigns::audience.eq(audience),
        ))
        .execute(conn)?;
    Ok(view)
}

/// The parent and audience of a follow-up; `None` for an ordinary campaign.
pub fn spec(conn: &mut DbConn, campaign_id: &str) -> Result<Option<(String, FollowUpAudience)>, DbError> {
    let found: Option<(Option<String>, Option<FollowUpAudience>)> = campaigns::table
        .find(campaign_id)
        .select((campaigns::parent_campaign_id, campaigns::audience))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((Some(parent), Some(audience))) => Some((parent, audience)),
        _ => None,
    })
}

/// Of `contact_ids`, those in the follow-up's audience (see the module comment).
pub fn audience_among(
    conn: &mut DbConn,
    workspace_id: &str,
    parent_id: &str,
    audience: FollowUpAudience,
    contact_ids: &[&str],
) -> Result<HashSet<String>, DbError> {
    let mut query = invitations::table
        .filter(invitations::campaign_id.eq(parent_id))
        .filter(invitations::contact_id.eq_any(contact_ids))
        .filter(invitations::status.eq(InvitationStatus::Sent))
        .filter(invitations::bounced_at.is_null())
        .filter(invitations::unsubscribed_at.is_null())
        .filter(invitations::opted_out_at.is_null())
        .select(invitations::contact_id)
        .into_boxed();
    query = match audience {
        FollowUpAudience::NotOpened => query
            .filter(invitations::opened_at.is_null())
            .filter(invitations::clicked_at.is_null()),
        FollowUpAudience::NotClicked => query.filter(invitations::clicked_at.is_null()),
        FollowUpAudience::NotSignedUp => query
            .filter(invitations::submitted_at.is_null())
            .filter(invitations::confirmed_at.is_null()),
    };
    let mut eligible: HashSet<String> = query.load::<String>(conn)?.into_iter().collect();
    let consented: Vec<String> = sms_subscriptions::table
        .filter(sms_subscriptions::workspace_id.eq(workspace_id))
        .filter(sms_subscriptions::contact_id.eq_any(contact_ids))
        .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active))
        .select(sms_subscriptions::contact_id)
        .load(conn)?;
    for c in consented {
        eligible.remove(&c);
    }
    Ok(eligible)
}

/// A follow-up as its parent's funnel lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FollowUpSummary {
    pub id: String,
    pub name: String,
    pub audience: FollowUpAudience,
    pub status: CampaignStatus,
}

pub fn of_parent(conn: &mut DbConn, workspace_id: &str, parent_id: &str) -> Result<Vec<FollowUpSummary>, DbError> {
    let rows: Vec<(super::Campaign, Option<FollowUpAudience>)> = campaigns::table
        .filter(campaigns::workspace_id.eq(workspace_id))
        .filter(campaigns::parent_campaign_id.eq(parent_id))
        .order(campaigns::created_at.asc())
        .select((super::Campaign::as_select(), campaigns::audience))
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (campaign, audience) in rows {
        let Some(audience) = audience else { continue };
        // The status as the campaign's own page shows it: `sent` once nothing is queued.
        let status = super::effective_status(conn, &campaign)?;
        out.push(FollowUpSummary {
            id: campaign.id,
            name: campaign.name,
            audience,
            status,
        });
    }
    Ok(out)
}

/// A campaign and its follow-ups together, each person counted once however many of the emails
/// they got, opened or answered.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Combined {
    pub recipients: i64,
    pub sent: i64,
    pub opened: i64,
    pub clicked: i64,
    pub submitted: i64,
    pub confirmed: i64,
}

pub fn combined(conn: &mut DbConn, campaign_ids: &[String]) -> Result<Combined, DbError> {
    use invitations::dsl as i;
    let people = || count(i::contact_id).aggregate_distinct();
    let of = || i::invitations.filter(i::campaign_id.eq_any(campaign_ids));
    Ok(Combined {
        recipients: of().select(people()).get_result(conn)?,
        sent: of()
            .filter(i::sent_at.is_not_null())
            .select(people())
            .get_result(conn)?,
        opened: of()
            .filter(i::opened_at.is_not_null())
            .select(people())
            .get_result(conn)?,
        clicked: of()
            .filter(i::clicked_at.is_not_null())
            .select(people())
            .get_result(conn)?,
        submitted: of()
            .filter(i::submitted_at.is_not_null())
            .select(people())
            .get_result(conn)?,
        confirmed: of()
            .filter(i::confirmed_at.is_not_null())
            .select(people())
            .get_result(conn)?,
    })
}

/// A follow-up's line in its parent's funnel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FollowUpFunnel {
    #[serde(flatten)]
    pub follow_up: FollowUpSummary,
    #[serde(flatten)]
    pub counts: crate::funnel::report::Counts,
    #[serde(flatten)]
    pub rates: crate::funnel::report::Rates,
}

/// A campaign's follow-ups with their counts, and all of them with the campaign, each person once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Waves {
    pub follow_ups: Vec<FollowUpFunnel>,
    pub combined: Combined,
}

pub fn waves(conn: &mut DbConn, workspace_id: &str, parent_id: &str) -> Result<Waves, DbError> {
    let mut follow_ups = Vec::new();
    let mut ids = vec![parent_id.to_owned()];
    for summary in of_parent(conn, workspace_id, parent_id)? {
        let Some(view) = super::find(conn, workspace_id, &summary.id)? else {
            continue;
        };
        let order: Vec<String> = view.variants.iter().map(|v| v.name.clone()).collect();
        let report = crate::funnel::report::campaign_funnel(conn, &view.campaign, &order)?;
        ids.push(summary.id.clone());
        follow_ups.push(FollowUpFunnel {
            follow_up: summary,
            counts: report.counts,
            rates: report.rates,
        });
    }
    Ok(Waves {
        follow_ups,
        combined: combined(conn, &ids)?,
    })
}
