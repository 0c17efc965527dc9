//! The campaigns behind landing and unsubscribe links, kept in memory with the landing page's
//! first view rendered once per locale: a campaign and its consent text never change once
//! sending, so a landing request needs neither a database read nor a template render.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::campaigns::public::{self, PublicCampaign};
use crate::db::{Db, DbError};
use crate::domain::Locale;
use crate::slots::Slotted;

/// Entries kept before the cache starts over (campaigns are few; this only bounds memory).
const MAX_ENTRIES: usize = 10_000;

/// The landing page's first view with its two per-link values (token, form token) left open.
pub type FirstView = Slotted<2>;

/// The first view with tap-to-text: token, form token, and the code in the link and beside it.
pub type TapView = Slotted<4>;

/// A campaign as its public pages show it.
#[derive(Debug)]
pub struct CachedCampaign {
    pub campaign: PublicCampaign,
    /// Indexed by `Locale as usize` (the order of `Locale::ALL`); `None` inside when the page
    /// could not be split and renders in full every time.
    first_views: [OnceLock<Option<FirstView>>; Locale::ALL.len()],
    /// The same with the tap-to-text offer (issue 17), per locale.
    tap_views: [OnceLock<Option<TapView>>; Locale::ALL.len()],
}

impl CachedCampaign {
    pub fn new(campaign: PublicCampaign) -> Self {
        Self {
            campaign,
            first_views: Default::default(),
            tap_views: Default::default(),
        }
    }

    /// The first view in `locale`, made by `render` on first use.
    pub fn first_view(&self, locale: Locale, render: impl FnOnce() -> Option<FirstView>) -> Option<&FirstView> {
        self.first_views[locale as usize].get_or_init(render).as_ref()
    }

    /// The first view with tap-to-text in `locale`, made by `render` on first use.
    pub fn tap_view(&self, locale: Locale, render: impl FnOnce() -> Option<TapView>) -> Option<&TapView> {
        self.tap_views[locale as usize].get_or_init(render).as_ref()
    }
}

#[derive(Default)]
pub struct CampaignCache {
    entries: RwLock<HashMap<String, Arc<CachedCampaign>>>,
}

impl CampaignCache {
    /// The campaign in `locale`, from memory or else from the database; `None` when it does not
    /// exist (or does not speak `locale`).
    pub async fn get(
        &self,
        db: &Db,
        campaign_id: &str,
        locale: Locale,
    ) -> Result<Option<Arc<CachedCampaign>>, DbError> {
        let key = format!("{campaign_id}/{locale}");
        if let Some(hit) = self.entries.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(Some(hit));
        }
        let id = campaign_id.to_owned();
        let loaded = db.run(move |conn| public::load(conn, &id, locale)).await?;
        let Some(entry) = loaded.map(|c| Arc::new(CachedCampaign::new(c))) else {
            return Ok(None);
        };
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, entry.clone());
        }
        Ok(Some(entry))
    }
}
