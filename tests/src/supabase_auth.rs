//! Supabase Auth (GoTrue) as a Supabase project runs it, for what supabase-js and the dashboard
//! API call: `POST /auth/v1/token` (`grant_type=password` and `refresh_token`, refresh tokens
//! rotated), `GET /auth/v1/user`, `POST /auth/v1/logout`, the JWKS at
//! `/auth/v1/.well-known/jwks.json`, and the admin endpoints `POST /auth/v1/invite` and
//! `GET /auth/v1/admin/users`. Access tokens are ES256 with Supabase's claims; errors have
//! GoTrue's two shapes (`{"code","message"}` when the client sends
//! `X-Supabase-Api-Version: 2024-01-01`, as supabase-js does, else `{"code","error_code","msg"}`);
//! the API gateway's `apikey` check answers as Kong does. CORS is open, as on supabase.co.
//! The links it mails (invitations, password recovery) are in [`links`].

mod links;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

use crate::dashboard::{EC_KID, ISSUER, JWT_SECRET, es256, hs256, jwks};

/// The project's publishable (anon) key: public, it ships in the app.
pub const ANON_KEY: &str = "sb_publishable_test_project_anon_key";
const API_VERSION: &str = "2024-01-01";
const API_VERSION_HEADER: &str = "x-supabase-api-version";

/// The project's service-role key: a JWT with role `service_role`, signed with the project's
/// JWT secret, as Supabase issues it.
pub fn service_role_key() -> String {
    hs256(
        &json!({ "iss": "supabase", "ref": "testproject", "role": "service_role",
                 "iat": 1_700_000_000, "exp": 4_000_000_000_i64 }),
        JWT_SECRET,
    )
}

struct AuthUser {
    id: Uuid,
    email: String,
    password: Option<String>,
    invited_at: Option<String>,
    confirmed_at: Option<String>,
    created_at: String,
}

impl AuthUser {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "aud": "authenticated", "role": "authenticated", "email": self.email,
            "email_confirmed_at": self.confirmed_at, "confirmed_at": self.confirmed_at,
            "invited_at": self.invited_at, "phone": "",
            "app_metadata": { "provider": "email", "providers": ["email"] },
            "user_metadata": {}, "identities": [], "is_anonymous": false,
            "created_at": self.created_at, "updated_at": self.created_at,
        })
    }
}

#[derive(Default)]
struct AuthState {
    users: Vec<AuthUser>,
    /// Refresh token → (user, session, revoked).
    refresh_tokens: HashMap<String, (Uuid, Uuid, bool)>,
    /// Sessions signed out: their access tokens stop working at `/user`.
    ended_sessions: Vec<Uuid>,
    /// Access tokens live this long (GoTrue's `JWT_EXP`).
    expires_in: i64,
    /// Invitation e-mails allowed before `over_email_send_rate_limit`.
    invite_budget: Option<usize>,
    invited: Vec<String>,
    /// Every call, as `endpoint[:detail]`, for tests to assert on.
    calls: Vec<String>,
    /// The project URL, for the links it mails.
    url: String,
    /// GoTrue's `SITE_URL`: where a link sends the browser when the caller names no
    /// `redirect_to`.
    site_url: String,
    /// Mailed links by token.
    links: HashMap<String, links::Link>,
    /// Mails sent: (address, kind, link).
    mailbox: Vec<(String, &'static str, String)>,
}

#[derive(Clone)]
pub struct SupabaseAuthServer {
    /// The project URL (`SUPABASE_URL`): Auth is under `/auth/v1`.
    pub url: String,
    state: Arc<Mutex<AuthState>>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl SupabaseAuthServer {
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(AuthState {
            expires_in: 3600,
            ..AuthState::default()
        }));
        let app = Router::new()
            .route("/auth/v1/token", post(token))
            .route("/auth/v1/user", get(user))
            .route("/auth/v1/logout", post(logout))
            .route(
                "/auth/v1/.well-known/jwks.json",
                get(|| std::future::ready(Json(jwks()))),
            )
            .route("/auth/v1/invite", post(invite))
            .route("/auth/v1/admin/users", get(admin_users))
            .route("/auth/v1/recover", post(links::recover))
            .route("/auth/v1/verify", get(links::verify))
            .route("/auth/v1/user", axum::routing::put(links::update_user))
            .route("/mailbox/{address}", get(links::mailbox))
            .layer(
                CorsLayer::new()
                    .allow_origin(Any)
                    .allow_methods(Any)
                    .allow_headers(Any)
                    .expose_headers([HeaderName::from_static(API_VERSION_HEADER)]),
            )
            .with_state(Arc::clone(&state));
        let url = crate::serve_local(app, 0).await?;
        {
            let mut s = lock(&state);
            s.url.clone_from(&url);
            s.site_url.clone_from(&url);
        }
        Ok(Self { url, state })
    }

    /// The project's Site URL (Auth's URL Configuration): where mailed links land.
    pub fn site_url(&self, url: &str) {
        self.lock().site_url = url.to_owned();
    }

    /// The links mailed to `email` (invitations, recoveries), oldest first.
    pub fn mails(&self, email: &str) -> Vec<String> {
        let email = email.to_lowercase();
        self.lock()
            .mailbox
            .iter()
            .filter(|(to, _, _)| *to == email)
            .map(|(_, _, link)| link.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, AuthState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/auth/v1/.well-known/jwks.json", self.url)
    }

    /// A confirmed user who signs in with `password`.
    pub fn add_user(&self, email: &str, password: &str) -> Uuid {
        let id = Uuid::new_v4();
        self.lock().users.push(AuthUser {
            id,
            email: email.to_lowercase(),
            password: Some(password.to_owned()),
            invited_at: None,
            confirmed_at: Some(now()),
            created_at: now(),
        });
        id
    }

    /// Access tokens issued from now on live `seconds`.
    pub fn token_lifetime(&self, seconds: i64) {
        self.lock().expires_in = seconds;
    }

    /// Only `n` more invitation e-mails go out before the project's e-mail rate limit.
    pub fn invite_budget(&self, n: usize) {
        self.lock().invite_budget = Some(n);
    }

    pub fn invited(&self) -> Vec<String> {
        self.lock().invited.clone()
    }

    pub fn user_id(&self, email: &str) -> Option<Uuid> {
        let email = email.to_lowercase();
        self.lock()
            .users
            .iter()
            .find(|u| u.email == email)
            .map(|u| u.id)
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }
}

type Shared = Arc<Mutex<AuthState>>;

fn lock(state: &Shared) -> MutexGuard<'_, AuthState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// GoTrue's error, in the shape the caller's API version asks for.
fn error(headers: &HeaderMap, status: StatusCode, code: &str, message: &str) -> Response {
    let versioned = headers
        .get(API_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= API_VERSION);
    if versioned {
        let mut response =
            (status, Json(json!({ "code": code, "message": message }))).into_response();
        response.headers_mut().insert(
            HeaderName::from_static(API_VERSION_HEADER),
            HeaderValue::from_static(API_VERSION),
        );
        response
    } else {
        (
            status,
            Json(json!({ "code": status.as_u16(), "error_code": code, "msg": message })),
        )
            .into_response()
    }
}

/// The API gateway in front of Auth: no valid `apikey`, no entry (Kong's shape).
fn gateway(headers: &HeaderMap) -> Option<Response> {
    match headers.get("apikey").and_then(|v| v.to_str().ok()) {
        Some(key) if key == ANON_KEY || key == service_role_key() => None,
        Some(_) => Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key." })),
        )
            .into_response()),
        None => Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "No API key found in request", "hint": "No `apikey` request header or url param was found." })),
        )
            .into_response()),
    }
}

/// Past the gateway (and, for `admin`, holding the service-role key): the state, with the
/// call recorded.
fn admit<'a>(
    state: &'a Shared,
    headers: &HeaderMap,
    admin: bool,
    call: String,
) -> Result<MutexGuard<'a, AuthState>, Box<Response>> {
    if let Some(refused) = gateway(headers) {
        return Err(Box::new(refused));
    }
    if admin {
        match bearer(headers) {
            Some(token) if token == service_role_key() => {}
            None => {
                return Err(Box::new(error(
                    headers,
                    StatusCode::UNAUTHORIZED,
                    "no_authorization",
                    "This endpoint requires a valid Bearer token",
                )));
            }
            Some(_) => {
                return Err(Box::new(error(
                    headers,
                    StatusCode::FORBIDDEN,
                    "not_admin",
                    "User not allowed",
                )));
            }
        }
    }
    let mut state = lock(state);
    state.calls.push(call);
    Ok(state)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn session(state: &mut AuthState, user: usize, session_id: Uuid) -> Value {
    let u = &state.users[user];
    let iat = jiff::Timestamp::now().as_second();
    let exp = iat + state.expires_in;
    let claims = json!({
        "iss": ISSUER, "sub": u.id, "aud": "authenticated", "exp": exp, "iat": iat,
        "email": u.email, "phone": "", "role": "authenticated", "aal": "aal1",
        "amr": [{ "method": "password", "timestamp": iat }], "session_id": session_id,
        "is_anonymous": false, "app_metadata": { "provider": "email", "providers": ["email"] },
        "user_metadata": {},
    });
    let refresh = format!("rt-{}", Uuid::new_v4().simple());
    state
        .refresh_tokens
        .insert(refresh.clone(), (u.id, session_id, false));
    json!({
        "access_token": es256(&claims, EC_KID), "token_type": "bearer",
        "expires_in": state.expires_in, "expires_at": exp, "refresh_token": refresh,
        "user": u.json(),
    })
}

#[derive(Deserialize)]
struct Grant {
    grant_type: String,
}

#[derive(Deserialize, Default)]
struct TokenBody {
    email: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

async fn token(
    State(state): State<Shared>,
    Query(grant): Query<Grant>,
    headers: HeaderMap,
    Json(body): Json<TokenBody>,
) -> Response {
    let mut state = match admit(
        &state,
        &headers,
        false,
        format!("token:{}", grant.grant_type),
    ) {
        Ok(state) => state,
        Err(refused) => return *refused,
    };
    match grant.grant_type.as_str() {
        "password" => {
            let email = body.email.unwrap_or_default().to_lowercase();
            let found = state.users.iter().position(|u| {
                u.email == email && u.password.is_some() && u.password == body.password
            });
            match found {
                Some(i) => Json(session(&mut state, i, Uuid::new_v4())).into_response(),
                None => error(
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "invalid_credentials",
                    "Invalid login credentials",
                ),
            }
        }
        "refresh_token" => {
            let presented = body.refresh_token.unwrap_or_default();
            match state.refresh_tokens.get(&presented).copied() {
                None => error(
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                ),
                Some((_, session_id, _)) if state.ended_sessions.contains(&session_id) => error(
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                ),
                Some((_, _, true)) => error(
                    &headers,
                    StatusCode::BAD_REQUEST,
                    "refresh_token_already_used",
                    "Invalid Refresh Token: Already Used",
                ),
                Some((user, session_id, false)) => {
                    state
                        .refresh_tokens
                        .insert(presented, (user, session_id, true));
                    match state.users.iter().position(|u| u.id == user) {
                        Some(i) => Json(session(&mut state, i, session_id)).into_response(),
                        None => error(
                            &headers,
                            StatusCode::NOT_FOUND,
                            "user_not_found",
                            "User not found",
                        ),
                    }
                }
            }
        }
        _ => error(
            &headers,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "unsupported_grant_type",
        ),
    }
}

/// The claims of a valid access token of this project, or GoTrue's 403 `bad_jwt`.
fn access_claims(headers: &HeaderMap) -> Result<Value, Box<Response>> {
    let Some(token) = bearer(headers) else {
        return Err(Box::new(error(
            headers,
            StatusCode::UNAUTHORIZED,
            "no_authorization",
            "This endpoint requires a valid Bearer token",
        )));
    };
    let jwk = jwks()["keys"][0].clone();
    let key = DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default(),
    );
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["authenticated"]);
    key.and_then(|key| jsonwebtoken::decode::<Value>(token, &key, &validation))
        .map(|data| data.claims)
        .map_err(|e| {
            Box::new(error(
                headers,
                StatusCode::FORBIDDEN,
                "bad_jwt",
                &format!("invalid JWT: unable to parse or verify signature, {e}"),
            ))
        })
}

async fn user(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (claims, state) = match admit(&state, &headers, false, "user".into())
        .and_then(|state| Ok((access_claims(&headers)?, state)))
    {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let session_id: Option<Uuid> = claims["session_id"].as_str().and_then(|s| s.parse().ok());
    if session_id.is_some_and(|s| state.ended_sessions.contains(&s)) {
        return error(
            &headers,
            StatusCode::FORBIDDEN,
            "session_not_found",
            "Session from session_id claim in JWT does not exist",
        );
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    match state.users.iter().find(|u| u.id.to_string() == sub) {
        Some(u) => Json(u.json()).into_response(),
        None => error(
            &headers,
            StatusCode::NOT_FOUND,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        ),
    }
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (claims, mut state) = match admit(&state, &headers, false, "logout".into())
        .and_then(|state| Ok((access_claims(&headers)?, state)))
    {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    if let Some(session_id) = claims["session_id"].as_str().and_then(|s| s.parse().ok()) {
        state.ended_sessions.push(session_id);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct InviteBody {
    email: String,
}

async fn invite(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(redirect): Query<links::RedirectQuery>,
    Json(body): Json<InviteBody>,
) -> Response {
    let email = body.email.trim().to_lowercase();
    let mut state = match admit(&state, &headers, true, format!("invite:{email}")) {
        Ok(state) => state,
        Err(refused) => return *refused,
    };
    if state
        .users
        .iter()
        .any(|u| u.email == email && u.confirmed_at.is_some())
    {
        return error(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_exists",
            "A user with this email address has already been registered",
        );
    }
    if state.invite_budget == Some(0) {
        return error(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            "over_email_send_rate_limit",
            "email rate limit exceeded",
        );
    }
    if let Some(budget) = state.invite_budget.as_mut() {
        *budget -= 1;
    }
    state.invited.push(email.clone());
    // Inviting an address invited before sends the e-mail again to the same user.
    let i = match state.users.iter().position(|u| u.email == email) {
        Some(i) => i,
        None => {
            state.users.push(AuthUser {
                id: Uuid::new_v4(),
                email,
                password: None,
                invited_at: None,
                confirmed_at: None,
                created_at: now(),
            });
            state.users.len() - 1
        }
    };
    state.users[i].invited_at = Some(now());
    let target = redirect.target(&state);
    links::mail(&mut state, i, "invite", target);
    Json(state.users[i].json()).into_response()
}

#[derive(Deserialize)]
struct UsersQuery {
    #[serde(default)]
    filter: String,
}

/// `GET /admin/users?filter=`: users whose e-mail contains the filter.
async fn admin_users(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<UsersQuery>,
) -> Response {
    let state = match admit(&state, &headers, true, format!("admin_users:{}", q.filter)) {
        Ok(state) => state,
        Err(refused) => return *refused,
    };
    let filter = q.filter.to_lowercase();
    let users: Vec<Value> = state
        .users
        .iter()
        .filter(|u| u.email.contains(&filter))
        .map(AuthUser::json)
        .collect();
    Json(json!({ "aud": "authenticated", "users": users })).into_response()
}
