//! Text normalization shared by comments and keyword rules, so both sides are read the same
//! way: NFKC (fullwidth letters, ligatures), full case folding (`ß` = `ss`), invisible
//! characters dropped, emoji set aside, Unicode words (UAX #29) joined by single spaces.
//! Rules choose per rule whether accents are folded and repeated letters are tolerated, so a
//! comment is read in every such folding once and each rule looks at its own.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_properties::UnicodeEmoji;
use unicode_script::{Script, UnicodeScript};
use unicode_segmentation::UnicodeSegmentation;

/// The run length recorded for a letter written three times or more.
pub(crate) const MANY: u8 = 3;

/// How a rule reads text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folding {
    pub fold_accents: bool,
    pub stretch: bool,
}

impl Folding {
    fn index(self) -> usize {
        usize::from(self.fold_accents) * 2 + usize::from(self.stretch)
    }
}

/// A text's words in one folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Form {
    /// The words joined by single spaces; with `stretch`, every run of a letter written once.
    pub text: String,
    /// With `stretch`: at the first byte of each character, how often it was written (1, 2 or
    /// [`MANY`]), 0 at the other bytes. Empty without `stretch`.
    pub runs: Vec<u8>,
}

impl Form {
    fn stretched(words: &str) -> Self {
        let mut text = String::with_capacity(words.len());
        let mut runs = Vec::with_capacity(words.len());
        let mut chars = words.chars().peekable();
        while let Some(c) = chars.next() {
            let mut n = 1u8;
            // Digits are never collapsed: "1000" is not "10".
            if c.is_alphabetic() {
                while chars.next_if_eq(&c).is_some() {
                    n = n.saturating_add(1);
                }
            }
            text.push(c);
            runs.push(n.min(MANY));
            runs.resize(text.len(), 0);
        }
        Self { text, runs }
    }
}

/// A text normalized for matching: its words in each folding, and its emoji.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Indexed by [`Folding::index`].
    forms: [Form; 4],
    /// Distinct emoji, without variation selectors or skin tones.
    emoji: Vec<String>,
}

impl Normalized {
    pub fn new(text: &str) -> Self {
        let (words, emoji) = words_and_emoji(text);
        let folded = fold_accents(&words);
        let form = |text: &str| Form {
            text: text.to_owned(),
            runs: Vec::new(),
        };
        Self {
            forms: [
                form(&words),
                Form::stretched(&words),
                form(&folded),
                Form::stretched(&folded),
            ],
            emoji,
        }
    }

    /// Neither a word nor an emoji: nothing a rule could match.
    pub fn is_empty(&self) -> bool {
        self.forms[0].text.is_empty() && self.emoji.is_empty()
    }

    /// The words, case and accents folded, joined by single spaces.
    pub fn words(&self) -> &str {
        &self.forms[Folding {
            fold_accents: true,
            stretch: false,
        }
        .index()]
        .text
    }

    pub(crate) fn form(&self, folding: Folding) -> &Form {
        &self.forms[folding.index()]
    }

    pub(crate) fn emoji(&self) -> &[String] {
        &self.emoji
    }
}

fn words_and_emoji(text: &str) -> (String, Vec<String>) {
    if text.is_ascii() {
        // Already NFKC, folded by lower-casing, and without emoji: the common case, fast.
        return (join_words(&text.to_ascii_lowercase()), Vec::new());
    }
    // NFKC first, so canonically or compatibly equal inputs fold to the same text.
    let folded = caseless::default_case_fold_str(&text.nfkc().collect::<String>());
    let mut rest = String::with_capacity(folded.len());
    let mut emoji = Vec::new();
    for g in folded.graphemes(true) {
        if is_emoji(g) {
            let key = emoji_key(g);
            if !key.is_empty() && !emoji.contains(&key) {
                emoji.push(key);
            }
            rest.push(' ');
        } else {
            rest.extend(g.chars().filter(|&c| !is_invisible(c)));
        }
    }
    (join_words(&rest), emoji)
}

fn join_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.unicode_words() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A grapheme showing an emoji. Digits, `#` and `*` have the Emoji property too, but only
/// count as keycaps (`1️⃣`).
fn is_emoji(grapheme: &str) -> bool {
    grapheme
        .chars()
        .any(|c| c == '\u{20E3}' || (!c.is_ascii() && c.is_emoji_char()))
}

/// An emoji compared without variation selectors (`❤` = `❤️`) or skin tones (`👍🏽` = `👍`).
fn emoji_key(grapheme: &str) -> String {
    grapheme
        .chars()
        .filter(|c| !matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}'))
        .collect()
}

/// Characters that change how text is shown or joined, not what it says (NFKC_Casefold drops
/// most of them too), and the Arabic tatweel that only stretches a word (`ســعر` = `سعر`).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0640}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

/// Drops combining marks from Latin, Greek and Cyrillic letters only (`é` = `e`, `ё` = `е`):
/// in Devanagari, Tamil or Arabic the marks are vowels and viramas, part of the word.
fn fold_accents(words: &str) -> String {
    if words.is_ascii() {
        return words.to_owned();
    }
    let mut out = String::with_capacity(words.len());
    let mut on_foldable_letter = false;
    for c in words.nfd() {
        if is_combining_mark(c) {
            if on_foldable_letter {
                continue;
            }
        } else {
            on_foldable_letter =
                matches!(c.script(), Script::Latin | Script::Greek | Script::Cyrillic);
        }
        out.push(c);
    }
    out.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Folding = Folding {
        fold_accents: false,
        stretch: false,
    };
    const FOLDED: Folding = Folding {
        fold_accents: true,
        stretch: false,
    };

    fn text(s: &str, folding: Folding) -> String {
        Normalized::new(s).form(folding).text.clone()
    }

    #[test]
    fn words_are_nfkc_case_folded_and_separated_by_punctuation_and_emoji() {
        assert_eq!(text("Price??? 😍 PLS", PLAIN), "price pls");
        assert_eq!(text("ＰＲＩＣＥ ﬁne", PLAIN), "price fine");
        assert_eq!(text("STRAẞE", PLAIN), "strasse");
        assert_eq!(text("ΣΟΦΟΣ", PLAIN), "σοφοσ");
        assert_eq!(text("so\u{00AD}ft w\u{200B}ord", PLAIN), "soft word");
        assert_eq!(text("ســعر", PLAIN), "سعر");
        assert!(Normalized::new("?!… —").is_empty());
        assert!(!Normalized::new("🔥").is_empty());
    }

    #[test]
    fn accents_fold_on_latin_greek_and_cyrillic_only() {
        assert_eq!(text("Précio ÉTÉ", FOLDED), "precio ete");
        assert_eq!(text("Précio", PLAIN), "précio");
        assert_eq!(text("ёлка ά", FOLDED), "елка α");
        // Vowel signs and viramas stay: without them the word changes.
        assert_eq!(text("कीमत विलम्ब", FOLDED), "कीमत विलम्ब");
        assert_eq!(text("விலை", FOLDED), "விலை");
        assert_eq!(text("سِعر", FOLDED), "سِعر");
    }

    #[test]
    fn emoji_are_kept_apart_without_selectors_or_skin_tones() {
        let n = Normalized::new("love ❤️ it 👍🏽👍 1️⃣ 🇮🇳 #1");
        assert_eq!(n.emoji(), ["❤", "👍", "1\u{20E3}", "🇮🇳"]);
        assert_eq!(n.form(PLAIN).text, "love it 1");
    }

    #[test]
    fn stretch_collapses_runs_and_records_their_length() {
        let f = Normalized::new("Priiiice coffee 1000").forms[3].clone();
        assert_eq!(f.text, "price cofe 1000");
        let runs: Vec<u8> = f.runs.into_iter().filter(|&r| r != 0).collect();
        assert_eq!(runs, [1, 1, 3, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1]);
    }
}
