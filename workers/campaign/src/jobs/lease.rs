//! A lease per (job, account) in Postgres, so any number of workers can run the lifecycle
//! jobs and each account's work is done once: taking it is one statement that succeeds only
//! when nobody holds it and it is due, and finishing it says when it is next due.

use std::time::Duration;

use uuid::Uuid;

use crate::clients::store::{Store, StoreError};

/// The lifecycle jobs, as named in `job_leases.job`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    TokenRefresh,
    Subscriptions,
    Reconcile,
}

impl Job {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenRefresh => "token_refresh",
            Self::Subscriptions => "subscriptions",
            Self::Reconcile => "reconcile",
        }
    }
}

/// A job's work on one account, held by this worker until `finish` or `hold` runs out.
#[derive(Debug)]
#[must_use = "a lease not finished stays held until it runs out"]
pub struct Lease {
    job: Job,
    account: Uuid,
    holder: Uuid,
}

impl Lease {
    /// Takes the job's lease on the account for `hold`, if nobody holds it and it is due.
    pub async fn take(
        store: &Store,
        job: Job,
        account: Uuid,
        hold: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let holder = Uuid::new_v4();
        let taken: Option<Uuid> = sqlx::query_scalar(
            "insert into job_leases (job, account_id, holder, held_until)
             values ($1, $2, $3, now() + make_interval(secs => $4))
             on conflict (job, account_id) do update
               set holder = excluded.holder, held_until = excluded.held_until
               where job_leases.held_until < now() and job_leases.next_at <= now()
             returning holder",
        )
        .bind(job.as_str())
        .bind(account)
        .bind(holder)
        .bind(hold.as_secs_f64())
        .fetch_optional(store.pool())
        .await?;
        Ok(taken.map(|holder| Self {
            job,
            account,
            holder,
        }))
    }

    /// Releases the lease; the job is next due for the account after `next_in`. A lease that
    /// ran out and was taken by another worker is left to it.
    pub async fn finish(self, store: &Store, next_in: Duration) -> Result<(), StoreError> {
        sqlx::query(
            "update job_leases set held_until = now(), next_at = now() + make_interval(secs => $4)
             where job = $1 and account_id = $2 and holder = $3",
        )
        .bind(self.job.as_str())
        .bind(self.account)
        .bind(self.holder)
        .bind(next_in.as_secs_f64())
        .execute(store.pool())
        .await?;
        Ok(())
    }
}
