//! `igflow-worker replay FILE`: re-enqueues raw deliveries captured from Meta, split exactly
//! as the webhook splits them, so the worker's dedupe recognizes events it already handled.

use igflow_core::envelope::Envelope;
use igflow_core::runtime::queue::QueueSender;
use igflow_core::signature::VerifiedDelivery;
use igflow_core::splitter::split;
use serde_json::value::RawValue;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("delivery {index} of the file: {problem}")]
    Delivery { index: usize, problem: String },
    #[error("{failed} of {total} envelopes were not accepted by the queue: {detail}")]
    Queue {
        failed: usize,
        total: usize,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    pub deliveries: usize,
    pub envelopes: usize,
}

/// The deliveries in a file, byte for byte: a JSON array of them, one JSON document, or
/// JSON Lines (one delivery per line).
fn deliveries(text: &str) -> Result<Vec<&str>, ReplayError> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let list: Vec<&RawValue> =
            serde_json::from_str(trimmed).map_err(|e| ReplayError::Delivery {
                index: 0,
                problem: format!("not a JSON array of deliveries: {e}"),
            })?;
        return Ok(list.into_iter().map(RawValue::get).collect());
    }
    if serde_json::from_str::<&RawValue>(trimmed).is_ok() {
        return Ok(vec![trimmed]);
    }
    Ok(trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect())
}

/// Splits every delivery first (a bad file enqueues nothing), then enqueues all envelopes.
pub async fn replay(
    text: &str,
    queue: &QueueSender,
    received_at_ms: i64,
) -> Result<ReplaySummary, ReplayError> {
    let raw = deliveries(text)?;
    let mut envelopes: Vec<Envelope> = Vec::new();
    for (index, body) in raw.iter().enumerate() {
        let delivery = VerifiedDelivery::vouched_by_operator(body.as_bytes());
        let split = split(delivery, received_at_ms).map_err(|e| ReplayError::Delivery {
            index,
            problem: e.to_string(),
        })?;
        envelopes.extend(split);
    }
    enqueue(queue, &envelopes).await?;
    Ok(ReplaySummary {
        deliveries: raw.len(),
        envelopes: envelopes.len(),
    })
}

/// Enqueues replayed envelopes; any the queue did not take fails the replay (running it again
/// is safe: what did get through is dropped by the dedupe).
pub async fn enqueue(queue: &QueueSender, envelopes: &[Envelope]) -> Result<(), ReplayError> {
    let report = queue.send(envelopes).await;
    let failed = report.failed + report.oversized.len();
    if failed > 0 {
        return Err(ReplayError::Queue {
            failed,
            total: envelopes.len(),
            detail: report
                .last_error
                .unwrap_or_else(|| "larger than SQS accepts".into()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_hold_arrays_documents_or_lines_kept_byte_for_byte() {
        let one = r#"{"object":"instagram","entry":[{"id":"1","time":1,"changes":[{"field":"comments","value":{"id":"5","text":"caf\u00e9"}}]}]}"#;
        assert_eq!(deliveries(one).unwrap(), vec![one]);
        assert_eq!(
            deliveries(&format!("{one}\n\n{one}\n")).unwrap(),
            vec![one, one]
        );
        assert_eq!(
            deliveries(&format!("[{one},\n {one}]")).unwrap(),
            vec![one, one]
        );
        let pretty = "{\n  \"object\": \"instagram\",\n  \"entry\": []\n}";
        assert_eq!(deliveries(pretty).unwrap(), vec![pretty]);
    }
}
