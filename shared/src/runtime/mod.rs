//! Process set-up shared by the webhook and the worker binaries: logging, the AWS SDK,
//! signals, and sending to the events queue. Behind the `runtime` feature so the domain
//! modules stay free of I/O.

pub mod queue;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_http_client::tls;
use tracing_subscriber::EnvFilter;

/// JSON logs on stdout (CloudWatch parses them), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests start several apps in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
}

/// An AWS SDK config loader with rustls and ring as the only TLS stack.
pub fn aws_loader() -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

/// The AWS SDK configuration. Region, credentials and `AWS_ENDPOINT_URL` (the emulator
/// locally) come from the SDK's own chain.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_loader().load().await
}

/// Resolves when the process is asked to stop: SIGTERM (ECS, Lambda) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes EMF documents to stdout, where CloudWatch Logs picks them up. (`println!`, so the
/// test harness captures them with the rest of a test's output.)
pub fn write_metrics(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}
