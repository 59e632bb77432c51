//! Where verified envelopes go: SQS in production and locally, anything else in benchmarks.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use igflow_core::envelope::Envelope;
use igflow_core::runtime::queue::{DeadLetterError, QueueSender};

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
    /// Where items the queue refuses for good go, with the reason.
    dlq: QueueSender,
    metrics: Arc<Metrics>,
}

impl SqsSink {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        dlq_url: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue: QueueSender::new(client.clone(), queue_url),
            dlq: QueueSender::new(client, dlq_url),
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
            // Refused as the sender's fault (characters SQS does not take, say): every
            // redelivery would be refused the same, so it goes to the DLQ with the reason and
            // the rest of the delivery is answered. Only a failed DLQ send fails the delivery.
            let (mut failed, mut detail) = (report.failed, report.last_error);
            for refused in &report.refused {
                let envelope = &envelopes[refused.index];
                let event_id = envelope.event_id.as_str();
                match self.dlq.dead_letter(envelope, refused).await {
                    Ok(()) => {
                        self.metrics.refused_item();
                        tracing::error!(
                            event_id,
                            code = %refused.code,
                            reason = %refused.message,
                            "item refused by SQS for good; put on the DLQ"
                        );
                    }
                    // Like an item over SQS's size: it could never be kept, and failing the
                    // delivery would block the rest of it forever.
                    Err(DeadLetterError::TooLarge(bytes)) => {
                        self.metrics.oversized_item();
                        tracing::error!(
                            event_id,
                            bytes,
                            code = %refused.code,
                            "item refused by SQS for good and too large for the DLQ; dropped"
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::error!(event_id, error = %e, "refused item not dead-lettered");
                        detail = Some(format!("{}: {}; DLQ: {e}", refused.code, refused.message));
                    }
                }
            }
            if failed == 0 {
                Ok(())
            } else {
                Err(SinkError {
                    failed,
                    total: envelopes.len(),
                    detail: detail.unwrap_or_default(),
                })
            }
        })
    }
}
