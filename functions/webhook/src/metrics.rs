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
    /// Items SQS refused as the sender's fault, put on the DLQ with the reason.
    pub refused_items: u64,
    pub items_by_kind: BTreeMap<&'static str, u64>,
    /// App callbacks (deauthorize, data deletion) verified and enqueued; their envelopes also
    /// count in `items_by_kind`.
    pub callbacks: u64,
    /// App callbacks whose signed request did not match any app secret.
    pub callback_signature_failures: u64,
    /// App callbacks refused as malformed: no or bad `signed_request`, bad base64 or JSON,
    /// another algorithm, a missing field.
    pub malformed_callbacks: u64,
    /// Milliseconds per SendMessageBatch call.
    pub batch_ms: Vec<f64>,
    /// Verified deliveries the raw archive did not take (they were still enqueued).
    pub archive_failures: u64,
    /// Milliseconds per archive write that succeeded.
    pub archive_ms: Vec<f64>,
}

impl Window {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Keeps a latency sample, up to what one document can carry.
fn sample(samples: &mut Vec<f64>, took: Duration) {
    if samples.len() < MAX_SAMPLES {
        samples.push(took.as_secs_f64() * 1000.0);
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

    pub fn refused_item(&self) {
        self.with(|w| w.refused_items += 1);
    }

    pub fn callback(&self, envelope: &Envelope) {
        self.with(|w| {
            w.callbacks += 1;
            *w.items_by_kind.entry(envelope.kind.as_str()).or_default() += 1;
        });
    }

    pub fn callback_signature_failure(&self) {
        self.with(|w| w.callback_signature_failures += 1);
    }

    pub fn malformed_callback(&self) {
        self.with(|w| w.malformed_callbacks += 1);
    }

    pub fn batch_latency(&self, took: Duration) {
        self.with(|w| sample(&mut w.batch_ms, took));
    }

    pub fn archive_failure(&self) {
        self.with(|w| w.archive_failures += 1);
    }

    pub fn archive_latency(&self, took: Duration) {
        self.with(|w| sample(&mut w.archive_ms, took));
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
            .count("OversizedItems", w.oversized_items)
            .count("RefusedItems", w.refused_items)
            .count("AppCallbacks", w.callbacks)
            .count("CallbackSignatureFailures", w.callback_signature_failures)
            .count("MalformedCallbacks", w.malformed_callbacks)
            .count("ArchiveFailures", w.archive_failures);
        if !w.batch_ms.is_empty() {
            doc = doc.milliseconds("EnqueueBatchLatency", &w.batch_ms);
        }
        if !w.archive_ms.is_empty() {
            doc = doc.milliseconds("ArchiveLatency", &w.archive_ms);
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

    #[test]
    fn app_callbacks_are_counted_apart_from_deliveries() {
        let m = Metrics::default();
        m.callback_signature_failure();
        m.malformed_callback();
        m.malformed_callback();
        let env: Envelope = Envelope::decode(
            r#"{"v":1,"event_id":"deauthorize:1:2","kind":"app_deauthorized","account_id":"1","occurred_at_ms":1,"received_at_ms":1,"delivery_id":"d","item":{}}"#,
        )
        .unwrap();
        m.callback(&env);
        let lines = m.take_emf(1);
        let main: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (
                &main["Deliveries"],
                &main["AppCallbacks"],
                &main["CallbackSignatureFailures"],
                &main["MalformedCallbacks"]
            ),
            (&json!(0), &json!(1), &json!(1), &json!(2))
        );
        let kinds: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(kinds["Kind"], "app_deauthorized");
    }
}
