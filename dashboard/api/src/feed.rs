//! The live feed: decisions and actions as the worker records them, pushed as server-sent
//! events. A trigger on `activity` queues each new or changed row's id (`activity_feed`)
//! while a relay runs; the relay of any process with subscribers moves the queue to one
//! Postgres NOTIFY per few hundred ids, which every process's listener hears. (A NOTIFY in
//! the writers' own transactions serialized all their commits.) Every subscriber reads each
//! row back as its user, so Row Level Security decides who sees it.
//!
//! A stream ends after the configured lifetime (in Lambda a response streams for at most
//! 15 minutes) and the app opens the next one with `since`, the newest change it has seen:
//! that stream opens with what changed meanwhile instead of the latest entries.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::AppState;
use crate::auth::User;
use crate::db::as_user;
use crate::error::ApiError;

pub const CHANNEL: &str = "igflow_activity";
/// The feed opens with this many recent entries.
const BACKLOG: i64 = 30;
/// A resumed feed catches up on at most this many changes (the newest).
const CATCH_UP: i64 = 200;
/// How often a process with subscribers relays the queued ids.
const RELAY_EVERY: Duration = Duration::from_millis(100);

/// Keeps the writers queueing for 10 s (renewed by every relay), moves the queue to NOTIFY in
/// chunks of 400 ids (a payload stays under its 8,000 bytes), and drops what waited over a
/// minute (a relay that stopped; a resumed stream catches up with `since`).
const RELAY: &str = "with live as (
        insert into activity_feed_relay (until) values (now() + interval '10 seconds')
        on conflict (one) do update set until = excluded.until
    ),
    moved as (delete from activity_feed returning activity_id, at),
    fresh as (
        select activity_id, (row_number() over (order by activity_id) - 1) / 400 as chunk
        from (select distinct activity_id from moved where at > now() - interval '1 minute') m
    )
    select count(*) from (
        select pg_notify('igflow_activity', string_agg(activity_id::text, ',' order by activity_id))
        from fresh group by chunk
    ) n";

/// A row changes outcome within this long of being made (retries back off for at most
/// 40 minutes): bounding the catch-up by it lets the (tenant, created_at) index serve it.
const CHANGES_WITHIN: &str = "1 hour";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FeedEntry {
    pub id: i64,
    pub at: String,
    pub ig_user_id: String,
    pub event_kind: String,
    pub step: String,
    pub outcome: String,
    /// Why: the matched keyword, the cooldown, the closed window, the opt-out.
    pub detail: Option<String>,
    pub campaign_id: Option<uuid::Uuid>,
    pub campaign_slug: Option<String>,
    pub contact_igsid: Option<String>,
    /// The commenter's username, when Meta sent it.
    pub contact_username: Option<String>,
    /// The comment the decision (or the action taken on it) was about, cut to 140 characters.
    pub excerpt: Option<String>,
}

// The comment's text is on the event's decision row; the username on the account's contact.
const SELECT: &str = "select x.id, to_char(x.updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as at,
        x.ig_user_id, x.event_kind, x.step, x.outcome, x.detail, x.campaign_id, c.slug as campaign_slug,
        x.contact_igsid, k.username as contact_username, coalesce(x.excerpt, d.excerpt) as excerpt
 from activity x left join campaigns c on c.id = x.campaign_id
 left join activity d on d.ig_user_id = x.ig_user_id and d.event_id = x.event_id and d.step = 'decision'
 left join ig_accounts a on a.ig_user_id = x.ig_user_id and a.tenant_id = x.tenant_id
 left join contacts k on k.account_id = a.id and k.igsid = x.contact_igsid";

/// Listens on the channel for the whole process and hands row ids to the subscribers; relays
/// the queue while there are any.
pub fn listen(pool: PgPool) -> broadcast::Sender<i64> {
    let (tx, _) = broadcast::channel(1024);
    tokio::spawn(relay_while_subscribed(pool.clone(), tx.clone()));
    let sender = tx.clone();
    tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN failed; retrying");
                    } else {
                        while let Ok(n) = listener.recv().await {
                            for id in n.payload().split(',').filter_map(|id| id.parse().ok()) {
                                let _ = sender.send(id);
                            }
                        }
                        tracing::warn!("the activity listener lost its connection; reconnecting");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "connecting the activity listener failed"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tx
}

async fn relay_while_subscribed(pool: PgPool, feed: broadcast::Sender<i64>) {
    let mut tick = tokio::time::interval(RELAY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if feed.receiver_count() > 0
            && let Err(e) = relay(&pool).await
        {
            tracing::warn!(error = %e, "relaying the live feed failed; retrying");
        }
    }
}

/// Moves the queued ids to NOTIFY and keeps the writers queueing.
async fn relay(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(RELAY).execute(pool).await.map(drop)
}

async fn read(pool: &PgPool, user: &User, id: i64) -> Result<Option<FeedEntry>, ApiError> {
    let mut tx = as_user(pool, user).await?;
    let sql = format!("{SELECT} where x.id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?)
}

fn event(entry: &FeedEntry) -> Event {
    Event::default()
        .event("activity")
        .id(entry.id.to_string())
        .json_data(entry)
        .unwrap_or_else(|_| Event::default().comment("unserializable entry"))
}

#[derive(Debug, Deserialize)]
pub struct Resume {
    /// The newest change the app has seen (an entry's `at`).
    since: Option<String>,
}

/// What a stream opens with: the latest entries, or what changed since `since`; oldest first.
async fn backlog(
    pool: &PgPool,
    user: &User,
    since: Option<jiff::Timestamp>,
) -> Result<Vec<FeedEntry>, ApiError> {
    let mut tx = as_user(pool, user).await?;
    let mut entries: Vec<FeedEntry> = match since {
        None => {
            let sql = format!("{SELECT} order by x.id desc limit {BACKLOG}");
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?
        }
        Some(since) => {
            let sql = format!(
                "{SELECT} where x.created_at > $1::timestamptz - interval '{CHANGES_WITHIN}'
                   and x.updated_at >= $1::timestamptz
                 order by x.updated_at desc, x.id desc limit {CATCH_UP}"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(since.to_string())
                .fetch_all(&mut *tx)
                .await?
        }
    };
    entries.reverse();
    Ok(entries)
}

pub async fn stream(
    State(state): State<Arc<AppState>>,
    user: User,
    Query(resume): Query<Resume>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let since = resume
        .since
        .map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::BadRequest(format!("since must be a timestamp like an entry's at: {e}"))
            })
        })
        .transpose()?;
    let mut notifications = state.feed.subscribe();
    // The writers queue from here on, so nothing committed after the backlog is missed.
    relay(&state.pool).await?;
    let backlog = backlog(&state.pool, &user, since).await?;
    let (out, rx) = mpsc::channel(64);
    let (pool, lifetime) = (state.pool.clone(), state.feed_lifetime);
    tokio::spawn(async move {
        for entry in &backlog {
            if out.send(Ok(event(entry))).await.is_err() {
                return;
            }
        }
        let relay = async {
            loop {
                let id = match notifications.recv().await {
                    Ok(id) => id,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a feed subscriber fell behind");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                match read(&pool, &user, id).await {
                    Ok(Some(entry)) => {
                        if out.send(Ok(event(&entry))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "reading a feed entry failed"),
                }
            }
        };
        // Past its lifetime the stream ends; the app resumes with `since`.
        let _ = tokio::time::timeout(lifetime, relay).await;
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}
