//! Instagram accounts: their status, token expiry, webhook subscription and last delivery;
//! pausing and resuming; and connecting one with Business Login for Instagram (OAuth).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use igflow_core::ids::IgUserId;
use igflow_core::subscription;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{AUTHENTICATED, User};
use crate::config::OAuthConfig;
use crate::db::{as_claims, as_user};
use crate::error::ApiError;

/// What igflow asks the owner to allow: read the account, answer comments and messages.
pub const SCOPES: &str = "instagram_business_basic,instagram_business_manage_messages,instagram_business_manage_comments";
/// How long the owner has to finish Meta's dialog.
const STATE_LIFETIME_SECONDS: i64 = 600;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct AccountView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub ig_user_id: String,
    pub username: String,
    pub login_flavor: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub token_expires_at: Option<String>,
    pub webhook_fields: Vec<String>,
    /// The latest event the worker recorded for the account.
    pub last_event_at: Option<String>,
    /// Why the worker's last token refresh failed, and when; none once one succeeds.
    pub token_refresh_error: Option<String>,
    pub token_refresh_failed_at: Option<String>,
    /// Why the subscription audit could not subscribe the account to its webhook fields
    /// again; none once it could.
    pub subscription_error: Option<String>,
    pub subscription_checked_at: Option<String>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    user: User,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let rows = sqlx::query_as(
        "select a.id, a.tenant_id, a.ig_user_id, a.username, a.login_flavor, a.status, a.status_reason,
                to_char(a.token_expires_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as token_expires_at,
                a.webhook_fields,
                (select to_char(x.created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 from activity x where x.tenant_id = a.tenant_id and x.ig_user_id = a.ig_user_id
                 order by x.created_at desc limit 1) as last_event_at,
                a.token_refresh_error,
                to_char(a.token_refresh_failed_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as token_refresh_failed_at,
                a.subscription_error,
                to_char(a.subscription_checked_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as subscription_checked_at
         from ig_accounts a order by a.username",
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize)]
pub struct StatusBody {
    /// `active` or `paused`; owners only (Row Level Security).
    pub status: String,
}

pub async fn set_status(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(id): Path<Uuid>,
    Json(body): Json<StatusBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let reason = match body.status.as_str() {
        "paused" => Some(format!(
            "paused in the dashboard by {}",
            user.email.as_deref().unwrap_or("an owner")
        )),
        "active" => None,
        _ => {
            return Err(ApiError::BadRequest(
                "status must be active or paused".into(),
            ));
        }
    };
    let mut tx = as_user(&state.pool, &user).await?;
    let changed = sqlx::query(
        "update ig_accounts set status = $2, status_reason = $3, updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(&body.status)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let visible: bool =
            sqlx::query_scalar("select exists (select 1 from ig_accounts where id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        return Err(if visible {
            ApiError::Forbidden("only owners pause or resume accounts".into())
        } else {
            ApiError::NotFound
        });
    }
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "status": body.status })))
}

/// The OAuth `state`: who started the connection, for which workspace, until when; signed
/// with the app secret so the callback can trust it.
#[derive(Debug, Serialize, Deserialize)]
struct ConnectState {
    tenant: Uuid,
    user: Uuid,
    exp: i64,
    nonce: String,
}

fn sign(secret: &SecretString, payload: &str) -> Result<String, ApiError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .map_err(|e| ApiError::Internal(format!("state key: {e}")))?;
    mac.update(payload.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn encode_state(oauth: &OAuthConfig, state: &ConnectState) -> Result<String, ApiError> {
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(state).map_err(|e| ApiError::Internal(e.to_string()))?);
    Ok(format!("{payload}.{}", sign(&oauth.app_secret, &payload)?))
}

fn decode_state(oauth: &OAuthConfig, raw: &str) -> Result<ConnectState, String> {
    let (payload, signature) = raw.split_once('.').ok_or("the state is malformed")?;
    let expected = sign(&oauth.app_secret, payload).map_err(|e| e.to_string())?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        signature.as_bytes(),
    )) {
        return Err("the state was not issued by igflow".into());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the state is malformed")?;
    let state: ConnectState =
        serde_json::from_slice(&bytes).map_err(|_| "the state is malformed")?;
    if state.exp < jiff::Timestamp::now().as_second() {
        return Err("the connection took too long: start it again".into());
    }
    Ok(state)
}

fn oauth(state: &AppState) -> Result<&OAuthConfig, ApiError> {
    state.config_oauth.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "connecting accounts is not configured: set IGFLOW_IG_APP_ID, IGFLOW_IG_APP_SECRET and IGFLOW_OAUTH_REDIRECT_URL".into(),
        )
    })
}

#[derive(Debug, Deserialize)]
pub struct ConnectBody {
    pub tenant_id: Uuid,
}

/// Where to send the owner: Meta's OAuth dialog, with igflow's scopes and a signed state.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    user: User,
    Json(body): Json<ConnectBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let oauth = oauth(&state)?;
    let mut tx = as_user(&state.pool, &user).await?;
    let (member, owner): (bool, bool) =
        sqlx::query_as("select igflow_is_member($1), igflow_is_owner($1)")
            .bind(body.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    if !member {
        return Err(ApiError::NotFound);
    }
    if !owner {
        return Err(ApiError::Forbidden("only owners connect accounts".into()));
    }
    let signed = encode_state(
        oauth,
        &ConnectState {
            tenant: body.tenant_id,
            user: user.id,
            exp: jiff::Timestamp::now().as_second() + STATE_LIFETIME_SECONDS,
            nonce: Uuid::new_v4().simple().to_string(),
        },
    )?;
    let mut url = reqwest::Url::parse(&oauth.dialog_url)
        .map_err(|e| ApiError::Internal(format!("IGFLOW_INSTAGRAM_DIALOG_URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &oauth.app_id)
        .append_pair("redirect_uri", &oauth.redirect_url)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPES)
        .append_pair("state", &signed);
    Ok(Json(serde_json::json!({ "url": url.as_str() })))
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Meta's redirect back: the code becomes a long-lived token in Secrets Manager, the account
/// a row with its expiry, and its webhook fields are subscribed. The browser then goes back
/// to the dashboard's accounts page, with the outcome.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CallbackQuery>,
) -> Redirect {
    let back = |outcome: &str, value: &str| {
        let mut page = reqwest::Url::parse("http://x/").unwrap_or_else(|_| unreachable!());
        page.query_pairs_mut().append_pair(outcome, value);
        let query = page.query().unwrap_or_default().to_owned();
        Redirect::to(&format!(
            "{}/#/accounts?{query}",
            state.origin.as_deref().unwrap_or("")
        ))
    };
    match finish_connect(&state, q).await {
        Ok(username) => back("connected", &username),
        Err(e) => {
            tracing::warn!(error = %e, "connecting an account failed");
            back("error", &e.to_string())
        }
    }
}

#[derive(Debug, Deserialize)]
struct ShortToken {
    access_token: SecretString,
    user_id: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CodeAnswer {
    Wrapped { data: Vec<ShortToken> },
    Plain(ShortToken),
}

#[derive(Debug, Deserialize)]
struct LongToken {
    access_token: SecretString,
    expires_in: i64,
}

#[derive(Debug, Deserialize)]
struct Me {
    user_id: serde_json::Value,
    username: String,
}

/// Meta's error text from either shape (`error_message`, or `error.message`).
async fn meta_error(what: &str, response: reqwest::Response) -> ApiError {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["error_message"]
        .as_str()
        .or_else(|| body["error"]["message"].as_str())
        .unwrap_or("no details");
    ApiError::Upstream(format!("Meta refused {what} ({status}): {message}"))
}

async fn call<T: serde::de::DeserializeOwned>(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<T, ApiError> {
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("{what}: Meta did not answer: {e}")))?;
    if !response.status().is_success() {
        return Err(meta_error(what, response).await);
    }
    response
        .json()
        .await
        .map_err(|e| ApiError::Upstream(format!("{what}: unexpected answer: {e}")))
}

fn id_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

async fn finish_connect(state: &AppState, q: CallbackQuery) -> Result<String, ApiError> {
    let oauth = oauth(state)?;
    if let Some(error) = q.error {
        return Err(ApiError::BadRequest(format!(
            "Instagram did not connect the account: {}",
            q.error_description.unwrap_or(error)
        )));
    }
    let signed = q
        .state
        .ok_or_else(|| ApiError::BadRequest("the state is missing".into()))?;
    let connect = decode_state(oauth, &signed).map_err(ApiError::BadRequest)?;
    let code = q
        .code
        .ok_or_else(|| ApiError::BadRequest("the code is missing".into()))?;
    let http = &state.http;

    let short: CodeAnswer = call(
        "the authorization code",
        http.post(format!("{}/oauth/access_token", oauth.api_url))
            .form(&[
                ("client_id", oauth.app_id.as_str()),
                ("client_secret", oauth.app_secret.expose_secret()),
                ("grant_type", "authorization_code"),
                ("redirect_uri", oauth.redirect_url.as_str()),
                ("code", code.as_str()),
            ]),
    )
    .await?;
    let short = match short {
        CodeAnswer::Wrapped { mut data } => data
            .pop()
            .ok_or_else(|| ApiError::Upstream("the code exchange returned no token".into()))?,
        CodeAnswer::Plain(token) => token,
    };
    let long: LongToken = call(
        "the long-lived token exchange",
        http.get(format!("{}/access_token", oauth.graph_url))
            .query(&[
                ("grant_type", "ig_exchange_token"),
                ("client_secret", oauth.app_secret.expose_secret()),
                ("access_token", short.access_token.expose_secret()),
            ]),
    )
    .await?;
    let me: Me = call(
        "reading the account",
        http.get(format!("{}/me", oauth.graph_url))
            .query(&[("fields", "user_id,username")])
            .bearer_auth(long.access_token.expose_secret()),
    )
    .await?;
    let ig_user_id = IgUserId::parse(id_text(&me.user_id))
        .map_err(|e| ApiError::Upstream(format!("Meta returned no account id: {e}")))?;
    if id_text(&short.user_id) != ig_user_id.as_str() {
        tracing::info!("the code's user id is app-scoped; using /me's user_id");
    }

    // The owner's rights, as Row Level Security decides them for the user who started.
    let claims = serde_json::json!({ "sub": connect.user, "role": AUTHENTICATED }).to_string();
    let mut tx = as_claims(&state.pool, &claims).await?;
    let owner: bool = sqlx::query_scalar("select igflow_is_owner($1)")
        .bind(connect.tenant)
        .fetch_one(&mut *tx)
        .await?;
    tx.rollback().await?;
    if !owner {
        return Err(ApiError::Forbidden(
            "only owners connect accounts to a workspace".into(),
        ));
    }

    let secret_ref = state.tokens.secret_name(&ig_user_id);
    state
        .tokens
        .put(&secret_ref, &long.access_token)
        .await
        .map_err(|e| ApiError::Unavailable(format!("storing the token: {e}")))?;
    // Accounts are written with the API's own connection, as `apply` writes them: dashboard
    // users may not insert accounts (nor point one at another token) through PostgREST.
    let account: Option<Uuid> = sqlx::query_scalar(
        "insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref,
                                  token_expires_at, connected_at)
         values ($1, $2, $3, 'instagram', $4, now() + make_interval(secs => $5), now())
         on conflict (ig_user_id) do update set
           username = excluded.username, token_secret_ref = excluded.token_secret_ref,
           token_expires_at = excluded.token_expires_at, token_updated_at = now(), connected_at = now(),
           status = 'active', status_reason = null, updated_at = now()
         where ig_accounts.tenant_id = excluded.tenant_id
         returning id",
    )
    .bind(connect.tenant)
    .bind(ig_user_id.as_str())
    .bind(&me.username)
    .bind(&secret_ref)
    .bind(long.expires_in as f64)
    .fetch_optional(&state.pool)
    .await?;
    let account = account.ok_or_else(|| {
        ApiError::Conflict(format!(
            "@{} is connected to another workspace; remove it there first",
            me.username
        ))
    })?;

    let subscribed: serde_json::Value = call(
        "subscribing the webhook fields",
        http.post(format!("{}/me/subscribed_apps", oauth.graph_url))
            .query(&[("subscribed_fields", subscription::parameter())])
            .bearer_auth(long.access_token.expose_secret()),
    )
    .await?;
    if subscribed["success"] != serde_json::json!(true) {
        return Err(ApiError::Upstream(format!(
            "Meta did not confirm the webhook subscription: {subscribed}"
        )));
    }
    sqlx::query("update ig_accounts set webhook_fields = $2 where id = $1")
        .bind(account)
        .bind(subscription::WEBHOOK_FIELDS)
        .execute(&state.pool)
        .await?;
    tracing::info!(account_id = %account, tenant_id = %connect.tenant, "account connected");
    Ok(me.username)
}
