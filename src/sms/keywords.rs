//! Classifies an inbound SMS reply by its first word (PRODUCT.md, "SMS replies").
//!
//! Matching rules:
//! - The first word is what precedes the first Unicode whitespace (so "Ja tak" is `JA`).
//! - Anything that is not a letter or digit is trimmed from both ends of that word: "Ja!", "ja.",
//!   "JA,", "\"stop\"", "¡STOP!", "Ja😊" all count. Inside the word it stays, so "Y'all" and
//!   "STOP-ALL" are not keywords.
//! - A question mark makes `Confirm` and `Start` void ("Ja?", "OK?"): consent must be unambiguous
//!   (GDPR art. 4(11)), and the sender gets the hint instead. "Stop?" and "Help?" still count, since
//!   withdrawal must be as easy as consent (GDPR art. 7(3)).
//! - Case and accents are folded on both sides: lower-case, then æ→ae, ø→o, å→a, ä→a, ö→o, é→e,
//!   ü→u, and combining accents (decomposed input like "a\u{308}") are dropped. So "bekræft",
//!   "Bekraeft" and "BEKRÆFT" match, as do "bekräfta" and "BEKRAFTA".
//! - "BEKRAFT" is accepted as well: it is Danish typed without æ, the spelling the Swedish
//!   BEKRÄFTA already gets for free by folding.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Confirm,
    Stop,
    Help,
    Start,
}

/// The lists from PRODUCT.md, spelled as there; compared after folding.
const KEYWORDS: &[(&str, Keyword)] = &[
    ("JA", Keyword::Confirm),
    ("YES", Keyword::Confirm),
    ("Y", Keyword::Confirm),
    ("BEKRÆFT", Keyword::Confirm),
    ("BEKRAFT", Keyword::Confirm),
    ("BEKREFT", Keyword::Confirm),
    ("BEKRÄFTA", Keyword::Confirm),
    ("OK", Keyword::Confirm),
    ("STOP", Keyword::Stop),
    ("STOPP", Keyword::Stop),
    ("STOPALL", Keyword::Stop),
    ("UNSUBSCRIBE", Keyword::Stop),
    ("CANCEL", Keyword::Stop),
    ("END", Keyword::Stop),
    ("QUIT", Keyword::Stop),
    ("AFMELD", Keyword::Stop),
    ("AVMELD", Keyword::Stop),
    ("AVSLUTA", Keyword::Stop),
    ("HELP", Keyword::Help),
    ("HJÆLP", Keyword::Help),
    ("HJELP", Keyword::Help),
    ("HJÄLP", Keyword::Help),
    ("INFO", Keyword::Help),
    ("START", Keyword::Start),
];

/// Longest first word looked at; the longest keyword is 11 letters, the rest is room for
/// punctuation. Keeps the work per message bounded whatever the body's length.
const MAX_WORD_CHARS: usize = 64;

/// First word, trimmed, case- and accent-insensitive; `None` for anything else.
///
/// Work is linear in leading whitespace plus at most [`MAX_WORD_CHARS`] characters, and nothing
/// is allocated.
pub fn parse(body: &str) -> Option<Keyword> {
    let word = first_word(body)?;
    let core = word.trim_matches(|c: char| !c.is_alphanumeric());
    if core.is_empty() {
        return None;
    }
    let keyword = KEYWORDS
        .iter()
        .find(|(spelling, _)| folded(spelling).eq(folded(core)))
        .map(|&(_, keyword)| keyword)?;
    let grants_consent = matches!(keyword, Keyword::Confirm | Keyword::Start);
    if grants_consent && word.chars().any(is_question_mark) {
        return None;
    }
    Some(keyword)
}

/// The text before the first whitespace, or `None` if there is none or it is too long.
fn first_word(body: &str) -> Option<&str> {
    let rest = body.trim_start();
    let mut end = rest.len();
    for (seen, (at, c)) in rest.char_indices().enumerate() {
        if c.is_whitespace() {
            end = at;
            break;
        }
        if seen == MAX_WORD_CHARS {
            return None;
        }
    }
    rest.get(..end).filter(|word| !word.is_empty())
}

/// `text` lower-cased with the Nordic and common accented letters reduced to ASCII.
fn folded(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars()
        .flat_map(char::to_lowercase)
        .flat_map(|c| match c {
            'æ' => [Some('a'), Some('e')],
            'ø' | 'ö' => [Some('o'), None],
            'å' | 'ä' => [Some('a'), None],
            'é' => [Some('e'), None],
            'ü' => [Some('u'), None],
            // Combining diacritical marks: the same letters typed in decomposed form.
            '\u{0300}'..='\u{036F}' => [None, None],
            other => [Some(other), None],
        })
        .flatten()
}

fn is_question_mark(c: char) -> bool {
    matches!(c, '?' | '¿' | '？' | '⸮' | '‽' | '⁇' | '⁈' | '⁉')
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIRM: &[&str] = &["JA", "YES", "Y", "BEKRÆFT", "BEKREFT", "BEKRÄFTA", "OK"];
    const STOP: &[&str] = &[
        "STOP",
        "STOPP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "AFMELD",
        "AVMELD",
        "AVSLUTA",
    ];
    const HELP: &[&str] = &["HELP", "HJÆLP", "HJELP", "HJÄLP", "INFO"];
    const START: &[&str] = &["START"];

    fn title_case(word: &str) -> String {
        let mut chars = word.chars();
        let first: String = chars.next().into_iter().collect();
        first + &chars.as_str().to_lowercase()
    }

    fn alternating_case(word: &str) -> String {
        word.chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_lowercase().collect::<String>()
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn every_product_keyword_in_several_casings() {
        let lists = [
            (CONFIRM, Keyword::Confirm),
            (STOP, Keyword::Stop),
            (HELP, Keyword::Help),
            (START, Keyword::Start),
        ];
        for (words, expected) in lists {
            for word in words {
                for variant in [
                    word.to_string(),
                    word.to_lowercase(),
                    title_case(word),
                    alternating_case(word),
                ] {
                    assert_eq!(parse(&variant), Some(expected), "{variant}");
                }
            }
        }
    }

    #[test]
    fn table_spellings_do_not_collide_after_folding() {
        for (i, (a, ka)) in KEYWORDS.iter().enumerate() {
            for (b, kb) in &KEYWORDS[i + 1..] {
                assert!(!folded(a).eq(folded(b)), "{a} and {b} fold alike ({ka:?}, {kb:?})");
            }
        }
    }

    #[test]
    fn accents_are_folded_on_both_sides() {
        for body in ["bekræft", "Bekraeft", "BEKRAEFT", "bekraft", "BEKRAFT", "bekrÆft"] {
            assert_eq!(parse(body), Some(Keyword::Confirm), "{body}");
        }
        for body in ["bekräfta", "BEKRAFTA", "Bekrafta", "BEKRÄFTA"] {
            assert_eq!(parse(body), Some(Keyword::Confirm), "{body}");
        }
        // Folding is no spelling tolerance: a misspelt word stays unknown.
        assert_eq!(parse("bekrefta"), None);
        assert_eq!(parse("bekrft"), None);
        for body in ["hjælp", "HJAELP", "hjälp", "Hjalp", "hjelp"] {
            assert_eq!(parse(body), Some(Keyword::Help), "{body}");
        }
        // Decomposed (NFD) input, as some keyboards send it.
        assert_eq!(parse("bekra\u{0308}fta"), Some(Keyword::Confirm));
        assert_eq!(parse("HJA\u{0308}LP"), Some(Keyword::Help));
    }

    #[test]
    fn trailing_and_leading_punctuation_is_ignored() {
        let cases = [
            ("Ja!", Keyword::Confirm),
            ("ja.", Keyword::Confirm),
            ("JA,", Keyword::Confirm),
            ("\"Ja\"", Keyword::Confirm),
            ("Ja😊", Keyword::Confirm),
            ("OK!!! tak", Keyword::Confirm),
            ("stop.", Keyword::Stop),
            ("STOPP!!", Keyword::Stop),
            ("¡STOP!", Keyword::Stop),
            ("(afmeld)", Keyword::Stop),
            ("*Avsluta*", Keyword::Stop),
            ("info:", Keyword::Help),
            ("Start.", Keyword::Start),
        ];
        for (body, expected) in cases {
            assert_eq!(parse(body), Some(expected), "{body}");
        }
    }

    #[test]
    fn a_question_does_not_grant_consent_but_still_stops() {
        for body in ["Ja?", "OK?", "yes?!", "¿Y?", "start?", "Bekræft？"] {
            assert_eq!(parse(body), None, "{body}");
        }
        assert_eq!(parse("Stop?"), Some(Keyword::Stop));
        assert_eq!(parse("hjælp?"), Some(Keyword::Help));
        assert_eq!(parse("Help??"), Some(Keyword::Help));
        // Only the keyword's own punctuation counts; a question later in the text does not.
        assert_eq!(parse("Ja, hvad koster det?"), Some(Keyword::Confirm));
    }

    #[test]
    fn only_the_first_word_counts() {
        assert_eq!(parse("Ja tak"), Some(Keyword::Confirm));
        assert_eq!(parse("  ok  "), Some(Keyword::Confirm));
        assert_eq!(parse("\tJA\n"), Some(Keyword::Confirm));
        assert_eq!(parse("ja\u{00A0}tak"), Some(Keyword::Confirm));
        assert_eq!(parse("\u{3000}stop"), Some(Keyword::Stop));
        assert_eq!(parse("stop\r\nplease"), Some(Keyword::Stop));
        assert_eq!(parse("nej ja"), None);
        assert_eq!(parse("please stop"), None);
    }

    #[test]
    fn the_whole_first_word_must_match() {
        for body in [
            "Jaguar",
            "Yesterday",
            "Stopwatch",
            "Okay",
            "Information",
            "Starter",
            "Endnu",
            "Y'all",
            "STOP-ALL",
            "ok1",
            "1ja",
            "nej",
            "hej",
        ] {
            assert_eq!(parse(body), None, "{body}");
        }
    }

    #[test]
    fn empty_and_non_text_bodies() {
        for body in ["", "   ", "\n\t", "!!!", "?", "👍", "😀 ja", "🇩🇰", "123"] {
            assert_eq!(parse(body), None, "{body:?}");
        }
    }

    #[test]
    fn long_bodies_are_cheap_and_safe() {
        let tail = "x".repeat(1_000_000);
        assert_eq!(parse(&format!("STOP {tail}")), Some(Keyword::Stop));
        assert_eq!(parse(&tail), None);
        assert_eq!(parse(&"😀".repeat(1_000_000)), None);
        assert_eq!(parse(&format!("ja{}", "!".repeat(1_000_000))), None);
        assert_eq!(parse(&format!("{}stop", " ".repeat(100_000))), Some(Keyword::Stop));
        // Up to MAX_WORD_CHARS characters of punctuation are still read.
        assert_eq!(parse(&format!("stopp{}", "!".repeat(59))), Some(Keyword::Stop));
        assert_eq!(parse(&format!("stopp{}", "!".repeat(60))), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Every spelling in the table with the keyword it stands for.
        fn keyword() -> impl Strategy<Value = (&'static str, Keyword)> {
            prop::sample::select(KEYWORDS.to_vec())
        }

        /// The word with each letter's case chosen at random (Nordic letters included: their
        /// upper and lower case are one character each).
        fn any_case(word: &str, upper: &[bool]) -> String {
            word.chars()
                .zip(upper.iter().cycle())
                .map(|(c, &up)| {
                    if up {
                        c.to_uppercase().collect::<String>()
                    } else {
                        c.to_lowercase().collect()
                    }
                })
                .collect()
        }

        /// Whitespace as phones send it: ASCII, no-break and ideographic spaces, line breaks.
        fn whitespace(min: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop::sample::select(vec![' ', '\t', '\n', '\r', '\u{a0}', '\u{3000}']),
                min..4,
            )
            .prop_map(|v| v.into_iter().collect())
        }

        /// Punctuation and symbols around a word, neither letters, digits, whitespace nor question
        /// marks.
        fn punctuation() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop::sample::select(vec![
                    '!', '.', ',', '"', '\'', '(', ')', '*', '¡', ':', ';', '…', '😊', '-',
                ]),
                0..4,
            )
            .prop_map(|v| v.into_iter().collect())
        }

        fn question_mark() -> impl Strategy<Value = char> {
            prop::sample::select(vec!['?', '¿', '？', '⸮', '‽', '⁇', '⁈', '⁉'])
        }

        proptest! {
            #![proptest_config(crate::fuzzing::config(1000))]

            /// Never panics, and only whitespace before the first word and ASCII case never
            /// change the answer.
            #[test]
            fn any_text_is_classified_without_panicking(body in any::<String>(), lead in whitespace(0)) {
                let keyword = parse(&body);
                prop_assert_eq!(parse(&format!("{lead}{body}")), keyword);
                prop_assert_eq!(parse(&body.to_ascii_uppercase()), keyword);
                prop_assert_eq!(parse(&body.to_ascii_lowercase()), keyword);
            }

            /// What comes after the first word never matters.
            #[test]
            fn only_the_first_word_counts(
                word in "\\S{1,70}",
                gap in whitespace(1),
                rest in any::<String>(),
            ) {
                prop_assume!(!word.chars().any(char::is_whitespace));
                prop_assert_eq!(parse(&format!("{word}{gap}{rest}")), parse(&word));
            }

            /// Every keyword of the table is recognised in any case, behind whitespace, wrapped in
            /// punctuation and followed by more words.
            #[test]
            fn keywords_are_recognised_however_they_are_written(
                (spelling, expected) in keyword(),
                upper in prop::collection::vec(any::<bool>(), 1..12),
                (lead, before, after, gap) in (whitespace(0), punctuation(), punctuation(), whitespace(1)),
                rest in ".{0,20}",
            ) {
                let word = format!("{before}{}{after}", any_case(spelling, &upper));
                prop_assert_eq!(parse(&format!("{lead}{word}")), Some(expected), "{:?}", word);
                prop_assert_eq!(parse(&format!("{lead}{word}{gap}{rest}")), Some(expected), "{:?}", word);
            }

            /// A question mark anywhere in the first word voids a confirmation or a START
            /// ("Ja?"), never a STOP or HELP.
            #[test]
            fn a_question_voids_consent_but_never_a_withdrawal(
                (spelling, keyword) in keyword(),
                (before, after) in (punctuation(), punctuation()),
                question in question_mark(),
                question_first in any::<bool>(),
            ) {
                let word = if question_first {
                    format!("{question}{before}{spelling}{after}")
                } else {
                    format!("{before}{spelling}{after}{question}")
                };
                let expected = match keyword {
                    Keyword::Confirm | Keyword::Start => None,
                    Keyword::Stop | Keyword::Help => Some(keyword),
                };
                prop_assert_eq!(parse(&word), expected, "{:?}", word);
            }

            /// A keyword with letters or digits added to it is another word ("Stopwatch",
            /// "Jaguar", "ok1"), unless that word is itself a keyword ("STOP" + "P").
            #[test]
            fn letters_joined_to_a_keyword_make_another_word(
                (spelling, _) in keyword(),
                extra in "[a-zA-Z0-9]{1,3}",
                extra_first in any::<bool>(),
            ) {
                let word = if extra_first { format!("{extra}{spelling}") } else { format!("{spelling}{extra}") };
                let in_table = KEYWORDS.iter().find(|(s, _)| folded(s).eq(folded(&word))).map(|&(_, k)| k);
                prop_assert_eq!(parse(&word), in_table, "{:?}", word);
            }
        }
    }
}
