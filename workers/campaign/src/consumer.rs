//! The SQS loop: receive, hand each message to the pipeline, settle it by the outcome.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Handled, Pipeline};
use crate::stats::Stats;

/// Retries back off from this, doubling per receive...
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// ...up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);
/// A paused account's events come back this often to see whether it was resumed.
const PAUSED_ACCOUNT_RETRY: Duration = Duration::from_secs(5 * 60);
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// What to do with a message once the pipeline is done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settle {
    Delete,
    RetryIn(Duration),
    /// Leave it: it reappears after its visibility timeout and, after the queue's
    /// `maxReceiveCount`, moves to the DLQ.
    LeaveForDlq,
}

pub struct Consumer {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub pipeline: Arc<Pipeline>,
    pub stats: Arc<Stats>,
    pub wait_seconds: i32,
    pub visibility: Duration,
}

/// Capped exponential backoff with full jitter on the receive count.
fn backoff(receive_count: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << receive_count.saturating_sub(1).min(16));
    exp.min(BACKOFF_CAP)
        .mul_f64(fastrand::f64())
        .max(Duration::from_secs(1))
}

fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

impl Consumer {
    /// Runs `consumers` receive loops until `shutdown`; each finishes its batch first.
    pub async fn run(self: Arc<Self>, consumers: usize, shutdown: CancellationToken) {
        let loops: Vec<_> = (0..consumers)
            .map(|i| tokio::spawn(Arc::clone(&self).receive_loop(i, shutdown.clone())))
            .collect();
        for l in loops {
            if let Err(e) = l.await {
                tracing::error!(error = %e, "consumer loop crashed");
            }
        }
    }

    async fn receive_loop(self: Arc<Self>, index: usize, shutdown: CancellationToken) {
        tracing::info!(consumer = index, "consumer started");
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.receive() => r,
            };
            match received {
                Ok(messages) => self.handle_batch(messages).await,
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!(consumer = index, "consumer stopped");
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_seconds)
            .visibility_timeout(i32::try_from(self.visibility.as_secs()).unwrap_or(i32::MAX))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn handle_batch(&self, messages: Vec<Message>) {
        let settled = futures_util::future::join_all(messages.iter().map(|m| self.handle(m))).await;
        let mut deletes = Vec::new();
        for (m, settle) in messages.iter().zip(settled) {
            let Some(receipt) = m.receipt_handle() else {
                continue;
            };
            match settle {
                Settle::Delete => deletes.push(receipt),
                Settle::RetryIn(delay) => {
                    Stats::add(&self.stats.retried);
                    self.retry_in(receipt, delay).await;
                }
                Settle::LeaveForDlq => {}
            }
        }
        self.delete(&deletes).await;
    }

    async fn handle(&self, m: &Message) -> Settle {
        Stats::add(&self.stats.received);
        let message_id = m.message_id().unwrap_or_default();
        let envelope = match Envelope::decode(m.body().unwrap_or_default()) {
            Ok(e) => e,
            Err(e) => {
                Stats::add(&self.stats.poison);
                tracing::error!(message_id, receive_count = receive_count(m), error = %e, "poison message left for the DLQ");
                return Settle::LeaveForDlq;
            }
        };
        match self.pipeline.handle(&envelope).await {
            Ok(Handled::Done) => {
                Stats::add(&self.stats.handled);
                Settle::Delete
            }
            // Counted as a duplicate by the pipeline.
            Ok(Handled::Duplicate) => Settle::Delete,
            Err(f) => {
                let count = receive_count(m);
                tracing::warn!(event_id = %envelope.event_id, receive_count = count, failure = %f, "event not completed");
                match f {
                    Failure::Permanent { .. } | Failure::Ambiguous { .. } => {
                        Stats::add(&self.stats.handled);
                        Settle::Delete
                    }
                    Failure::Retryable { retry_after, .. } => {
                        Settle::RetryIn(retry_after.unwrap_or_else(|| backoff(count)))
                    }
                    Failure::Account { .. } => Settle::RetryIn(PAUSED_ACCOUNT_RETRY),
                }
            }
        }
    }

    async fn retry_in(&self, receipt: &str, delay: Duration) {
        let seconds = i32::try_from(delay.min(MAX_VISIBILITY).as_secs()).unwrap_or(0);
        if let Err(e) = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
        {
            // The message still comes back when its current visibility timeout ends.
            tracing::warn!(error = %DisplayErrorContext(&e), "could not reschedule message");
        }
    }

    async fn delete(&self, receipts: &[&str]) {
        if receipts.is_empty() {
            return;
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*r)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>();
        let entries = match entries {
            Ok(e) => e,
            Err(e) => return tracing::error!(error = %e, "delete batch not built"),
        };
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            // A message not deleted comes back; its done-marker makes the repeat a no-op.
            Ok(out) => {
                for f in out.failed() {
                    tracing::warn!(
                        code = f.code(),
                        message = f.message(),
                        "message not deleted; will be redelivered and deduped"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "delete failed; messages will be redelivered and deduped")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        for count in [1, 2, 5, 30, u32::MAX] {
            let d = backoff(count);
            assert!(
                d >= Duration::from_secs(1) && d <= BACKOFF_CAP,
                "{count}: {d:?}"
            );
        }
        let early: Duration = (0..200).map(|_| backoff(1)).max().unwrap_or_default();
        assert!(early <= BACKOFF_BASE);
    }
}
