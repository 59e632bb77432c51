//! The webhook's logs follow Lambda's advanced logging controls: the binary is run without
//! its configuration, so it logs its start and the refusal, then exits.

use std::process::Command;

/// The webhook's stdout, run with only Lambda's two logging variables set.
fn logs(level: &str, format: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_igflow-webhook"))
        .env_clear()
        .env("AWS_LAMBDA_LOG_LEVEL", level)
        .env("AWS_LAMBDA_LOG_FORMAT", format)
        .output()
        .expect("the webhook binary runs");
    assert!(!out.status.success(), "exits without its configuration");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn json_format_and_level_come_from_lambdas_variables() {
    let lines = logs("INFO", "JSON");
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("every line is a JSON record"))
        .collect();
    let messages: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["level"].as_str().unwrap_or_default(),
                r["fields"]["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("INFO", "webhook starting"),
            ("ERROR", "webhook configuration refused")
        ]
    );

    let errors_only = logs("ERROR", "JSON");
    assert_eq!(errors_only.len(), 1, "{errors_only:?}");
    assert!(errors_only[0].contains("webhook configuration refused"));
}

#[test]
fn text_format_when_lambda_asks_for_text() {
    let lines = logs("INFO", "Text");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{lines:?}");
    assert!(lines[0].contains("INFO") && lines[0].contains("webhook starting"));
}
