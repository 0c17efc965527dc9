//! `/app/consent-texts/new`: write a consent text, see it as the landing page will show it and
//! the double-opt-in SMS it makes (encoding, segments), and save it as a new immutable version.
//! A text that breaks the seed rules (`consent::texts`) comes back with the input kept, status
//! 422, and each reason next to its field.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::AppSession;
use super::pages::Layout;
use crate::accounts::Role;
use crate::consent::texts::{self, ConsentText, ConsentTextError, ConsentTextRequest, ConsentTextVersion, TextRule};
use crate::domain::Locale;
use crate::i18n::{self, AppStrings, ConsentRuleStrings, MarketerStrings, PageStrings};
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::landing::CategoryChoice;
use crate::routes::pages::render;
use crate::sms::{outbound, segments};

/// The code shown in the SMS preview where the real one goes.
const SAMPLE_CODE: &str = "123456";

/// The fields of the form, as the page names them (`id`s and form names alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormField {
    Locale,
    CompanyName,
    Body,
    Categories,
    PrivacyUrl,
}

/// The broken rules of a refused text, each with the field it belongs to, in the dashboard's
/// language. Reads a list, so that every broken rule is shown at once when validation reports
/// them all.
pub fn field_errors(error: &ConsentTextError, locale: Locale) -> Vec<(FormField, String)> {
    match error {
        ConsentTextError::Rules(problems) => problems
            .iter()
            .map(|p| (field_named(p.field), rule_words(i18n::consent_rules(locale), &p.rule)))
            .collect(),
        ConsentTextError::Invalid(reason) => reason
            .split('\n')
            .filter(|r| !r.trim().is_empty())
            .map(|r| (field_of(r), r.trim().to_owned()))
            .collect(),
        ConsentTextError::Db(_) => Vec::new(),
    }
}

/// A broken rule as the form says it next to its field.
fn rule_words(s: &ConsentRuleStrings, rule: &TextRule) -> String {
    match rule {
        TextRule::Locale => s.locale.to_owned(),
        TextRule::CompanyNameLength => s.company_name_length.to_owned(),
        TextRule::BodyLength { min, max, is } => s
            .body_length
            .replace("{min}", &min.to_string())
            .replace("{max}", &max.to_string())
            .replace("{is}", &is.to_string()),
        TextRule::Invisible(c) => s.invisible.replace("{char}", &c.label()),
        TextRule::NamesCompany(company) => s.names_company.replace("{company}", company),
        TextRule::SaysSms => s.says_sms.to_owned(),
        TextRule::SaysWithdrawal(example) => s.says_withdrawal.replace("{example}", example),
        TextRule::ControlCharacters => s.control.to_owned(),
        TextRule::CategoryLength { max } => s.category_length.replace("{max}", &max.to_string()),
        TextRule::CategoryTwice(category) => s.category_twice.replace("{category}", category),
        TextRule::TooManyCategories { max } => s.too_many_categories.replace("{max}", &max.to_string()),
        TextRule::PrivacyUrl => s.privacy_url.to_owned(),
        TextRule::FreeWord(word) => s.free_word.replace("{word}", word),
    }
}

/// The form field of a request field named by `consent::texts`.
fn field_named(name: &str) -> FormField {
    match name {
        "locale" => FormField::Locale,
        "company_name" => FormField::CompanyName,
        "categories" => FormField::Categories,
        "privacy_url" => FormField::PrivacyUrl,
        _ => FormField::Body,
    }
}

/// Which field a rule's reason is about, by how `consent::texts` words it.
fn field_of(reason: &str) -> FormField {
    let r = reason.to_lowercase();
    if r.starts_with("company_name,") || r.contains("must not use the word") {
        FormField::Body
    } else if r.starts_with("company_name") {
        FormField::CompanyName
    } else if r.contains("categor") {
        FormField::Categories
    } else if r.starts_with("privacy_url") {
        FormField::PrivacyUrl
    } else if r.contains("locale") {
        FormField::Locale
    } else {
        FormField::Body
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TextForm {
    csrf: Option<String>,
    #[serde(default)]
    locale: String,
    #[serde(default)]
    company_name: String,
    #[serde(default)]
    body: String,
    /// One per line.
    #[serde(default)]
    categories: String,
    #[serde(default)]
    privacy_url: String,
    /// `preview` or `save`.
    intent: Option<String>,
}

impl TextForm {
    fn request(&self) -> ConsentTextRequest {
        ConsentTextRequest {
            locale: self.locale.trim().to_owned(),
            company_name: self.company_name.clone(),
            body: self.body.clone(),
            categories: self
                .categories
                .lines()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            privacy_url: self.privacy_url.clone(),
        }
    }

    fn of_version(v: &ConsentTextVersion) -> Self {
        Self {
            locale: v.locale.clone(),
            company_name: v.company_name.clone(),
            body: v.body.clone(),
            categories: v.category_list().join("\n"),
            privacy_url: v.privacy_url.clone(),
            ..Self::default()
        }
    }
}

/// The consent block and the DOI SMS of a valid text, as recipients will get them.
pub struct Preview {
    p: &'static PageStrings,
    lang: &'static str,
    categories: Vec<CategoryChoice>,
    text: String,
    sha256: String,
    sms: String,
    sms_meta: String,
}

impl Preview {
    fn of(s: &MarketerStrings, locale: Locale, company: &str, categories: Vec<String>, rendered: String) -> Self {
        // As `sms/` writes it: the text stored with the code masked, the code put in at sending.
        let stored = i18n::sms::doi_request(locale, company, outbound::CODE_MASK);
        let sms = outbound::text_to_send(&stored, Some(SAMPLE_CODE));
        let count = segments::count(&sms);
        let encoding = match count.encoding {
            segments::Encoding::Gsm7 => "GSM-7",
            segments::Encoding::Ucs2 => "UCS-2",
        };
        Self {
            p: i18n::page(locale),
            lang: locale.as_str(),
            categories: categories
                .into_iter()
                .map(|name| CategoryChoice { name, checked: false })
                .collect(),
            sha256: crate::crypto::sha256_hex(rendered.as_bytes()),
            text: rendered,
            sms_meta: s
                .ct_sms_meta
                .replace("{encoding}", encoding)
                .replace("{units}", &count.units.to_string())
                .replace("{segments}", &count.segments.to_string()),
            sms,
        }
    }
}

pub struct LocaleOption {
    code: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "app/consent_text_new.html")]
struct NewTextPage {
    t: &'static AppStrings,
    s: &'static MarketerStrings,
    layout: Layout,
    form: TextForm,
    locales: Vec<LocaleOption>,
    /// Every broken rule, for the summary at the top.
    errors: Vec<String>,
    err_locale: Option<String>,
    err_company: Option<String>,
    err_body: Option<String>,
    err_categories: Option<String>,
    err_privacy: Option<String>,
    notice: Option<String>,
    preview: Option<Preview>,
}

/// The reasons about one field, joined, or `None`.
fn error_of(errors: &[(FormField, String)], field: FormField) -> Option<String> {
    let reasons: Vec<&str> = errors
        .iter()
        .filter(|(f, _)| *f == field)
        .map(|(_, r)| r.as_str())
        .collect();
    (!reasons.is_empty()).then(|| reasons.join(" "))
}

fn page(
    req: &HttpRequest,
    session: &AppSession,
    form: TextForm,
    errors: Vec<(FormField, String)>,
    notice: Option<String>,
    preview: Option<Preview>,
) -> NewTextPage {
    let current = form.locale.clone();
    NewTextPage {
        t: super::strings(req),
        s: i18n::marketer(super::locale(req)),
        layout: Layout::of(session),
        locales: [Locale::Da, Locale::Nb, Locale::Sv, Locale::En]
            .into_iter()
            .map(|l| LocaleOption {
                code: l.as_str(),
                selected: l.as_str() == current,
            })
            .collect(),
        form,
        err_locale: error_of(&errors, FormField::Locale),
        err_company: error_of(&errors, FormField::CompanyName),
        err_body: error_of(&errors, FormField::Body),
        err_categories: error_of(&errors, FormField::Categories),
        err_privacy: error_of(&errors, FormField::PrivacyUrl),
        errors: errors.into_iter().map(|(_, r)| r).collect(),
        notice,
        preview,
    }
}

#[derive(Deserialize)]
pub struct NewQuery {
    saved: Option<String>,
}

#[get("/app/consent-texts/new")]
pub async fn new_text(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    query: web::Query<NewQuery>,
) -> Result<HttpResponse, PageError> {
    let s = i18n::marketer(super::locale(&req));
    let saved = match query.saved.clone() {
        None => None,
        Some(id) => {
            let ws = session.workspace_id().to_owned();
            state
                .db
                .run(move |conn| texts::find(conn, &ws, &id))
                .await
                .map_err(|e| PageError::dashboard(&req, e))?
        }
    };
    let (form, notice, preview) = match saved {
        Some(v) => {
            let locale = Locale::parse(&v.locale).unwrap_or(Locale::En);
            let preview = Preview::of(s, locale, &v.company_name, v.category_list(), v.rendered.clone());
            let notice = s.ct_saved.replace("{version}", &v.version.to_string());
            (TextForm::of_version(&v), Some(notice), Some(preview))
        }
        None => {
            let workspace = &session.0.workspace;
            let form = TextForm {
                locale: workspace.locale.as_str().to_owned(),
                company_name: workspace.name.clone(),
                ..TextForm::default()
            };
            (form, None, None)
        }
    };
    Ok(render(
        StatusCode::OK,
        &page(&req, &session, form, Vec::new(), notice, preview),
    ))
}

#[post("/app/consent-texts/new")]
pub async fn create_text(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    form: web::Form<TextForm>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Editor)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(HttpResponse::Forbidden().body("missing or wrong form token"));
    }
    let form = form.into_inner();
    let s = i18n::marketer(super::locale(&req));
    let text = match ConsentText::parse(&form.request()) {
        Ok(text) => text,
        Err(e) => {
            let errors = field_errors(&e, super::locale(&req));
            return Ok(render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page(&req, &session, form, errors, None, None),
            ));
        }
    };
    if form.intent.as_deref() != Some("save") {
        let locale = Locale::parse(form.locale.trim()).unwrap_or(Locale::En);
        let request = form.request();
        let categories = request.categories.iter().map(|c| c.trim().to_owned()).collect();
        let preview = Preview::of(s, locale, request.company_name.trim(), categories, text.render());
        return Ok(render(
            StatusCode::OK,
            &page(&req, &session, form, Vec::new(), None, Some(preview)),
        ));
    }
    let ws = session.workspace_id().to_owned();
    let actor = session.actor();
    let (version, created) = state
        .db
        .run(move |conn| {
            // The version and its activity entry, in one transaction.
            texts::create_version(conn, &ws, &text, &actor)
        })
        .await
        .map_err(|e| match e {
            ConsentTextError::Db(e) => PageError::dashboard(&req, e),
            other => PageError::dashboard(&req, crate::routes::error::PageFailure::Internal(other.to_string())),
        })?;
    if !created {
        // Identical to a stored version: nothing new, said on the form with the input kept.
        let locale = Locale::parse(&version.locale).unwrap_or(Locale::En);
        let preview = Preview::of(
            s,
            locale,
            &version.company_name,
            version.category_list(),
            version.rendered.clone(),
        );
        let notice = s.ct_unchanged.replace("{version}", &version.version.to_string());
        return Ok(render(
            StatusCode::OK,
            &page(&req, &session, form, Vec::new(), Some(notice), Some(preview)),
        ));
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/app/consent-texts/new?saved={}", version.id)))
        .finish())
}
