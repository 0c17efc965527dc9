use std::fmt;
use std::str::FromStr;

/// The languages optbridge speaks to recipients and marketers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Da,
    Nb,
    Sv,
    En,
}

impl Locale {
    pub const ALL: [Locale; 4] = [Locale::Da, Locale::Nb, Locale::Sv, Locale::En];

    /// Accepts a bare language (`da`) or a language tag (`da-DK`, `sv_SE`, `en-GB`).
    /// Norwegian written as `no` or `nn` is served in Bokmål, the only Norwegian we write.
    pub fn parse(raw: &str) -> Option<Self> {
        let lang = raw
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match lang.as_str() {
            "da" => Some(Self::Da),
            "nb" | "no" | "nn" => Some(Self::Nb),
            "sv" => Some(Self::Sv),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Da => "da",
            Self::Nb => "nb",
            Self::Sv => "sv",
            Self::En => "en",
        }
    }
}

impl FromStr for Locale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unsupported locale '{s}' (use da, nb, sv or en)"))
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-locale arrays are indexed by `locale as usize`.
    #[test]
    fn all_is_in_discriminant_order() {
        for (i, locale) in Locale::ALL.iter().enumerate() {
            assert_eq!(*locale as usize, i);
        }
    }

    #[test]
    fn parses_tags() {
        assert_eq!(Locale::parse("da-DK"), Some(Locale::Da));
        assert_eq!(Locale::parse(" SV_se "), Some(Locale::Sv));
        assert_eq!(Locale::parse("no"), Some(Locale::Nb));
        assert_eq!(Locale::parse("fr"), None);
        assert_eq!(Locale::parse(""), None);
    }
}
