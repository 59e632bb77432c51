//! Account access tokens live in Secrets Manager, never in Postgres or logs. The worker reads
//! them through a short-lived in-memory cache, per account; `apply` writes them. A token Meta
//! refused (190) and the token of an account whose row changed (a reconnect writes the new
//! token, then resumes the account) are evicted at once, not after the cache's TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use igflow_core::failure::Failure;
use igflow_core::ids::IgUserId;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::config::SecretsConfig;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// A Secrets Manager call that failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The account's token is not there: it cannot act until it is reconnected.
    #[error(
        "token secret {name} is missing or empty; pause the account until a reconnect (igflow-worker apply) writes a token"
    )]
    Missing {
        name: String,
        #[source]
        source: Option<Source>,
    },
    /// Secrets Manager did not answer as it should now; it may in a moment.
    #[error("secrets manager {call} on {name} failed; retry")]
    Unavailable {
        call: &'static str,
        name: String,
        #[source]
        source: Source,
    },
}

impl SecretsError {
    fn unavailable(call: &'static str, name: &str, source: impl Into<Source>) -> Self {
        Self::Unavailable {
            call,
            name: name.to_owned(),
            source: source.into(),
        }
    }
}

impl From<SecretsError> for Failure {
    /// A missing token pauses the account (its events are parked until a reconnect); an
    /// unavailable Secrets Manager is retried.
    fn from(e: SecretsError) -> Self {
        let reason = DisplayErrorContext(&e).to_string();
        match e {
            SecretsError::Missing { .. } => Failure::Account { reason },
            SecretsError::Unavailable { .. } => Failure::retry(reason),
        }
    }
}

/// A token read, with the secret it was read from and when.
struct Cached {
    secret_ref: String,
    token: SecretString,
    at: Instant,
}

pub struct Tokens {
    client: Client,
    config: SecretsConfig,
    /// By account id.
    cache: Mutex<HashMap<Uuid, Cached>>,
}

impl Tokens {
    pub fn new(client: Client, config: SecretsConfig) -> Self {
        Self {
            client,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The secret name for an account's token; stored in `ig_accounts.token_secret_ref`.
    pub fn secret_name(&self, account: &IgUserId) -> String {
        format!("{}accounts/{account}/access-token", self.config.prefix)
    }

    /// The secret name for a tenant's webhook secret; stored in `tenants.webhook_secret_ref`.
    pub fn webhook_secret_name(&self, tenant_slug: &str) -> String {
        format!("{}tenants/{tenant_slug}/webhook-secret", self.config.prefix)
    }

    /// The account's token, read from `secret_ref` unless a fresh copy is cached.
    pub async fn get(&self, account: Uuid, secret_ref: &str) -> Result<SecretString, SecretsError> {
        if let Some(cached) = self.lock().get(&account)
            && cached.secret_ref == secret_ref
            && cached.at.elapsed() < self.config.cache_ttl
        {
            return Ok(cached.token.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_ref)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    SecretsError::Missing {
                        name: secret_ref.to_owned(),
                        source: Some(e.into()),
                    }
                } else {
                    SecretsError::unavailable("GetSecretValue", secret_ref, e)
                }
            })?;
        let token = SecretString::from(
            out.secret_string()
                .ok_or_else(|| SecretsError::Missing {
                    name: secret_ref.to_owned(),
                    source: None,
                })?
                .to_owned(),
        );
        let cached = Cached {
            secret_ref: secret_ref.to_owned(),
            token: token.clone(),
            at: Instant::now(),
        };
        self.lock().insert(account, cached);
        Ok(token)
    }

    /// Forgets the account's token (all tokens for `None`): the next use reads the secret.
    pub fn evict(&self, account: Option<Uuid>) {
        match account {
            Some(id) => {
                self.lock().remove(&id);
            }
            None => self.lock().clear(),
        }
    }

    /// Creates or replaces the token secret.
    pub async fn put(&self, name: &str, token: &SecretString) -> Result<(), SecretsError> {
        let created = self
            .client
            .create_secret()
            .name(name)
            .secret_string(token.expose_secret())
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.put_value(name, token).await?;
            }
            Err(e) => return Err(SecretsError::unavailable("CreateSecret", name, e)),
        }
        self.lock().retain(|_, cached| cached.secret_ref != name);
        Ok(())
    }

    /// Writes a refreshed token over the account's secret and caches it, so this worker's
    /// next call uses it (other workers read it when the account row's change reaches them).
    /// The secret exists already: only `PutSecretValue`, which the worker's role may call.
    pub async fn replace(
        &self,
        account: Uuid,
        secret_ref: &str,
        token: &SecretString,
    ) -> Result<(), SecretsError> {
        self.put_value(secret_ref, token).await?;
        let cached = Cached {
            secret_ref: secret_ref.to_owned(),
            token: token.clone(),
            at: Instant::now(),
        };
        self.lock().insert(account, cached);
        Ok(())
    }

    async fn put_value(&self, name: &str, token: &SecretString) -> Result<(), SecretsError> {
        self.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(token.expose_secret())
            .send()
            .await
            .map(drop)
            .map_err(|e| SecretsError::unavailable("PutSecretValue", name, e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Cached>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
