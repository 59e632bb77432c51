//! The intent model on Ollama, behind one circuit breaker per tenant: a slow or failing
//! model costs a tenant keyword-only decisions, never a stalled event. It asks for exactly
//! one of a campaign's intent labels (structured output) with the comment as escaped,
//! untrusted data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use failsafe::backoff::{self, Constant};
use failsafe::failure_policy::{
    ConsecutiveFailures, OrElse, SuccessRateOverTimeWindow, consecutive_failures,
    success_rate_over_time_window,
};
use failsafe::futures::CircuitBreaker as _;
use failsafe::{Config, FailurePolicy as _, Instrument, StateMachine};
use igflow_core::campaign::Intent;
use ollama_rs::Ollama;
use ollama_rs::error::OllamaError;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::ClassifierConfig;
use crate::stats::Stats;

mod prompt;
use prompt::chat_request;
pub use prompt::labels;

/// The label the model answers when the comment expresses none of the intents.
pub const NONE: &str = "none";
/// Tenants whose breakers a process keeps. When full, the closed breakers are dropped (a
/// closed breaker only holds recent failure counts); open and half-open ones are kept.
pub const MAX_BREAKERS: usize = 4096;

/// Why the model gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The breaker is open, or half-open with its probe call already under way.
    BreakerOpen,
    /// No answer within the per-call timeout.
    Timeout,
    /// The server answered an error or could not be reached.
    Failed,
}

/// The tenants that asked the model since the worker started (up to `MAX_BREAKERS`), by the
/// state of their breaker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BreakerCounts {
    pub open: usize,
    pub half_open: usize,
    pub closed: usize,
}

impl BreakerCounts {
    /// The share of those tenants whose calls fall back now, in percent (0 with none): one
    /// tenant's slow calls are a small share, the model down for all is 100.
    pub fn open_percent(&self) -> u8 {
        let total = self.open + self.half_open + self.closed;
        u8::try_from((self.open * 100).checked_div(total).unwrap_or(0)).unwrap_or(100)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// Open time is over: the next call is a probe that closes or reopens it.
    HalfOpen,
    /// No model is configured: every call falls back.
    Unavailable,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Unavailable => "unavailable",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            OPEN => Self::Open,
            HALF_OPEN => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// failsafe keeps its state private; its instrument hooks mirror it here and count openings.
struct Observer {
    tenant: Uuid,
    state: Arc<AtomicU8>,
    stats: Arc<Stats>,
}

impl Instrument for Observer {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        self.state.store(OPEN, Ordering::Relaxed);
        Stats::add(&self.stats.breaker_opened);
        tracing::warn!(
            tenant = %self.tenant,
            "intent model breaker opened: keyword-only decisions for the tenant until it recovers"
        );
    }

    fn on_half_open(&self) {
        self.state.store(HALF_OPEN, Ordering::Relaxed);
    }

    fn on_closed(&self) {
        // failsafe also calls this when the breaker is built: only a recovery is news.
        if self.state.swap(CLOSED, Ordering::Relaxed) != CLOSED {
            tracing::info!(tenant = %self.tenant, "intent model breaker closed");
        }
    }
}

type Policy = OrElse<SuccessRateOverTimeWindow<Constant>, ConsecutiveFailures<Constant>>;

#[derive(Debug, thiserror::Error)]
enum ModelCallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("ollama: {0}")]
    Ollama(OllamaError),
    #[error("ollama not reached: {0}")]
    Transport(reqwest::Error),
    /// An answer, used, but slow enough to count against the model.
    #[error("answered after {took:?}")]
    Slow { took: Duration, content: String },
}

impl From<OllamaError> for ModelCallError {
    fn from(e: OllamaError) -> Self {
        match e {
            // ollama-rs prints only "Reqwest error"; the cause is worth logging, its URL is
            // not (`OLLAMA_URL` may carry credentials).
            OllamaError::ReqwestError(e) => Self::Transport(e.without_url()),
            other => Self::Ollama(other),
        }
    }
}

/// One tenant's circuit breaker.
struct Breaker {
    machine: StateMachine<Policy, Observer>,
    state: Arc<AtomicU8>,
    /// failsafe lets every call through while half-open; one probe at a time is enough, the
    /// others fall back at once instead of all waiting on a model that may still hang.
    probe: Semaphore,
}

impl Breaker {
    fn new(config: &ClassifierConfig, tenant: Uuid, stats: Arc<Stats>) -> Self {
        let open_for = backoff::constant(config.open_for);
        // failsafe counts the window in whole seconds and divides by it.
        let window = Duration::from_secs(config.window.as_secs().max(1));
        let policy = success_rate_over_time_window(
            (1.0 - config.failure_rate).clamp(0.0, 1.0),
            config.min_calls,
            window,
            open_for.clone(),
        )
        .or_else(consecutive_failures(config.failures, open_for));
        let state = Arc::new(AtomicU8::new(CLOSED));
        let machine = Config::new()
            .failure_policy(policy)
            .instrument(Observer {
                tenant,
                state: Arc::clone(&state),
                stats,
            })
            .build();
        Self {
            machine,
            state,
            probe: Semaphore::new(1),
        }
    }

    fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Relaxed))
    }
}

pub struct Model {
    ollama: Ollama,
    pub name: String,
    timeout: Duration,
    slow_call: Duration,
    /// What every tenant's breaker is built from.
    config: ClassifierConfig,
    breakers: Mutex<HashMap<Uuid, Arc<Breaker>>>,
    stats: Arc<Stats>,
}

impl Model {
    pub fn new(
        url: reqwest::Url,
        config: &ClassifierConfig,
        stats: Arc<Stats>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            ollama: Ollama::builder()
                .url(url)
                .reqwest_client(reqwest::Client::builder().build()?)
                .build(),
            name: config.model.clone(),
            timeout: config.timeout,
            slow_call: config.slow_call,
            config: config.clone(),
            breakers: Mutex::default(),
            stats,
        })
    }

    /// The tenant's breaker, made on first use.
    fn breaker(&self, tenant: Uuid) -> Arc<Breaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(breaker) = breakers.get(&tenant) {
            return Arc::clone(breaker);
        }
        if breakers.len() >= MAX_BREAKERS {
            breakers.retain(|_, b| b.state() != BreakerState::Closed);
            if breakers.len() >= MAX_BREAKERS {
                // Every tenant's model calls fail: the model is down for all; start afresh.
                breakers.clear();
            }
        }
        let breaker = Arc::new(Breaker::new(&self.config, tenant, Arc::clone(&self.stats)));
        breakers.insert(tenant, Arc::clone(&breaker));
        breaker
    }

    /// How many tenants' breakers are in each state.
    pub fn breakers(&self) -> BreakerCounts {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers
            .values()
            .fold(BreakerCounts::default(), |mut c, b| {
                match b.state() {
                    BreakerState::Open => c.open += 1,
                    BreakerState::HalfOpen => c.half_open += 1,
                    BreakerState::Closed | BreakerState::Unavailable => c.closed += 1,
                }
                c
            })
    }

    /// The state of this tenant's breaker (closed if it has none yet).
    pub fn tenant_state(&self, tenant: Uuid) -> BreakerState {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
            .map_or(BreakerState::Closed, |b| b.state())
    }

    /// The model's raw answer, through the tenant's breaker and within the timeout.
    #[tracing::instrument(name = "classifier.ask", level = "debug", skip_all, fields(tenant = %tenant))]
    pub async fn ask(
        &self,
        tenant: Uuid,
        text: &str,
        intents: &[Intent],
    ) -> Result<String, Unanswered> {
        let breaker = self.breaker(tenant);
        let _probe = match breaker.state() {
            BreakerState::Closed => None,
            _ => Some(
                breaker
                    .probe
                    .try_acquire()
                    .map_err(|_| Unanswered::BreakerOpen)?,
            ),
        };
        let request = chat_request(&self.name, text, intents);
        let call = async {
            let started = Instant::now();
            let response =
                tokio::time::timeout(self.timeout, self.ollama.send_chat_messages(request))
                    .await
                    .map_err(|_| ModelCallError::Timeout(self.timeout))??;
            let took = started.elapsed();
            let content = response.message.content;
            if took > self.slow_call {
                return Err(ModelCallError::Slow { took, content });
            }
            Ok(content)
        };
        match breaker.machine.call(call).await {
            Ok(content) => Ok(content),
            Err(failsafe::Error::Rejected) => Err(Unanswered::BreakerOpen),
            Err(failsafe::Error::Inner(ModelCallError::Slow { took, content })) => {
                tracing::warn!(?took, "intent model answered slowly");
                Ok(content)
            }
            Err(failsafe::Error::Inner(e)) => {
                tracing::warn!(error = %e, "intent model call failed");
                Err(match e {
                    ModelCallError::Timeout(_) => Unanswered::Timeout,
                    _ => Unanswered::Failed,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_name_the_cause_but_not_the_url() {
        // Nothing listens on port 1.
        let e = reqwest::Client::new()
            .post("http://igflow:hunter2@127.0.0.1:1/api/chat")
            .send()
            .await
            .unwrap_err();
        let text = ModelCallError::from(OllamaError::ReqwestError(e)).to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
        assert!(text.contains("error sending request"), "{text}");
    }

    #[test]
    fn breakers_are_kept_for_a_bounded_number_of_tenants() {
        let env = igflow_core::env::Env::from_map(HashMap::from([(
            "OLLAMA_URL".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        )]));
        let config = ClassifierConfig::from_env(&env).unwrap();
        let url = config.ollama_url.clone().unwrap();
        let model = Model::new(url, &config, Arc::default()).unwrap();
        for _ in 0..=MAX_BREAKERS {
            model.breaker(Uuid::new_v4());
        }
        let kept = model.breakers.lock().unwrap().len();
        assert!((1..=MAX_BREAKERS).contains(&kept), "{kept}");
        assert_eq!(model.breakers().open, 0);
    }
}
