use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_webhook::WebhookConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let config = WebhookConfig::from_env(&Env::process())?;
    igflow_webhook::run(
        config,
        &runtime::aws_sdk_config(runtime::AwsCalls::Ingress).await,
    )
    .await
}
