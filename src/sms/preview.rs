//! What the SMS of a consent text will look like and cost, for the places where texts are
//! configured (the consent-text API, the dashboard's form): the double-opt-in request and the
//! receipt, each with its encoding and segment count.

use serde::Serialize;

use super::segments::{self, Encoding};
use crate::domain::Locale;
use crate::i18n;

/// A sample code: the real one has the same six digits.
const SAMPLE_CODE: &str = "123456";

/// One SMS as it will be sent, and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SmsPreview {
    pub text: String,
    /// `gsm7` or `ucs2`.
    #[schema(value_type = String)]
    pub encoding: Encoding,
    /// Billed messages; 1 is the goal.
    pub segments: usize,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
}

impl SmsPreview {
    fn of(text: String) -> Self {
        let count = segments::count(&text);
        Self {
            text,
            encoding: count.encoding,
            segments: count.segments,
            units: count.units,
        }
    }
}

/// The SMS a consent text produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentTextSms {
    /// The double-opt-in request (with a sample code).
    pub doi_request: SmsPreview,
    /// The receipt after confirmation, without a campaign's frequency (added only where it still
    /// fits one segment, see [`i18n::sms::receipt`]).
    pub receipt: SmsPreview,
}

/// The double-opt-in request and the receipt for a consent text's locale, company name and
/// privacy URL, each with its encoding and segments.
pub fn consent_text_sms(locale: Locale, company_name: &str, privacy_url: &str) -> ConsentTextSms {
    ConsentTextSms {
        doi_request: SmsPreview::of(i18n::sms::doi_request(locale, company_name, SAMPLE_CODE)),
        receipt: SmsPreview::of(i18n::sms::receipt(locale, company_name, None, privacy_url)),
    }
}

/// [`consent_text_sms`] for a stored version.
pub fn for_version(version: &crate::consent::texts::ConsentTextVersion) -> ConsentTextSms {
    let locale = Locale::parse(&version.locale).unwrap_or(Locale::En);
    consent_text_sms(locale, &version.company_name, &version.privacy_url)
}
