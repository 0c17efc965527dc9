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
        // The library reads the digits between a `+` and the first dash, dot or slash as the
        // country code ("+1-650-…"), refusing "+4520-12-34-56"; they are only punctuation in a
        // number, so it gets them as spaces.
        let spaced: String = raw
            .chars()
            .map(|c| if matches!(c, '-' | '.' | '/') { ' ' } else { c })
            .collect();
        let Reading { e164, country, kind } = read(&spaced, default_country)
            .or_else(|| read_national_starting_with_calling_code(&spaced, default_country))
            .ok_or(PhoneError::Invalid)?;
        if !allowed.contains(&country) {
            return Err(PhoneError::CountryNotAllowed {
                country: country.to_string(),
            });
        }
        match kind {
            Type::Mobile | Type::FixedLineOrMobile => {}
            _ => return Err(PhoneError::NotMobile),
        }
        Ok(Self { e164, country })
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

/// What the phone-number library makes of a valid number.
struct Reading {
    e164: String,
    country: CountryCode,
    kind: Type,
}

/// Every call into the phone-number library, `None` for anything it cannot read as a valid
/// number. The library is third-party code fed by anyone on the internet and has panicked on odd
/// input before (`"  2 22#:"` in older versions), so a panic in it is caught here and is a
/// refusal, not a crashed request.
fn read(raw: &str, default_country: CountryCode) -> Option<Reading> {
    std::panic::catch_unwind(|| {
        let parsed = phonenumber::parse(Some(default_country.id()), raw).ok()?;
        if !phonenumber::is_valid(&parsed) {
            return None;
        }
        let country = CountryCode::parse(parsed.country().id()?.as_ref()).ok()?;
        Some(Reading {
            e164: parsed.format().mode(Mode::E164).to_string(),
            country,
            kind: parsed.number_type(&phonenumber::metadata::DATABASE),
        })
    })
    .ok()
    .flatten()
}

/// The library takes a national number whose first digits equal the country's calling code for
/// an international one ("47 12 34 56" in Norway becomes +47 123456, invalid), where
/// libphonenumber keeps them; such a number is read again with the calling code in front.
fn read_national_starting_with_calling_code(raw: &str, country: CountryCode) -> Option<Reading> {
    let code = country.calling_code()?.to_string();
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let national = raw.starts_with(|c: char| c.is_ascii_digit() || c == '(') && !raw.starts_with("00");
    if !national || !digits.starts_with(&code) {
        return None;
    }
    read(&format!("+{code} {raw}"), country)
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
            // Found by the property test below: the library alone refuses these.
            ("+4520-12-34-56", "+4520123456"),
            ("+4520.12.34.56", "+4520123456"),
            ("+452-6000000", "+4526000000"),
            ("+4670-123 45 67", "+46701234567"),
            ("47 12 34 56", "+4747123456"),
            ("47000000", "+4747000000"),
            ("+47 412 34 567", "+4741234567"),
            ("+46 70 123 45 67", "+46701234567"),
        ] {
            let default = if raw.starts_with("47") {
                CountryCode::parse("NO").expect("NO")
            } else {
                dk()
            };
            let n = MobileNumber::parse(raw, default, &nordic()).unwrap_or_else(|e| panic!("{raw}: {e}"));
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

    /// The input that once panicked the phone-number library, and its neighbours, given to the
    /// library itself (`read` skips our own character filter, which would refuse them first).
    #[test]
    fn the_input_that_panicked_the_library_is_refused() {
        for raw in ["  2 22#:", "2 22#:", "  2 22#", "+45 2 22#:", "#:", "  2 22#:  2 22#:"] {
            for country in ["DK", "SE", "US", "DE"] {
                let country = CountryCode::parse(country).expect("country");
                assert!(read(raw, country).is_none(), "{raw:?} in {country}");
            }
            assert_eq!(
                MobileNumber::parse(raw, dk(), &nordic()),
                Err(PhoneError::Invalid),
                "{raw:?}"
            );
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn countries() -> impl Strategy<Value = CountryCode> {
            prop::sample::select(vec!["DK", "NO", "SE", "DE", "US", "GB"])
                .prop_map(|c| CountryCode::parse(c).expect("country"))
        }

        /// What every accepted number must satisfy, however it was typed.
        fn check_accepted(number: &MobileNumber, allowed: &[CountryCode]) -> Result<(), TestCaseError> {
            let e164 = number.as_str();
            prop_assert!(e164.starts_with('+') && e164.len() <= 16, "{e164}");
            prop_assert!(e164[1..].chars().all(|c| c.is_ascii_digit()), "{e164}");
            prop_assert!(allowed.contains(&number.country()));
            // The stored form reads back as the same number, from any default country.
            for default in [dk(), CountryCode::parse("US").expect("US")] {
                prop_assert_eq!(MobileNumber::parse(e164, default, allowed), Ok(number.clone()));
            }
            prop_assert_eq!(MobileNumber::from_stored(e164, number.country()), Some(number.clone()));
            Ok(())
        }

        /// Typed the way people type numbers: digits in groups, separated or not, with or
        /// without the country code.
        fn spelled(digits: &str, prefix: &str, separators: &[(usize, char)]) -> String {
            let mut out = prefix.to_owned();
            for (i, d) in digits.chars().enumerate() {
                if let Some((_, sep)) = separators.iter().find(|(at, _)| *at == i)
                    && i > 0
                {
                    out.push(*sep);
                }
                out.push(d);
            }
            out
        }

        proptest! {
            #![proptest_config(crate::fuzzing::config(1000))]

            #[test]
            fn any_text_is_parsed_or_refused_without_panicking(
                raw in any::<String>(),
                default in countries(),
            ) {
                let allowed = nordic();
                let parsed = MobileNumber::parse(&raw, default, &allowed);
                if let Ok(number) = &parsed {
                    check_accepted(number, &allowed)?;
                }
                // Surrounding whitespace is never part of the number.
                prop_assert_eq!(MobileNumber::parse(&format!(" \t{raw}\u{a0} "), default, &allowed), parsed);
            }
        }

        // Most of these reach the phone-number library, which is slow in a debug build.
        proptest! {
            #![proptest_config(crate::fuzzing::config(256))]

            #[test]
            fn phone_like_text_is_parsed_or_refused_without_panicking(
                raw in "[0-9 +()#*:./\\-]{0,40}|(00|\\+)[0-9]{1,3}[ -]?[0-9 ()./\\-]{4,28}|[0-9\\u{ff10}-\\u{ff19}\\u{0660}-\\u{0669} +-]{0,24}",
                default in countries(),
                allowed in prop::sample::subsequence(vec!["DK", "NO", "SE", "DE", "US", "GB"], 1..=6),
            ) {
                let allowed: Vec<CountryCode> =
                    allowed.iter().map(|c| CountryCode::parse(c).expect("country")).collect();
                if let Ok(number) = MobileNumber::parse(&raw, default, &allowed) {
                    check_accepted(&number, &allowed)?;
                }
            }

            /// Nordic mobile ranges, however they are grouped and prefixed, are accepted as the same
            /// E.164 number. Ranges as in the library's metadata (PhoneNumberMetadata.xml, `mobile`):
            /// DK 26–28, and 20–25/29/40–45/49 with a third digit of 1–9, NO 4 and 9,
            /// SE 70/72/73/76/79.
            #[test]
            fn nordic_mobiles_are_accepted_in_any_spelling(
                (country, digits) in prop_oneof![
                    "2[6-8][0-9]{6}|[24][0-59][1-9][0-9]{5}".prop_map(|d| ("DK", d)),
                    "[49][0-9]{7}".prop_map(|d| ("NO", d)),
                    "7[02369][0-9]{7}".prop_map(|d| ("SE", d)),
                ],
                prefix_style in 0..4_u8,
                separators in prop::collection::vec((0..10_usize, prop::sample::select(vec![' ', '-', '.'])), 0..4),
            ) {
                let country = CountryCode::parse(country).expect("country");
                let code = country.calling_code().expect("calling code");
                let e164 = format!("+{code}{digits}");
                let prefix = match prefix_style {
                    0 => format!("+{code} "),
                    1 => format!("+{code}"),
                    2 => format!("00{code} "),
                    // Typed nationally, as the country's own residents do (Sweden dials a 0 first).
                    _ if country.as_str() == "SE" => "0".to_owned(),
                    _ => String::new(),
                };
                let raw = spelled(&digits, &prefix, &separators);
                let number = MobileNumber::parse(&raw, country, &nordic());
                prop_assert_eq!(number.as_ref().map(MobileNumber::as_str), Ok(e164.as_str()), "{}", raw);
                if let Ok(number) = &number {
                    prop_assert_eq!(number.country(), country);
                    check_accepted(number, &nordic())?;
                }
            }
        }
    }
}
