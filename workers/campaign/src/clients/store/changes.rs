//! Change notifications: Postgres notifies channel `igflow_campaigns` with the account's id
//! when an account, campaign, rule, action or intent changes.

use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::{Store, StoreError};

const CHANNEL: &str = "igflow_campaigns";

/// A connection listening for account changes.
pub struct Changes {
    listener: PgListener,
}

impl Changes {
    /// The next changed account; `None` when the change names none (everything may have
    /// changed).
    #[tracing::instrument(name = "store.next", level = "debug", skip_all)]
    pub async fn next(&mut self) -> Result<Option<Uuid>, StoreError> {
        let n = self.listener.recv().await?;
        Ok(Some(n.payload().parse().unwrap_or_default()).filter(|id: &Uuid| !id.is_nil()))
    }
}

impl Store {
    /// Starts listening for account changes on a connection of its own.
    #[tracing::instrument(name = "store.changes", level = "debug", skip_all)]
    pub async fn changes(&self) -> Result<Changes, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Changes { listener })
    }
}
