//! Names people read must show what is stored: bidirectional controls reorder the text after
//! them and zero-width characters hide inside words (Unicode TR #36 section 2.3; "Trojan Source",
//! CVE-2021-42574), so a company or contact name could display as another one.

/// An invisible character that changes how text is shown, found in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error(
    "contains U+{:04X} {}, an invisible character that changes how text is shown; remove it",
    u32::from(*.0),
    hidden_control_name(*.0).unwrap_or("")
)]
pub struct HiddenControl(pub char);

impl HiddenControl {
    /// The character's Unicode name, e.g. `ZERO WIDTH SPACE`.
    pub fn name(self) -> &'static str {
        hidden_control_name(self.0).unwrap_or("")
    }

    /// Its code point and name, as messages show it: `U+200B ZERO WIDTH SPACE`.
    pub fn label(self) -> String {
        format!("U+{:04X} {}", u32::from(self.0), self.name())
    }
}

/// Refuses a value that holds a bidirectional or zero-width control character.
pub fn check_visible(value: &str) -> Result<(), HiddenControl> {
    match value.chars().find(|&c| is_hidden_control(c)) {
        Some(c) => Err(HiddenControl(c)),
        None => Ok(()),
    }
}

/// Bidirectional embeddings, overrides, isolates and marks, and the zero-width characters.
pub fn is_hidden_control(c: char) -> bool {
    hidden_control_name(c).is_some()
}

fn hidden_control_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HIDDEN: [char; 17] = [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}',
    ];

    #[test]
    fn every_bidi_and_zero_width_control_is_refused_and_named() {
        for c in HIDDEN {
            for value in [format!("{c}Anna"), format!("An{c}na"), format!("Anna{c}")] {
                assert_eq!(check_visible(&value), Err(HiddenControl(c)), "{value:?}");
            }
        }
        assert_eq!(
            check_visible("Nordlys Sko\u{202E}gnp.exe").map_err(|e| e.to_string()),
            Err(
                "contains U+202E RIGHT-TO-LEFT OVERRIDE, an invisible character that changes how text is shown; remove it"
                    .to_owned()
            )
        );
        assert_eq!(
            check_visible("gra\u{200B}tis").map_err(|e| e.to_string()),
            Err(
                "contains U+200B ZERO WIDTH SPACE, an invisible character that changes how text is shown; remove it"
                    .to_owned()
            )
        );
    }

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "Åse Ødegård",
            "Zoë O'Brien-Müller",
            "Þórunn",
            "محمد",
            "שרה",
            "李小龙",
            "Nordlys Sko & Co. (Aarhus)",
            "🦊 Shop",
        ] {
            assert_eq!(check_visible(name), Ok(()), "{name}");
        }
    }

    proptest! {
        #[test]
        fn a_hidden_control_anywhere_is_found(
            before in any::<String>(),
            after in any::<String>(),
            pick in 0..HIDDEN.len(),
        ) {
            let value = format!("{before}{}{after}", HIDDEN[pick]);
            prop_assert!(check_visible(&value).is_err());
        }

        #[test]
        fn text_without_them_passes(value in any::<String>()) {
            let clean: String = value.chars().filter(|c| !HIDDEN.contains(c)).collect();
            prop_assert_eq!(check_visible(&clean), Ok(()));
        }
    }
}
