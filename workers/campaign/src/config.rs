//! The worker's configuration, read once at start-up. Each subcommand reads only the parts
//! it needs, so `migrate` does not ask for a queue URL.

use std::time::Duration;

use igflow_core::env::{ConfigError, Env};
use igflow_core::graph_error::DEFAULT_THROTTLE_PAUSE;

use crate::clients::ratelimit::{Budgets, Rate};
use crate::jobs::retention;
use secrecy::SecretString;

mod lifecycle;
pub use lifecycle::{LifecycleConfig, ReconcileConfig};

#[derive(Debug)]
pub struct StoreConfig {
    pub database_url: SecretString,
    /// `IGFLOW_DB_CONNECTIONS` (default 16): the pool's size. Each write holds a connection
    /// through its commit's WAL flush; on the 2-core bench 16 were not the bound (48 were
    /// slower: more backends competing for the same cores). Postgres's (or its pooler's)
    /// connection limit bounds the sum over the fleet.
    pub connections: u32,
}

impl StoreConfig {
    const DEFAULT_CONNECTIONS: u32 = 16;

    /// This URL, with the default pool.
    pub fn new(database_url: SecretString) -> Self {
        Self {
            database_url,
            connections: Self::DEFAULT_CONNECTIONS,
        }
    }

    /// The worker's own connection (`run`, `dlq`, `replay`, `prune`): a role that is a
    /// member of `igflow_worker`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: env.secret(
                "DATABASE_URL",
                "set it to the worker role's Postgres URL, e.g. postgres://igflow_worker_app:...@127.0.0.1:5432/igflow",
            )?,
            connections: env.parse_or("IGFLOW_DB_CONNECTIONS", Self::DEFAULT_CONNECTIONS)?,
        })
    }

    /// The owner's connection, for `migrate` and `apply` (schema changes, accounts and
    /// campaigns), which the worker's role may not make.
    pub fn admin_from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self::new(env.secret(
            "IGFLOW_ADMIN_DATABASE_URL",
            "set it to the Postgres URL of the tables' owner, e.g. postgres://postgres@127.0.0.1:5432/igflow (DATABASE_URL is the worker's role, which may not migrate or apply)",
        )?))
    }
}

#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// Prefix of the Secrets Manager names holding account tokens.
    pub prefix: String,
    /// How long a fetched token is reused before it is read again.
    pub cache_ttl: Duration,
}

impl SecretsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            prefix: env
                .optional("IGFLOW_SECRETS_PREFIX")
                .unwrap_or_else(|| "igflow/".into()),
            cache_ttl: Duration::from_secs(env.parse_or("IGFLOW_TOKEN_CACHE_SECONDS", 300)?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Base URL for Instagram Login accounts (`graph.instagram.com`).
    pub instagram_url: String,
    /// Base URL for Facebook Login accounts (`graph.facebook.com`).
    pub facebook_url: String,
    pub timeout: Duration,
    /// How long to wait when Meta throttles without saying for how long.
    pub throttle_pause: Duration,
}

/// The Graph API version igflow is written against.
pub const GRAPH_VERSION: &str = "v24.0";

impl GraphConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        // One override points both flavors at a test server (or a proxy).
        let override_url = env
            .optional("IGFLOW_GRAPH_API_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        Ok(Self {
            instagram_url: override_url
                .clone()
                .unwrap_or_else(|| format!("https://graph.instagram.com/{GRAPH_VERSION}")),
            facebook_url: override_url
                .unwrap_or_else(|| format!("https://graph.facebook.com/{GRAPH_VERSION}")),
            timeout: Duration::from_millis(env.parse_or("IGFLOW_GRAPH_TIMEOUT_MS", 10_000)?),
            throttle_pause: Duration::from_secs(env.parse_or(
                "IGFLOW_THROTTLE_PAUSE_SECONDS",
                DEFAULT_THROTTLE_PAUSE.as_secs(),
            )?),
        })
    }
}

/// The intent model and the circuit breaker around it. The model is optional: without
/// `OLLAMA_URL`, or while the breaker is open, decisions are keyword-only.
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    /// `OLLAMA_URL`: the Ollama server; unset means no model. Kept with a trailing slash,
    /// because ollama-rs appends `api/chat` to it.
    pub ollama_url: Option<reqwest::Url>,
    /// `IGFLOW_OLLAMA_MODEL` (default `llama3.2:1b`): small enough to answer a one-label
    /// question in well under a second on CPU, and it follows a JSON schema.
    pub model: String,
    /// `IGFLOW_OLLAMA_TIMEOUT_MS` (default 2000): bounds one call, so the worst a comment
    /// waits for the model is this, however the model misbehaves.
    pub timeout: Duration,
    /// `IGFLOW_BREAKER_FAILURES` (default 5): consecutive failed calls (errors, timeouts,
    /// slow answers) that open the breaker.
    pub failures: u32,
    /// `IGFLOW_BREAKER_FAILURE_RATE` (default 0.5): the breaker also opens when the share of
    /// failed calls (a moving average over `window`) exceeds this; 1 disables it.
    pub failure_rate: f64,
    /// `IGFLOW_BREAKER_WINDOW_SECONDS` (default 30): the failure rate's window, whole seconds
    /// (failsafe's granularity).
    pub window: Duration,
    /// `IGFLOW_BREAKER_MIN_CALLS` (default 10): calls in the window before the rate counts.
    pub min_calls: u32,
    /// `IGFLOW_BREAKER_SLOW_MS` (default 1500): an answer slower than this is still used but
    /// counts as a failure, so a model that slows down opens the breaker before it times out.
    pub slow_call: Duration,
    /// `IGFLOW_BREAKER_OPEN_SECONDS` (default 30): how long an open breaker answers every
    /// call with a fallback before it lets a probe call through (half-open).
    pub open_for: Duration,
}

impl ClassifierConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let invalid = |var, problem: String| ConfigError::Invalid { var, problem };
        let ollama_url = env
            .optional("OLLAMA_URL")
            .map(|raw| {
                let mut url = reqwest::Url::parse(&raw)
                    .map_err(|e| invalid("OLLAMA_URL", format!("{raw:?}: {e}")))?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                Ok(url)
            })
            .transpose()?;
        let failures: u32 = env.parse_or("IGFLOW_BREAKER_FAILURES", 5)?;
        if failures == 0 {
            return Err(invalid(
                "IGFLOW_BREAKER_FAILURES",
                "must be at least 1".into(),
            ));
        }
        let failure_rate: f64 = env.parse_or("IGFLOW_BREAKER_FAILURE_RATE", 0.5)?;
        if !(0.0..=1.0).contains(&failure_rate) {
            return Err(invalid(
                "IGFLOW_BREAKER_FAILURE_RATE",
                "must be 0 to 1".into(),
            ));
        }
        let window: u64 = env.parse_or("IGFLOW_BREAKER_WINDOW_SECONDS", 30)?;
        if window == 0 {
            return Err(invalid(
                "IGFLOW_BREAKER_WINDOW_SECONDS",
                "must be at least 1".into(),
            ));
        }
        Ok(Self {
            ollama_url,
            model: env
                .optional("IGFLOW_OLLAMA_MODEL")
                .unwrap_or_else(|| "llama3.2:1b".into()),
            timeout: Duration::from_millis(env.parse_or("IGFLOW_OLLAMA_TIMEOUT_MS", 2000)?),
            failures,
            failure_rate,
            window: Duration::from_secs(window),
            min_calls: env.parse_or("IGFLOW_BREAKER_MIN_CALLS", 10)?,
            slow_call: Duration::from_millis(env.parse_or("IGFLOW_BREAKER_SLOW_MS", 1500)?),
            open_for: Duration::from_secs(env.parse_or("IGFLOW_BREAKER_OPEN_SECONDS", 30)?),
        })
    }
}

#[derive(Debug)]
pub struct RunConfig {
    pub redis_url: SecretString,
    /// Prefix of every Redis key this worker writes (tests use a random one).
    pub redis_prefix: String,
    pub queue_url: String,
    /// Concurrent receive loops in this process.
    pub consumers: usize,
    /// Messages worked on at once in this process; a message waiting for its rate slot
    /// holds one.
    pub max_in_flight: usize,
    /// The first retry's backoff after a transient failure; each further one doubles it.
    pub backoff_base: Duration,
    /// SQS long-poll wait (at most 20 s).
    pub wait_seconds: i32,
    /// How long a received message stays hidden; also the dedupe claim's lease.
    pub visibility: Duration,
    /// After SIGTERM, how long work in hand may go on before it is handed back (ECS waits
    /// 30 s by default before it kills a task; at most 120 s).
    pub shutdown_deadline: Duration,
    /// How often parked events of re-activated accounts are sent back to the queue.
    pub unpark_every: Duration,
    /// How often the worker writes its EMF metrics.
    pub metrics_every: Duration,
    pub webhooks: WebhooksConfig,
    /// Days old activity, queue errors and contacts are kept; `None`: for ever.
    pub retention_days: Option<u32>,
    pub graph: GraphConfig,
    pub secrets: SecretsConfig,
    /// Every account's budgets unless its row sets its own.
    pub budgets: Budgets,
    /// The spacing of an account's calls once Meta reports 95 percent usage.
    pub pace_max: Duration,
    /// How long after a Live comment a private reply may still go out (the broadcast).
    pub live_reply_window: Duration,
    pub classifier: ClassifierConfig,
    pub lifecycle: LifecycleConfig,
}

/// Deliveries to tenants' webhooks: how often due ones are sent, the first retry's wait
/// (doubling after), and how many attempts before giving up.
#[derive(Debug, Clone, Copy)]
pub struct WebhooksConfig {
    pub every: Duration,
    pub backoff: Duration,
    pub attempts: u32,
}

impl WebhooksConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            every: Duration::from_millis(env.parse_or("IGFLOW_WEBHOOK_POLL_MS", 1000)?),
            backoff: Duration::from_millis(env.parse_or("IGFLOW_WEBHOOK_BACKOFF_MS", 5000)?),
            attempts: env.parse_or("IGFLOW_WEBHOOK_ATTEMPTS", 10)?,
        })
    }
}

/// `IGFLOW_QUEUE_URL`: the events queue, for the worker and the `dlq` and `replay` commands.
pub fn queue_url(env: &Env) -> Result<String, ConfigError> {
    env.required(
        "IGFLOW_QUEUE_URL",
        "set it to the URL of the events SQS queue",
    )
}

/// `IGFLOW_ARCHIVE_BUCKET`: the webhook's raw archive, for `replay --from --to`.
pub fn archive_bucket(env: &Env) -> Result<String, ConfigError> {
    env.required(
        "IGFLOW_ARCHIVE_BUCKET",
        "set it to the raw archive's S3 bucket (the stack output ArchiveBucketName)",
    )
}

/// `IGFLOW_RETENTION_DAYS`: 90 by default, 0 to keep everything.
pub fn retention_days(env: &Env) -> Result<Option<u32>, ConfigError> {
    match env.parse_or("IGFLOW_RETENTION_DAYS", 90)? {
        0 => Ok(None),
        days if days < retention::MIN_DAYS => Err(ConfigError::Invalid {
            var: "IGFLOW_RETENTION_DAYS",
            problem: format!(
                "must be 0 (keep everything) or at least {} (SQS may deliver a message for 14 days, and activity is what stops a second send)",
                retention::MIN_DAYS
            ),
        }),
        days => Ok(Some(days)),
    }
}

impl RunConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let wait_seconds: i32 = env.parse_or("IGFLOW_WAIT_SECONDS", 20)?;
        if !(0..=20).contains(&wait_seconds) {
            return Err(ConfigError::Invalid {
                var: "IGFLOW_WAIT_SECONDS",
                problem: "must be 0 to 20 (SQS's limit)".into(),
            });
        }
        let consumers: usize = env.parse_or("IGFLOW_CONSUMERS", 4)?;
        let defaults = Budgets::default();
        if consumers == 0 {
            return Err(ConfigError::Invalid {
                var: "IGFLOW_CONSUMERS",
                problem: "must be at least 1".into(),
            });
        }
        Ok(Self {
            redis_url: env.secret(
                "REDIS_URL",
                "set it to the Redis URL, e.g. redis://127.0.0.1:6379",
            )?,
            redis_prefix: env
                .optional("IGFLOW_REDIS_PREFIX")
                .unwrap_or_else(|| "igflow:".into()),
            queue_url: queue_url(env)?,
            consumers,
            max_in_flight: env.parse_or("IGFLOW_MAX_IN_FLIGHT", consumers * 50)?,
            backoff_base: Duration::from_millis(env.parse_or("IGFLOW_BACKOFF_BASE_MS", 5000)?),
            wait_seconds,
            visibility: Duration::from_secs(env.parse_or("IGFLOW_VISIBILITY_SECONDS", 60)?),
            shutdown_deadline: Duration::from_secs(env.parse_or("IGFLOW_SHUTDOWN_SECONDS", 25)?),
            unpark_every: Duration::from_secs(env.parse_or("IGFLOW_UNPARK_SECONDS", 10)?),
            metrics_every: Duration::from_secs(env.parse_or("IGFLOW_METRICS_SECONDS", 60)?),
            webhooks: WebhooksConfig::from_env(env)?,
            retention_days: retention_days(env)?,
            graph: GraphConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
            classifier: ClassifierConfig::from_env(env)?,
            lifecycle: LifecycleConfig::from_env(env)?,
            budgets: Budgets {
                private_replies: Rate::per_hour(env.parse_or(
                    "IGFLOW_PRIVATE_REPLIES_PER_HOUR",
                    defaults.private_replies.limit,
                )?),
                send_api: Rate::per_second(
                    env.parse_or("IGFLOW_SEND_API_PER_SECOND", defaults.send_api.limit)?,
                ),
                automated_dms: Rate::per_hour(env.parse_or(
                    "IGFLOW_AUTOMATED_DMS_PER_HOUR",
                    defaults.automated_dms.limit,
                )?),
            },
            pace_max: Duration::from_millis(env.parse_or("IGFLOW_PACE_MAX_MS", 10_000)?),
            live_reply_window: Duration::from_secs(
                env.parse_or("IGFLOW_LIVE_REPLY_WINDOW_SECONDS", 1800)?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn days(value: Option<&str>) -> Result<Option<u32>, ConfigError> {
        let vars = value.map(|v| ("IGFLOW_RETENTION_DAYS".to_owned(), v.to_owned()));
        retention_days(&Env::from_map(HashMap::from_iter(vars)))
    }

    #[test]
    fn retention_is_90_days_by_default_0_for_ever_and_never_under_15() {
        assert_eq!(days(None).unwrap(), Some(90));
        assert_eq!(days(Some("0")).unwrap(), None);
        assert_eq!(days(Some("15")).unwrap(), Some(15));
        let e = days(Some("7")).unwrap_err().to_string();
        assert!(
            e.contains("IGFLOW_RETENTION_DAYS") && e.contains("at least 15"),
            "{e}"
        );
    }
}
