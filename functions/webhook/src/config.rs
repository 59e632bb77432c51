//! The webhook's configuration, read once at start-up.

use std::net::SocketAddr;

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

#[derive(Debug)]
pub struct WebhookConfig {
    pub listen: Listen,
    pub queue_url: String,
    /// Every secret a delivery may be signed with (rotation, both login flavors' apps).
    pub app_secrets: Vec<SecretString>,
    pub verify_token: SecretString,
    pub max_body_bytes: usize,
}

impl WebhookConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let listen = if env.optional("AWS_LAMBDA_RUNTIME_API").is_some() {
            Listen::Lambda
        } else {
            Listen::Addr(env.parse_or(
                "IGFLOW_WEBHOOK_ADDR",
                DEFAULT_ADDR.parse().map_err(|e| ConfigError::Invalid {
                    var: "IGFLOW_WEBHOOK_ADDR",
                    problem: format!("{e}"),
                })?,
            )?)
        };
        let app_secrets: Vec<SecretString> = env
            .required(
                "IGFLOW_APP_SECRET",
                "set it to the Meta app secret (comma-separated during a rotation)",
            )?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect();
        if app_secrets.is_empty() {
            return Err(ConfigError::Invalid {
                var: "IGFLOW_APP_SECRET",
                problem: "holds no secret".into(),
            });
        }
        Ok(Self {
            listen,
            queue_url: env.required(
                "IGFLOW_QUEUE_URL",
                "set it to the URL of the events SQS queue",
            )?,
            app_secrets,
            verify_token: env.secret(
                "IGFLOW_VERIFY_TOKEN",
                "set it to the verify token entered in Meta's app dashboard",
            )?,
            max_body_bytes: env.parse_or("IGFLOW_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
        })
    }
}
