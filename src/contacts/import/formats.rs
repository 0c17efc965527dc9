//! The exports marketers bring from their shop or mail tool, recognised by their header row and
//! mapped onto optbridge's columns. This is the one table of them (the README's import-formats
//! table repeats it for people).
//!
//! An export that marks someone as not accepting email marketing (Shopify), as unsubscribed or
//! cleaned (Mailchimp) or as not subscribed (Klaviyo) has that row refused with the reason:
//! inviting them by email would break the very permission optbridge builds on.
//!
//! Column names and values, as the tools document them:
//! - Shopify customer export: <https://help.shopify.com/en/manual/customers/import-export-customers>
//!   (read in copies of that page; "Customer ID, First Name, Last Name, Email, Accepts Email Marketing, …"; "Accepts Email
//!   Marketing … valid entries are yes or no"; exports before 2022 said "Accepts Marketing").
//! - Mailchimp audience export: <http://kb.mailchimp.com/lists/managing-subscribers/view-unsubscribed-and-cleaned-addresses>
//!   and <http://ginkgo.st/~ca/roadmap/mailchimp-and-civicrm-overview/notes-on-mailchimp-data-exports>
//!   (one CSV each for subscribed, unsubscribed and cleaned contacts: "Email Address, First Name,
//!   Last Name, …, MEMBER_RATING, OPTIN_TIME, OPTIN_IP, CONFIRM_TIME, CONFIRM_IP, …, LEID, EUID";
//!   the unsubscribed file adds UNSUB_TIME, the cleaned file CLEAN_TIME).
//! - Klaviyo profile export: <https://developers.klaviyo.com/en/docs/collect_email_and_sms_consent_via_api>
//!   and <https://help.klaviyo.com/hc/en-us/articles/360043841811> ("Email, First Name, Last Name,
//!   …, Email Marketing Consent, Email Marketing Consent Timestamp, …"; a consent status is
//!   SUBSCRIBED, NEVER_SUBSCRIBED or UNSUBSCRIBED).

use super::problem::{ExportMark, RowProblem};
use crate::db::text_enum::db_enum;

db_enum! {
    /// Where a file comes from, as told by its header row (stored in `import_jobs.format`).
    pub enum ExportFormat {
        /// optbridge's own columns (`email`, `first_name`, …), or any file that is none of the others.
        Optbridge = "optbridge",
        Shopify = "shopify",
        Mailchimp = "mailchimp",
        Klaviyo = "klaviyo",
    }
}

impl ExportFormat {
    /// What the README and the import page call it; also the contacts' `email_consent_source`
    /// when the file names none.
    pub fn label(self) -> &'static str {
        match self {
            Self::Optbridge => "optbridge CSV",
            Self::Shopify => "Shopify customer export",
            Self::Mailchimp => "Mailchimp audience export",
            Self::Klaviyo => "Klaviyo profile export",
        }
    }
}

/// One of optbridge's contact columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Email,
    FirstName,
    LastName,
    Locale,
    ExternalId,
    EmailConsentAt,
    /// Read when the `EmailConsentAt` column of the row is blank (Mailchimp: the opt-in time when
    /// there was no confirmation).
    EmailConsentAtFallback,
    EmailConsentSource,
}

/// How a column tells whether the person accepts email marketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// The cell must hold one of these values (compared without case); anything else, a blank
    /// cell too, refuses the row.
    OneOf(&'static [&'static str]),
    /// Any value refuses the row (the date someone unsubscribed or was cleaned).
    Blank,
}

/// What a column means to the importer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Field(Field),
    /// A refusal rule and what a refused row is marked as.
    Permission(Permission, ExportMark),
}

struct Format {
    format: ExportFormat,
    /// The file is of this format when its header holds any of these columns.
    signature: &'static [&'static str],
    columns: &'static [(&'static str, Meaning)],
}

use Field::*;
use Meaning::Field as F;

const NOT_ACCEPTING: ExportMark = ExportMark::NotAccepting;
const UNSUBSCRIBED: ExportMark = ExportMark::Unsubscribed;
const CLEANED: ExportMark = ExportMark::Cleaned;
const NOT_SUBSCRIBED: ExportMark = ExportMark::NotSubscribed;

/// The export formats, by the column names their files carry (compared as [`normalize`]d).
const FORMATS: &[Format] = &[
    Format {
        format: ExportFormat::Shopify,
        signature: &["Accepts Email Marketing", "Accepts Marketing"],
        columns: &[
            ("Customer ID", F(ExternalId)),
            ("First Name", F(FirstName)),
            ("Last Name", F(LastName)),
            ("Email", F(Email)),
            (
                "Accepts Email Marketing",
                Meaning::Permission(Permission::OneOf(&["yes", "true"]), NOT_ACCEPTING),
            ),
            (
                "Accepts Marketing",
                Meaning::Permission(Permission::OneOf(&["yes", "true"]), NOT_ACCEPTING),
            ),
        ],
    },
    Format {
        format: ExportFormat::Mailchimp,
        signature: &[
            "MEMBER_RATING",
            "OPTIN_TIME",
            "CONFIRM_TIME",
            "LEID",
            "EUID",
            "UNSUB_TIME",
            "CLEAN_TIME",
        ],
        columns: &[
            ("Email Address", F(Email)),
            ("First Name", F(FirstName)),
            ("Last Name", F(LastName)),
            ("EUID", F(ExternalId)),
            // The double opt-in confirmation is the consent; the opt-in time when there was none.
            ("CONFIRM_TIME", F(EmailConsentAt)),
            ("OPTIN_TIME", F(EmailConsentAtFallback)),
            ("UNSUB_TIME", Meaning::Permission(Permission::Blank, UNSUBSCRIBED)),
            ("CLEAN_TIME", Meaning::Permission(Permission::Blank, CLEANED)),
            // Exports of a segment or of "all contacts" carry the status in a column.
            (
                "Status",
                Meaning::Permission(Permission::OneOf(&["subscribed"]), NOT_SUBSCRIBED),
            ),
            (
                "Email Marketing",
                Meaning::Permission(Permission::OneOf(&["subscribed"]), NOT_SUBSCRIBED),
            ),
        ],
    },
    Format {
        format: ExportFormat::Klaviyo,
        signature: &["Email Marketing Consent"],
        columns: &[
            ("Email", F(Email)),
            ("First Name", F(FirstName)),
            ("Last Name", F(LastName)),
            ("Klaviyo ID", F(ExternalId)),
            ("Email Marketing Consent Timestamp", F(EmailConsentAt)),
            (
                "Email Marketing Consent",
                Meaning::Permission(Permission::OneOf(&["subscribed"]), NOT_SUBSCRIBED),
            ),
        ],
    },
];

/// optbridge's own columns and their common spellings, read in every file.
const OWN_COLUMNS: &[(&str, Field)] = &[
    ("email", Email),
    ("e-mail", Email),
    ("email address", Email),
    ("first_name", FirstName),
    ("firstname", FirstName),
    ("last_name", LastName),
    ("lastname", LastName),
    ("locale", Locale),
    ("language", Locale),
    ("external_id", ExternalId),
    ("email_consent_at", EmailConsentAt),
    ("email_consent_source", EmailConsentSource),
];

/// A header cell as the importer compares it: trimmed, lower case, spaces and dashes as `_`.
pub fn normalize(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .replace([' ', '-'], "_")
}

/// The format of a file with these (normalized) header names.
pub fn detect(names: &[String]) -> ExportFormat {
    FORMATS
        .iter()
        .find(|f| f.signature.iter().any(|s| names.contains(&normalize(s))))
        .map_or(ExportFormat::Optbridge, |f| f.format)
}

/// What a (normalized) column name means in a file of `format`: the format's own table first,
/// then optbridge's columns; `None` for a column the importer ignores.
pub fn meaning(format: ExportFormat, name: &str) -> Option<Meaning> {
    let own = FORMATS
        .iter()
        .filter(|f| f.format == format)
        .flat_map(|f| f.columns.iter())
        .find(|(column, _)| normalize(column) == name)
        .map(|(_, m)| *m);
    own.or_else(|| {
        OWN_COLUMNS
            .iter()
            .find(|(column, _)| normalize(column) == name)
            .map(|(_, f)| Meaning::Field(*f))
    })
}

/// Why a row is refused under `rule`, or `None` when the cell lets it through.
pub fn refusal(rule: Permission, mark: ExportMark, header: &str, cell: &str) -> Option<RowProblem> {
    let cell = cell.trim();
    let refused = match rule {
        Permission::OneOf(accepted) => !accepted.iter().any(|a| a.eq_ignore_ascii_case(cell)),
        Permission::Blank => !cell.is_empty(),
    };
    refused.then(|| RowProblem::Marked {
        mark,
        header: header.to_owned(),
        cell: cell.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(header: &str) -> Vec<String> {
        header.split(',').map(normalize).collect()
    }

    #[test]
    fn formats_are_told_by_their_headers() {
        let shopify = "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags";
        let mailchimp = "Email Address,First Name,Last Name,Address,Phone Number,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS";
        let klaviyo = "Email,Phone Number,First Name,Last Name,City,Country,Email Marketing Consent,Email Marketing Consent Timestamp,SMS Marketing Consent,Klaviyo ID";
        assert_eq!(detect(&names(shopify)), ExportFormat::Shopify);
        assert_eq!(detect(&names(mailchimp)), ExportFormat::Mailchimp);
        assert_eq!(detect(&names(klaviyo)), ExportFormat::Klaviyo);
        assert_eq!(detect(&names("email,first_name,locale")), ExportFormat::Optbridge);
        // "Accepts SMS Marketing" is not the email permission and is not read.
        assert_eq!(meaning(ExportFormat::Shopify, "accepts_sms_marketing"), None);
        assert_eq!(
            meaning(ExportFormat::Shopify, "customer_id"),
            Some(Meaning::Field(ExternalId))
        );
        assert_eq!(
            meaning(ExportFormat::Mailchimp, "optin_time"),
            Some(Meaning::Field(EmailConsentAtFallback))
        );
        assert_eq!(meaning(ExportFormat::Optbridge, "customer_id"), None);
        assert_eq!(meaning(ExportFormat::Klaviyo, "locale"), Some(Meaning::Field(Locale)));
    }

    #[test]
    fn refusals_name_the_column_and_value() {
        let yes = Permission::OneOf(&["yes"]);
        assert_eq!(refusal(yes, NOT_ACCEPTING, "Accepts Email Marketing", " Yes "), None);
        let no = refusal(yes, NOT_ACCEPTING, "Accepts Email Marketing", "no")
            .map(|r| r.to_string())
            .unwrap_or_default();
        assert!(
            no.contains("not accepting email marketing (Accepts Email Marketing: no)"),
            "{no}"
        );
        assert!(refusal(yes, NOT_ACCEPTING, "Accepts Email Marketing", "").is_some());
        assert_eq!(refusal(Permission::Blank, UNSUBSCRIBED, "UNSUB_TIME", " "), None);
        assert!(
            refusal(Permission::Blank, CLEANED, "CLEAN_TIME", "2024-03-01 10:00:00")
                .is_some_and(|r| r.to_string().contains("cleaned"))
        );
    }
}
