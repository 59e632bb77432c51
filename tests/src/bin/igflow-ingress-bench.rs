//! Serves the real webhook Router for load tests (scripts/bench-ingress.sh). `--sink null`
//! accepts every envelope in memory, which measures the ingress itself; `--sink sqs` sends
//! to the events queue (the moto server locally, which is far slower than SQS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Parser, ValueEnum};
use futures_util::future::BoxFuture;
use igflow_core::envelope::Envelope;
use igflow_tests::harness::{Services, create_queues, tag};
use igflow_webhook::{AppState, EventSink, KeyStore, Keys, Metrics, SinkError, SqsSink};
use secrecy::SecretString;

#[derive(Clone, Copy, ValueEnum)]
enum SinkKind {
    Null,
    Sqs,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "null")]
    sink: SinkKind,
    #[arg(long, default_value = "127.0.0.1:18080")]
    addr: SocketAddr,
    /// The app secret the load generator signs with.
    #[arg(long, default_value = "bench-app-secret")]
    secret: String,
}

/// Accepts everything at once, counting what it got.
#[derive(Default)]
struct NullSink(AtomicU64);

impl EventSink for NullSink {
    fn send<'a>(&'a self, envelopes: &'a [Envelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.fetch_add(envelopes.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let metrics = Arc::new(Metrics::default());
    let sink: Arc<dyn EventSink> = match args.sink {
        SinkKind::Null => Arc::new(NullSink::default()),
        SinkKind::Sqs => {
            let sqs = aws_sdk_sqs::Client::new(&Services::from_env().aws().await);
            let (queue, _) = create_queues(
                &sqs,
                &format!("igflow-bench-{}", tag()),
                std::time::Duration::from_secs(60),
            )
            .await?;
            Arc::new(SqsSink::new(sqs, queue, Arc::clone(&metrics)))
        }
    };
    let keys = KeyStore::fixed(Keys::new(
        vec![SecretString::from(args.secret)],
        SecretString::from("bench".to_owned()),
    ));
    let app = igflow_webhook::app(AppState::new(keys, sink, metrics, false), 4 * 1024 * 1024);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(igflow_core::runtime::shutdown_signal())
        .await?;
    Ok(())
}
