//! The worker's counters as CloudWatch EMF documents, written every `IGFLOW_METRICS_SECONDS`
//! and at shutdown. `AccountsPaused` feeds the token-failure alarm.

use std::sync::Arc;
use std::time::Duration;

use igflow_core::emf::Document;
use igflow_core::runtime::{now_ms, write_metrics};
use tokio_util::sync::CancellationToken;

use crate::stats::{Snapshot, Stats};

/// `accounts_paused` → `AccountsPaused`.
fn metric_name(field: &str) -> String {
    field
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The counts between two snapshots as one EMF document (none when nothing happened).
pub fn document(now: &Snapshot, earlier: &Snapshot, timestamp_ms: i64) -> Option<String> {
    let counts = now.since(earlier);
    if counts.iter().all(|(_, n)| *n == 0) {
        return None;
    }
    let doc = counts.into_iter().fold(
        Document::new().dimension("Service", "worker"),
        |doc, (field, n)| doc.count(metric_name(field), n),
    );
    Some(doc.render(timestamp_ms))
}

pub struct Reporter {
    pub stats: Arc<Stats>,
    pub every: Duration,
}

impl Reporter {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last = Snapshot::default();
        loop {
            let stop = tokio::select! {
                () = shutdown.cancelled() => true,
                () = tokio::time::sleep(self.every) => false,
            };
            let now = self.stats.snapshot();
            if let Some(line) = document(&now, &last, now_ms()) {
                write_metrics(&[line]);
            }
            last = now;
            if stop {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn deltas_become_camel_case_counts() {
        assert_eq!(metric_name("accounts_paused"), "AccountsPaused");
        let earlier = Snapshot {
            sent: 2,
            ..Snapshot::default()
        };
        let now = Snapshot {
            sent: 5,
            accounts_paused: 1,
            ..Snapshot::default()
        };
        let v: Value = serde_json::from_str(&document(&now, &earlier, 1).unwrap()).unwrap();
        assert_eq!(
            (
                v["Sent"].as_u64(),
                v["AccountsPaused"].as_u64(),
                v["Received"].as_u64()
            ),
            (Some(3), Some(1), Some(0))
        );
        assert_eq!(v["Service"], "worker");
        assert_eq!(document(&now, &now, 1), None);
    }
}
