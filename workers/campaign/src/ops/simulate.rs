//! `igflow-worker simulate --campaigns FILE [--as TRIGGER] ["text"]`: what the worker would
//! decide and send for a comment, message, story mention or reply, button tap or referral,
//! from a campaign file alone: no queue, nothing sent, and no database unless `--contact`
//! asks what Postgres knows of a person. For comments the model is asked when one is
//! configured (`OLLAMA_URL`) and reachable; the output says when not.

use igflow_core::campaign::{Campaign, CampaignStatus, Trigger};
use std::time::Duration;

use igflow_core::campaign_file::{CampaignFile, CampaignSpec};
use igflow_core::ids::IgUserId;
use igflow_core::tester::{self, Fired, ModelAnswer, TestComment, TestMessage, TestResult};
use igflow_core::window;
use uuid::Uuid;

use crate::clients::store::{Store, StoreError};
use crate::pipeline::classify::{IntentClassifier, Source};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the campaign file has no account {0}")]
    NoSuchAccount(String),
    #[error("{0}")]
    Campaigns(#[from] igflow_core::plan::CampaignSetError),
    #[error("a {trigger} to test needs {what}")]
    Missing {
        trigger: Trigger,
        what: &'static str,
    },
    #[error("looking the contact up: {0}")]
    Store(#[from] StoreError),
}

/// The event to decide, as the command line describes it.
#[derive(Debug, Clone, Copy)]
pub struct Simulated<'a> {
    /// The account (ig_user_id) it is for; the file's first by default.
    pub account: Option<&'a str>,
    /// What the person did (a comment unless told).
    pub trigger: Trigger,
    pub text: Option<&'a str>,
    /// The media commented on, or the story replied to.
    pub media: Option<&'a str>,
    pub payload: Option<&'a str>,
    pub ref_param: Option<&'a str>,
    pub ad_id: Option<&'a str>,
    pub at_ms: i64,
    /// The person (IGSID) whose opt-out and cooldowns Postgres is asked about.
    pub contact: Option<&'a str>,
}

impl Simulated<'_> {
    fn describe(&self) -> String {
        let mut words = vec![self.trigger.as_str().replace('_', " ")];
        for (name, value) in [
            ("on", self.media),
            ("payload", self.payload),
            ("ref", self.ref_param),
            ("ad", self.ad_id),
            ("text", self.text),
        ] {
            if let Some(value) = value {
                words.push(format!("{name} {value:?}"));
            }
        }
        words.join(", ")
    }

    fn message(&self) -> Result<TestMessage<'_>, SimulateError> {
        let missing = |what| SimulateError::Missing {
            trigger: self.trigger,
            what,
        };
        match self.trigger {
            Trigger::Message if self.text.is_none() => return Err(missing("its text")),
            Trigger::Postback if self.payload.is_none() => return Err(missing("a payload")),
            Trigger::Referral if self.ref_param.is_none() && self.ad_id.is_none() => {
                return Err(missing("a ref or an ad id"));
            }
            _ => {}
        }
        Ok(TestMessage {
            text: self.text,
            story_mention: self.trigger == Trigger::StoryMention,
            story_id: self.media.filter(|_| self.trigger == Trigger::StoryReply),
            payload: self.payload,
            ref_param: self.ref_param,
            ad_id: self.ad_id,
            written_at_ms: self.at_ms,
        })
    }
}

/// The decision for `event`, as lines for a person to read: the windows its messages would
/// go out in and, given a database and a contact, their opt-out and the campaign's cooldown.
pub async fn simulate(
    file: &CampaignFile,
    event: &Simulated<'_>,
    classifier: &IntentClassifier,
    store: Option<&Store>,
) -> Result<Vec<String>, SimulateError> {
    let spec = match event.account {
        Some(id) => file.accounts.iter().find(|a| a.ig_user_id.as_str() == id),
        None => file.accounts.first(),
    }
    .ok_or_else(|| SimulateError::NoSuchAccount(event.account.unwrap_or("(any)").to_owned()))?;
    let campaigns = spec
        .campaigns
        .iter()
        .filter(|c| c.status == CampaignStatus::Active)
        .map(|c| c.to_campaign(Uuid::nil()))
        .collect();
    let result = decide(campaigns, &spec.ig_user_id, Uuid::nil(), event, classifier).await?;
    let mut lines = vec![format!(
        "account {} ({}), {}",
        spec.ig_user_id,
        spec.username,
        event.describe()
    )];
    lines.extend(result.lines());
    if let Some(fired) = &result.fired {
        lines.extend(windows(event, fired));
        if let (Some(store), Some(contact)) = (store, event.contact) {
            let campaign = spec
                .campaigns
                .iter()
                .find(|c| c.slug == fired.campaign_slug);
            let cooldown = campaign.map(CampaignSpec::cooldown).unwrap_or_default();
            lines.extend(
                contact_lines(store, spec.ig_user_id.as_str(), contact, fired, cooldown).await?,
            );
        }
    }
    Ok(lines)
}

/// When Meta stops taking each message the decision would send, counted from when the event
/// happened (`--at`): 7 days after a comment for its private reply, 24 hours after the
/// person's action for a DM.
fn windows(event: &Simulated<'_>, fired: &Fired) -> Vec<String> {
    let now = igflow_core::runtime::now_ms();
    fired
        .actions
        .iter()
        .filter_map(|a| {
            let span = match a.kind.as_str() {
                "private_reply" => window::PRIVATE_REPLY_WINDOW,
                "dm" => window::MESSAGING_WINDOW,
                _ => return None,
            };
            let closes = window::closes_at(event.at_ms, span);
            let when = jiff::Timestamp::from_millisecond(closes)
                .map_or_else(|_| closes.to_string(), |t| t.to_string());
            Some(if now < closes {
                format!(
                    "  window: the {} may go until {when}",
                    a.kind.replace('_', " ")
                )
            } else {
                format!(
                    "  window: closed at {when}: the {} would be dropped",
                    a.kind.replace('_', " ")
                )
            })
        })
        .collect()
}

/// What Postgres knows that changes the outcome: the person opted out, or already got a DM
/// from the campaign within its cooldown.
async fn contact_lines(
    store: &Store,
    ig_user_id: &str,
    contact: &str,
    fired: &Fired,
    cooldown: Duration,
) -> Result<Vec<String>, SimulateError> {
    let state = store
        .contact_state(ig_user_id, contact, &fired.campaign_slug)
        .await?;
    if !state.account_known {
        return Ok(vec![format!(
            "  contact {contact}: account {ig_user_id} is not in the database (apply the file first)"
        )]);
    }
    let mut lines = vec![match (state.contact_known, state.opted_out) {
        (false, _) => format!("  contact {contact}: never seen by the account"),
        (true, true) => format!("  contact {contact}: opted out: nothing would be sent"),
        (true, false) => format!("  contact {contact}: known, not opted out"),
    }];
    let sends_dm = fired
        .actions
        .iter()
        .any(|a| a.kind == "private_reply" || a.kind == "dm");
    if let (Some(campaign), true) = (state.campaign_id, sends_dm) {
        let held = store
            .dm_sent_within(campaign, contact, cooldown, "")
            .await?;
        lines.push(if held {
            format!(
                "  cooldown: {contact} got a DM from {} within {} s: the DM would be skipped",
                fired.campaign_slug,
                cooldown.as_secs()
            )
        } else {
            format!("  cooldown: free ({} s)", cooldown.as_secs())
        });
    }
    Ok(lines)
}

/// What `campaigns` of `account` (of `tenant`, for the model's cache) would do with `event`,
/// as the worker decides it: `simulate` and the dashboard's tester both ask this.
pub async fn decide(
    campaigns: Vec<Campaign>,
    account: &IgUserId,
    tenant: Uuid,
    event: &Simulated<'_>,
    classifier: &IntentClassifier,
) -> Result<TestResult, SimulateError> {
    if event.trigger != Trigger::Comment {
        return Ok(tester::test_message(campaigns, account, &event.message()?)?);
    }
    let text = event.text.ok_or(SimulateError::Missing {
        trigger: Trigger::Comment,
        what: "its text",
    })?;
    let comment = TestComment {
        text,
        media_id: event.media,
        username: "a.follower",
        written_at_ms: event.at_ms,
    };
    Ok(
        tester::test_comment(campaigns, account, &comment, |campaign| {
            ask_model(classifier, tenant, text, campaign)
        })
        .await?,
    )
}

/// The worker's classifier, answering the tester's question about one campaign's intents.
pub async fn ask_model(
    classifier: &IntentClassifier,
    tenant: Uuid,
    text: &str,
    campaign: Campaign,
) -> ModelAnswer {
    let c = classifier.classify(tenant, text, &campaign.intents).await;
    match (c.intent, c.source) {
        (Some(name), source) => ModelAnswer::Intent {
            name,
            source: source.as_str().to_owned(),
        },
        (None, Source::Fallback { reason }) => ModelAnswer::NotAsked {
            reason: reason.as_str().to_owned(),
        },
        (None, source) => ModelAnswer::NoIntent {
            source: source.as_str().to_owned(),
        },
    }
}
