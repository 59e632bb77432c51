use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_dashboard::config::DashboardConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    // Secrets Manager only, at cold start and inside a person's request: the webhook's short
    // timeouts.
    let aws = runtime::aws_sdk_config(runtime::AwsCalls::Ingress).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let config = DashboardConfig::load(Env::process(), &secrets).await?;
    igflow_dashboard::run(config, &aws).await
}
