//! Sending to the events queue within SQS's limits, shared by the webhook (deliveries) and the
//! worker (replays, redrives, parked events coming back).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use futures_util::{StreamExt, stream};

use super::sqs::SqsError;
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
    /// Messages SQS refused as the sender's fault (characters it does not accept, say): no
    /// retry can change that, so they are not retried. Indices into what was sent (the
    /// envelopes for [`QueueSender::send`], the bodies for [`QueueSender::send_raw`]).
    pub refused: Vec<Refused>,
    /// Duration of every `SendMessageBatch` call.
    pub batch_latencies: Vec<Duration>,
}

/// Why a refused envelope did not reach the DLQ.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// `\u` escapes take up to 6 bytes a character: in ASCII the envelope outgrew a message.
    #[error("{0} bytes as ASCII JSON with its attributes, more than an SQS message holds")]
    TooLarge(usize),
    #[error(transparent)]
    Send(#[from] SqsError),
}

/// One message SQS refused for good, with what SQS said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub code: String,
    pub message: String,
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

/// Outcome of one batch.
#[derive(Default)]
struct BatchOutcome {
    /// Entries still refused (transiently) after every attempt.
    failed: usize,
    last_error: Option<String>,
    refused: Vec<Refused>,
    latencies: Vec<Duration>,
}

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
        // Which envelope each body is.
        let mut sent = Vec::with_capacity(encoded.len());
        for (i, (env, body)) in envelopes.iter().zip(&encoded).enumerate() {
            if body.len() > MAX_SQS_PAYLOAD {
                oversized.push((env.event_id.clone(), body.len()));
            } else {
                bodies.push(body.as_str());
                sent.push(i);
            }
        }
        let mut report = self.send_raw(&bodies).await;
        for refused in &mut report.refused {
            refused.index = sent[refused.index];
        }
        SendReport {
            oversized,
            ..report
        }
    }

    /// Puts one envelope SQS refused on this queue (the DLQ) with the refusal as message
    /// attributes. The body is the envelope's JSON in ASCII, every other character a `\u`
    /// escape: SQS accepts it whatever the item holds, and it decodes to the same envelope, so
    /// the DLQ tooling can show and redrive it.
    pub async fn dead_letter(
        &self,
        envelope: &Envelope,
        refused: &Refused,
    ) -> Result<(), DeadLetterError> {
        // An attribute value must not be empty.
        let or_unknown = |v: &str| {
            if v.is_empty() {
                "unknown".to_owned()
            } else {
                v.to_owned()
            }
        };
        let attributes = [
            ("igflow_refused_code", or_unknown(&refused.code)),
            ("igflow_refused_reason", or_unknown(&refused.message)),
            ("igflow_event_id", envelope.event_id.as_str().to_owned()),
        ];
        let body = ascii_json(&envelope.encode());
        // SQS counts attribute names, types and values in the message's size.
        let size = body.len()
            + attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>();
        if size > MAX_SQS_PAYLOAD {
            return Err(DeadLetterError::TooLarge(size));
        }
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| SqsError::build("SendMessage", e))?;
            send = send.message_attributes(name, value);
        }
        send.send()
            .await
            .map(|_| ())
            .map_err(|e| SqsError::sdk("SendMessage", e).into())
    }

    /// Sends message bodies as they are (a DLQ redrive may carry ones that are not envelopes).
    pub async fn send_raw(&self, bodies: &[&str]) -> SendReport {
        let sizes: Vec<usize> = bodies.iter().map(|b| b.len()).collect();
        let sends: Vec<_> = batches(&sizes)
            .into_iter()
            .map(|r| self.send_batch(r.start, &bodies[r]))
            .collect();
        let outcomes: Vec<BatchOutcome> = stream::iter(sends)
            .buffer_unordered(CONCURRENT_BATCHES)
            .collect()
            .await;
        let mut report = SendReport::default();
        for outcome in outcomes {
            report.failed += outcome.failed;
            report.last_error = outcome.last_error.or(report.last_error);
            report.refused.extend(outcome.refused);
            report.batch_latencies.extend(outcome.latencies);
        }
        report.refused.sort_by_key(|r| r.index);
        report
    }

    /// Sends one batch (`bodies` start at index `first` of the whole send), resending only
    /// the entries SQS refused for reasons of its own.
    async fn send_batch(&self, first: usize, bodies: &[&str]) -> BatchOutcome {
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        let mut outcome = BatchOutcome::default();
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
                Err(e) => {
                    outcome.failed = pending.len();
                    outcome.last_error = Some(e.to_string());
                    return outcome;
                }
            };
            let started = Instant::now();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            outcome.latencies.push(started.elapsed());
            match sent {
                Ok(out) => {
                    let failed: HashMap<&str, _> =
                        out.failed().iter().map(|f| (f.id(), f)).collect();
                    pending.retain(|i| {
                        let Some(f) = failed.get(i.to_string().as_str()) else {
                            return false;
                        };
                        let message = f.message().unwrap_or_default().to_owned();
                        if f.sender_fault() {
                            outcome.refused.push(Refused {
                                index: first + i,
                                code: f.code().to_owned(),
                                message,
                            });
                            return false;
                        }
                        outcome.last_error = Some(format!("{}: {message}", f.code()));
                        true
                    });
                }
                Err(e) => outcome.last_error = Some(DisplayErrorContext(&e).to_string()),
            }
            if pending.is_empty() {
                outcome.last_error = None;
                return outcome;
            }
            tracing::warn!(attempt, pending = pending.len(), error = ?outcome.last_error, "SQS refused entries, retrying");
        }
        outcome.failed = pending.len();
        outcome
    }
}

/// Deletes messages by receipt handle, 10 per call. Returns how many were not deleted.
pub async fn delete_messages(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: &[&str],
) -> Result<usize, SqsError> {
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
            .map_err(|e| SqsError::build("DeleteMessageBatch", e))?;
        let out = client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::sdk("DeleteMessageBatch", e))?;
        failed += out.failed().len();
    }
    Ok(failed)
}

/// JSON text with every non-ASCII character written as a `\u` escape (UTF-16, as JSON
/// wants). Outside strings JSON is ASCII already, and serde_json escapes control characters.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_json_decodes_to_the_same_value() {
        let value = serde_json::json!({ "text": "prix ? très \u{ffff} 😀 \u{1}", "n": 1 });
        let ascii = ascii_json(&value.to_string());
        assert!(ascii.is_ascii(), "{ascii}");
        assert!(
            ascii.contains(r"\uffff") && ascii.contains(r"\ud83d\ude00"),
            "{ascii}"
        );
        let back: serde_json::Value = serde_json::from_str(&ascii).unwrap();
        assert_eq!(back, value);
    }

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
