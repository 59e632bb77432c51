//! The secrets deliveries are checked against: the app secrets (a list, for rotations and for
//! the apps of both login flavors) and the verify token of Meta's handshake. Either fixed from
//! the environment, or read from Secrets Manager once per cold start and refreshed in the
//! background; a failed refresh keeps the last good keys.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use igflow_core::signature::Verifier;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading secret {secret_id}: {detail}")]
    Fetch { secret_id: String, detail: String },
    #[error(
        "secret {secret_id} must be JSON {{\"app_secrets\": [\"...\"], \"verify_token\": \"...\"}} with at least one app secret: {detail}"
    )]
    Format { secret_id: String, detail: String },
}

/// One consistent set of keys.
#[derive(Debug)]
pub struct Keys {
    pub verifier: Verifier,
    pub verify_token: SecretString,
}

/// The JSON document stored in the secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretDocument {
    app_secrets: Vec<String>,
    verify_token: String,
}

impl Keys {
    pub fn new(app_secrets: Vec<SecretString>, verify_token: SecretString) -> Self {
        Self {
            verifier: Verifier::new(app_secrets),
            verify_token,
        }
    }

    fn from_document(secret_id: &str, text: &str) -> Result<Self, KeyError> {
        let format = |detail: String| KeyError::Format {
            secret_id: secret_id.to_owned(),
            detail,
        };
        // serde's messages may quote the offending value, which is a secret here: give only
        // the kind of error and its position.
        let doc: SecretDocument = serde_json::from_str(text).map_err(|e| {
            format(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let secrets: Vec<SecretString> = doc
            .app_secrets
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .map(SecretString::from)
            .collect();
        if secrets.is_empty() || doc.verify_token.is_empty() {
            return Err(format("app_secrets or verify_token is empty".into()));
        }
        Ok(Self::new(secrets, SecretString::from(doc.verify_token)))
    }
}

struct Refresher {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    /// When the keys were last fetched (or last attempted), and whether a fetch is running.
    state: Mutex<(Instant, bool)>,
}

impl Refresher {
    async fn fetch(&self) -> Result<Keys, KeyError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| KeyError::Fetch {
                secret_id: self.secret_id.clone(),
                detail: DisplayErrorContext(&e).to_string(),
            })?;
        let text = out.secret_string().ok_or_else(|| KeyError::Format {
            secret_id: self.secret_id.clone(),
            detail: "the secret has no string value".into(),
        })?;
        Keys::from_document(&self.secret_id, text)
    }
}

pub struct KeyStore {
    current: RwLock<Arc<Keys>>,
    refresher: Option<Refresher>,
}

impl KeyStore {
    pub fn fixed(keys: Keys) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(keys)),
            refresher: None,
        })
    }

    /// Reads the keys now (a cold start fails if it cannot) and keeps them fresh.
    pub async fn from_secrets_manager(
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        ttl: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        let refresher = Refresher {
            client,
            secret_id,
            ttl,
            state: Mutex::new((Instant::now(), false)),
        };
        let keys = refresher.fetch().await?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(keys)),
            refresher: Some(refresher),
        }))
    }

    /// The keys to check a request with. When they are older than the TTL, a refresh starts
    /// in the background; this request and those during the refresh use the current keys.
    pub fn current(self: &Arc<Self>) -> Arc<Keys> {
        let keys = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        if let Some(r) = &self.refresher {
            let mut state = r.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !state.1 && state.0.elapsed() >= r.ttl {
                state.1 = true;
                tokio::spawn(Arc::clone(self).refresh());
            }
        }
        keys
    }

    async fn refresh(self: Arc<Self>) {
        let Some(r) = &self.refresher else { return };
        match r.fetch().await {
            Ok(keys) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                tracing::info!(secret_id = %r.secret_id, "webhook keys refreshed");
            }
            Err(e) => {
                tracing::error!(error = %e, "webhook keys not refreshed; keeping the last good ones")
            }
        }
        // A failed fetch is retried after another TTL, not on every request.
        *r.state.lock().unwrap_or_else(PoisonError::into_inner) = (Instant::now(), false);
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn secret_documents_are_checked() {
        let keys =
            Keys::from_document("s", r#"{"app_secrets":["a","b"],"verify_token":"t"}"#).unwrap();
        assert_eq!(keys.verify_token.expose_secret(), "t");
        for bad in [
            r#"{"app_secrets":[],"verify_token":"t"}"#,
            r#"{"app_secrets":["a"]}"#,
            "plain-text",
            r#"{"app_secrets":[" "],"verify_token":"t"}"#,
            r#"{"app_secrets":"a","verify_token":"t"}"#,
        ] {
            let e = Keys::from_document("igflow/webhook", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("secret igflow/webhook must be JSON"), "{e}");
            assert!(!e.contains("\"a\""), "no secret in the message: {e}");
        }
    }
}
