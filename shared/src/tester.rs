//! The keyword tester: which campaign a comment would fire, by which rule, keyword or intent,
//! and the exact texts that would go out. `igflow-worker simulate` and the dashboard's tester
//! both run this, so what a marketer sees is what the worker decides.

use std::future::Future;

use serde::Serialize;
use uuid::Uuid;

use crate::campaign::Campaign;
use crate::event::{Comment, MessagingItem};
use crate::ids::{EventId, IgUserId};
use crate::plan::{
    CampaignSet, CampaignSetError, Decision, MatchedBy, PlannedButton, parse_step_payload,
};

/// What the model said about one campaign's intents (the worker's classifier answers this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelAnswer {
    /// It recognized this intent; `source` is `model` or `cache`.
    Intent { name: String, source: String },
    /// None of the campaign's intents.
    NoIntent { source: String },
    /// The model was not asked (`no_model`, `breaker_open`, ...): keyword rules only.
    NotAsked { reason: String },
}

/// The comment to test, as the worker would receive it.
#[derive(Debug, Clone)]
pub struct TestComment<'a> {
    pub text: &'a str,
    pub media_id: Option<&'a str>,
    pub username: &'a str,
    pub written_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestAction {
    pub kind: String,
    pub text: String,
    pub quick_replies: Vec<String>,
    /// The template buttons under the text.
    pub buttons: Vec<TestButton>,
}

/// A template button as the person would see it, and where a tap leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestButton {
    pub title: String,
    /// The flow step a tap sends, for a postback button.
    pub step: Option<String>,
    /// The page a tap opens, for a URL button.
    pub url: Option<String>,
}

impl From<PlannedButton> for TestButton {
    fn from(button: PlannedButton) -> Self {
        match button {
            PlannedButton::Postback { title, payload } => Self {
                step: parse_step_payload(&payload).map(|(_, step)| step.to_owned()),
                title,
                url: None,
            },
            PlannedButton::Url { title, url } => Self {
                title,
                step: None,
                url: Some(url),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fired {
    pub campaign_id: Uuid,
    pub campaign_slug: String,
    /// `rule 0 matched keyword "price"` or `intent "purchase"`.
    pub matched_by: String,
    pub rule: Option<usize>,
    pub keyword: Option<String>,
    pub intent: Option<String>,
    pub actions: Vec<TestAction>,
}

/// The verdict, with the steps that led to it in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub fired: Option<Fired>,
    /// Why nothing was considered at all (`own_content`, `no_text`).
    pub skipped: Option<String>,
    pub notes: Vec<String>,
}

impl TestResult {
    /// For a person reading a terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = self.notes.clone();
        match (&self.fired, &self.skipped) {
            (Some(fired), _) => {
                lines.push(format!(
                    "campaign {} fires: {}",
                    fired.campaign_slug, fired.matched_by
                ));
                for action in &fired.actions {
                    lines.push(format!("  would send {}: {:?}", action.kind, action.text));
                    for b in &action.buttons {
                        let leads = match (&b.step, &b.url) {
                            (Some(step), _) => format!("sends step {step:?}"),
                            (None, Some(url)) => format!("opens {url}"),
                            (None, None) => "does nothing".into(),
                        };
                        lines.push(format!("    button {:?}: {leads}", b.title));
                    }
                }
            }
            (None, Some(reason)) => lines.push(format!("skipped: {reason}")),
            (None, None) => lines.push("no campaign fires".into()),
        }
        lines
    }
}

/// The tester's comment id: stable, so the public-reply variant shown is the same each time.
const TEST_EVENT: &str = "comment:tester";

/// Decides `comment` against `campaigns` as the worker would: keyword rules first, then, if
/// none matches, each intent campaign in priority order through `ask`.
pub async fn test_comment<F, Fut>(
    campaigns: Vec<Campaign>,
    account: &IgUserId,
    comment: &TestComment<'_>,
    mut ask: F,
) -> Result<TestResult, CampaignSetError>
where
    F: FnMut(Campaign) -> Fut,
    Fut: Future<Output = ModelAnswer>,
{
    let set = CampaignSet::new(campaigns)?;
    let Ok(event) = EventId::parse(TEST_EVENT) else {
        unreachable!("a valid literal id")
    };
    let built: Result<Comment, _> = serde_json::from_value(serde_json::json!({
        "id": "tester",
        // Not the account itself, so the comment is someone else's.
        "from": { "id": "0", "username": comment.username },
        "text": comment.text,
        "media": { "id": comment.media_id.unwrap_or("0") },
    }));
    let Ok(built) = built else {
        unreachable!("the literal comment shape always parses")
    };
    let mut notes = Vec::new();
    let mut decision = set.decide_comment(&event, account, &built, comment.written_at_ms);
    if decision == Decision::NoMatch {
        for campaign in set.intent_candidates(&built, comment.written_at_ms) {
            match ask(campaign.clone()).await {
                ModelAnswer::Intent { name, source } => {
                    notes.push(format!(
                        "no keyword matched; the model recognized intent {name:?} ({source})"
                    ));
                    decision =
                        Decision::Matched(CampaignSet::plan_intent(&event, campaign, name, &built));
                    break;
                }
                ModelAnswer::NotAsked { reason } => {
                    notes.push(format!(
                        "no keyword matched; the model was not asked ({reason}): keyword rules only"
                    ));
                    break;
                }
                ModelAnswer::NoIntent { source } => notes.push(format!(
                    "campaign {}: the model saw none of its intents ({source})",
                    campaign.slug
                )),
            }
        }
    }
    Ok(verdict(decision, notes))
}

/// A messaging event to test: what the person did, with what they wrote or tapped.
#[derive(Debug, Clone, Default)]
pub struct TestMessage<'a> {
    pub text: Option<&'a str>,
    /// A story mention (the message carries no text).
    pub story_mention: bool,
    /// A reply to this story.
    pub story_id: Option<&'a str>,
    /// A tapped button's payload.
    pub payload: Option<&'a str>,
    /// The ig.me link's ref, or the ad, the person came through.
    pub ref_param: Option<&'a str>,
    pub ad_id: Option<&'a str>,
    pub written_at_ms: i64,
}

impl TestMessage<'_> {
    /// The item in the shape Meta delivers it.
    fn item(&self) -> serde_json::Value {
        let referral = (self.ref_param.is_some() || self.ad_id.is_some()).then(|| {
            serde_json::json!({
                "ref": self.ref_param,
                "ad_id": self.ad_id,
                "source": if self.ad_id.is_some() { "ADS" } else { "IG.ME" },
                "type": "OPEN_THREAD",
            })
        });
        let mut item = serde_json::json!({
            // Not the account itself, so the message is someone else's.
            "sender": { "id": "0" },
            "timestamp": self.written_at_ms,
        });
        if let Some(payload) = self.payload {
            item["postback"] =
                serde_json::json!({ "mid": "tester", "payload": payload, "referral": referral });
        } else if self.text.is_some() || self.story_mention || self.story_id.is_some() {
            let mut message =
                serde_json::json!({ "mid": "tester", "text": self.text, "referral": referral });
            if self.story_mention {
                message["attachments"] = serde_json::json!([{ "type": "story_mention", "payload": { "url": "https://example.invalid/story" } }]);
            }
            if let Some(story) = self.story_id {
                message["reply_to"] = serde_json::json!({ "story": { "id": story } });
            }
            item["message"] = message;
        } else {
            item["referral"] = referral.unwrap_or_default();
        }
        item
    }
}

/// Decides a message, story mention or reply, postback or referral against `campaigns` as
/// the worker would.
pub fn test_message(
    campaigns: Vec<Campaign>,
    account: &IgUserId,
    message: &TestMessage<'_>,
) -> Result<TestResult, CampaignSetError> {
    let set = CampaignSet::new(campaigns)?;
    let Ok(event) = EventId::parse("message:tester") else {
        unreachable!("a valid literal id")
    };
    let Ok(item) = serde_json::from_value::<MessagingItem>(message.item()) else {
        unreachable!("the built item always has the messaging shape")
    };
    let decision = set.decide_messaging(&event, account, &item, message.written_at_ms);
    Ok(verdict(decision, Vec::new()))
}

fn verdict(decision: Decision, notes: Vec<String>) -> TestResult {
    let (fired, skipped) = match decision {
        Decision::Matched(plan) => {
            let (rule, keyword, intent) = match &plan.matched_by {
                MatchedBy::Keyword { rule, keyword } => (Some(*rule), Some(keyword.clone()), None),
                MatchedBy::Intent { name } => (None, None, Some(name.clone())),
                _ => (None, None, None),
            };
            let fired = Fired {
                campaign_id: plan.campaign_id,
                campaign_slug: plan.campaign_slug,
                matched_by: plan.matched_by.describe(),
                rule,
                keyword,
                intent,
                actions: plan
                    .actions
                    .into_iter()
                    .map(|a| TestAction {
                        kind: a.kind.as_str().to_owned(),
                        text: a.text,
                        quick_replies: a.quick_replies,
                        buttons: a.buttons.into_iter().map(TestButton::from).collect(),
                    })
                    .collect(),
            };
            (Some(fired), None)
        }
        Decision::NoMatch => (None, None),
        other => (None, Some(other.outcome().to_owned())),
    };
    TestResult {
        fired,
        skipped,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::campaign_file::CampaignFile;

    const FILE: &str = r#"
version: 1
tenant: { slug: acme, name: Acme }
accounts:
  - ig_user_id: "17841400000000000"
    username: acme
    login: instagram
    access_token: t
    campaigns:
      - slug: price-list
        name: Price list
        rules: [{ keywords: [price] }]
        actions:
          private_reply: "Hi {username}, prices: https://acme.example/p"
          public_replies: ["Sent you a DM"]
          quick_replies: [More]
          buttons:
            - { title: "See the list", step: list }
            - { title: "Shop", url: "https://acme.example/shop" }
        steps:
          - { name: list, dm: "The list: https://acme.example/list" }
      - slug: buy
        name: Buy
        rules: [{ keywords: [zzz] }]
        intents: [{ name: purchase, description: wants to buy }]
        actions: { private_reply: "Shop: https://acme.example/shop" }
"#;

    /// The model stand-ins answer at once, so one poll finishes the test.
    fn run(text: &str, answer: ModelAnswer) -> TestResult {
        let file = CampaignFile::parse(FILE).unwrap();
        let account = &file.accounts[0];
        let campaigns = account
            .campaigns
            .iter()
            .map(|c| c.to_campaign(Uuid::nil()))
            .collect();
        let comment = TestComment {
            text,
            media_id: None,
            username: "maria",
            written_at_ms: 1_795_305_600_000,
        };
        let future = test_comment(campaigns, &account.ig_user_id, &comment, |_| {
            std::future::ready(answer.clone())
        });
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result.unwrap(),
            Poll::Pending => panic!("the stand-in model answers at once"),
        }
    }

    #[test]
    fn a_keyword_fires_with_the_texts_written_out() {
        let r = run(
            "PRICE?",
            ModelAnswer::NoIntent {
                source: "model".into(),
            },
        );
        let fired = r.fired.unwrap();
        assert_eq!(fired.campaign_slug, "price-list");
        assert_eq!(
            (fired.rule, fired.keyword.as_deref()),
            (Some(0), Some("price"))
        );
        assert_eq!(
            fired.actions[0].text,
            "Hi maria, prices: https://acme.example/p"
        );
        assert_eq!(fired.actions[0].quick_replies, ["More"]);
        assert_eq!(fired.actions[1].kind, "public_reply");
        // The buttons as the person sees them, and where a tap leads.
        let buttons = &fired.actions[0].buttons;
        assert_eq!(
            buttons
                .iter()
                .map(|b| (b.title.as_str(), b.step.as_deref(), b.url.as_deref()))
                .collect::<Vec<_>>(),
            [
                ("See the list", Some("list"), None),
                ("Shop", None, Some("https://acme.example/shop"))
            ]
        );
    }

    #[test]
    fn the_terminal_shows_where_each_button_leads() {
        let r = run(
            "price",
            ModelAnswer::NoIntent {
                source: "model".into(),
            },
        );
        let lines = r.lines();
        for line in [
            "    button \"See the list\": sends step \"list\"",
            "    button \"Shop\": opens https://acme.example/shop",
        ] {
            assert!(lines.contains(&line.to_owned()), "{lines:?}");
        }
    }

    #[test]
    fn the_model_decides_when_no_keyword_matches_and_its_absence_is_said() {
        let r = run(
            "where can I get these",
            ModelAnswer::Intent {
                name: "purchase".into(),
                source: "model".into(),
            },
        );
        assert_eq!(r.fired.unwrap().intent.as_deref(), Some("purchase"));
        let r = run(
            "where can I get these",
            ModelAnswer::NotAsked {
                reason: "no_model".into(),
            },
        );
        assert!(r.fired.is_none() && r.skipped.is_none());
        assert_eq!(r.lines().last().unwrap(), "no campaign fires");
        assert!(r.notes[0].contains("not asked (no_model)"), "{:?}", r.notes);
        let r = run(
            "  ",
            ModelAnswer::NotAsked {
                reason: "no_model".into(),
            },
        );
        assert_eq!(r.skipped.as_deref(), Some("no_text"));
    }
}
