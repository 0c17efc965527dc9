//! What the public pages show of a campaign, cached in memory: a campaign and its consent text
//! never change once sending, so the landing page renders without a database read.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::consent::texts;
use crate::db::{Db, DbError};
use crate::domain::{CountryCode, Locale};
use crate::routes::pages::Prerendered;
use crate::workspace;

/// Entries kept before the cache starts over (campaigns are few; this only bounds memory).
const MAX_ENTRIES: usize = 10_000;

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
    pub categories: Vec<String>,
    pub privacy_url: String,
    pub workspace_country: String,
    pub allowed_countries: Vec<String>,
    /// The landing page's first view, per locale (indexed by `Locale as usize`, the order of
    /// `Locale::ALL`), rendered on first use with slots for the per-link parts; `None` when it
    /// could not be split.
    pub landing_pages: [OnceLock<Option<Prerendered>>; Locale::ALL.len()],
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

#[derive(Default)]
pub struct PublicCampaigns {
    entries: RwLock<HashMap<String, Arc<PublicCampaign>>>,
}

impl PublicCampaigns {
    pub async fn get(&self, db: &Db, campaign_id: &str) -> Result<Option<Arc<PublicCampaign>>, DbError> {
        if let Some(hit) = self.entries.read().ok().and_then(|m| m.get(campaign_id).cloned()) {
            return Ok(Some(hit));
        }
        let id = campaign_id.to_owned();
        let loaded = db
            .run(move |conn| -> Result<Option<PublicCampaign>, DbError> {
                let Some(campaign) = super::find_any(conn, &id)? else {
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
                    privacy_url: text.privacy_url,
                    workspace_country: ws.country,
                    allowed_countries: ws.allowed_countries,
                    landing_pages: Default::default(),
                }))
            })
            .await?;
        let Some(page) = loaded.map(Arc::new) else {
            return Ok(None);
        };
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(campaign_id.to_owned(), page.clone());
        }
        Ok(Some(page))
    }
}
