//! The Instagram Graph API client: private replies, public comment replies and DMs for both
//! login flavors (`send`), and the read-backs that resolve a write whose outcome was unknown
//! (`read_back`). Every outcome maps onto the failure taxonomy (`error`).

mod error;
mod headers;
mod profile;
mod read_back;
mod send;

use std::time::{Duration, Instant};

use igflow_core::campaign::LoginFlavor;
use igflow_core::failure::Failure;
use igflow_core::graph_error::Verdict;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::clients::store::Account;
use crate::config::GraphConfig;

pub use error::CallError;
use error::{read_error, refused, transport_error};
use headers::usage;
pub(crate) use read_back::Paging;
pub use send::DirectMessage;

/// A call Meta accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `message_id` of a message, `id` of a comment.
    pub id: Option<String>,
    pub status: u16,
    pub latency: Duration,
    /// The highest usage percentage Meta reported with the answer.
    pub usage: Option<u8>,
}

/// What Meta answers to a write it accepted.
#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Clone)]
pub struct GraphClient {
    pub(crate) http: reqwest::Client,
    config: GraphConfig,
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("igflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, config })
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    pub(crate) fn base(&self, login: LoginFlavor) -> &str {
        match login {
            LoginFlavor::Instagram => &self.config.instagram_url,
            LoginFlavor::Facebook => &self.config.facebook_url,
        }
    }

    /// Who sends messages: the IG user with Instagram Login, the linked Page with Facebook Login.
    pub(crate) fn sender(account: &Account) -> &str {
        match (&account.login, &account.page_id) {
            (LoginFlavor::Facebook, Some(page)) => page.as_str(),
            _ => account.ig_user_id.as_str(),
        }
    }

    /// One Graph API read. Only a 2xx answer with the expected body is an answer: an error
    /// status (a 500, a throttle, a token error) is returned as the error Meta gave.
    #[tracing::instrument(name = "graph.read", level = "debug", skip_all)]
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        url: &str,
        token: &SecretString,
    ) -> Result<T, CallError> {
        self.read_request(self.http.get(url).bearer_auth(token.expose_secret()))
            .await
    }

    /// A GET that writes nothing: an error answer is retryable unless it concerns the account.
    #[tracing::instrument(name = "graph.read_request", level = "debug", skip_all)]
    pub(crate) async fn read_request<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let response = request.send().await.map_err(|e| {
            read_error(
                format!("graph API read failed: {}", e.without_url()),
                None,
                started,
            )
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await;
        if !(200..300).contains(&status) {
            let latency = started.elapsed();
            let mut error = refused(
                status,
                &headers,
                bytes.ok().as_deref(),
                latency,
                self.config.throttle_pause,
            );
            // Nothing was written: anything but a token or permission error is worth
            // checking again later.
            if !matches!(error.verdict, Verdict::Failed(Failure::Account { .. })) {
                error.verdict = Verdict::Failed(Failure::retry(format!(
                    "graph API read answered HTTP {status}: {}",
                    error.reason()
                )));
            }
            return Err(error);
        }
        bytes
            .map_err(|e| e.without_url().to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| {
                read_error(
                    format!("graph API read gave an unreadable body: {e}"),
                    Some(status),
                    started,
                )
            })
    }

    #[tracing::instrument(name = "graph.post", level = "debug", skip_all)]
    pub(crate) async fn post(
        &self,
        url: &str,
        token: &SecretString,
        body: &serde_json::Value,
    ) -> Result<Sent, CallError> {
        let started = Instant::now();
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return Err(transport_error(e, started.elapsed())),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let usage = usage(&headers);
        let bytes = response.bytes().await;
        let latency = started.elapsed();
        if (200..300).contains(&status) {
            // The write happened even if the body cannot be read.
            let id = bytes
                .ok()
                .and_then(|b| serde_json::from_slice::<Accepted>(&b).ok())
                .and_then(|a| a.message_id.or(a.id));
            return Ok(Sent {
                id,
                status,
                latency,
                usage,
            });
        }
        Err(refused(
            status,
            &headers,
            bytes.ok().as_deref(),
            latency,
            self.config.throttle_pause,
        ))
    }
}
