//! Keyword rules: a comment and a rule's keywords are normalized the same way and compared by
//! the rule's mode. The result names the rule and keyword so every decision can be explained.

use unicode_segmentation::UnicodeSegmentation;

use crate::campaign::{MatchMode, Require, Rule};

/// A text cut into lower-cased Unicode words (UAX #29), punctuation and emoji dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    words: Vec<String>,
    joined: String,
}

impl Normalized {
    pub fn new(text: &str) -> Self {
        let lower = text.to_lowercase();
        let words: Vec<String> = lower.unicode_words().map(str::to_owned).collect();
        let joined = words.join(" ");
        Self { words, joined }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    fn has_phrase(&self, phrase: &Self) -> bool {
        !phrase.words.is_empty()
            && self
                .words
                .windows(phrase.words.len())
                .any(|w| w == phrase.words.as_slice())
    }
}

#[derive(Debug, Clone)]
struct Keyword {
    original: String,
    norm: Normalized,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    mode: MatchMode,
    require: Require,
    keywords: Vec<Keyword>,
    exclude: Vec<Normalized>,
}

impl CompiledRule {
    fn hits(&self, text: &Normalized, kw: &Keyword) -> bool {
        match self.mode {
            MatchMode::WholeWord => text.has_phrase(&kw.norm),
            MatchMode::Contains => !kw.norm.is_empty() && text.joined.contains(&kw.norm.joined),
            MatchMode::Exact => text.joined == kw.norm.joined,
        }
    }

    /// The keyword that decided the match (the first hit; for `all`, the last one checked).
    fn find<'a>(&'a self, text: &Normalized) -> Option<&'a Keyword> {
        if self.exclude.iter().any(|ex| text.has_phrase(ex)) {
            return None;
        }
        match self.require {
            Require::Any => self.keywords.iter().find(|kw| self.hits(text, kw)),
            Require::All => {
                if self.keywords.iter().all(|kw| self.hits(text, kw)) {
                    self.keywords.last()
                } else {
                    None
                }
            }
        }
    }
}

/// Which rule of a campaign matched, and on which keyword (as the marketer wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule: usize,
    pub keyword: String,
}

/// A campaign's rules, normalized once when the campaign is loaded.
#[derive(Debug, Clone)]
pub struct Matcher {
    rules: Vec<CompiledRule>,
}

impl Matcher {
    pub fn new(rules: &[Rule]) -> Self {
        let rules = rules
            .iter()
            .map(|r| CompiledRule {
                mode: r.mode,
                require: r.require,
                keywords: r
                    .keywords
                    .iter()
                    .map(|k| Keyword {
                        original: k.clone(),
                        norm: Normalized::new(k),
                    })
                    .collect(),
                exclude: r.exclude.iter().map(|e| Normalized::new(e)).collect(),
            })
            .collect();
        Self { rules }
    }

    /// The first rule, in order, that the text satisfies.
    pub fn find(&self, text: &Normalized) -> Option<RuleMatch> {
        self.rules.iter().enumerate().find_map(|(i, rule)| {
            rule.find(text).map(|kw| RuleMatch {
                rule: i,
                keyword: kw.original.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(mode: MatchMode, require: Require, keywords: &[&str], exclude: &[&str]) -> Rule {
        Rule {
            mode,
            require,
            keywords: keywords.iter().map(|s| (*s).to_owned()).collect(),
            exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn hit(r: &Rule, text: &str) -> Option<String> {
        Matcher::new(std::slice::from_ref(r))
            .find(&Normalized::new(text))
            .map(|m| m.keyword)
    }

    #[test]
    fn whole_words_across_scripts_and_punctuation() {
        let r = rule(
            MatchMode::WholeWord,
            Require::Any,
            &["price", "how much", "कीमत", "விலை", "цена"],
            &[],
        );
        assert_eq!(hit(&r, "Price??? 😍").as_deref(), Some("price"));
        assert_eq!(hit(&r, "PRICE pls").as_deref(), Some("price"));
        assert_eq!(hit(&r, "how MUCH is it").as_deref(), Some("how much"));
        assert_eq!(hit(&r, "इसकी कीमत क्या है?").as_deref(), Some("कीमत"));
        assert_eq!(hit(&r, "விலை என்ன?").as_deref(), Some("விலை"));
        assert_eq!(hit(&r, "Какая ЦЕНА?").as_deref(), Some("цена"));
        assert_eq!(hit(&r, "priceless"), None);
        assert_eq!(hit(&r, "how is it, much love"), None);
    }

    #[test]
    fn contains_exact_all_and_exclude() {
        let contains = rule(MatchMode::Contains, Require::Any, &["link"], &[]);
        assert!(hit(&contains, "links please").is_some());
        let exact = rule(MatchMode::Exact, Require::Any, &["info"], &[]);
        assert!(hit(&exact, "  INFO! ").is_some());
        assert!(hit(&exact, "more info").is_none());
        let all = rule(MatchMode::WholeWord, Require::All, &["size", "price"], &[]);
        assert!(hit(&all, "price and size?").is_some());
        assert!(hit(&all, "price?").is_none());
        let excl = rule(MatchMode::WholeWord, Require::Any, &["price"], &["no"]);
        assert!(hit(&excl, "price no thanks").is_none());
        assert!(hit(&excl, "price now").is_some());
    }

    #[test]
    fn first_matching_rule_wins() {
        let m = Matcher::new(&[
            rule(MatchMode::Exact, Require::Any, &["price"], &[]),
            rule(MatchMode::WholeWord, Require::Any, &["price"], &[]),
        ]);
        assert_eq!(m.find(&Normalized::new("price")).unwrap().rule, 0);
        assert_eq!(m.find(&Normalized::new("the price")).unwrap().rule, 1);
    }
}
