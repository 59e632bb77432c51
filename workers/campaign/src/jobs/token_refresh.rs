//! Token refresh: every Instagram Login long-lived token is refreshed well before it expires
//! (Meta refreshes one at least 24 hours old and not expired, for 60 days). The new token goes
//! to Secrets Manager and this worker's token cache (other workers drop theirs when the
//! account row changes), its expiry to the account. A failure is shown on the account and
//! retried; close to expiry it raises `TokenExpiring`.

use std::time::Duration;

use igflow_core::ids::IgUserId;
use secrecy::SecretString;
use tracing::Instrument;

use crate::clients::graph::CallError;
use crate::clients::secrets::SecretsError;
use crate::clients::store::TokenDue;
use crate::clients::store::{Account, StoreError};
use crate::jobs::lease::{Job, Lease};
use crate::jobs::lifecycle::Lifecycle;
use crate::stats::Stats;

/// Long enough for a token read, a refresh and a secret write, with their timeouts.
const HOLD: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the current token could not be read: {0}")]
    Token(#[source] SecretsError),
    #[error("the account {0} is no longer in igflow; nothing to refresh")]
    Gone(String),
    #[error("Meta refused the refresh: {}; retried at the next attempt, and if the token has expired the owner must reconnect", .0.reason())]
    Meta(CallError),
    #[error("Meta did not tell the token's expiry: {}", .0.reason())]
    Inspect(CallError),
    #[error(
        "the new token was not stored: {0}; the old one works until it expires, retried at the next attempt"
    )]
    Secret(#[source] SecretsError),
    #[error("the new token's expiry was not recorded: {0}; retried at the next attempt")]
    Store(#[from] StoreError),
}

/// Refreshes every due token whose lease this worker takes.
pub async fn round(ctx: &Lifecycle) -> Result<(), StoreError> {
    for due in ctx.store.tokens_due(ctx.config.refresh_before).await? {
        let Some(lease) = Lease::take(&ctx.store, Job::TokenRefresh, due.id, HOLD).await? else {
            continue;
        };
        let span = tracing::info_span!("token_refresh", account_id = %due.ig_user_id);
        let outcome = refresh(ctx, &due).instrument(span.clone()).await;
        let _entered = span.enter();
        match outcome {
            Ok(lifetime) => {
                Stats::add(&ctx.stats.tokens_refreshed);
                tracing::info!(
                    expires_in_days = lifetime.as_secs() / 86_400,
                    "account token refreshed"
                );
            }
            Err(e) => failed(ctx, &due, &e).await?,
        }
        lease.finish(&ctx.store, ctx.config.refresh_retry).await?;
    }
    for due in ctx.store.expiries_unknown().await? {
        let Some(lease) = Lease::take(&ctx.store, Job::TokenRefresh, due.id, HOLD).await? else {
            continue;
        };
        let span = tracing::info_span!("token_expiry", account_id = %due.ig_user_id);
        learn_expiry(ctx, &due).instrument(span).await?;
        lease.finish(&ctx.store, EXPIRY_RECHECK).await?;
    }
    Ok(())
}

/// A Facebook Login token with no known expiry (a Page token never expires) is asked about
/// again after this.
const EXPIRY_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Records when a Facebook Login token given by file expires (Meta's debug endpoint); such
/// tokens are not refreshed here, so one expiring within the warning time raises
/// `TokenExpiring` for the owner to reconnect.
async fn learn_expiry(ctx: &Lifecycle, due: &TokenDue) -> Result<(), StoreError> {
    let expiry = async {
        let (_, token) = current_token(ctx, due).await?;
        ctx.graph
            .token_expiry(&token, ctx.config.app_token.as_ref())
            .await
            .map_err(RefreshError::Inspect)
    };
    match expiry.await {
        Ok(Some(at_ms)) => {
            ctx.store.token_expiry_learned(due.id, at_ms).await?;
            if expiring(ctx, Some(at_ms)) {
                Stats::add(&ctx.stats.token_expiring);
                tracing::error!(
                    alarm = "token_expiring",
                    expires_at_ms = at_ms,
                    "account token expires soon and is not refreshed automatically (Facebook Login): the owner reconnects"
                );
            }
        }
        Ok(None) => tracing::info!("account token does not expire"),
        Err(e) if ctx.config.app_token.is_none() => tracing::warn!(
            error = %e,
            "token expiry not read (set IGFLOW_FB_APP_TOKEN: Meta tells a token's expiry to the app's token); asked again tomorrow"
        ),
        Err(e) => tracing::warn!(error = %e, "token expiry not read; asked again tomorrow"),
    }
    Ok(())
}

/// The account the lease is for, as it is now, and its current token.
async fn current_token(
    ctx: &Lifecycle,
    due: &TokenDue,
) -> Result<(Account, SecretString), RefreshError> {
    let gone = || RefreshError::Gone(due.ig_user_id.clone());
    let ig_user_id = IgUserId::parse(due.ig_user_id.as_str()).map_err(|_| gone())?;
    let account = ctx.store.account(&ig_user_id).await?.ok_or_else(gone)?;
    let token = ctx
        .tokens
        .get(account.id, &account.token_secret_ref)
        .await
        .map_err(RefreshError::Token)?;
    Ok((account, token))
}

/// Whether the token expires within the warning time (or when, nobody knows).
fn expiring(ctx: &Lifecycle, expires_at_ms: Option<i64>) -> bool {
    let now_ms = igflow_core::runtime::now_ms();
    let warn_ms = i64::try_from(ctx.config.warn_before.as_millis()).unwrap_or(i64::MAX);
    expires_at_ms.is_none_or(|at| at.saturating_sub(now_ms) < warn_ms)
}

/// One account's refresh; returns the new token's lifetime.
async fn refresh(ctx: &Lifecycle, due: &TokenDue) -> Result<Duration, RefreshError> {
    let (account, token) = current_token(ctx, due).await?;
    let new = ctx
        .graph
        .refresh_token(&token)
        .await
        .map_err(RefreshError::Meta)?;
    ctx.tokens
        .replace(account.id, &account.token_secret_ref, &new.token)
        .await
        .map_err(RefreshError::Secret)?;
    ctx.store.token_refreshed(account.id, new.lifetime).await?;
    Ok(new.lifetime)
}

/// Shows the failure on the account; within the warning time (or when the expiry is not
/// known), raises `TokenExpiring`.
async fn failed(ctx: &Lifecycle, due: &TokenDue, e: &RefreshError) -> Result<(), StoreError> {
    Stats::add(&ctx.stats.token_refresh_failed);
    let reason = e.to_string();
    ctx.store.token_refresh_failed(due.id, &reason).await?;
    if expiring(ctx, due.expires_at_ms) {
        Stats::add(&ctx.stats.token_expiring);
        tracing::error!(
            alarm = "token_expiring",
            expires_at_ms = due.expires_at_ms,
            error = %reason,
            "account token expires soon and was not refreshed"
        );
    } else {
        tracing::warn!(error = %reason, "account token not refreshed; retried later");
    }
    Ok(())
}
