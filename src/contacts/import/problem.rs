//! Why an import refused a row, or stopped before the end of its file, as data: the CLI and the
//! API word it in English ([`fmt::Display`], the words they always had), the dashboard in the
//! marketer's language. A background import stores it beside the English words
//! (`import_refusals.problem`, `import_jobs.problem`, JSON), so a job's page can word what it
//! reads back from the database too.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ImportError;
use crate::domain::{EmailAddressError, HiddenControl};

/// What an export's permission column says about a person it marks as out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportMark {
    /// Shopify's "Accepts Email Marketing" is not yes.
    NotAccepting,
    /// Mailchimp's unsubscribed export (an `UNSUB_TIME`).
    Unsubscribed,
    /// Mailchimp's cleaned export (a `CLEAN_TIME`: it bounced or was invalid).
    Cleaned,
    /// Klaviyo's "Email Marketing Consent" is not SUBSCRIBED.
    NotSubscribed,
}

impl ExportMark {
    fn english(self) -> &'static str {
        match self {
            Self::NotAccepting => "the export marks this person as not accepting email marketing",
            Self::Unsubscribed => "the export marks this person as unsubscribed from email marketing",
            Self::Cleaned => "the export marks this address as cleaned (it bounced or was invalid)",
            Self::NotSubscribed => "the export marks this person as not subscribed to email marketing",
        }
    }
}

/// Lines a record runs over when it holds line breaks: `(first, last)`.
pub type Span = Option<(u64, u64)>;

/// Why a row was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RowProblem {
    /// The CSV reader could not read the record (`detail`: its own words).
    UnreadableCsv {
        detail: String,
    },
    /// The same email (normalized) came earlier in the file.
    Duplicate {
        first_line: u64,
        email: String,
    },
    /// The export itself says the person must not get marketing email.
    Marked {
        mark: ExportMark,
        header: String,
        cell: String,
    },
    FieldCount {
        expected: usize,
        found: usize,
        span: Span,
    },
    NotUtf8 {
        column: String,
    },
    LineBreak {
        column: String,
        span: Span,
    },
    TooLong {
        column: String,
        max: usize,
    },
    ControlCharacters {
        column: String,
    },
    /// A bidirectional or zero-width control in a name.
    Invisible {
        column: String,
        found: HiddenControl,
    },
    EmailEmpty,
    EmailMalformed {
        value: String,
    },
    /// `value`: the address's first 40 characters.
    EmailTooLong {
        value: String,
    },
    Locale {
        value: String,
    },
    ConsentTimeFormat {
        value: String,
    },
    ConsentTimeFuture {
        value: String,
    },
}

impl RowProblem {
    pub fn email(error: EmailAddressError) -> Self {
        match error {
            EmailAddressError::Empty => Self::EmailEmpty,
            EmailAddressError::Malformed(value) => Self::EmailMalformed { value },
            EmailAddressError::TooLong(value) => Self::EmailTooLong { value },
        }
    }

    pub fn invisible(column: &str, found: HiddenControl) -> Self {
        Self::Invisible {
            column: column.to_owned(),
            found,
        }
    }

    /// The problem as stored (`import_refusals.problem`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored problem; `None` for a row refused before problems were stored, or by a newer
    /// version that knows a kind this one does not (its English reason is shown then).
    pub fn from_json(stored: &str) -> Option<Self> {
        serde_json::from_str(stored).ok()
    }
}

/// Why an import of a whole file stopped: nothing after the problem was imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileProblem {
    Empty,
    /// `found`: the header's columns (normalized), none when the header row is blank.
    MissingEmailColumn {
        found: Vec<String>,
    },
    HeaderNotUtf8,
    DuplicateColumn {
        column: String,
    },
    /// Reading the file failed part way (`detail`: the system's words).
    Unreadable {
        detail: String,
    },
    /// The uploaded file is not where the job expects it (a worker on another machine without
    /// the shared `IMPORT_DIR`, say).
    FileGone {
        detail: String,
    },
}

impl FileProblem {
    /// What stopped the import, when it is about the file (not the database, nor a job taken
    /// over by another worker).
    pub fn of(error: &ImportError) -> Option<Self> {
        Some(match error {
            ImportError::Empty => Self::Empty,
            ImportError::MissingEmailColumn { found } => Self::MissingEmailColumn { found: found.clone() },
            ImportError::HeaderNotUtf8 => Self::HeaderNotUtf8,
            ImportError::DuplicateColumn(column) => Self::DuplicateColumn { column: column.clone() },
            ImportError::Read(detail) => Self::Unreadable { detail: detail.clone() },
            ImportError::Interrupted(_) | ImportError::Db(_) => return None,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// See [`RowProblem::from_json`].
    pub fn from_json(stored: &str) -> Option<Self> {
        serde_json::from_str(stored).ok()
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => ImportError::Empty.fmt(f),
            Self::MissingEmailColumn { found } => ImportError::MissingEmailColumn { found: found.clone() }.fmt(f),
            Self::HeaderNotUtf8 => ImportError::HeaderNotUtf8.fmt(f),
            Self::DuplicateColumn { column } => ImportError::DuplicateColumn(column.clone()).fmt(f),
            Self::Unreadable { detail } => ImportError::Read(detail.clone()).fmt(f),
            Self::FileGone { detail } => write!(
                f,
                "the uploaded file is gone ({detail}); upload it again (every instance that runs workers must share IMPORT_DIR)"
            ),
        }
    }
}

/// A header's columns as the English message lists them.
pub fn listed(found: &[String]) -> String {
    if found.is_empty() {
        "nothing".to_owned()
    } else {
        found.join(", ")
    }
}

/// The cell as a refusal shows it.
pub fn shown_cell(cell: &str) -> &str {
    if cell.is_empty() { "(blank)" } else { cell }
}

/// The span's words in English (empty for a one-line record).
fn span_words(span: Span) -> String {
    match span {
        Some((first, last)) => {
            format!(" (this record runs over lines {first}–{last}: check for an unclosed quote)")
        }
        None => String::new(),
    }
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnreadableCsv { detail } => write!(f, "unreadable CSV: {detail}"),
            Self::Duplicate { first_line, email } => {
                write!(f, "duplicate of line {first_line} (same email {email})")
            }
            Self::Marked { mark, header, cell } => write!(
                f,
                "not imported: {} ({header}: {}); inviting them by email would break that choice",
                mark.english(),
                shown_cell(cell)
            ),
            Self::FieldCount { expected, found, span } => write!(
                f,
                "expected {expected} fields as in the header, found {found}{}",
                span_words(*span)
            ),
            Self::NotUtf8 { column } => {
                write!(f, "column '{column}' is not valid UTF-8: save the file as UTF-8 CSV")
            }
            Self::LineBreak { column, span } => {
                write!(f, "column '{column}' holds a line break{}", span_words(*span))
            }
            Self::TooLong { column, max } => write!(f, "{column} is longer than {max} characters"),
            Self::ControlCharacters { column } => write!(f, "{column} contains control characters"),
            Self::Invisible { column, found } => write!(f, "{column} {found}"),
            Self::EmailEmpty => write!(f, "{}", EmailAddressError::Empty),
            Self::EmailMalformed { value } => write!(f, "{}", EmailAddressError::Malformed(value.clone())),
            Self::EmailTooLong { value } => write!(f, "{}", EmailAddressError::TooLong(value.clone())),
            Self::Locale { value } => write!(f, "unsupported locale '{value}' (use da, nb, sv or en)"),
            Self::ConsentTimeFormat { value } => write!(
                f,
                "email_consent_at '{value}' is not a date (use 2024-05-01, 2024-05-01 10:00:00 or RFC 3339)"
            ),
            Self::ConsentTimeFuture { value } => write!(f, "email_consent_at '{value}' is in the future"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, with the English the importer gave before refusals were data.
    fn every_kind() -> Vec<(RowProblem, &'static str)> {
        let column = || "first_name".to_owned();
        vec![
            (RowProblem::UnreadableCsv { detail: "x".into() }, "unreadable CSV: x"),
            (
                RowProblem::Duplicate {
                    first_line: 2,
                    email: "a@b.dk".into(),
                },
                "duplicate of line 2 (same email a@b.dk)",
            ),
            (
                RowProblem::Marked {
                    mark: ExportMark::NotAccepting,
                    header: "Accepts Email Marketing".into(),
                    cell: String::new(),
                },
                "not imported: the export marks this person as not accepting email marketing (Accepts Email Marketing: (blank)); inviting them by email would break that choice",
            ),
            (
                RowProblem::FieldCount {
                    expected: 3,
                    found: 2,
                    span: Some((4, 6)),
                },
                "expected 3 fields as in the header, found 2 (this record runs over lines 4–6: check for an unclosed quote)",
            ),
            (
                RowProblem::NotUtf8 { column: column() },
                "column 'first_name' is not valid UTF-8: save the file as UTF-8 CSV",
            ),
            (
                RowProblem::LineBreak {
                    column: column(),
                    span: None,
                },
                "column 'first_name' holds a line break",
            ),
            (
                RowProblem::TooLong {
                    column: column(),
                    max: 200,
                },
                "first_name is longer than 200 characters",
            ),
            (
                RowProblem::ControlCharacters { column: column() },
                "first_name contains control characters",
            ),
            (
                RowProblem::invisible("first_name", HiddenControl('\u{202E}')),
                "first_name contains U+202E RIGHT-TO-LEFT OVERRIDE, an invisible character that changes how text is shown; remove it",
            ),
            (RowProblem::EmailEmpty, "email is empty"),
            (
                RowProblem::EmailMalformed { value: "nope".into() },
                "'nope' is not an email address (expected name@domain.tld)",
            ),
            (
                RowProblem::EmailTooLong { value: "aaa".into() },
                "'aaa' is longer than 254 characters",
            ),
            (
                RowProblem::Locale { value: "fi".into() },
                "unsupported locale 'fi' (use da, nb, sv or en)",
            ),
            (
                RowProblem::ConsentTimeFormat { value: "soon".into() },
                "email_consent_at 'soon' is not a date (use 2024-05-01, 2024-05-01 10:00:00 or RFC 3339)",
            ),
            (
                RowProblem::ConsentTimeFuture {
                    value: "2999-01-01".into(),
                },
                "email_consent_at '2999-01-01' is in the future",
            ),
        ]
    }

    #[test]
    fn the_english_words_stay_as_they_were() {
        for (problem, words) in every_kind() {
            assert_eq!(problem.to_string(), words);
        }
    }

    #[test]
    fn a_file_problem_says_what_the_importer_says() {
        let cases = [
            (
                ImportError::Empty,
                "the file is empty: expected a header row with an 'email' column",
            ),
            (
                ImportError::MissingEmailColumn {
                    found: vec!["name".into(), "mail".into()],
                },
                "the header row has no 'email' column (found: name, mail); the first row must name the columns, e.g. email,first_name,last_name,locale",
            ),
            (
                ImportError::MissingEmailColumn { found: Vec::new() },
                "the header row has no 'email' column (found: nothing); the first row must name the columns, e.g. email,first_name,last_name,locale",
            ),
            (
                ImportError::HeaderNotUtf8,
                "the header row is not valid UTF-8: save the file as UTF-8 CSV",
            ),
            (
                ImportError::DuplicateColumn("email".into()),
                "the header row names the column 'email' twice",
            ),
            (
                ImportError::Read("broken pipe".into()),
                "could not read the file: broken pipe",
            ),
        ];
        for (error, words) in cases {
            assert_eq!(error.to_string(), words);
            let problem = FileProblem::of(&error).expect("a file problem");
            assert_eq!(problem.to_string(), words);
            assert_eq!(FileProblem::from_json(&problem.to_json()), Some(problem));
        }
        assert_eq!(FileProblem::of(&ImportError::Interrupted("taken over".into())), None);
    }

    #[test]
    fn a_stored_problem_reads_back_the_same() {
        for (problem, _) in every_kind() {
            assert_eq!(RowProblem::from_json(&problem.to_json()), Some(problem));
        }
        assert_eq!(RowProblem::from_json(r#"{"kind":"from_a_newer_version"}"#), None);
        assert_eq!(RowProblem::from_json(""), None);
    }
}
