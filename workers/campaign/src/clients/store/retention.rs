//! Deleting rows past the retention period (the policy is in `jobs::retention`).

use super::{Store, StoreError};

/// Rows deleted per statement, so no statement holds locks for long.
const BATCH: i64 = 5_000;

/// Rows deleted by one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub activity: u64,
    pub message_errors: u64,
    pub contacts: u64,
    pub parked_events: u64,
    pub flow_runs: u64,
}

/// Kept whatever its age: a sent DM a campaign's cooldown still counts.
const ACTIVITY: &str = "
    delete from activity where id in (
        select a.id from activity a
        left join campaigns c on c.id = a.campaign_id
        where a.created_at < now() - make_interval(days => $1)
          and not (a.step in ('private_reply', 'dm')
                   and a.updated_at > now() - make_interval(secs => coalesce(c.cooldown_seconds, 0)))
        order by a.id limit $2
        for update of a skip locked)";

const MESSAGE_ERRORS: &str = "
    delete from message_errors where message_id in (
        select message_id from message_errors
        where updated_at < now() - make_interval(days => $1)
        limit $2 for update skip locked)";

/// Kept whatever its age: a contact who opted out.
const CONTACTS: &str = "
    delete from contacts where id in (
        select id from contacts
        where last_seen_at < now() - make_interval(days => $1) and not opted_out
        limit $2 for update skip locked)";

const PARKED_EVENTS: &str = "
    delete from parked_events where (account_id, event_id) in (
        select account_id, event_id from parked_events
        where parked_at < now() - make_interval(days => $1)
        limit $2 for update skip locked)";

/// A run lapses with its messaging window; it is kept a day after (or the retention period,
/// if shorter) for whoever looks into it.
const FLOW_RUNS: &str = "
    delete from flow_runs where (account_id, contact_igsid, campaign_id, step) in (
        select account_id, contact_igsid, campaign_id, step from flow_runs
        where expires_at < now() - make_interval(days => least($1, 1))
        limit $2 for update skip locked)";

impl Store {
    /// Deletes what is older than `days`, in batches; several workers may run it at once
    /// (each batch skips rows another is deleting).
    #[tracing::instrument(name = "store.prune", level = "debug", skip_all)]
    pub async fn prune(&self, days: u32) -> Result<Pruned, StoreError> {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let mut pruned = Pruned::default();
        for (query, count) in [
            (ACTIVITY, &mut pruned.activity),
            (MESSAGE_ERRORS, &mut pruned.message_errors),
            (CONTACTS, &mut pruned.contacts),
            (PARKED_EVENTS, &mut pruned.parked_events),
            (FLOW_RUNS, &mut pruned.flow_runs),
        ] {
            loop {
                let deleted = sqlx::query(query)
                    .bind(days)
                    .bind(BATCH)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                *count += deleted;
                if deleted < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                    break;
                }
            }
        }
        Ok(pruned)
    }
}
