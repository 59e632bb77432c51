//! Supabase Auth's admin API, for invitations: `POST /auth/v1/invite` with the project's
//! service-role key, read from Secrets Manager when first needed and kept in memory only
//! (never logged). An address that already has an account is looked up instead of invited.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::config::SupabaseConfig;
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "Supabase's e-mail rate limit was reached: try again later, or raise the limit in the project's Auth settings"
    )]
    RateLimited,
    #[error(
        "Supabase refused the service-role key ({0}): check that IGFLOW_SUPABASE_SERVICE_ROLE_SECRET holds this project's key"
    )]
    KeyRefused(u16),
    #[error("reading the service-role key from Secrets Manager failed, retry: {0}")]
    KeyUnavailable(String),
    #[error("Supabase Auth is unreachable or answered {0}: retry")]
    Upstream(String),
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::RateLimited => Self::RateLimited(e.to_string()),
            AdminError::KeyRefused(_) | AdminError::KeyUnavailable(_) => {
                Self::Unavailable(e.to_string())
            }
            AdminError::Upstream(_) => Self::Upstream(e.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct AuthUser {
    id: Uuid,
    email: Option<String>,
}

#[derive(Deserialize)]
struct UserList {
    users: Vec<AuthUser>,
}

/// GoTrue's error body, either shape (`error_code` without the API version header).
#[derive(Deserialize, Default)]
struct AuthErrorBody {
    #[serde(default)]
    error_code: Option<String>,
}

pub struct SupabaseAdmin {
    url: String,
    secret_id: String,
    http: reqwest::Client,
    secrets: aws_sdk_secretsmanager::Client,
    key: RwLock<Option<SecretString>>,
}

impl SupabaseAdmin {
    /// `None` when no service-role secret is configured: invitations are then unavailable.
    pub fn new(
        config: &SupabaseConfig,
        http: reqwest::Client,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> Option<Self> {
        Some(Self {
            url: config.url.clone(),
            secret_id: config.service_role_secret.clone()?,
            http,
            secrets,
            key: RwLock::new(None),
        })
    }

    async fn key(&self) -> Result<SecretString, AdminError> {
        if let Some(key) = self.key.read().await.as_ref() {
            return Ok(key.clone());
        }
        let key: SecretString = self
            .secrets
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                AdminError::KeyUnavailable(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                )
            })?
            .secret_string()
            .ok_or_else(|| AdminError::KeyUnavailable("the secret has no string value".into()))?
            .trim()
            .into();
        *self.key.write().await = Some(key.clone());
        Ok(key)
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AdminError> {
        let key = self.key().await?;
        let response = request
            .header("apikey", key.expose_secret())
            .bearer_auth(key.expose_secret())
            .send()
            .await
            .map_err(|e| AdminError::Upstream(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            // Maybe rotated: the next call reads the secret again.
            *self.key.write().await = None;
            return Err(AdminError::KeyRefused(status.as_u16()));
        }
        Ok(response)
    }

    /// Invites `email` (Supabase sends the e-mail) and returns the user's id; an address that
    /// already has an account gets no e-mail and is found by address.
    #[tracing::instrument(skip_all)]
    pub async fn invite(&self, email: &str) -> Result<Uuid, AdminError> {
        let response = self
            .call(
                self.http
                    .post(format!("{}/auth/v1/invite", self.url))
                    .json(&serde_json::json!({ "email": email })),
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            let user: AuthUser = response
                .json()
                .await
                .map_err(|e| AdminError::Upstream(format!("an unreadable user ({e})")))?;
            tracing::info!(user = %user.id, "invitation sent");
            return Ok(user.id);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(AdminError::RateLimited);
        }
        let body: AuthErrorBody = response.json().await.unwrap_or_default();
        if body.error_code.as_deref() == Some("email_exists") {
            return self.find(email).await;
        }
        Err(AdminError::Upstream(format!(
            "{status} ({})",
            body.error_code.unwrap_or_default()
        )))
    }

    async fn find(&self, email: &str) -> Result<Uuid, AdminError> {
        let response = self
            .call(
                self.http
                    .get(format!("{}/auth/v1/admin/users", self.url))
                    .query(&[("filter", email), ("per_page", "50")]),
            )
            .await?;
        if !response.status().is_success() {
            return Err(AdminError::Upstream(response.status().to_string()));
        }
        let list: UserList = response
            .json()
            .await
            .map_err(|e| AdminError::Upstream(format!("an unreadable user list ({e})")))?;
        list.users
            .into_iter()
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|u| u.id)
            .ok_or_else(|| {
                AdminError::Upstream("email_exists, yet no user has that address".into())
            })
    }
}
