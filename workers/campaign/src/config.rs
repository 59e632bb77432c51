//! The worker's configuration, read once at start-up. Each subcommand reads only the parts
//! it needs, so `migrate` does not ask for a queue URL.

use std::time::Duration;

use igflow_core::env::{ConfigError, Env};
use igflow_core::graph_error::DEFAULT_THROTTLE_PAUSE;
use secrecy::SecretString;

#[derive(Debug)]
pub struct StoreConfig {
    pub database_url: SecretString,
}

impl StoreConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: env.secret(
                "DATABASE_URL",
                "set it to the Postgres URL, e.g. postgres://postgres@127.0.0.1:5432/igflow",
            )?,
        })
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

#[derive(Debug)]
pub struct RunConfig {
    pub redis_url: SecretString,
    /// Prefix of every Redis key this worker writes (tests use a random one).
    pub redis_prefix: String,
    pub queue_url: String,
    /// Concurrent receive loops in this process.
    pub consumers: usize,
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
    pub graph: GraphConfig,
    pub secrets: SecretsConfig,
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
            queue_url: env.required(
                "IGFLOW_QUEUE_URL",
                "set it to the URL of the events SQS queue",
            )?,
            consumers,
            wait_seconds,
            visibility: Duration::from_secs(env.parse_or("IGFLOW_VISIBILITY_SECONDS", 60)?),
            shutdown_deadline: Duration::from_secs(env.parse_or("IGFLOW_SHUTDOWN_SECONDS", 25)?),
            unpark_every: Duration::from_secs(env.parse_or("IGFLOW_UNPARK_SECONDS", 10)?),
            metrics_every: Duration::from_secs(env.parse_or("IGFLOW_METRICS_SECONDS", 60)?),
            graph: GraphConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
        })
    }
}
