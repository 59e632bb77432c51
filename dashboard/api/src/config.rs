//! The dashboard API's configuration, read once at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use igflow_core::env::{ConfigError, Env};
use igflow_worker::config::{ClassifierConfig, SecretsConfig, StoreConfig};
use secrecy::SecretString;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` set): behind the REST API, like the webhook.
    Lambda,
    Addr(SocketAddr),
}

/// How signed-in users are recognized: Supabase Auth's access tokens.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `IGFLOW_JWT_ISSUER`: the project's issuer, `https://<project-ref>.supabase.co/auth/v1`.
    /// A token of another project names another issuer and is refused.
    pub issuer: String,
    /// `IGFLOW_JWKS_URL`: the project's signing keys (`<issuer>/.well-known/jwks.json`), for
    /// projects that sign with asymmetric keys (ES256, RS256).
    pub jwks_url: Option<String>,
    /// `IGFLOW_JWT_SECRET`: the project's legacy HS256 secret (and the development sign-in's).
    pub jwt_secret: Option<SecretString>,
    /// `IGFLOW_DEV_SIGN_IN=true`: `POST /api/dev/sign-in` mints a token for any e-mail address.
    /// Only for this machine and tests, where Supabase Auth cannot run; refused unless set.
    pub dev_sign_in: bool,
}

/// The Supabase project whose Auth signs users in (supabase-js in the app) and takes invitations.
#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    /// `IGFLOW_SUPABASE_URL`: the project URL, `https://<project-ref>.supabase.co`.
    pub url: String,
    /// `IGFLOW_SUPABASE_ANON_KEY`: the project's public (anon or publishable) key; the app gets
    /// it from `GET /api/config`, as any Supabase front end ships it.
    pub anon_key: String,
    /// `IGFLOW_SUPABASE_SERVICE_ROLE_SECRET`: the Secrets Manager secret (name or ARN) holding
    /// the service-role key, read when the first invitation goes out. Unset: owners cannot invite.
    pub service_role_secret: Option<String>,
}

/// Business Login for Instagram: the app's credentials and Meta's endpoints.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `IGFLOW_IG_APP_ID`.
    pub app_id: String,
    /// `IGFLOW_IG_APP_SECRET`: exchanges codes, and signs the OAuth `state`.
    pub app_secret: SecretString,
    /// `IGFLOW_OAUTH_REDIRECT_URL`: this API's `/oauth/callback` as registered with Meta.
    pub redirect_url: String,
    /// `IGFLOW_INSTAGRAM_DIALOG_URL` (default `https://www.instagram.com/oauth/authorize`).
    pub dialog_url: String,
    /// `IGFLOW_INSTAGRAM_API_URL` (default `https://api.instagram.com`): the code exchange.
    pub api_url: String,
    /// `IGFLOW_GRAPH_API_URL` (default `https://graph.instagram.com/v24.0`).
    pub graph_url: String,
}

#[derive(Debug)]
pub struct DashboardConfig {
    pub listen: Listen,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    /// `IGFLOW_DASHBOARD_ORIGIN`: the only origin whose scripts may call the API (CORS), and
    /// where the OAuth callback sends the browser back. Unset: same origin only.
    pub origin: Option<String>,
    /// `IGFLOW_DASHBOARD_STATIC_DIR`: the built app (`dashboard/web/dist`), served at `/`.
    pub static_dir: Option<PathBuf>,
    /// Unset (no `IGFLOW_SUPABASE_URL`): only the development sign-in, if enabled.
    pub supabase: Option<SupabaseConfig>,
    /// Unset (no `IGFLOW_IG_APP_ID`): connecting an account answers 503 saying what to set.
    pub oauth: Option<OAuthConfig>,
    pub secrets: SecretsConfig,
    pub classifier: ClassifierConfig,
    /// `IGFLOW_FEED_SECONDS` (default 600): how long one live-feed stream lasts before the app
    /// opens the next. Under Lambda's 15-minute cap on a streamed response, and its timeout.
    pub feed_lifetime: Duration,
}

/// Settings the stack keeps in Secrets Manager instead of the function's configuration: the
/// second variable names the secret (name or ARN) whose string is the first's value.
const FROM_SECRETS_MANAGER: [(&str, &str); 2] = [
    ("DATABASE_URL", "IGFLOW_DATABASE_URL_SECRET_ID"),
    ("IGFLOW_IG_APP_SECRET", "IGFLOW_IG_APP_SECRET_ID"),
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "reading {var} from Secrets Manager ({id}) failed: {reason}; check the secret exists, holds a string, and the function may secretsmanager:GetSecretValue it"
    )]
    Secret {
        var: &'static str,
        id: String,
        reason: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl DashboardConfig {
    /// Reads the configuration once, at cold start: first the settings kept in Secrets
    /// Manager, then everything else from `env`.
    pub async fn load(
        env: Env,
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, LoadError> {
        let mut values = HashMap::new();
        for (var, id_var) in FROM_SECRETS_MANAGER {
            let Some(id) = env.optional(id_var) else {
                continue;
            };
            let failed = |reason: String| LoadError::Secret {
                var,
                id: id.clone(),
                reason,
            };
            let value = secrets
                .get_secret_value()
                .secret_id(&id)
                .send()
                .await
                .map_err(|e| {
                    failed(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                })?
                .secret_string()
                .ok_or_else(|| failed("it holds no string".into()))?
                .trim()
                .to_owned();
            values.insert(var.to_owned(), value);
        }
        Ok(Self::from_env(&env.overlaid(values))?)
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let listen = if env.optional("AWS_LAMBDA_RUNTIME_API").is_some() {
            Listen::Lambda
        } else {
            let default = SocketAddr::from(([127, 0, 0, 1], 8090));
            Listen::Addr(env.parse_or("IGFLOW_DASHBOARD_ADDR", default)?)
        };
        let auth = AuthConfig {
            issuer: env.required(
                "IGFLOW_JWT_ISSUER",
                "set it to the Supabase project's issuer, https://<project-ref>.supabase.co/auth/v1",
            )?,
            jwks_url: env.optional("IGFLOW_JWKS_URL"),
            jwt_secret: env.optional("IGFLOW_JWT_SECRET").map(SecretString::from),
            dev_sign_in: env.parse_or("IGFLOW_DEV_SIGN_IN", false)?,
        };
        if auth.jwks_url.is_none() && auth.jwt_secret.is_none() {
            return Err(ConfigError::Missing {
                var: "IGFLOW_JWKS_URL",
                hint: "set it (or IGFLOW_JWT_SECRET) so signed-in users can be recognized",
            });
        }
        if auth.dev_sign_in && auth.jwt_secret.is_none() {
            return Err(ConfigError::Missing {
                var: "IGFLOW_JWT_SECRET",
                hint: "the development sign-in signs its tokens with it",
            });
        }
        let supabase = match env.optional("IGFLOW_SUPABASE_URL") {
            None => None,
            Some(url) => Some(SupabaseConfig {
                url: url.trim_end_matches('/').to_owned(),
                anon_key: env.required(
                    "IGFLOW_SUPABASE_ANON_KEY",
                    "the Supabase project's anon (publishable) key, for the app's sign-in",
                )?,
                service_role_secret: env.optional("IGFLOW_SUPABASE_SERVICE_ROLE_SECRET"),
            }),
        };
        let oauth = match env.optional("IGFLOW_IG_APP_ID") {
            None => None,
            Some(app_id) => Some(OAuthConfig {
                app_id,
                app_secret: env.secret(
                    "IGFLOW_IG_APP_SECRET",
                    "the Instagram app's secret, to exchange OAuth codes",
                )?,
                redirect_url: env.required(
                    "IGFLOW_OAUTH_REDIRECT_URL",
                    "this API's /oauth/callback URL, as registered in the Meta app",
                )?,
                dialog_url: env
                    .optional("IGFLOW_INSTAGRAM_DIALOG_URL")
                    .unwrap_or_else(|| "https://www.instagram.com/oauth/authorize".into()),
                api_url: env
                    .optional("IGFLOW_INSTAGRAM_API_URL")
                    .unwrap_or_else(|| "https://api.instagram.com".into()),
                graph_url: env
                    .optional("IGFLOW_GRAPH_API_URL")
                    .unwrap_or_else(|| "https://graph.instagram.com/v24.0".into()),
            }),
        };
        Ok(Self {
            listen,
            store: StoreConfig::from_env(env)?,
            auth,
            origin: env.optional("IGFLOW_DASHBOARD_ORIGIN"),
            static_dir: env
                .optional("IGFLOW_DASHBOARD_STATIC_DIR")
                .map(PathBuf::from),
            supabase,
            oauth,
            secrets: SecretsConfig::from_env(env)?,
            classifier: ClassifierConfig::from_env(env)?,
            feed_lifetime: Duration::from_secs(env.parse_or("IGFLOW_FEED_SECONDS", 600)?),
        })
    }
}
