//! Subscription audit: each active account's `subscribed_apps` is read on a schedule; fields
//! igflow acts on that Meta dropped are subscribed again (`Resubscribed`), and a refusal
//! marks the account (`subscription_error`) and raises `ResubscribeFailed`. The same round
//! raises `AccountSilent` for an account with active campaigns and no event for longer
//! than the quiet time: a subscription Meta disabled without saying so, or a webhook that
//! refuses every delivery.

use std::time::Duration;

use igflow_core::ids::IgUserId;
use igflow_core::subscription::{self, WEBHOOK_FIELDS};
use tracing::Instrument;

use crate::clients::store::{Account, StoreError};
use crate::jobs::lease::{Job, Lease};
use crate::jobs::lifecycle::Lifecycle;
use crate::stats::Stats;

/// Long enough for a token read and two Graph calls with their timeouts.
const HOLD: Duration = Duration::from_secs(120);

/// What the audit found for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audit {
    /// Every field igflow acts on is subscribed.
    Subscribed,
    /// These were missing and are subscribed again.
    Resubscribed(Vec<String>),
    /// These were missing and Meta refused to subscribe them: the account is marked.
    Failed(String),
    /// The subscription could not be read; tried again at the next round.
    Unknown(String),
}

/// Audits every active account whose lease this worker takes.
pub async fn round(ctx: &Lifecycle) -> Result<(), StoreError> {
    for ig_user_id in ctx.store.active_accounts().await? {
        let Ok(ig_user_id) = IgUserId::parse(ig_user_id) else {
            continue;
        };
        let Some(account) = ctx.store.account(&ig_user_id).await? else {
            continue;
        };
        let Some(lease) = Lease::take(&ctx.store, Job::Subscriptions, account.id, HOLD).await?
        else {
            continue;
        };
        let span = tracing::info_span!("subscription_audit", account_id = %ig_user_id);
        audit(ctx, &account).instrument(span.clone()).await?;
        silence(ctx, &account).instrument(span).await?;
        lease.finish(&ctx.store, ctx.config.audit_every).await?;
    }
    Ok(())
}

/// Reads the account's subscription and renews it if fields are missing.
pub async fn audit(ctx: &Lifecycle, account: &Account) -> Result<Audit, StoreError> {
    let token = match ctx.tokens.get(account.id, &account.token_secret_ref).await {
        Ok(token) => token,
        Err(e) => return Ok(Audit::Unknown(e.to_string())),
    };
    let subscribed = match ctx.graph.subscribed_fields(account, &token).await {
        Ok(fields) => fields,
        Err(e) => {
            tracing::warn!(error = %e.reason(), "subscription not read; next round retries");
            return Ok(Audit::Unknown(e.reason()));
        }
    };
    let missing: Vec<String> = subscription::missing(&subscribed)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if missing.is_empty() {
        ctx.store
            .subscription_checked(account.id, Some(&subscribed), None)
            .await?;
        return Ok(Audit::Subscribed);
    }
    match ctx.graph.subscribe(account, &token).await {
        Ok(()) => {
            Stats::add(&ctx.stats.resubscribed);
            tracing::warn!(missing = ?missing, "webhook fields were unsubscribed; subscribed again");
            let all: Vec<String> = WEBHOOK_FIELDS.iter().map(|f| (*f).to_owned()).collect();
            ctx.store
                .subscription_checked(account.id, Some(&all), None)
                .await?;
            Ok(Audit::Resubscribed(missing))
        }
        Err(e) => {
            Stats::add(&ctx.stats.resubscribe_failed);
            let reason = format!(
                "webhook fields {} unsubscribed and Meta refused to subscribe them again: {}",
                missing.join(","),
                e.reason()
            );
            tracing::error!(alarm = "resubscribe_failed", error = %reason, "account receives no webhooks for these fields");
            ctx.store
                .subscription_checked(account.id, Some(&subscribed), Some(&reason))
                .await?;
            Ok(Audit::Failed(reason))
        }
    }
}

/// Raises `AccountSilent` when the account has active campaigns and no recent event.
async fn silence(ctx: &Lifecycle, account: &Account) -> Result<(), StoreError> {
    if ctx.store.is_silent(account.id, ctx.config.quiet).await? {
        Stats::add(&ctx.stats.account_silent);
        tracing::error!(
            alarm = "account_silent",
            quiet_seconds = ctx.config.quiet.as_secs(),
            "account has active campaigns and no event for longer than the quiet time"
        );
    }
    Ok(())
}
