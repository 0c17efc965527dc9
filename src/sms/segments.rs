//! How many SMS segments (billed messages) a text needs.
//!
//! Text that fits the GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1) and its extension table
//! (§6.2.1.1) is sent as 7-bit septets; anything else forces the whole message into UCS-2. National
//! language shift tables (TS 23.038 §6.2.1.2) are not used: providers rarely apply them and
//! counting without them can only over-estimate, never under-estimate, the cost.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SegmentCount {
    pub encoding: Encoding,
    /// Septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
    /// Units left in the last segment.
    pub remaining: usize,
}

/// 140 octets of user data hold 160 septets or 70 UCS-2 units (TS 23.040 §9.2.3.16).
const GSM7_SINGLE: usize = 160;
const UCS2_SINGLE: usize = 70;
/// A concatenated segment spends 6 octets on its user data header (TS 23.040 §9.2.3.24.1), which
/// costs 7 septets (with fill bits) or 3 UCS-2 units.
const GSM7_CONCATENATED: usize = 153;
const UCS2_CONCATENATED: usize = 67;

/// Segments needed for `text`.
///
/// Empty text is one segment of zero units: carriers deliver and bill an empty SMS as one message.
///
/// A character is never split across two segments: a GSM-7 extension character (escape + code) or
/// a UCS-2 surrogate pair that would straddle a boundary moves to the next segment, leaving one
/// unit of the previous segment unused, as handsets cannot reassemble a split character.
/// `units` counts the text itself, without such padding.
pub fn count(text: &str) -> SegmentCount {
    let (encoding, single, concatenated) = if is_gsm7(text) {
        (Encoding::Gsm7, GSM7_SINGLE, GSM7_CONCATENATED)
    } else {
        (Encoding::Ucs2, UCS2_SINGLE, UCS2_CONCATENATED)
    };
    let units_of = |c: char| match encoding {
        // Every character is in the alphabet here; the fallback is never taken.
        Encoding::Gsm7 => gsm7_septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    };
    let units: usize = text.chars().map(units_of).sum();
    if units <= single {
        return SegmentCount {
            encoding,
            units,
            segments: 1,
            remaining: single - units,
        };
    }
    let mut segments = 1;
    let mut used = 0;
    for c in text.chars() {
        let size = units_of(c);
        if used + size > concatenated {
            segments += 1;
            used = 0;
        }
        used += size;
    }
    SegmentCount {
        encoding,
        units,
        segments,
        remaining: concatenated - used,
    }
}

/// Whether every character of `text` is in the GSM 03.38 default alphabet or its extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// Septets a character costs in GSM-7: 1 in the default alphabet, 2 in the extension table
/// (escape 0x1B plus the code), `None` outside both.
fn gsm7_septets(c: char) -> Option<usize> {
    match c {
        // TS 23.038 §6.2.1, in code order; 0x1B is the escape, not a character. 0x09 is the
        // capital Ç as the table and Unicode's GSM0338.TXT map it.
        '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r' | 'Å' | 'å' => {
            Some(1)
        }
        'Δ' | '_' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' => {
            Some(1)
        }
        ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/' => Some(1),
        '0'..='9' | ':' | ';' | '<' | '=' | '>' | '?' => Some(1),
        '¡' | 'A'..='Z' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' => Some(1),
        '¿' | 'a'..='z' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        // TS 23.038 §6.2.1.1 extension table: form feed ^ { } \ [ ~ ] | €.
        '\u{000C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm(units: usize, segments: usize, remaining: usize) -> SegmentCount {
        SegmentCount {
            encoding: Encoding::Gsm7,
            units,
            segments,
            remaining,
        }
    }

    fn ucs2(units: usize, segments: usize, remaining: usize) -> SegmentCount {
        SegmentCount {
            encoding: Encoding::Ucs2,
            units,
            segments,
            remaining,
        }
    }

    #[test]
    fn alphabet_has_127_basic_and_10_extension_characters() {
        // Guards the table against typos and look-alikes: 128 codes minus the escape, plus 10
        // extension characters, and nothing else anywhere in Unicode.
        let all = (0..=0x10FFFF_u32).filter_map(char::from_u32);
        let (mut basic, mut extension) = (0, 0);
        for c in all {
            match gsm7_septets(c) {
                Some(1) => basic += 1,
                Some(2) => extension += 1,
                Some(n) => panic!("{c:?} costs {n}"),
                None => {}
            }
        }
        assert_eq!((basic, extension), (127, 10));
    }

    #[test]
    fn greek_capitals_are_the_greek_code_points() {
        for c in [
            '\u{0394}', '\u{03A6}', '\u{0393}', '\u{039B}', '\u{03A9}', '\u{03A0}', '\u{03A8}',
        ] {
            assert!(is_gsm7(&c.to_string()), "{c:?}");
        }
        for c in ['\u{03A3}', '\u{0398}', '\u{039E}'] {
            assert!(is_gsm7(&c.to_string()), "{c:?}");
        }
        // OHM SIGN and INCREMENT look the same but are not in the alphabet.
        assert!(!is_gsm7("\u{2126}"));
        assert!(!is_gsm7("\u{2206}"));
    }

    #[test]
    fn nordic_letters_are_gsm7() {
        assert!(is_gsm7("æøåÆØÅäöÄÖ"));
        assert_eq!(count("Blåbærgrød på Østerbro, Ærø og Göteborg"), gsm(39, 1, 121));
        assert!(is_gsm7(
            "Hej! Svar JA for at bekræfte. 100% @ £5, ¿¡ § ¤ ß É Ñ Ü ñ ü à ì ò ù è é Ç"
        ));
    }

    #[test]
    fn letters_outside_the_alphabet_force_ucs2() {
        // Lower-case ç, á, ê and the Polish/Czech/Icelandic letters are not in GSM 03.38.
        for text in ["ç", "á", "ê", "ł", "ř", "þ", "ð", "õ", "Ş", "“quoted”", "…"] {
            assert!(!is_gsm7(text), "{text}");
            assert_eq!(count(text).encoding, Encoding::Ucs2, "{text}");
        }
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        assert_eq!(count("€"), gsm(2, 1, 158));
        assert_eq!(count("Pris 10 €"), gsm(10, 1, 150));
        assert_eq!(count("^{}\\[~]|\u{000C}€"), gsm(20, 1, 140));
        assert_eq!(count(&"€".repeat(80)), gsm(160, 1, 0));
        assert_eq!(count(&"€".repeat(81)).segments, 2);
    }

    #[test]
    fn emoji_forces_ucs2_and_costs_two_units() {
        assert_eq!(count("Tak 👍"), ucs2(6, 1, 64));
        assert_eq!(count("😀"), ucs2(2, 1, 68));
        // A BMP character costs one unit.
        assert_eq!(count("Ελληνικά"), ucs2(8, 1, 62));
    }

    #[test]
    fn empty_text_is_one_empty_segment() {
        assert_eq!(count(""), gsm(0, 1, 160));
        assert!(is_gsm7(""));
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(count(&"a".repeat(160)), gsm(160, 1, 0));
        assert_eq!(count(&"a".repeat(161)), gsm(161, 2, 145));
        assert_eq!(count(&"a".repeat(306)), gsm(306, 2, 0));
        assert_eq!(count(&"a".repeat(307)), gsm(307, 3, 152));
        assert_eq!(count(&"a".repeat(459)), gsm(459, 3, 0));
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(count(&"ł".repeat(70)), ucs2(70, 1, 0));
        assert_eq!(count(&"ł".repeat(71)), ucs2(71, 2, 63));
        assert_eq!(count(&"ł".repeat(134)), ucs2(134, 2, 0));
        assert_eq!(count(&"ł".repeat(135)), ucs2(135, 3, 66));
    }

    #[test]
    fn extension_character_is_not_split_across_segments() {
        // 152 septets, then € (2) does not fit in the 1 septet left: it opens segment 2.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        assert_eq!(count(&text), gsm(164, 2, 141));
        // Exactly filling the first segment with the escape pair is fine.
        let text = format!("{}€{}", "a".repeat(151), "b".repeat(10));
        assert_eq!(count(&text), gsm(163, 2, 143));
        // Naive division would say 306 septets = 2 segments; the padding makes it 3.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(text.chars().map(|c| gsm7_septets(c).unwrap_or(0)).sum::<usize>(), 306);
        assert_eq!(count(&text), gsm(306, 3, 152));
    }

    #[test]
    fn surrogate_pair_is_not_split_across_segments() {
        // 66 units, then an emoji (2) does not fit in the 1 unit left.
        let text = format!("{}😀{}", "ł".repeat(66), "ł".repeat(10));
        assert_eq!(count(&text), ucs2(78, 2, 55));
        // 134 units would be 2 segments by division; the moved pair makes it 3.
        let text = format!("{}😀{}", "ł".repeat(66), "ł".repeat(66));
        assert_eq!(count(&text), ucs2(134, 3, 66));
    }

    #[test]
    fn long_text_is_counted_linearly() {
        let text = "a".repeat(153 * 1000);
        assert_eq!(count(&text), gsm(153_000, 1000, 0));
    }

    #[test]
    fn serializes_encoding_in_kebab_case() {
        let json = serde_json::to_string(&count("€")).expect("json");
        assert_eq!(json, r#"{"encoding":"gsm7","units":2,"segments":1,"remaining":158}"#);
        let json = serde_json::to_string(&Encoding::Ucs2).expect("json");
        assert_eq!(json, r#""ucs2""#);
    }
}
