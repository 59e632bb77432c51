//! Campaigns as the worker sees them: when one fires and what it does.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::MediaId;

/// Generates a closed set of names stored as text in Postgres and written in campaign files.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(
                        "unknown {} {s:?} (expected one of: {})",
                        stringify!($name),
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    ))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Which Graph API host and messaging endpoint an account uses.
    LoginFlavor { Instagram => "instagram", Facebook => "facebook" }
);
text_enum!(
    /// Paused accounts keep their events queued until they are active again.
    AccountStatus { Active => "active", Paused => "paused", Disabled => "disabled" }
);
text_enum!(
    CampaignStatus { Active => "active", Paused => "paused", Archived => "archived" }
);
text_enum!(
    /// How a keyword is compared with a comment (both normalized the same way).
    MatchMode {
        /// Whole words; a keyword of several words matches them in sequence (as `Phrase`).
        WholeWord => "whole_word",
        /// The keyword's words, whole and in sequence.
        Phrase => "phrase",
        /// A word starting with the keyword (`pric` in `pricing`).
        Prefix => "prefix",
        /// Anywhere, also inside words (`link` in `links`).
        Contains => "contains",
        /// The whole comment, punctuation and emoji aside.
        Exact => "exact",
    }
);
text_enum!(
    /// Whether any keyword of a rule suffices or all of them must appear.
    Require { Any => "any", All => "all" }
);
text_enum!(
    /// What makes a campaign look at an event.
    Trigger {
        /// A comment on the account's post, reel or Live.
        Comment => "comment",
        /// A direct message (not a reply to a story).
        Message => "message",
        /// Someone mentioned the account in their story (a message with a `story_mention`).
        StoryMention => "story_mention",
        /// A direct message replying to one of the account's stories.
        StoryReply => "story_reply",
        /// A button with a payload was tapped (button or generic template, ice breaker, menu).
        Postback => "postback",
        /// The person came through an ig.me link with a `ref`, or a click-to-message ad.
        Referral => "referral",
    }
);

impl Trigger {
    /// Whether keyword rules decide it: required for comments and messages, optional for
    /// story replies (none means any reply), meaningless for the others.
    pub fn rules(self) -> RuleUse {
        match self {
            Self::Comment | Self::Message => RuleUse::Required,
            Self::StoryReply => RuleUse::Optional,
            Self::StoryMention | Self::Postback | Self::Referral => RuleUse::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleUse {
    Required,
    Optional,
    None,
}
text_enum!(
    ActionKind { PrivateReply => "private_reply", PublicReply => "public_reply", Dm => "dm" }
);

text_enum!(
    /// When a comment campaign posts its public reply ("check your DMs").
    PublicReplyWhen {
        /// Only once the private reply went out: never "check your DMs" when no DM came.
        PrivateReplySent => "private_reply_sent",
        /// Whatever became of the private reply.
        Always => "always",
    }
);

#[allow(
    clippy::derivable_impls,
    reason = "text_enum! derives no Default: most of its enums have none"
)]
impl Default for PublicReplyWhen {
    fn default() -> Self {
        Self::PrivateReplySent
    }
}

impl ActionKind {
    /// A direct message to the person: counts against DM budgets and cooldowns.
    pub fn is_dm(self) -> bool {
        matches!(self, Self::PrivateReply | Self::Dm)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub mode: MatchMode,
    pub require: Require,
    /// Words or phrases; a keyword made only of emoji is a trigger that matches, in any mode,
    /// when the comment holds each of its emoji (with or without variation selector or skin
    /// tone).
    pub keywords: Vec<String>,
    /// A comment containing any of these (as whole words, or emoji) never matches the rule.
    pub exclude: Vec<String>,
    /// Latin, Greek and Cyrillic letters match without their accents (`precio` = `précio`).
    pub fold_accents: bool,
    /// A letter written three times or more matches it written once or twice (`priiiice`).
    pub stretch: bool,
}

/// An intent a campaign reacts to when no keyword matches: the model is asked whether a
/// comment means this (for example "purchase": "wants to buy or asks where to buy").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// A short label, unique in the campaign: what the model answers.
    pub name: String,
    pub description: String,
    /// A few example comments that mean this intent.
    pub examples: Vec<String>,
}

/// An account's own rate budgets; absent ones take the worker's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_replies_per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_api_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated_dms_per_hour: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaScope {
    Any,
    Only(Vec<MediaId>),
    /// The first post published at or after `after_ms` (Unix ms; `None` until the campaign
    /// is stored), not found yet: nothing matches until the worker binds it (then `Only`).
    /// Meta sends no webhook for a new post; see the worker's `next_post`.
    NextPost {
        after_ms: Option<i64>,
    },
}

impl MediaScope {
    pub fn covers(&self, media: Option<&MediaId>) -> bool {
        match self {
            Self::Any => true,
            Self::Only(ids) => media.is_some_and(|m| ids.contains(m)),
            Self::NextPost { .. } => false,
        }
    }
}

/// When a campaign runs, in Unix milliseconds: from `starts_at` (inclusive) to `ends_at`
/// (exclusive), either open-ended. What counts is when the comment or message was written, so
/// an event queued or deferred past the end still gets the campaign it was written under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    pub starts_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
}

impl Schedule {
    pub fn covers(&self, at_ms: i64) -> bool {
        self.starts_at_ms.is_none_or(|start| at_ms >= start)
            && self.ends_at_ms.is_none_or(|end| at_ms < end)
    }
}

/// One text, or variants of it: a file writes `dm: "Hi"` or `dm: ["Hi", "Hello"]`, and JSON
/// reads back the same way (`null` for none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts(pub Vec<String>);

impl Texts {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Texts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => s.serialize_none(),
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Self(match Option::<OneOrMany>::deserialize(d)? {
            None => Vec::new(),
            Some(OneOrMany::One(text)) => vec![text],
            Some(OneOrMany::Many(texts)) => texts,
        }))
    }
}

/// A button under a private reply, DM or step (Meta's button template): a tap leads to one
/// of the campaign's steps, or a URL opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub title: String,
    /// The step a tap leads to (a postback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The page a tap opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One step of a campaign's flow: the message a tap on a button naming it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique in the campaign; buttons name it.
    pub name: String,
    pub dm: Texts,
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// Quick-reply titles under the step's message (a tap comes back as a message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    /// Sent only to people who follow the account; others get the gate's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_gate: Option<FollowGate>,
    /// The step's message asks for an email or phone number; the person's next message is
    /// the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// Sent only when this holds of the person; otherwise the step `otherwise` names goes
    /// instead (checked in turn), or nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_if: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
}

/// What a step may ask of the person before it goes out: `{ known: email }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Condition {
    /// Their answer to a capture step of this field is on record.
    Known(CaptureField),
    /// It is not.
    Unknown(CaptureField),
}

impl Condition {
    /// The contact detail the condition reads.
    pub fn field(self) -> CaptureField {
        match self {
            Self::Known(field) | Self::Unknown(field) => field,
        }
    }

    /// Whether it holds, given whether the detail is on record.
    pub fn holds(self, on_record: bool) -> bool {
        matches!(self, Self::Known(_)) == on_record
    }

    /// In words, for the activity log.
    pub fn describe(self) -> String {
        match self {
            Self::Known(field) => format!("{field} on record"),
            Self::Unknown(field) => format!("no {field} on record"),
        }
    }
}

text_enum!(
    /// What a capture step asks for, stored on the contact.
    CaptureField { Email => "email", Phone => "phone" }
);

/// An answer a capture step waits for: checked, stored on the contact, then `next` step (or
/// `thanks`); a bad answer gets `invalid` and is asked again, at most `max_attempts` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    pub field: CaptureField,
    pub invalid: String,
    #[serde(default = "default_max_retries")]
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanks: Option<String>,
    /// The step sent once the answer is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// A person whose answer is on record already is not asked again: the flow goes on to
    /// `next` (or `thanks`) at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_if_known: bool,
}

impl CaptureField {
    /// The answer as stored, if it is one: an email of one `@` and a dotted domain, or a phone
    /// number of 7 to 15 digits (E.164) with an optional `+` and the usual separators.
    pub fn accept(self, answer: &str) -> Option<String> {
        let answer = answer.trim();
        match self {
            Self::Email => {
                let (local, domain) = answer.split_once('@')?;
                let fine = !local.is_empty()
                    && answer.len() <= 254
                    && !domain.contains('@')
                    && domain.split('.').count() >= 2
                    && domain.split('.').all(|l| !l.is_empty())
                    && !answer.chars().any(|c| c.is_whitespace() || c.is_control());
                fine.then(|| format!("{local}@{}", domain.to_lowercase()))
            }
            Self::Phone => {
                let digits: String = answer.chars().filter(char::is_ascii_digit).collect();
                let only_phone = answer.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_digit() || " -().".contains(c) || (c == '+' && i == 0)
                });
                (only_phone && (7..=15).contains(&digits.len())).then(|| {
                    if answer.starts_with('+') {
                        format!("+{digits}")
                    } else {
                        digits
                    }
                })
            }
        }
    }
}

/// A step for followers only: who does not follow gets `not_following` with a button to try
/// again, at most `max_retries` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowGate {
    pub not_following: String,
    #[serde(default = "default_retry_title")]
    pub retry_title: String,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

fn default_retry_title() -> String {
    "I follow now".to_owned()
}

fn default_max_retries() -> u32 {
    3
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Variants: one is chosen per comment, recorded on the action so results compare them.
    pub private_reply: Vec<String>,
    /// One is chosen per comment, so that replies do not all look the same.
    pub public_replies: Vec<String>,
    /// The answer to a direct message, in the same thread (messaging triggers); variants as
    /// for the private reply.
    pub dm: Vec<String>,
    /// Buttons under the private reply or DM; a tap comes back as a message with the title.
    pub quick_replies: Vec<String>,
    /// Template buttons under the private reply or DM: steps of the flow, or links.
    pub buttons: Vec<Button>,
    pub public_reply_when: PublicReplyWhen,
}

/// An active campaign of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: Uuid,
    pub slug: String,
    pub trigger: Trigger,
    pub priority: i32,
    /// Posts and reels (comments), or stories (story replies), the campaign listens on.
    pub media: MediaScope,
    /// The postback payloads it answers (trigger `postback`).
    pub payloads: Vec<String>,
    /// The ig.me `ref` values and ad ids it answers (trigger `referral`).
    pub refs: Vec<String>,
    pub ad_ids: Vec<String>,
    pub schedule: Schedule,
    pub cooldown: Duration,
    /// Decides and records as if live, but sends nothing and spends no rate budget.
    pub shadow: bool,
    pub rules: Vec<Rule>,
    /// Asked of the model only when no rule matches; empty means keywords only.
    pub intents: Vec<Intent>,
    pub actions: Actions,
    /// The flow's steps, reached by tapping buttons.
    pub steps: Vec<Step>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_answers_are_checked_and_normalized() {
        let email = CaptureField::Email;
        assert_eq!(
            email.accept(" Ana@Example.COM "),
            Some("Ana@example.com".into())
        );
        for bad in [
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "ana@x..com",
            "a b@x.com",
            "a@b@c.com",
        ] {
            assert_eq!(email.accept(bad), None, "{bad}");
        }
        let phone = CaptureField::Phone;
        assert_eq!(phone.accept("+34 612-345-678"), Some("+34612345678".into()));
        assert_eq!(phone.accept("(020) 7946 0018"), Some("02079460018".into()));
        for bad in ["12345", "call me", "+1 555 0100 ext 9", "1+5550100000"] {
            assert_eq!(phone.accept(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_enums_round_trip_and_name_the_choices() {
        for m in MatchMode::ALL {
            assert_eq!(m.as_str().parse::<MatchMode>().unwrap(), *m);
        }
        assert_eq!(
            "fuzzy".parse::<MatchMode>().unwrap_err(),
            "unknown MatchMode \"fuzzy\" (expected one of: whole_word, phrase, prefix, contains, exact)"
        );
    }
}
