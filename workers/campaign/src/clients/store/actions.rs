//! `activity` action rows: the idempotency key, claim and lease of each action of an event,
//! and how it ended.

use std::time::Duration;

use igflow_core::campaign::ActionKind;
use uuid::Uuid;

use super::batch::Finish;
use super::{DecisionRecord, Store, StoreError};

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
    /// It ended for good: sent, done according to Meta, held back or failed (the outcome,
    /// when it is one this worker knows).
    Done { outcome: Option<ActionOutcome> },
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
    /// A shadow campaign's: it would have been sent, and was not.
    Shadow,
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
            Self::Shadow => "shadow",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        [
            Self::Sent,
            Self::AlreadyDone,
            Self::Failed,
            Self::Uncertain,
            Self::Retry,
            Self::Dropped,
            Self::Skipped,
            Self::Shadow,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }

    /// Whether the person got it (now, or from an earlier attempt Meta remembers), or would
    /// have in shadow mode.
    pub fn went_out(self) -> bool {
        matches!(self, Self::Sent | Self::AlreadyDone | Self::Shadow)
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

impl Store {
    /// Takes the (account, event, action) idempotency key before its checks. A fresh key, one
    /// an earlier attempt released as `retry`, or one an attempt `claimed` but never sent is
    /// taken (`claimed`, with this attempt's token); see [`Store::start_sending`]. A `pending`
    /// or `uncertain` one whose lease ran out is taken for resolving, leased for `lease`.
    #[tracing::instrument(name = "store.claim_action", level = "debug", skip_all)]
    pub async fn claim_action(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        variant: Option<i16>,
        lease: Duration,
    ) -> Result<ActionClaim, StoreError> {
        if self.claim_fresh(d, kind, variant).await? {
            return Ok(ActionClaim::Fresh);
        }
        if let Some(attempted_at_ms) = self.claim_unresolved(d, kind, lease).await? {
            return Ok(ActionClaim::Unresolved { attempted_at_ms });
        }
        let row: Option<(String, Option<f64>)> = sqlx::query_as(
            "select outcome, case when outcome in ('pending', 'uncertain')
                                  then greatest(extract(epoch from lease_until - now()), 0)::float8 end
             from activity where ig_user_id = $1 and event_id = $2 and step = $3",
        )
        .bind(d.ig_user_id)
        .bind(d.event_id)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((_, Some(secs))) => ActionClaim::Busy {
                retry_in: Duration::try_from_secs_f64(secs).unwrap_or(lease),
            },
            Some((outcome, None)) => ActionClaim::Done {
                outcome: ActionOutcome::from_stored(&outcome),
            },
            None => ActionClaim::Done { outcome: None },
        })
    }

    /// Takes a fresh key, or one released as `retry` or `claimed` but never sent.
    async fn claim_fresh(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        variant: Option<i16>,
    ) -> Result<bool, StoreError> {
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
        Ok(claimed.is_some())
    }

    /// Takes a `pending` or `uncertain` key whose lease ran out, for resolving: that attempt
    /// died after possibly sending. Returns when its call started (Unix ms), where known.
    async fn claim_unresolved(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        lease: Duration,
    ) -> Result<Option<Option<i64>>, StoreError> {
        Ok(sqlx::query_scalar(
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
        .await?)
    }

    /// Marks the claimed action `pending`, leased for `lease`, just before its Graph API call:
    /// from here on an attempt that dies may have reached Meta. False when another copy of the
    /// event has claimed it since; that copy sends it.
    #[tracing::instrument(name = "store.start_sending", level = "debug", skip_all)]
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
    #[tracing::instrument(name = "store.renew_leases", level = "debug", skip_all, fields(event_id = %event_id))]
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

    /// Records how this attempt's action ended. False when the claim is no longer this
    /// attempt's (its lease ran out and another attempt took the action over): that one's
    /// outcome stands.
    #[tracing::instrument(name = "store.finish_action", level = "debug", skip_all)]
    pub async fn finish_action(
        &self,
        d: &DecisionRecord<'_>,
        kind: ActionKind,
        r: &ActionRecord,
    ) -> Result<bool, StoreError> {
        // Group-committed with the other events' writes; the caller still waits for the commit.
        self.batches.finish(Finish::new(d, kind.as_str(), r)).await
    }

    /// Whether the campaign already sent the contact a DM (for another event) within
    /// `cooldown`: the durable side of the cooldown, which Redis may forget.
    #[tracing::instrument(name = "store.dm_sent_within", level = "debug", skip_all, fields(campaign_id = %campaign_id))]
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
                 and outcome in ('sent', 'already_done', 'pending', 'uncertain', 'shadow')
                 and updated_at > now() - make_interval(secs => $4))",
        )
        .bind(campaign_id)
        .bind(contact)
        .bind(except_event)
        .bind(cooldown.as_secs_f64())
        .fetch_one(&self.pool)
        .await?)
    }
}
