//! Stage 3, load: the event's account (cached) and its item. Touches Postgres (through the
//! account cache; the app callbacks in `account_events`).

use std::ops::ControlFlow;

use igflow_core::envelope::{Envelope, EventKind};
use igflow_core::event::Item;
use igflow_core::failure::Failure;
use igflow_core::plan::Decision;
use uuid::Uuid;

use crate::clients::store::{DecisionOutcome, DecisionRecord};
use crate::pipeline::record::decision_row;
use crate::pipeline::{Context, Next, Pipeline, Target, account_events};

impl Pipeline {
    /// The context the later stages work on, or how the event ends here: an app callback
    /// (handled), an unknown account or a malformed item (recorded), an account that is not
    /// active (parked).
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn load<'e>(
        &self,
        env: &'e Envelope,
        attempt: Uuid,
    ) -> Result<ControlFlow<Next, Context<'e>>, Failure> {
        // Meta's app callbacks concern the account itself: handled (and done) whether or not
        // igflow knows it, and whatever its status.
        if matches!(
            env.kind,
            EventKind::AppDeauthorized | EventKind::DataDeletion
        ) {
            account_events::handle(&self.store, env).await?;
            return Ok(ControlFlow::Break(Next::Done));
        }
        let Some(account) = self.accounts.account(&env.account_id).await? else {
            tracing::warn!("event for an account igflow does not manage");
            let record = decision_row(env, None, attempt, DecisionOutcome::UnknownAccount);
            self.store.record_decision(&record).await?;
            return Ok(ControlFlow::Break(Next::Done));
        };
        if let Some(parked) = self.park_unless_active(env, &account).await? {
            return Ok(ControlFlow::Break(parked));
        }
        let item = match Item::from_envelope(env) {
            Ok(item) => item,
            Err(e) => {
                let tenant = Some(account.tenant_id);
                let record = DecisionRecord {
                    detail: Some(e.to_string()),
                    ..decision_row(env, tenant, attempt, DecisionOutcome::Malformed)
                };
                self.store.record_decision(&record).await?;
                return Err(Failure::permanent(e.to_string()));
            }
        };
        Ok(ControlFlow::Continue(Context {
            envelope: env,
            attempt,
            account,
            item,
            contact: None,
            decision: Decision::NoMatch,
            campaigns: None,
            why: None,
            target: Target::Nobody,
        }))
    }
}
