//! `igflow-worker apply FILE`: upserts a campaign file. Everything is checked before anything
//! is written; tokens go to Secrets Manager, the rest in one Postgres transaction. A file owns
//! only the campaigns it wrote (`managed_by = 'file'`): the dashboard's are never touched.

use igflow_core::campaign_file::{CampaignFile, TokenSource};
use igflow_core::env::Env;
use secrecy::SecretString;

use crate::clients::secrets::{SecretsError, Tokens};
use crate::clients::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("campaign file rejected:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySummary {
    pub tenant: String,
    pub accounts: usize,
    pub campaigns: usize,
    /// File campaigns in the database that the file no longer lists, now archived.
    pub archived: u64,
}

/// Applies `file`; `source` names it (its path) for the dashboard, which shows file campaigns
/// read-only with where they come from.
pub async fn apply(
    file: &CampaignFile,
    source: &str,
    store: &Store,
    tokens: &Tokens,
    env: &Env,
) -> Result<ApplySummary, ApplyError> {
    let resolved = resolve_tokens(file, env)?;
    let webhook_secret = match &file.tenant.webhook {
        Some(webhook) => Some(
            resolve(webhook.secret_source(), "tenant.webhook.secret", env)
                .map_err(|problem| ApplyError::Invalid(vec![problem]))?,
        ),
        None => None,
    };
    check_ownership(file, store).await?;
    for (account, token) in file.accounts.iter().zip(&resolved) {
        tokens
            .put(&tokens.secret_name(&account.ig_user_id), token)
            .await?;
    }
    let webhook_ref = tokens.webhook_secret_name(&file.tenant.slug);
    if let Some(secret) = &webhook_secret {
        tokens.put(&webhook_ref, secret).await?;
    }
    let written = store
        .write_file(
            file,
            source,
            |account| tokens.secret_name(&account.ig_user_id),
            webhook_secret.map(|_| webhook_ref),
        )
        .await?;
    Ok(ApplySummary {
        tenant: file.tenant.slug.clone(),
        accounts: file.accounts.len(),
        campaigns: file.accounts.iter().map(|a| a.campaigns.len()).sum(),
        archived: written.archived,
    })
}

fn resolve_tokens(file: &CampaignFile, env: &Env) -> Result<Vec<SecretString>, ApplyError> {
    let mut problems = Vec::new();
    let mut tokens = Vec::new();
    for (i, account) in file.accounts.iter().enumerate() {
        match resolve(
            account.token_source(),
            &format!("accounts[{i}].access_token"),
            env,
        ) {
            Ok(token) => tokens.push(token),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(tokens)
    } else {
        Err(ApplyError::Invalid(problems))
    }
}

/// A secret from the file or from the environment variable it names (`field`, `field_env`).
fn resolve(
    source: Option<TokenSource<'_>>,
    field: &str,
    env: &Env,
) -> Result<SecretString, String> {
    match source {
        Some(TokenSource::Inline(secret)) => Ok(secret.clone()),
        Some(TokenSource::Env(var)) => env
            .optional(var)
            .map(SecretString::from)
            .ok_or_else(|| format!("{field}_env: environment variable {var} is not set")),
        // `CampaignFile::parse` already refused this.
        None => Err(format!("{field}: missing")),
    }
}

/// An account belongs to one tenant; a file for another tenant must not take it over. A
/// campaign made in the dashboard belongs to the dashboard: a file must not overwrite it.
async fn check_ownership(file: &CampaignFile, store: &Store) -> Result<(), ApplyError> {
    let mut problems = Vec::new();
    for (i, account) in file.accounts.iter().enumerate() {
        let owned = store.file_ownership(account).await?;
        for (j, campaign) in account.campaigns.iter().enumerate() {
            if owned.dashboard_slugs.contains(&campaign.slug) {
                problems.push(format!(
                    "accounts[{i}].campaigns[{j}].slug: {:?} is a campaign made in the dashboard; \
                     rename it in the file (the dashboard's campaigns are never overwritten)",
                    campaign.slug
                ));
            }
        }
        if let Some(owner) = owned.tenant.filter(|o| *o != file.tenant.slug) {
            problems.push(format!(
                "accounts[{i}].ig_user_id: {} belongs to tenant {owner:?}",
                account.ig_user_id
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Invalid(problems))
    }
}
