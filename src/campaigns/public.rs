//! What the public pages show of a campaign. A campaign and its consent text never change once
//! sending, so the web layer may keep what [`load`] returns in memory for as long as it likes.

use crate::consent::texts;
use crate::db::{DbConn, DbError};
use crate::domain::CountryCode;
use crate::workspace;

#[derive(Debug, Clone)]
pub struct PublicCampaign {
    pub campaign_id: String,
    pub workspace_id: String,
    pub company: String,
    pub intro: String,
    pub frequency: Option<String>,
    pub consent_text_id: String,
    /// The exact consent text shown, and its SHA-256 (the evidence points at both).
    pub consent_rendered: String,
    pub consent_sha256: String,
    /// The consent text's language (the landing page marks it with `lang` when it differs from
    /// the page's, WCAG 3.1.2).
    pub consent_locale: String,
    pub categories: Vec<String>,
    pub privacy_url: String,
    pub workspace_country: String,
    pub allowed_countries: Vec<String>,
}

impl PublicCampaign {
    /// `+45 ` for a Danish workspace: the phone field starts with the country's calling code.
    pub fn phone_prefix(&self) -> String {
        CountryCode::parse(&self.workspace_country)
            .ok()
            .and_then(|c| c.calling_code())
            .map(|code| format!("+{code} "))
            .unwrap_or_default()
    }
}

/// The campaign with its workspace and consent text; `None` when any of them is gone.
pub fn load(conn: &mut DbConn, campaign_id: &str) -> Result<Option<PublicCampaign>, DbError> {
    let Some(campaign) = super::find_any(conn, campaign_id)? else {
        return Ok(None);
    };
    let Some(ws) = workspace::find(conn, &campaign.workspace_id)? else {
        return Ok(None);
    };
    let Some(text) = texts::find(conn, &campaign.workspace_id, &campaign.consent_text_id)? else {
        return Ok(None);
    };
    Ok(Some(PublicCampaign {
        campaign_id: campaign.id,
        workspace_id: campaign.workspace_id,
        company: text.company_name.clone(),
        intro: campaign.intro,
        frequency: campaign.frequency,
        consent_text_id: text.id.clone(),
        categories: text.category_list(),
        consent_rendered: text.rendered,
        consent_sha256: text.sha256,
        consent_locale: text.locale,
        privacy_url: text.privacy_url,
        workspace_country: ws.country,
        allowed_countries: ws.allowed_countries,
    }))
}
