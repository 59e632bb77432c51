//! Where verified envelopes go: SQS in production and locally, anything else in benchmarks.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};

use igflow_core::envelope::Envelope;

/// SQS accepts at most 10 messages per `SendMessageBatch`.
const BATCH_SIZE: usize = 10;
/// Batches in flight at once for one delivery (1,000 items are 100 batches).
const CONCURRENT_BATCHES: usize = 16;
/// Attempts per entry before the delivery is answered 5xx and left to Meta's redelivery.
const ATTEMPTS: u32 = 3;

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
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    /// Sends one batch, resending only the entries SQS refused. Returns the last error if
    /// some entries never got in.
    async fn send_batch(&self, batch: &[Envelope]) -> Result<(), (usize, String)> {
        let mut pending: Vec<(usize, &Envelope)> = batch.iter().enumerate().collect();
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|(i, env)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(env.encode())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (pending.len(), e.to_string()))?;
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                    if let Some(f) = out.failed().first() {
                        last_error = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                    }
                    pending.retain(|(i, _)| failed.contains(&i.to_string().as_str()));
                }
                Err(e) => last_error = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
            }
            if pending.is_empty() {
                return Ok(());
            }
            tracing::warn!(attempt, pending = pending.len(), error = %last_error, "SQS refused entries, retrying");
        }
        Err((pending.len(), last_error))
    }
}

impl EventSink for SqsSink {
    fn send<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let batches: Vec<_> = envelopes
                .chunks(BATCH_SIZE)
                .map(|b| self.send_batch(b))
                .collect();
            let results: Vec<_> = stream::iter(batches)
                .buffer_unordered(CONCURRENT_BATCHES)
                .collect()
                .await;
            let mut failed = 0;
            let mut detail = String::new();
            for (n, error) in results.into_iter().filter_map(Result::err) {
                failed += n;
                detail = error;
            }
            if failed == 0 {
                Ok(())
            } else {
                Err(SinkError {
                    failed,
                    total: envelopes.len(),
                    detail,
                })
            }
        })
    }
}
