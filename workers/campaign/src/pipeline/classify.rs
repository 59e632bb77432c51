//! Intent classification: when no keyword matches, a small model (Ollama) says which of a
//! campaign's intents a comment expresses, if any. The model helps but is never depended on:
//! no model, an open circuit breaker, a timeout or an error each give a keyword-only decision
//! at once, and answers are cached in Redis so that repeated comments ask the model once.
//! This stage composes the two: the model and its per-tenant breakers are
//! `clients::ollama`, the cache is `clients::answer_cache`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use fred::prelude::Client;
use igflow_core::campaign::Intent;
use uuid::Uuid;

use crate::clients::answer_cache::AnswerCache;
pub use crate::clients::answer_cache::CACHE_TTL;
pub use crate::clients::ollama::{BreakerCounts, BreakerState, MAX_BREAKERS, NONE};
use crate::clients::ollama::{Model, Unanswered};
use crate::clients::redis::RedisKeys;
use crate::config::ClassifierConfig;
use crate::stats::Stats;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The name of the intent the comment expresses; `None` for none of them or no answer.
    pub intent: Option<String>,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Model,
    Cache,
    /// The model gave no answer: the decision is keyword-only.
    Fallback {
        reason: FallbackReason,
    },
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Cache => "cache",
            Self::Fallback { .. } => "fallback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// `OLLAMA_URL` is not set.
    NoModel,
    /// The campaign defines no intents: nothing to ask.
    NoIntents,
    /// The breaker is open, or half-open with its probe call already under way.
    BreakerOpen,
    /// No answer within the per-call timeout.
    Timeout,
    /// The server answered an error or could not be reached.
    ModelError,
}

impl FallbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoModel => "no_model",
            Self::NoIntents => "no_intents",
            Self::BreakerOpen => "breaker_open",
            Self::Timeout => "timeout",
            Self::ModelError => "model_error",
        }
    }
}

impl From<Unanswered> for FallbackReason {
    fn from(u: Unanswered) -> Self {
        match u {
            Unanswered::BreakerOpen => Self::BreakerOpen,
            Unanswered::Timeout => Self::Timeout,
            Unanswered::Failed => Self::ModelError,
        }
    }
}

/// Says which intent a comment expresses. Build one per worker process and share it (in an
/// `Arc`), so that every consumer goes through the same breakers.
pub struct IntentClassifier {
    model: Option<Model>,
    /// One lock per text being classified right now.
    flights: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Where answers are cached; `simulate` runs without one.
    cache: Option<AnswerCache>,
    stats: Arc<Stats>,
}

impl IntentClassifier {
    pub fn new(
        config: &ClassifierConfig,
        cache: Option<(Client, RedisKeys)>,
        stats: Arc<Stats>,
    ) -> Result<Self, reqwest::Error> {
        let model = config
            .ollama_url
            .clone()
            .map(|url| Model::new(url, config, Arc::clone(&stats)))
            .transpose()?;
        Ok(Self {
            model,
            flights: Mutex::default(),
            cache: cache.map(|(redis, keys)| AnswerCache::new(redis, keys)),
            stats,
        })
    }

    /// The tenants' breakers by state (the alarm's metric); none without a model.
    pub fn breakers(&self) -> Option<BreakerCounts> {
        self.model.as_ref().map(Model::breakers)
    }

    /// The state of this tenant's breaker.
    pub fn tenant_breaker_state(&self, tenant: Uuid) -> BreakerState {
        self.model
            .as_ref()
            .map_or(BreakerState::Unavailable, |m| m.tenant_state(tenant))
    }

    /// Which of `intents` the comment `text` expresses, for a campaign of `tenant` (whose
    /// breaker the call goes through). Never fails: without an answer the result is no
    /// intent, with the reason as its source.
    #[tracing::instrument(name = "classifier.classify", level = "debug", skip_all, fields(tenant = %tenant))]
    pub async fn classify(&self, tenant: Uuid, text: &str, intents: &[Intent]) -> Classification {
        let Some(model) = &self.model else {
            return self.fallback(FallbackReason::NoModel);
        };
        if intents.is_empty() {
            return self.fallback(FallbackReason::NoIntents);
        }
        let key = AnswerCache::key(&model.name, text, intents);
        // Identical comments arriving together wait for the first one's answer instead of
        // all asking the model: a viral post brings hundreds of "price?" at once.
        let flight = self.in_flight(&key);
        let _turn = flight.lock().await;
        if let Some(label) = self.cached(&key, intents).await {
            Stats::add(&self.stats.classified_from_cache);
            return Classification {
                intent: intent_of(label),
                source: Source::Cache,
            };
        }
        let answer = match model.ask(tenant, text, intents).await {
            Ok(answer) => answer,
            Err(unanswered) => return self.fallback(unanswered.into()),
        };
        Stats::add(&self.stats.classified_by_model);
        let label = allowed_label(&answer, intents);
        match label {
            Some(label) => self.remember(&key, label).await,
            // Outside the schema: an anomaly to ask again next time, not a decision to keep.
            // The answer itself stays out of the log: it may quote the comment.
            None => tracing::warn!(
                bytes = answer.len(),
                "intent model answered outside the allowed labels"
            ),
        }
        Classification {
            intent: label.and_then(intent_of),
            source: Source::Model,
        }
    }

    /// The lock shared by everyone classifying `key` now; gone once the last one is done.
    fn in_flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = flights.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }

    fn fallback(&self, reason: FallbackReason) -> Classification {
        Stats::add(&self.stats.classification_fallbacks);
        Classification {
            intent: None,
            source: Source::Fallback { reason },
        }
    }

    /// A cached label still allowed for these intents.
    async fn cached<'a>(&self, key: &str, intents: &'a [Intent]) -> Option<&'a str> {
        let label = self.cache.as_ref()?.get(key).await?;
        allowed(&label, intents)
    }

    async fn remember(&self, key: &str, label: &str) {
        if let Some(cache) = &self.cache {
            cache.put(key, label).await;
        }
    }
}

fn intent_of(label: &str) -> Option<String> {
    (label != NONE).then(|| label.to_owned())
}

/// `label` as one of the allowed labels (borrowed from `intents`), or `None`.
fn allowed<'a>(label: &str, intents: &'a [Intent]) -> Option<&'a str> {
    if label == NONE {
        return Some(NONE);
    }
    intents
        .iter()
        .find(|i| i.name == label)
        .map(|i| i.name.as_str())
}

/// The label of an answer shaped `{"label": "..."}`, if it is an allowed one.
fn allowed_label<'a>(answer: &str, intents: &'a [Intent]) -> Option<&'a str> {
    let value: serde_json::Value = serde_json::from_str(answer.trim()).ok()?;
    allowed(value.get("label")?.as_str()?, intents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ollama::labels;

    fn intent(name: &str) -> Intent {
        Intent {
            name: name.into(),
            description: format!("about {name}"),
            examples: vec![],
        }
    }

    #[test]
    fn only_allowed_labels_are_read_from_answers() {
        let intents = [intent("purchase"), intent("shipping")];
        assert_eq!(
            allowed_label(r#"{"label":"purchase"}"#, &intents),
            Some("purchase")
        );
        assert_eq!(allowed_label(r#" {"label":"none"} "#, &intents), Some(NONE));
        assert_eq!(allowed_label(r#"{"label":"refund"}"#, &intents), None);
        assert_eq!(allowed_label("purchase", &intents), None);
        assert_eq!(allowed_label(r#"{"label":7}"#, &intents), None);
        assert_eq!(
            labels(&[intent("a"), intent("a"), intent(NONE)]),
            ["a", NONE]
        );
    }
}
