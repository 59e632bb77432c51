//! Stage 2, claim: the event's Redis claim, held while the stages run. Touches Redis (the
//! claim) and Postgres (the attempt's action leases, renewed with it).

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;
use uuid::Uuid;

use crate::clients::dedupe::{Claim, ClaimToken};
use crate::pipeline::heartbeat::with_heartbeat;
use crate::pipeline::{Dropped, Next, Pipeline};

/// A `pending` action's lease outlasts the Graph API call by this much.
const ACTION_LEASE_MARGIN: Duration = Duration::from_secs(5);

impl Pipeline {
    /// Takes the event's claim: this handling's token, or why the copy is not worked.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn claim(
        &self,
        env: &Envelope,
    ) -> Result<ControlFlow<Next, ClaimToken>, Failure> {
        Ok(
            match self
                .dedupe
                .claim(&env.account_id, &env.event_id, self.lease)
                .await?
            {
                Claim::Acquired(token) => ControlFlow::Continue(token),
                Claim::Done => {
                    tracing::info!("duplicate event dropped");
                    ControlFlow::Break(Next::Drop(Dropped::Duplicate))
                }
                Claim::Busy => {
                    tracing::info!("event in progress elsewhere; this copy comes back later");
                    ControlFlow::Break(Next::Drop(Dropped::Busy))
                }
            },
        )
    }

    /// Runs `work` while renewing the claim and the attempt's action leases, so a slow event
    /// (an LLM call, a rate-limit wait, a slow Graph answer) keeps them for as long as the
    /// message's visibility is renewed too.
    pub(super) async fn holding_claim<T>(
        &self,
        env: &Envelope,
        token: &ClaimToken,
        attempt: Uuid,
        work: impl Future<Output = T>,
    ) -> T {
        with_heartbeat(work, self.lease / 3, || async {
            if let Err(e) = self
                .store
                .renew_leases(
                    env.account_id.as_str(),
                    env.event_id.as_str(),
                    attempt,
                    self.action_lease(),
                )
                .await
            {
                tracing::warn!(error = %e, "action leases not renewed");
            }
            match self
                .dedupe
                .extend(&env.account_id, &env.event_id, token, self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "claim expired and was taken over; the action keys still prevent doubles"
                ),
                Err(e) => tracing::warn!(error = %e, "claim not renewed"),
            }
        })
        .await
    }

    /// How long a `pending` or resolving action is held for its attempt without a renewal:
    /// at least one Graph API call and a margin, so that only a dead attempt loses it.
    pub(super) fn action_lease(&self) -> Duration {
        self.lease.max(self.graph.timeout() + ACTION_LEASE_MARGIN)
    }
}
