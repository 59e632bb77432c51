//! The `igflow-worker` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use igflow_core::campaign_file::CampaignFile;
use igflow_core::env::Env;
use igflow_core::runtime;
use tokio_util::sync::CancellationToken;

use crate::config::{RunConfig, SecretsConfig, StoreConfig};
use crate::secrets::Tokens;
use crate::store::Store;
use crate::{Worker, apply};

#[derive(Parser)]
#[command(
    name = "igflow-worker",
    version,
    about = "igflow's campaign worker and operator commands"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the events queue until SIGTERM or Ctrl-C.
    Run,
    /// Apply the Postgres migrations.
    Migrate,
    /// Upsert a campaign file (YAML or JSON); see campaigns/README.md.
    Apply {
        /// The campaign file.
        file: PathBuf,
    },
}

impl Cli {
    pub async fn execute(self) -> anyhow::Result<()> {
        let env = Env::process();
        let store = Store::connect(&StoreConfig::from_env(&env)?)
            .await
            .context("connecting to Postgres")?;
        match self.command {
            Command::Migrate => {
                store.migrate().await.context("running migrations")?;
                tracing::info!("migrations applied");
            }
            Command::Apply { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let parsed = CampaignFile::parse(&text)?;
                let tokens = Tokens::new(
                    aws_sdk_secretsmanager::Client::new(&runtime::aws_sdk_config().await),
                    SecretsConfig::from_env(&env)?,
                );
                let summary = apply::apply(&parsed, &store, &tokens, &env).await?;
                println!(
                    "applied {}: tenant {}, {} account(s), {} campaign(s), {} archived",
                    file.display(),
                    summary.tenant,
                    summary.accounts,
                    summary.campaigns,
                    summary.archived
                );
            }
            Command::Run => {
                let config = RunConfig::from_env(&env)?;
                let worker = Worker::build(config, store, &runtime::aws_sdk_config().await).await?;
                let shutdown = CancellationToken::new();
                tokio::spawn({
                    let shutdown = shutdown.clone();
                    async move {
                        runtime::shutdown_signal().await;
                        tracing::info!("shutdown requested");
                        shutdown.cancel();
                    }
                });
                worker.run(shutdown).await;
            }
        }
        Ok(())
    }
}
