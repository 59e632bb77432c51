//! `igflow-worker simulate --campaigns FILE [--as TRIGGER] ["text"]`: what the worker would
//! decide and send for a comment, message, story mention or reply, button tap or referral,
//! from a campaign file alone: no database, no queue, nothing sent. For comments the model is
//! asked when one is configured (`OLLAMA_URL`) and reachable; the output says when not.

use igflow_core::campaign::{Campaign, CampaignStatus, Trigger};
use igflow_core::campaign_file::CampaignFile;
use igflow_core::ids::IgUserId;
use igflow_core::tester::{self, ModelAnswer, TestComment, TestMessage, TestResult};
use uuid::Uuid;

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

/// The decision for `event`, as lines for a person to read.
pub async fn simulate(
    file: &CampaignFile,
    event: &Simulated<'_>,
    classifier: &IntentClassifier,
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
