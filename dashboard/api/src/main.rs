use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_dashboard::config::DashboardConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let config = DashboardConfig::from_env(&Env::process())?;
    igflow_dashboard::run(config, &runtime::aws_sdk_config().await).await
}
