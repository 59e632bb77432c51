//! Test support for igflow: the Graph API test server, Meta-shaped deliveries and a harness
//! that runs the real webhook and worker against real Postgres, Redis and the SQS and Secrets
//! Manager APIs (moto). Also used by the local demo (`igflow-demo`).

pub mod cpu;
pub mod dashboard;
pub mod faults;
pub mod fixtures;
pub mod graph_server;
pub mod harness;
pub mod lambda_runtime;
pub mod locked;
pub mod meta;
pub mod ollama_server;
pub mod sqs_stub;
pub mod supabase_auth;

/// Serves `app` on 127.0.0.1 at `port` (0 picks a free one) until the runtime ends; returns
/// its base URL.
pub async fn serve_local(app: axum::Router, port: u16) -> std::io::Result<String> {
    let listener =
        tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
