//! Parking: an event whose account is not active is kept in Postgres until it is again
//! (`jobs::unpark` puts it back on the queue). Touches Postgres and the token cache.

use igflow_core::campaign::AccountStatus;
use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;

use crate::clients::store::Account;
use crate::pipeline::{Context, Next, Pipeline};

impl Pipeline {
    /// Parks the event when its account is not active; `None` when it is.
    pub(super) async fn park_unless_active(
        &self,
        env: &Envelope,
        account: &Account,
    ) -> Result<Option<Next>, Failure> {
        if account.status == AccountStatus::Active {
            return Ok(None);
        }
        let reason = format!("account is {}", account.status);
        Ok(Some(self.park(env, account, &reason).await?))
    }

    pub(super) async fn park(
        &self,
        env: &Envelope,
        account: &Account,
        reason: &str,
    ) -> Result<Next, Failure> {
        self.store
            .park(account.id, env.event_id.as_str(), &env.encode(), reason)
            .await?;
        tracing::info!(reason, "event parked until the account is active");
        Ok(Next::Park)
    }

    /// An account failure met while acting (token invalid, permission gone): pauses the
    /// whole account and parks the event.
    pub(super) async fn pause(&self, cx: &Context<'_>, reason: &str) -> Result<Next, Failure> {
        let account = &cx.account;
        self.store.pause_account(account.id, reason).await?;
        // At once in this worker, not when Postgres's notification arrives: the next event
        // reads the paused row and parks without a call, and the token (which may be what
        // Meta refused) is read again after a resume.
        self.accounts.forget(Some(account.id));
        crate::stats::Stats::add(&self.stats.accounts_paused);
        tracing::error!(%reason, alarm = "account_paused", "account paused");
        self.park(cx.envelope, account, reason).await
    }
}
