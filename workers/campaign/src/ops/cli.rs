//! The `igflow-worker` command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use igflow_core::campaign::Trigger;
use igflow_core::campaign_file::CampaignFile;
use igflow_core::env::Env;
use igflow_core::ids::IgUserId;
use igflow_core::runtime;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::Worker;
use crate::clients::secrets::Tokens;
use crate::clients::store::Store;
use crate::config::{
    ClassifierConfig, RunConfig, SecretsConfig, StoreConfig, archive_bucket, queue_url,
    retention_days,
};
use crate::jobs::lifecycle::Lifecycle;
use crate::jobs::reconcile;
use crate::ops::archive::Archive;
use crate::ops::dlq::{Dlq, Selection};
use crate::ops::simulate::Simulated;
use crate::ops::{apply, replay, simulate};
use crate::pipeline::classify::IntentClassifier;
use igflow_core::archive::TimeWindow;
use igflow_core::runtime::queue::QueueSender;

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
    /// Show what sits in the dead-letter queue and why, or move it back.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Show what the worker would decide and send for a comment, from a campaign file alone
    /// (nothing is sent; the model is asked if OLLAMA_URL answers).
    Simulate {
        /// The campaign file.
        #[arg(long)]
        campaigns: PathBuf,
        /// The account (ig_user_id) the event is for; the file's first by default.
        #[arg(long)]
        account: Option<String>,
        /// What the person did: comment, message, story_mention, story_reply, postback or
        /// referral.
        #[arg(long = "as", default_value = "comment")]
        trigger: Trigger,
        /// The media the comment is on, or the story replied to.
        #[arg(long)]
        media: Option<String>,
        /// The tapped button's payload (postback).
        #[arg(long)]
        payload: Option<String>,
        /// The ig.me link's ref, or the ad's id, the person came through (referral).
        #[arg(long = "ref")]
        ref_param: Option<String>,
        #[arg(long = "ad")]
        ad_id: Option<String>,
        /// When it happened (RFC 3339), for scheduled campaigns and windows; now by default.
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        /// The person (IGSID): with DATABASE_URL, also whether they opted out and whether the
        /// campaign's cooldown would hold its DM back.
        #[arg(long)]
        contact: Option<String>,
        /// The comment or message.
        text: Option<String>,
    },
    /// Delete activity, queue errors, contacts and parked events older than
    /// IGFLOW_RETENTION_DAYS (90 by default), as a running worker does every hour; a DM a
    /// campaign's cooldown still counts and opted-out contacts are kept. Prints what was deleted.
    Prune,
    /// Re-enqueue raw deliveries captured from Meta (a JSON array, one document, or JSON
    /// Lines), or those the webhook archived with a receive time in [--from, --to) (RFC 3339);
    /// events already handled are dropped by the dedupe.
    Replay {
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        file: Option<PathBuf>,
        #[arg(long, requires = "to")]
        from: Option<jiff::Timestamp>,
        #[arg(long, requires = "from")]
        to: Option<jiff::Timestamp>,
    },
    /// Read the account's comments written since TIME (at most 7 days ago, Meta's
    /// private-reply window) through the Graph API and enqueue those igflow never saw, as a
    /// running worker does on its schedule; takes the same environment as `run`.
    Reconcile {
        /// The account (ig_user_id).
        #[arg(long)]
        account: String,
        /// RFC 3339, e.g. 2026-11-29T08:00:00Z.
        #[arg(long)]
        since: jiff::Timestamp,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List DLQ messages with their kind, event id, receive count and last error.
    List {
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Move DLQ messages back to the events queue: all, or those named by message or event id.
    Redrive {
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Message ids or event ids.
        ids: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

impl Cli {
    pub async fn execute(self) -> anyhow::Result<()> {
        let env = Env::process();
        match self.command {
            // Needs no database: it runs from the file alone.
            Command::Simulate {
                campaigns,
                account,
                trigger,
                media,
                payload,
                ref_param,
                ad_id,
                at,
                contact,
                text,
            } => {
                let event = Simulated {
                    account: account.as_deref(),
                    trigger,
                    text: text.as_deref(),
                    media: media.as_deref(),
                    payload: payload.as_deref(),
                    ref_param: ref_param.as_deref(),
                    ad_id: ad_id.as_deref(),
                    at_ms: at.unwrap_or_else(jiff::Timestamp::now).as_millisecond(),
                    contact: contact.as_deref(),
                };
                // Boxed: inlined, its future nests deeper than the compiler lays out.
                Box::pin(simulate_file(&campaigns, &event, &env)).await
            }
            Command::Migrate => {
                let store = connect(StoreConfig::admin_from_env(&env)?).await?;
                store.migrate().await.context("running migrations")?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Apply { file } => {
                let store = connect(StoreConfig::admin_from_env(&env)?).await?;
                apply_file(&file, &store, &env).await
            }
            Command::Dlq { action } => {
                let store = connect(StoreConfig::from_env(&env)?).await?;
                dead_letters(action, store, &env).await
            }
            Command::Replay { file, from, to } => {
                connect(StoreConfig::from_env(&env)?).await?;
                replay_deliveries(file.as_deref(), from.zip(to), &env).await
            }
            Command::Prune => prune(&connect(StoreConfig::from_env(&env)?).await?, &env).await,
            Command::Reconcile { account, since } => {
                let store = connect(StoreConfig::from_env(&env)?).await?;
                reconcile_account(&account, since, store, &env).await
            }
            Command::Run => run(connect(StoreConfig::from_env(&env)?).await?, &env).await,
        }
    }
}

async fn connect(config: StoreConfig) -> anyhow::Result<Store> {
    Store::connect(&config)
        .await
        .context("connecting to Postgres")
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

async fn simulate_file(campaigns: &Path, event: &Simulated<'_>, env: &Env) -> anyhow::Result<()> {
    let file = CampaignFile::parse(&read(campaigns)?)?;
    let classifier =
        IntentClassifier::new(&ClassifierConfig::from_env(env)?, None, Arc::default())?;
    // Only a contact to look up needs the database.
    let store = match event.contact {
        Some(_) => Some(connect(StoreConfig::from_env(env)?).await?),
        None => None,
    };
    for line in simulate::simulate(&file, event, &classifier, store.as_ref()).await? {
        println!("{line}");
    }
    Ok(())
}

async fn apply_file(file: &Path, store: &Store, env: &Env) -> anyhow::Result<()> {
    let parsed = CampaignFile::parse(&read(file)?)?;
    let tokens = Tokens::new(
        aws_sdk_secretsmanager::Client::new(
            &runtime::aws_sdk_config(runtime::AwsCalls::Worker).await,
        ),
        SecretsConfig::from_env(env)?,
    );
    let summary = apply::apply(&parsed, &file.display().to_string(), store, &tokens, env).await?;
    println!(
        "applied {}: tenant {}, {} account(s), {} campaign(s), {} archived",
        file.display(),
        summary.tenant,
        summary.accounts,
        summary.campaigns,
        summary.archived
    );
    Ok(())
}

async fn dead_letters(action: DlqAction, store: Store, env: &Env) -> anyhow::Result<()> {
    let sqs = aws_sdk_sqs::Client::new(&runtime::aws_sdk_config(runtime::AwsCalls::Worker).await);
    let dlq = Dlq::connect(sqs, queue_url(env)?, store).await?;
    match action {
        DlqAction::List { max } => {
            let letters = dlq.peek(max).await?;
            println!("{} message(s) in the DLQ", letters.len());
            for l in &letters {
                println!(
                    "{}  kind={}  event={}  receives={}  last_error={}",
                    l.message_id,
                    l.kind.as_deref().unwrap_or("(not an envelope)"),
                    l.event_id.as_deref().unwrap_or("-"),
                    l.receive_count,
                    l.last_error.as_deref().unwrap_or("(none recorded)")
                );
            }
            dlq.release(&letters).await?;
        }
        DlqAction::Redrive { all, ids, max } => {
            if !all && ids.is_empty() {
                anyhow::bail!("name message or event ids to redrive, or pass --all");
            }
            let selection = if all {
                Selection::All
            } else {
                Selection::Ids(ids)
            };
            println!(
                "{} message(s) moved back to the events queue",
                dlq.redrive(&selection, max).await?
            );
        }
    }
    Ok(())
}

/// Replays a file of deliveries, or the archived deliveries of a time window.
async fn replay_deliveries(
    file: Option<&Path>,
    window: Option<(jiff::Timestamp, jiff::Timestamp)>,
    env: &Env,
) -> anyhow::Result<()> {
    let aws = runtime::aws_sdk_config(runtime::AwsCalls::Worker).await;
    let queue = QueueSender::new(aws_sdk_sqs::Client::new(&aws), queue_url(env)?);
    let summary = match (file, window) {
        (Some(file), _) => replay::replay(&read(file)?, &queue, runtime::now_ms()).await?,
        (None, Some((from, to))) => {
            let archive = Archive::new(
                runtime::s3_client(&aws, runtime::AwsCalls::Worker),
                archive_bucket(env)?,
            );
            let window = archive.replay(TimeWindow::new(from, to)?, &queue).await?;
            for key in &window.not_meta {
                println!("skipped {key}: not a Meta payload (the webhook refused it too)");
            }
            replay::ReplaySummary {
                deliveries: window.deliveries,
                envelopes: window.envelopes,
            }
        }
        (None, None) => anyhow::bail!("name a file, or --from and --to"),
    };
    println!(
        "replayed {} delivery(ies) as {} envelope(s)",
        summary.deliveries, summary.envelopes
    );
    Ok(())
}

async fn prune(store: &Store, env: &Env) -> anyhow::Result<()> {
    let Some(days) = retention_days(env)? else {
        println!("IGFLOW_RETENTION_DAYS is 0: everything is kept");
        return Ok(());
    };
    let p = store.prune(days).await?;
    println!(
        "older than {days} days, deleted: {} activity rows, {} queue errors, {} contacts, {} parked events, {} lapsed flow runs",
        p.activity, p.message_errors, p.contacts, p.parked_events, p.flow_runs
    );
    Ok(())
}

async fn reconcile_account(
    account: &str,
    since: jiff::Timestamp,
    store: Store,
    env: &Env,
) -> anyhow::Result<()> {
    let account = IgUserId::parse(account)?;
    let Some(account) = store.account(&account).await? else {
        anyhow::bail!("igflow has no account {account}");
    };
    let lifecycle = Lifecycle::connect(
        RunConfig::from_env(env)?,
        store,
        &runtime::aws_sdk_config(runtime::AwsCalls::Worker).await,
    )
    .await?;
    let done = reconcile::reconcile(&lifecycle, &account, since.as_millisecond()).await?;
    println!(
        "{} media, {} comments read, {} never seen and enqueued{}",
        done.media,
        done.comments_read,
        done.recovered,
        done.yielded
            .map(|why| format!("; stopped early: {why}"))
            .unwrap_or_default()
    );
    Ok(())
}

async fn run(store: Store, env: &Env) -> anyhow::Result<()> {
    let config = RunConfig::from_env(env)?;
    let worker = Worker::build(
        config,
        store,
        &runtime::aws_sdk_config(runtime::AwsCalls::Worker).await,
    )
    .await?;
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
    Ok(())
}
