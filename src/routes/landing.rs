//! The landing page, where a recipient may add SMS consent.
//!
//! - `GET /l/{token}` shows the form and records a click; it never changes consent state (mail
//!   scanners prefetch links).
//! - `POST /l/{token}` (phone, consent=yes, categories, csrf) records the request with its
//!   evidence and queues the double-opt-in SMS, then redirects to the code page.
//! - `GET /l/{token}/confirm` shows the code page; `POST …/confirm` (code, csrf) checks a code;
//!   `POST …/resend` (csrf) sends the code again.

pub mod cache;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde_json::json;

use self::cache::{CachedCampaign, FirstView};
use crate::campaigns::public::PublicCampaign;
use crate::consent::doi::{self, CodeOutcome, DoiError, FormError, ResendOutcome, SubmitOutcome};
use crate::domain::{Locale, PhoneError};
use crate::funnel::tracking::{TrackingEvent, TrackingKind};
use crate::i18n::{self, FlowStrings, PageStrings};
use crate::links::{LinkClaims, LinkPurpose};
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages;

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
    /// The phone field's own error, shown next to it (`aria-invalid`, `aria-describedby`).
    pub phone_error: Option<String>,
    pub action: String,
    pub csrf: String,
    pub phone: String,
    pub categories: Vec<CategoryChoice>,
    pub consent_text: &'a str,
    pub consent_sha256: &'a str,
    /// The consent text's language when it is not the page's (then marked with `lang`).
    pub consent_lang: Option<&'a str>,
    pub consent_checked: bool,
    pub privacy_url: &'a str,
}

impl<'a> LandingPage<'a> {
    /// The form as first shown: nothing ticked (consent must be an active choice), the phone
    /// field holding the workspace's calling code.
    pub fn new(campaign: &'a PublicCampaign, claims: &LinkClaims, token: &str, csrf: String) -> Self {
        let locale = locale_of(claims);
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
            phone_error: None,
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
            consent_lang: (campaign.consent_locale != locale.as_str()).then_some(campaign.consent_locale.as_str()),
            consent_checked: false,
            privacy_url: &campaign.privacy_url,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/code.html")]
struct CodePage<'a> {
    t: &'static PageStrings,
    f: &'static FlowStrings,
    company: &'a str,
    intro: String,
    notices: Vec<String>,
    /// Why a code may not come, said to every number alike.
    no_new_code: String,
    action: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    t: &'static PageStrings,
    company: &'a str,
    title: &'a str,
    body: String,
    link: Option<(String, &'a str)>,
}

fn locale_of(claims: &LinkClaims) -> Locale {
    Locale::parse(&claims.loc).unwrap_or(Locale::En)
}

/// Verifies a landing link and finds its campaign.
pub async fn resolve(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
) -> Result<(LinkClaims, Arc<CachedCampaign>), PageError> {
    let claims = match state.keyring.verify(token, LinkPurpose::Landing).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(reason = %e, "landing page with a bad link");
            return Err(PageError::not_found(req));
        }
    };
    let campaign = state
        .campaigns
        .get(&state.db, &claims.cid)
        .await
        .map_err(|e| PageError::public(req, e))?
        .ok_or_else(|| PageError::not_found(req))?;
    Ok((claims, campaign))
}

/// Everything under `/l/` (a prefix scope, see `routes::link_scope`).
pub async fn dispatch(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let Some(rest) = req.path().strip_prefix("/l/") else {
        return Err(PageError::not_found(&req));
    };
    let (token, action) = rest.split_once('/').unwrap_or((rest, ""));
    if token.is_empty() {
        return Err(PageError::not_found(&req));
    }
    let token = token.to_owned();
    let form = || Form::parse(&body);
    match (req.method().clone(), action) {
        (Method::GET | Method::HEAD, "") => show(&req, &state, &token).await,
        (Method::POST, "") => submit(&req, &state, &token, form()).await,
        (Method::GET | Method::HEAD, "confirm") => code_page(&req, &state, &token, Vec::new()).await,
        (Method::POST, "confirm") => confirm(&req, &state, &token, form()).await,
        (Method::POST, "resend") => resend(&req, &state, &token, form()).await,
        (_, "" | "confirm" | "resend") => Ok(HttpResponse::MethodNotAllowed().finish()),
        _ => Err(PageError::not_found(&req)),
    }
}

/// The posted fields (categories may repeat).
struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self {
            fields: url::form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn show(req: &HttpRequest, state: &AppState, token: &str) -> Result<HttpResponse, PageError> {
    let (claims, campaign) = resolve(req, state, token).await?;
    state
        .tracking
        .record(TrackingEvent {
            kind: TrackingKind::Click,
            invitation_id: claims.sub.clone(),
            at: crate::db::now(),
            ip: pages::client_ip(req, state.settings.trust_forwarded_for),
            user_agent: pages::user_agent(req),
        })
        .await;
    let csrf = state.keyring.csrf_token(&claims.jti).unwrap_or_default();
    let page = first_view(&campaign, &claims, token, &csrf).map_err(|e| PageError::public(req, e))?;
    Ok(pages::html(StatusCode::OK, page))
}

/// Placeholders for the per-link parts of the landing page: text HTML escaping leaves as it is.
const TOKEN_SLOT: &str = "optbridge-slot-token-4c1f";
const CSRF_SLOT: &str = "optbridge-slot-csrf-4c1f";

/// The form as first shown through one link. The page is the same for every link of a campaign
/// and locale but for the link's token (in the form's action) and its form token, so it is
/// rendered once per campaign and locale and those two are filled in per request: rendering the
/// 4 KB page was a third of a landing request's CPU (BENCHMARKS.md).
fn first_view(cached: &CachedCampaign, claims: &LinkClaims, token: &str, csrf: &str) -> Result<String, askama::Error> {
    let campaign = &cached.campaign;
    // A verified token is base64url and dots, a form token hex: neither needs escaping. Anything
    // else (it cannot happen) takes the escaping path below.
    let needs_no_escaping = |v: &str| {
        v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if needs_no_escaping(token) && needs_no_escaping(csrf) {
        let prerendered = cached.first_view(locale_of(claims), || {
            let page = LandingPage::new(campaign, claims, TOKEN_SLOT, CSRF_SLOT.to_owned()).render();
            page.ok()
                .map(|page| FirstView::split(&page, &[TOKEN_SLOT, CSRF_SLOT]))
                .filter(FirstView::has_each_slot_once)
        });
        if let Some(prerendered) = prerendered {
            return Ok(prerendered.fill(&[token, csrf]));
        }
    }
    LandingPage::new(campaign, claims, token, csrf.to_owned()).render()
}

/// The form token must be the one issued for this link.
fn csrf_ok(state: &AppState, claims: &LinkClaims, form: &Form) -> bool {
    form.get("csrf")
        .is_some_and(|t| state.keyring.verify_csrf(&claims.jti, t))
}

fn message(
    status: StatusCode,
    claims: &LinkClaims,
    company: &str,
    title: &str,
    body: String,
    link: Option<(String, &str)>,
) -> HttpResponse {
    pages::render(
        status,
        &MessagePage {
            t: i18n::page(locale_of(claims)),
            company,
            title,
            body,
            link,
        },
    )
}

fn form_expired(claims: &LinkClaims, company: &str, token: &str) -> HttpResponse {
    let f = i18n::flow(locale_of(claims));
    message(
        StatusCode::FORBIDDEN,
        claims,
        company,
        f.form_expired_title,
        f.form_expired_body.to_owned(),
        Some((format!("/l/{token}"), f.back_to_form)),
    )
}

fn error_text(f: &FlowStrings, e: &FormError) -> String {
    match e {
        FormError::Phone(PhoneError::Empty) => f.err_phone_empty.to_owned(),
        FormError::Phone(PhoneError::Invalid) => f.err_phone_invalid.to_owned(),
        FormError::Phone(PhoneError::NotMobile) => f.err_phone_not_mobile.to_owned(),
        FormError::Phone(PhoneError::TooLong) => f.err_phone_too_long.to_owned(),
        FormError::Phone(PhoneError::CountryNotAllowed { country }) => {
            f.err_phone_country.replace("{country}", country)
        }
        FormError::ConsentMissing => f.err_consent.to_owned(),
        FormError::UnknownCategory(_) => f.err_category.to_owned(),
    }
}

async fn submit(req: &HttpRequest, state: &AppState, token: &str, form: Form) -> Result<HttpResponse, PageError> {
    let (claims, cached) = resolve(req, state, token).await?;
    let campaign = &cached.campaign;
    if !csrf_ok(state, &claims, &form) {
        tracing::info!("landing form posted without a valid form token");
        return Ok(form_expired(&claims, &campaign.company, token));
    }
    let locale = locale_of(&claims);
    let f = i18n::flow(locale);
    let phone = form.get("phone").unwrap_or_default().to_owned();
    let consent = form.get("consent") == Some("yes");
    let categories = form.all("categories");
    let submission_campaign = cached.clone();
    let (invitation, jti) = (claims.sub.clone(), claims.jti.clone());
    let ip = pages::client_ip(req, state.settings.trust_forwarded_for).map(|ip| ip.to_string());
    let user_agent = pages::user_agent(req);
    let (phone_in, categories_in) = (phone.clone(), categories.clone());
    let doi_settings = state.settings.doi.clone();
    let outcome = state
        .db
        .run(move |conn| {
            doi::submit(
                conn,
                &doi_settings,
                &doi::Submission {
                    campaign: &submission_campaign.campaign,
                    invitation_id: &invitation,
                    token_jti: &jti,
                    locale,
                    phone: &phone_in,
                    consent,
                    categories: categories_in,
                    ip,
                    user_agent,
                },
            )
        })
        .await;
    let res = match outcome {
        Ok(SubmitOutcome::CodeSent { .. }) => {
            state.wake.notify_waiters();
            see_other(&format!("/l/{token}/confirm"))
        }
        Ok(SubmitOutcome::AlreadyPending { .. }) => see_other(&format!("/l/{token}/confirm")),
        Err(DoiError::Form(errors)) => {
            let csrf = state.keyring.csrf_token(&claims.jti).unwrap_or_default();
            let mut page = LandingPage::new(campaign, &claims, token, csrf);
            page.errors = errors.iter().map(|e| error_text(f, e)).collect();
            page.phone_error = errors
                .iter()
                .find(|e| matches!(e, FormError::Phone(_)))
                .map(|e| error_text(f, e));
            page.phone = phone;
            page.consent_checked = consent;
            for c in &mut page.categories {
                c.checked = categories.contains(&c.name);
            }
            pages::render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(DoiError::Limited(_)) => message(
            StatusCode::TOO_MANY_REQUESTS,
            &claims,
            &campaign.company,
            f.limited_title,
            f.limited_body.to_owned(),
            None,
        ),
        Err(e @ (DoiError::Gone | DoiError::Db(_))) => return Err(PageError::public(req, e)),
    };
    Ok(res)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .finish()
}

/// `+45 •••• 3456`: enough for the person to recognize their number, little for anyone else
/// who opens a forwarded link.
fn masked(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits.iter().rev().take(4).rev().collect();
    format!("•••• {tail}")
}

async fn code_page(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
    notices: Vec<String>,
) -> Result<HttpResponse, PageError> {
    let (claims, cached) = resolve(req, state, token).await?;
    let campaign = &cached.campaign;
    let invitation = claims.sub.clone();
    let found = state
        .db
        .run(move |conn| {
            let request = doi::latest_for_invitation(conn, &invitation)?;
            let failed = match &request {
                Some(r) => crate::sms::outbound::latest_doi_failed(conn, &r.id)?,
                None => false,
            };
            Ok::<_, crate::db::DbError>((request, failed))
        })
        .await
        .map_err(|e| PageError::public(req, e))?;
    let (request, sms_failed) = found;
    let f = i18n::flow(locale_of(&claims));
    let back = Some((format!("/l/{token}"), f.back_to_form));
    let Some(request) = request else {
        return Ok(see_other(&format!("/l/{token}")));
    };
    Ok(match request.status {
        doi::ConsentRequestStatus::Pending => {
            let mut notices = notices;
            if sms_failed {
                notices.push(f.sms_failed.to_owned());
            }
            pages::render(
                StatusCode::OK,
                &CodePage {
                    t: i18n::page(locale_of(&claims)),
                    f,
                    company: &campaign.company,
                    intro: f.code_body.replace("{phone}", &masked(&request.phone)),
                    notices,
                    no_new_code: f.no_new_code.replace("{sender}", &state.sms_sender),
                    action: format!("/l/{token}"),
                    csrf: state.keyring.csrf_token(&claims.jti).unwrap_or_default(),
                },
            )
        }
        doi::ConsentRequestStatus::Confirmed => message(
            StatusCode::OK,
            &claims,
            &campaign.company,
            f.confirmed_title,
            f.confirmed_body.to_owned(),
            None,
        ),
        doi::ConsentRequestStatus::Locked => message(
            StatusCode::OK,
            &claims,
            &campaign.company,
            f.locked_title,
            f.locked_body.to_owned(),
            back,
        ),
        doi::ConsentRequestStatus::Expired => message(
            StatusCode::OK,
            &claims,
            &campaign.company,
            f.expired_title,
            f.expired_body.to_owned(),
            back,
        ),
        doi::ConsentRequestStatus::Cancelled => see_other(&format!("/l/{token}")),
    })
}

async fn confirm(req: &HttpRequest, state: &AppState, token: &str, form: Form) -> Result<HttpResponse, PageError> {
    let (claims, cached) = resolve(req, state, token).await?;
    let campaign = &cached.campaign;
    if !csrf_ok(state, &claims, &form) {
        return Ok(form_expired(&claims, &campaign.company, token));
    }
    let f = i18n::flow(locale_of(&claims));
    let code = form.get("code").unwrap_or_default().to_owned();
    let invitation = claims.sub.clone();
    let evidence = json!({
        "page": "landing code form",
        "ip": pages::client_ip(req, state.settings.trust_forwarded_for).map(|ip| ip.to_string()),
        "user_agent": pages::user_agent(req),
        "link_jti": claims.jti,
    });
    let settings = state.settings.doi.clone();
    let outcome = state
        .db
        .run(move |conn| doi::confirm_code(conn, &settings, &invitation, &code, evidence))
        .await
        .map_err(|e| PageError::public(req, e))?;
    let back = Some((format!("/l/{token}"), f.back_to_form));
    Ok(match outcome {
        CodeOutcome::Confirmed => {
            state.wake.notify_waiters();
            message(
                StatusCode::OK,
                &claims,
                &campaign.company,
                f.confirmed_title,
                f.confirmed_body.to_owned(),
                None,
            )
        }
        CodeOutcome::Wrong { attempts_left } => {
            let mut res = code_page(
                req,
                state,
                token,
                vec![f.wrong_code.replace("{n}", &attempts_left.to_string())],
            )
            .await?;
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            res
        }
        CodeOutcome::Locked => message(
            StatusCode::OK,
            &claims,
            &campaign.company,
            f.locked_title,
            f.locked_body.to_owned(),
            back,
        ),
        CodeOutcome::Expired => message(
            StatusCode::OK,
            &claims,
            &campaign.company,
            f.expired_title,
            f.expired_body.to_owned(),
            back,
        ),
        CodeOutcome::NothingPending => see_other(&format!("/l/{token}/confirm")),
    })
}

async fn resend(req: &HttpRequest, state: &AppState, token: &str, form: Form) -> Result<HttpResponse, PageError> {
    let (claims, cached) = resolve(req, state, token).await?;
    let campaign = &cached.campaign;
    if !csrf_ok(state, &claims, &form) {
        return Ok(form_expired(&claims, &campaign.company, token));
    }
    let f = i18n::flow(locale_of(&claims));
    let invitation = claims.sub.clone();
    let settings = state.settings.doi.clone();
    let company = campaign.company.clone();
    let outcome = state
        .db
        .run(move |conn| doi::resend(conn, &settings, &invitation, &company))
        .await
        .map_err(|e| PageError::public(req, e))?;
    let notice = match outcome {
        ResendOutcome::Sent => {
            state.wake.notify_waiters();
            f.resend_sent.to_owned()
        }
        ResendOutcome::TooSoon { wait_secs } => f.resend_wait.replace("{n}", &wait_secs.to_string()),
        ResendOutcome::NoMore => f.resend_no_more.to_owned(),
        ResendOutcome::NothingPending => return Ok(see_other(&format!("/l/{token}/confirm"))),
    };
    code_page(req, state, token, vec![notice]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(intro: &str) -> PublicCampaign {
        PublicCampaign {
            campaign_id: "c1".into(),
            workspace_id: "w1".into(),
            company: "Sko & Co <A/S>".into(),
            intro: intro.into(),
            frequency: Some("2 \"gange\" om måneden".into()),
            consent_text_id: "t1".into(),
            consent_rendered: "Ja tak, Sko & Co må sende mig SMS. Svar STOP for at framelde.".into(),
            consent_sha256: "ab".repeat(32),
            consent_locale: "da".into(),
            categories: vec!["Nyheder".into(), "Tilbud <50%>".into()],
            privacy_url: "https://sko.example/privatliv?a=1&b=2".into(),
            workspace_country: "DK".into(),
            allowed_countries: vec!["DK".into()],
        }
    }

    fn claims(loc: &str) -> LinkClaims {
        LinkClaims {
            iss: "optbridge".into(),
            aud: "landing".into(),
            sub: "inv".into(),
            exp: 0,
            iat: 0,
            jti: "j".into(),
            cid: "c1".into(),
            loc: loc.into(),
        }
    }

    /// WCAG 3.1.2: a Danish consent text on an English page is marked as Danish; an invalid
    /// phone field says so and points at its error.
    #[test]
    fn the_consent_text_language_and_the_phone_error_are_marked() {
        let c = campaign("Intro");
        let en = LandingPage::new(&c, &claims("en"), "t", "x".into())
            .render()
            .expect("renders");
        assert!(en.contains(r#"id="consent-text" lang="da""#), "{en}");
        let da = LandingPage::new(&c, &claims("da"), "t", "x".into())
            .render()
            .expect("renders");
        assert!(da.contains(r#"id="consent-text" data-sha256"#), "{da}");
        assert!(!da.contains("aria-invalid"));
        let mut page = LandingPage::new(&c, &claims("da"), "t", "x".into());
        page.phone_error = Some("Ugyldigt nummer".into());
        let html = page.render().expect("renders");
        assert!(
            html.contains(r#"aria-invalid="true" aria-describedby="phone-error phone-hint""#),
            "{html}"
        );
        assert!(html.contains(r#"<p id="phone-error" class="field-error">Ugyldigt nummer</p>"#));
    }

    #[test]
    fn the_reused_landing_page_is_the_page_rendered_in_full() {
        let full = |c: &CachedCampaign, l: &LinkClaims, token: &str, csrf: &str| {
            LandingPage::new(&c.campaign, l, token, csrf.to_owned())
                .render()
                .expect("renders")
        };
        for intro in [
            "Hør først om <udsalg> & \"nyheder\".\n\nAnden del.",
            &format!("Text with {TOKEN_SLOT}"),
        ] {
            let c = CachedCampaign::new(campaign(intro));
            for loc in ["da", "sv", "en", "nb"] {
                let l = claims(loc);
                for (token, csrf) in [
                    ("eyJh.eyJz.c2ln-_", "0a1b2c"),
                    ("eyJh.b3RoZXI.c2ln", ""),
                    ("a<b", "x\"y"),
                ] {
                    assert_eq!(
                        first_view(&c, &l, token, csrf).expect("renders"),
                        full(&c, &l, token, csrf)
                    );
                }
            }
            // An intro holding a placeholder's text is never split: it renders in full each time.
            let split = c.first_view(Locale::Da, || panic!("initialised")).is_some();
            assert_eq!(split, !intro.contains(TOKEN_SLOT));
        }
    }

    #[test]
    fn phones_are_masked_to_the_last_four_digits() {
        assert_eq!(super::masked("+4520123456"), "•••• 3456");
    }
}
