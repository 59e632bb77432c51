//! From a comment and an account's campaigns to a decision: skip, no match, or a plan of
//! actions. Pure, so that `simulate`, the worker and the tests decide identically.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::campaign::{
    ActionKind, Button, Campaign, Capture, CaptureField, Condition, MediaScope, PublicReplyWhen,
    Step, Trigger,
};
use crate::event::{Act, Comment, MessagingItem, Referral};
use crate::ids::{EventId, IgUserId, MediaId};
use crate::matcher::{Matcher, MatcherError, Normalized};
use crate::template::{self, Vars};

/// Why an event causes no action at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The account's own comment or message (never answer yourself).
    Own,
    /// A comment without text (a sticker or a GIF).
    NoText,
    /// A kind igflow does not act on yet.
    KindNotHandled,
    /// The person asked for no automated messages (by message, or in the dashboard).
    OptedOut,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own_content",
            Self::NoText => "no_text",
            Self::KindNotHandled => "kind_not_handled",
            Self::OptedOut => "contact_opted_out",
        }
    }
}

/// A template button as sent: what a tap does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedButton {
    /// A postback with this payload (a step of the flow).
    Postback {
        title: String,
        payload: String,
    },
    Url {
        title: String,
        url: String,
    },
}

/// The postback payload of a button leading to `step` of `campaign`. Ours start with
/// `igflow:step:`, so a tap is told apart from payloads set elsewhere (ice breakers, menus).
pub fn step_payload(campaign: Uuid, step: &str) -> String {
    format!("{STEP_PAYLOAD}{campaign}:{step}")
}

const STEP_PAYLOAD: &str = "igflow:step:";

/// The campaign and step a payload of ours names.
pub(crate) fn parse_step_payload(payload: &str) -> Option<(Uuid, &str)> {
    let (campaign, step) = payload.strip_prefix(STEP_PAYLOAD)?.split_once(':')?;
    Some((campaign.parse().ok()?, step))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAction {
    pub kind: ActionKind,
    pub text: String,
    /// Quick-reply buttons, for DMs.
    pub quick_replies: Vec<String>,
    /// Template buttons, for DMs.
    pub buttons: Vec<PlannedButton>,
    /// Which of the campaign's public-reply variants this is (0-based), for its results.
    pub variant: Option<i16>,
}

/// What made a campaign fire, for the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchedBy {
    /// A keyword rule, by its index in the campaign and the keyword as the marketer wrote it.
    Keyword { rule: usize, keyword: String },
    /// An intent the model recognized.
    Intent { name: String },
    /// A story mention, or a story reply to a campaign without keyword rules.
    Story,
    /// A tapped button's payload.
    Payload { payload: String },
    /// An ig.me link's `ref` or an ad's id.
    Referral { by: String },
    /// A button leading to a step of the campaign's flow was tapped.
    Step { step: String },
}

impl MatchedBy {
    pub fn describe(&self) -> String {
        match self {
            Self::Keyword { rule, keyword } => format!("rule {rule} matched keyword {keyword:?}"),
            Self::Intent { name } => format!("intent {name:?}"),
            Self::Story => "story".to_owned(),
            Self::Payload { payload } => format!("payload {payload:?}"),
            Self::Referral { by } => format!("referral {by}"),
            Self::Step { step } => format!("step {step:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub campaign_id: Uuid,
    pub campaign_slug: String,
    pub matched_by: MatchedBy,
    /// The same contact gets at most one automated DM from the campaign in this time.
    pub cooldown: std::time::Duration,
    /// The private reply first, so the DM is there when the person reads "check your DMs".
    pub actions: Vec<PlannedAction>,
    /// The public reply is posted only if the private reply went out.
    pub public_follows_private: bool,
    /// Record what would be sent; send nothing.
    pub shadow: bool,
    /// The step is for followers only: the worker checks, and sends this instead to others.
    pub gate: Option<Box<Gate>>,
    /// The step asks for this; the person's next message is the answer.
    pub awaits: Option<CaptureField>,
}

/// A follow-gated step's other branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// "Follow us, then tap", with a button to try the step again.
    pub not_following: PlannedAction,
    /// How many times a person may be turned back before the step gives up on them.
    pub max_retries: u32,
}

/// A direct message that is nothing but a stop or start word, as with SMS short codes:
/// the person's choice about automated messages, never a campaign trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    OptOut,
    OptIn,
}

impl Consent {
    pub fn requested(text: &Normalized) -> Option<Self> {
        match text.words() {
            "stop" | "stop all" | "stopall" | "unsubscribe" | "opt out" | "optout" => {
                Some(Self::OptOut)
            }
            "start" | "unstop" | "subscribe" | "opt in" | "optin" => Some(Self::OptIn),
            _ => None,
        }
    }

    pub fn opted_out(self) -> bool {
        self == Self::OptOut
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Skip(SkipReason),
    /// The person opted out of or back into automated messages.
    Consent(Consent),
    NoMatch,
    Matched(Plan),
}

impl Decision {
    /// The outcome word recorded in the activity log.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Skip(reason) => reason.as_str(),
            Self::Consent(Consent::OptOut) => "opted_out",
            Self::Consent(Consent::OptIn) => "opted_in",
            Self::NoMatch => "no_match",
            Self::Matched(_) => "matched",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("campaign {slug:?}: {source}")]
pub struct CampaignSetError {
    pub campaign: Uuid,
    pub slug: String,
    pub source: MatcherError,
}

/// An account's active campaigns, highest priority first, with their rules compiled.
#[derive(Debug, Clone, Default)]
pub struct CampaignSet {
    campaigns: Vec<(Campaign, Matcher)>,
}

impl CampaignSet {
    /// Fails on a campaign whose rules cannot be compiled (rows written around the bounds).
    pub fn new(mut campaigns: Vec<Campaign>) -> Result<Self, CampaignSetError> {
        // Ties are broken by slug so the choice never depends on load order.
        campaigns.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.slug.cmp(&b.slug))
        });
        Ok(Self {
            campaigns: campaigns
                .into_iter()
                .map(|c| match Matcher::new(&c.rules) {
                    Ok(m) => Ok((c, m)),
                    Err(source) => Err(CampaignSetError {
                        campaign: c.id,
                        slug: c.slug,
                        source,
                    }),
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// The campaigns still waiting for the next post, with when each was armed (Unix ms).
    pub fn waiting_for_next_post(&self) -> Vec<(Uuid, i64)> {
        self.campaigns
            .iter()
            .filter_map(|(c, _)| match c.media {
                MediaScope::NextPost {
                    after_ms: Some(after),
                } => Some((c.id, after)),
                _ => None,
            })
            .collect()
    }

    /// The decision for a comment written at `written_at_ms`, by the campaigns running then.
    pub fn decide_comment(
        &self,
        event_id: &EventId,
        account: &IgUserId,
        comment: &Comment,
        written_at_ms: i64,
    ) -> Decision {
        if comment.is_own(account) {
            return Decision::Skip(SkipReason::Own);
        }
        let Some(text) = comment
            .text
            .as_deref()
            .map(Normalized::new)
            .filter(|t| !t.is_empty())
        else {
            return Decision::Skip(SkipReason::NoText);
        };
        let media = comment.media.as_ref().map(|m| &m.id);
        let vars = Vars {
            username: comment.from.username.as_deref(),
        };
        self.first_fired(event_id, Trigger::Comment, vars, |c, m| {
            let applies = c.schedule.covers(written_at_ms) && c.media.covers(media);
            applies.then(|| by_keyword(m, &text)).flatten()
        })
    }

    /// The same for a messaging item (a message, story mention or reply, postback or
    /// referral), against the campaigns of its trigger. A referral is asked first: where the
    /// person came from is the more specific answer.
    pub fn decide_messaging(
        &self,
        event_id: &EventId,
        account: &IgUserId,
        item: &MessagingItem,
        written_at_ms: i64,
    ) -> Decision {
        if item.is_own(account) {
            return Decision::Skip(SkipReason::Own);
        }
        let text = item.text().map(Normalized::new).filter(|t| !t.is_empty());
        let act = item.act();
        if act == Act::Message
            && let Some(consent) = text.as_ref().and_then(Consent::requested)
        {
            return Decision::Consent(consent);
        }
        if let Act::Postback { payload } = act
            && let Some((campaign, step)) = parse_step_payload(payload)
        {
            return self.step(event_id, campaign, step);
        }
        let running = |c: &Campaign| c.schedule.covers(written_at_ms);
        if let Some(referral) = item.referral() {
            let decision =
                self.first_fired(event_id, Trigger::Referral, Vars::default(), |c, _| {
                    running(c).then(|| referred_by(c, referral)).flatten()
                });
            if decision != Decision::NoMatch {
                return decision;
            }
        }
        let keyword = |c: &Campaign, m: &Matcher, text: &Normalized| {
            running(c).then(|| by_keyword(m, text)).flatten()
        };
        match act {
            Act::StoryMention => {
                self.first_fired(event_id, Trigger::StoryMention, Vars::default(), |c, _| {
                    running(c).then_some(MatchedBy::Story)
                })
            }
            Act::StoryReply { story } => {
                let story = story.and_then(|s| MediaId::parse(s).ok());
                self.first_fired(event_id, Trigger::StoryReply, Vars::default(), |c, m| {
                    if !c.media.covers(story.as_ref()) {
                        None
                    } else if c.rules.is_empty() {
                        running(c).then_some(MatchedBy::Story)
                    } else {
                        keyword(c, m, text.as_ref()?)
                    }
                })
            }
            Act::Postback { payload } => {
                self.first_fired(event_id, Trigger::Postback, Vars::default(), |c, _| {
                    (running(c) && c.payloads.iter().any(|p| p == payload)).then(|| {
                        MatchedBy::Payload {
                            payload: payload.to_owned(),
                        }
                    })
                })
            }
            Act::Message => match &text {
                Some(text) => {
                    self.first_fired(event_id, Trigger::Message, Vars::default(), |c, m| {
                        keyword(c, m, text)
                    })
                }
                None => Decision::Skip(SkipReason::NoText),
            },
            // A referral no campaign answered is still a person arriving, not an unknown kind.
            Act::Other if item.referral().is_some() => Decision::NoMatch,
            Act::Other => Decision::Skip(SkipReason::KindNotHandled),
        }
    }

    /// A reply within a step of `campaign`'s flow (a capture's "thanks" or "try again"), or
    /// no match if the campaign or step is gone.
    pub fn step_reply(&self, campaign: Uuid, step: &str, text: &str) -> Decision {
        let Some((campaign, _)) = self.find_step(campaign, step) else {
            return Decision::NoMatch;
        };
        Decision::Matched(Plan {
            campaign_id: campaign.id,
            campaign_slug: campaign.slug.clone(),
            matched_by: MatchedBy::Step {
                step: step.to_owned(),
            },
            cooldown: std::time::Duration::ZERO,
            actions: vec![PlannedAction {
                kind: ActionKind::Dm,
                text: text.to_owned(),
                quick_replies: Vec::new(),
                buttons: Vec::new(),
                variant: None,
            }],
            public_follows_private: false,
            shadow: campaign.shadow,
            gate: None,
            awaits: None,
        })
    }

    /// The slug of one of the account's active campaigns.
    pub fn slug_of(&self, campaign: Uuid) -> Option<&str> {
        self.campaigns
            .iter()
            .find(|(c, _)| c.id == campaign)
            .map(|(c, _)| c.slug.as_str())
    }

    /// Whether any step of the account's campaigns asks for an answer: only then may a
    /// message be one.
    pub fn has_captures(&self) -> bool {
        self.campaigns
            .iter()
            .any(|(c, _)| c.steps.iter().any(|s| s.capture.is_some()))
    }

    /// The condition of step `step` of `campaign` and the step it leads to when unmet,
    /// while both exist.
    pub fn condition_of(&self, campaign: Uuid, step: &str) -> Option<(Condition, Option<&str>)> {
        let (_, s) = self.find_step(campaign, step)?;
        Some((s.only_if?, s.otherwise.as_deref()))
    }

    /// The capture step `step` of `campaign`, while both exist.
    pub fn capture_of(&self, campaign: Uuid, step: &str) -> Option<&Capture> {
        self.find_step(campaign, step)?.1.capture.as_ref()
    }

    fn find_step(&self, campaign: Uuid, step: &str) -> Option<(&Campaign, &Step)> {
        self.campaigns.iter().find_map(|(c, _)| {
            let s = c.steps.iter().find(|s| s.name == step)?;
            (c.id == campaign).then_some((c, s))
        })
    }

    /// A tapped button's step: its message, sent whatever the campaign's cooldown (the person
    /// asked for it) while the campaign is active. A step no longer there matches nothing.
    pub fn step(&self, event_id: &EventId, campaign: Uuid, step: &str) -> Decision {
        let Some((campaign, step)) = self.find_step(campaign, step) else {
            return Decision::NoMatch;
        };
        let Some((index, text)) = pick_variant(event_id, ActionKind::Dm, &step.dm.0) else {
            return Decision::NoMatch;
        };
        Decision::Matched(Plan {
            campaign_id: campaign.id,
            campaign_slug: campaign.slug.clone(),
            matched_by: MatchedBy::Step {
                step: step.name.clone(),
            },
            cooldown: std::time::Duration::ZERO,
            actions: vec![PlannedAction {
                kind: ActionKind::Dm,
                text: template::render(text, Vars::default()),
                quick_replies: step.quick_replies.clone(),
                buttons: planned_buttons(campaign.id, &step.buttons),
                variant: (step.dm.0.len() > 1)
                    .then(|| i16::try_from(index).ok())
                    .flatten(),
            }],
            public_follows_private: false,
            shadow: campaign.shadow,
            gate: step.follow_gate.as_ref().map(|g| {
                Box::new(Gate {
                    not_following: PlannedAction {
                        kind: ActionKind::Dm,
                        text: g.not_following.clone(),
                        quick_replies: Vec::new(),
                        buttons: vec![PlannedButton::Postback {
                            title: g.retry_title.clone(),
                            payload: step_payload(campaign.id, &step.name),
                        }],
                        variant: None,
                    },
                    max_retries: g.max_retries,
                })
            }),
            awaits: step.capture.as_ref().map(|c| c.field),
        })
    }

    /// The highest-priority campaign of `trigger` that `fires` says fires, and why.
    fn first_fired(
        &self,
        event_id: &EventId,
        trigger: Trigger,
        vars: Vars<'_>,
        fires: impl Fn(&Campaign, &Matcher) -> Option<MatchedBy>,
    ) -> Decision {
        self.campaigns
            .iter()
            .filter(|(c, _)| c.trigger == trigger)
            .find_map(|(campaign, matcher)| {
                let matched_by = fires(campaign, matcher)?;
                Some(plan(event_id, campaign, matched_by, vars))
            })
            .map_or(Decision::NoMatch, Decision::Matched)
    }

    /// Campaigns a comment that matched no keyword may still fire by intent, highest
    /// priority first: comment campaigns with intents, running when it was written, whose
    /// media scope covers it.
    pub fn intent_candidates<'a>(
        &'a self,
        comment: &'a Comment,
        written_at_ms: i64,
    ) -> impl Iterator<Item = &'a Campaign> + 'a {
        let media = comment.media.as_ref().map(|m| &m.id);
        self.campaigns.iter().map(|(c, _)| c).filter(move |c| {
            c.trigger == Trigger::Comment
                && !c.intents.is_empty()
                && c.schedule.covers(written_at_ms)
                && c.media.covers(media)
        })
    }

    /// The plan when the model recognized one of `campaign`'s intents in `comment`.
    pub fn plan_intent(
        event_id: &EventId,
        campaign: &Campaign,
        intent: String,
        comment: &Comment,
    ) -> Plan {
        let vars = Vars {
            username: comment.from.username.as_deref(),
        };
        plan(event_id, campaign, MatchedBy::Intent { name: intent }, vars)
    }
}

fn by_keyword(matcher: &Matcher, text: &Normalized) -> Option<MatchedBy> {
    matcher.find(text).map(|hit| MatchedBy::Keyword {
        rule: hit.rule,
        keyword: hit.keyword,
    })
}

/// Why a referral campaign answers this referral: its ref, else its ad.
fn referred_by(campaign: &Campaign, referral: &Referral) -> Option<MatchedBy> {
    let named = |list: &[String], value: &Option<String>| {
        value
            .as_ref()
            .filter(|v| list.iter().any(|l| l == *v))
            .cloned()
    };
    if let Some(r) = named(&campaign.refs, &referral.ref_param) {
        return Some(MatchedBy::Referral {
            by: format!("ref {r:?}"),
        });
    }
    named(&campaign.ad_ids, &referral.ad_id).map(|ad| MatchedBy::Referral {
        by: format!("ad {ad}"),
    })
}

/// The campaign's actions for one event, their texts written out for its author.
fn plan(event_id: &EventId, campaign: &Campaign, matched_by: MatchedBy, vars: Vars<'_>) -> Plan {
    let actions = [
        (ActionKind::PrivateReply, &campaign.actions.private_reply),
        (ActionKind::PublicReply, &campaign.actions.public_replies),
        (ActionKind::Dm, &campaign.actions.dm),
    ]
    .into_iter()
    .filter_map(|(kind, variants)| {
        let (index, text) = pick_variant(event_id, kind, variants)?;
        let buttons = if kind.is_dm() {
            planned_buttons(campaign.id, &campaign.actions.buttons)
        } else {
            Vec::new()
        };
        Some(PlannedAction {
            kind,
            buttons,
            text: template::render(text, vars),
            // Recorded only where there was a choice, so results compare variants.
            variant: (variants.len() > 1 || kind == ActionKind::PublicReply)
                .then(|| i16::try_from(index).ok())
                .flatten(),
            quick_replies: if kind.is_dm() {
                campaign.actions.quick_replies.clone()
            } else {
                Vec::new()
            },
        })
    })
    .collect();
    Plan {
        campaign_id: campaign.id,
        campaign_slug: campaign.slug.clone(),
        matched_by,
        cooldown: campaign.cooldown,
        actions,
        public_follows_private: !campaign.actions.private_reply.is_empty()
            && campaign.actions.public_reply_when == PublicReplyWhen::PrivateReplySent,
        shadow: campaign.shadow,
        gate: None,
        awaits: None,
    }
}

fn planned_buttons(campaign: Uuid, buttons: &[Button]) -> Vec<PlannedButton> {
    buttons
        .iter()
        .filter_map(|b| {
            let title = b.title.clone();
            match (&b.step, &b.url) {
                (Some(step), _) => Some(PlannedButton::Postback {
                    title,
                    payload: step_payload(campaign, step),
                }),
                (None, Some(url)) => Some(PlannedButton::Url {
                    title,
                    url: url.clone(),
                }),
                (None, None) => None,
            }
        })
        .collect()
}

/// Chooses a variant by the event id, so a retried event picks the same text; each kind by
/// its own hash, so a comment's private and public reply variants are chosen independently.
fn pick_variant<'a>(
    event_id: &EventId,
    kind: ActionKind,
    variants: &'a [String],
) -> Option<(usize, &'a String)> {
    if variants.is_empty() {
        return None;
    }
    let mut hash = Sha256::new();
    // The public reply keeps the choice it had before the other kinds had variants.
    if kind != ActionKind::PublicReply {
        hash.update(kind.as_str().as_bytes());
        hash.update(b":");
    }
    hash.update(event_id.as_str().as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let n = u64::try_from(variants.len()).unwrap_or(u64::MAX);
    let index = usize::try_from(u64::from_be_bytes(first) % n).unwrap_or(0);
    variants.get(index).map(|text| (index, text))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::campaign::{Actions, MatchMode, MediaScope, Require, Rule, Schedule};
    use crate::ids::MediaId;

    /// When the test comments were written (2026-11-22T00:00:00Z).
    const NOW: i64 = 1_795_305_600_000;

    fn campaign(slug: &str, priority: i32, media: MediaScope, keyword: &str) -> Campaign {
        Campaign {
            id: Uuid::new_v4(),
            slug: slug.to_owned(),
            trigger: Trigger::Comment,
            priority,
            media,
            payloads: vec![],
            refs: vec![],
            ad_ids: vec![],
            schedule: Schedule::default(),
            cooldown: Duration::ZERO,
            shadow: false,
            rules: vec![Rule {
                mode: MatchMode::WholeWord,
                require: Require::Any,
                keywords: vec![keyword.to_owned()],
                exclude: vec![],
                fold_accents: true,
                stretch: false,
            }],
            intents: vec![],
            steps: vec![],
            actions: Actions {
                private_reply: vec![format!("dm from {slug}")],
                public_replies: vec!["a".into(), "b".into(), "c".into()],
                dm: vec![],
                quick_replies: vec![],
                public_reply_when: PublicReplyWhen::default(),
                buttons: vec![],
            },
        }
    }

    fn comment(json: &str) -> Comment {
        serde_json::from_str(json).unwrap()
    }

    /// A campaign of a messaging trigger answering with a DM.
    fn answering(slug: &str, trigger: Trigger, keyword: Option<&str>) -> Campaign {
        let mut c = campaign(slug, 0, MediaScope::Any, keyword.unwrap_or("unused"));
        if keyword.is_none() {
            c.rules.clear();
        }
        c.trigger = trigger;
        c.actions = Actions {
            dm: vec![format!("dm from {slug}")],
            ..Actions::default()
        };
        c
    }

    /// A `messaging[]` item in Meta's shape, from person 555 to account 100.
    fn messaging(body: serde_json::Value) -> MessagingItem {
        let mut item = serde_json::json!({
            "sender": { "id": "555" },
            "recipient": { "id": "100" },
            "timestamp": NOW,
        });
        for (k, v) in body.as_object().unwrap() {
            item[k] = v.clone();
        }
        serde_json::from_value(item).unwrap()
    }

    fn fired(set: &CampaignSet, item: &MessagingItem) -> Option<(String, String)> {
        let event = EventId::parse("message:m1").unwrap();
        match set.decide_messaging(&event, &IgUserId::parse("100").unwrap(), item, NOW) {
            Decision::Matched(plan) => Some((plan.campaign_slug, plan.matched_by.describe())),
            _ => None,
        }
    }

    fn all_triggers() -> CampaignSet {
        let mut story_reply = answering("giveaway-story", Trigger::StoryReply, Some("win"));
        story_reply.priority = 1;
        story_reply.media = MediaScope::Only(vec![MediaId::parse("17900000000000001").unwrap()]);
        let mut postback = answering("prices-button", Trigger::Postback, None);
        postback.payloads = vec!["PRICES".into()];
        let mut referral = answering("bio-link", Trigger::Referral, None);
        referral.refs = vec!["bio".into()];
        referral.ad_ids = vec!["120210000000000001".into()];
        CampaignSet::new(vec![
            answering("hello", Trigger::Message, Some("win")),
            answering("thanks-for-the-mention", Trigger::StoryMention, None),
            answering("any-story-reply", Trigger::StoryReply, None),
            story_reply,
            postback,
            referral,
        ])
        .unwrap()
    }

    #[test]
    fn each_messaging_trigger_fires_its_own_campaigns() {
        let set = all_triggers();
        let mention = messaging(
            serde_json::json!({ "message": { "mid": "m1", "attachments": [
            { "type": "story_mention", "payload": { "url": "https://lookaside.example/story" } }
        ] } }),
        );
        assert_eq!(
            fired(&set, &mention),
            Some(("thanks-for-the-mention".into(), "story".into()))
        );
        let tap = messaging(serde_json::json!({
            "postback": { "mid": "m2", "title": "Prices", "payload": "PRICES" }
        }));
        assert_eq!(
            fired(&set, &tap),
            Some(("prices-button".into(), "payload \"PRICES\"".into()))
        );
        let other_tap = messaging(serde_json::json!({
            "postback": { "mid": "m3", "title": "Other", "payload": "OTHER" }
        }));
        assert_eq!(fired(&set, &other_tap), None);
        let plain =
            messaging(serde_json::json!({ "message": { "mid": "m4", "text": "I want to win" } }));
        assert_eq!(
            fired(&set, &plain),
            Some(("hello".into(), "rule 0 matched keyword \"win\"".into()))
        );
    }

    #[test]
    fn a_story_reply_fires_story_campaigns_only_and_respects_their_stories() {
        let set = all_triggers();
        let reply = |story: &str, text: &str| {
            messaging(serde_json::json!({ "message": { "mid": "m5", "text": text,
                "reply_to": { "story": { "url": "https://lookaside.example/s", "id": story } } } }))
        };
        // The giveaway story's keyword campaign, not the message campaign with the same word.
        let on_giveaway = reply("17900000000000001", "win please");
        assert_eq!(
            fired(&set, &on_giveaway),
            Some((
                "giveaway-story".into(),
                "rule 0 matched keyword \"win\"".into()
            ))
        );
        // Another story: the giveaway campaign does not listen there; the catch-all does.
        let elsewhere = reply("17900000000000002", "win please");
        assert_eq!(
            fired(&set, &elsewhere),
            Some(("any-story-reply".into(), "story".into()))
        );
        let only_message =
            CampaignSet::new(vec![answering("hello", Trigger::Message, Some("win"))]).unwrap();
        assert_eq!(fired(&only_message, &on_giveaway), None);
    }

    #[test]
    fn a_referral_is_answered_first_wherever_meta_put_it() {
        let set = all_triggers();
        let standalone = messaging(serde_json::json!({
            "referral": { "ref": "bio", "source": "IG.ME", "type": "OPEN_THREAD" }
        }));
        assert_eq!(
            fired(&set, &standalone),
            Some(("bio-link".into(), "referral ref \"bio\"".into()))
        );
        let ad_message = messaging(
            serde_json::json!({ "message": { "mid": "m6", "text": "win?",
            "referral": { "ad_id": "120210000000000001", "source": "ADS", "type": "OPEN_THREAD" } } }),
        );
        assert_eq!(
            fired(&set, &ad_message),
            Some(("bio-link".into(), "referral ad 120210000000000001".into()))
        );
        let ice_breaker = messaging(
            serde_json::json!({ "postback": { "mid": "m7", "payload": "PRICES",
            "referral": { "ref": "bio", "source": "IG.ME", "type": "OPEN_THREAD" } } }),
        );
        assert_eq!(fired(&set, &ice_breaker).unwrap().0, "bio-link");
        // A ref no campaign knows: the message is decided as a message, the tap as a tap.
        let unknown = messaging(serde_json::json!({ "message": { "mid": "m8", "text": "win",
            "referral": { "ref": "newsletter", "source": "IG.ME" } } }));
        assert_eq!(fired(&set, &unknown).unwrap().0, "hello");
        let alone = messaging(serde_json::json!({ "referral": { "ref": "newsletter" } }));
        let event = EventId::parse("message:m9").unwrap();
        let own = IgUserId::parse("100").unwrap();
        assert_eq!(
            set.decide_messaging(&event, &own, &alone, NOW),
            Decision::NoMatch
        );
    }

    #[test]
    fn own_taps_stop_words_and_reactions_are_not_campaign_triggers() {
        let set = all_triggers();
        let event = EventId::parse("message:m10").unwrap();
        let own = IgUserId::parse("100").unwrap();
        let self_tap = messaging(serde_json::json!({ "is_self": true,
            "postback": { "mid": "m", "title": "Start", "payload": "PRICES" } }));
        assert_eq!(
            set.decide_messaging(&event, &own, &self_tap, NOW),
            Decision::Skip(SkipReason::Own)
        );
        let stop = messaging(serde_json::json!({ "message": { "mid": "m", "text": "STOP",
            "referral": { "ref": "bio" } } }));
        assert_eq!(
            set.decide_messaging(&event, &own, &stop, NOW),
            Decision::Consent(Consent::OptOut)
        );
        let reaction = messaging(
            serde_json::json!({ "reaction": { "mid": "m", "action": "react", "reaction": "love" } }),
        );
        assert_eq!(
            set.decide_messaging(&event, &own, &reaction, NOW),
            Decision::Skip(SkipReason::KindNotHandled)
        );
    }

    #[test]
    fn only_a_bare_stop_or_start_word_is_consent() {
        let consent = |text: &str| Consent::requested(&Normalized::new(text));
        for stop in [
            "STOP",
            "Stop!",
            " stop all ",
            "Unsubscribe \u{1F6D1}",
            "opt-out",
        ] {
            assert_eq!(consent(stop), Some(Consent::OptOut), "{stop:?}");
        }
        for start in ["START", "Opt in", "unstop"] {
            assert_eq!(consent(start), Some(Consent::OptIn), "{start:?}");
        }
        for other in [
            "don't stop",
            "stop sending me stuff",
            "price?",
            "starter kit",
        ] {
            assert_eq!(consent(other), None, "{other:?}");
        }
    }

    #[test]
    fn priority_then_media_scope_decide() {
        let set = CampaignSet::new(vec![
            campaign("low", 1, MediaScope::Any, "price"),
            campaign(
                "high",
                9,
                MediaScope::Only(vec![MediaId::parse("m1").unwrap()]),
                "price",
            ),
        ])
        .unwrap();
        let account = IgUserId::parse("100").unwrap();
        let id = EventId::parse("comment:1").unwrap();
        let on_m1 = comment(r#"{"id":"1","from":{"id":"7"},"text":"price?","media":{"id":"m1"}}"#);
        let on_m2 = comment(r#"{"id":"1","from":{"id":"7"},"text":"price?","media":{"id":"m2"}}"#);
        let Decision::Matched(p) = set.decide_comment(&id, &account, &on_m1, NOW) else {
            panic!()
        };
        assert_eq!(p.campaign_slug, "high");
        assert_eq!(
            p.actions[0],
            PlannedAction {
                kind: ActionKind::PrivateReply,
                text: "dm from high".into(),
                quick_replies: vec![],
                buttons: vec![],
                variant: None,
            }
        );
        assert_eq!(p.actions[1].kind, ActionKind::PublicReply);
        assert!(
            p.actions[1].variant.is_some(),
            "the chosen variant is recorded"
        );
        let Decision::Matched(p) = set.decide_comment(&id, &account, &on_m2, NOW) else {
            panic!()
        };
        assert_eq!(p.campaign_slug, "low");
        let other = comment(r#"{"id":"1","from":{"id":"7"},"text":"hello","media":{"id":"m1"}}"#);
        assert_eq!(
            set.decide_comment(&id, &account, &other, NOW),
            Decision::NoMatch
        );
        let own = comment(r#"{"id":"1","from":{"id":"100"},"text":"price","media":{"id":"m1"}}"#);
        assert_eq!(
            set.decide_comment(&id, &account, &own, NOW),
            Decision::Skip(SkipReason::Own)
        );
        let sticker = comment(r#"{"id":"1","from":{"id":"7"},"media":{"id":"m1"}}"#);
        assert_eq!(
            set.decide_comment(&id, &account, &sticker, NOW),
            Decision::Skip(SkipReason::NoText)
        );
    }

    #[test]
    fn a_campaign_waiting_for_the_next_post_matches_nothing_until_it_is_bound() {
        let waiting = campaign(
            "drop",
            9,
            MediaScope::NextPost {
                after_ms: Some(NOW),
            },
            "price",
        );
        let id = waiting.id;
        let set =
            CampaignSet::new(vec![waiting, campaign("any", 1, MediaScope::Any, "x")]).unwrap();
        assert_eq!(set.waiting_for_next_post(), [(id, NOW)]);
        let on_m1 = comment(r#"{"id":"1","from":{"id":"7"},"text":"price?","media":{"id":"m1"}}"#);
        let (account, event) = (
            IgUserId::parse("100").unwrap(),
            EventId::parse("comment:1").unwrap(),
        );
        assert_eq!(
            set.decide_comment(&event, &account, &on_m1, NOW),
            Decision::NoMatch
        );
    }

    #[test]
    fn a_scheduled_campaign_fires_for_what_was_written_while_it_ran() {
        let mut promo = campaign("promo", 9, MediaScope::Any, "price");
        promo.schedule = Schedule {
            starts_at_ms: Some(NOW),
            ends_at_ms: Some(NOW + 3_600_000),
        };
        let set =
            CampaignSet::new(vec![promo, campaign("always", 1, MediaScope::Any, "price")]).unwrap();
        let account = IgUserId::parse("100").unwrap();
        let id = EventId::parse("comment:1").unwrap();
        let price = comment(r#"{"id":"1","from":{"id":"7"},"text":"price?"}"#);
        let fired = |at| match set.decide_comment(&id, &account, &price, at) {
            Decision::Matched(p) => p.campaign_slug,
            other => panic!("{other:?}"),
        };
        assert_eq!(fired(NOW - 1), "always", "before the start");
        assert_eq!(fired(NOW), "promo", "the start is inclusive");
        assert_eq!(fired(NOW + 3_599_999), "promo");
        assert_eq!(fired(NOW + 3_600_000), "always", "the end is exclusive");
    }

    #[test]
    fn variant_choice_is_stable_spread_and_independent_per_kind() {
        let variants: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let id = EventId::parse("comment:42").unwrap();
        let pick = |id: &EventId, kind| pick_variant(id, kind, &variants).map(|(i, _)| i);
        assert_eq!(
            pick(&id, ActionKind::PublicReply),
            pick(&id, ActionKind::PublicReply)
        );
        let ids: Vec<EventId> = (0..60)
            .map(|i| EventId::parse(format!("comment:{i}")).unwrap())
            .collect();
        for kind in [
            ActionKind::PublicReply,
            ActionKind::PrivateReply,
            ActionKind::Dm,
        ] {
            let used: std::collections::HashSet<_> = ids.iter().map(|id| pick(id, kind)).collect();
            assert_eq!(used.len(), 3, "{kind}");
        }
        // Not the same index for both replies of every comment.
        assert!(
            ids.iter()
                .any(|id| pick(id, ActionKind::PublicReply) != pick(id, ActionKind::PrivateReply))
        );
        assert_eq!(pick_variant(&id, ActionKind::Dm, &[]), None);
    }

    #[test]
    fn a_private_reply_with_variants_records_the_one_chosen() {
        let mut c = campaign("promo", 0, MediaScope::Any, "deal");
        c.actions.private_reply = vec!["one {username}".into(), "two {username}".into()];
        let set = CampaignSet::new(vec![c]).unwrap();
        let texts: std::collections::HashSet<_> = (0..40)
            .filter_map(|i| {
                let id = EventId::parse(format!("comment:{i}")).unwrap();
                let json =
                    format!(r#"{{"id":"{i}","from":{{"id":"7","username":"ana"}},"text":"deal"}}"#);
                match set.decide_comment(
                    &id,
                    &IgUserId::parse("100").unwrap(),
                    &comment(&json),
                    NOW,
                ) {
                    Decision::Matched(p) => Some((p.actions[0].variant, p.actions[0].text.clone())),
                    _ => None,
                }
            })
            .collect();
        assert_eq!(
            texts,
            [
                (Some(0), "one ana".to_owned()),
                (Some(1), "two ana".to_owned())
            ]
            .into_iter()
            .collect()
        );
    }
}
