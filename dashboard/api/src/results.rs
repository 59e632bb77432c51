//! Results per campaign over a period: comments seen, matched, private replies, DMs, buttons
//! tapped, failures by reason, the variants chosen of each text, and a series for the chart.
//! The queries live in `results/*.sql` (also run by `scripts/bench-results.sh`); each counts
//! through `igflow_results_counts`, which reads whole days from the per-day summary rows
//! (`activity_daily`) and only the partial days at the period's ends from `activity`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::User;
use crate::db::as_user;
use crate::error::ApiError;

const FUNNEL: &str = include_str!("results/funnel.sql");
const FAILURES: &str = include_str!("results/failures.sql");
const VARIANTS: &str = include_str!("results/variants.sql");
const SERIES: &str = include_str!("results/series.sql");

#[derive(Debug, Deserialize)]
pub struct Period {
    /// RFC 3339; default seven days before `to`.
    pub from: Option<jiff::Timestamp>,
    /// RFC 3339; default now.
    pub to: Option<jiff::Timestamp>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Funnel {
    /// Events of the campaign's kind its account received (comments for a comment campaign,
    /// DMs, taps and referrals for the others): every campaign of the account saw them.
    pub seen: i64,
    pub matched: i64,
    pub private_replies_sent: i64,
    pub public_replies_sent: i64,
    pub dms_sent: i64,
    /// Quick-reply buttons tapped under the campaign's messages.
    pub buttons_tapped: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Failure {
    pub step: String,
    pub outcome: String,
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Variant {
    /// `private_reply`, `public_reply` or `dm`.
    pub step: String,
    pub variant: i32,
    pub text: Option<String>,
    pub count: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub at: String,
    pub matched: i64,
    pub sent: i64,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub from: String,
    pub to: String,
    /// `hour` or `day`, by the period's length.
    pub bucket: &'static str,
    pub funnel: Funnel,
    pub failures: Vec<Failure>,
    pub variants: Vec<Variant>,
    pub series: Vec<Bucket>,
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(id): Path<Uuid>,
    Query(period): Query<Period>,
) -> Result<Json<Results>, ApiError> {
    let to = period.to.unwrap_or_else(jiff::Timestamp::now);
    let from = period
        .from
        .unwrap_or_else(|| to - jiff::SignedDuration::from_hours(7 * 24));
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    let bucket = if to.duration_since(from) <= jiff::SignedDuration::from_hours(48) {
        "hour"
    } else {
        "day"
    };
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let mut tx = as_user(&state.pool, &user).await?;
    // Row Level Security hides another tenant's campaign: no row, 404.
    sqlx::query("select 1 from campaigns where id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let args = (id, from_s.as_str(), to_s.as_str(), bucket);
    let funnel: Funnel = query(FUNNEL, args).fetch_one(&mut *tx).await?;
    let failures = query(FAILURES, args).fetch_all(&mut *tx).await?;
    let variants = query(VARIANTS, args).fetch_all(&mut *tx).await?;
    let series = query(SERIES, args).fetch_all(&mut *tx).await?;
    Ok(Json(Results {
        from: from_s,
        to: to_s,
        bucket,
        funnel,
        failures,
        variants,
        series,
    }))
}

/// One of the results queries with its parameters: campaign, from, to, bucket.
fn query<'q, T>(
    sql: &'static str,
    (id, from, to, bucket): (Uuid, &'q str, &'q str, &'static str),
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    sqlx::query_as(sql)
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(bucket)
}
