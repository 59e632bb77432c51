//! Opted-out contacts: list and search, and opt a person out or back in by hand (editors and
//! owners, as Row Level Security allows).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::User;
use crate::db::as_user;
use crate::error::ApiError;

const PAGE: i64 = 100;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ContactView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub igsid: String,
    pub username: Option<String>,
    pub opted_out: bool,
    pub last_seen_at: String,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Part of a username or IGSID.
    #[serde(default)]
    pub q: Option<String>,
    /// Only opted-out contacts (the default) or everyone.
    #[serde(default)]
    pub all: bool,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    user: User,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ContactView>>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let rows = sqlx::query_as(
        "select id, account_id, igsid, username, opted_out,
                to_char(last_seen_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as last_seen_at
         from contacts
         where ($1 or opted_out)
           and ($2::text is null or username ilike '%' || $2 || '%' or igsid = $2)
         order by last_seen_at desc limit $3",
    )
    .bind(q.all)
    .bind(q.q.filter(|s| !s.trim().is_empty()))
    .bind(PAGE)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize)]
pub struct OptBody {
    pub opted_out: bool,
}

pub async fn set_opt_out(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(id): Path<Uuid>,
    Json(body): Json<OptBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let changed = sqlx::query("update contacts set opted_out = $2 where id = $1")
        .bind(id)
        .bind(body.opted_out)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        let visible: bool =
            sqlx::query_scalar("select exists (select 1 from contacts where id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        return Err(if visible {
            ApiError::Forbidden("viewers cannot opt contacts out or in".into())
        } else {
            ApiError::NotFound
        });
    }
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "opted_out": body.opted_out })))
}
