//! `flow_runs`: where a person is in a campaign's flow, across restarts.

use std::time::Duration;

use igflow_core::campaign::CaptureField;
use uuid::Uuid;

use super::{Store, StoreError};

/// One person at one step of one campaign's flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowStep<'a> {
    pub account_id: Uuid,
    pub contact: &'a str,
    pub campaign_id: Uuid,
    pub step: &'a str,
}

impl Store {
    /// Records that a follow gate turned back the tap `event_id` (once, however often Meta
    /// delivers it) and returns how many of the person's taps it turned back in all, while the
    /// run lives: `window` from this tap.
    #[tracing::instrument(name = "store.turned_back", level = "debug", skip_all, fields(campaign_id = %at.campaign_id))]
    pub async fn turned_back(
        &self,
        at: FlowStep<'_>,
        event_id: &str,
        window: Duration,
    ) -> Result<u32, StoreError> {
        let count: i32 = sqlx::query_scalar(
            "insert into flow_runs (account_id, contact_igsid, campaign_id, step, turned_back, expires_at)
             values ($1, $2, $3, $4, array[$5], now() + make_interval(secs => $6))
             on conflict (account_id, contact_igsid, campaign_id, step) do update set
               turned_back = case
                 when flow_runs.expires_at < now() then array[$5]
                 when $5 = any(flow_runs.turned_back) then flow_runs.turned_back
                 else flow_runs.turned_back || $5 end,
               expires_at = excluded.expires_at, updated_at = now()
             returning cardinality(turned_back)",
        )
        .bind(at.account_id)
        .bind(at.contact)
        .bind(at.campaign_id)
        .bind(at.step)
        .bind(event_id)
        .bind(window.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(count).unwrap_or(0))
    }
}

/// A capture step waiting for the person's answer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Awaiting {
    pub campaign_id: Uuid,
    pub step: String,
}

impl Store {
    /// Marks the capture step as waiting for the person's next message, for `window`.
    #[tracing::instrument(name = "store.await_answer", level = "debug", skip_all, fields(campaign_id = %at.campaign_id))]
    pub async fn await_answer(
        &self,
        at: FlowStep<'_>,
        field: &str,
        window: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into flow_runs (account_id, contact_igsid, campaign_id, step, awaiting, expires_at)
             values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
             on conflict (account_id, contact_igsid, campaign_id, step) do update set
               awaiting = excluded.awaiting, bad_answers = '{}', answered_by = null,
               expires_at = excluded.expires_at, updated_at = now()",
        )
        .bind(at.account_id)
        .bind(at.contact)
        .bind(at.campaign_id)
        .bind(at.step)
        .bind(field)
        .bind(window.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest capture waiting for this person's answer: still open, or ended by this very
    /// event (a retry of it decides as the first attempt did).
    #[tracing::instrument(name = "store.awaiting", level = "debug", skip_all)]
    pub async fn awaiting(
        &self,
        account_id: Uuid,
        contact: &str,
        event_id: &str,
    ) -> Result<Option<Awaiting>, StoreError> {
        Ok(sqlx::query_as(
            "select campaign_id, step from flow_runs
             where account_id = $1 and contact_igsid = $2 and awaiting is not null
               and expires_at > now() and (answered_by is null or answered_by = $3)
             order by updated_at desc limit 1",
        )
        .bind(account_id)
        .bind(contact)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a bad answer (once per event) and returns how many the person gave.
    #[tracing::instrument(name = "store.bad_answer", level = "debug", skip_all, fields(campaign_id = %at.campaign_id))]
    pub async fn bad_answer(&self, at: FlowStep<'_>, event_id: &str) -> Result<u32, StoreError> {
        let count: i32 = sqlx::query_scalar(
            "update flow_runs set updated_at = now(),
               bad_answers = case when $5 = any(bad_answers) then bad_answers
                                  else bad_answers || $5 end
             where account_id = $1 and contact_igsid = $2 and campaign_id = $3 and step = $4
             returning cardinality(bad_answers)",
        )
        .bind(at.account_id)
        .bind(at.contact)
        .bind(at.campaign_id)
        .bind(at.step)
        .bind(event_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(count).unwrap_or(0))
    }

    /// Ends the wait with `event_id` (a good answer, or the last bad one) and, for a good
    /// answer, stores it on the contact and queues it for the tenant's webhook (if it has
    /// one), in one transaction.
    #[tracing::instrument(name = "store.answered", level = "debug", skip_all, fields(campaign_id = %at.campaign_id))]
    pub async fn answered(
        &self,
        at: FlowStep<'_>,
        event_id: &str,
        captured: Option<Captured<'_>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "update flow_runs set answered_by = $5, updated_at = now()
             where account_id = $1 and contact_igsid = $2 and campaign_id = $3 and step = $4",
        )
        .bind(at.account_id)
        .bind(at.contact)
        .bind(at.campaign_id)
        .bind(at.step)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
        if let Some(captured) = captured {
            // The field's name is its column's (`contacts.email`, `contacts.phone`).
            let (column, value) = (captured.field.as_str(), captured.value);
            let sql = format!(
                "insert into contacts (account_id, igsid, {column}, captured_at) values ($1, $2, $3, now())
                 on conflict (account_id, igsid) do update set {column} = excluded.{column},
                   captured_at = now(), last_seen_at = now()"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(at.account_id)
                .bind(at.contact)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            queue_webhook(&mut tx, at, event_id, &captured).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A capture step's good answer, and who it is for.
#[derive(Debug, Clone, Copy)]
pub struct Captured<'a> {
    pub field: CaptureField,
    pub value: &'a str,
    pub tenant_id: Uuid,
    pub ig_user_id: &'a str,
    pub campaign_slug: &'a str,
}

/// Queues the answer for the tenant's webhook, once per event, with its progress row in
/// `activity` (`webhook`, `pending`); nothing when the tenant has no webhook.
async fn queue_webhook(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    at: FlowStep<'_>,
    event_id: &str,
    captured: &Captured<'_>,
) -> Result<(), StoreError> {
    let body = serde_json::json!({
        "type": "contact.captured",
        "id": format!("{}:{event_id}", captured.ig_user_id),
        "account": { "ig_user_id": captured.ig_user_id },
        "contact": { "igsid": at.contact, captured.field.as_str(): captured.value },
        "campaign": captured.campaign_slug,
        "step": at.step,
        "captured_at": jiff::Timestamp::now().to_string(),
    });
    sqlx::query(
        "with t as (select id, webhook_url, webhook_secret_ref from tenants
                    where id = $1 and webhook_url is not null),
              d as (insert into outbound_deliveries (tenant_id, ig_user_id, event_id, kind, url, secret_ref, body)
                    select id, $2, $3, 'contact.captured', webhook_url, webhook_secret_ref, $4 from t
                    on conflict (ig_user_id, event_id, kind) do nothing
                    returning tenant_id)
         insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, contact_igsid, outcome, detail)
         select tenant_id, $2, $3, 'message', 'webhook', $5, $6, 'pending', 'queued for the tenant''s webhook' from d
         on conflict (ig_user_id, event_id, step) do nothing",
    )
    .bind(captured.tenant_id)
    .bind(captured.ig_user_id)
    .bind(event_id)
    .bind(sqlx::types::Json(&body))
    .bind(at.campaign_id)
    .bind(at.contact)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delivery to a tenant's webhook, taken by the delivery job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub tenant_id: Uuid,
    pub url: String,
    pub secret_ref: String,
    pub body: String,
    pub attempts: i32,
}

impl Store {
    /// Takes up to `limit` due deliveries for `lease` (another worker takes them after it,
    /// should this one die), counting the attempt.
    #[tracing::instrument(name = "store.due_deliveries", level = "debug", skip_all)]
    pub async fn due_deliveries(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(sqlx::query_as(
            "update outbound_deliveries set attempts = attempts + 1,
               next_at = now() + make_interval(secs => $2)
             where id in (select id from outbound_deliveries
                          where delivered_at is null and failed_at is null and next_at <= now()
                          order by next_at limit $1 for update skip locked)
             returning id, tenant_id, url, secret_ref, body::text as body, attempts",
        )
        .bind(limit)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }

    /// What became of one attempt: delivered, to be retried after a wait, or given up; the
    /// delivery's `activity` row says so.
    #[tracing::instrument(name = "store.delivery_attempted", level = "debug", skip_all, fields(delivery = id))]
    pub async fn delivery_attempted(
        &self,
        id: i64,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<(), StoreError> {
        let (activity, detail, retry_in, error) = match outcome {
            DeliveryOutcome::Delivered { status } => (
                "sent",
                format!("delivered to the tenant's webhook (HTTP {status})"),
                None,
                None,
            ),
            DeliveryOutcome::Retry { error, after } => (
                "retry",
                format!("{error}; next try in {} s", after.as_secs()),
                Some(after.as_secs_f64()),
                Some(error),
            ),
            DeliveryOutcome::GaveUp { error } => {
                ("failed", format!("{error}; gave up"), None, Some(error))
            }
        };
        sqlx::query(
            "with d as (update outbound_deliveries set
                          delivered_at = case when $2 = 'sent' then now() end,
                          failed_at = case when $2 = 'failed' then now() end,
                          next_at = coalesce(now() + make_interval(secs => $3), next_at),
                          last_error = $4
                        where id = $1 returning ig_user_id, event_id)
             update activity a set outcome = $2, detail = $5, updated_at = now()
             from d where a.ig_user_id = d.ig_user_id and a.event_id = d.event_id and a.step = 'webhook'",
        )
        .bind(id)
        .bind(activity)
        .bind(retry_in)
        .bind(error)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// One attempt's end.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryOutcome<'a> {
    Delivered { status: u16 },
    Retry { error: &'a str, after: Duration },
    GaveUp { error: &'a str },
}
