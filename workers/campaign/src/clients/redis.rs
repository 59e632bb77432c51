//! The Redis connection and key naming. Redis holds only what may be lost or rebuilt, and
//! every key carries the configured prefix and a TTL.

use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};
use igflow_core::failure::Failure;
use secrecy::{ExposeSecret, SecretString};

/// A Redis call that failed. Redis holds only what may be lost or rebuilt, and a command
/// times out within seconds: whatever went wrong, the event is retried.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable for {purpose}; retry")]
pub struct RedisError {
    purpose: &'static str,
    #[source]
    source: fred::error::Error,
}

impl RedisError {
    /// Wraps errors of calls made for `purpose` (dedupe, cooldowns, rate budgets...).
    pub fn for_purpose(purpose: &'static str) -> impl FnOnce(fred::error::Error) -> Self {
        move |source| Self { purpose, source }
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        Failure::retry(format!("redis unavailable for {}: {}", e.purpose, e.source))
    }
}

/// Builds keys as `{prefix}{part}:{part}...`.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }
}

/// Connects with a short command timeout, so a Redis outage turns into retryable failures
/// within a second or two instead of stalled consumers, and reconnects in the background.
pub async fn connect(url: &SecretString) -> Result<Client, fred::error::Error> {
    let client = Builder::from_config(Config::from_url(url.expose_secret())?)
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2))
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()?;
    client.init().await?;
    Ok(client)
}
