//! `igflow-worker simulate --campaigns FILE "comment"`: what the worker would decide and send
//! for a comment, from a campaign file alone: no database, no queue, nothing sent. The model
//! is asked when one is configured (`OLLAMA_URL`) and reachable; the output says when not.

use igflow_core::campaign::{Campaign, CampaignStatus};
use igflow_core::campaign_file::CampaignFile;
use igflow_core::tester::{self, ModelAnswer, TestComment};
use uuid::Uuid;

use crate::pipeline::classify::{IntentClassifier, Source};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the campaign file has no account {0}")]
    NoSuchAccount(String),
    #[error("{0}")]
    Campaigns(#[from] igflow_core::plan::CampaignSetError),
}

/// The decision for `text` on `media`, written at `at_ms`, by account `account` (the file's
/// first by default), as lines for a person to read.
pub async fn simulate(
    file: &CampaignFile,
    account: Option<&str>,
    media: Option<&str>,
    text: &str,
    at_ms: i64,
    classifier: &IntentClassifier,
) -> Result<Vec<String>, SimulateError> {
    let spec = match account {
        Some(id) => file.accounts.iter().find(|a| a.ig_user_id.as_str() == id),
        None => file.accounts.first(),
    }
    .ok_or_else(|| SimulateError::NoSuchAccount(account.unwrap_or("(any)").to_owned()))?;
    let campaigns = spec
        .campaigns
        .iter()
        .filter(|c| c.status == CampaignStatus::Active)
        .map(|c| c.to_campaign(Uuid::nil()))
        .collect();
    let comment = TestComment {
        text,
        media_id: media,
        username: "simulated",
        written_at_ms: at_ms,
    };
    let result = tester::test_comment(campaigns, &spec.ig_user_id, &comment, |campaign| {
        ask_model(classifier, Uuid::nil(), text, campaign)
    })
    .await?;
    let mut lines = vec![format!(
        "account {} ({}), comment {text:?}",
        spec.ig_user_id, spec.username
    )];
    lines.extend(result.lines());
    Ok(lines)
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
