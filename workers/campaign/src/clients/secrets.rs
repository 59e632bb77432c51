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

#[derive(Debug, thiserror::Error)]
#[error("secrets manager: {0}")]
pub struct SecretsError(String);

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

    /// The account's token, read from `secret_ref` unless a fresh copy is cached.
    pub async fn get(&self, account: Uuid, secret_ref: &str) -> Result<SecretString, Failure> {
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
                let missing = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                let reason = format!("token {secret_ref}: {}", DisplayErrorContext(&e));
                if missing {
                    Failure::Account { reason }
                } else {
                    Failure::retry(reason)
                }
            })?;
        let token = SecretString::from(
            out.secret_string()
                .ok_or_else(|| Failure::Account {
                    reason: format!("token {secret_ref} has no string value"),
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
                self.client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(token.expose_secret())
                    .send()
                    .await
                    .map_err(|e| {
                        SecretsError(format!("updating {name}: {}", DisplayErrorContext(&e)))
                    })?;
            }
            Err(e) => {
                return Err(SecretsError(format!(
                    "creating {name}: {}",
                    DisplayErrorContext(&e)
                )));
            }
        }
        self.lock().retain(|_, cached| cached.secret_ref != name);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Cached>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
