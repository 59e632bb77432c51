//! The account lifecycle jobs, run by every worker: token refresh, subscription audit (with
//! AccountSilent), reconciliation of comments Meta did not deliver, and the archive half of
//! data deletions. Each round looks for due accounts and does each one's work under its lease
//! (`lease.rs`; a deletion's purge under its request's), so however many workers run them,
//! an account's work is done once.

use std::sync::Arc;

use igflow_core::runtime::queue::QueueSender;
use tokio_util::sync::CancellationToken;

use crate::StartError;
use crate::clients::graph::GraphClient;
use crate::clients::ratelimit::RateLimiter;
use crate::clients::redis::RedisKeys;
use crate::clients::secrets::Tokens;
use crate::clients::store::Store;
use crate::config::{LifecycleConfig, RunConfig};
use crate::jobs::{archive_purge, reconcile, subscriptions, token_refresh};
use crate::ops::archive::Archive;
use crate::stats::Stats;

/// What the jobs use, shared with the event pipeline (the same token cache and budgets).
#[derive(Clone)]
pub struct Lifecycle {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub graph: GraphClient,
    pub limiter: Arc<RateLimiter>,
    pub queue: QueueSender,
    pub stats: Arc<Stats>,
    /// The raw archive, for data deletions to purge (none configured: nothing to purge).
    pub archive: Option<Arc<Archive>>,
    pub config: LifecycleConfig,
}

impl Lifecycle {
    /// The jobs on their own, for `igflow-worker reconcile` (a running worker shares its
    /// token cache and limiter with them instead).
    pub async fn connect(
        config: RunConfig,
        store: Store,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, StartError> {
        let redis = crate::clients::redis::connect(&config.redis_url).await?;
        Ok(Self {
            store,
            tokens: Arc::new(Tokens::new(
                aws_sdk_secretsmanager::Client::new(aws),
                config.secrets,
            )),
            graph: GraphClient::new(config.graph)?,
            limiter: RateLimiter::new(
                redis,
                RedisKeys::new(config.redis_prefix),
                config.budgets,
                config.pace_max,
            ),
            queue: QueueSender::new(aws_sdk_sqs::Client::new(aws), config.queue_url),
            stats: Arc::default(),
            archive: Archive::configured(aws, config.lifecycle.archive_bucket.as_deref()),
            config: config.lifecycle,
        })
    }

    /// One round of every job; a job's failure is logged and retried at the next round.
    pub async fn round(&self) {
        if let Err(e) = token_refresh::round(self).await {
            tracing::warn!(error = %e, "token refresh round failed; next round retries");
        }
        if let Err(e) = subscriptions::round(self).await {
            tracing::warn!(error = %e, "subscription audit round failed; next round retries");
        }
        if let Err(e) = reconcile::round(self).await {
            tracing::warn!(error = %e, "reconciliation round failed; next round retries");
        }
        if let Err(e) = archive_purge::round(self).await {
            tracing::warn!(error = %e, "archive purge round failed; next round retries");
        }
    }

    /// Runs a round every `config.every` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.round() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.every) => {}
            }
        }
    }
}
