//! Delivering what capture steps stored to tenants' own webhooks: every `every`, the due
//! deliveries are POSTed, signed `X-Igflow-Signature-256: sha256=<HMAC-SHA256 of the body>`
//! with the tenant's secret; a non-2xx answer or a failed call is retried with doubling
//! waits, up to `max_attempts`, and each attempt's end shows in the activity log. Nothing here
//! waits on the flow or holds it up.

use std::sync::Arc;
use std::time::Duration;

use igflow_core::signature;
use tokio_util::sync::CancellationToken;

use crate::clients::secrets::Tokens;
use crate::clients::store::{Delivery, DeliveryOutcome, Store};

/// Deliveries taken per pass.
const BATCH: i64 = 20;
/// A taken delivery is another worker's to try after this, should this one die mid-call.
const LEASE: Duration = Duration::from_secs(60);
/// A tenant's endpoint gets this long to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(3600);

pub struct Outbound {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub http: reqwest::Client,
    pub every: Duration,
    /// The wait after the first failed attempt; each later one doubles it.
    pub backoff: Duration,
    pub max_attempts: u32,
}

impl Outbound {
    pub fn http() -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e, "webhook deliveries: pass failed; trying again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// One pass: every due delivery, one attempt each.
    pub async fn deliver_due(&self) -> Result<usize, crate::clients::store::StoreError> {
        let due = self.store.due_deliveries(BATCH, LEASE).await?;
        for delivery in &due {
            let result = self.attempt(delivery).await;
            let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
            let outcome = match &result {
                Ok(status) => DeliveryOutcome::Delivered { status: *status },
                Err(error) if attempts >= self.max_attempts => DeliveryOutcome::GaveUp { error },
                Err(error) => DeliveryOutcome::Retry {
                    error,
                    after: self.wait_after(attempts),
                },
            };
            tracing::info!(
                delivery = delivery.id,
                attempts,
                delivered = result.is_ok(),
                error = result.as_ref().err().map(String::as_str),
                "webhook delivery attempted"
            );
            self.store.delivery_attempted(delivery.id, outcome).await?;
        }
        Ok(due.len())
    }

    /// One POST: the HTTP status of a 2xx answer, or why it failed.
    async fn attempt(&self, delivery: &Delivery) -> Result<u16, String> {
        let secret = self
            .tokens
            .get(delivery.tenant_id, &delivery.secret_ref)
            .await
            .map_err(|e| format!("the webhook secret could not be read: {e}"))?;
        let response = self
            .http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header(
                "x-igflow-signature-256",
                signature::sign(&secret, delivery.body.as_bytes()),
            )
            .header("x-igflow-delivery", delivery.id.to_string())
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| format!("the webhook did not answer: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(format!("the webhook answered HTTP {}", status.as_u16()))
        }
    }

    fn wait_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        self.backoff.saturating_mul(1 << doublings).min(MAX_WAIT)
    }
}
