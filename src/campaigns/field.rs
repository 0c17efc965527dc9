//! A rule a campaign's field breaks, as data rather than a sentence: the API says it in English
//! (`Display`, the words it always used), the dashboard's campaign form in the marketer's
//! language (`routes::app::campaigns`). These are the rules a person filling in the form can
//! break; a request's shape (unknown locales, one text for several languages) stays a plain
//! [`super::CampaignError::Invalid`] message, which only the API can cause.

use crate::domain::Locale;

/// Which field, and for which audience language when it is given per language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub locale: Option<Locale>,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    /// The audience's languages (each needs a consent text).
    Languages,
    ConsentText,
    Subject,
    Intro,
    Frequency,
    /// The variant of this name: its name or weight.
    Variant(String),
    VariantSubject(String),
    VariantIntro(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Empty, or longer than `max` characters.
    Length {
        max: usize,
    },
    SingleLine,
    ControlCharacters,
    /// The invitation asks for consent: nothing may be called free in return for it.
    ForbiddenWord(String),
    /// No consent text of the workspace has this id (the form sends an empty one when none is
    /// chosen).
    UnknownConsentText(String),
    /// No language was chosen.
    NoLanguage,
    /// A variant's name is not 1 to 20 letters, digits, `-` or `_`.
    VariantName,
    DuplicateVariantName,
    /// A variant's weight is not 1 to 1000.
    Weight,
}

impl FieldError {
    pub fn new(field: Field, locale: Option<Locale>, rule: Rule) -> Self {
        Self { field, locale, rule }
    }

    /// The request field, as the API names it: `subject.da`, `variant B intro.sv`, `name`.
    pub fn path(&self) -> String {
        self.field.path(self.locale)
    }
}

impl Field {
    /// The request field, for `locale` when given per language.
    pub fn path(&self, locale: Option<Locale>) -> String {
        let base = match self {
            Self::Name => "name".to_owned(),
            Self::Languages => "consent_texts".to_owned(),
            Self::ConsentText if locale.is_none() => "consent_text_id".to_owned(),
            Self::ConsentText => "consent_texts".to_owned(),
            Self::Subject => "subject".to_owned(),
            Self::Intro => "intro".to_owned(),
            Self::Frequency => "frequency".to_owned(),
            Self::Variant(name) => format!("variant {name}"),
            Self::VariantSubject(name) => format!("variant {name} subject"),
            Self::VariantIntro(name) => format!("variant {name} intro"),
        };
        match locale {
            Some(l) => format!("{base}.{l}"),
            None => base,
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path();
        let variant = match &self.field {
            Field::Variant(name) | Field::VariantSubject(name) | Field::VariantIntro(name) => name.as_str(),
            _ => "",
        };
        match &self.rule {
            Rule::Length { max } => write!(f, "{path} must be 1 to {max} characters"),
            Rule::SingleLine => write!(f, "{path} must be a single line"),
            Rule::ControlCharacters => write!(f, "{path} contains control characters"),
            Rule::ForbiddenWord(word) => write!(
                f,
                "{path} must not use the word '{word}': nothing may be called free in return for consent"
            ),
            Rule::UnknownConsentText(id) => write!(f, "{path} '{id}' is not a consent text of this workspace"),
            Rule::NoLanguage => write!(f, "{path} must name at least one locale"),
            Rule::VariantName => write!(
                f,
                "variant name '{variant}' must be 1 to 20 letters, digits, '-' or '_'"
            ),
            Rule::DuplicateVariantName => write!(f, "variant name '{variant}' is used twice"),
            Rule::Weight => write!(f, "variant '{variant}': weight must be 1 to 1000"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's messages are the ones it gave before the rules became data.
    #[test]
    fn the_api_words_stay_as_they_were() {
        let cases = [
            (
                FieldError::new(Field::Subject, Some(Locale::Da), Rule::Length { max: 200 }),
                "subject.da must be 1 to 200 characters",
            ),
            (
                FieldError::new(Field::Name, None, Rule::SingleLine),
                "name must be a single line",
            ),
            (
                FieldError::new(
                    Field::VariantIntro("B".into()),
                    Some(Locale::Sv),
                    Rule::ControlCharacters,
                ),
                "variant B intro.sv contains control characters",
            ),
            (
                FieldError::new(Field::Intro, None, Rule::ForbiddenWord("gratis".into())),
                "intro must not use the word 'gratis': nothing may be called free in return for consent",
            ),
            (
                FieldError::new(
                    Field::ConsentText,
                    Some(Locale::Nb),
                    Rule::UnknownConsentText("x".into()),
                ),
                "consent_texts.nb 'x' is not a consent text of this workspace",
            ),
            (
                FieldError::new(Field::ConsentText, None, Rule::UnknownConsentText("x".into())),
                "consent_text_id 'x' is not a consent text of this workspace",
            ),
            (
                FieldError::new(Field::Languages, None, Rule::NoLanguage),
                "consent_texts must name at least one locale",
            ),
            (
                FieldError::new(Field::Variant("b!".into()), None, Rule::VariantName),
                "variant name 'b!' must be 1 to 20 letters, digits, '-' or '_'",
            ),
            (
                FieldError::new(Field::Variant("B".into()), None, Rule::DuplicateVariantName),
                "variant name 'B' is used twice",
            ),
            (
                FieldError::new(Field::Variant("B".into()), None, Rule::Weight),
                "variant 'B': weight must be 1 to 1000",
            ),
        ];
        for (error, words) in cases {
            assert_eq!(error.to_string(), words);
        }
    }
}
