use clap::Parser;
use igflow_worker::ops::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    igflow_core::runtime::init_tracing();
    Cli::parse().execute().await
}
