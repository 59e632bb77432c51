//! Keyword rules: a comment and a rule's keywords are normalized the same way
//! ([`Normalized`]) and compared by the rule's mode. A campaign's rules are compiled once into
//! one Aho-Corasick automaton that finds every candidate keyword in one pass over the comment
//! per folding the rules use (usually one); each candidate is then checked against its mode
//! (word boundaries, whole text, repeated letters). The result names the rule and keyword so
//! every decision can be explained.

use std::collections::HashMap;
use std::ops::Range;

use aho_corasick::AhoCorasick;

use crate::campaign::{MatchMode, Require, Rule};
use crate::normalize::{Folding, Form, MANY};

pub use crate::normalize::Normalized;

/// The most keyword text one campaign's automaton is built from: above what the bounds on
/// rules and keywords (campaign files and Postgres) allow, and small enough that building it
/// costs a few megabytes at most, whatever a row holds.
pub const MAX_PATTERN_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error(
        "its keywords come to {bytes} bytes, more than the {MAX_PATTERN_BYTES} one campaign may \
         use: remove rules or keywords"
    )]
    TooLarge { bytes: usize },
    #[error("its keywords cannot be compiled ({0}): remove rules or keywords")]
    Build(#[from] aho_corasick::BuildError),
}

/// Which rule of a campaign matched, on which keyword (as the marketer wrote it), and how.
/// With `require: all` the keyword is the rule's last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule: usize,
    pub keyword: String,
    pub mode: MatchMode,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// Words the automaton looks for, as in [`Form`].
    Words { text: String, runs: Vec<u8> },
    /// Emoji that must all be in the comment, wherever.
    Emoji(Vec<String>),
    /// Nothing to look for (campaign files refuse such keywords): never matches.
    Nothing,
}

/// A keyword or an excluded word of one rule.
#[derive(Debug, Clone)]
struct Term {
    original: String,
    /// Excluded words are always whole words.
    mode: MatchMode,
    folding: Folding,
    pattern: Pattern,
}

impl Term {
    fn new(original: &str, mode: MatchMode, folding: Folding) -> Self {
        let norm = Normalized::new(original);
        let form = norm.form(folding);
        let pattern = if !form.text.is_empty() {
            Pattern::Words {
                text: form.text.clone(),
                runs: form.runs.clone(),
            }
        } else if !norm.emoji().is_empty() {
            Pattern::Emoji(norm.emoji().to_vec())
        } else {
            Pattern::Nothing
        };
        Self {
            original: original.to_owned(),
            mode,
            folding,
            pattern,
        }
    }

    /// Whether the automaton's hit at `start..end` of `form` satisfies this term's mode.
    fn fits(&self, form: &Form, start: usize, end: usize) -> bool {
        let Pattern::Words { runs, .. } = &self.pattern else {
            return false;
        };
        let bytes = form.text.as_bytes();
        let starts_word = start == 0 || bytes[start - 1] == b' ';
        let ends_word = end == bytes.len() || bytes[end] == b' ';
        // Where the match need not end on a word boundary, the comment's letter may run on.
        let (loose_start, loose_end) = match self.mode {
            MatchMode::WholeWord | MatchMode::Phrase if starts_word && ends_word => (false, false),
            MatchMode::Prefix if starts_word => (false, true),
            MatchMode::Contains => (true, true),
            MatchMode::Exact if start == 0 && end == bytes.len() => (false, false),
            _ => return false,
        };
        runs.is_empty() || runs_fit(runs, &form.runs[start..end], loose_start, loose_end)
    }
}

/// With `stretch`, letter by letter: the same count, or either side written three times or
/// more (`priiice` = `price`, `coffeeee` = `coffee`, but `cofee` is not `coffee`).
fn runs_fit(keyword: &[u8], text: &[u8], loose_start: bool, loose_end: bool) -> bool {
    let last = keyword.iter().rposition(|&r| r != 0).unwrap_or(0);
    keyword
        .iter()
        .zip(text)
        .enumerate()
        .filter(|(_, (k, _))| **k != 0)
        .all(|(i, (&k, &t))| {
            let loose = (i == 0 && loose_start) || (i == last && loose_end);
            k == t || k == MANY || t == MANY || (loose && t > k)
        })
}

#[derive(Debug, Clone)]
struct CompiledRule {
    mode: MatchMode,
    require: Require,
    /// Indexes into [`Matcher::terms`].
    keywords: Range<usize>,
    exclude: Range<usize>,
}

/// A campaign's rules, compiled once when the campaign set is loaded.
#[derive(Debug, Clone)]
pub struct Matcher {
    rules: Vec<CompiledRule>,
    terms: Vec<Term>,
    /// Every distinct normalized keyword and excluded word of the rules.
    automaton: AhoCorasick,
    /// For each automaton pattern, the terms that read as it.
    targets: Vec<Vec<usize>>,
    /// The foldings the rules use: the comment is scanned once in each.
    foldings: Vec<Folding>,
}

impl Matcher {
    pub fn new(rules: &[Rule]) -> Result<Self, MatcherError> {
        let mut terms = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut foldings = Vec::new();
        for rule in rules {
            let folding = Folding {
                fold_accents: rule.fold_accents,
                stretch: rule.stretch,
            };
            if !foldings.contains(&folding) {
                foldings.push(folding);
            }
            let start = terms.len();
            terms.extend(
                rule.keywords
                    .iter()
                    .map(|k| Term::new(k, rule.mode, folding)),
            );
            let middle = terms.len();
            terms.extend(
                rule.exclude
                    .iter()
                    .map(|e| Term::new(e, MatchMode::WholeWord, folding)),
            );
            compiled.push(CompiledRule {
                mode: rule.mode,
                require: rule.require,
                keywords: start..middle,
                exclude: middle..terms.len(),
            });
        }

        let mut patterns: Vec<&str> = Vec::new();
        let mut targets: Vec<Vec<usize>> = Vec::new();
        let mut ids = HashMap::new();
        for (t, term) in terms.iter().enumerate() {
            if let Pattern::Words { text, .. } = &term.pattern {
                let id = *ids.entry(text.as_str()).or_insert_with(|| {
                    patterns.push(text.as_str());
                    targets.push(Vec::new());
                    targets.len() - 1
                });
                targets[id].push(t);
            }
        }
        let bytes = patterns.iter().map(|p| p.len()).sum();
        if bytes > MAX_PATTERN_BYTES {
            return Err(MatcherError::TooLarge { bytes });
        }
        let automaton = AhoCorasick::new(&patterns)?;
        Ok(Self {
            rules: compiled,
            terms,
            automaton,
            targets,
            foldings,
        })
    }

    /// The first rule, in order, that the text satisfies.
    pub fn find(&self, text: &Normalized) -> Option<RuleMatch> {
        let mut hit: Vec<bool> = self
            .terms
            .iter()
            .map(|t| match &t.pattern {
                Pattern::Emoji(emoji) => emoji.iter().all(|e| text.emoji().contains(e)),
                Pattern::Words { .. } | Pattern::Nothing => false,
            })
            .collect();
        for &folding in &self.foldings {
            let form = text.form(folding);
            // Overlapping: a hit rejected by its mode must not hide a later one.
            for m in self.automaton.find_overlapping_iter(&form.text) {
                for &t in &self.targets[m.pattern().as_usize()] {
                    let term = &self.terms[t];
                    if !hit[t] && term.folding == folding && term.fits(form, m.start(), m.end()) {
                        hit[t] = true;
                    }
                }
            }
        }
        self.rules.iter().enumerate().find_map(|(i, rule)| {
            if rule.exclude.clone().any(|t| hit[t]) {
                return None;
            }
            let mut keywords = rule.keywords.clone();
            let keyword = match rule.require {
                Require::Any => keywords.find(|&t| hit[t])?,
                Require::All if keywords.clone().all(|t| hit[t]) => keywords.last()?,
                Require::All => return None,
            };
            Some(RuleMatch {
                rule: i,
                keyword: self.terms[keyword].original.clone(),
                mode: rule.mode,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(mode: MatchMode, keywords: &[&str]) -> Rule {
        Rule {
            mode,
            require: Require::Any,
            keywords: keywords.iter().map(|s| (*s).to_owned()).collect(),
            exclude: Vec::new(),
            fold_accents: true,
            stretch: false,
        }
    }
    fn word(keywords: &[&str]) -> Rule {
        rule(MatchMode::WholeWord, keywords)
    }
    fn phrase(keywords: &[&str]) -> Rule {
        rule(MatchMode::Phrase, keywords)
    }
    fn prefix(keywords: &[&str]) -> Rule {
        rule(MatchMode::Prefix, keywords)
    }
    fn contains(keywords: &[&str]) -> Rule {
        rule(MatchMode::Contains, keywords)
    }
    fn exact(keywords: &[&str]) -> Rule {
        rule(MatchMode::Exact, keywords)
    }
    fn all(r: Rule) -> Rule {
        Rule {
            require: Require::All,
            ..r
        }
    }
    fn except(r: Rule, exclude: &[&str]) -> Rule {
        Rule {
            exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
            ..r
        }
    }
    fn stretch(r: Rule) -> Rule {
        Rule { stretch: true, ..r }
    }
    fn keep_accents(r: Rule) -> Rule {
        Rule {
            fold_accents: false,
            ..r
        }
    }

    fn hit(r: &Rule, text: &str) -> Option<String> {
        Matcher::new(std::slice::from_ref(r))
            .unwrap()
            .find(&Normalized::new(text))
            .map(|m| m.keyword)
    }

    /// The table: (comment, rule, the keyword that must match or `None`).
    #[test]
    fn comments_against_rules() {
        let price = || word(&["price", "cost", "how much", "kitna", "prix", "விலை"]);
        let cases: Vec<(&str, Rule, Option<&str>)> = vec![
            // Latin: case, punctuation and emoji as separators, whole words.
            ("Price??? 😍", price(), Some("price")),
            ("PRICE pls", price(), Some("price")),
            ("prix ?", price(), Some("prix")),
            ("how MUCH is it", price(), Some("how much")),
            ("cost...", price(), Some("cost")),
            ("priceless", price(), None),
            ("pricey", price(), None),
            ("costs", price(), None),
            ("how is it, much love", price(), None),
            ("nice shoes", price(), None),
            // Accents: folded by default, kept on request; NFKC and full case folding.
            ("précio?", word(&["precio"]), Some("precio")),
            ("PRECIO", word(&["précio"]), Some("précio")),
            ("précio", keep_accents(word(&["precio"])), None),
            (
                "pre\u{301}cio",
                keep_accents(word(&["précio"])),
                Some("précio"),
            ),
            ("ＰＲＩＣＥ？", price(), Some("price")),
            ("ｐｒｉｘ", price(), Some("prix")),
            ("ⓟⓡⓘⓒⓔ", price(), Some("price")),
            ("ﬁnal sale", word(&["final"]), Some("final")),
            ("GROSSE?", word(&["größe"]), Some("größe")),
            ("FİYAT", word(&["fiyat"]), Some("fiyat")),
            ("ΤΙΜΗ;", word(&["τιμή"]), Some("τιμή")),
            ("ΤΙΜΗ;", keep_accents(word(&["τιμή"])), None),
            // Phrase, prefix, contains, exact.
            (
                "what's the price list",
                phrase(&["price list"]),
                Some("price list"),
            ),
            ("price, list!", phrase(&["price list"]), Some("price list")),
            ("list price", phrase(&["price list"]), None),
            ("price lists", phrase(&["price list"]), None),
            ("pricing?", prefix(&["pric"]), Some("pric")),
            ("Discounts!", prefix(&["discount"]), Some("discount")),
            ("overpriced", prefix(&["pric"]), None),
            ("links please", contains(&["link"]), Some("link")),
            ("DM me the LINK!!", contains(&["link"]), Some("link")),
            ("lnk", contains(&["link"]), None),
            ("  INFO! ", exact(&["info"]), Some("info")),
            ("Info 🔥", exact(&["info"]), Some("info")),
            ("more info", exact(&["info"]), None),
            ("info please", exact(&["info"]), None),
            // All-of and exclude.
            (
                "price and size?",
                all(word(&["size", "price"])),
                Some("price"),
            ),
            ("SIZE, price", all(word(&["size", "price"])), Some("price")),
            ("price?", all(word(&["size", "price"])), None),
            ("price no thanks", except(word(&["price"]), &["no"]), None),
            (
                "price now",
                except(word(&["price"]), &["no"]),
                Some("price"),
            ),
            (
                "price? priceless!",
                except(word(&["price"]), &["priceless"]),
                None,
            ),
            ("price 😡", except(word(&["price"]), &["😡"]), None),
            // Repeated letters, when the rule asks for it.
            ("priiiice?", stretch(price()), Some("price")),
            ("priiiice?", price(), None),
            ("coffeeee pls", stretch(word(&["coffee"])), Some("coffee")),
            ("coffee", stretch(word(&["coffee"])), Some("coffee")),
            ("cofee", stretch(word(&["coffee"])), None),
            ("pricee", stretch(price()), None),
            ("PLZZZ send", stretch(word(&["plz"])), Some("plz")),
            ("soooo cute", stretch(phrase(&["so cute"])), Some("so cute")),
            ("linkkkks", stretch(contains(&["link"])), Some("link")),
            ("bookkeeper", stretch(contains(&["keep"])), Some("keep")),
            ("1000", stretch(word(&["10"])), None),
            // Cyrillic.
            ("Какая ЦЕНА?", word(&["цена"]), Some("цена")),
            ("ценами", word(&["цена"]), None),
            ("цены", prefix(&["цен"]), Some("цен")),
            (
                "Сколько СТОИТ?",
                phrase(&["сколько стоит"]),
                Some("сколько стоит"),
            ),
            ("Ёлка", word(&["елка"]), Some("елка")),
            ("ЦЕЕЕНА", stretch(word(&["цена"])), Some("цена")),
            // Arabic: vowel marks are kept, presentation forms and tatweel are not.
            ("كم السعر؟", word(&["السعر"]), Some("السعر")),
            ("السـعر", word(&["السعر"]), Some("السعر")),
            ("السعر", word(&["سعر"]), None),
            ("كم السعر", contains(&["سعر"]), Some("سعر")),
            ("ﻛﻢ؟", word(&["كم"]), Some("كم")),
            ("بكم", word(&["كم"]), None),
            ("سِعر", word(&["سعر"]), None),
            // Devanagari and romanized Hindi.
            ("इसकी कीमत क्या है?", word(&["कीमत"]), Some("कीमत")),
            ("कीमतें", word(&["कीमत"]), None),
            ("कीमतें", prefix(&["कीमत"]), Some("कीमत")),
            ("कमत", word(&["कीमत"]), None),
            ("किमत", word(&["कीमत"]), None),
            ("kitna hai?", price(), Some("kitna")),
            ("KITNAAA", stretch(price()), Some("kitna")),
            // Tamil.
            ("விலை என்ன?", price(), Some("விலை")),
            ("விலைகள்", price(), None),
            ("விலைகள்", prefix(&["விலை"]), Some("விலை")),
            ("வலை", price(), None),
            // Emoji triggers: by grapheme, with or without VS16 or skin tone.
            ("🔥🔥🔥", word(&["🔥"]), Some("🔥")),
            ("love it😍", word(&["price", "😍"]), Some("😍")),
            ("❤", word(&["❤️"]), Some("❤️")),
            ("❤️", word(&["❤"]), Some("❤")),
            ("👍🏽", word(&["👍"]), Some("👍")),
            ("😍🔥", word(&["🔥😍"]), Some("🔥😍")),
            ("🔥", price(), None),
            ("price", word(&["🔥"]), None),
            ("👨‍👩‍👧", word(&["👨"]), None),
            ("🇮🇳 price", all(word(&["🇮🇳", "price"])), Some("price")),
        ];
        assert!(cases.len() >= 60, "{} cases", cases.len());
        for (comment, r, expected) in &cases {
            assert_eq!(
                hit(r, comment).as_deref(),
                *expected,
                "{comment:?} with {r:?}"
            );
        }
    }

    #[test]
    fn first_matching_rule_wins_and_the_mode_is_reported() {
        let m = Matcher::new(&[exact(&["price"]), word(&["info", "price"])]).unwrap();
        let at = |text: &str| m.find(&Normalized::new(text));
        let first = at("Price!").unwrap();
        assert_eq!((first.rule, first.mode), (0, MatchMode::Exact));
        let second = at("the price").unwrap();
        assert_eq!((second.rule, second.keyword.as_str()), (1, "price"));
        assert_eq!(second.mode, MatchMode::WholeWord);
        assert_eq!(at("nothing"), None);
    }

    #[test]
    fn a_keyword_shared_by_rules_with_other_foldings_is_checked_in_each() {
        let m = Matcher::new(&[
            keep_accents(word(&["café"])),
            stretch(word(&["cafe"])),
            word(&["cafe"]),
        ])
        .unwrap();
        let rule = |text: &str| m.find(&Normalized::new(text)).map(|h| h.rule);
        assert_eq!(rule("un café"), Some(0));
        assert_eq!(rule("caaafe"), Some(1));
        assert_eq!(rule("cafe"), Some(1));
        assert_eq!(rule("cafés"), None);
    }

    #[test]
    fn too_much_keyword_text_is_an_error_not_a_panic() {
        let keywords: Vec<String> = (0..20_000).map(|i| format!("{i:0>60}")).collect();
        let refs: Vec<&str> = keywords.iter().map(String::as_str).collect();
        let e = Matcher::new(&[word(&refs)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("more than the 1048576 one campaign may use"),
            "{e}"
        );
    }
}
