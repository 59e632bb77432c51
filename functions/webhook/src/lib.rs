//! The ingress. One axum [`Router`] verifies Meta's deliveries and enqueues one envelope per
//! item; it runs under `lambda_http` in AWS and on a local port everywhere else.

pub mod archive;
pub mod callbacks;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod routes;
pub mod sink;

use std::sync::Arc;

use axum::Router;
use igflow_core::runtime::{self, AwsCalls};

pub use archive::{ArchiveError, DeliveryArchive};
pub use config::{KeySource, Listen, WebhookConfig};
pub use keys::{KeyError, KeyStore, Keys};
pub use metrics::Metrics;
pub use sink::{EventSink, SinkError, SqsSink};

#[derive(Clone)]
pub struct AppState {
    keys: Arc<KeyStore>,
    sink: Arc<dyn EventSink>,
    metrics: Arc<Metrics>,
    /// In Lambda the process may be frozen after any response: write metrics every time.
    flush_each_request: bool,
    /// `IGFLOW_DELETION_STATUS_URL`; the data deletion callback answers 503 without it.
    deletion_status_url: Option<Arc<str>>,
    /// `IGFLOW_ARCHIVE_BUCKET`: where verified deliveries are kept for replay by time.
    archive: Option<Arc<DeliveryArchive>>,
}

impl AppState {
    pub fn new(
        keys: Arc<KeyStore>,
        sink: Arc<dyn EventSink>,
        metrics: Arc<Metrics>,
        flush_each_request: bool,
    ) -> Self {
        Self {
            keys,
            sink,
            metrics,
            flush_each_request,
            deletion_status_url: None,
            archive: None,
        }
    }

    /// Keeps every verified delivery in this archive (none: deliveries are only enqueued).
    #[must_use]
    pub fn with_archive(mut self, archive: Option<Arc<DeliveryArchive>>) -> Self {
        self.archive = archive;
        self
    }

    /// The page data deletion requests are reported on (`?code=` is appended).
    #[must_use]
    pub fn with_deletion_status_url(mut self, url: Option<String>) -> Self {
        self.deletion_status_url = url.map(Arc::from);
        self
    }
}

/// The whole HTTP surface: `GET /webhook` (Meta's handshake), `POST /webhook`, and Meta's
/// app callbacks `POST /meta/deauthorize` and `POST /meta/data-deletion`.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    routes::router(max_body_bytes)
        .merge(callbacks::router())
        .with_state(state)
}

/// The keys the configuration names, read from Secrets Manager when it says so.
pub async fn load_keys(
    source: &KeySource,
    aws: &aws_config::SdkConfig,
) -> Result<Arc<KeyStore>, KeyError> {
    match source {
        KeySource::Env {
            app_secrets,
            verify_token,
        } => Ok(KeyStore::fixed(Keys::new(
            app_secrets.clone(),
            verify_token.clone(),
        ))),
        KeySource::SecretsManager { secret_id, refresh } => {
            let client = aws_sdk_secretsmanager::Client::new(aws);
            KeyStore::from_secrets_manager(client, secret_id.clone(), *refresh).await
        }
    }
}

/// Runs the webhook where the configuration says, until the process is asked to stop.
pub async fn run(config: WebhookConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let keys = load_keys(&config.keys, aws).await?;
    let sink = Arc::new(SqsSink::new(
        aws_sdk_sqs::Client::new(aws),
        config.queue_url.clone(),
        config.dlq_url.clone(),
        Arc::clone(&metrics),
    ));
    let archive = match &config.archive_bucket {
        Some(bucket) => Some(Arc::new(DeliveryArchive::new(
            runtime::s3_client(aws, AwsCalls::Archive),
            bucket.clone(),
            Arc::clone(&metrics),
        ))),
        None => {
            tracing::warn!(
                "IGFLOW_ARCHIVE_BUCKET is not set: deliveries are not archived and cannot be replayed by time"
            );
            None
        }
    };
    let in_lambda = config.listen == Listen::Lambda;
    if config.deletion_status_url.is_none() {
        tracing::warn!(
            "IGFLOW_DELETION_STATUS_URL is not set: Meta's data deletion callback will be answered 503"
        );
    }
    let app = app(
        AppState::new(keys, sink, Arc::clone(&metrics), in_lambda)
            .with_deletion_status_url(config.deletion_status_url.clone())
            .with_archive(archive),
        config.max_body_bytes,
    );
    match config.listen {
        Listen::Lambda => lambda_http::run(app).await.map_err(|e| anyhow::anyhow!(e)),
        Listen::Addr(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "webhook listening");
            let flusher = tokio::spawn({
                let metrics = Arc::clone(&metrics);
                let every = config.metrics_interval;
                async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        metrics.flush();
                    }
                }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(igflow_core::runtime::shutdown_signal())
                .await?;
            flusher.abort();
            metrics.flush();
            Ok(())
        }
    }
}
