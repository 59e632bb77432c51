use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_webhook::WebhookConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Lambda's advanced logging controls decide the level (`AWS_LAMBDA_LOG_LEVEL`) and the
    // format (`AWS_LAMBDA_LOG_FORMAT`: JSON or text). A set `RUST_LOG` overrides the level
    // (the helper lets it), so the stack sets only Lambda's.
    lambda_http::tracing::init_default_subscriber();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "webhook starting");
    let config = WebhookConfig::from_env(&Env::process())
        .inspect_err(|e| tracing::error!(error = %e, "webhook configuration refused"))?;
    igflow_webhook::run(
        config,
        &runtime::aws_sdk_config(runtime::AwsCalls::Ingress).await,
    )
    .await
}
