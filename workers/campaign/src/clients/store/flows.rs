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
    pub field: String,
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
            "select campaign_id, step, awaiting as field from flow_runs
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
    /// answer, stores it on the contact, in one transaction.
    #[tracing::instrument(name = "store.answered", level = "debug", skip_all, fields(campaign_id = %at.campaign_id))]
    pub async fn answered(
        &self,
        at: FlowStep<'_>,
        event_id: &str,
        captured: Option<(CaptureField, &str)>,
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
        if let Some((field, value)) = captured {
            let column = match field {
                CaptureField::Email => "email",
                CaptureField::Phone => "phone",
            };
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
        }
        tx.commit().await?;
        Ok(())
    }
}
