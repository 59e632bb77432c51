//! The SQS loop: receive, hand each message to the pipeline, settle it by the outcome.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;
use igflow_core::runtime::queue::delete_messages;
use tokio_util::sync::CancellationToken;

use crate::heartbeat::with_heartbeat;
use crate::pipeline::{Handled, Pipeline};
use crate::stats::Stats;
use crate::store::MessageError;

/// Retries back off from this, doubling per receive...
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// ...up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);
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
    /// How long in-flight work may go on after a shutdown request.
    pub shutdown_deadline: Duration,
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

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.min(MAX_VISIBILITY).as_secs()).unwrap_or(0)
}

impl Consumer {
    /// Runs `consumers` receive loops until `shutdown`. Work in hand then gets
    /// `shutdown_deadline` to finish; what does not finish is handed back to the queue.
    pub async fn run(self: Arc<Self>, consumers: usize, shutdown: CancellationToken) {
        let hard_stop = CancellationToken::new();
        let deadline = tokio::spawn({
            let (shutdown, hard_stop, after) =
                (shutdown.clone(), hard_stop.clone(), self.shutdown_deadline);
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(after).await;
                hard_stop.cancel();
            }
        });
        let loops: Vec<_> = (0..consumers)
            .map(|i| {
                tokio::spawn(Arc::clone(&self).receive_loop(i, shutdown.clone(), hard_stop.clone()))
            })
            .collect();
        for l in loops {
            if let Err(e) = l.await {
                tracing::error!(error = %e, "consumer loop crashed");
            }
        }
        deadline.abort();
    }

    async fn receive_loop(
        self: Arc<Self>,
        index: usize,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
    ) {
        tracing::info!(consumer = index, "consumer started");
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.receive() => r,
            };
            match received {
                Ok(messages) if !messages.is_empty() => {
                    self.handle_batch(messages, &hard_stop).await
                }
                Ok(_) => {}
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
            .visibility_timeout(seconds(self.visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn handle_batch(&self, messages: Vec<Message>, hard_stop: &CancellationToken) {
        let receipts: Vec<&str> = messages
            .iter()
            .filter_map(Message::receipt_handle)
            .collect();
        let work = futures_util::future::join_all(messages.iter().map(|m| async {
            tokio::select! {
                s = self.handle(m) => Some(s),
                // Past the shutdown deadline: give the message back for another worker.
                () = hard_stop.cancelled() => None,
            }
        }));
        // Renewed every third of the visibility, so a slow batch never reappears on another
        // worker while this one is still on it.
        let settled = with_heartbeat(work, self.visibility / 3, || {
            self.set_visibility(&receipts, self.visibility)
        })
        .await;

        let mut deletes = Vec::new();
        for (m, settle) in messages.iter().zip(settled) {
            let Some(receipt) = m.receipt_handle() else {
                continue;
            };
            match settle {
                Some(Settle::Delete) => deletes.push(receipt),
                Some(Settle::RetryIn(delay)) => {
                    Stats::add(&self.stats.retried);
                    self.set_visibility(&[receipt], delay).await;
                }
                Some(Settle::LeaveForDlq) => {}
                None => {
                    Stats::add(&self.stats.handed_back);
                    self.set_visibility(&[receipt], Duration::ZERO).await;
                }
            }
        }
        self.delete(&deletes).await;
    }

    async fn handle(&self, m: &Message) -> Settle {
        Stats::add(&self.stats.received);
        let message_id = m.message_id().unwrap_or_default();
        let count = receive_count(m);
        let envelope = match Envelope::decode(m.body().unwrap_or_default()) {
            Ok(e) => e,
            Err(e) => {
                Stats::add(&self.stats.poison);
                tracing::error!(message_id, receive_count = count, error = %e, "poison message left for the DLQ");
                self.record_error(m, None, &e.to_string()).await;
                return Settle::LeaveForDlq;
            }
        };
        match self.pipeline.handle(&envelope).await {
            Ok(Handled::Done) => {
                Stats::add(&self.stats.handled);
                Settle::Delete
            }
            // Counted by the pipeline.
            Ok(Handled::Duplicate | Handled::Parked) => Settle::Delete,
            Err(f) => {
                tracing::warn!(event_id = %envelope.event_id, receive_count = count, failure = %f, "event not completed");
                match f {
                    Failure::Permanent { .. } | Failure::Ambiguous { .. } => {
                        Stats::add(&self.stats.handled);
                        Settle::Delete
                    }
                    Failure::Retryable {
                        retry_after,
                        ref reason,
                    } => {
                        self.record_error(m, Some(&envelope), reason).await;
                        Settle::RetryIn(retry_after.unwrap_or_else(|| backoff(count)))
                    }
                    // Parking failed (Postgres unreachable): try again like any transient error.
                    Failure::Account { ref reason } => {
                        self.record_error(m, Some(&envelope), reason).await;
                        Settle::RetryIn(backoff(count))
                    }
                }
            }
        }
    }

    /// Best effort: the reason shows in `igflow-worker dlq` if the message ends there.
    async fn record_error(&self, m: &Message, envelope: Option<&Envelope>, error: &str) {
        let record = MessageError {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            event_id: envelope.map(|e| e.event_id.to_string()),
            event_kind: envelope.map(|e| e.kind.as_str().to_owned()),
            error: error.to_owned(),
            receive_count: i32::try_from(receive_count(m)).unwrap_or(i32::MAX),
        };
        if let Err(e) = self.pipeline.store.record_message_error(&record).await {
            tracing::warn!(error = %e, "message error not recorded");
        }
    }

    async fn set_visibility(&self, receipts: &[&str], delay: Duration) {
        if receipts.is_empty() {
            return;
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*r)
                    .visibility_timeout(seconds(delay))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>();
        let result = match entries {
            Ok(entries) => self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())
                .map(|out| out.failed().len()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(0) => {}
            // The messages still come back when their current visibility ends.
            Ok(failed) => tracing::warn!(failed, "visibility not changed for some messages"),
            Err(e) => tracing::warn!(error = %e, "visibility not changed"),
        }
    }

    async fn delete(&self, receipts: &[&str]) {
        // A message not deleted comes back; its done-marker makes the repeat a no-op.
        match delete_messages(&self.sqs, &self.queue_url, receipts).await {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(
                failed,
                "messages not deleted; they will be redelivered and deduped"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "delete failed; messages will be redelivered and deduped")
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
