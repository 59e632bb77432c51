//! The ingress. One axum [`Router`] verifies Meta's deliveries and enqueues one envelope per
//! item; it runs under `lambda_http` in AWS and on a local port everywhere else.

pub mod config;
pub mod routes;
pub mod sink;

use std::sync::Arc;

use axum::Router;
use igflow_core::signature::Verifier;
use secrecy::SecretString;

pub use config::{Listen, WebhookConfig};
pub use sink::{EventSink, SinkError, SqsSink};

#[derive(Clone)]
pub struct AppState {
    verifier: Verifier,
    verify_token: Arc<SecretString>,
    sink: Arc<dyn EventSink>,
}

impl AppState {
    pub fn new(config: &WebhookConfig, sink: Arc<dyn EventSink>) -> Self {
        Self {
            verifier: Verifier::new(config.app_secrets.clone()),
            verify_token: Arc::new(config.verify_token.clone()),
            sink,
        }
    }
}

/// The whole HTTP surface: `GET /webhook` (Meta's handshake) and `POST /webhook`.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    routes::router(max_body_bytes).with_state(state)
}

/// Runs the app where the configuration says, until the process is asked to stop.
pub async fn run(config: WebhookConfig, sink: Arc<dyn EventSink>) -> anyhow::Result<()> {
    let app = app(AppState::new(&config, sink), config.max_body_bytes);
    match config.listen {
        Listen::Lambda => lambda_http::run(app).await.map_err(|e| anyhow::anyhow!(e)),
        Listen::Addr(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "webhook listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
    }
}
