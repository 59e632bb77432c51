//! The SQS loop: receive, work each message through the pipeline, settle it by its [`Next`].

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use igflow_core::envelope::Envelope;
use igflow_core::runtime::queue::delete_messages;
use igflow_core::runtime::sqs::SqsError;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::clients::store::MessageError;
use crate::pipeline::heartbeat::with_heartbeat;
use crate::pipeline::settle::Settled;
use crate::pipeline::{Dropped, Next, Pipeline, Worked, decode};
use crate::stats::Stats;

/// SQS's longest message delay.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// What the receive loops share: room for more work, the running tasks, the hard stop and
/// the deleter.
#[derive(Clone)]
struct Work {
    permits: Arc<Semaphore>,
    /// The batch a receive waits for room for (up to `RECEIVE_LINGER`) once the worker is full.
    batch: usize,
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

/// What one [`Consumer::process_next`] did: the messages it received, by how each ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub received: usize,
    /// Handled for good, given up included.
    pub done: usize,
    pub deferred: usize,
    pub parked: usize,
    pub retried: usize,
    pub duplicates: usize,
    /// Left for another worker that holds the event.
    pub busy: usize,
    pub poison: usize,
}

impl std::ops::AddAssign for Step {
    fn add_assign(&mut self, other: Self) {
        self.received += other.received;
        self.done += other.done;
        self.deferred += other.deferred;
        self.parked += other.parked;
        self.retried += other.retried;
        self.duplicates += other.duplicates;
        self.busy += other.busy;
        self.poison += other.poison;
    }
}

impl Step {
    /// Messages that ended for good here: done (given up included) or duplicates.
    pub fn finished(&self) -> usize {
        self.done + self.duplicates
    }

    fn add(&mut self, next: &Next) {
        let n = match next {
            Next::Continue
            | Next::Done
            | Next::Drop(Dropped::GivenUp(_) | Dropped::Held { .. }) => &mut self.done,
            Next::Defer(_) => &mut self.deferred,
            Next::Park => &mut self.parked,
            Next::Retry { .. } => &mut self.retried,
            Next::Drop(Dropped::Duplicate) => &mut self.duplicates,
            Next::Drop(Dropped::Busy) => &mut self.busy,
            Next::Drop(Dropped::Poison(_)) => &mut self.poison,
        };
        *n += 1;
    }
}

pub(crate) fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Whole seconds, rounded down: a deferred event comes back a little early for its rate
/// slot and waits the rest in the worker (see `guard`), which keeps sends on their slots.
fn seconds(d: Duration) -> i32 {
    i32::try_from(d.min(MAX_VISIBILITY).as_secs()).unwrap_or(0)
}

/// SQS hands out at most 10 messages per receive.
const RECEIVE_MAX: usize = 10;
/// Deletes wait this long for company, so they go out in batches.
const DELETE_LINGER: Duration = Duration::from_millis(20);
/// Delete calls at once. One at a time, a worker deleted at most ten messages per call's
/// round trip (500 a second at SQS's typical 20 ms), and once the deletes queued up, the work
/// waiting to hand them over held the worker's room: the worker's throughput was the
/// deleter's.
const DELETES_IN_FLIGHT: usize = 8;
/// A full worker frees room one message at a time; a receive waits this long for room for a
/// batch instead of taking one message per call (which was most of its SQS calls).
const RECEIVE_LINGER: Duration = Duration::from_millis(20);

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
        // At most half the room waits in lingering receives, so work in flight stays high.
        let batch = (self.max_in_flight / (2 * consumers.max(1))).clamp(1, RECEIVE_MAX);
        let loops: Vec<_> = (0..consumers)
            .map(|i| {
                let worker = Work {
                    permits: Arc::clone(&permits),
                    batch,
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
            // Receive only what there is room for: one permit at least, up to a batch.
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                p = Arc::clone(&work.permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let mut held = vec![first];
            let linger = tokio::time::Instant::now() + RECEIVE_LINGER;
            while held.len() < work.batch {
                let room = Arc::clone(&work.permits).acquire_owned();
                match tokio::time::timeout_at(linger, room).await {
                    Ok(Ok(p)) => held.push(p),
                    _ => break,
                }
            }
            // Room that is free anyway is taken too, up to SQS's ten.
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
                            if let Some(receipt) = consumer.work_on(&m, &hard_stop).await.delete
                                && deletes.send(receipt).await.is_err()
                            {
                                tracing::warn!(
                                    "deleter gone; the message will be redelivered and deduped"
                                );
                            }
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

    /// Receives one batch (up to `max_in_flight`, at most ten messages), works its messages
    /// at once, settles them and says how each ended: the worker one step at a time, for
    /// tests and tools that drive it.
    pub async fn process_next(&self) -> Result<Step, SqsError> {
        let messages = self.receive(self.max_in_flight).await?;
        let never = CancellationToken::new();
        let settled =
            futures_util::future::join_all(messages.iter().map(|m| self.work_on(m, &never))).await;
        let mut step = Step {
            received: messages.len(),
            ..Step::default()
        };
        for s in &settled {
            step.add(&s.next);
        }
        let receipts: Vec<&str> = settled.iter().filter_map(|s| s.delete.as_deref()).collect();
        self.delete(&receipts).await;
        Ok(step)
    }

    /// Works one message to its end (renewing its visibility every third of it, so it never
    /// reappears on another worker meanwhile) and settles it; past `hard_stop`, gives it back
    /// for another worker.
    async fn work_on(&self, m: &Message, hard_stop: &CancellationToken) -> Settled {
        let span = tracing::info_span!(
            "event",
            message_id = m.message_id().unwrap_or_default(),
            receive_count = receive_count(m),
            event_id = tracing::field::Empty,
            account_id = tracing::field::Empty,
            kind = tracing::field::Empty,
            campaign_id = tracing::field::Empty,
        );
        async {
            Stats::add(&self.stats.received);
            let env = match decode::decode(m) {
                Ok(env) => env,
                Err(next) => return self.settle(m, None, Worked { next, claim: None }).await,
            };
            let receipts = [m.receipt_handle().unwrap_or_default()];
            let work = with_heartbeat(self.pipeline.handle(&env), self.visibility / 3, || {
                self.set_visibility(&receipts, self.visibility)
            });
            tokio::select! {
                worked = work => self.settle(m, Some(&env), worked).await,
                () = hard_stop.cancelled() => {
                    Stats::add(&self.stats.handed_back);
                    self.set_visibility(&receipts, Duration::ZERO).await;
                    // Left to come back, like a copy another worker holds.
                    Settled { next: Next::Drop(Dropped::Busy), delete: None }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Sends a copy of `m` that shows after `wait` (SQS delays up to 15 minutes; a longer
    /// wait is deferred again when the copy comes back).
    pub(super) async fn requeue(&self, m: &Message, wait: Duration) -> Result<(), SqsError> {
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

    /// Deletes settled messages in batches of up to ten, up to `DELETES_IN_FLIGHT` calls at
    /// once; returns once the channel is closed and every call has ended.
    async fn delete_loop(self: Arc<Self>, mut receipts: mpsc::Receiver<String>) {
        let mut calls = JoinSet::new();
        while let Some(first) = receipts.recv().await {
            let mut batch = vec![first];
            let linger = tokio::time::Instant::now() + DELETE_LINGER;
            while batch.len() < RECEIVE_MAX {
                match tokio::time::timeout_at(linger, receipts.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    _ => break,
                }
            }
            while calls.try_join_next().is_some() {}
            if calls.len() >= DELETES_IN_FLIGHT {
                calls.join_next().await;
            }
            let consumer = Arc::clone(&self);
            calls.spawn(
                async move {
                    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                    consumer.delete(&refs).await;
                }
                .in_current_span(),
            );
        }
        while calls.join_next().await.is_some() {}
    }

    /// Best effort: the reason shows in `igflow-worker dlq` if the message ends there.
    pub(super) async fn record_error(&self, m: &Message, envelope: Option<&Envelope>, error: &str) {
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

    pub(super) async fn set_visibility(&self, receipts: &[&str], delay: Duration) {
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
    fn waits_are_whole_seconds_capped_at_sqs_limit() {
        assert_eq!(seconds(Duration::from_millis(1_500)), 1);
        assert_eq!(seconds(Duration::from_secs(3)), 3);
        assert_eq!(seconds(Duration::from_secs(100_000)), 43_200);
    }
}
