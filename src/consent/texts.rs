//! Consent-text versions: the exact words a recipient agrees to.
//!
//! A version is immutable (the database refuses UPDATE and DELETE). Evidence of a consent points
//! at a version and carries the SHA-256 of its rendered text, so it can later be shown exactly
//! what the person saw. Posting a changed text creates the next version; posting an identical one
//! returns the existing version.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::activity::{self, Action, Actor};
use crate::crypto;
use crate::db::schema::consent_texts;
use crate::db::{self, DbConn, DbError};
use crate::domain::{HiddenControl, Locale, check_visible, is_hidden_control};

const MAX_BODY_CHARS: usize = 4000;
const MIN_BODY_CHARS: usize = 20;
const MAX_CATEGORIES: usize = 20;
const MAX_CATEGORY_CHARS: usize = 60;

/// What a client submits.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentTextRequest {
    pub locale: String,
    pub company_name: String,
    pub body: String,
    #[serde(default)]
    pub categories: Vec<String>,
    pub privacy_url: String,
}

/// A stored, immutable version.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = consent_texts)]
pub struct ConsentTextVersion {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub locale: String,
    pub version: i32,
    pub company_name: String,
    pub body: String,
    #[serde(serialize_with = "categories_as_list")]
    #[schema(value_type = Vec<String>)]
    pub categories: String,
    pub privacy_url: String,
    /// The canonical text exactly as the landing page shows it; `sha256` is taken over it.
    pub rendered: String,
    pub sha256: String,
    pub created_at: NaiveDateTime,
}

fn categories_as_list<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    let list: Vec<String> = serde_json::from_str(raw).unwrap_or_default();
    list.serialize(s)
}

impl ConsentTextVersion {
    pub fn category_list(&self) -> Vec<String> {
        serde_json::from_str(&self.categories).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsentTextError {
    #[error("{0}")]
    Invalid(String),
    /// Every rule the submitted text breaks, each with the field it concerns, so a form can show
    /// each reason next to its field and an API client can fix them all in one go.
    #[error("{}", join_problems(.0))]
    Rules(Vec<RuleProblem>),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// One broken rule: the request field it concerns (`locale`, `company_name`, `body`,
/// `categories`, `privacy_url`) and why, in words a marketer can act on (English, the API's);
/// `rule` is the same as data, for the dashboard to say in the marketer's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleProblem {
    pub field: &'static str,
    pub message: String,
    #[serde(skip)]
    pub rule: TextRule,
}

/// The rules of [`ConsentText::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextRule {
    /// Not one of the product's locales.
    Locale,
    CompanyNameLength,
    BodyLength {
        min: usize,
        max: usize,
        is: usize,
    },
    /// An invisible character that changes how text is shown, in the field.
    Invisible(HiddenControl),
    /// The body does not name the company.
    NamesCompany(String),
    /// The body does not say the consent is for SMS.
    SaysSms,
    /// The body does not say how to withdraw the consent; an example in the text's language.
    SaysWithdrawal(&'static str),
    ControlCharacters,
    CategoryLength {
        max: usize,
    },
    CategoryTwice(String),
    TooManyCategories {
        max: usize,
    },
    PrivacyUrl,
    /// The word for "free" (or one like it) in what the person reads.
    FreeWord(String),
}

fn join_problems(problems: &[RuleProblem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<diesel::result::Error> for ConsentTextError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// A validated consent text, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentText {
    locale: Locale,
    company_name: String,
    body: String,
    categories: Vec<String>,
    privacy_url: Url,
}

impl ConsentText {
    /// Applies the rules from the seed documents (Forbrugerombudsmanden's guidance as summarized
    /// in seeds 001/002): the consent names the company, the channel (SMS), says it can be
    /// withdrawn, and never calls anything "free" in return for consent. Every broken rule is
    /// reported at once ([`ConsentTextError::Rules`]).
    pub fn parse(req: &ConsentTextRequest) -> Result<Self, ConsentTextError> {
        let mut problems: Vec<RuleProblem> = Vec::new();
        let mut problem = |field: &'static str, rule: TextRule, message: String| {
            problems.push(RuleProblem { field, message, rule });
        };
        let locale: Option<Locale> = match req.locale.parse() {
            Ok(l) => Some(l),
            Err(e) => {
                problem("locale", TextRule::Locale, e);
                None
            }
        };
        let company_name = req.company_name.trim().to_owned();
        if company_name.is_empty() || company_name.chars().count() > 200 {
            problem(
                "company_name",
                TextRule::CompanyNameLength,
                "company_name must be 1 to 200 characters".into(),
            );
        }
        let body = normalize_text(&req.body);
        let body_chars = body.chars().count();
        if !(MIN_BODY_CHARS..=MAX_BODY_CHARS).contains(&body_chars) {
            problem(
                "body",
                TextRule::BodyLength {
                    min: MIN_BODY_CHARS,
                    max: MAX_BODY_CHARS,
                    is: body_chars,
                },
                format!("body must be {MIN_BODY_CHARS} to {MAX_BODY_CHARS} characters (it is {body_chars})"),
            );
        }
        // What the person reads must be what is stored and hashed: no bidi or zero-width controls.
        if let Err(e) = check_visible(&company_name) {
            problem("company_name", TextRule::Invisible(e), format!("company_name {e}"));
        }
        if let Err(e) = check_visible(&body) {
            problem("body", TextRule::Invisible(e), format!("body {e}"));
        }
        for c in &req.categories {
            if let Err(e) = check_visible(c) {
                problem(
                    "categories",
                    TextRule::Invisible(e),
                    format!("category '{}' {e}", c.trim()),
                );
            }
        }
        let lower = body.to_lowercase();
        if !company_name.is_empty() && !lower.contains(&company_name.to_lowercase()) {
            problem(
                "body",
                TextRule::NamesCompany(company_name.clone()),
                format!(
                    "body must name the company '{company_name}': consent is given to one named company, never on behalf of others"
                ),
            );
        }
        if !lower.contains("sms") {
            problem(
                "body",
                TextRule::SaysSms,
                "body must say that the consent is for SMS: consent is specific to a channel".into(),
            );
        }
        if let Some(locale) = locale
            && !withdrawal_words(locale).iter().any(|w| lower.contains(w))
        {
            problem(
                "body",
                TextRule::SaysWithdrawal(withdrawal_example(locale)),
                format!(
                    "body must say how to withdraw the consent (e.g. {}): withdrawal must be mentioned in the consent text itself",
                    withdrawal_example(locale)
                ),
            );
        }
        // Control characters (a NUL above all, which PostgreSQL cannot store) have no place in a
        // text shown to people; line breaks and tabs in the body are kept.
        let has_control = |v: &str| v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        if has_control(&company_name) || has_control(&body) || req.categories.iter().any(|c| has_control(c)) {
            problem(
                "body",
                TextRule::ControlCharacters,
                "company_name, body and categories must not contain control characters".into(),
            );
        }
        let mut categories: Vec<String> = Vec::new();
        for raw in &req.categories {
            let c = raw.trim().to_owned();
            if c.is_empty() || c.chars().count() > MAX_CATEGORY_CHARS {
                problem(
                    "categories",
                    TextRule::CategoryLength {
                        max: MAX_CATEGORY_CHARS,
                    },
                    format!("each category must be 1 to {MAX_CATEGORY_CHARS} characters"),
                );
                continue;
            }
            if categories.iter().any(|x| x.to_lowercase() == c.to_lowercase()) {
                problem(
                    "categories",
                    TextRule::CategoryTwice(c.clone()),
                    format!("category '{c}' is listed twice"),
                );
                continue;
            }
            categories.push(c);
        }
        if categories.len() > MAX_CATEGORIES {
            problem(
                "categories",
                TextRule::TooManyCategories { max: MAX_CATEGORIES },
                format!("at most {MAX_CATEGORIES} categories"),
            );
        }
        let privacy_url = Url::parse(req.privacy_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if privacy_url.is_none() {
            problem(
                "privacy_url",
                TextRule::PrivacyUrl,
                format!("privacy_url '{}' must be an http(s) URL", req.privacy_url),
            );
        }
        // The words of the rendered text (see `render`; its labels promise nothing).
        let shown = format!(
            "{body}\n{}\n{}",
            categories.join(", "),
            privacy_url.as_ref().map_or("", Url::as_str)
        );
        if let Some(word) = forbidden_word(&shown) {
            problem(
                "body",
                TextRule::FreeWord(word.clone()),
                format!(
                    "the consent text must not use the word '{word}': consent has a value of its own, so nothing may be called free in return for it (Forbrugerombudsmanden's spam guidance)"
                ),
            );
        }
        match (locale, privacy_url) {
            (Some(locale), Some(privacy_url)) if problems.is_empty() => Ok(Self {
                locale,
                company_name,
                body,
                categories,
                privacy_url,
            }),
            _ => Err(ConsentTextError::Rules(problems)),
        }
    }

    /// The canonical text: body, the categories one may choose, the privacy policy. This is
    /// what the landing page shows and what the SHA-256 is taken over.
    pub fn render(&self) -> String {
        let labels = Labels::for_locale(self.locale);
        let mut out = self.body.clone();
        if !self.categories.is_empty() {
            out.push_str(&format!("\n\n{}: {}", labels.categories, self.categories.join(", ")));
        }
        out.push_str(&format!("\n\n{}: {}", labels.privacy, self.privacy_url));
        out
    }
}

struct Labels {
    categories: &'static str,
    privacy: &'static str,
}

impl Labels {
    fn for_locale(locale: Locale) -> Self {
        match locale {
            Locale::Da => Self {
                categories: "Emner",
                privacy: "Privatlivspolitik",
            },
            Locale::Nb => Self {
                categories: "Emner",
                privacy: "Personvernerklæring",
            },
            Locale::Sv => Self {
                categories: "Ämnen",
                privacy: "Integritetspolicy",
            },
            Locale::En => Self {
                categories: "Topics",
                privacy: "Privacy policy",
            },
        }
    }
}

/// Line endings unified, trailing spaces and surplus blank lines removed: two texts that differ
/// only in such whitespace are the same version.
fn normalize_text(raw: &str) -> String {
    let unified = raw.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(unified.len());
    let mut blank_run = 0;
    for line in unified.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

fn withdrawal_words(locale: Locale) -> &'static [&'static str] {
    // "stop" covers STOP/STOPP, the keyword every SMS names.
    match locale {
        Locale::Da => &["stop", "tilbagekald", "trække", "træk", "afmeld", "frameld"],
        Locale::Nb => &["stop", "trekke", "trekk", "tilbakekall", "avmeld", "avslutt"],
        Locale::Sv => &["stop", "återkalla", "dra tillbaka", "avregistrera", "avsluta"],
        Locale::En => &["stop", "withdraw", "unsubscribe", "opt out", "opt-out", "revoke"],
    }
}

fn withdrawal_example(locale: Locale) -> &'static str {
    match locale {
        Locale::Da => "'Du kan til enhver tid trække dit samtykke tilbage ved at svare STOP'",
        Locale::Nb => "'Du kan når som helst trekke samtykket tilbake ved å svare STOPP'",
        Locale::Sv => "'Du kan när som helst återkalla ditt samtycke genom att svara STOPP'",
        Locale::En => "'You can withdraw your consent at any time by replying STOP'",
    }
}

/// The first word that promises something free (gratis, free, gratuit and their compounds).
/// Invisible characters inside a word (`gra\u{200B}tis`, a soft hyphen) do not split it.
pub fn forbidden_word(text: &str) -> Option<String> {
    let invisible = |c: char| c == '\u{00AD}' || is_hidden_control(c);
    let visible: std::borrow::Cow<'_, str> = if text.contains(invisible) {
        text.chars().filter(|&c| !invisible(c)).collect::<String>().into()
    } else {
        text.into()
    };
    visible
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .find(|w| {
            w.starts_with("gratis")
                || w.starts_with("gratuit")
                || matches!(w.as_str(), "free" | "freebie" | "freebies" | "kostenlos")
        })
}

#[derive(Insertable)]
#[diesel(table_name = consent_texts)]
struct NewVersion<'a> {
    id: String,
    workspace_id: &'a str,
    locale: &'a str,
    version: i32,
    company_name: &'a str,
    body: &'a str,
    categories: String,
    privacy_url: &'a str,
    rendered: &'a str,
    sha256: &'a str,
    created_at: NaiveDateTime,
}

/// Stores `text` as the next version for its locale, unless an identical version exists.
/// Returns the version and whether it was created now; a new version is logged as `actor`'s.
pub fn create_version(
    conn: &mut DbConn,
    workspace_id: &str,
    text: &ConsentText,
    actor: &Actor,
) -> Result<(ConsentTextVersion, bool), ConsentTextError> {
    let rendered = text.render();
    let sha256 = crypto::sha256_hex(rendered.as_bytes());
    let locale = text.locale.as_str();
    db::write_tx(conn, |conn| {
        db::lock_for_transaction(conn, &format!("consent-texts:{workspace_id}"))?;
        let existing = consent_texts::table
            .filter(consent_texts::workspace_id.eq(workspace_id))
            .filter(consent_texts::locale.eq(locale))
            .filter(consent_texts::sha256.eq(&sha256))
            .select(ConsentTextVersion::as_select())
            .first(conn)
            .optional()?;
        if let Some(version) = existing {
            return Ok((version, false));
        }
        let latest: Option<i32> = consent_texts::table
            .filter(consent_texts::workspace_id.eq(workspace_id))
            .filter(consent_texts::locale.eq(locale))
            .select(diesel::dsl::max(consent_texts::version))
            .first(conn)?;
        let id = db::new_id();
        diesel::insert_into(consent_texts::table)
            .values(NewVersion {
                id: id.clone(),
                workspace_id,
                locale,
                version: latest.unwrap_or(0) + 1,
                company_name: &text.company_name,
                body: &text.body,
                categories: serde_json::to_string(&text.categories)
                    .map_err(|e| ConsentTextError::Invalid(e.to_string()))?,
                privacy_url: text.privacy_url.as_str(),
                rendered: &rendered,
                sha256: &sha256,
                created_at: db::now(),
            })
            .execute(conn)?;
        let created = find(conn, workspace_id, &id)?
            .ok_or(ConsentTextError::Db(DbError::Query(diesel::result::Error::NotFound)))?;
        activity::record(
            conn,
            workspace_id,
            actor,
            Action::ConsentTextCreated,
            Some(&format!(
                "{} v{} ({})",
                created.locale, created.version, created.company_name
            )),
            &created.id,
        )?;
        Ok((created, true))
    })
}

pub fn find(conn: &mut DbConn, workspace_id: &str, id: &str) -> Result<Option<ConsentTextVersion>, DbError> {
    Ok(consent_texts::table
        .filter(consent_texts::workspace_id.eq(workspace_id))
        .filter(consent_texts::id.eq(id))
        .select(ConsentTextVersion::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn, workspace_id: &str) -> Result<Vec<ConsentTextVersion>, DbError> {
    Ok(consent_texts::table
        .filter(consent_texts::workspace_id.eq(workspace_id))
        .order((consent_texts::locale.asc(), consent_texts::version.desc()))
        .select(ConsentTextVersion::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> ConsentTextRequest {
        ConsentTextRequest {
            locale: "da".into(),
            company_name: "Skobutikken".into(),
            body: body.into(),
            categories: vec!["Nyheder".into(), "Tilbud".into()],
            privacy_url: "https://skobutikken.example/privatliv".into(),
        }
    }

    const GOOD: &str = "Ja tak, Skobutikken må sende mig nyheder og tilbud på SMS, højst 4 gange om måneden. Du kan altid trække dit samtykke tilbage ved at svare STOP.";

    #[test]
    fn accepts_a_lawful_text_and_renders_it_canonically() {
        let text = ConsentText::parse(&req(GOOD)).expect("valid");
        let rendered = text.render();
        assert!(rendered.starts_with("Ja tak, Skobutikken"));
        assert!(rendered.contains("\n\nEmner: Nyheder, Tilbud"));
        assert!(rendered.ends_with("Privatlivspolitik: https://skobutikken.example/privatliv"));
        let crlf = ConsentText::parse(&req(&format!("  {GOOD}  \r\n\r\n\r\n"))).expect("valid");
        assert_eq!(crlf.render(), rendered, "whitespace-only changes are the same text");
    }

    #[test]
    fn rejects_texts_that_break_the_rules() {
        let err = |body: &str| match ConsentText::parse(&req(body)) {
            Err(e @ ConsentTextError::Rules(_)) => e.to_string(),
            other => panic!("expected invalid, got {other:?}"),
        };
        assert!(err("Ja tak, send mig tilbud på SMS. Svar STOP for at afmelde.").contains("name the company"));
        assert!(err("Ja tak, Skobutikken må sende mig nyheder. Svar STOP for at afmelde.").contains("SMS"));
        assert!(err("Ja tak, Skobutikken må sende mig nyheder og tilbud på SMS hver uge.").contains("withdraw"));
        assert!(err(&format!("{GOOD} Få en gratis gave!")).contains("gratis"));
        assert!(err(&format!("{GOOD} Gratisfragt på din næste ordre.")).contains("gratisfragt"));
        assert!(err(&format!("{GOOD} Get a FREE gift")).contains("free"));
        assert!(err("for kort").contains("characters"));
    }

    #[test]
    fn hidden_controls_are_refused_and_do_not_hide_free() {
        let mut r = req(&GOOD.replace("Skobutikken", "Skobutikken\u{202E}"));
        r.company_name = "Skobutikken\u{202E}".into();
        let Err(e @ ConsentTextError::Rules(_)) = ConsentText::parse(&r) else {
            panic!("a right-to-left override in the company name is refused")
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("company_name contains U+202E RIGHT-TO-LEFT OVERRIDE"),
            "{msg}"
        );
        let Err(e @ ConsentTextError::Rules(_)) = ConsentText::parse(&req(&format!("{GOOD} Nyheder\u{200B}"))) else {
            panic!("a zero-width space in the body is refused")
        };
        let msg = e.to_string();
        assert!(msg.starts_with("body contains U+200B ZERO WIDTH SPACE"), "{msg}");
        let mut r = req(GOOD);
        r.categories = vec!["Tilbud\u{2066}".into()];
        assert!(ConsentText::parse(&r).is_err());
        assert_eq!(forbidden_word("Gra\u{200B}tis fragt").as_deref(), Some("gratis"));
        assert_eq!(
            forbidden_word("Fri\u{00AD}fragt og gra\u{00AD}tis gave").as_deref(),
            Some("gratis")
        );
    }

    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let mut r = req("Få en gratis gave, hver uge på mail.");
        r.privacy_url = "ftp://x".into();
        r.categories = vec!["Tilbud".into(), "tilbud".into()];
        let Err(ConsentTextError::Rules(problems)) = ConsentText::parse(&r) else {
            panic!("refused")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["body", "body", "body", "categories", "privacy_url", "body"],
            "{problems:?}"
        );
        let all = ConsentTextError::Rules(problems).to_string();
        for part in [
            "name the company",
            "for SMS",
            "withdraw",
            "listed twice",
            "privacy_url",
            "'gratis'",
        ] {
            assert!(all.contains(part), "{part} missing in {all}");
        }
    }

    #[test]
    fn free_inside_another_word_is_allowed() {
        assert!(forbidden_word("Your carefree freedom").is_none());
        assert_eq!(forbidden_word("Free shipping").as_deref(), Some("free"));
    }

    #[test]
    fn categories_and_url_are_checked() {
        let mut r = req(GOOD);
        r.categories = vec!["Tilbud".into(), "tilbud".into()];
        assert!(ConsentText::parse(&r).is_err());
        let mut r = req(GOOD);
        r.privacy_url = "javascript:alert(1)".into();
        assert!(ConsentText::parse(&r).is_err());
        let mut r = req(GOOD);
        r.locale = "fr".into();
        assert!(ConsentText::parse(&r).is_err());
    }
}
