//! Postgres: accounts, campaigns and the activity log. Every query is scoped by account or
//! tenant; the worker never reads across tenants.

use std::collections::HashMap;
use std::time::Duration;

use igflow_core::campaign::{
    AccountLimits, AccountStatus, ActionKind, Actions, Campaign, Intent, LoginFlavor, MediaScope,
    Rule, Schedule,
};
use igflow_core::failure::Failure;
use igflow_core::ids::{IgUserId, MediaId, PageId};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::config::StoreConfig;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("row {table}.{id} holds invalid data: {problem}")]
    Corrupt {
        table: &'static str,
        id: Uuid,
        problem: String,
    },
}

impl From<StoreError> for Failure {
    /// A database we cannot reach or read now may work in a moment. A corrupt row (say a
    /// campaign the dashboard saved with a bad media id) will not, but dropping the account's
    /// events for it would lose them all: the account is paused and its events parked until
    /// the row is fixed and the account resumed.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(_) => Failure::retry(e.to_string()),
            StoreError::Corrupt { .. } => Failure::Account {
                reason: format!("{e}; fix the row, then resume the account"),
            },
        }
    }
}

/// An Instagram account igflow acts for.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub ig_user_id: IgUserId,
    pub login: LoginFlavor,
    pub page_id: Option<PageId>,
    pub token_secret_ref: String,
    pub status: AccountStatus,
    /// Its own rate budgets, where it has any.
    pub limits: AccountLimits,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    tenant_id: Uuid,
    ig_user_id: String,
    login_flavor: String,
    page_id: Option<String>,
    token_secret_ref: String,
    status: String,
    limits: sqlx::types::Json<AccountLimits>,
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: Uuid,
    slug: String,
    trigger: String,
    priority: i32,
    media_ids: Vec<String>,
    cooldown_seconds: i32,
    starts_at_ms: Option<i64>,
    ends_at_ms: Option<i64>,
}

/// A rule as stored (one row of `rules`).
#[derive(sqlx::FromRow)]
pub struct RuleRow {
    pub campaign_id: Uuid,
    pub match_mode: String,
    pub require: String,
    pub keywords: Vec<String>,
    pub exclude: Vec<String>,
    pub fold_accents: bool,
    pub stretch: bool,
}

/// An intent as stored (one row of `intents`).
#[derive(sqlx::FromRow)]
pub struct IntentRow {
    pub campaign_id: Uuid,
    pub name: String,
    pub description: String,
    pub examples: Vec<String>,
}

/// An action as stored (one row of `actions`).
#[derive(sqlx::FromRow)]
pub struct ActionRow {
    pub campaign_id: Uuid,
    pub kind: String,
    pub variants: Vec<String>,
    pub quick_replies: Vec<String>,
}

/// The rules, intents and actions of many campaigns, read in three queries. The worker and
/// the dashboard both read campaigns through this, so the two never disagree on what a
/// stored campaign says; each maps the rows to its own types.
pub struct CampaignParts {
    /// By campaign, then position.
    pub rules: Vec<RuleRow>,
    /// By campaign, then position.
    pub intents: Vec<IntentRow>,
    pub actions: Vec<ActionRow>,
}

impl CampaignParts {
    pub async fn load(
        conn: &mut sqlx::PgConnection,
        campaign_ids: &[Uuid],
    ) -> Result<Self, sqlx::Error> {
        let rules = sqlx::query_as(
            "select campaign_id, match_mode, require, keywords, exclude, fold_accents, stretch
             from rules where campaign_id = any($1) order by campaign_id, position",
        )
        .bind(campaign_ids)
        .fetch_all(&mut *conn)
        .await?;
        let intents = sqlx::query_as(
            "select campaign_id, name, description, examples
             from intents where campaign_id = any($1) order by campaign_id, position",
        )
        .bind(campaign_ids)
        .fetch_all(&mut *conn)
        .await?;
        let actions = sqlx::query_as(
            "select campaign_id, kind, variants, quick_replies from actions where campaign_id = any($1)",
        )
        .bind(campaign_ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            rules,
            intents,
            actions,
        })
    }
}

fn corrupt(table: &'static str, id: Uuid) -> impl Fn(String) -> StoreError {
    move |problem| StoreError::Corrupt { table, id, problem }
}

/// What the activity log says about one action of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionClaim {
    /// Nobody attempted it yet, or an earlier attempt stopped before calling Meta: check it
    /// and send it, holding the claim.
    Fresh,
    /// An earlier attempt may or may not have reached Meta (it died mid-send, or timed out
    /// after sending). Now marked `uncertain`: resolve it before anything else. Carries when
    /// that attempt's call started (Unix ms), where known.
    Unresolved { attempted_at_ms: Option<i64> },
    /// Another attempt is calling Meta for it (or resolving it) under a live lease: this copy
    /// must neither send nor resolve it, but come back once the lease has run out.
    Busy { retry_in: Duration },
    /// It ended for good: sent, done according to Meta, or failed.
    Done,
}

/// How an action attempt ended, as `activity.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Meta accepted it, or a read-back found it.
    Sent,
    /// Meta had it already (a second private reply to one comment).
    AlreadyDone,
    /// Given up for good, with the reason.
    Failed,
    /// Nobody knows whether Meta acted: a later attempt resolves it.
    Uncertain,
    /// Not sent yet: the event comes back for it.
    Retry,
    /// Meta's window for it closed first.
    Dropped,
    /// The campaign's rules held it back (the contact's cooldown).
    Skipped,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::AlreadyDone => "already_done",
            Self::Failed => "failed",
            Self::Uncertain => "uncertain",
            Self::Retry => "retry",
            Self::Dropped => "dropped",
            Self::Skipped => "skipped",
        }
    }
}

/// How an action attempt ended, for the activity log.
#[derive(Debug, Clone)]
pub struct ActionRecord {
    pub outcome: ActionOutcome,
    pub detail: Option<String>,
    pub graph_status: Option<u16>,
    pub graph_code: Option<i64>,
    pub graph_subcode: Option<i64>,
    pub response_id: Option<String>,
    pub latency: Option<Duration>,
}

impl ActionRecord {
    /// This outcome, with nothing else known yet.
    pub fn new(outcome: ActionOutcome) -> Self {
        Self {
            outcome,
            detail: None,
            graph_status: None,
            graph_code: None,
            graph_subcode: None,
            response_id: None,
            latency: None,
        }
    }
}

/// An event kept back while its account was not active.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Parked {
    pub account_id: Uuid,
    pub event_id: String,
    pub envelope: String,
    /// When it was parked, in Unix microseconds: which parking this is.
    pub parked_at_us: i64,
}

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

/// A decision about one event, for the activity log.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    pub tenant_id: Option<Uuid>,
    pub ig_user_id: &'a str,
    pub event_id: &'a str,
    pub event_kind: &'a str,
    pub campaign_id: Option<Uuid>,
    pub contact: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<String>,
    /// This handling of the event: its token on the event's actions, holding their claims
    /// and leases.
    pub attempt: Uuid,
}

/// The fleet's state that on-call alarms watch, read by the metrics reporter.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct Health {
    /// Active Instagram Login accounts whose token was written more than
    /// `TOKEN_WARNING_AGE` ago: it expires within a week unless refreshed.
    pub tokens_expiring: i64,
    /// Connections open on the Postgres server (every client, not only this worker) as a
    /// percentage of its `max_connections`.
    pub connections_percent: f64,
}

/// Instagram Login long-lived tokens last 60 days from issue; warn 7 days before. Facebook
/// Login page tokens derived from a long-lived user token do not expire.
pub const TOKEN_WARNING_AGE: Duration = Duration::from_secs(53 * 24 * 3600);

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(config.database_url.expose_secret())
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        crate::ops::migrate::run(&self.pool).await
    }

    pub async fn account(&self, ig_user_id: &IgUserId) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sqlx::query_as(
            "select id, tenant_id, ig_user_id, login_flavor, page_id, token_secret_ref, status, limits
             from ig_accounts where ig_user_id = $1",
        )
        .bind(ig_user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let bad = corrupt("ig_accounts", r.id);
            Ok(Account {
                id: r.id,
                tenant_id: r.tenant_id,
                ig_user_id: IgUserId::parse(r.ig_user_id).map_err(|e| bad(e.to_string()))?,
                login: r.login_flavor.parse().map_err(&bad)?,
                page_id: r
                    .page_id
                    .map(PageId::parse)
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?,
                token_secret_ref: r.token_secret_ref,
                status: r.status.parse().map_err(&bad)?,
                limits: r.limits.0,
            })
        })
        .transpose()
    }

    /// The account's active campaigns with their rules and actions.
    pub async fn active_campaigns(&self, account_id: Uuid) -> Result<Vec<Campaign>, StoreError> {
        let campaigns: Vec<CampaignRow> = sqlx::query_as(
            "select id, slug, trigger, priority, media_ids, cooldown_seconds,
                    (extract(epoch from starts_at) * 1000)::bigint as starts_at_ms,
                    (extract(epoch from ends_at) * 1000)::bigint as ends_at_ms
             from campaigns where account_id = $1 and status = 'active'",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = campaigns.iter().map(|c| c.id).collect();
        let CampaignParts {
            rules,
            intents,
            actions,
        } = CampaignParts::load(&mut *self.pool.acquire().await?, &ids).await?;

        let mut rules_by: HashMap<Uuid, Vec<Rule>> = HashMap::new();
        for r in rules {
            let bad = corrupt("rules", r.campaign_id);
            rules_by.entry(r.campaign_id).or_default().push(Rule {
                mode: r.match_mode.parse().map_err(&bad)?,
                require: r.require.parse().map_err(&bad)?,
                keywords: r.keywords,
                exclude: r.exclude,
                fold_accents: r.fold_accents,
                stretch: r.stretch,
            });
        }
        let mut intents_by: HashMap<Uuid, Vec<Intent>> = HashMap::new();
        for i in intents {
            intents_by.entry(i.campaign_id).or_default().push(Intent {
                name: i.name,
                description: i.description,
                examples: i.examples,
            });
        }
        let mut actions_by: HashMap<Uuid, Actions> = HashMap::new();
        for a in actions {
            let bad = corrupt("actions", a.campaign_id);
            let entry = actions_by.entry(a.campaign_id).or_default();
            let kind = a.kind.parse::<ActionKind>().map_err(&bad)?;
            if kind.is_dm() && !a.quick_replies.is_empty() {
                entry.quick_replies = a.quick_replies;
            }
            match kind {
                ActionKind::PrivateReply => entry.private_reply = a.variants.into_iter().next(),
                ActionKind::PublicReply => entry.public_replies = a.variants,
                ActionKind::Dm => entry.dm = a.variants.into_iter().next(),
            }
        }
        campaigns
            .into_iter()
            .map(|c| {
                let bad = corrupt("campaigns", c.id);
                let media = if c.media_ids.is_empty() {
                    MediaScope::Any
                } else {
                    MediaScope::Only(
                        c.media_ids
                            .into_iter()
                            .map(MediaId::parse)
                            .collect::<Result<_, _>>()
                            .map_err(|e| bad(e.to_string()))?,
                    )
                };
                Ok(Campaign {
                    id: c.id,
                    slug: c.slug,
                    trigger: c.trigger.parse().map_err(&bad)?,
                    priority: c.priority,
                    media,
                    schedule: Schedule {
                        starts_at_ms: c.starts_at_ms,
                        ends_at_ms: c.ends_at_ms,
                    },
                    cooldown: Duration::from_secs(u64::try_from(c.cooldown_seconds).unwrap_or(0)),
                    rules: rules_by.remove(&c.id).unwrap_or_default(),
                    intents: intents_by.remove(&c.id).unwrap_or_default(),
                    actions: actions_by.remove(&c.id).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Notes that the person was seen, and their choice about automated messages if they
    /// just made one (recorded as theirs: only they may undo it). Returns whether they have
    /// opted out.
    pub async fn touch_contact(
        &self,
        account_id: Uuid,
        igsid: &str,
        username: Option<&str>,
        opted_out: Option<bool>,
    ) -> Result<bool, StoreError> {
        let opted_out = sqlx::query_scalar(
            "insert into contacts (account_id, igsid, username, opted_out, opted_out_by)
             values ($1, $2, $3, coalesce($4, false), case when $4 then 'contact' end)
             on conflict (account_id, igsid) do update
               set last_seen_at = now(),
                   username = coalesce(excluded.username, contacts.username),
                   opted_out = coalesce($4, contacts.opted_out),
                   opted_out_by = case when $4 then 'contact' when not $4 then null
                                       else contacts.opted_out_by end
             returning opted_out",
        )
        .bind(account_id)
        .bind(igsid)
        .bind(username)
        .bind(opted_out)
        .fetch_one(&self.pool)
        .await?;
        Ok(opted_out)
    }

    /// Records the decision once; a redelivered event keeps the first record.
    pub async fn record_decision(&self, d: &DecisionRecord<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, contact_igsid, outcome, detail)
             values ($1, $2, $3, $4, 'decision', $5, $6, $7, $8)
             on conflict (ig_user_id, event_id, step) do nothing",
        )
        .bind(d.tenant_id)
        .bind(d.ig_user_id)
        .bind(d.event_id)
        .bind(d.event_kind)
        .bind(d.campaign_id)
        .bind(d.contact)
        .bind(d.outcome)
        .bind(&d.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the (account, event, action) idempotency key before its checks. A fresh key, one
    /// an earlier attempt released as `retry`, or one an attempt `claimed` but never sent is
    /// taken (`claimed`, with this attempt's token); see [`Store::start_sending`]. A `pending`
    /// or `uncertain` one whose lease ran out is taken for resolving, leased for `lease`.
    pub async fn claim_action(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        variant: Option<i16>,
        lease: Duration,
    ) -> Result<ActionClaim, StoreError> {
        let claimed: Option<i64> = sqlx::query_scalar(
            "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, contact_igsid, outcome, claim_token, variant)
             values ($1, $2, $3, $4, $5, $6, $7, 'claimed', $8, $9)
             on conflict (ig_user_id, event_id, step) do update
               set outcome = 'claimed', claim_token = excluded.claim_token, lease_until = null,
                   updated_at = now()
               where activity.outcome in ('retry', 'claimed')
             returning id",
        )
        .bind(d.tenant_id)
        .bind(d.ig_user_id)
        .bind(d.event_id)
        .bind(d.event_kind)
        .bind(kind.as_str())
        .bind(d.campaign_id)
        .bind(d.contact)
        .bind(d.attempt)
        .bind(variant)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_some() {
            return Ok(ActionClaim::Fresh);
        }
        // A `pending` whose lease ran out means that attempt died after possibly sending.
        let unresolved: Option<Option<i64>> = sqlx::query_scalar(
            "update activity set outcome = 'uncertain', updated_at = now(), claim_token = $4,
               lease_until = now() + make_interval(secs => $5),
               detail = 'an earlier attempt ended without a known result'
             where ig_user_id = $1 and event_id = $2 and step = $3
               and outcome in ('pending', 'uncertain')
               and (lease_until is null or lease_until <= now())
             returning (extract(epoch from attempted_at) * 1000)::bigint",
        )
        .bind(d.ig_user_id)
        .bind(d.event_id)
        .bind(kind.as_str())
        .bind(d.attempt)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(attempted_at_ms) = unresolved {
            return Ok(ActionClaim::Unresolved { attempted_at_ms });
        }
        let leased: Option<f64> = sqlx::query_scalar(
            "select greatest(extract(epoch from lease_until - now()), 0)::float8 from activity
             where ig_user_id = $1 and event_id = $2 and step = $3
               and outcome in ('pending', 'uncertain')",
        )
        .bind(d.ig_user_id)
        .bind(d.event_id)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match leased {
            Some(secs) => ActionClaim::Busy {
                retry_in: Duration::try_from_secs_f64(secs).unwrap_or(lease),
            },
            None => ActionClaim::Done,
        })
    }

    /// Marks the claimed action `pending`, leased for `lease`, just before its Graph API call:
    /// from here on an attempt that dies may have reached Meta. False when another copy of the
    /// event has claimed it since; that copy sends it.
    pub async fn start_sending(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let started: Option<i64> = sqlx::query_scalar(
            "update activity set outcome = 'pending', updated_at = now(), attempted_at = now(),
               lease_until = now() + make_interval(secs => $5)
             where ig_user_id = $4 and event_id = $1 and step = $2 and outcome = 'claimed'
               and claim_token = $3
             returning id",
        )
        .bind(d.event_id)
        .bind(kind.as_str())
        .bind(d.attempt)
        .bind(d.ig_user_id)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(started.is_some())
    }

    /// Renews the leases this attempt holds on the event's actions (it is still working).
    pub async fn renew_leases(
        &self,
        ig_user_id: &str,
        event_id: &str,
        attempt: Uuid,
        lease: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update activity set lease_until = now() + make_interval(secs => $4)
             where ig_user_id = $1 and event_id = $2 and claim_token = $3
               and outcome in ('pending', 'uncertain')",
        )
        .bind(ig_user_id)
        .bind(event_id)
        .bind(attempt)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps a paused account's event until the account is active again.
    pub async fn park(
        &self,
        account_id: Uuid,
        event_id: &str,
        envelope: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        // Parked again (the account was resumed too early): a new parking, which an unparker
        // still holding the old one must not delete.
        sqlx::query(
            "insert into parked_events (event_id, account_id, envelope, reason) values ($1, $2, $3, $4)
             on conflict (account_id, event_id) do update
               set reason = excluded.reason, parked_at = clock_timestamp()",
        )
        .bind(event_id)
        .bind(account_id)
        .bind(envelope)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Parked events whose account is active again, oldest first. Read per active account
    /// through its index, so the events of paused or disabled accounts are never scanned.
    pub async fn parked_ready(&self, limit: i64) -> Result<Vec<Parked>, StoreError> {
        Ok(sqlx::query_as(
            "select a.id as account_id, p.event_id, p.envelope, (extract(epoch from p.parked_at) * 1000000)::bigint as parked_at_us
             from ig_accounts a
             cross join lateral (
               select event_id, envelope, parked_at from parked_events
               where account_id = a.id order by parked_at limit $1) p
             where a.status = 'active'
             order by p.parked_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets parked events sent back to the queue, unless one was parked again since.
    pub async fn unpark(&self, parked: &[Parked]) -> Result<(), StoreError> {
        let accounts: Vec<Uuid> = parked.iter().map(|p| p.account_id).collect();
        let ids: Vec<&str> = parked.iter().map(|p| p.event_id.as_str()).collect();
        let at: Vec<i64> = parked.iter().map(|p| p.parked_at_us).collect();
        sqlx::query(
            "delete from parked_events p
             using unnest($3::uuid[], $1::text[], $2::bigint[]) as u (account_id, event_id, at)
             where p.account_id = u.account_id and p.event_id = u.event_id
               and (extract(epoch from p.parked_at) * 1000000)::bigint = u.at",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&accounts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers why a queue message did not complete (shown by `igflow-worker dlq`).
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

    /// Records how this attempt's action ended. False when the claim is no longer this
    /// attempt's (its lease ran out and another attempt took the action over): that one's
    /// outcome stands.
    pub async fn finish_action(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        r: &ActionRecord,
    ) -> Result<bool, StoreError> {
        let finished: Option<i64> = sqlx::query_scalar(
            "update activity set outcome = $3, detail = $4, graph_status = $5, graph_code = $6,
               graph_subcode = $7, response_id = $8, latency_ms = $9, updated_at = now(),
               lease_until = null
             where ig_user_id = $10 and event_id = $1 and step = $2 and claim_token = $11
             returning id",
        )
        .bind(d.event_id)
        .bind(kind.as_str())
        .bind(r.outcome.as_str())
        .bind(&r.detail)
        .bind(r.graph_status.map(i32::from))
        .bind(r.graph_code.and_then(|c| i32::try_from(c).ok()))
        .bind(r.graph_subcode.and_then(|c| i32::try_from(c).ok()))
        .bind(&r.response_id)
        .bind(r.latency.and_then(|l| i32::try_from(l.as_millis()).ok()))
        .bind(d.ig_user_id)
        .bind(d.attempt)
        .fetch_optional(&self.pool)
        .await?;
        Ok(finished.is_some())
    }

    /// Whether the campaign already sent the contact a DM (for another event) within
    /// `cooldown`: the durable side of the cooldown, which Redis may forget.
    pub async fn dm_sent_within(
        &self,
        campaign_id: Uuid,
        contact: &str,
        cooldown: Duration,
        except_event: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "select exists (select 1 from activity
               where campaign_id = $1 and contact_igsid = $2 and event_id <> $3
                 and step in ('private_reply', 'dm')
                 and outcome in ('sent', 'already_done', 'pending', 'uncertain')
                 and updated_at > now() - make_interval(secs => $4))",
        )
        .bind(campaign_id)
        .bind(contact)
        .bind(except_event)
        .bind(cooldown.as_secs_f64())
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn health(&self) -> Result<Health, StoreError> {
        Ok(sqlx::query_as(
            "select
               (select count(*) from ig_accounts
                 where status = 'active' and login_flavor = 'instagram'
                   and token_updated_at < now() - make_interval(secs => $1)) as tokens_expiring,
               (select count(*) from pg_stat_activity)::float8 * 100
                 / current_setting('max_connections')::float8 as connections_percent",
        )
        .bind(TOKEN_WARNING_AGE.as_secs_f64())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Stops all actions for the account until an operator (or a token refresh) resumes it.
    pub async fn pause_account(&self, account_id: Uuid, reason: &str) -> Result<(), StoreError> {
        sqlx::query("update ig_accounts set status = 'paused', status_reason = $2, updated_at = now() where id = $1")
            .bind(account_id)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
