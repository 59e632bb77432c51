//! The e-mailed links of Supabase Auth: an invitation (`POST /invite`) or a password recovery
//! (`POST /recover`) mails a link to `GET /verify`, which signs the person in and sends the
//! browser to the redirect URL with the session in the fragment (the implicit flow GoTrue
//! uses for these links), or with GoTrue's `otp_expired` error once the link was used.
//! `PUT /user` then sets the password. The mails land in a mailbox read over HTTP, as
//! Supabase's local stack does with Mailpit.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AuthState, Shared, access_claims, admit, error, lock, session};

/// GoTrue's default minimum password length.
const MIN_PASSWORD: usize = 6;

/// A link in a mail: who it signs in, for what, where it sends the browser, used or not.
pub(super) struct Link {
    user: Uuid,
    kind: &'static str,
    redirect_to: String,
    used: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct RedirectQuery {
    redirect_to: Option<String>,
}

impl RedirectQuery {
    /// The link's destination: the one asked for, else the project's Site URL.
    pub(super) fn target(&self, state: &AuthState) -> String {
        self.redirect_to
            .clone()
            .unwrap_or_else(|| state.site_url.clone())
    }
}

/// Mails `kind`'s link for the user at `index` (the mailbox keeps it under the address).
pub(super) fn mail(state: &mut AuthState, index: usize, kind: &'static str, redirect_to: String) {
    let token = format!("{:x}", Uuid::new_v4().simple());
    let (user, email) = (state.users[index].id, state.users[index].email.clone());
    let link = format!(
        "{}/auth/v1/verify?token={token}&type={kind}&redirect_to={}",
        state.url,
        urlencode(&redirect_to)
    );
    state.links.insert(
        token,
        Link {
            user,
            kind,
            redirect_to,
            used: false,
        },
    );
    state.mailbox.push((email, kind, link));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct RecoverBody {
    email: String,
}

/// `POST /recover`: a recovery mail if the address has an account; the same answer either
/// way, so nobody learns which addresses have one.
pub(super) async fn recover(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<RedirectQuery>,
    Json(body): Json<RecoverBody>,
) -> Response {
    let email = body.email.trim().to_lowercase();
    let mut state = match admit(&state, &headers, false, format!("recover:{email}")) {
        Ok(state) => state,
        Err(refused) => return *refused,
    };
    if let Some(i) = state.users.iter().position(|u| u.email == email) {
        let target = q.target(&state);
        mail(&mut state, i, "recovery", target);
    }
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
pub(super) struct VerifyQuery {
    token: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `GET /verify`: the link from the mail (no API key: it is opened from an e-mail).
pub(super) async fn verify(State(state): State<Shared>, Query(q): Query<VerifyQuery>) -> Response {
    let mut state = lock(&state);
    state.calls.push(format!("verify:{}", q.kind));
    let found = state
        .links
        .get_mut(&q.token)
        .filter(|l| l.kind == q.kind)
        .map(|l| {
            (
                std::mem::replace(&mut l.used, true),
                l.user,
                l.redirect_to.clone(),
            )
        });
    let fragment = match found {
        Some((false, user, redirect_to)) => {
            let index = state.users.iter().position(|u| u.id == user);
            index.map(|i| {
                if state.users[i].confirmed_at.is_none() {
                    state.users[i].confirmed_at = Some(super::now());
                }
                let s = session(&mut state, i, Uuid::new_v4());
                let fragment = format!(
                    "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}",
                    s["access_token"].as_str().unwrap_or_default(),
                    s["expires_at"],
                    s["expires_in"],
                    s["refresh_token"].as_str().unwrap_or_default(),
                    q.kind
                );
                (redirect_to, fragment)
            })
        }
        Some((true, _, redirect_to)) => Some((
            redirect_to,
            "error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired".into(),
        )),
        None => None,
    };
    match fragment {
        Some((to, fragment)) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("{to}#{fragment}"))],
        )
            .into_response(),
        None => (
            StatusCode::SEE_OTHER,
            [(
                header::LOCATION,
                format!("{}#error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired", state.site_url),
            )],
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct UpdateBody {
    password: Option<String>,
}

/// `PUT /user`: the signed-in person's new password, under GoTrue's rules.
pub(super) async fn update_user(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<UpdateBody>,
) -> Response {
    let (claims, mut state) = match admit(&state, &headers, false, "update_user".into())
        .and_then(|state| Ok((access_claims(&headers)?, state)))
    {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    let Some(i) = state.users.iter().position(|u| u.id.to_string() == sub) else {
        return error(
            &headers,
            StatusCode::NOT_FOUND,
            "user_not_found",
            "User not found",
        );
    };
    if let Some(password) = body.password {
        if password.chars().count() < MIN_PASSWORD {
            return error(
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                &format!("Password should be at least {MIN_PASSWORD} characters."),
            );
        }
        if state.users[i].password.as_deref() == Some(password.as_str()) {
            return error(
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "same_password",
                "New password should be different from the old password.",
            );
        }
        state.users[i].password = Some(password);
    }
    Json(state.users[i].json()).into_response()
}

/// `GET /mailbox/{address}`: the mails sent to an address, oldest first (Mailpit's role).
pub(super) async fn mailbox(
    State(state): State<Shared>,
    Path(address): Path<String>,
) -> Json<Value> {
    let address = address.to_lowercase();
    let mails: Vec<Value> = lock(&state)
        .mailbox
        .iter()
        .filter(|(to, _, _)| *to == address)
        .map(|(to, kind, link)| json!({ "to": to, "kind": kind, "link": link }))
        .collect();
    Json(json!(mails))
}
