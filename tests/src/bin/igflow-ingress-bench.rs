//! Serves the real webhook Router for load tests (scripts/bench-ingress.sh). `--sink null`
//! accepts every envelope in memory, which measures the ingress itself; `--sink sqs` sends
//! to the events queue (the moto server locally, which is far slower than SQS);
//! `--sink sqs-stub` sends through the real SQS client to the in-memory SQS stub answering
//! after `--stub-latency-ms`, like SQS does, to measure how the webhook's
//! concurrent batches behave at a realistic latency. `--archive-latency-ms N` also keeps
//! every delivery in the raw archive, through the real S3 client, against a stub answering
//! PutObject after N ms: the webhook's latency with and without the archive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use futures_util::future::BoxFuture;
use igflow_core::envelope::Envelope;
use igflow_core::runtime::{self, AwsCalls};
use igflow_tests::harness::{Services, create_queues, tag};
use igflow_tests::sqs_stub::SqsStub;
use igflow_webhook::{
    AppState, DeliveryArchive, EventSink, KeyStore, Keys, Metrics, SinkError, SqsSink,
};
use secrecy::SecretString;

#[derive(Clone, Copy, ValueEnum)]
enum SinkKind {
    Null,
    Sqs,
    SqsStub,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "null")]
    sink: SinkKind,
    #[arg(long, default_value = "127.0.0.1:18080")]
    addr: SocketAddr,
    /// Latency of the stub's SendMessageBatch answers.
    #[arg(long, default_value_t = 20)]
    stub_latency_ms: u64,
    /// Archive every delivery to an S3 stub answering after this many ms (none: no archive).
    #[arg(long)]
    archive_latency_ms: Option<u64>,
    /// The app secret the load generator signs with.
    #[arg(long, default_value = "bench-app-secret")]
    secret: String,
    /// Tokio worker threads (default: one per core). One serves like Node's single thread
    /// and leaves the other core to the load generator on a 2-core machine.
    #[arg(long)]
    threads: Option<usize>,
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

/// Serves `app` on a free local port; returns its URL.
async fn serve_stub(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Answers every S3 PutObject with 200 and an ETag, after `latency`.
async fn s3_stub(latency: Duration) -> anyhow::Result<String> {
    serve_stub(axum::Router::new().fallback(move || async move {
        tokio::time::sleep(latency).await;
        [("etag", "\"0\"")]
    }))
    .await
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n);
    }
    runtime.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let sink: Arc<dyn EventSink> = match args.sink {
        SinkKind::Null => Arc::new(NullSink::default()),
        SinkKind::Sqs => {
            let sqs = aws_sdk_sqs::Client::new(&Services::from_env().aws().await);
            let (queue, dlq) = create_queues(
                &sqs,
                &format!("igflow-bench-{}", tag()),
                Duration::from_secs(60),
            )
            .await?;
            Arc::new(SqsSink::new(sqs, queue, dlq, Arc::clone(&metrics)))
        }
        SinkKind::SqsStub => {
            let stub = SqsStub::discarding(Duration::from_millis(args.stub_latency_ms)).await?;
            let mut services = Services::from_env();
            services.aws_endpoint = stub.endpoint.clone();
            let sqs = aws_sdk_sqs::Client::new(&services.aws().await);
            // The stub serves one queue: dead letters would go there too (none are sent).
            let sink = SqsSink::new(
                sqs,
                stub.queue_url.clone(),
                stub.queue_url.clone(),
                Arc::clone(&metrics),
            );
            Arc::new(sink)
        }
    };
    let keys = KeyStore::fixed(Keys::new(
        vec![SecretString::from(args.secret)],
        SecretString::from("bench".to_owned()),
    ));
    let archive = match args.archive_latency_ms {
        Some(ms) => {
            let mut services = Services::from_env();
            services.aws_endpoint = s3_stub(Duration::from_millis(ms)).await?;
            Some(Arc::new(DeliveryArchive::new(
                runtime::s3_client(&services.aws().await, AwsCalls::Archive),
                "bench-archive".to_owned(),
                Arc::clone(&metrics),
            )))
        }
        None => None,
    };
    let state = AppState::new(keys, sink, metrics, false).with_archive(archive);
    let app = igflow_webhook::app(state, 4 * 1024 * 1024);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(igflow_core::runtime::shutdown_signal())
        .await?;
    Ok(())
}
