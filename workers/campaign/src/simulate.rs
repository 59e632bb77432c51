//! `igflow-worker simulate --campaigns FILE "comment"`: what the worker would decide and send
//! for a comment, from a campaign file alone: no database, no queue, nothing sent. The model
//! is asked when one is configured (`OLLAMA_URL`) and reachable; the output says when not.

use igflow_core::campaign::CampaignStatus;
use igflow_core::campaign_file::CampaignFile;
use igflow_core::event::Comment;
use igflow_core::ids::EventId;
use igflow_core::plan::{CampaignSet, Decision};
use uuid::Uuid;

use crate::classify::{IntentClassifier, Source};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the campaign file has no account {0}")]
    NoSuchAccount(String),
    #[error("the comment could not be built: {0}")]
    Comment(#[from] serde_json::Error),
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
    let set = CampaignSet::new(campaigns);
    let comment: Comment = serde_json::from_value(serde_json::json!({
        "id": "simulated",
        "from": { "id": "0", "username": "simulated" },
        "text": text,
        "media": { "id": media.unwrap_or("0") },
    }))?;
    let event =
        EventId::parse("comment:simulated").unwrap_or_else(|_| unreachable!("a valid literal id"));
    let mut lines = vec![format!(
        "account {} ({}), comment {text:?}",
        spec.ig_user_id, spec.username
    )];
    let mut decision = set.decide_comment(&event, &spec.ig_user_id, &comment, at_ms);
    if decision == Decision::NoMatch {
        for campaign in set.intent_candidates(&comment, at_ms) {
            let c = classifier.classify(text, &campaign.intents).await;
            match (c.intent, c.source) {
                (Some(intent), source) => {
                    lines.push(format!(
                        "no keyword matched; the model recognized intent {intent:?} ({})",
                        source.as_str()
                    ));
                    decision = Decision::Matched(CampaignSet::plan_intent(
                        &event, campaign, intent, &comment,
                    ));
                    break;
                }
                (None, Source::Fallback { reason }) => {
                    lines.push(format!(
                        "no keyword matched; the model was not asked ({}): keyword rules only",
                        reason.as_str()
                    ));
                    break;
                }
                (None, source) => lines.push(format!(
                    "campaign {}: the model saw none of its intents ({})",
                    campaign.slug,
                    source.as_str()
                )),
            }
        }
    }
    match decision {
        Decision::Matched(plan) => {
            lines.push(format!(
                "campaign {} fires: {}",
                plan.campaign_slug,
                plan.matched_by.describe()
            ));
            for action in plan.actions {
                lines.push(format!("  would send {}: {:?}", action.kind, action.text));
            }
        }
        Decision::NoMatch => lines.push("no campaign fires".into()),
        Decision::Skip(reason) => lines.push(format!("skipped: {}", reason.as_str())),
        consent @ Decision::Consent(_) => lines.push(consent.outcome().replace('_', " ")),
    }
    Ok(lines)
}
