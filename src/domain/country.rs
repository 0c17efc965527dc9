use std::fmt;
use std::str::FromStr;

/// An ISO 3166-1 alpha-2 country code that the phone-number metadata knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode(phonenumber::country::Id);

impl CountryCode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let upper = raw.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(format!("'{raw}' is not a two-letter country code (e.g. DK, NO, SE)"));
        }
        phonenumber::country::Id::from_str(&upper)
            .map(Self)
            .map_err(|_| format!("'{raw}' is not a known country code (e.g. DK, NO, SE)"))
    }

    pub fn id(self) -> phonenumber::country::Id {
        self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The international calling code (45 for DK), from the phone-number metadata.
    pub fn calling_code(&self) -> Option<u16> {
        phonenumber::metadata::DATABASE
            .by_id(self.as_str())
            .map(|m| m.country_code())
    }

    /// Parses a comma-separated list like `DK,SE` (duplicates removed, order kept).
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, String> {
        let mut out: Vec<Self> = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let code = Self::parse(part)?;
            if !out.contains(&code) {
                out.push(code);
            }
        }
        if out.is_empty() {
            return Err("at least one country is required".into());
        }
        Ok(out)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes() {
        assert_eq!(CountryCode::parse("dk").map(|c| c.to_string()), Ok("DK".to_owned()));
        assert!(CountryCode::parse("XX").is_err());
        assert_eq!(CountryCode::parse("SE").ok().and_then(|c| c.calling_code()), Some(46));
        assert!(CountryCode::parse("DNK").is_err());
        let list = CountryCode::parse_list("DK, se,DK").expect("list");
        assert_eq!(list.iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["DK", "SE"]);
    }
}
