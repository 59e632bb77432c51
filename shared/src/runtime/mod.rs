//! Process set-up shared by the webhook and the worker binaries: logging, the AWS SDK,
//! signals, and sending to the events queue. Behind the `runtime` feature so the domain
//! modules stay free of I/O.

pub mod queue;
pub mod sqs;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::timeout::TimeoutConfig;
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

/// Who makes the AWS calls, which decides how long they may take. The SDK sets no timeouts
/// of its own: a connection that stalls would hold the webhook's answer to Meta, or one of the
/// worker's consumers, until something else kills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsCalls {
    /// The webhook: `SendMessageBatch` (and the secret read at a cold start) answer in tens of
    /// milliseconds in-region. The sink tries a batch 3 times, so 3 s per operation (3 SDK
    /// attempts of at most 1.5 s) keeps the worst case at about 9 s, inside the Lambda's 10 s
    /// timeout: the delivery gets a 503 and its metrics instead of a killed invocation.
    Ingress,
    /// The webhook's archive write, made alongside the enqueue: an S3 `PutObject` of a few
    /// KiB answers in tens of milliseconds. A stalled S3 may hold Meta's answer no longer than
    /// this (2 s), then the delivery counts in `ArchiveFailures` and is answered all the same.
    Archive,
    /// The worker and the operator CLI: a `ReceiveMessage` long poll holds its answer up to
    /// 20 s (SQS's maximum wait), so an attempt gets 25 s and an operation, retries included,
    /// 60 s.
    Worker,
}

impl AwsCalls {
    pub fn timeouts(self) -> TimeoutConfig {
        let (connect, attempt, operation) = match self {
            Self::Ingress => (1_000, 1_500, 3_000),
            Self::Archive => (500, 1_000, 2_000),
            Self::Worker => (2_000, 25_000, 60_000),
        };
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(connect))
            .operation_attempt_timeout(Duration::from_millis(attempt))
            .operation_timeout(Duration::from_millis(operation))
            .build()
    }
}

/// An AWS SDK config loader with rustls and ring as the only TLS stack and `calls`' timeouts.
pub fn aws_loader(calls: AwsCalls) -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(calls.timeouts())
}

/// The AWS SDK configuration. Region, credentials and `AWS_ENDPOINT_URL` (the emulator
/// locally) come from the SDK's own chain.
pub async fn aws_sdk_config(calls: AwsCalls) -> aws_config::SdkConfig {
    aws_loader(calls).load().await
}

/// An S3 client with `calls`' timeouts. A custom endpoint (moto or a stub locally) is
/// addressed path-style: `bucket.127.0.0.1` resolves nowhere.
#[cfg(feature = "archive")]
pub fn s3_client(aws: &aws_config::SdkConfig, calls: AwsCalls) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .timeout_config(calls.timeouts())
        .force_path_style(aws.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
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
