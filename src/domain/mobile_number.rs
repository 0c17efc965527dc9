use std::fmt;

use phonenumber::{Mode, Type};

use super::CountryCode;

/// A mobile number in E.164 form, in one of the workspace's allowed countries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNumber {
    e164: String,
    country: CountryCode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number given")]
    Empty,
    #[error("the number is too long")]
    TooLong,
    #[error("this is not a valid phone number")]
    Invalid,
    #[error("this is not a mobile number")]
    NotMobile,
    #[error("numbers from {country} are not accepted")]
    CountryNotAllowed { country: String },
}

/// Longest input we hand to the phone-number parser; E.164 is at most 15 digits, and people
/// type spaces, dashes and a leading `+` or `00`.
const MAX_INPUT: usize = 32;

impl MobileNumber {
    /// Parses what a person typed. A number without a country code is read as a number of
    /// `default_country`. Only mobile numbers are accepted: where the numbering plan cannot tell
    /// mobile from fixed lines (Denmark: every number is "fixed line or mobile"), the number is
    /// accepted; toll-free, premium-rate, shared-cost and fixed-line numbers are refused.
    pub fn parse(raw: &str, default_country: CountryCode, allowed: &[CountryCode]) -> Result<Self, PhoneError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PhoneError::Empty);
        }
        if raw.chars().count() > MAX_INPUT {
            return Err(PhoneError::TooLong);
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/'))
        {
            return Err(PhoneError::Invalid);
        }
        let digits = raw.chars().filter(char::is_ascii_digit).count();
        if digits < 6 {
            return Err(PhoneError::Invalid);
        }
        if digits > 17 {
            return Err(PhoneError::TooLong);
        }
        // The parser is third-party code fed by anyone on the internet; it has panicked on odd
        // input before (e.g. "  2 22#:"). A panic here must be a refusal, not a crash.
        let parsed = std::panic::catch_unwind(|| phonenumber::parse(Some(default_country.id()), raw))
            .map_err(|_| PhoneError::Invalid)?
            .map_err(|_| PhoneError::Invalid)?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid);
        }
        let country_id = parsed.country().id().ok_or(PhoneError::Invalid)?;
        let country = CountryCode::parse(country_id.as_ref()).map_err(|_| PhoneError::Invalid)?;
        if !allowed.contains(&country) {
            return Err(PhoneError::CountryNotAllowed {
                country: country.to_string(),
            });
        }
        match parsed.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile | Type::FixedLineOrMobile => {}
            _ => return Err(PhoneError::NotMobile),
        }
        Ok(Self {
            e164: parsed.format().mode(Mode::E164).to_string(),
            country,
        })
    }

    /// Trusts an E.164 string stored earlier (by `parse`); only checks its shape.
    pub fn from_stored(e164: &str, country: CountryCode) -> Option<Self> {
        let shape_ok = e164.starts_with('+') && e164.len() <= 16 && e164[1..].chars().all(|c| c.is_ascii_digit());
        shape_ok.then(|| Self {
            e164: e164.to_owned(),
            country,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.e164
    }

    pub fn country(&self) -> CountryCode {
        self.country
    }
}

impl fmt::Display for MobileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk() -> CountryCode {
        CountryCode::parse("DK").expect("DK")
    }

    fn nordic() -> Vec<CountryCode> {
        CountryCode::parse_list("DK,NO,SE").expect("list")
    }

    #[test]
    fn accepts_nordic_mobiles_in_many_spellings() {
        for (raw, e164) in [
            ("20 12 34 56", "+4520123456"),
            ("+45 20123456", "+4520123456"),
            ("0045-20-12-34-56", "+4520123456"),
            ("+47 412 34 567", "+4741234567"),
            ("+46 70 123 45 67", "+46701234567"),
        ] {
            let n = MobileNumber::parse(raw, dk(), &nordic()).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(n.as_str(), e164, "{raw}");
        }
    }

    #[test]
    fn refuses_what_cannot_receive_marketing_sms() {
        let check = |raw: &str| MobileNumber::parse(raw, dk(), &nordic());
        assert_eq!(check(""), Err(PhoneError::Empty));
        assert_eq!(check("12"), Err(PhoneError::Invalid));
        assert_eq!(check("abc"), Err(PhoneError::Invalid));
        assert_eq!(check("  2 22#:"), Err(PhoneError::Invalid), "once panicked the parser");
        assert_eq!(check("+45 1234567890123456789"), Err(PhoneError::TooLong));
        assert_eq!(check("+45 80 20 30 40"), Err(PhoneError::NotMobile), "Danish toll-free");
        assert_eq!(
            check("+45 90 12 34 56"),
            Err(PhoneError::NotMobile),
            "Danish premium rate"
        );
        assert_eq!(
            check("+46 8 123 456 78"),
            Err(PhoneError::NotMobile),
            "Stockholm landline"
        );
        assert_eq!(
            check("+49 151 23456789"),
            Err(PhoneError::CountryNotAllowed { country: "DE".into() })
        );
        assert_eq!(check("+45 00 00 00 00"), Err(PhoneError::Invalid));
    }
}
