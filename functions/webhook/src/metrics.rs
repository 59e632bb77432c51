//! The webhook's metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout, which
//! CloudWatch Logs turns into metrics. Counts are kept in memory and written as one document
//! per flush: after every invocation in Lambda, every few seconds on a server.
//!
//! Hand-written rather than through the `metrics` facade: the facade's recorder is global,
//! which would mix the counts of the many apps a test process runs side by side.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use igflow_core::emf::Document;
use igflow_core::envelope::Envelope;
use igflow_core::runtime::{now_ms, write_metrics};
/// CloudWatch accepts at most 100 values per metric in one document.
const MAX_SAMPLES: usize = 100;

/// Counts since the last flush.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub deliveries: u64,
    pub signature_failures: u64,
    pub malformed: u64,
    pub too_large: u64,
    pub enqueue_failures: u64,
    /// Items larger than SQS accepts, dropped.
    pub oversized_items: u64,
    pub items_by_kind: BTreeMap<&'static str, u64>,
    /// Milliseconds per SendMessageBatch call.
    pub batch_ms: Vec<f64>,
}

impl Window {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    window: Mutex<Window>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Window)) {
        f(&mut self.window.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn delivery(&self, envelopes: &[Envelope]) {
        self.with(|w| {
            w.deliveries += 1;
            for e in envelopes {
                *w.items_by_kind.entry(e.kind.as_str()).or_default() += 1;
            }
        });
    }

    pub fn signature_failure(&self) {
        self.with(|w| w.signature_failures += 1);
    }

    pub fn malformed(&self) {
        self.with(|w| w.malformed += 1);
    }

    pub fn too_large(&self) {
        self.with(|w| w.too_large += 1);
    }

    pub fn enqueue_failure(&self) {
        self.with(|w| w.enqueue_failures += 1);
    }

    pub fn oversized_item(&self) {
        self.with(|w| w.oversized_items += 1);
    }

    pub fn batch_latency(&self, took: Duration) {
        self.with(|w| {
            if w.batch_ms.len() < MAX_SAMPLES {
                w.batch_ms.push(took.as_secs_f64() * 1000.0);
            }
        });
    }

    /// A copy of the counts since the last flush.
    pub fn peek(&self) -> Window {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the counts and renders them as EMF documents (none when nothing happened).
    pub fn take_emf(&self, timestamp_ms: i64) -> Vec<String> {
        let w = std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner));
        if w.is_empty() {
            return Vec::new();
        }
        let mut doc = Document::new()
            .dimension("Service", "webhook")
            .count("Deliveries", w.deliveries)
            .count("SignatureFailures", w.signature_failures)
            .count("MalformedDeliveries", w.malformed)
            .count("OversizedDeliveries", w.too_large)
            .count("EnqueueFailures", w.enqueue_failures)
            .count("OversizedItems", w.oversized_items);
        if !w.batch_ms.is_empty() {
            doc = doc.milliseconds("EnqueueBatchLatency", &w.batch_ms);
        }
        let mut lines = vec![doc.render(timestamp_ms)];
        for (kind, n) in w.items_by_kind {
            let doc = Document::new()
                .dimension("Service", "webhook")
                .dimension("Kind", kind)
                .count("Items", n);
            lines.push(doc.render(timestamp_ms));
        }
        lines
    }

    /// Writes the pending documents to stdout.
    pub fn flush(&self) {
        write_metrics(&self.take_emf(now_ms()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn renders_emf_and_resets() {
        let m = Metrics::default();
        assert!(m.take_emf(1).is_empty(), "nothing to say, nothing written");
        m.signature_failure();
        m.batch_latency(Duration::from_millis(7));
        let env: Envelope = Envelope::decode(
            r#"{"v":1,"event_id":"comment:1","kind":"comment","account_id":"1","occurred_at_ms":1,"received_at_ms":1,"delivery_id":"d","item":{}}"#,
        )
        .unwrap();
        m.delivery(&[env.clone(), env]);
        let lines = m.take_emf(1_732_200_000_000);
        assert_eq!(lines.len(), 2);
        let main: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(main["Deliveries"], 1);
        assert_eq!(main["SignatureFailures"], 1);
        assert_eq!(main["EnqueueBatchLatency"], json!([7.0]));
        assert_eq!(main["_aws"]["Timestamp"], 1_732_200_000_000_i64);
        assert_eq!(main["_aws"]["CloudWatchMetrics"][0]["Namespace"], "igflow");
        assert_eq!(
            main["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service"]])
        );
        let kinds: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            (kinds["Kind"].as_str(), kinds["Items"].as_u64()),
            (Some("comment"), Some(2))
        );
        assert!(
            m.take_emf(2).is_empty(),
            "flushed counts start again from zero"
        );
    }
}
