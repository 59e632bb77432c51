use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_dashboard::config::DashboardConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let config = DashboardConfig::from_env(&Env::process())?;
    // Secrets Manager writes only, each inside a person's request: the webhook's short timeouts.
    let aws = runtime::aws_sdk_config(runtime::AwsCalls::Ingress).await;
    igflow_dashboard::run(config, &aws).await
}
