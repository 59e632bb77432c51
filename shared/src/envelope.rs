//! The queue envelope: one SQS message per Meta item, the contract between the webhook and the
//! worker. Versioned so that both halves can be deployed independently.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::{EventId, IgUserId};

pub const ENVELOPE_VERSION: u8 = 1;

/// What kind of Meta item an envelope carries. Unknown names decode as `Other`, so a newer
/// webhook never makes an older worker fail on a kind it does not know yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Comment,
    LiveComment,
    Mention,
    Message,
    MessageEdit,
    Postback,
    Reaction,
    Seen,
    Referral,
    Optin,
    Handover,
    /// Meta's deauthorize callback: the account removed the app (not a webhook item).
    AppDeauthorized,
    /// Meta's data deletion request callback for the account (not a webhook item).
    DataDeletion,
    #[serde(other)]
    Other,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comment => "comment",
            Self::LiveComment => "live_comment",
            Self::Mention => "mention",
            Self::Message => "message",
            Self::MessageEdit => "message_edit",
            Self::Postback => "postback",
            Self::Reaction => "reaction",
            Self::Seen => "seen",
            Self::Referral => "referral",
            Self::Optin => "optin",
            Self::Handover => "handover",
            Self::AppDeauthorized => "app_deauthorized",
            Self::DataDeletion => "data_deletion",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u8,
    pub event_id: EventId,
    pub kind: EventKind,
    /// The Instagram account the delivery was for (`entry[].id`).
    pub account_id: IgUserId,
    /// For `changes` items, which field it came from (`comments`, `mentions`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
    pub delivery_id: String,
    /// The raw `changes[].value` or `messaging[]` object, byte for byte as Meta sent it.
    pub item: Box<RawValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("envelope version {0} is not supported (this build reads version {ENVELOPE_VERSION})")]
    UnsupportedVersion(u8),
}

impl Envelope {
    pub fn decode(body: &str) -> Result<Self, EnvelopeError> {
        let envelope: Self = serde_json::from_str(body)?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(envelope.v));
        }
        Ok(envelope)
    }

    pub fn encode(&self) -> String {
        // Serializing plain strings, integers and an already-valid RawValue cannot fail.
        #[allow(clippy::expect_used)]
        serde_json::to_string(self).expect("envelope serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_decodes_as_other_and_bad_version_is_refused() {
        let body = r#"{"v":1,"event_id":"x:1","kind":"brand_new","account_id":"1","occurred_at_ms":1,"received_at_ms":2,"delivery_id":"d","item":{"a":"\u00e9"}}"#;
        let e = Envelope::decode(body).unwrap();
        assert_eq!(e.kind, EventKind::Other);
        assert_eq!(
            e.item.get(),
            r#"{"a":"\u00e9"}"#,
            "item bytes stay untouched"
        );
        assert!(matches!(
            Envelope::decode(&body.replace("\"v\":1", "\"v\":2")),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            Envelope::decode("{"),
            Err(EnvelopeError::Malformed(_))
        ));
    }
}
