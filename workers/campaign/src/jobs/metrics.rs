//! The worker's counters as CloudWatch EMF documents, written every `IGFLOW_METRICS_SECONDS`
//! and at shutdown. `AccountsPaused` feeds the token-failure alarm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use igflow_core::emf::Document;
use igflow_core::runtime::{now_ms, write_metrics};
use tokio_util::sync::CancellationToken;

use crate::clients::ratelimit::{CallClass, Meter, RateLimiter};
use crate::clients::store::{Health, Store};
use crate::pipeline::classify::{BreakerCounts, IntentClassifier};
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

/// Most samples kept per call class between flushes; beyond, a flush reports the first ones.
const MAX_SAMPLES: usize = 10_000;
/// CloudWatch reads at most 100 values of one metric from one document.
const VALUES_PER_DOCUMENT: usize = 100;

/// How long sent actions took end to end: from the webhook receiving the event to Meta's
/// answer, deferrals for the rate budget included, by call class.
#[derive(Debug, Default)]
pub struct Latencies(Mutex<HashMap<&'static str, Vec<f64>>>);

impl Latencies {
    pub fn record(&self, class: CallClass, took: Duration) {
        let mut samples = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let class = samples.entry(class.as_str()).or_default();
        if class.len() < MAX_SAMPLES {
            class.push(took.as_secs_f64() * 1000.0);
        }
    }

    fn documents(&self, timestamp_ms: i64) -> Vec<String> {
        let samples = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        samples
            .into_iter()
            .flat_map(|(class, values)| {
                values
                    .chunks(VALUES_PER_DOCUMENT)
                    .map(|chunk| {
                        Document::new()
                            .dimension("Service", "worker")
                            .dimension("Class", class)
                            .milliseconds("EndToEndLatency", chunk)
                            .render(timestamp_ms)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

pub struct Reporter {
    pub store: Store,
    pub stats: Arc<Stats>,
    pub latencies: Arc<Latencies>,
    pub limiter: Arc<RateLimiter>,
    pub classifier: Arc<IntentClassifier>,
    pub every: Duration,
}

/// The intent model's breakers (one per tenant) as metrics: `BreakerOpen`, the percentage of
/// the tenants that asked the model whose calls now fall back to keywords (the alarm: most of
/// them is the model down, not one tenant's slow calls), and `BreakersOpen`, how many.
/// Without a model there are no breakers and nothing is reported.
fn breaker_document(counts: BreakerCounts, timestamp_ms: i64) -> String {
    Document::new()
        .dimension("Service", "worker")
        .percent("BreakerOpen", counts.open_percent())
        .count(
            "BreakersOpen",
            u64::try_from(counts.open).unwrap_or(u64::MAX),
        )
        .render(timestamp_ms)
}

/// Token expiry, active accounts and Postgres connections as gauges: every worker reports the
/// same fleet-wide values, so alarms take the maximum.
fn health_document(health: Health, timestamp_ms: i64) -> String {
    let percent = health.connections_percent.clamp(0.0, 100.0).round() as u8;
    Document::new()
        .dimension("Service", "worker")
        .count(
            "TokensExpiringSoon",
            u64::try_from(health.tokens_expiring).unwrap_or(0),
        )
        .count(
            "ActiveAccounts",
            u64::try_from(health.active_accounts).unwrap_or(0),
        )
        .percent("PostgresConnectionsPercent", percent)
        .render(timestamp_ms)
}

/// Sends, deferrals, window drops, window-closing priorities and missed slots per account and
/// call class,
/// and Meta's last reported usage per account.
fn account_documents(meter: &Meter, timestamp_ms: i64) -> Vec<String> {
    let (counts, usage) = meter.take();
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|((account, class), c)| {
            Document::new()
                .dimension("Service", "worker")
                .dimension("Account", account)
                .dimension("Class", class)
                .count("Sent", c.sent)
                .count("Deferred", c.deferred)
                .count("WindowDrops", c.window_drops)
                .count("Prioritized", c.prioritized)
                .count("SlotsMissed", c.slots_missed)
                .render(timestamp_ms)
        })
        .collect();
    lines.extend(usage.into_iter().map(|(account, percent)| {
        Document::new()
            .dimension("Service", "worker")
            .dimension("Account", account)
            .percent("MetaUsage", percent)
            .render(timestamp_ms)
    }));
    lines
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
            let timestamp = now_ms();
            let mut lines = account_documents(&self.limiter.meter, timestamp);
            lines.extend(self.latencies.documents(timestamp));
            lines.extend(document(&now, &last, timestamp));
            lines.extend(
                self.classifier
                    .breakers()
                    .map(|counts| breaker_document(counts, timestamp)),
            );
            // Not at shutdown: a stopping worker need not wait for Postgres.
            if !stop {
                match self.store.health().await {
                    Ok(health) => lines.push(health_document(health, timestamp)),
                    Err(e) => tracing::warn!(error = %e, "fleet health not read for the metrics"),
                }
            }
            write_metrics(&lines);
            last = now;
            if stop {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use igflow_core::ids::IgUserId;
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

    #[test]
    fn health_becomes_gauges_for_the_token_silence_and_connection_alarms() {
        let health = Health {
            tokens_expiring: 2,
            connections_percent: 81.6,
            active_accounts: 3,
        };
        let v: Value = serde_json::from_str(&health_document(health, 1)).unwrap();
        assert_eq!(
            (
                &v["TokensExpiringSoon"],
                &v["PostgresConnectionsPercent"],
                &v["ActiveAccounts"]
            ),
            (&Value::from(2), &Value::from(82), &Value::from(3))
        );
    }

    #[test]
    fn breakers_become_the_share_of_tenants_falling_back_and_their_number() {
        let one_slow_tenant = BreakerCounts {
            open: 1,
            half_open: 0,
            closed: 19,
        };
        let v: Value = serde_json::from_str(&breaker_document(one_slow_tenant, 1)).unwrap();
        assert_eq!(
            (&v["BreakerOpen"], &v["BreakersOpen"]),
            (&Value::from(5), &Value::from(1))
        );
        let model_down = BreakerCounts {
            open: 3,
            half_open: 1,
            closed: 0,
        };
        assert_eq!(model_down.open_percent(), 75);
        assert_eq!(BreakerCounts::default().open_percent(), 0);
    }

    #[test]
    fn account_counts_become_one_document_per_account_and_class() {
        let meter = Meter::default();
        let account = IgUserId::parse("17841400000000001").unwrap();
        meter.add(&account, CallClass::PrivateReply, |c| {
            c.sent += 3;
            c.prioritized += 1;
        });
        let lines = account_documents(&meter, 1);
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (&v["Account"], &v["Class"], &v["Sent"], &v["Prioritized"]),
            (
                &Value::from("17841400000000001"),
                &Value::from(CallClass::PrivateReply.as_str()),
                &Value::from(3),
                &Value::from(1)
            )
        );
        assert_eq!(lines.len(), 1);
        assert!(account_documents(&meter, 2).is_empty(), "counts are taken");
    }

    #[test]
    fn latencies_go_out_at_most_a_hundred_values_per_document() {
        let latencies = Latencies::default();
        for ms in 0..250 {
            latencies.record(CallClass::PrivateReply, Duration::from_millis(ms));
        }
        let lines = latencies.documents(1);
        let sizes: Vec<usize> = lines
            .iter()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["Class"], CallClass::PrivateReply.as_str());
                v["EndToEndLatency"].as_array().unwrap().len()
            })
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(latencies.documents(2).is_empty(), "samples are taken");
    }
}
