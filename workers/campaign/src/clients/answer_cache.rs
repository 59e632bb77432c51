//! The intent model's answers, cached in Redis by (model, normalized text, intent set) for
//! 24 h, so that repeated comments ask the model once. Redis trouble is a miss, never an
//! error: the model is asked instead.

use std::time::Duration;

use fred::prelude::{Client, Expiration, KeysInterface};
use igflow_core::campaign::Intent;
use sha2::{Digest, Sha256};

use crate::clients::redis::RedisKeys;

/// How long a model's answer is reused for the same comment and intents.
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct AnswerCache {
    redis: Client,
    keys: RedisKeys,
}

impl AnswerCache {
    pub fn new(redis: Client, keys: RedisKeys) -> Self {
        Self { redis, keys }
    }

    /// One key per normalized text, model and intent set (definitions included, in name
    /// order), so that editing an intent asks the model again.
    pub fn key(model: &str, text: &str, intents: &[Intent]) -> String {
        let mut defs: Vec<_> = intents
            .iter()
            .map(|i| (&i.name, &i.description, &i.examples))
            .collect();
        defs.sort();
        let material = serde_json::json!([model, normalize(text), defs]).to_string();
        format!("cls:{}", hex::encode(Sha256::digest(material.as_bytes())))
    }

    /// The label cached under `key`, if any.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn get(&self, key: &str) -> Option<String> {
        match self
            .redis
            .get::<Option<String>, _>(self.keys.key(&[key]))
            .await
        {
            Ok(label) => label,
            Err(e) => {
                tracing::warn!(error = %e, "classification cache read failed");
                None
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(label))]
    pub async fn put(&self, key: &str, label: &str) {
        let ttl = Expiration::EX(CACHE_TTL.as_secs().try_into().unwrap_or(i64::MAX));
        if let Err(e) = self
            .redis
            .set::<(), _, _>(self.keys.key(&[key]), label, Some(ttl), None, false)
            .await
        {
            tracing::warn!(error = %e, "classification cache write failed");
        }
    }
}

/// Lower-cased words, ASCII punctuation and repeated whitespace dropped, so that "Price??"
/// and "price" share an answer. Emoji and other scripts stay: they carry meaning.
fn normalize(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_case_punctuation_and_spacing() {
        assert_eq!(normalize("  Price?? "), "price");
        assert_eq!(normalize("Link,   pls!"), "link pls");
        assert_eq!(normalize("💰 how much"), "💰 how much");
    }
}
