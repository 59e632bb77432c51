//! Business Login for Instagram, as Meta runs it: the OAuth dialog (the test's user consents
//! at once and is sent back with a code), the code exchange, the long-lived token exchange,
//! `GET /me` and `POST /me/subscribed_apps`, with Meta's shapes and errors (bad or reused
//! code, a redirect URI other than the dialog's, a wrong client secret).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{GraphTestServer, Refusal, Shared, bearer};

/// Who is signed in to Instagram in the test's browser, and the app they log in to.
#[derive(Default)]
pub(super) struct OAuthState {
    app: Option<(String, String, String)>,
    /// `(ig_user_id, username)` of the account that consents in the dialog.
    user: Option<(String, String)>,
    /// Issued codes: the redirect URI the dialog was opened with, the user, and whether used.
    codes: HashMap<String, (String, (String, String), bool)>,
    short_tokens: HashMap<String, (String, String)>,
    long_tokens: HashMap<String, (String, String)>,
    /// Webhook fields subscribed per account.
    pub(super) subscribed: HashMap<String, Vec<String>>,
}

/// Meta's error shape on `api.instagram.com/oauth/access_token`.
fn oauth_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error_type": "OAuthException", "code": 400, "error_message": message })),
    )
        .into_response()
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/access_token", post(exchange_code))
        .route("/access_token", get(exchange_token))
        .route("/me", get(me))
        .route("/me/subscribed_apps", post(subscribe))
}

impl GraphTestServer {
    /// The Meta app: its id, secret and the one redirect URI registered for it.
    pub fn oauth_app(&self, app_id: &str, app_secret: &str, redirect_uri: &str) {
        self.shared.lock().oauth.app = Some((
            app_id.to_owned(),
            app_secret.to_owned(),
            redirect_uri.to_owned(),
        ));
    }

    /// The Instagram professional account that logs in and consents in the dialog.
    pub fn oauth_user(&self, ig_user_id: &str, username: &str) {
        self.shared.lock().oauth.user = Some((ig_user_id.to_owned(), username.to_owned()));
    }

    /// The webhook fields the account subscribed the app to.
    pub fn subscribed_fields(&self, ig_user_id: &str) -> Vec<String> {
        self.shared
            .lock()
            .oauth
            .subscribed
            .get(ig_user_id)
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    response_type: String,
    scope: String,
    #[serde(default)]
    state: Option<String>,
}

async fn authorize(State(shared): State<Shared>, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut s = shared.lock();
    let Some((app_id, _, registered)) = s.oauth.app.clone() else {
        return oauth_error("Invalid platform app");
    };
    if q.client_id != app_id {
        return oauth_error("Invalid platform app");
    }
    if q.redirect_uri != registered {
        return oauth_error("Invalid redirect_uri");
    }
    if q.response_type != "code" || !q.scope.contains("instagram_business_basic") {
        return oauth_error("Invalid Scopes: instagram_business_basic is required");
    }
    let Some(user) = s.oauth.user.clone() else {
        // Nobody to consent: Meta sends the person back with the refusal.
        return Redirect::to(&format!(
            "{}?error=access_denied&error_reason=user_denied&error_description=Permissions+error",
            q.redirect_uri
        ))
        .into_response();
    };
    let code = format!("AQ{:016x}", fastrand::u64(..));
    s.oauth
        .codes
        .insert(code.clone(), (q.redirect_uri.clone(), user, false));
    let mut back = reqwest::Url::parse(&q.redirect_uri).unwrap_or_else(|_| unreachable!());
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = &q.state {
        back.query_pairs_mut().append_pair("state", state);
    }
    // Meta appends `#_` to the redirect; browsers keep fragments to themselves.
    Redirect::to(&format!("{back}#_")).into_response()
}

#[derive(Deserialize)]
struct CodeForm {
    client_id: String,
    client_secret: String,
    grant_type: String,
    redirect_uri: String,
    code: String,
}

async fn exchange_code(State(shared): State<Shared>, Form(f): Form<CodeForm>) -> Response {
    let mut s = shared.lock();
    let Some((app_id, secret, _)) = s.oauth.app.clone() else {
        return oauth_error("Invalid platform app");
    };
    if f.client_id != app_id {
        return oauth_error("Invalid platform app");
    }
    if f.client_secret != secret {
        return oauth_error("Error validating client secret.");
    }
    if f.grant_type != "authorization_code" {
        return oauth_error("Unsupported grant_type");
    }
    let Some((redirect, user, used)) = s.oauth.codes.get_mut(&f.code) else {
        return oauth_error("Invalid authorization code");
    };
    if *used {
        return oauth_error("This authorization code has been used");
    }
    if *redirect != f.redirect_uri {
        return oauth_error(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    *used = true;
    let user = user.clone();
    let token = format!("IGQWshort{:016x}", fastrand::u64(..));
    s.oauth.short_tokens.insert(token.clone(), user.clone());
    Json(json!({ "data": [{
        "access_token": token,
        "user_id": user.0,
        "permissions": "instagram_business_basic,instagram_business_manage_messages,instagram_business_manage_comments",
    }] }))
    .into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    grant_type: String,
    client_secret: String,
    access_token: String,
}

fn invalid_token() -> Response {
    Refusal::new(
        190,
        None,
        "OAuthException",
        "Invalid OAuth access token - Cannot parse access token",
    )
    .into_response()
}

async fn exchange_token(State(shared): State<Shared>, Query(q): Query<TokenQuery>) -> Response {
    let mut s = shared.lock();
    let secret_ok = s
        .oauth
        .app
        .as_ref()
        .is_some_and(|(_, secret, _)| *secret == q.client_secret);
    if q.grant_type != "ig_exchange_token" || !secret_ok {
        return Refusal::new(
            101,
            None,
            "OAuthException",
            "Error validating client secret.",
        )
        .into_response();
    }
    let Some(user) = s.oauth.short_tokens.remove(&q.access_token) else {
        return invalid_token();
    };
    let token = format!("IGAAlong{:016x}", fastrand::u64(..));
    s.oauth.long_tokens.insert(token.clone(), user.clone());
    // The worker's calls with it act for this account, as with Meta.
    s.token_owners.insert(token.clone(), user.0);
    if !s.valid_tokens.is_empty() {
        s.valid_tokens.insert(token.clone());
    }
    Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": 5_183_944 }))
        .into_response()
}

fn long_token_user(shared: &Shared, headers: &HeaderMap) -> Option<(String, String)> {
    let token = bearer(headers)?;
    shared.lock().oauth.long_tokens.get(&token).cloned()
}

async fn me(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some((ig_user_id, username)) = long_token_user(&shared, &headers) else {
        return invalid_token();
    };
    Json(json!({ "id": format!("2{}", &ig_user_id[1..]), "user_id": ig_user_id, "username": username }))
        .into_response()
}

#[derive(Deserialize)]
struct SubscribeQuery {
    subscribed_fields: String,
}

async fn subscribe(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<SubscribeQuery>,
) -> Response {
    let Some((ig_user_id, _)) = long_token_user(&shared, &headers) else {
        return invalid_token();
    };
    let fields: Vec<String> = q.subscribed_fields.split(',').map(str::to_owned).collect();
    shared.lock().oauth.subscribed.insert(ig_user_id, fields);
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"success":true}"#,
    )
        .into_response()
}
