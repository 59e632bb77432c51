//! Where verified envelopes go: SQS in production and locally, anything else in benchmarks.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use igflow_core::envelope::Envelope;

use crate::metrics::Metrics;

/// SQS accepts at most 10 messages per `SendMessageBatch`...
const BATCH_ENTRIES: usize = 10;
/// ...and at most 1 MiB per message and per batch (the sum of its messages).
pub const MAX_SQS_PAYLOAD: usize = 1024 * 1024;
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

/// Cuts `sizes` (message sizes, in order) into batches that SQS accepts.
fn batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == BATCH_ENTRIES || bytes + size > MAX_SQS_PAYLOAD) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

pub struct SqsSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    metrics: Arc<Metrics>,
}

impl SqsSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            queue_url,
            metrics,
        }
    }

    /// Sends one batch, resending only the entries SQS refused. Returns how many never got
    /// in, with the last error.
    async fn send_batch(&self, bodies: &[&str]) -> Result<(), (usize, String)> {
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(bodies[i])
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (pending.len(), e.to_string()))?;
            let started = Instant::now();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            self.metrics.batch_latency(started.elapsed());
            match sent {
                Ok(out) => {
                    let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
                    if let Some(f) = out.failed().first() {
                        last_error = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                    }
                    pending.retain(|i| failed.contains(i.to_string().as_str()));
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
            let encoded: Vec<String> = envelopes.iter().map(Envelope::encode).collect();
            // An item SQS can never take would fail every redelivery of the whole delivery
            // until Meta disables the subscription; it is dropped, loudly, instead.
            let mut bodies = Vec::with_capacity(encoded.len());
            for (env, body) in envelopes.iter().zip(&encoded) {
                if body.len() > MAX_SQS_PAYLOAD {
                    self.metrics.oversized_item();
                    tracing::error!(event_id = %env.event_id, bytes = body.len(), "item larger than SQS accepts; dropped");
                } else {
                    bodies.push(body.as_str());
                }
            }
            let sizes: Vec<usize> = bodies.iter().map(|b| b.len()).collect();
            let sends: Vec<_> = batches(&sizes)
                .into_iter()
                .map(|r| self.send_batch(&bodies[r]))
                .collect();
            let results: Vec<_> = stream::iter(sends)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_sqs_limits() {
        assert_eq!(batches(&[]), Vec::<Range<usize>>::new());
        assert_eq!(batches(&[10; 25]), vec![0..10, 10..20, 20..25]);
        let big = MAX_SQS_PAYLOAD / 3;
        assert_eq!(batches(&[big; 7]), vec![0..3, 3..6, 6..7]);
        assert_eq!(
            batches(&[MAX_SQS_PAYLOAD, 1, MAX_SQS_PAYLOAD]),
            vec![0..1, 1..2, 2..3]
        );
    }
}
