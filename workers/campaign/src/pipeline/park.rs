//! Parking: an event whose account is not active is kept in Postgres until it is again
//! (`jobs::unpark` puts it back on the queue). Touches Postgres and the token cache.

use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;

use crate::clients::store::Account;
use crate::pipeline::{Context, Next, Pipeline};

impl Pipeline {
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
        // The token may be what Meta refused: the next use reads the secret again.
        self.tokens.evict(Some(account.id));
        self.store.pause_account(account.id, reason).await?;
        crate::stats::Stats::add(&self.stats.accounts_paused);
        tracing::error!(%reason, alarm = "account_paused", "account paused");
        self.park(cx.envelope, account, reason).await
    }
}
