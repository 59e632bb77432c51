//! Where verified envelopes go: SQS in production and locally, anything else in benchmarks.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use igflow_core::envelope::Envelope;
use igflow_core::runtime::queue::QueueSender;

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
#[error(
    "{failed} of {total} envelopes were not accepted by the queue ({detail}); Meta will redeliver"
)]
pub struct SinkError {
    pub failed: usize,
    pub total: usize,
    pub detail: String,
}

pub trait EventSink: Send + Sync + 'static {
    /// Resolves only once every envelope is durably accepted, or fails.
    fn send<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, Result<(), SinkError>>;
}

pub struct SqsSink {
    queue: QueueSender,
    metrics: Arc<Metrics>,
}

impl SqsSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, metrics: Arc<Metrics>) -> Self {
        Self {
            queue: QueueSender::new(client, queue_url),
            metrics,
        }
    }
}

impl EventSink for SqsSink {
    fn send<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let report = self.queue.send(envelopes).await;
            for took in &report.batch_latencies {
                self.metrics.batch_latency(*took);
            }
            // An item SQS can never take would fail every redelivery of the whole delivery
            // until Meta disables the subscription; it alone is dropped, loudly.
            for (event_id, bytes) in &report.oversized {
                self.metrics.oversized_item();
                tracing::error!(%event_id, bytes, "item larger than SQS accepts; dropped");
            }
            if report.failed == 0 {
                Ok(())
            } else {
                Err(SinkError {
                    failed: report.failed,
                    total: envelopes.len(),
                    detail: report.last_error.unwrap_or_default(),
                })
            }
        })
    }
}
