//! The dashboard API in-process against a test environment, a JWKS server standing in for a
//! Supabase project's keys, and tokens signed the ways Supabase signs them (and forged ones).

use std::collections::HashMap;
use std::sync::Arc;

use igflow_core::env::Env;
use igflow_dashboard::AppState;
use igflow_dashboard::config::DashboardConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::TestEnv;
use crate::supabase_auth::{ANON_KEY, SupabaseAuthServer, service_role_key};

pub const ISSUER: &str = "https://testproject.supabase.co/auth/v1";
pub const JWT_SECRET: &str = "test-project-jwt-secret-at-least-32-bytes";
pub const APP_ID: &str = "990000000000001";
pub const APP_SECRET: &str = "test-app-secret";
/// The project's asymmetric signing key (a P-256 key made for these tests only).
pub const EC_KID: &str = "test-key-1";
const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggoKuQs6G3/9CdJu6
f7Bq6IBAcJf+IGwFOmDw+Zsb002hRANCAAQWNk5ghChqSEG1qeMKA1vOai8SE2Nh
w8lrE0tzkfezx2QDPkbu3NhK1pXg1/BaZEEL+iv1V5qG6agHtzGQmVZS
-----END PRIVATE KEY-----
";
const EC_X: &str = "FjZOYIQoakhBtanjCgNbzmovEhNjYcPJaxNLc5H3s8c";
const EC_Y: &str = "ZAM-Ru7c2ErWleDX8FpkQQv6K_VXmobpqAe3MZCZVlI";

pub struct Dashboard {
    pub url: String,
    pub http: reqwest::Client,
    /// The Supabase project's Auth: its JWKS verifies tokens, its admin API takes invitations.
    pub auth: SupabaseAuthServer,
}

/// The project's public signing keys, as its JWKS endpoint lists them.
pub fn jwks() -> Value {
    json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": EC_KID, "alg": "ES256", "use": "sig", "x": EC_X, "y": EC_Y,
    }] })
}

/// Stores the service-role key where the API reads it for Supabase's admin API (invitations).
pub async fn store_service_role_key(env: &TestEnv) -> anyhow::Result<String> {
    let name = format!("{}supabase-service-role", env.secrets_prefix);
    let created = aws_sdk_secretsmanager::Client::new(&env.aws)
        .create_secret()
        .name(&name)
        .secret_string(service_role_key())
        .send()
        .await;
    match created {
        // A second API on the same environment: the key is the same.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            Ok(name)
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(name),
    }
}

impl Dashboard {
    /// The API on a free port with the development sign-in on, Supabase Auth (the test server
    /// of [`crate::supabase_auth`]) for keys and invitations, OAuth pointed at the Graph test
    /// server; `overrides` replace any variable (an empty value removes it), for example
    /// `IGFLOW_DASHBOARD_STATIC_DIR` to serve the built app.
    pub async fn start(env: &TestEnv, overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let auth = SupabaseAuthServer::start().await?;
        let mut vars: HashMap<String, String> = [
            // The API sets role authenticated per request, so it connects as a role that may
            // (the owner here; PostgREST's authenticator on Supabase), not as the worker.
            ("DATABASE_URL", env.admin_database_url.clone()),
            ("IGFLOW_JWT_ISSUER", ISSUER.into()),
            ("IGFLOW_JWT_SECRET", JWT_SECRET.into()),
            ("IGFLOW_JWKS_URL", auth.jwks_url()),
            ("IGFLOW_SUPABASE_URL", auth.url.clone()),
            ("IGFLOW_SUPABASE_ANON_KEY", ANON_KEY.into()),
            (
                "IGFLOW_SUPABASE_SERVICE_ROLE_SECRET",
                store_service_role_key(env).await?,
            ),
            ("IGFLOW_DEV_SIGN_IN", "true".into()),
            ("IGFLOW_IG_APP_ID", APP_ID.into()),
            ("IGFLOW_IG_APP_SECRET", APP_SECRET.into()),
            ("IGFLOW_OAUTH_REDIRECT_URL", format!("{url}/oauth/callback")),
            (
                "IGFLOW_INSTAGRAM_DIALOG_URL",
                format!("{}/oauth/authorize", env.graph.url),
            ),
            ("IGFLOW_INSTAGRAM_API_URL", env.graph.url.clone()),
            ("IGFLOW_GRAPH_API_URL", env.graph.url.clone()),
            ("IGFLOW_SECRETS_PREFIX", env.secrets_prefix.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in overrides {
            if v.is_empty() {
                vars.remove(*k);
            } else {
                vars.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        env.graph
            .oauth_app(APP_ID, APP_SECRET, &format!("{url}/oauth/callback"));
        let config = DashboardConfig::from_env(&Env::from_map(vars))?;
        let state = AppState::new(
            &config,
            env.store.pool().clone(),
            aws_sdk_secretsmanager::Client::new(&env.aws),
        )
        .await?;
        let app = igflow_dashboard::app(Arc::new(state), config.static_dir.as_deref());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            auth,
        })
    }

    /// Signs in with the development sign-in.
    pub async fn sign_in(&self, email: &str) -> anyhow::Result<(Uuid, String)> {
        let answer: Value = self
            .http
            .post(format!("{}/api/dev/sign-in", self.url))
            .json(&json!({ "email": email }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let user = answer["user_id"].as_str().unwrap_or_default().parse()?;
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((user, token))
    }

    /// `method path` with `token`, returning the status and the JSON body (null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Supabase-shaped claims for `user`, valid for an hour.
pub fn claims(user: Uuid, issuer: &str, exp_offset_seconds: i64) -> Value {
    json!({
        "sub": user, "role": "authenticated", "aud": "authenticated", "iss": issuer,
        "exp": jiff::Timestamp::now().as_second() + exp_offset_seconds,
        "email": "someone@example.com",
    })
}

pub fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key"),
    )
    .expect("signing")
}

/// Signed with the project's asymmetric key, under `kid`.
pub fn es256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("the test key"),
    )
    .expect("signing")
}

/// Makes `user` a member of the tenant `slug` with `role`, as an owner would in SQL.
pub async fn add_member(env: &TestEnv, slug: &str, user: Uuid, role: &str) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "insert into memberships (tenant_id, user_id, role) select id, $2, $3 from tenants where slug = $1
         returning tenant_id",
    )
    .bind(slug)
    .bind(user)
    .bind(role)
    .fetch_one(env.store.pool())
    .await?)
}
