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
use igflow_core::runtime::sqs::SqsError;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clients::store::MessageError;
use crate::pipeline::heartbeat::with_heartbeat;
use crate::pipeline::{Handled, Pipeline};
use crate::stats::Stats;

/// Retries back off from `backoff_base` (5 s by default), doubling per receive, up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);
/// SQS's longest message delay.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// What to do with a message once the pipeline is done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settle {
    Delete,
    /// Back into the queue as a new message that shows in this long: a wait for a rate slot
    /// is not a failed attempt and must not count towards the DLQ's receive limit.
    Requeue(Duration),
    RetryIn(Duration),
    /// Leave it: it reappears after its visibility timeout and, after the queue's
    /// `maxReceiveCount`, moves to the DLQ.
    LeaveForDlq,
    /// Leave it untouched for now: it reappears after its visibility timeout.
    Leave,
}

/// What the receive loops share: room for more work, the running tasks, the hard stop and
/// the deleter.
#[derive(Clone)]
struct Work {
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    hard_stop: CancellationToken,
    deletes: mpsc::Sender<String>,
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
    /// Messages worked on at once in this process (each in its own task).
    pub max_in_flight: usize,
    /// The first retry's backoff; each further one doubles it.
    pub backoff_base: Duration,
}

/// Capped exponential backoff on the receive count, with "equal jitter" (half fixed, half
/// random): retries spread out, yet with the default 5 s base the first four span at least
/// 37 s, so a database or Redis outage of half a minute does not push events to the DLQ.
fn backoff(base: Duration, receive_count: u32) -> Duration {
    let exp = base
        .saturating_mul(1 << receive_count.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    exp / 2 + (exp / 2).mul_f64(fastrand::f64())
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

/// SQS hands out at most 10 messages per receive.
const RECEIVE_MAX: usize = 10;
/// Deletes wait this long for company, so they go out in batches.
const DELETE_LINGER: Duration = Duration::from_millis(20);

impl Consumer {
    /// Runs `consumers` receive loops until `shutdown`. Each message is worked in its own
    /// task, so one that waits (for a rate budget, a slow model) holds up no other; at most
    /// `max_in_flight` at once. After shutdown, work in hand gets `shutdown_deadline` to
    /// finish; what does not finish is handed back to the queue.
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
        let permits = Arc::new(Semaphore::new(self.max_in_flight.max(1)));
        let tasks = TaskTracker::new();
        let (deletes, to_delete) = mpsc::channel(self.max_in_flight.max(RECEIVE_MAX));
        let deleter = tokio::spawn(Arc::clone(&self).delete_loop(to_delete));
        let loops: Vec<_> = (0..consumers)
            .map(|i| {
                let worker = Work {
                    permits: Arc::clone(&permits),
                    tasks: tasks.clone(),
                    hard_stop: hard_stop.clone(),
                    deletes: deletes.clone(),
                };
                tokio::spawn(Arc::clone(&self).receive_loop(i, shutdown.clone(), worker))
            })
            .collect();
        for l in loops {
            if let Err(e) = l.await {
                tracing::error!(error = %e, "consumer loop crashed");
            }
        }
        tasks.close();
        tasks.wait().await;
        drop(deletes);
        let _ = deleter.await;
        deadline.abort();
    }

    async fn receive_loop(self: Arc<Self>, index: usize, shutdown: CancellationToken, work: Work) {
        tracing::info!(consumer = index, "consumer started");
        loop {
            // Receive only what there is room for: one permit at least, up to ten.
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                p = Arc::clone(&work.permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let mut held = vec![first];
            while held.len() < RECEIVE_MAX {
                match Arc::clone(&work.permits).try_acquire_owned() {
                    Ok(p) => held.push(p),
                    Err(_) => break,
                }
            }
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.receive(held.len()) => r,
            };
            match received {
                Ok(messages) => {
                    for (m, permit) in messages.into_iter().zip(held.drain(..)) {
                        let consumer = Arc::clone(&self);
                        let (hard_stop, deletes) = (work.hard_stop.clone(), work.deletes.clone());
                        work.tasks.spawn(async move {
                            consumer.work_on(m, &hard_stop, &deletes).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) if e.retryable() => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "receive failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // Refused until an operator fixes the queue or its permissions: loud, slower.
                Err(e) => {
                    tracing::error!(error = %DisplayErrorContext(&e), "receive refused; retrying in 10 s");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
        tracing::info!(consumer = index, "consumer stopped");
    }

    async fn receive(&self, max: usize) -> Result<Vec<Message>, SqsError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, RECEIVE_MAX)).unwrap_or(10))
            .wait_time_seconds(self.wait_seconds)
            .visibility_timeout(seconds(self.visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| SqsError::sdk("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Works one message to its end and settles it.
    async fn work_on(
        &self,
        m: Message,
        hard_stop: &CancellationToken,
        deletes: &mpsc::Sender<String>,
    ) {
        let Some(receipt) = m.receipt_handle().map(str::to_owned) else {
            return;
        };
        // Renewed every third of the visibility, so a slow message never reappears on
        // another worker while this one is still on it.
        let receipts = [receipt.as_str()];
        let work = with_heartbeat(self.handle(&m), self.visibility / 3, || {
            self.set_visibility(&receipts, self.visibility)
        });
        let settled = tokio::select! {
            s = work => Some(s),
            // Past the shutdown deadline: give the message back for another worker.
            () = hard_stop.cancelled() => None,
        };
        match settled {
            Some(Settle::Delete) => {
                if deletes.send(receipt).await.is_err() {
                    tracing::warn!("deleter gone; the message will be redelivered and deduped");
                }
            }
            Some(Settle::RetryIn(delay)) => {
                Stats::add(&self.stats.retried);
                self.set_visibility(&[&receipt], delay).await;
            }
            Some(Settle::Requeue(wait)) => {
                Stats::add(&self.stats.deferred);
                match self.requeue(&m, wait).await {
                    Ok(()) => {
                        if deletes.send(receipt).await.is_err() {
                            tracing::warn!("deleter gone; the old copy comes back and is deduped");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %DisplayErrorContext(&e), "deferred copy not enqueued; hiding the message instead");
                        self.set_visibility(&[&receipt], wait).await;
                    }
                }
            }
            Some(Settle::LeaveForDlq | Settle::Leave) => {}
            None => {
                Stats::add(&self.stats.handed_back);
                self.set_visibility(&[&receipt], Duration::ZERO).await;
            }
        }
    }

    /// Sends a copy of `m` that shows after `wait` (SQS delays up to 15 minutes; a longer
    /// wait is deferred again when the copy comes back).
    async fn requeue(&self, m: &Message, wait: Duration) -> Result<(), SqsError> {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(m.body().unwrap_or_default())
            .delay_seconds(seconds(wait.min(MAX_DELAY)))
            .send()
            .await
            .map(drop)
            .map_err(|e| SqsError::sdk("SendMessage", e))
    }

    /// Deletes settled messages in batches of up to ten.
    async fn delete_loop(self: Arc<Self>, mut receipts: mpsc::Receiver<String>) {
        while let Some(first) = receipts.recv().await {
            let mut batch = vec![first];
            let linger = tokio::time::Instant::now() + DELETE_LINGER;
            while batch.len() < RECEIVE_MAX {
                match tokio::time::timeout_at(linger, receipts.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    _ => break,
                }
            }
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            self.delete(&refs).await;
        }
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
            Ok(Handled::Busy) => {
                Stats::add(&self.stats.busy);
                Settle::Leave
            }
            Ok(Handled::Deferred(wait)) => Settle::Requeue(wait),
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
                        Settle::RetryIn(
                            retry_after.unwrap_or_else(|| backoff(self.backoff_base, count)),
                        )
                    }
                    // The pipeline pauses the account and parks the event on an account failure
                    // it meets while acting; one that reaches here had no account to pause:
                    // recorded for `dlq list` and retried. (A corrupt account row is
                    // `StoreError::CorruptAccount`, retryable.)
                    Failure::Account { ref reason } => {
                        self.record_error(m, Some(&envelope), reason).await;
                        Settle::RetryIn(backoff(self.backoff_base, count))
                    }
                }
            }
        }
    }

    /// Best effort: the reason shows in `igflow-worker dlq` if the message ends there.
    async fn record_error(&self, m: &Message, envelope: Option<&Envelope>, error: &str) {
        let record = MessageError {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            ig_user_id: envelope.map(|e| e.account_id.to_string()),
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
                .map_err(|e| SqsError::sdk("ChangeMessageVisibilityBatch", e))
                .map(|out| out.failed().len()),
            Err(e) => Err(SqsError::build("ChangeMessageVisibilityBatch", e)),
        };
        match result {
            Ok(0) => {}
            // The messages still come back when their current visibility ends.
            Ok(failed) => tracing::warn!(failed, "visibility not changed for some messages"),
            Err(e) => tracing::warn!(error = %DisplayErrorContext(&e), "visibility not changed"),
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
                tracing::warn!(error = %DisplayErrorContext(&e), "delete failed; messages will be redelivered and deduped")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_spans_outages() {
        let base = Duration::from_secs(5);
        for count in [1, 2, 5, 30, u32::MAX] {
            let d = backoff(base, count);
            assert!(d >= base / 2 && d <= BACKOFF_CAP, "{count}: {d:?}");
        }
        let first = (0..200).map(|_| backoff(base, 1)).max().unwrap_or_default();
        assert!(first <= base);
        let least: Duration = (1..=4).map(|n| base.saturating_mul(1 << (n - 1)) / 2).sum();
        assert_eq!(least, Duration::from_millis(37_500));
    }
}
