//! Identifiers from Meta. They are opaque decimal strings, often larger than 2^53, so they are
//! kept as text end to end; a JSON number is accepted on input and turned into its digits.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest id accepted; Meta's are about 20 digits, base64 message ids about 100 characters.
const MAX_ID_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a non-empty string of at most {MAX_ID_LEN} characters without whitespace")]
pub struct InvalidId {
    pub kind: &'static str,
}

fn check(kind: &'static str, s: &str) -> Result<(), InvalidId> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_whitespace) {
        Err(InvalidId { kind })
    } else {
        Ok(())
    }
}

/// Accepts `"123"` or `123` and yields the digits as text.
fn string_or_number<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(match Raw::deserialize(de)? {
        Raw::Text(s) => s,
        Raw::Unsigned(n) => n.to_string(),
        Raw::Signed(n) => n.to_string(),
    })
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidId> {
                let s = s.into();
                check(stringify!($name), &s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                Self::parse(string_or_number(de)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// An Instagram professional account (the `entry[].id` of a delivery).
    IgUserId
);
string_id!(
    /// A Facebook Page linked to an Instagram account (Facebook Login flavor).
    PageId
);
string_id!(
    /// An Instagram-scoped user id: a person who comments or writes to an account.
    Igsid
);
string_id!(
    /// A comment on a media object.
    CommentId
);
string_id!(
    /// A post, reel or story.
    MediaId
);
string_id!(
    /// The stable id of one webhook item, equal across Meta's redeliveries
    /// (see docs/architecture.md, "The queue envelope").
    EventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_strings_and_numbers_and_keep_all_digits() {
        let id: IgUserId = serde_json::from_str("\"17841400000000000\"").unwrap();
        assert_eq!(id.as_str(), "17841400000000000");
        let big: CommentId = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(big.as_str(), "18446744073709551615");
    }

    #[test]
    fn ids_reject_empty_and_whitespace() {
        assert!(serde_json::from_str::<MediaId>("\"\"").is_err());
        assert!(IgUserId::parse("12 34").is_err());
        assert_eq!(
            IgUserId::parse("").unwrap_err().to_string(),
            "IgUserId must be a non-empty string of at most 512 characters without whitespace"
        );
    }
}
