//! The dashboard API: what PostgREST would do for the dashboard, plus what needs secrets
//! (connecting accounts, tokens, the keyword tester). Every query runs under the caller's
//! Row Level Security. One axum [`Router`]: under `lambda_http` in AWS, on a port locally,
//! where it also serves the built app.

pub mod accounts;
pub mod auth;
pub mod campaigns;
pub mod config;
pub mod contacts;
pub mod db;
pub mod error;
pub mod feed;
pub mod members;
pub mod results;
pub mod supabase;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use igflow_worker::clients::secrets::Tokens;
use igflow_worker::pipeline::classify::IntentClassifier;
use serde::Deserialize;
use sqlx::PgPool;
use tower_http::cors::CorsLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::auth::Verifier;
use crate::config::{DashboardConfig, Listen, OAuthConfig, SupabaseConfig};
use crate::error::ApiError;
use crate::supabase::SupabaseAdmin;

pub struct AppState {
    pub pool: PgPool,
    pub verifier: Verifier,
    pub tokens: Tokens,
    pub classifier: IntentClassifier,
    pub http: reqwest::Client,
    pub feed: tokio::sync::broadcast::Sender<i64>,
    /// How long one live-feed stream lasts.
    pub feed_lifetime: Duration,
    pub origin: Option<String>,
    pub config_oauth: Option<OAuthConfig>,
    pub supabase: Option<SupabaseConfig>,
    /// Invitations through Supabase Auth; `None` without a service-role secret.
    pub supabase_admin: Option<SupabaseAdmin>,
}

impl AppState {
    pub async fn new(
        config: &DashboardConfig,
        pool: PgPool,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            verifier: Verifier::new(config.auth.clone(), http.clone()).await?,
            supabase_admin: config
                .supabase
                .as_ref()
                .and_then(|s| SupabaseAdmin::new(s, http.clone(), secrets.clone())),
            supabase: config.supabase.clone(),
            tokens: Tokens::new(secrets, config.secrets.clone()),
            classifier: IntentClassifier::new(&config.classifier, None, Arc::default())?,
            feed: feed::listen(pool.clone()),
            feed_lifetime: config.feed_lifetime,
            pool,
            http,
            origin: config.origin.clone(),
            config_oauth: config.oauth.clone(),
        })
    }
}

#[derive(Debug, Deserialize)]
struct SignInBody {
    email: String,
}

/// The development sign-in (`IGFLOW_DEV_SIGN_IN=true` only): a token for any address.
async fn dev_sign_in(
    State(state): State<Arc<AppState>>,
    Json(body): Json<SignInBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (user, token) = state.verifier.dev_token(&body.email)?;
    Ok(Json(
        serde_json::json!({ "access_token": token, "user_id": user, "email": body.email }),
    ))
}

/// How the app signs people in: Supabase Auth (its URL and public key, for supabase-js)
/// and/or the development sign-in.
async fn sign_in_settings(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "dev_sign_in": state.verifier.dev_sign_in_enabled(),
        "supabase": state.supabase.as_ref().map(|s| serde_json::json!({ "url": s.url, "anon_key": s.anon_key })),
    }))
}

pub fn app(state: Arc<AppState>, static_dir: Option<&std::path::Path>) -> Router {
    let api = Router::new()
        .route("/api/config", get(sign_in_settings))
        .route("/api/dev/sign-in", post(dev_sign_in))
        .route("/api/me", get(members::me))
        .route(
            "/api/tenants/{tenant}/members",
            get(members::list).post(members::invite),
        )
        .route(
            "/api/tenants/{tenant}/members/{user}",
            put(members::set_role).delete(members::remove),
        )
        .route("/api/accounts", get(accounts::list))
        .route("/api/accounts/connect", post(accounts::connect))
        .route("/api/accounts/{id}/status", post(accounts::set_status))
        .route("/oauth/callback", get(accounts::callback))
        .route(
            "/api/campaigns",
            get(campaigns::list).post(campaigns::create),
        )
        .route(
            "/api/campaigns/{id}",
            get(campaigns::get).put(campaigns::update),
        )
        .route("/api/campaigns/{id}/status", post(campaigns::set_status))
        .route("/api/campaigns/{id}/results", get(results::get))
        .route("/api/tester", post(campaigns::test))
        .route("/api/contacts", get(contacts::list))
        .route("/api/contacts/{id}", post(contacts::set_opt_out))
        .route("/api/feed", get(feed::stream))
        .with_state(Arc::clone(&state));
    let api = match &state.origin {
        Some(origin) => match HeaderValue::from_str(origin) {
            Ok(origin) => api.layer(
                CorsLayer::new()
                    .allow_origin(origin)
                    .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                    .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                    .max_age(Duration::from_secs(600)),
            ),
            Err(_) => {
                tracing::error!("IGFLOW_DASHBOARD_ORIGIN is not a valid origin: CORS stays closed");
                api
            }
        },
        None => api,
    };
    match static_dir {
        // The single-page app: unknown paths get index.html.
        Some(dir) => api.fallback_service(
            ServeDir::new(dir).not_found_service(ServeFile::new(dir.join("index.html"))),
        ),
        None => api,
    }
}

/// Runs the API where the configuration says, until the process is asked to stop.
pub async fn run(config: DashboardConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<()> {
    let store = igflow_worker::clients::store::Store::connect(&config.store).await?;
    let state = Arc::new(
        AppState::new(
            &config,
            store.pool().clone(),
            aws_sdk_secretsmanager::Client::new(aws),
        )
        .await?,
    );
    let app = app(state, config.static_dir.as_deref());
    match config.listen {
        // Streamed (API Gateway's STREAM transfer mode), so the live feed reaches the browser
        // as it happens; every other answer is a short stream.
        Listen::Lambda => lambda_http::run_with_streaming_response(app)
            .await
            .map_err(|e| anyhow::anyhow!(e)),
        Listen::Addr(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "dashboard listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(igflow_core::runtime::shutdown_signal())
                .await?;
            Ok(())
        }
    }
}
