//! The stages one event goes through, in order (docs/architecture.md, "The worker's stages"):
//! decode, claim, load, filter, plan, classify, follow gate, record, guard, execute, settle. Each stage
//! returns a [`Next`]; [`Next::Continue`] hands the [`Context`] to the next stage, anything
//! else ends the event and goes to `settle`.

pub mod account_events;
mod attempt;
mod capture;
mod claim;
pub mod classify;
mod condition;
pub mod consumer;
mod cooldown;
mod decode;
mod execute;
mod filter;
mod follow_gate;
mod guard;
pub mod heartbeat;
mod intent;
mod load;
mod next_post;
mod park;
mod plan;
mod record;
mod send;
pub mod settle;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use igflow_core::envelope::Envelope;
use igflow_core::event::Item;
use igflow_core::failure::Failure;
use igflow_core::ids::{CommentId, Igsid};
use igflow_core::plan::{CampaignSet, Decision};
use uuid::Uuid;

pub use self::cooldown::Cooldown;
pub use self::next_post::OldPosts;
pub use self::settle::{Dropped, Next};
use crate::clients::cache::AccountCache;
use crate::clients::dedupe::{ClaimToken, Dedupe};
use crate::clients::graph::GraphClient;
use crate::clients::ratelimit::{Budgets, RateLimiter};
use crate::clients::secrets::Tokens;
use crate::clients::store::{Account, Store};
use crate::jobs::metrics::Latencies;
use crate::pipeline::classify::IntentClassifier;
use crate::stats::Stats;

pub struct Pipeline {
    pub store: Store,
    pub dedupe: Dedupe,
    pub tokens: Arc<Tokens>,
    pub graph: GraphClient,
    pub stats: Arc<Stats>,
    /// How long a claim holds: the message's visibility timeout. Renewed every third of it.
    pub lease: Duration,
    pub limiter: Arc<RateLimiter>,
    pub cooldown: Cooldown,
    pub budgets: Budgets,
    /// How long after a Live comment its private reply is still sent.
    pub live_reply_window: Duration,
    pub classifier: Arc<IntentClassifier>,
    pub accounts: Arc<AccountCache>,
    pub latencies: Arc<Latencies>,
    /// Posts older than what the account's "next post" campaigns wait for.
    pub old_posts: OldPosts,
}

/// What the stages know about one event, filled in as it goes through them.
pub struct Context<'e> {
    pub envelope: &'e Envelope,
    /// This handling's token on the event's actions (their claims and leases).
    pub attempt: Uuid,
    pub account: Arc<Account>,
    pub item: Item,
    /// The person the event is about, when it is not the account itself.
    pub contact: Option<String>,
    /// No match until a stage decides: `filter` (a skip), `plan` or `classify`.
    pub decision: Decision,
    /// The account's active campaigns, once `plan` loaded them.
    pub campaigns: Option<Arc<CampaignSet>>,
    /// Why the decision, for its activity row.
    pub why: Option<String>,
    pub target: Target,
}

/// Who an event's actions go to.
pub enum Target {
    /// The comment: private and public replies.
    Comment(CommentId),
    /// The person who wrote a DM, and when they last wrote (the 24-hour window).
    Sender { igsid: Igsid, last_message_ms: i64 },
    /// Nobody: the event plans no action.
    Nobody,
}

/// An event worked through its stages: what comes next, and the claim `settle` completes or
/// releases (none when the event was not claimed).
pub struct Worked {
    pub next: Next,
    pub claim: Option<ClaimToken>,
}

impl Pipeline {
    /// Claims the event and runs its stages while holding the claim.
    pub async fn handle(&self, env: &Envelope) -> Worked {
        let token = match self.claim(env).await {
            Ok(ControlFlow::Continue(token)) => token,
            Ok(ControlFlow::Break(next)) => return Worked { next, claim: None },
            Err(f) => {
                return Worked {
                    next: Next::failed(f),
                    claim: None,
                };
            }
        };
        let attempt = Uuid::new_v4();
        let next = self
            .holding_claim(env, &token, attempt, self.stages(env, attempt))
            .await;
        Worked {
            next: next.unwrap_or_else(Next::failed),
            claim: Some(token),
        }
    }

    async fn stages(&self, env: &Envelope, attempt: Uuid) -> Result<Next, Failure> {
        let mut cx = match self.load(env, attempt).await? {
            ControlFlow::Continue(cx) => cx,
            ControlFlow::Break(next) => return Ok(next),
        };
        match self.decide_and_act(&mut cx).await {
            // Token invalid, permission gone: stop the whole account, keep its events.
            Err(Failure::Account { reason }) => self.pause(&cx, &reason).await,
            next => next,
        }
    }

    async fn decide_and_act(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        let mut next = self.filter(cx).await?;
        if next.goes_on() {
            next = self.plan(cx).await?;
        }
        if next.goes_on() {
            next = self.classify(cx).await?;
        }
        if next.goes_on() {
            next = self.condition(cx).await?;
        }
        if next.goes_on() {
            next = self.follow_gate(cx).await?;
        }
        if next.goes_on() {
            next = self.start_waiting(cx).await?;
        }
        if next.goes_on() {
            next = self.record(cx).await?;
        }
        if next.goes_on() {
            next = self.execute(cx).await?;
        }
        // Past the last stage, going on means there is nothing left to do.
        Ok(if next.goes_on() { Next::Done } else { next })
    }
}
