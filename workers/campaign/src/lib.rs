//! The campaign worker: consumes the events queue, decides per campaign and acts through the
//! Instagram Graph API, exactly once per (event, action).

pub mod clients;
pub mod config;
pub mod jobs;
pub mod ops;
pub mod pipeline;
pub mod stats;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clients::cache::AccountCache;
use crate::clients::dedupe::Dedupe;
use crate::clients::graph::GraphClient;
use crate::clients::ratelimit::RateLimiter;
use crate::clients::redis::RedisKeys;
use crate::clients::secrets::Tokens;
use crate::clients::store::Store;
use crate::config::RunConfig;
use crate::jobs::lifecycle::Lifecycle;
use crate::jobs::metrics::{Latencies, Reporter};
use crate::jobs::outbound::Outbound;
use crate::jobs::unpark::Unparker;
use crate::ops::archive::Archive;
use crate::pipeline::classify::IntentClassifier;
use crate::pipeline::consumer::{Consumer, Step};
use crate::pipeline::{Cooldown, OldPosts, Pipeline};
use crate::stats::Stats;
use igflow_core::runtime::queue::QueueSender;
use igflow_core::runtime::sqs::SqsError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A running worker's parts, wired once at start-up.
pub struct Worker {
    consumer: Arc<Consumer>,
    accounts: Arc<AccountCache>,
    consumers: usize,
    unparker: Unparker,
    lifecycle: Lifecycle,
    reporter: Reporter,
    stats: Arc<Stats>,
    /// The store and the retention in days, when old rows are to be pruned.
    retention: Option<(Store, u32)>,
    outbound: Outbound,
}

/// The clients the worker's parts share, connected once at start-up.
struct Clients {
    store: Store,
    sqs: aws_sdk_sqs::Client,
    stats: Arc<Stats>,
    limiter: Arc<RateLimiter>,
    tokens: Arc<Tokens>,
    graph: GraphClient,
    /// For tenants' webhooks.
    webhooks: reqwest::Client,
    classifier: Arc<IntentClassifier>,
    dedupe: Dedupe,
    /// The raw archive, for data deletions to purge.
    archive: Option<Arc<Archive>>,
}

impl Worker {
    pub async fn build(
        config: RunConfig,
        store: Store,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, StartError> {
        let redis = clients::redis::connect(&config.redis_url).await?;
        let keys = RedisKeys::new(config.redis_prefix.clone());
        let stats = Arc::new(Stats::default());
        let clients = Clients {
            store,
            sqs: aws_sdk_sqs::Client::new(aws),
            limiter: RateLimiter::new(redis.clone(), keys.clone(), config.budgets, config.pace_max),
            tokens: Arc::new(Tokens::new(
                aws_sdk_secretsmanager::Client::new(aws),
                config.secrets.clone(),
            )),
            graph: GraphClient::new(config.graph.clone())?,
            webhooks: Outbound::http()?,
            classifier: Arc::new(IntentClassifier::new(
                &config.classifier,
                Some((redis.clone(), keys.clone())),
                Arc::clone(&stats),
            )?),
            dedupe: Dedupe::new(redis, keys),
            archive: Archive::configured(aws, config.lifecycle.archive_bucket.as_deref()),
            stats,
        };
        Ok(Self::assemble(clients, config))
    }

    /// The worker's parts: the consumer with its pipeline, and the background jobs.
    fn assemble(c: Clients, config: RunConfig) -> Self {
        let outbound = Outbound {
            store: c.store.clone(),
            tokens: Arc::clone(&c.tokens),
            http: c.webhooks.clone(),
            every: config.webhooks.every,
            backoff: config.webhooks.backoff,
            max_attempts: config.webhooks.attempts,
        };
        let accounts = AccountCache::new(c.store.clone(), Arc::clone(&c.tokens));
        let latencies = Arc::new(Latencies::default());
        let pipeline = Self::pipeline(&c, &accounts, &latencies, &config);
        Self {
            consumer: Arc::new(Consumer {
                sqs: c.sqs.clone(),
                queue_url: config.queue_url.clone(),
                pipeline: Arc::new(pipeline),
                stats: Arc::clone(&c.stats),
                wait_seconds: config.wait_seconds,
                visibility: config.visibility,
                shutdown_deadline: config.shutdown_deadline,
                max_in_flight: config.max_in_flight,
                backoff_base: config.backoff_base,
            }),
            accounts,
            consumers: config.consumers,
            unparker: Unparker {
                store: c.store.clone(),
                queue: QueueSender::new(c.sqs.clone(), config.queue_url.clone()),
                every: config.unpark_every,
                stats: Arc::clone(&c.stats),
            },
            lifecycle: Lifecycle {
                store: c.store.clone(),
                tokens: Arc::clone(&c.tokens),
                graph: c.graph.clone(),
                limiter: Arc::clone(&c.limiter),
                queue: QueueSender::new(c.sqs.clone(), config.queue_url),
                stats: Arc::clone(&c.stats),
                archive: c.archive,
                config: config.lifecycle,
            },
            retention: config.retention_days.map(|days| (c.store.clone(), days)),
            reporter: Reporter {
                store: c.store,
                stats: Arc::clone(&c.stats),
                latencies,
                limiter: c.limiter,
                classifier: c.classifier,
                every: config.metrics_every,
            },
            stats: c.stats,
            outbound,
        }
    }

    fn pipeline(
        c: &Clients,
        accounts: &Arc<AccountCache>,
        latencies: &Arc<Latencies>,
        config: &RunConfig,
    ) -> Pipeline {
        Pipeline {
            accounts: Arc::clone(accounts),
            cooldown: Cooldown {
                limiter: Arc::clone(&c.limiter),
                store: c.store.clone(),
            },
            store: c.store.clone(),
            dedupe: c.dedupe.clone(),
            tokens: Arc::clone(&c.tokens),
            graph: c.graph.clone(),
            stats: Arc::clone(&c.stats),
            lease: config.visibility,
            limiter: Arc::clone(&c.limiter),
            classifier: Arc::clone(&c.classifier),
            budgets: config.budgets,
            live_reply_window: config.live_reply_window,
            latencies: Arc::clone(latencies),
            old_posts: OldPosts::default(),
        }
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Receives one batch, works it and settles it, without the background jobs (unparking,
    /// the cache listener, metrics): the worker one step at a time.
    pub async fn process_next(&self) -> Result<Step, SqsError> {
        self.consumer.process_next().await
    }

    /// Consumes until `shutdown` is cancelled, then finishes the batches in hand.
    pub async fn run(self, shutdown: CancellationToken) {
        let listener = tokio::spawn(jobs::cache_listener::run(
            Arc::clone(&self.accounts),
            self.unparker.store.clone(),
            shutdown.clone(),
        ));
        let summaries = tokio::spawn(jobs::summaries::run(
            self.unparker.store.clone(),
            shutdown.clone(),
        ));
        let unparker = tokio::spawn(self.unparker.run(shutdown.clone()));
        let lifecycle = tokio::spawn(self.lifecycle.run(shutdown.clone()));
        let outbound = tokio::spawn(self.outbound.run(shutdown.clone()));
        let pruner = self
            .retention
            .map(|(store, days)| tokio::spawn(jobs::retention::run(store, days, shutdown.clone())));
        // The reporter's last document goes out after the consumers stopped.
        let reporting = CancellationToken::new();
        let reporter = tokio::spawn(self.reporter.run(reporting.clone()));
        self.consumer.run(self.consumers, shutdown).await;
        unparker.abort();
        if let Some(pruner) = pruner {
            pruner.abort();
        }
        listener.abort();
        lifecycle.abort();
        outbound.abort();
        summaries.abort();
        reporting.cancel();
        let _ = reporter.await;
        tracing::info!(stats = ?self.stats.snapshot(), "worker stopped");
    }
}
