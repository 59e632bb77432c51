//! The account lifecycle jobs' settings (token refresh, subscription audit, reconciliation).

use std::time::Duration;

use igflow_core::env::{ConfigError, Env};
use secrecy::{ExposeSecret, SecretString};

/// The account lifecycle jobs (token refresh, subscription audit, reconciliation).
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `IGFLOW_LIFECYCLE_SECONDS` (default 60): how often a worker looks for due work.
    pub every: Duration,
    /// `IGFLOW_TOKEN_REFRESH_DAYS` (default 10): a token is refreshed once it expires within
    /// this (Meta's tokens last 60 days).
    pub refresh_before: Duration,
    /// `IGFLOW_TOKEN_WARN_DAYS` (default 5): a refresh failing this close to expiry raises
    /// `TokenExpiring`.
    pub warn_before: Duration,
    /// `IGFLOW_TOKEN_RETRY_SECONDS` (default 3600): a failed refresh is tried again after this.
    pub refresh_retry: Duration,
    /// `IGFLOW_SUBSCRIPTION_AUDIT_SECONDS` (default 3600): each active account's
    /// subscription is checked this often.
    pub audit_every: Duration,
    /// `IGFLOW_QUIET_SECONDS` (default 21600): an account with active campaigns and no event
    /// for longer raises `AccountSilent`.
    pub quiet: Duration,
    /// `IGFLOW_FB_APP_TOKEN`: the Meta app's access token, `{app-id}|{app-secret}`, with which
    /// Meta's `debug_token` tells when a Facebook Login token given by file expires (Meta
    /// answers a token about itself only for the app's developers). Unset: such tokens'
    /// expiry stays unknown and their accounts raise `TokenExpiring` only from a failed call.
    pub app_token: Option<SecretString>,
    /// `IGFLOW_ARCHIVE_BUCKET`: the webhook's raw archive, from which a data deletion also
    /// removes the account's deliveries. Unset: nothing is archived to purge.
    pub archive_bucket: Option<String>,
    pub reconcile: ReconcileConfig,
}

/// Reconciliation of comments Meta did not deliver.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// `IGFLOW_RECONCILE_SECONDS` (default 1800): each active account is reconciled this often.
    pub every: Duration,
    /// `IGFLOW_RECONCILE_LOOKBACK_HOURS` (default 168, the private-reply window): how far back
    /// a scheduled run reads comments.
    pub lookback: Duration,
    /// `IGFLOW_RECONCILE_READS_PER_HOUR` (default 600): reconciliation's share of an account's
    /// Graph calls; its reads are spaced to stay within it.
    pub reads_per_hour: u32,
    /// `IGFLOW_RECONCILE_MAX_USAGE` (default 50): reconciliation stops for the round once
    /// Meta reports the account's usage at or above this percentage, leaving the rest to
    /// live traffic.
    pub max_usage: u8,
    /// `IGFLOW_RECONCILE_RECENT_MEDIA` (default 50): how many of the account's newest media
    /// are read for campaigns that listen on every post (people comment on older posts too;
    /// each media costs at least one read per run).
    pub recent_media: u32,
    /// `IGFLOW_RECONCILE_GRACE_SECONDS` (default 300): comments younger than this are left
    /// alone, as their webhook may still be on its way.
    pub grace: Duration,
}

const DAY: u64 = 24 * 3600;

impl LifecycleConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secs = |var, default| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(env.parse_or(var, default)?))
        };
        let days = |var, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(env.parse_or(var, default)? * DAY))
        };
        let at_least_one = |var, default: u32| -> Result<u32, ConfigError> {
            match env.parse_or(var, default)? {
                0 => Err(ConfigError::Invalid {
                    var,
                    problem: "must be at least 1".into(),
                }),
                n => Ok(n),
            }
        };
        Ok(Self {
            every: secs("IGFLOW_LIFECYCLE_SECONDS", 60)?,
            refresh_before: days("IGFLOW_TOKEN_REFRESH_DAYS", 10)?,
            warn_before: days("IGFLOW_TOKEN_WARN_DAYS", 5)?,
            refresh_retry: secs("IGFLOW_TOKEN_RETRY_SECONDS", 3600)?,
            audit_every: secs("IGFLOW_SUBSCRIPTION_AUDIT_SECONDS", 3600)?,
            quiet: secs("IGFLOW_QUIET_SECONDS", 6 * 3600)?,
            app_token: env
                .optional("IGFLOW_FB_APP_TOKEN")
                .map(app_token)
                .transpose()?,
            archive_bucket: env.optional("IGFLOW_ARCHIVE_BUCKET"),
            reconcile: ReconcileConfig {
                every: secs("IGFLOW_RECONCILE_SECONDS", 1800)?,
                lookback: Duration::from_secs(
                    env.parse_or("IGFLOW_RECONCILE_LOOKBACK_HOURS", 168)? * 3600,
                ),
                reads_per_hour: at_least_one("IGFLOW_RECONCILE_READS_PER_HOUR", 600)?,
                recent_media: at_least_one("IGFLOW_RECONCILE_RECENT_MEDIA", 50)?,
                max_usage: env.parse_or("IGFLOW_RECONCILE_MAX_USAGE", 50)?,
                grace: secs("IGFLOW_RECONCILE_GRACE_SECONDS", 300)?,
            },
        })
    }
}

/// Meta's app access tokens are `{app-id}|{app-secret}`; anything else is a mistake (a user
/// token, the secret alone) that `debug_token` would refuse at every round.
fn app_token(raw: String) -> Result<SecretString, ConfigError> {
    let token = SecretString::from(raw);
    match token.expose_secret().split_once('|') {
        Some((id, secret))
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !secret.is_empty() =>
        {
            Ok(token)
        }
        // The value is a secret: the problem names its shape, never the value.
        _ => Err(ConfigError::Invalid {
            var: "IGFLOW_FB_APP_TOKEN",
            problem: "must be the Meta app's access token, {app-id}|{app-secret}".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(token: &str) -> Result<LifecycleConfig, ConfigError> {
        let vars = [("IGFLOW_FB_APP_TOKEN".to_owned(), token.to_owned())];
        LifecycleConfig::from_env(&Env::from_map(vars.into_iter().collect()))
    }

    #[test]
    fn the_app_token_must_be_an_app_id_and_its_secret() {
        let config = parsed("1234567890|s3cret").unwrap();
        assert_eq!(
            config.app_token.map(|t| t.expose_secret().to_owned()),
            Some("1234567890|s3cret".to_owned())
        );
        for wrong in ["s3cret", "|s3cret", "1234567890|", "IGAAuser|token"] {
            let e = parsed(wrong).unwrap_err().to_string();
            assert!(e.contains("{app-id}|{app-secret}"), "{wrong}: {e}");
            assert!(!e.contains("s3cret"), "the secret is never echoed: {e}");
        }
    }
}
