//! The campaign editor and controls of the dashboard (issue 16, items 4–7): a draft written and
//! edited in a form (languages, a consent text per language, variants added and removed by
//! submit buttons: no JavaScript), and the campaign page's preview, test send, send/schedule,
//! pause, resume and cancel. Every POST needs the editor role and the session's form token.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;

use super::AppSession;
use super::pages::Layout;
use crate::accounts::Role;
use crate::campaigns::{
    self, AudienceRequest, CampaignError, CampaignRequest, CampaignStatus, CampaignView, Field, FieldError, Localized,
    Rule, VariantRequest, lifecycle,
};
use crate::consent::texts::{self, ConsentTextVersion};
use crate::db::{DbConn, DbError};
use crate::domain::Locale;
use crate::i18n::{self, AppStrings, CampaignConsoleStrings};
use crate::links::Keyring;
use crate::mail::preview;
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;

const MAX_VARIANTS: usize = 5;

fn language(l: Locale) -> &'static str {
    match l {
        Locale::Da => "Dansk (da)",
        Locale::Nb => "Norsk (nb)",
        Locale::Sv => "Svenska (sv)",
        Locale::En => "English (en)",
    }
}

/// A rule a field breaks, in the marketer's words: "Emnelinje · Dansk (da): skriv 1 til 200 tegn."
fn field_problem(c: &CampaignConsoleStrings, problem: &FieldError) -> String {
    let mut label = match &problem.field {
        Field::Name => c.name.to_owned(),
        Field::Languages => c.languages.to_owned(),
        Field::ConsentText => c.consent_text.to_owned(),
        Field::Subject => c.subject.to_owned(),
        Field::Intro => c.intro.to_owned(),
        Field::Frequency => c.frequency.to_owned(),
        Field::Variant(name) => format!("{} {name}", c.variant),
        Field::VariantSubject(name) => format!("{} {name} · {}", c.variant, c.variant_subject),
        Field::VariantIntro(name) => format!("{} {name} · {}", c.variant, c.variant_intro),
    };
    if let Some(l) = problem.locale {
        label = format!("{label} · {}", language(l));
    }
    let words = match &problem.rule {
        Rule::Length { max } => c.err_length.replace("{max}", &max.to_string()),
        Rule::SingleLine => c.err_single_line.to_owned(),
        Rule::ControlCharacters => c.err_control.to_owned(),
        Rule::ForbiddenWord(word) => c.err_free_word.replace("{word}", word),
        Rule::UnknownConsentText(_) => c.err_consent_text.to_owned(),
        Rule::NoLanguage => c.err_no_language.to_owned(),
        Rule::VariantName => c.err_variant_name.to_owned(),
        Rule::DuplicateVariantName => c.err_variant_twice.to_owned(),
        Rule::Weight => c.err_weight.to_owned(),
    };
    format!("{label}: {words}")
}

pub fn status_label(c: &CampaignConsoleStrings, s: CampaignStatus) -> &'static str {
    match s {
        CampaignStatus::Draft => c.status_draft,
        CampaignStatus::Scheduled => c.status_scheduled,
        CampaignStatus::Sending => c.status_sending,
        CampaignStatus::Paused => c.status_paused,
        CampaignStatus::Sent => c.status_sent,
        CampaignStatus::Cancelled => c.status_cancelled,
    }
}

/// What the form holds, as typed.
#[derive(Debug, Clone, Default)]
struct Draft {
    name: String,
    locales: Vec<Locale>,
    /// consent text id, subject, intro, frequency per locale.
    texts: HashMap<Locale, [String; 4]>,
    variants: Vec<DraftVariant>,
}

#[derive(Debug, Clone, Default)]
struct DraftVariant {
    name: String,
    weight: String,
    subjects: HashMap<Locale, String>,
    intros: HashMap<Locale, String>,
}

/// What the submit button asked for.
enum FormAction {
    Save,
    AddVariant,
    RemoveVariant(usize),
}

fn parse_form(body: &[u8]) -> (Option<String>, Draft, FormAction) {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut d = Draft {
        name: get("name"),
        ..Draft::default()
    };
    for l in Locale::ALL {
        if fields
            .iter()
            .any(|(n, v)| n == "locales" && Locale::parse(v) == Some(l))
        {
            d.locales.push(l);
        }
        let code = l.as_str();
        d.texts.insert(
            l,
            [
                get(&format!("consent_{code}")),
                get(&format!("subject_{code}")),
                get(&format!("intro_{code}")),
                get(&format!("frequency_{code}")),
            ],
        );
    }
    let count: usize = get("variants").parse().unwrap_or(1).clamp(1, MAX_VARIANTS);
    for i in 0..count {
        let mut v = DraftVariant {
            name: get(&format!("v{i}_name")),
            weight: get(&format!("v{i}_weight")),
            ..DraftVariant::default()
        };
        for l in Locale::ALL {
            v.subjects.insert(l, get(&format!("v{i}_subject_{}", l.as_str())));
            v.intros.insert(l, get(&format!("v{i}_intro_{}", l.as_str())));
        }
        d.variants.push(v);
    }
    let action = match get("action").as_str() {
        "add_variant" => FormAction::AddVariant,
        a => match a.strip_prefix("remove_").and_then(|i| i.parse().ok()) {
            Some(i) => FormAction::RemoveVariant(i),
            None => FormAction::Save,
        },
    };
    let csrf = fields.iter().find(|(n, _)| n == "csrf").map(|(_, v)| v.clone());
    (csrf, d, action)
}

impl Draft {
    /// The API request this form means: texts per chosen language; an empty variant field uses
    /// the campaign's text in that language.
    fn request(&self) -> CampaignRequest {
        let per = |i: usize| -> Localized {
            Localized::PerLocale(
                self.locales
                    .iter()
                    .map(|l| {
                        (
                            l.as_str().to_owned(),
                            self.texts.get(l).map(|t| t[i].clone()).unwrap_or_default(),
                        )
                    })
                    .collect(),
            )
        };
        let any_frequency = self
            .locales
            .iter()
            .any(|l| self.texts.get(l).is_some_and(|t| !t[3].trim().is_empty()));
        let own = |m: &HashMap<Locale, String>, i: usize| -> Option<Localized> {
            if self
                .locales
                .iter()
                .all(|l| m.get(l).is_none_or(|v| v.trim().is_empty()))
            {
                return None;
            }
            Some(Localized::PerLocale(
                self.locales
                    .iter()
                    .map(|l| {
                        let v = m.get(l).filter(|v| !v.trim().is_empty()).cloned();
                        let fallback = self.texts.get(l).map(|t| t[i].clone()).unwrap_or_default();
                        (l.as_str().to_owned(), v.unwrap_or(fallback))
                    })
                    .collect(),
            ))
        };
        CampaignRequest {
            name: self.name.clone(),
            consent_text_id: None,
            consent_texts: Some(
                self.locales
                    .iter()
                    .map(|l| {
                        (
                            l.as_str().to_owned(),
                            self.texts.get(l).map(|t| t[0].clone()).unwrap_or_default(),
                        )
                    })
                    .collect(),
            ),
            subject: per(1),
            intro: per(2),
            frequency: any_frequency.then(|| per(3)),
            variants: self
                .variants
                .iter()
                .map(|v| VariantRequest {
                    name: Some(v.name.clone()).filter(|n| !n.trim().is_empty()),
                    subject: own(&v.subjects, 1),
                    intro: own(&v.intros, 2),
                    weight: v.weight.trim().parse().ok(),
                })
                .collect(),
            audience: Some(AudienceRequest {
                locales: self.locales.iter().map(|l| l.as_str().to_owned()).collect(),
            }),
        }
    }

    /// The form of a saved draft.
    fn of(req: &CampaignRequest, view: &CampaignView) -> Self {
        let locales: Vec<Locale> = view.locales.iter().filter_map(|l| Locale::parse(&l.locale)).collect();
        let mut d = Draft {
            name: req.name.clone(),
            locales: locales.clone(),
            ..Draft::default()
        };
        for l in &view.locales {
            if let Some(locale) = Locale::parse(&l.locale) {
                d.texts.insert(
                    locale,
                    [
                        l.consent_text_id.clone(),
                        l.subject.clone(),
                        l.intro.clone(),
                        l.frequency.clone().unwrap_or_default(),
                    ],
                );
            }
        }
        let text_of = |t: &Option<Localized>, l: Locale| -> String {
            match t {
                None => String::new(),
                Some(Localized::One(s)) => s.clone(),
                Some(Localized::PerLocale(m)) => m.get(l.as_str()).cloned().unwrap_or_default(),
            }
        };
        let variants: Vec<VariantRequest> = if req.variants.is_empty() {
            vec![VariantRequest {
                name: Some("A".into()),
                subject: None,
                intro: None,
                weight: Some(1),
            }]
        } else {
            req.variants.clone()
        };
        for v in &variants {
            d.variants.push(DraftVariant {
                name: v.name.clone().unwrap_or_default(),
                weight: v.weight.unwrap_or(1).to_string(),
                subjects: locales.iter().map(|l| (*l, text_of(&v.subject, *l))).collect(),
                intros: locales.iter().map(|l| (*l, text_of(&v.intro, *l))).collect(),
            });
        }
        d
    }
}

pub struct ConsentOption {
    id: String,
    label: String,
    selected: bool,
}

pub struct LocaleFields {
    code: &'static str,
    label: &'static str,
    checked: bool,
    options: Vec<ConsentOption>,
    subject: String,
    intro: String,
    frequency: String,
}

pub struct VariantText {
    code: &'static str,
    label: &'static str,
    subject: String,
    intro: String,
}

pub struct VariantFields {
    index: usize,
    number: usize,
    name: String,
    weight: String,
    texts: Vec<VariantText>,
}

#[derive(Template)]
#[template(path = "app/campaign_form.html")]
struct CampaignFormPage {
    t: &'static AppStrings,
    c: &'static CampaignConsoleStrings,
    layout: Layout,
    title: &'static str,
    action: String,
    errors: Vec<String>,
    name: String,
    locales: Vec<LocaleFields>,
    variants: Vec<VariantFields>,
    variant_count: usize,
    can_add: bool,
}

fn form_page(
    req: &HttpRequest,
    session: &AppSession,
    title: &'static str,
    action: String,
    draft: &Draft,
    consent_texts: &[ConsentTextVersion],
    errors: Vec<String>,
) -> CampaignFormPage {
    let locales = Locale::ALL
        .into_iter()
        .map(|l| {
            let t = draft.texts.get(&l).cloned().unwrap_or_default();
            LocaleFields {
                code: l.as_str(),
                label: language(l),
                checked: draft.locales.contains(&l),
                options: consent_texts
                    .iter()
                    .filter(|v| Locale::parse(&v.locale) == Some(l))
                    .map(|v| ConsentOption {
                        id: v.id.clone(),
                        label: format!(
                            "v{} · {} · {}",
                            v.version,
                            v.company_name,
                            v.created_at.format("%Y-%m-%d")
                        ),
                        selected: v.id == t[0],
                    })
                    .collect(),
                subject: t[1].clone(),
                intro: t[2].clone(),
                frequency: t[3].clone(),
            }
        })
        .collect();
    let variants: Vec<VariantFields> = draft
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| VariantFields {
            index: i,
            number: i + 1,
            name: v.name.clone(),
            weight: v.weight.clone(),
            texts: Locale::ALL
                .into_iter()
                .map(|l| VariantText {
                    code: l.as_str(),
                    label: language(l),
                    subject: v.subjects.get(&l).cloned().unwrap_or_default(),
                    intro: v.intros.get(&l).cloned().unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    CampaignFormPage {
        t: super::strings(req),
        c: i18n::campaign_console(super::locale(req)),
        layout: Layout::of(session),
        title,
        action,
        errors,
        name: draft.name.clone(),
        locales,
        variant_count: variants.len(),
        can_add: variants.len() < MAX_VARIANTS,
        variants,
    }
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn forbidden_token() -> HttpResponse {
    HttpResponse::Forbidden().body("missing or wrong form token")
}

#[get("/app/campaigns/new")]
pub async fn new_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let ws_locale = session.0.workspace.locale;
    let list = state
        .db
        .run(move |conn| texts::list(conn, &ws))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let mut draft = Draft {
        variants: vec![DraftVariant {
            name: "A".into(),
            weight: "1".into(),
            ..DraftVariant::default()
        }],
        ..Draft::default()
    };
    if list.iter().any(|v| Locale::parse(&v.locale) == Some(ws_locale)) {
        draft.locales.push(ws_locale);
    }
    let c = i18n::campaign_console(super::locale(&req));
    let page = form_page(
        &req,
        &session,
        c.new_campaign,
        "/app/campaigns/new".into(),
        &draft,
        &list,
        Vec::new(),
    );
    Ok(render(StatusCode::OK, &page))
}

/// A submit of the form: a variant added or removed (the form again), or the draft saved.
async fn submit_form(
    req: &HttpRequest,
    state: &AppState,
    session: &AppSession,
    body: &[u8],
    editing: Option<String>,
) -> Result<HttpResponse, PageError> {
    session.require(req, Role::Editor)?;
    let (csrf, mut draft, action) = parse_form(body);
    if !session.csrf_ok(csrf.as_deref()) {
        return Ok(forbidden_token());
    }
    let c = i18n::campaign_console(super::locale(req));
    let (title, form_action) = match &editing {
        Some(id) => (c.edit_campaign, format!("/app/campaigns/{id}/edit")),
        None => (c.new_campaign, "/app/campaigns/new".to_owned()),
    };
    let ws = session.workspace_id().to_owned();
    let (ws2, target) = (ws.clone(), editing.clone());
    let loaded = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            // Another workspace's campaign (or none) is not found, whatever the form says.
            if let Some(id) = &target
                && campaigns::find(conn, &ws2, id)?.is_none()
            {
                return Ok(None);
            }
            Ok(Some(texts::list(conn, &ws2)?))
        })
        .await
        .map_err(|e| PageError::dashboard(req, e))?;
    let list = loaded.ok_or_else(|| PageError::not_found(req))?;
    match action {
        FormAction::AddVariant => {
            if draft.variants.len() < MAX_VARIANTS {
                draft.variants.push(DraftVariant {
                    name: char::from(b'A' + draft.variants.len() as u8).to_string(),
                    weight: "1".into(),
                    ..DraftVariant::default()
                });
            }
            let page = form_page(req, session, title, form_action, &draft, &list, Vec::new());
            return Ok(render(StatusCode::OK, &page));
        }
        FormAction::RemoveVariant(i) => {
            if draft.variants.len() > 1 && i < draft.variants.len() {
                draft.variants.remove(i);
            }
            let page = form_page(req, session, title, form_action, &draft, &list, Vec::new());
            return Ok(render(StatusCode::OK, &page));
        }
        FormAction::Save => {}
    }
    let request = draft.request();
    let actor = session.actor();
    let target = editing.clone();
    let saved = state
        .db
        .run(move |conn| match &target {
            Some(id) => campaigns::update(conn, &ws, id, &request, &actor),
            None => campaigns::create(conn, &ws, &request, &actor),
        })
        .await;
    match saved {
        Ok(view) => Ok(see_other(format!("/app/campaigns/{}", view.campaign.id))),
        Err(CampaignError::NotFound) => Err(PageError::not_found(req)),
        Err(CampaignError::Db(e)) => Err(PageError::dashboard(req, e)),
        Err(CampaignError::Conflict(_)) => {
            let page = form_page(
                req,
                session,
                title,
                form_action,
                &draft,
                &list,
                vec![c.msg_conflict.to_owned()],
            );
            Ok(render(StatusCode::CONFLICT, &page))
        }
        Err(e) => {
            let words = match &e {
                CampaignError::Field(problem) => field_problem(c, problem),
                // A request's shape, which the form does not get wrong: the API's words.
                other => other.to_string(),
            };
            let page = form_page(req, session, title, form_action, &draft, &list, vec![words]);
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

#[post("/app/campaigns/new")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    submit_form(&req, &state, &session, &body, None).await
}

#[get("/app/campaigns/{id}/edit")]
pub async fn edit_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let target = id.clone();
    let loaded = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let Some(view) = campaigns::find(conn, &ws, &target)? else {
                return Ok(None);
            };
            Ok(Some((view, texts::list(conn, &ws)?)))
        })
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let (view, list) = loaded.ok_or_else(|| PageError::not_found(&req))?;
    if view.campaign.status != CampaignStatus::Draft {
        return Ok(see_other(format!("/app/campaigns/{id}")));
    }
    let draft = Draft::of(&campaigns::definition(&view), &view);
    let c = i18n::campaign_console(super::locale(&req));
    let page = form_page(
        &req,
        &session,
        c.edit_campaign,
        format!("/app/campaigns/{id}/edit"),
        &draft,
        &list,
        Vec::new(),
    );
    Ok(render(StatusCode::OK, &page))
}

#[post("/app/campaigns/{id}/edit")]
pub async fn edit(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    submit_form(&req, &state, &session, &body, Some(id.into_inner())).await
}

/// The fields of the campaign page's action forms.
#[derive(Debug, serde::Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    /// Send: a local time (`datetime-local`) in the workspace's country, to schedule.
    at: Option<String>,
    /// Cancel: must be `yes`.
    confirm: Option<String>,
    /// Test send.
    email: Option<String>,
    locale: Option<String>,
    variant: Option<String>,
}

/// Reads a `datetime-local` value as a time in the workspace's country (its time zone, with EU
/// summer time where the country keeps it).
fn local_to_utc(raw: &str, country: &str) -> Option<chrono::NaiveDateTime> {
    let local = chrono::NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let offset = |at: chrono::NaiveDateTime| {
        chrono::Duration::seconds(i64::from(
            crate::sms::quiet_hours::utc_offset(country, at.and_utc()).local_minus_utc(),
        ))
    };
    let first = local - offset(local);
    Some(local - offset(first))
}

/// The time zone a country's dashboard times are in, as a person reads it.
pub fn zone_name(country: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let offset = crate::sms::quiet_hours::utc_offset(country, at);
    format!("{country} (UTC{offset})")
}

/// What a campaign page's action form asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Send,
    Pause,
    Resume,
    Cancel,
    Test,
}

async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: String,
    form: ActionForm,
    what: Act,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Editor)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(forbidden_token());
    }
    let back = |msg: &str| see_other(format!("/app/campaigns/{id}?msg={msg}"));
    if what == Act::Cancel && form.confirm.as_deref() != Some("yes") {
        return Ok(back("invalid"));
    }
    let ws = session.workspace_id().to_owned();
    let country = session.0.workspace.country.clone();
    let actor = session.actor();
    let target = id.clone();
    let at = form.at.as_deref().filter(|a| !a.trim().is_empty());
    let at = match at.map(|a| local_to_utc(a, &country)) {
        Some(None) => return Ok(back("invalid")),
        Some(Some(at)) => Some(at),
        None => None,
    };
    let result = state
        .db
        .run(move |conn: &mut DbConn| -> Result<(), CampaignError> {
            match what {
                Act::Send => lifecycle::send(conn, &ws, &target, at, &actor).map(|_| ()),
                Act::Pause => lifecycle::pause(conn, &ws, &target, &actor).map(|_| ()),
                Act::Resume => lifecycle::resume(conn, &ws, &target, &actor).map(|_| ()),
                Act::Cancel => lifecycle::cancel(conn, &ws, &target, &actor).map(|_| ()),
                Act::Test => preview::request_test(
                    conn,
                    &ws,
                    &target,
                    form.email.as_deref().unwrap_or_default(),
                    form.locale.as_deref(),
                    form.variant.as_deref(),
                    &actor,
                )
                .map(|_| ()),
            }
        })
        .await;
    state.wake.notify_waiters();
    match result {
        Ok(()) if what == Act::Test => Ok(back("test_queued")),
        Ok(()) => Ok(back("done")),
        Err(CampaignError::NotFound) => Err(PageError::not_found(&req)),
        Err(CampaignError::Db(e)) => Err(PageError::dashboard(&req, e)),
        Err(CampaignError::Conflict(_)) => Ok(back("conflict")),
        Err(CampaignError::Limited(_)) => Ok(back("limited")),
        Err(CampaignError::Invalid(_) | CampaignError::Field(_)) => Ok(back("invalid")),
    }
}

#[post("/app/campaigns/{id}/send")]
pub async fn send(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    act(req, state, session, id.into_inner(), form.into_inner(), Act::Send).await
}

#[post("/app/campaigns/{id}/pause")]
pub async fn pause(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    act(req, state, session, id.into_inner(), form.into_inner(), Act::Pause).await
}

#[post("/app/campaigns/{id}/resume")]
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    act(req, state, session, id.into_inner(), form.into_inner(), Act::Resume).await
}

#[post("/app/campaigns/{id}/cancel")]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    act(req, state, session, id.into_inner(), form.into_inner(), Act::Cancel).await
}

#[post("/app/campaigns/{id}/test")]
pub async fn test_send(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    act(req, state, session, id.into_inner(), form.into_inner(), Act::Test).await
}

/// One preview on the campaign page: a locale and variant, its subject, and the HTML shown in a
/// sandboxed `iframe srcdoc` (no script may run in it, nothing is loaded into the page itself).
pub struct PreviewPane {
    pub label: String,
    pub subject: String,
    pub html: String,
}

/// The campaign page's controls: what the status allows, the audience, the previews.
pub struct Console {
    pub c: &'static CampaignConsoleStrings,
    pub status_label: &'static str,
    pub is_draft: bool,
    pub can_pause: bool,
    pub can_resume: bool,
    pub can_cancel: bool,
    pub scheduled_for: Option<String>,
    pub zone: String,
    pub audience: Vec<(&'static str, i64)>,
    pub previews: Vec<PreviewPane>,
    pub locales: Vec<(&'static str, &'static str)>,
    pub variants: Vec<String>,
    pub message: Option<(bool, &'static str)>,
}

/// Loads what the controls show; `msg` is the outcome code an action redirected with.
pub fn console(
    conn: &mut DbConn,
    view: &CampaignView,
    keyring: &Keyring,
    base_url: &url::Url,
    locale: Locale,
    country: &str,
    msg: Option<&str>,
) -> Result<Console, DbError> {
    let c = i18n::campaign_console(locale);
    let status = view.campaign.status;
    let sizes = campaigns::audience_size(conn, &view.campaign)?;
    let audience_locales: Vec<Locale> = view.locales.iter().filter_map(|l| Locale::parse(&l.locale)).collect();
    let mut previews = Vec::new();
    for l in &audience_locales {
        for v in &view.variants {
            if let Ok(email) = preview::render(
                conn,
                keyring,
                base_url,
                view,
                *l,
                &v.name,
                preview::PREVIEW_RECIPIENT,
                "preview",
                "",
            ) {
                previews.push(PreviewPane {
                    label: format!("{} · {} {}", language(*l), c.variant, v.name),
                    subject: email.subject,
                    html: email.html.unwrap_or_default(),
                });
            }
        }
    }
    let now = chrono::Utc::now();
    let message = msg.and_then(|m| match m {
        "conflict" => Some((true, c.msg_conflict)),
        "limited" => Some((true, c.msg_limited)),
        "invalid" => Some((true, c.msg_invalid)),
        "test_queued" => Some((false, c.test_queued)),
        "done" => Some((false, c.msg_done)),
        _ => None,
    });
    Ok(Console {
        c,
        status_label: status_label(c, status),
        is_draft: status == CampaignStatus::Draft,
        can_pause: status == CampaignStatus::Sending,
        can_resume: status == CampaignStatus::Paused,
        can_cancel: matches!(
            status,
            CampaignStatus::Draft | CampaignStatus::Scheduled | CampaignStatus::Sending | CampaignStatus::Paused
        ),
        scheduled_for: view
            .campaign
            .scheduled_at
            .filter(|_| status == CampaignStatus::Scheduled)
            .map(|at| {
                let at = at.and_utc();
                let offset = crate::sms::quiet_hours::utc_offset(country, at);
                format!(
                    "{} ({})",
                    at.with_timezone(&offset).format("%Y-%m-%d %H:%M"),
                    zone_name(country, at)
                )
            }),
        zone: zone_name(country, now),
        audience: audience_locales
            .iter()
            .map(|l| (language(*l), sizes.get(l.as_str()).copied().unwrap_or(0)))
            .collect(),
        previews,
        locales: audience_locales.iter().map(|l| (l.as_str(), language(*l))).collect(),
        variants: view.variants.iter().map(|v| v.name.clone()).collect(),
        message,
    })
}

/// A variant's subject in each language, for the variants table.
pub fn variant_subjects(view: &CampaignView, variant: &str) -> String {
    view.variant_locales
        .iter()
        .filter(|v| v.variant == variant)
        .map(|v| format!("{}: {}", v.locale, v.subject))
        .collect::<Vec<_>>()
        .join(" · ")
}
