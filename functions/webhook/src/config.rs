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
    /// The events queue's DLQ: items SQS refuses for good go there.
    pub dlq_url: String,
    pub keys: KeySource,
    pub max_body_bytes: usize,
    /// How often a server writes its metrics (Lambda writes them after every invocation).
    pub metrics_interval: Duration,
    /// The page Meta links a user to after a data deletion request (`?code=` is appended).
    /// Without it the data deletion callback answers 503.
    pub deletion_status_url: Option<String>,
    /// The S3 bucket every verified delivery is kept in (`igflow-worker replay --from --to`
    /// reads it); without it nothing is archived.
    pub archive_bucket: Option<String>,
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
            dlq_url: env.required(
                "IGFLOW_DLQ_URL",
                "set it to the URL of the events queue's DLQ (items SQS refuses for good go there)",
            )?,
            keys,
            max_body_bytes: env.parse_or("IGFLOW_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            metrics_interval: Duration::from_secs(env.parse_or("IGFLOW_METRICS_SECONDS", 10)?),
            deletion_status_url: env
                .optional("IGFLOW_DELETION_STATUS_URL")
                .map(deletion_status_url)
                .transpose()?,
            archive_bucket: env.optional("IGFLOW_ARCHIVE_BUCKET"),
        })
    }
}

/// Meta shows the URL to the user: an absolute http(s) URL without a fragment (the code is
/// appended as a query parameter).
fn deletion_status_url(raw: String) -> Result<String, ConfigError> {
    let invalid = |problem: &str| ConfigError::Invalid {
        var: "IGFLOW_DELETION_STATUS_URL",
        problem: format!("{raw:?} {problem}"),
    };
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with https:// (or http:// locally)"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid("has no host"));
    }
    if raw.contains('#') || raw.chars().any(char::is_whitespace) {
        return Err(invalid("must not contain '#' or whitespace"));
    }
    Ok(raw)
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(extra: &[(&str, &str)]) -> Result<WebhookConfig, ConfigError> {
        let vars: HashMap<String, String> = [
            ("IGFLOW_APP_SECRET", "s"),
            ("IGFLOW_VERIFY_TOKEN", "t"),
            ("IGFLOW_QUEUE_URL", "http://q"),
            ("IGFLOW_DLQ_URL", "http://dlq"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        WebhookConfig::from_env(&Env::from_map(vars))
    }

    #[test]
    fn the_deletion_status_url_is_optional_and_checked() {
        assert_eq!(config(&[]).unwrap().deletion_status_url, None);
        let url = "https://app.example/data-deletion?lang=en";
        assert_eq!(
            config(&[("IGFLOW_DELETION_STATUS_URL", url)])
                .unwrap()
                .deletion_status_url
                .as_deref(),
            Some(url)
        );
        for bad in [
            "app.example/status",
            "https://",
            "https://a.example/#s",
            "ftp://a",
        ] {
            let e = config(&[("IGFLOW_DELETION_STATUS_URL", bad)]).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("IGFLOW_DELETION_STATUS_URL is invalid"),
                "{bad}: {e}"
            );
        }
    }
}
