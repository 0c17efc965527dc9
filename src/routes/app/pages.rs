//! The dashboard's pages. Handlers load what a page shows (always scoped by the session's
//! workspace) and hand preformatted values to the templates.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;

use super::AppSession;
use super::charts::{self, Line, Stage};
use crate::accounts::Role;
use crate::campaigns::{self, Campaign};
use crate::consent::history::{self, ContactConsent};
use crate::consent::texts::{self, ConsentTextVersion};
use crate::contacts::Contact;
use crate::db::schema::{contacts, suppressions};
use crate::db::{DbConn, DbError};
use crate::domain::Locale;
use crate::funnel::report::{self, AbTest, Breakdown, FunnelReport};
use crate::i18n::AppStrings;
use crate::routes::AppState;
use crate::routes::error::PageError;
use crate::routes::pages::render;

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// What every dashboard page shows around its content.
pub struct Layout {
    pub workspace: String,
    pub user: String,
    pub csrf: String,
    /// Owners see the users page in the navigation.
    pub owner: bool,
}

impl Layout {
    pub(super) fn of(session: &AppSession) -> Self {
        Self {
            workspace: session.0.workspace.name.clone(),
            user: session.0.email.clone(),
            csrf: session.0.csrf.clone(),
            owner: session.0.role == Role::Owner,
        }
    }

    /// The words of the users and activity pages in the page's language (`t.lang`).
    pub fn team(&self, lang: &str) -> &'static crate::i18n::team::TeamStrings {
        crate::i18n::team::strings(Locale::parse(lang).unwrap_or(Locale::En))
    }
}

pub struct CampaignRow {
    id: String,
    name: String,
    status: crate::campaigns::CampaignStatus,
    /// The status in the page's language.
    status_label: &'static str,
    created: String,
    recipients: i64,
    sent: i64,
    open_rate: String,
    confirmed: i64,
    conversion: String,
}

#[derive(Template)]
#[template(path = "app/campaigns.html")]
struct CampaignsPage {
    t: &'static AppStrings,
    layout: Layout,
    rows: Vec<CampaignRow>,
    c: &'static crate::i18n::CampaignConsoleStrings,
}

fn reports(conn: &mut DbConn, workspace_id: &str) -> Result<Vec<(Campaign, FunnelReport)>, DbError> {
    let mut out = Vec::new();
    for c in campaigns::list(conn, workspace_id)? {
        let order: Vec<String> = campaigns::variants_of(conn, &c.id)?
            .into_iter()
            .map(|v| v.name)
            .collect();
        let r = report::campaign_funnel(conn, &c, &order)?;
        out.push((c, r));
    }
    Ok(out)
}

#[get("/app")]
pub async fn campaigns_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let loaded = state
        .db
        .run(move |conn| reports(conn, &ws))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let console = crate::i18n::campaign_console(super::locale(&req));
    let rows = loaded
        .into_iter()
        .map(|(c, r)| CampaignRow {
            id: c.id,
            name: c.name,
            status: c.status,
            status_label: super::campaigns::status_label(console, c.status),
            created: c.created_at.format("%Y-%m-%d").to_string(),
            recipients: r.counts.recipients,
            sent: r.counts.sent,
            open_rate: pct(r.rates.open_rate),
            confirmed: r.counts.confirmed,
            conversion: pct(r.rates.conversion_rate),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &CampaignsPage {
            t: super::strings(&req),
            layout: Layout::of(&session),
            rows,
            c: crate::i18n::campaign_console(super::locale(&req)),
        },
    ))
}

pub struct RateRow {
    label: &'static str,
    value: String,
    benchmark: String,
}

pub struct BreakdownRow {
    key: String,
    sent: i64,
    opened: i64,
    clicked: i64,
    submitted: i64,
    confirmed: i64,
    conversion: String,
    /// A variant's subject per language, next to its figures.
    subject: String,
}

impl From<&Breakdown> for BreakdownRow {
    fn from(b: &Breakdown) -> Self {
        Self {
            key: b.key.clone(),
            sent: b.counts.sent,
            opened: b.counts.opened,
            clicked: b.counts.clicked,
            submitted: b.counts.submitted,
            confirmed: b.counts.confirmed,
            conversion: pct(b.rates.conversion_rate),
            subject: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "app/campaign.html")]
struct CampaignPage {
    t: &'static AppStrings,
    layout: Layout,
    id: String,
    name: String,
    status: crate::campaigns::CampaignStatus,
    counts: Vec<(&'static str, i64)>,
    rates: Vec<RateRow>,
    funnel_svg: String,
    timeline_svg: String,
    variants: Vec<BreakdownRow>,
    verdicts: Vec<String>,
    locales: Vec<BreakdownRow>,
    /// Preview, test send, send/schedule, pause, resume, cancel, audience.
    console: super::campaigns::Console,
    /// Issue 17: confirmations by path (chart with KAiKU beside), follow-up waves.
    c17: &'static crate::i18n::ConversionAppStrings,
    paths_svg: String,
    waves: Vec<WaveRow>,
    combined: crate::campaigns::follow_up::Combined,
}

#[derive(Deserialize)]
pub struct CampaignQuery {
    msg: Option<String>,
}

/// A follow-up wave on its parent's page.
pub struct WaveRow {
    id: String,
    name: String,
    audience: &'static str,
    status: crate::campaigns::CampaignStatus,
    /// The status in the page's language.
    status_label: &'static str,
    sent: i64,
    opened: i64,
    confirmed: i64,
    conversion: String,
}

fn verdict(t: &AppStrings, ab: &AbTest, sent: (i64, i64)) -> String {
    if sent.0 < 30 || sent.1 < 30 {
        return t.ab_too_little.to_owned();
    }
    let (better, worse) = if ab.difference_pp >= 0.0 {
        (&ab.variant, &ab.control)
    } else {
        (&ab.control, &ab.variant)
    };
    let template = if ab.significant { t.ab_significant } else { t.ab_not_yet };
    template
        .replace("{better}", better)
        .replace("{worse}", worse)
        .replace("{pp}", &format!("{:.1}", ab.difference_pp.abs()))
        .replace("{conf}", &format!("{:.0}", ab.confidence * 100.0))
}

fn t_sent(req: &HttpRequest) -> &'static str {
    super::strings(req).col_sent
}

#[get("/app/campaigns/{id}")]
pub async fn campaign_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    query: web::Query<CampaignQuery>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let (keyring, base_url) = (state.keyring.clone(), state.settings.base_url.clone());
    let (locale, country) = (super::locale(&req), session.0.workspace.country.clone());
    let msg = query.into_inner().msg;
    let loaded = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let Some(view) = campaigns::find(conn, &ws, &id)? else {
                return Ok(None);
            };
            let order: Vec<String> = view.variants.iter().map(|v| v.name.clone()).collect();
            let report = report::campaign_funnel(conn, &view.campaign, &order)?;
            let waves = campaigns::follow_up::waves(conn, &view.campaign.workspace_id, &view.campaign.id)?;
            let console =
                super::campaigns::console(conn, &view, &keyring, &base_url, locale, &country, msg.as_deref())?;
            let subjects: Vec<(String, String)> = view
                .variants
                .iter()
                .map(|v| (v.name.clone(), super::campaigns::variant_subjects(&view, &v.name)))
                .collect();
            Ok(Some((report, console, subjects, waves)))
        })
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let (r, console, subjects, waves) = loaded.ok_or_else(|| PageError::not_found(&req))?;
    let c17 = crate::i18n::conversion_app(super::locale(&req));
    let paths = &r.counts.confirmed_by_path;
    let path_stages = [
        Stage {
            label: t_sent(&req),
            count: r.counts.sent,
            benchmark: None,
        },
        Stage {
            label: super::strings(&req).col_confirmed,
            count: r.counts.confirmed,
            benchmark: Some(r.benchmark.conversion_rate),
        },
        Stage {
            label: c17.path_form_reply,
            count: paths.form_reply,
            benchmark: None,
        },
        Stage {
            label: c17.path_form_code,
            count: paths.form_code,
            benchmark: None,
        },
        Stage {
            label: c17.path_tap_to_text,
            count: paths.tap_to_text,
            benchmark: None,
        },
        Stage {
            label: c17.reminded,
            count: r.counts.reminded,
            benchmark: None,
        },
        Stage {
            label: c17.path_after_reminder,
            count: paths.after_reminder,
            benchmark: None,
        },
    ];
    let paths_svg = charts::funnel_bars(
        charts::ChartWords::of(super::locale(&req)),
        c17.paths_title,
        &path_stages,
        Some(super::strings(&req).benchmark),
    );
    let wave_rows = waves
        .follow_ups
        .iter()
        .map(|w| WaveRow {
            id: w.follow_up.id.clone(),
            name: w.follow_up.name.clone(),
            audience: w.follow_up.audience.as_str(),
            status: w.follow_up.status,
            status_label: super::campaigns::status_label(console.c, w.follow_up.status),
            sent: w.counts.sent,
            opened: w.counts.opened,
            confirmed: w.counts.confirmed,
            conversion: pct(w.rates.conversion_rate),
        })
        .collect();
    let t = super::strings(&req);
    let c = &r.counts;
    let b = &r.benchmark;
    let stages = [
        Stage {
            label: t.col_sent,
            count: c.sent,
            benchmark: None,
        },
        Stage {
            label: t.col_delivered,
            count: c.delivered,
            benchmark: None,
        },
        Stage {
            label: t.col_opened,
            count: c.opened,
            benchmark: Some(b.open_rate),
        },
        Stage {
            label: t.col_clicked,
            count: c.clicked,
            benchmark: None,
        },
        Stage {
            label: t.col_submitted,
            count: c.submitted,
            benchmark: None,
        },
        Stage {
            label: t.col_confirmed,
            count: c.confirmed,
            benchmark: Some(b.conversion_rate),
        },
    ];
    let funnel_svg = charts::funnel_bars(
        charts::ChartWords::of(super::locale(&req)),
        t.funnel_title,
        &stages,
        Some(t.benchmark),
    );
    let hourly_until = r.series.hourly_until;
    let x_labels: Vec<String> = r
        .series
        .points
        .iter()
        .map(|p| {
            if hourly_until.is_some_and(|h| p.at < h) {
                p.at.format("%d/%m %H:00").to_string()
            } else {
                p.at.format("%d/%m").to_string()
            }
        })
        .collect();
    let column = |f: fn(&report::SeriesPoint) -> i64| r.series.points.iter().map(f).collect::<Vec<i64>>();
    let (sent, opened, clicked, confirmed) = (
        column(|p| p.sent),
        column(|p| p.opened),
        column(|p| p.clicked),
        column(|p| p.confirmed),
    );
    let timeline_svg = charts::time_series(
        charts::ChartWords::of(super::locale(&req)),
        t.timeline_title,
        &x_labels,
        &[
            Line {
                label: t.col_sent,
                points: &sent,
            },
            Line {
                label: t.col_opened,
                points: &opened,
            },
            Line {
                label: t.col_clicked,
                points: &clicked,
            },
            Line {
                label: t.col_confirmed,
                points: &confirmed,
            },
        ],
        t.timeline_empty,
    );
    let verdicts = r
        .ab_tests
        .iter()
        .map(|ab| {
            let sent_of = |key: &str| r.variants.iter().find(|v| v.key == key).map_or(0, |v| v.counts.sent);
            verdict(t, ab, (sent_of(&ab.control), sent_of(&ab.variant)))
        })
        .collect();
    let page = CampaignPage {
        t,
        layout: Layout::of(&session),
        id: r.campaign_id.clone(),
        name: r.name.clone(),
        status: r.status,
        counts: vec![
            (t.col_recipients, c.recipients),
            (t.col_sent, c.sent),
            (t.col_delivered, c.delivered),
            (t.col_bounced, c.bounced),
            (t.col_opened, c.opened),
            (t.col_opened_human, c.opened_human),
            (t.col_clicked, c.clicked),
            (t.col_submitted, c.submitted),
            (t.col_confirmed, c.confirmed),
            (t.col_opted_out, c.opted_out),
            (t.col_unsubscribed, c.unsubscribed),
        ],
        rates: vec![
            RateRow {
                label: t.rate_open,
                value: pct(r.rates.open_rate),
                benchmark: pct(b.open_rate),
            },
            RateRow {
                label: t.rate_click,
                value: pct(r.rates.click_rate),
                benchmark: String::new(),
            },
            RateRow {
                label: t.rate_signup,
                value: pct(r.rates.signup_rate_of_openers),
                benchmark: pct(b.signup_rate_of_openers),
            },
            RateRow {
                label: t.rate_conversion,
                value: pct(r.rates.conversion_rate),
                benchmark: pct(b.conversion_rate),
            },
        ],
        funnel_svg,
        timeline_svg,
        variants: r
            .variants
            .iter()
            .map(|v| BreakdownRow {
                subject: subjects
                    .iter()
                    .find(|(name, _)| *name == v.key)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                ..BreakdownRow::from(v)
            })
            .collect(),
        verdicts,
        locales: r.locales.iter().map(BreakdownRow::from).collect(),
        console,
        c17,
        paths_svg,
        waves: wave_rows,
        combined: waves.combined,
    };
    Ok(render(StatusCode::OK, &page))
}

#[get("/app/campaigns/{id}/recipients.csv")]
pub async fn campaign_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let check = id.clone();
    state
        .db
        .run(move |conn| campaigns::find(conn, &ws, &check))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?
        .ok_or_else(|| PageError::not_found(&req))?;
    let filename = format!("campaign-{id}-recipients.csv");
    Ok(crate::routes::csv::stream_csv(
        &state.db,
        &filename,
        move |conn, sink| crate::exports::campaign_recipients(conn, &id, sink),
    ))
}

#[get("/app/consents.csv")]
pub async fn consents_csv(state: web::Data<AppState>, session: AppSession) -> HttpResponse {
    let ws = session.workspace_id().to_owned();
    crate::routes::csv::stream_csv(&state.db, "sms-consents.csv", move |conn, sink| {
        crate::exports::active_consents(conn, &ws, sink)
    })
}

pub struct TextRow {
    version: ConsentTextVersion,
    preview: String,
    encoding: String,
    segments: usize,
}

#[derive(Template)]
#[template(path = "app/consent_texts.html")]
struct ConsentTextsPage {
    t: &'static AppStrings,
    s: &'static crate::i18n::MarketerStrings,
    layout: Layout,
    texts: Vec<TextRow>,
}

#[get("/app/consent-texts")]
pub async fn consent_texts_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let versions = state
        .db
        .run(move |conn| texts::list(conn, &ws))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let texts = versions
        .into_iter()
        .map(|v| {
            let locale = Locale::parse(&v.locale).unwrap_or(Locale::En);
            let preview = crate::i18n::sms::doi_request(locale, &v.company_name, "123456");
            let count = crate::sms::segments::count(&preview);
            TextRow {
                encoding: format!("{:?}", count.encoding).to_uppercase(),
                segments: count.segments,
                preview,
                version: v,
            }
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ConsentTextsPage {
            t: super::strings(&req),
            s: crate::i18n::marketer(super::locale(&req)),
            layout: Layout::of(&session),
            texts,
        },
    ))
}

/// Contacts per page of the list.
const CONTACTS_PAGE: i64 = 50;

/// The contact list's search and filters (all optional), and where the page starts.
#[derive(Deserialize, Default, Clone)]
pub struct Search {
    q: Option<String>,
    /// `da`, `nb`, `sv`, `en`, or empty for any.
    locale: Option<String>,
    /// `active` or `none`.
    sms: Option<String>,
    /// `yes` or `no`.
    suppressed: Option<String>,
    /// The last email (normalized) of the previous page.
    after: Option<String>,
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

pub struct ContactRow {
    contact: Contact,
    sms_active: bool,
    suppressed: bool,
}

pub struct FilterOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "app/contacts.html")]
struct ContactsPage {
    t: &'static AppStrings,
    s: &'static crate::i18n::MarketerStrings,
    layout: Layout,
    q: String,
    locales: Vec<FilterOption>,
    sms: Vec<FilterOption>,
    suppressed: Vec<FilterOption>,
    results: Vec<ContactRow>,
    showing: String,
    first_page: Option<String>,
    next_page: Option<String>,
}

fn options(choices: &[(&'static str, &'static str)], current: Option<&str>) -> Vec<FilterOption> {
    choices
        .iter()
        .map(|&(value, label)| FilterOption {
            value,
            label,
            selected: current.unwrap_or_default() == value,
        })
        .collect()
}

/// A list URL with the same search and filters, starting after `after`.
fn contacts_url(search: &Search, after: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("q", &search.q),
        ("locale", &search.locale),
        ("sms", &search.sms),
        ("suppressed", &search.suppressed),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            query.append_pair(name, v);
        }
    }
    if let Some(after) = after {
        query.append_pair("after", after);
    }
    format!("/app/contacts?{}", query.finish())
}

/// The workspace's contacts, searched and filtered, a page at a time in email order.
fn list_contacts(
    conn: &mut DbConn,
    workspace_id: &str,
    search: &Search,
    term: &str,
) -> Result<Vec<ContactRow>, DbError> {
    use crate::consent::SubscriptionStatus;
    use crate::db::schema::sms_subscriptions;
    use diesel::dsl::{exists, not};

    let sms_active = exists(
        sms_subscriptions::table
            .filter(sms_subscriptions::contact_id.eq(contacts::id))
            .filter(sms_subscriptions::status.eq(SubscriptionStatus::Active)),
    );
    let suppressed = exists(
        suppressions::table
            .filter(suppressions::workspace_id.eq(contacts::workspace_id))
            .filter(suppressions::channel.eq(crate::domain::Channel::Email))
            .filter(suppressions::address.eq(contacts::email_normalized)),
    );
    let mut query = contacts::table
        .filter(contacts::workspace_id.eq(workspace_id.to_owned()))
        .select((Contact::as_select(), sms_active, suppressed))
        .order(contacts::email_normalized.asc())
        .limit(CONTACTS_PAGE + 1)
        .into_boxed();
    if !term.is_empty() {
        // LIKE wildcards typed by the user are matched literally. Emails match by prefix (the
        // index serves it), names anywhere and regardless of case on both backends.
        let escaped = term
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let prefix = format!("{escaped}%");
        let anywhere = format!("%{escaped}%");
        query = query.filter(
            contacts::email_normalized
                .like(prefix)
                .escape('\\')
                .or(lower(contacts::first_name).like(anywhere.clone()).escape('\\'))
                .or(lower(contacts::last_name).like(anywhere).escape('\\'))
                .or(contacts::external_id.eq(term.to_owned())),
        );
    }
    if let Some(locale) = search.locale.as_deref().and_then(Locale::parse) {
        query = query.filter(contacts::locale.eq(locale.as_str()));
    }
    match search.sms.as_deref() {
        Some("active") => query = query.filter(sms_active),
        Some("none") => query = query.filter(not(sms_active)),
        _ => {}
    }
    match search.suppressed.as_deref() {
        Some("yes") => query = query.filter(suppressed),
        Some("no") => query = query.filter(not(suppressed)),
        _ => {}
    }
    if let Some(after) = search.after.as_deref().filter(|a| !a.is_empty()) {
        query = query.filter(contacts::email_normalized.gt(after.to_owned()));
    }
    let rows: Vec<(Contact, bool, bool)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(contact, sms_active, suppressed)| ContactRow {
            contact,
            sms_active,
            suppressed,
        })
        .collect())
}

#[get("/app/contacts")]
pub async fn contacts_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    query: web::Query<Search>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let search = query.into_inner();
    let q = search
        .q
        .clone()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(100)
        .collect::<String>();
    let (term, filters) = (q.clone(), search.clone());
    let mut results = state
        .db
        .run(move |conn| list_contacts(conn, &ws, &filters, &term))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let more = results.len() as i64 > CONTACTS_PAGE;
    results.truncate(usize::try_from(CONTACTS_PAGE).unwrap_or(50));
    let t = super::strings(&req);
    let s = crate::i18n::marketer(super::locale(&req));
    let next_page = more
        .then(|| {
            results
                .last()
                .map(|r| contacts_url(&search, Some(&r.contact.email_normalized)))
        })
        .flatten();
    let first_page = search
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|_| contacts_url(&search, None));
    let showing = if results.is_empty() {
        String::new()
    } else {
        s.showing
            .replace(
                "{from}",
                &results.first().map(|r| r.contact.email.clone()).unwrap_or_default(),
            )
            .replace(
                "{to}",
                &results.last().map(|r| r.contact.email.clone()).unwrap_or_default(),
            )
    };
    Ok(render(
        StatusCode::OK,
        &ContactsPage {
            t,
            s,
            layout: Layout::of(&session),
            q,
            locales: options(
                &[("", s.any), ("da", "da"), ("nb", "nb"), ("sv", "sv"), ("en", "en")],
                search.locale.as_deref(),
            ),
            sms: options(
                &[("", s.any), ("active", s.sms_active), ("none", s.sms_none)],
                search.sms.as_deref(),
            ),
            suppressed: options(
                &[("", s.any), ("yes", s.yes), ("no", s.no)],
                search.suppressed.as_deref(),
            ),
            results,
            showing,
            first_page,
            next_page,
        },
    ))
}

#[derive(Template)]
#[template(path = "app/contact.html")]
struct ContactPage {
    t: &'static AppStrings,
    /// Stored states (consent status, how confirmed or withdrawn) in the page's language.
    w: &'static crate::i18n::StatusWords,
    layout: Layout,
    h: ContactConsent,
    ledger_payloads: Vec<String>,
    erased_notice: bool,
}

#[derive(Deserialize)]
pub struct ContactQuery {
    erased: Option<String>,
}

#[get("/app/contacts/{id}")]
pub async fn contact_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let mut h = state
        .db
        .run(move |conn| history::of_contact(conn, &ws, &id))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?
        .ok_or_else(|| PageError::not_found(&req))?;
    let locale = super::locale(&req);
    if let Some(reason) = h.email.suppression_reason.as_mut() {
        *reason = crate::i18n::suppression_reason(locale, reason).into_owned();
    }
    let ledger_payloads = h
        .ledger
        .iter()
        .map(|e| e.payload.clone().unwrap_or_else(|| "(redacted)".to_owned()))
        .collect();
    Ok(render(
        StatusCode::OK,
        &ContactPage {
            t: super::strings(&req),
            w: crate::i18n::status_words(locale),
            layout: Layout::of(&session),
            h,
            ledger_payloads,
            erased_notice: query.erased.is_some(),
        },
    ))
}

/// The contact's whole consent history as a JSON file (GDPR art. 15 access requests): the same
/// document as `GET /api/v1/contacts/{id}/consent`.
#[get("/app/contacts/{id}/evidence.json")]
pub async fn contact_evidence(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let id = id.into_inner();
    let contact = id.clone();
    let h = state
        .db
        .run(move |conn| history::of_contact(conn, &ws, &contact))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?
        .ok_or_else(|| PageError::not_found(&req))?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"contact-{id}-evidence.json\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(h))
}

#[derive(Deserialize)]
pub struct EraseForm {
    csrf: Option<String>,
    confirm: Option<String>,
}

#[post("/app/contacts/{id}/erase")]
pub async fn erase_contact(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
    id: web::Path<String>,
    form: web::Form<EraseForm>,
) -> Result<HttpResponse, PageError> {
    session.require(&req, Role::Editor)?;
    if !session.csrf_ok(form.csrf.as_deref()) {
        return Ok(HttpResponse::Forbidden().body("missing or wrong form token"));
    }
    let id = id.into_inner();
    if form.confirm.as_deref() != Some("yes") {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/app/contacts/{id}")))
            .finish());
    }
    let ws = session.workspace_id().to_owned();
    let who = format!("dashboard user {}", session.0.email);
    let target = id.clone();
    let actor = session.actor();
    let erased = state
        .db
        .run(move |conn| crate::contacts::erase::erase(conn, &ws, &target, &who, &actor))
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    if !erased {
        return Err(PageError::not_found(&req));
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/app/contacts/{id}?erased=1")))
        .finish())
}

pub struct SuppressionRow {
    channel: String,
    address: String,
    reason: String,
    created: String,
}

#[derive(Template)]
#[template(path = "app/suppressions.html")]
struct SuppressionsPage {
    t: &'static AppStrings,
    layout: Layout,
    rows: Vec<SuppressionRow>,
}

#[get("/app/suppressions")]
pub async fn suppressions_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: AppSession,
) -> Result<HttpResponse, PageError> {
    let ws = session.workspace_id().to_owned();
    let loaded = state
        .db
        .run(move |conn| {
            suppressions::table
                .filter(suppressions::workspace_id.eq(&ws))
                .order(suppressions::created_at.desc())
                .limit(500)
                .select((
                    suppressions::channel,
                    suppressions::address,
                    suppressions::reason,
                    suppressions::created_at,
                ))
                .load::<(String, String, String, chrono::NaiveDateTime)>(conn)
                .map_err(DbError::from)
        })
        .await
        .map_err(|e| PageError::dashboard(&req, e))?;
    let locale = super::locale(&req);
    let rows = loaded
        .into_iter()
        .map(|(channel, address, reason, at)| SuppressionRow {
            channel,
            address,
            reason: crate::i18n::suppression_reason(locale, &reason).into_owned(),
            created: at.format("%Y-%m-%d %H:%M").to_string(),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &SuppressionsPage {
            t: super::strings(&req),
            layout: Layout::of(&session),
            rows,
        },
    ))
}
