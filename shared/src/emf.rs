//! CloudWatch Embedded Metric Format documents: JSON log lines that CloudWatch Logs turns
//! into metrics, so neither binary needs a metrics client or agent.

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "igflow";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Percent,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Percent => "Percent",
        }
    }
}

/// One EMF document: its dimensions and metric values.
#[derive(Debug, Clone, Default)]
pub struct Document {
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, Value)>,
    /// Searchable in CloudWatch Logs, not metrics.
    properties: Vec<(String, String)>,
}

impl Document {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    pub fn count(mut self, name: impl Into<String>, n: u64) -> Self {
        self.metrics.push((name.into(), Unit::Count, json!(n)));
        self
    }

    pub fn percent(mut self, name: impl Into<String>, value: u8) -> Self {
        self.metrics
            .push((name.into(), Unit::Percent, json!(value)));
        self
    }

    /// Up to 100 values of one metric (CloudWatch's limit per document).
    pub fn milliseconds(mut self, name: impl Into<String>, values: &[f64]) -> Self {
        self.metrics
            .push((name.into(), Unit::Milliseconds, json!(values)));
        self
    }

    pub fn render(&self, timestamp_ms: i64) -> String {
        let mut doc = Map::new();
        for (name, value) in &self.dimensions {
            doc.insert(name.clone(), json!(value));
        }
        for (name, value) in &self.properties {
            doc.insert(name.clone(), json!(value));
        }
        let mut definitions = Vec::new();
        for (name, unit, value) in &self.metrics {
            doc.insert(name.clone(), value.clone());
            definitions.push(json!({ "Name": name, "Unit": unit.as_str() }));
        }
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [dimension_names], "Metrics": definitions }],
            }),
        );
        Value::Object(doc).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cloudwatchs_shape() {
        let line = Document::new()
            .dimension("Service", "worker")
            .count("Sent", 3)
            .milliseconds("Latency", &[1.5, 2.0])
            .render(1_732_200_000_000);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["Service"], "worker");
        assert_eq!(v["Sent"], 3);
        assert_eq!(v["Latency"], json!([1.5, 2.0]));
        let meta = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], "igflow");
        assert_eq!(meta["Dimensions"], json!([["Service"]]));
        assert_eq!(
            meta["Metrics"][1],
            json!({ "Name": "Latency", "Unit": "Milliseconds" })
        );
        assert_eq!(v["_aws"]["Timestamp"], 1_732_200_000_000_i64);
    }
}
