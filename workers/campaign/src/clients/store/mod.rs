//! Postgres: every query the worker runs, one module per table or concern. Every query is
//! scoped by account or tenant; the worker never reads across tenants.

mod accounts;
mod actions;
mod apply;
mod batch;
mod callbacks;
mod campaigns;
mod changes;
mod contacts;
mod decisions;
mod errors;
mod flows;
mod health;
mod lifecycle;
mod parked;
mod retention;
mod summaries;

use std::time::Duration;

use igflow_core::failure::Failure;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::config::StoreConfig;

pub use accounts::Account;
pub use actions::{ActionClaim, ActionOutcome, ActionRecord};
pub use apply::{FileOwnership, FileWritten, bind_campaign_columns, write_campaign_parts};
pub use callbacks::{Deauthorized, Deleted, DeletionDone};
pub use campaigns::{ActionRow, CampaignParts, IntentRow, RuleRow};
pub use changes::Changes;
pub use contacts::ContactState;
pub use decisions::{DecisionOutcome, DecisionRecord};
pub use errors::MessageError;
pub use flows::{Awaiting, Captured, Delivery, DeliveryOutcome, FlowStep};
pub use health::{Health, TOKEN_WARNING_AGE};
pub use lifecycle::{CampaignMedia, PurgeDue, TokenDue};
pub use parked::Parked;
pub use retention::Pruned;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres unreachable, busy or refusing now: retry.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// A row the account's events need (a campaign, rule or action) cannot be used.
    #[error("row {table}.{id} holds invalid data: {problem}")]
    Corrupt {
        table: &'static str,
        id: Uuid,
        problem: String,
    },
    /// The account's own row cannot be used: there is no account to pause.
    #[error("account row ig_accounts.{id} holds invalid data: {problem}")]
    CorruptAccount { id: Uuid, problem: String },
}

impl From<StoreError> for Failure {
    /// A database we cannot reach or read now may work in a moment. A corrupt campaign row
    /// (say one saved with a bad media id) will not, but dropping the account's events for it
    /// would lose them all: the account is paused and its events parked until the row is
    /// fixed and the account resumed. A corrupt account row cannot be paused (writing its
    /// status would hide what is wrong with it): its events are retried, recorded in
    /// `message_errors`, and wait in the DLQ once the retries run out.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(_) => Failure::retry(e.to_string()),
            StoreError::Corrupt { .. } => Failure::Account {
                reason: format!("{e}; fix the row, then resume the account"),
            },
            StoreError::CorruptAccount { .. } => Failure::retry(format!(
                "{e}; fix the row, then redrive the account's events from the DLQ"
            )),
        }
    }
}

/// Maps a row's unparsable field to [`StoreError::Corrupt`] naming the row.
fn corrupt(table: &'static str, id: Uuid) -> impl Fn(String) -> StoreError {
    move |problem| StoreError::Corrupt { table, id, problem }
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    batches: batch::Batches,
}

impl Store {
    #[tracing::instrument(name = "store.connect", level = "debug", skip_all)]
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(config.connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            // No ping before each query (a round trip on every one of them): a connection
            // that died while idle fails its query, which retries the event like any other
            // database error, and sqlx then drops the connection.
            .test_before_acquire(false)
            .connect(config.database_url.expose_secret())
            .await?;
        Ok(Self::from_pool(pool))
    }

    /// Needs a Tokio runtime: it starts the tasks that write decisions and contacts in batches.
    pub fn from_pool(pool: PgPool) -> Self {
        let batches = batch::Batches::start(pool.clone());
        Self { pool, batches }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    #[tracing::instrument(name = "store.migrate", level = "debug", skip_all)]
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        crate::ops::migrate::run(&self.pool).await
    }
}
