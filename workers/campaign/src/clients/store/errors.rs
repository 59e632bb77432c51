//! `message_errors`: why a queue message did not complete, for the DLQ's operators.

use std::collections::HashMap;

use super::{Store, StoreError};

/// Why a queue message did not complete.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageError {
    pub message_id: String,
    /// The event's account (event ids are unique per account only).
    pub ig_user_id: Option<String>,
    pub event_id: Option<String>,
    pub event_kind: Option<String>,
    pub error: String,
    pub receive_count: i32,
}

impl Store {
    /// Remembers why a queue message did not complete (shown by `igflow-worker dlq`).
    #[tracing::instrument(name = "store.record_message_error", level = "debug", skip_all)]
    pub async fn record_message_error(&self, e: &MessageError) -> Result<(), StoreError> {
        sqlx::query(
            "insert into message_errors
               (message_id, event_id, event_kind, error, receive_count, ig_user_id)
             values ($1, $2, $3, $4, $5, $6)
             on conflict (message_id) do update set event_id = excluded.event_id,
               ig_user_id = excluded.ig_user_id,
               event_kind = excluded.event_kind, error = excluded.error,
               receive_count = excluded.receive_count, updated_at = now()",
        )
        .bind(&e.message_id)
        .bind(&e.event_id)
        .bind(&e.event_kind)
        .bind(&e.error)
        .bind(e.receive_count)
        .bind(&e.ig_user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The recorded errors of these messages, by message id.
    #[tracing::instrument(name = "store.message_errors", level = "debug", skip_all)]
    pub async fn message_errors(
        &self,
        message_ids: &[String],
    ) -> Result<HashMap<String, MessageError>, StoreError> {
        let rows: Vec<MessageError> = sqlx::query_as(
            "select message_id, ig_user_id, event_id, event_kind, error, receive_count
             from message_errors where message_id = any($1)",
        )
        .bind(message_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|e| (e.message_id.clone(), e))
            .collect())
    }
}
