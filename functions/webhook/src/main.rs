use std::sync::Arc;

use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_webhook::{SqsSink, WebhookConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let config = WebhookConfig::from_env(&Env::process())?;
    let sqs = aws_sdk_sqs::Client::new(&runtime::aws_sdk_config().await);
    let sink = Arc::new(SqsSink::new(sqs, config.queue_url.clone()));
    igflow_webhook::run(config, sink).await
}
