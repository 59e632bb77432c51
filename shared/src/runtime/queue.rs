//! Sending to the events queue within SQS's limits, shared by the webhook (deliveries) and the
//! worker (replays, redrives, parked events coming back).

use std::collections::HashSet;
use std::ops::Range;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use futures_util::{StreamExt, stream};

use crate::envelope::Envelope;
use crate::ids::EventId;

/// SQS accepts at most 10 messages per `SendMessageBatch`...
const BATCH_ENTRIES: usize = 10;
/// ...and at most 1 MiB per message and per batch (the sum of its messages).
pub const MAX_SQS_PAYLOAD: usize = 1024 * 1024;
/// Batches in flight at once (1,000 items are 100 batches).
const CONCURRENT_BATCHES: usize = 16;
/// Attempts per entry before it counts as failed.
const ATTEMPTS: u32 = 3;

/// What happened to a send.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Messages the queue did not take after every attempt.
    pub failed: usize,
    pub last_error: Option<String>,
    /// Envelopes larger than SQS accepts; never sent.
    pub oversized: Vec<(EventId, usize)>,
    /// Duration of every `SendMessageBatch` call.
    pub batch_latencies: Vec<Duration>,
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

/// Outcome of one batch: how many never got in, the last error, and each call's duration.
type BatchOutcome = (usize, Option<String>, Vec<Duration>);

#[derive(Clone)]
pub struct QueueSender {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl QueueSender {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends envelopes; one too large for SQS is reported, not sent.
    pub async fn send(&self, envelopes: &[Envelope]) -> SendReport {
        let encoded: Vec<String> = envelopes.iter().map(Envelope::encode).collect();
        let mut oversized = Vec::new();
        let mut bodies = Vec::with_capacity(encoded.len());
        for (env, body) in envelopes.iter().zip(&encoded) {
            if body.len() > MAX_SQS_PAYLOAD {
                oversized.push((env.event_id.clone(), body.len()));
            } else {
                bodies.push(body.as_str());
            }
        }
        SendReport {
            oversized,
            ..self.send_raw(&bodies).await
        }
    }

    /// Sends message bodies as they are (a DLQ redrive may carry ones that are not envelopes).
    pub async fn send_raw(&self, bodies: &[&str]) -> SendReport {
        let sizes: Vec<usize> = bodies.iter().map(|b| b.len()).collect();
        let sends: Vec<_> = batches(&sizes)
            .into_iter()
            .map(|r| self.send_batch(&bodies[r]))
            .collect();
        let outcomes: Vec<BatchOutcome> = stream::iter(sends)
            .buffer_unordered(CONCURRENT_BATCHES)
            .collect()
            .await;
        let mut report = SendReport::default();
        for (failed, error, latencies) in outcomes {
            report.failed += failed;
            report.last_error = error.or(report.last_error);
            report.batch_latencies.extend(latencies);
        }
        report
    }

    /// Sends one batch, resending only the entries SQS refused.
    async fn send_batch(&self, bodies: &[&str]) -> BatchOutcome {
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        let mut last_error = None;
        let mut latencies = Vec::new();
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
                .collect::<Result<Vec<_>, _>>();
            let entries = match entries {
                Ok(e) => e,
                Err(e) => return (pending.len(), Some(e.to_string()), latencies),
            };
            let started = Instant::now();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            latencies.push(started.elapsed());
            match sent {
                Ok(out) => {
                    let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
                    if let Some(f) = out.failed().first() {
                        last_error =
                            Some(format!("{}: {}", f.code(), f.message().unwrap_or_default()));
                    }
                    pending.retain(|i| failed.contains(i.to_string().as_str()));
                }
                Err(e) => last_error = Some(DisplayErrorContext(&e).to_string()),
            }
            if pending.is_empty() {
                return (0, None, latencies);
            }
            tracing::warn!(attempt, pending = pending.len(), error = ?last_error, "SQS refused entries, retrying");
        }
        (pending.len(), last_error, latencies)
    }
}

/// Deletes messages by receipt handle, 10 per call. Returns how many were not deleted.
pub async fn delete_messages(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: &[&str],
) -> Result<usize, String> {
    let mut failed = 0;
    for chunk in receipts.chunks(BATCH_ENTRIES) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*r)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let out = client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        failed += out.failed().len();
    }
    Ok(failed)
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
