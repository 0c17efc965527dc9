//! What the public pages show of a campaign, in one locale. A campaign and its consent texts
//! never change once sending, so the web layer may keep what [`load`] returns in memory for as
//! long as it likes.

use crate::consent::texts;
use crate::db::{DbConn, DbError};
use crate::domain::{CountryCode, Locale};
use crate::workspace;

#[derive(Debug, Clone)]
pub struct PublicCampaign {
    pub campaign_id: String,
    pub workspace_id: String,
    /// The language of everything below.
    pub locale: Locale,
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

/// The country a reader of `locale` most likely has a phone number from.
fn country_of(locale: Locale) -> Option<&'static str> {
    match locale {
        Locale::Da => Some("DK"),
        Locale::Nb => Some("NO"),
        Locale::Sv => Some("SE"),
        Locale::En => None,
    }
}

impl PublicCampaign {
    /// The recipient's country, for their phone number: their language's country when the
    /// workspace allows numbers from it, else the workspace's own country (a Swede on a Danish
    /// shop's list types `070-123 45 67`, which means +46).
    pub fn phone_country(&self) -> String {
        let allowed = |c: &str| self.allowed_countries.is_empty() || self.allowed_countries.iter().any(|a| a == c);
        match country_of(self.locale) {
            Some(c) if allowed(c) => c.to_owned(),
            _ => self.workspace_country.clone(),
        }
    }

    /// `+46 ` for a Swedish reader: the phone field starts with their country's calling code.
    pub fn phone_prefix(&self) -> String {
        CountryCode::parse(&self.phone_country())
            .ok()
            .and_then(|c| c.calling_code())
            .map(|code| format!("+{code} "))
            .unwrap_or_default()
    }
}

/// The campaign in `locale` with its workspace and that locale's consent text; `None` when any
/// of them is gone or the locale is not in the campaign's audience.
pub fn load(conn: &mut DbConn, campaign_id: &str, locale: Locale) -> Result<Option<PublicCampaign>, DbError> {
    let Some(campaign) = super::find_any(conn, campaign_id)? else {
        return Ok(None);
    };
    let Some(ws) = workspace::find(conn, &campaign.workspace_id)? else {
        return Ok(None);
    };
    let messages = super::messages_of(conn, &campaign)?;
    let Some(content) = messages.locale(locale) else {
        return Ok(None);
    };
    let Some(text) = texts::find(conn, &campaign.workspace_id, &content.consent_text_id)? else {
        return Ok(None);
    };
    Ok(Some(PublicCampaign {
        campaign_id: campaign.id,
        workspace_id: campaign.workspace_id,
        locale,
        company: text.company_name.clone(),
        intro: content.intro.clone(),
        frequency: content.frequency.clone(),
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

/// The campaign and locale of an invitation: what a compact link (issue 17) leaves out.
pub fn invitation_context(conn: &mut DbConn, invitation_id: &str) -> Result<Option<(String, String)>, DbError> {
    use crate::db::schema::invitations;
    use diesel::prelude::*;
    Ok(invitations::table
        .find(invitation_id)
        .select((invitations::campaign_id, invitations::locale))
        .first(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(locale: Locale, allowed: &[&str]) -> PublicCampaign {
        PublicCampaign {
            campaign_id: "c".into(),
            workspace_id: "w".into(),
            locale,
            company: "Shop".into(),
            intro: "Hi".into(),
            frequency: None,
            consent_text_id: "t".into(),
            consent_rendered: "text".into(),
            consent_sha256: "0".into(),
            consent_locale: "da".into(),
            categories: vec![],
            privacy_url: "https://shop.example/privacy".into(),
            workspace_country: "DK".into(),
            allowed_countries: allowed.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn the_phone_field_speaks_the_readers_country() {
        assert_eq!(campaign(Locale::Sv, &["DK", "SE"]).phone_prefix(), "+46 ");
        assert_eq!(campaign(Locale::Nb, &["DK", "NO", "SE"]).phone_prefix(), "+47 ");
        assert_eq!(
            campaign(Locale::Sv, &["DK"]).phone_prefix(),
            "+45 ",
            "Sweden not allowed"
        );
        assert_eq!(campaign(Locale::En, &["DK", "SE"]).phone_prefix(), "+45 ");
    }
}
