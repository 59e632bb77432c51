//! Who is calling: Supabase Auth access tokens, verified with the project's JWKS (asymmetric
//! keys) or its HS256 secret, and the development sign-in that mints such tokens locally.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::AppState;
use crate::config::AuthConfig;
use crate::error::ApiError;

/// Supabase's audience and database role for signed-in users.
pub const AUTHENTICATED: &str = "authenticated";
/// A key id the JWKS did not list makes the API re-read it, at most this often.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
const DEV_TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The claims the API relies on; the whole verified claim set goes to Postgres as
/// `request.jwt.claims`, as PostgREST passes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    /// The token's claims as JSON, for `request.jwt.claims`.
    pub claims_json: String,
}

struct Jwks {
    keys: JwkSet,
    fetched: Option<Instant>,
}

pub struct Verifier {
    config: AuthConfig,
    http: reqwest::Client,
    jwks: RwLock<Jwks>,
}

impl Verifier {
    pub async fn new(config: AuthConfig, http: reqwest::Client) -> Result<Self, ApiError> {
        let verifier = Self {
            config,
            http,
            jwks: RwLock::new(Jwks {
                keys: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
        };
        if verifier.config.jwks_url.is_some() {
            verifier.refresh_jwks().await?;
        }
        Ok(verifier)
    }

    pub fn dev_sign_in_enabled(&self) -> bool {
        self.config.dev_sign_in
    }

    async fn refresh_jwks(&self) -> Result<(), ApiError> {
        let Some(url) = &self.config.jwks_url else {
            return Ok(());
        };
        let mut jwks = self.jwks.write().await;
        if jwks.fetched.is_some_and(|t| t.elapsed() < JWKS_REFRESH_MIN) {
            return Ok(());
        }
        let keys: JwkSet = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| ApiError::Unavailable(format!("reading the JWKS at {url}: {e}")))?
            .json()
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("the JWKS at {url} is not a key set: {e}"))
            })?;
        tracing::info!(keys = keys.keys.len(), "JWKS read");
        *jwks = Jwks {
            keys,
            fetched: Some(Instant::now()),
        };
        Ok(())
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_audience(&[AUTHENTICATED]);
        v.set_issuer(&[&self.config.issuer]);
        v.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        v.leeway = 30;
        v
    }

    /// The user a bearer token names, if its signature, issuer, audience, expiry and role
    /// all check out. Errors never echo the token.
    pub async fn verify(&self, token: &str) -> Result<User, ApiError> {
        let refused = |why: &str| ApiError::Unauthorized(format!("the access token {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("is malformed"))?;
        let key = match header.alg {
            Algorithm::HS256 => {
                let secret = self.config.jwt_secret.as_ref().ok_or_else(|| {
                    refused("is signed with a shared secret this API does not use")
                })?;
                DecodingKey::from_secret(secret.expose_secret().as_bytes())
                    .map_err(|_| refused("cannot be checked: the secret is unusable"))?
            }
            Algorithm::ES256 | Algorithm::RS256 | Algorithm::EdDSA => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| refused("names no key id"))?;
                let mut found = self.find_key(kid).await;
                if found.is_none() {
                    // Keys rotate: a new key id is worth one more look.
                    self.refresh_jwks().await?;
                    found = self.find_key(kid).await;
                }
                found.ok_or_else(|| refused("is signed by a key of another project"))?
            }
            _ => return Err(refused("uses an algorithm Supabase does not sign with")),
        };
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &self.validation(header.alg))
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        refused("has expired: sign in again")
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                        refused("is from another project")
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        refused("has a bad signature")
                    }
                    _ => refused("is not valid"),
                })?;
        let claims: Claims =
            serde_json::from_value(data.claims.clone()).map_err(|_| refused("has no user"))?;
        if claims.role != AUTHENTICATED {
            return Err(refused("is not a signed-in user's"));
        }
        Ok(User {
            id: claims.sub,
            email: claims.email,
            claims_json: data.claims.to_string(),
        })
    }

    async fn find_key(&self, kid: &str) -> Option<DecodingKey> {
        let jwks = self.jwks.read().await;
        let jwk = jwks.keys.find(kid)?;
        DecodingKey::from_jwk(jwk).ok()
    }

    /// A development token for `email`: the user id is derived from the address, so signing
    /// in again is the same user. Refused unless `IGFLOW_DEV_SIGN_IN` is set.
    pub fn dev_token(&self, email: &str) -> Result<(Uuid, String), ApiError> {
        if !self.config.dev_sign_in {
            return Err(ApiError::NotFound);
        }
        let secret = self
            .config
            .jwt_secret
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("IGFLOW_JWT_SECRET is not set".into()))?;
        let user = dev_user_id(email);
        let exp = jiff::Timestamp::now().as_second()
            + i64::try_from(DEV_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let claims = serde_json::json!({
            "sub": user, "email": email, "role": AUTHENTICATED, "aud": AUTHENTICATED,
            "iss": self.config.issuer, "exp": exp,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.expose_secret().as_bytes())
                .map_err(|e| ApiError::Internal(format!("the JWT secret is unusable: {e}")))?,
        )
        .map_err(|e| ApiError::Internal(format!("signing a development token: {e}")))?;
        Ok((user, token))
    }
}

/// The development sign-in's user id for an address (what Supabase's `auth.users.id` is).
pub fn dev_user_id(email: &str) -> Uuid {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "sign in: send the access token as Authorization: Bearer".into(),
                )
            })?;
        state.verifier.verify(token).await
    }
}
