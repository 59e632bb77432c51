//! The webhook's configuration, read once at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use igflow_core::env::{ConfigError, Env};
use secrecy::SecretString;

/// Meta sends up to 1,000 updates in one POST; a few MiB covers that with room to spare.
const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Where the Router runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Inside AWS Lambda, driven by `lambda_http`.
    Lambda,
    /// A plain HTTP server (local runs, tests, load tests).
    Addr(SocketAddr),
}

/// Where the app secrets and the verify token come from.
#[derive(Debug)]
pub enum KeySource {
    /// Fixed values from the environment (`IGFLOW_APP_SECRET`, `IGFLOW_VERIFY_TOKEN`).
    Env {
        app_secrets: Vec<SecretString>,
        verify_token: SecretString,
    },
    /// A Secrets Manager secret, read at start-up and refreshed every `refresh`.
    SecretsManager {
        secret_id: String,
        refresh: Duration,
    },
}

#[derive(Debug)]
pub struct WebhookConfig {
    pub listen: Listen,
    pub queue_url: String,
    pub keys: KeySource,
    pub max_body_bytes: usize,
    /// How often a server writes its metrics (Lambda writes them after every invocation).
    pub metrics_interval: Duration,
}

impl WebhookConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let listen = if env.optional("AWS_LAMBDA_RUNTIME_API").is_some() {
            Listen::Lambda
        } else {
            let default = DEFAULT_ADDR.parse().map_err(|e| ConfigError::Invalid {
                var: "IGFLOW_WEBHOOK_ADDR",
                problem: format!("{e}"),
            })?;
            Listen::Addr(env.parse_or("IGFLOW_WEBHOOK_ADDR", default)?)
        };
        let keys = match env.optional("IGFLOW_WEBHOOK_SECRET_ID") {
            Some(secret_id) => KeySource::SecretsManager {
                secret_id,
                refresh: Duration::from_secs(env.parse_or("IGFLOW_SECRET_REFRESH_SECONDS", 300)?),
            },
            None => KeySource::Env {
                app_secrets: app_secrets(&env.required(
                    "IGFLOW_APP_SECRET",
                    "set it to the Meta app secret (comma-separated during a rotation), or set IGFLOW_WEBHOOK_SECRET_ID",
                )?)?,
                verify_token: env.secret(
                    "IGFLOW_VERIFY_TOKEN",
                    "set it to the verify token entered in Meta's app dashboard, or set IGFLOW_WEBHOOK_SECRET_ID",
                )?,
            },
        };
        Ok(Self {
            listen,
            queue_url: env.required(
                "IGFLOW_QUEUE_URL",
                "set it to the URL of the events SQS queue",
            )?,
            keys,
            max_body_bytes: env.parse_or("IGFLOW_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            metrics_interval: Duration::from_secs(env.parse_or("IGFLOW_METRICS_SECONDS", 10)?),
        })
    }
}

fn app_secrets(raw: &str) -> Result<Vec<SecretString>, ConfigError> {
    let secrets: Vec<SecretString> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::Invalid {
            var: "IGFLOW_APP_SECRET",
            problem: "holds no secret".into(),
        });
    }
    Ok(secrets)
}
