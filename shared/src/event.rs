//! Typed views of the raw items an envelope carries, for the stages that act on them.

use serde::Deserialize;

use crate::envelope::{Envelope, EventKind};
use crate::ids::{CommentId, IgUserId, Igsid, MediaId};

#[derive(Debug, Clone, Deserialize)]
pub struct Author {
    pub id: Igsid,
    #[serde(default)]
    pub username: Option<String>,
    /// Present when the account itself wrote the comment.
    #[serde(default)]
    pub self_ig_scoped_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommentMedia {
    pub id: MediaId,
}

/// A comment or live comment (`changes[].value` of field `comments` / `live_comments`).
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    #[serde(alias = "comment_id")]
    pub id: CommentId,
    pub from: Author,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub media: Option<CommentMedia>,
    #[serde(default)]
    pub parent_id: Option<CommentId>,
}

impl Comment {
    /// True when the account wrote this comment itself: never answer yourself.
    pub fn is_own(&self, account: &IgUserId) -> bool {
        self.from.self_ig_scoped_id.is_some() || self.from.id.as_str() == account.as_str()
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Party {
    id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct MessageFlags {
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    is_self: bool,
    #[serde(default)]
    is_deleted: bool,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    reply_to: Option<ReplyTo>,
    /// The ad or ig.me link the person's first message came from.
    #[serde(default)]
    referral: Option<Referral>,
}

#[derive(Debug, Clone, Deserialize)]
struct Attachment {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ReplyTo {
    #[serde(default)]
    story: Option<StoryRef>,
}

#[derive(Debug, Clone, Deserialize)]
struct StoryRef {
    #[serde(default, deserialize_with = "lenient_id")]
    id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PostbackBody {
    #[serde(default)]
    payload: Option<String>,
    /// Present when the tap opened the conversation (an ice breaker under an ig.me link).
    #[serde(default)]
    referral: Option<Referral>,
}

/// Where a person came from: an ig.me link's `ref`, or the click-to-message ad.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Referral {
    #[serde(rename = "ref", default)]
    pub ref_param: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    pub ad_id: Option<String>,
    /// `IG.ME`, `ADS`, ... as Meta names it.
    #[serde(default)]
    pub source: Option<String>,
}

/// An id Meta may send as a string or, in some senders, as a number.
fn lenient_id<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(de)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// What the person did, as far as campaigns care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act<'a> {
    /// Mentioned the account in their story.
    StoryMention,
    /// Replied to one of the account's stories (its id when Meta sent it).
    StoryReply { story: Option<&'a str> },
    /// Tapped a button with this payload.
    Postback { payload: &'a str },
    /// Wrote a direct message.
    Message,
    /// Anything else: a referral on its own, a reaction, a read receipt, an edit.
    Other,
}

/// The parts of a `messaging[]` item that decide whether igflow may react to it.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagingItem {
    sender: Option<Party>,
    #[serde(default)]
    is_self: bool,
    #[serde(default)]
    message: Option<MessageFlags>,
    #[serde(default)]
    postback: Option<PostbackBody>,
    /// An ig.me link or ad that opened an existing conversation.
    #[serde(default)]
    referral: Option<Referral>,
}

impl MessagingItem {
    /// The person who wrote (the account itself for echoes).
    pub fn sender(&self) -> Option<Igsid> {
        self.sender
            .as_ref()
            .and_then(|s| Igsid::parse(s.id.clone()).ok())
    }

    /// The text of a message that is still there (not a deletion).
    pub fn text(&self) -> Option<&str> {
        self.live_message().and_then(|m| m.text.as_deref())
    }

    fn live_message(&self) -> Option<&MessageFlags> {
        self.message.as_ref().filter(|m| !m.is_deleted)
    }

    pub fn act(&self) -> Act<'_> {
        if let Some(payload) = self.postback.as_ref().and_then(|p| p.payload.as_deref()) {
            return Act::Postback { payload };
        }
        let Some(message) = self.live_message() else {
            return Act::Other;
        };
        if message
            .attachments
            .iter()
            .any(|a| a.kind.as_deref() == Some("story_mention"))
        {
            return Act::StoryMention;
        }
        match message.reply_to.as_ref().and_then(|r| r.story.as_ref()) {
            Some(story) => Act::StoryReply {
                story: story.id.as_deref(),
            },
            None => Act::Message,
        }
    }

    /// The link or ad the person came through, wherever Meta put it: on its own (an existing
    /// conversation), on the first message (ads) or on the first tap (ig.me links).
    pub fn referral(&self) -> Option<&Referral> {
        self.referral
            .as_ref()
            .or_else(|| self.postback.as_ref().and_then(|p| p.referral.as_ref()))
            .or_else(|| self.live_message().and_then(|m| m.referral.as_ref()))
    }

    /// Echoes of the account's own sends and anything the account sent itself.
    pub fn is_own(&self, account: &IgUserId) -> bool {
        let flags = self.message.clone().unwrap_or_default();
        self.is_self
            || flags.is_echo
            || flags.is_self
            || self
                .sender
                .as_ref()
                .is_some_and(|s| s.id == account.as_str())
    }
}

/// An envelope's item, typed by its kind.
#[derive(Debug, Clone)]
pub enum Item {
    Comment(Comment),
    Messaging(MessagingItem),
    /// A kind the worker does not act on yet; kept whole in the queue and the activity log.
    Unhandled,
}

#[derive(Debug, thiserror::Error)]
#[error("{kind} item does not have the expected shape: {source}")]
pub struct ItemError {
    kind: &'static str,
    source: serde_json::Error,
}

impl Item {
    pub fn from_envelope(env: &Envelope) -> Result<Self, ItemError> {
        let raw = env.item.get();
        let err = |source| ItemError {
            kind: env.kind.as_str(),
            source,
        };
        Ok(match env.kind {
            EventKind::Comment | EventKind::LiveComment => {
                Self::Comment(serde_json::from_str(raw).map_err(err)?)
            }
            EventKind::Message
            | EventKind::MessageEdit
            | EventKind::Postback
            | EventKind::Reaction
            | EventKind::Seen
            | EventKind::Referral
            | EventKind::Optin
            | EventKind::Handover => Self::Messaging(serde_json::from_str(raw).map_err(err)?),
            // The app callbacks are handled by account, before any item is read.
            EventKind::Mention
            | EventKind::AppDeauthorized
            | EventKind::DataDeletion
            | EventKind::Other => Self::Unhandled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> IgUserId {
        IgUserId::parse("100").unwrap()
    }

    #[test]
    fn own_comments_are_recognized_both_ways() {
        let by_id: Comment =
            serde_json::from_str(r#"{"id":"1","from":{"id":"100","username":"me"},"text":"hi"}"#)
                .unwrap();
        let by_self: Comment = serde_json::from_str(
            r#"{"id":"1","from":{"id":"7","self_ig_scoped_id":"55"},"text":"hi"}"#,
        )
        .unwrap();
        let other: Comment =
            serde_json::from_str(r#"{"id":"1","from":{"id":"7"},"text":"hi","media":{"id":"m"}}"#)
                .unwrap();
        assert!(by_id.is_own(&account()));
        assert!(by_self.is_own(&account()));
        assert!(!other.is_own(&account()));
    }

    #[test]
    fn echoes_and_self_messages_are_own() {
        let echo: MessagingItem =
            serde_json::from_str(r#"{"sender":{"id":"100"},"message":{"mid":"m","is_echo":true}}"#)
                .unwrap();
        let is_self: MessagingItem =
            serde_json::from_str(r#"{"sender":{"id":"9"},"is_self":true,"postback":{}}"#).unwrap();
        let user: MessagingItem =
            serde_json::from_str(r#"{"sender":{"id":"9"},"message":{"mid":"m"}}"#).unwrap();
        assert!(echo.is_own(&account()));
        assert!(is_self.is_own(&account()));
        assert!(!user.is_own(&account()));
    }
}
