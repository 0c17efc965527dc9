//! `GET /l/{token}`: the landing page where a recipient may add SMS consent.
//!
//! GET records a click and shows the form; it never changes consent state (mail scanners
//! prefetch links). The form posts back to the same URL.

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::campaigns::public::PublicCampaign;
use crate::domain::Locale;
use crate::funnel::tracking::{TrackingEvent, TrackingKind};
use crate::i18n::{self, PageStrings};
use crate::links::{LinkClaims, LinkPurpose};
use crate::routes::pages;
use crate::startup::AppState;

pub struct CategoryChoice {
    pub name: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "pages/landing.html")]
pub struct LandingPage<'a> {
    pub t: &'static PageStrings,
    pub company: &'a str,
    pub headline: String,
    pub paragraphs: Vec<&'a str>,
    pub frequency: Option<&'a str>,
    pub errors: Vec<String>,
    pub action: String,
    pub csrf: String,
    pub phone: String,
    pub categories: Vec<CategoryChoice>,
    pub consent_text: &'a str,
    pub consent_sha256: &'a str,
    pub consent_checked: bool,
    pub privacy_url: &'a str,
}

impl<'a> LandingPage<'a> {
    /// The form as first shown: nothing ticked (consent must be an active choice), the phone
    /// field holding the workspace's calling code.
    pub fn new(campaign: &'a PublicCampaign, claims: &LinkClaims, token: &str, csrf: String) -> Self {
        let locale = Locale::parse(&claims.loc).unwrap_or(Locale::En);
        Self {
            t: i18n::page(locale),
            company: &campaign.company,
            headline: i18n::landing_headline(locale, &campaign.company),
            paragraphs: campaign
                .intro
                .split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect(),
            frequency: campaign.frequency.as_deref(),
            errors: Vec::new(),
            action: format!("/l/{token}"),
            csrf,
            phone: campaign.phone_prefix(),
            categories: campaign
                .categories
                .iter()
                .map(|c| CategoryChoice {
                    name: c.clone(),
                    checked: false,
                })
                .collect(),
            consent_text: &campaign.consent_rendered,
            consent_sha256: &campaign.consent_sha256,
            consent_checked: false,
            privacy_url: &campaign.privacy_url,
        }
    }
}

/// Verifies a landing link and loads its campaign; `Err` is the response to send.
pub async fn resolve(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
) -> Result<(LinkClaims, std::sync::Arc<PublicCampaign>), HttpResponse> {
    let claims = match state.keyring.verify(token, LinkPurpose::Landing).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(reason = %e, "landing page with a bad link");
            return Err(pages::not_found(req));
        }
    };
    match state.campaigns.get(&state.db, &claims.cid).await {
        Ok(Some(c)) => Ok((claims, c)),
        Ok(None) => Err(pages::not_found(req)),
        Err(e) => {
            tracing::error!(error = %e, "landing page: database unavailable");
            Err(HttpResponse::ServiceUnavailable().finish())
        }
    }
}

/// Everything under `/l/` (a prefix scope, see `routes::link_scope`).
pub async fn dispatch(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = super::link_token(&req, "/l/").map(str::to_owned) else {
        return pages::not_found(&req);
    };
    match *req.method() {
        Method::GET | Method::HEAD => show(req, state, token).await,
        _ => HttpResponse::MethodNotAllowed().finish(),
    }
}

async fn show(req: HttpRequest, state: web::Data<AppState>, token: String) -> HttpResponse {
    let (claims, campaign) = match resolve(&req, &state, &token).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    state
        .tracking
        .record(TrackingEvent {
            kind: TrackingKind::Click,
            invitation_id: claims.sub.clone(),
            at: crate::db::now(),
            ip: pages::client_ip(&req, state.settings.trust_forwarded_for),
            user_agent: pages::user_agent(&req),
        })
        .await;
    let csrf = state.keyring.csrf_token(&claims.jti).unwrap_or_default();
    pages::render(StatusCode::OK, &LandingPage::new(&campaign, &claims, &token, csrf))
}
