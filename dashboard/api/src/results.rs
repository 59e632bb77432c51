//! Results per campaign over a period: comments seen, matched, private replies, DMs, buttons
//! tapped, failures by reason, the public-reply variants chosen, and a series for the chart.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::User;
use crate::db::as_user;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct Period {
    /// RFC 3339; default seven days before `to`.
    pub from: Option<jiff::Timestamp>,
    /// RFC 3339; default now.
    pub to: Option<jiff::Timestamp>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Funnel {
    /// Comments the campaign's account received (every campaign of it saw them).
    pub comments_seen: i64,
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
    let campaign: Option<(Uuid, String)> = sqlx::query_as(
        "select c.tenant_id, a.ig_user_id from campaigns c join ig_accounts a on a.id = c.account_id
         where c.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (tenant, ig_user_id) = campaign.ok_or(ApiError::NotFound)?;
    let funnel: Funnel = sqlx::query_as(
        "select
           (select count(*) from activity where tenant_id = $2 and ig_user_id = $3 and step = 'decision'
              and event_kind = 'comment' and created_at >= $4::timestamptz and created_at < $5::timestamptz) as comments_seen,
           count(*) filter (where step = 'decision' and event_kind = 'comment') as matched,
           count(*) filter (where step = 'private_reply' and outcome in ('sent', 'already_done')) as private_replies_sent,
           count(*) filter (where step = 'public_reply' and outcome = 'sent') as public_replies_sent,
           count(*) filter (where step = 'dm' and outcome = 'sent') as dms_sent,
           count(*) filter (where step = 'decision' and event_kind = 'message' and detail like '%quick reply%') as buttons_tapped
         from activity
         where campaign_id = $1 and created_at >= $4::timestamptz and created_at < $5::timestamptz",
    )
    .bind(id)
    .bind(tenant)
    .bind(&ig_user_id)
    .bind(&from_s)
    .bind(&to_s)
    .fetch_one(&mut *tx)
    .await?;
    let failures = sqlx::query_as(
        "select step, outcome, coalesce(detail, '') as reason, count(*) as count from activity
         where campaign_id = $1 and created_at >= $2::timestamptz and created_at < $3::timestamptz
           and step <> 'decision' and outcome in ('failed', 'dropped', 'skipped', 'uncertain')
         group by 1, 2, 3 order by 4 desc limit 20",
    )
    .bind(id)
    .bind(&from_s)
    .bind(&to_s)
    .fetch_all(&mut *tx)
    .await?;
    let variants = sqlx::query_as(
        "select v.variant::int4 as variant, (select x.variants[v.variant + 1] from actions x
                 where x.campaign_id = $1 and x.kind = 'public_reply') as text, v.count
         from (select variant, count(*) as count from activity
               where campaign_id = $1 and step = 'public_reply' and outcome = 'sent' and variant is not null
                 and created_at >= $2::timestamptz and created_at < $3::timestamptz
               group by variant) v order by v.variant",
    )
    .bind(id)
    .bind(&from_s)
    .bind(&to_s)
    .fetch_all(&mut *tx)
    .await?;
    let series = sqlx::query_as(
        "select to_char(date_trunc($4, created_at at time zone 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as at,
                count(*) filter (where step = 'decision') as matched,
                count(*) filter (where step <> 'decision' and outcome in ('sent', 'already_done')) as sent
         from activity
         where campaign_id = $1 and created_at >= $2::timestamptz and created_at < $3::timestamptz
         group by 1 order by 1",
    )
    .bind(id)
    .bind(&from_s)
    .bind(&to_s)
    .bind(bucket)
    .fetch_all(&mut *tx)
    .await?;
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
