//! Campaigns as code: the YAML (or JSON, a subset of YAML) file engineers, the demo and the
//! tests load with `igflow-worker apply`. See `campaigns/README.md` for the format.
//! Parsing and validation are here; writing to Postgres and Secrets Manager is the worker's.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::campaign::{
    AccountLimits, Actions, Button, Campaign, CampaignStatus, Capture, FollowGate, Intent,
    LoginFlavor, MatchMode, MediaScope, PublicReplyWhen, Require, Rule, RuleUse, Schedule, Step,
    Texts, Trigger,
};
use crate::ids::{IgUserId, MediaId, PageId};
use crate::matcher::Normalized;
use crate::template;

pub const FILE_VERSION: u32 = 1;
/// Meta's limit for a text message.
pub const MAX_DM_BYTES: usize = 1000;
/// Instagram's limit for a comment.
pub const MAX_COMMENT_CHARS: usize = 2200;
pub const MAX_COOLDOWN_SECONDS: u32 = 365 * 24 * 3600;
/// Meta's published limits per Instagram account; an account's own budgets may only be lower.
const MAX_PRIVATE_REPLIES_PER_HOUR: u32 = 750;
const MAX_SEND_API_PER_SECOND: u32 = 100;
/// Instagram's limits for quick-reply buttons.
pub const MAX_QUICK_REPLIES: usize = 13;
pub const MAX_QUICK_REPLY_CHARS: usize = 20;
const MAX_INTENT_NAME_CHARS: usize = 40;
// Rules and keywords are compiled into an automaton per campaign, and intents go into every
// classification prompt: these bound the memory and the prompt one campaign can cost, far
// above what a campaign needs. Postgres holds the same bounds (migration
// 20261129000200), so the dashboard cannot store more either.
pub const MAX_RULES: usize = 20;
/// Per rule, for its keywords and for its excluded words each.
pub const MAX_KEYWORDS: usize = 50;
pub const MAX_KEYWORD_CHARS: usize = 100;
pub const MAX_INTENTS: usize = 20;
pub const MAX_INTENT_DESCRIPTION_CHARS: usize = 500;
/// Examples go into every classification prompt: a few show the model enough.
pub const MAX_INTENT_EXAMPLES: usize = 10;
pub const MAX_INTENT_EXAMPLE_CHARS: usize = 300;
pub const MAX_PUBLIC_REPLIES: usize = 20;
/// Variants of a private reply or DM.
pub const MAX_TEXT_VARIANTS: usize = 20;
/// Meta's button template: at most 3 buttons, titles cut at 20 characters, at most 640
/// characters of text above them.
pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
pub const MAX_TEMPLATE_TEXT_CHARS: usize = 640;
pub const MAX_URL_CHARS: usize = 2000;
/// Steps of one campaign's flow.
pub const MAX_STEPS: usize = 10;
pub const MAX_STEP_NAME_CHARS: usize = 32;
/// How often a follow gate lets a person try again, or a capture step asks again.
pub const MAX_GATE_RETRIES: u32 = 10;
/// Per campaign, for its payloads, refs and ad ids each.
pub const MAX_LISTENED: usize = 20;
/// Meta's limit for a button's payload.
pub const MAX_PAYLOAD_CHARS: usize = 1000;
/// Meta's limit for a link's `ref` parameter.
pub const MAX_REF_CHARS: usize = 2083;
/// The model's answer when no intent fits.
const NO_INTENT: &str = "none";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub version: u32,
    pub tenant: TenantSpec,
    pub accounts: Vec<AccountSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub slug: String,
    pub name: String,
    /// The tenant's own endpoint for what capture steps store (signed with HMAC-SHA256).
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
}

/// An outbound webhook: where to POST, and the secret to sign with (inline for demos and
/// tests, or from an environment variable of the `apply` process), exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub url: String,
    #[serde(default)]
    secret: Option<SecretString>,
    #[serde(default)]
    secret_env: Option<String>,
}

impl WebhookSpec {
    pub fn secret_source(&self) -> Option<TokenSource<'_>> {
        match (&self.secret, &self.secret_env) {
            (Some(secret), None) => Some(TokenSource::Inline(secret)),
            (None, Some(var)) => Some(TokenSource::Env(var)),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub ig_user_id: IgUserId,
    pub username: String,
    pub login: LoginFlavor,
    #[serde(default)]
    pub page_id: Option<PageId>,
    #[serde(default)]
    access_token: Option<SecretString>,
    #[serde(default)]
    access_token_env: Option<String>,
    /// The account's own rate budgets (defaults: 750 private replies per hour, 100 Send API
    /// calls per second, 200 automated DMs per hour).
    #[serde(default)]
    pub limits: AccountLimits,
    #[serde(default)]
    pub campaigns: Vec<CampaignSpec>,
}

/// Where an account's access token (or a webhook's secret) comes from when the file is
/// applied.
#[derive(Debug)]
pub enum TokenSource<'a> {
    Inline(&'a SecretString),
    /// The name of an environment variable of the `apply` process.
    Env(&'a str),
}

impl AccountSpec {
    pub fn token_source(&self) -> Option<TokenSource<'_>> {
        match (&self.access_token, &self.access_token_env) {
            (Some(token), None) => Some(TokenSource::Inline(token)),
            (None, Some(var)) => Some(TokenSource::Env(var)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    pub slug: String,
    pub name: String,
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    #[serde(default = "default_status")]
    pub status: CampaignStatus,
    /// Higher wins when several campaigns match one comment.
    #[serde(default)]
    pub priority: i32,
    /// The same person gets at most one automated DM per campaign in this time.
    #[serde(default)]
    pub cooldown_seconds: u32,
    /// Shadow mode: decide and record what would be sent (windows and cooldowns included),
    /// send nothing, spend no rate budget.
    #[serde(default)]
    pub shadow: bool,
    /// Posts and reels (trigger `comment`) or stories (trigger `story_reply`) the campaign
    /// listens on; empty means all of them.
    #[serde(default)]
    pub media_ids: Vec<MediaId>,
    /// Comments only: listen on the first post or reel the account publishes after the
    /// campaign is saved (found when its first comment arrives) instead of on `media_ids`.
    #[serde(default)]
    pub next_post: bool,
    /// The button payloads a `postback` campaign answers.
    #[serde(default)]
    pub payloads: Vec<String>,
    /// The ig.me link `ref` values and the click-to-message ad ids a `referral` campaign
    /// answers.
    #[serde(default)]
    pub refs: Vec<String>,
    #[serde(default)]
    pub ad_ids: Vec<String>,
    /// When the campaign runs (RFC 3339, e.g. `2026-12-01T09:00:00+01:00`): it fires for
    /// what is written from `starts_at` until before `ends_at`; either may be left out.
    #[serde(default)]
    pub starts_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub ends_at: Option<jiff::Timestamp>,
    /// Required for comments and messages; optional for story replies (none: any reply).
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Asked of the model when no rule matches.
    #[serde(default)]
    pub intents: Vec<IntentSpec>,
    pub actions: ActionsSpec,
    /// A small flow: named steps, each a DM sent when a button naming it is tapped.
    #[serde(default)]
    pub steps: Vec<Step>,
}

fn default_trigger() -> Trigger {
    Trigger::Comment
}

fn default_status() -> CampaignStatus {
    CampaignStatus::Active
}

impl CampaignSpec {
    /// Where the campaign listens, as the file says it: a "next post" campaign is armed only
    /// once it is stored.
    pub fn media_scope(&self) -> MediaScope {
        if self.next_post {
            MediaScope::NextPost { after_ms: None }
        } else if self.media_ids.is_empty() {
            MediaScope::Any
        } else {
            MediaScope::Only(self.media_ids.clone())
        }
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            starts_at_ms: self.starts_at.map(|t| t.as_millisecond()),
            ends_at_ms: self.ends_at.map(|t| t.as_millisecond()),
        }
    }

    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(u64::from(self.cooldown_seconds))
    }

    pub fn rules(&self) -> Vec<Rule> {
        self.rules
            .iter()
            .map(|r| Rule {
                mode: r.mode,
                require: r.require,
                keywords: r.keywords.clone(),
                exclude: r.exclude.clone(),
                fold_accents: r.fold_accents,
                stretch: r.stretch,
            })
            .collect()
    }

    pub fn intents(&self) -> Vec<Intent> {
        self.intents
            .iter()
            .map(|i| Intent {
                name: i.name.clone(),
                description: i.description.clone(),
                examples: i.examples.clone(),
            })
            .collect()
    }

    /// The campaign as the worker sees it, under `id`.
    pub fn to_campaign(&self, id: uuid::Uuid) -> Campaign {
        Campaign {
            id,
            slug: self.slug.clone(),
            trigger: self.trigger,
            priority: self.priority,
            media: self.media_scope(),
            payloads: self.payloads.clone(),
            refs: self.refs.clone(),
            ad_ids: self.ad_ids.clone(),
            schedule: self.schedule(),
            cooldown: self.cooldown(),
            shadow: self.shadow,
            rules: self.rules(),
            intents: self.intents(),
            actions: self.actions(),
            steps: self.steps.clone(),
        }
    }

    /// Everything wrong with this campaign, fields named relative to it. Campaign files and
    /// the dashboard both use this one validator.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut p = Problems::default();
        p.campaign(self);
        p.0
    }

    pub fn actions(&self) -> Actions {
        Actions {
            private_reply: self.actions.private_reply.0.clone(),
            public_replies: self.actions.public_replies.clone(),
            dm: self.actions.dm.0.clone(),
            quick_replies: self.actions.quick_replies.clone(),
            public_reply_when: self.actions.public_reply_when,
            buttons: self.actions.buttons.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub keywords: Vec<String>,
    #[serde(rename = "match", default = "default_mode")]
    pub mode: MatchMode,
    #[serde(default = "default_require")]
    pub require: Require,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "default_fold_accents")]
    pub fold_accents: bool,
    #[serde(default)]
    pub stretch: bool,
}

fn default_mode() -> MatchMode {
    MatchMode::WholeWord
}

fn default_fold_accents() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentSpec {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub examples: Vec<String>,
}

fn default_require() -> Require {
    Require::Any
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsSpec {
    /// One text, or variants (one is chosen per comment and recorded).
    #[serde(default)]
    pub private_reply: Texts,
    #[serde(default)]
    pub public_replies: Vec<String>,
    /// The answer to a direct message (every trigger but `comment`); one text or variants.
    #[serde(default)]
    pub dm: Texts,
    /// Buttons under the private reply or DM (at most 13 of at most 20 characters).
    #[serde(default)]
    pub quick_replies: Vec<String>,
    /// Buttons under the private reply or DM (Meta's button template: at most 3, titles of
    /// at most 20 characters), each leading to a step or opening a URL.
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// `private_reply_sent` (default): "check your DMs" only when the DM went out;
    /// `always`: whatever became of it.
    #[serde(default)]
    pub public_reply_when: PublicReplyWhen,
}

/// Everything wrong with a file, one line per problem, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("campaign file rejected:\n  {}", problems.join("\n  "))]
pub struct CampaignFileError {
    pub problems: Vec<String>,
}

impl CampaignFile {
    /// Parses and validates; nothing is returned unless the whole file is sound.
    pub fn parse(text: &str) -> Result<Self, CampaignFileError> {
        let file: Self = serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                <serde_saphyr::Error as serde::de::Error>::custom(if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                })
            })
        })
        .map_err(|e| CampaignFileError {
            problems: vec![e.to_string()],
        })?;
        let problems = file.problems();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(CampaignFileError { problems })
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Problems::default();
        if self.version != FILE_VERSION {
            p.add(
                "version",
                format!("must be {FILE_VERSION}, found {}", self.version),
            );
        }
        p.slug("tenant.slug", &self.tenant.slug);
        p.non_blank("tenant.name", &self.tenant.name);
        if let Some(webhook) = &self.tenant.webhook {
            let url = &webhook.url;
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.len() > MAX_URL_CHARS
                || url.chars().any(char::is_whitespace)
            {
                p.add(
                    "tenant.webhook.url",
                    format!("{url:?} must be an http(s) URL of at most {MAX_URL_CHARS} characters"),
                );
            }
            if webhook.secret_source().is_none() {
                p.add(
                    "tenant.webhook.secret",
                    "set exactly one of secret or secret_env",
                );
            }
        }
        if self.accounts.is_empty() {
            p.add("accounts", "must list at least one account");
        }
        let mut account_ids = HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{i}]");
            if !account_ids.insert(&account.ig_user_id) {
                p.add(
                    &format!("{at}.ig_user_id"),
                    format!("{} is listed twice", account.ig_user_id),
                );
            }
            p.non_blank(&format!("{at}.username"), &account.username);
            match (account.login, &account.page_id) {
                (LoginFlavor::Facebook, None) => {
                    p.add(
                        &format!("{at}.page_id"),
                        "is required with login: facebook (messages go to /{page-id}/messages)",
                    );
                }
                (LoginFlavor::Instagram, Some(_)) => {
                    p.add(&format!("{at}.page_id"), "only applies to login: facebook");
                }
                _ => {}
            }
            let limits = account.limits;
            for (field, value, meta_max) in [
                (
                    "private_replies_per_hour",
                    limits.private_replies_per_hour,
                    Some(MAX_PRIVATE_REPLIES_PER_HOUR),
                ),
                (
                    "send_api_per_second",
                    limits.send_api_per_second,
                    Some(MAX_SEND_API_PER_SECOND),
                ),
                (
                    "automated_dms_per_hour",
                    limits.automated_dms_per_hour,
                    None,
                ),
            ] {
                let field = format!("{at}.limits.{field}");
                match (value, meta_max) {
                    (Some(0), _) => p.add(&field, "must be at least 1 (pause the account instead)"),
                    (Some(v), Some(max)) if v > max => p.add(
                        &field,
                        format!(
                            "is {v}; Meta allows at most {max}, and restricts accounts that go over"
                        ),
                    ),
                    _ => {}
                }
            }
            if account.token_source().is_none() {
                p.add(
                    &format!("{at}.access_token"),
                    "set exactly one of access_token or access_token_env",
                );
            }
            let mut slugs = HashSet::new();
            for (j, campaign) in account.campaigns.iter().enumerate() {
                let at = format!("{at}.campaigns[{j}]");
                if !slugs.insert(&campaign.slug) {
                    p.add(
                        &format!("{at}.slug"),
                        format!("{:?} is used twice in this account", campaign.slug),
                    );
                }
                for problem in campaign.problems() {
                    p.add(&format!("{at}.{}", problem.field), problem.message);
                }
            }
        }
        p.0.iter().map(ToString::to_string).collect()
    }
}

/// One problem with one field, the field named relative to what was checked
/// (`rules[0].keywords` in a campaign, `accounts[0].campaigns[0].rules[0].keywords` in a file),
/// so the dashboard can show it next to the field and a file's reader finds the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl std::fmt::Display) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: problem.to_string(),
        });
    }

    fn non_blank(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        }
    }

    fn slug(&mut self, field: &str, value: &str) {
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.add(
                field,
                format!("{value:?} must be 1 to 64 of a-z, 0-9 and -"),
            );
        }
    }

    /// A list of at most `max` entries, each at most `max_chars` characters.
    fn bounded(&mut self, field: &str, what: &str, list: &[String], max: usize, max_chars: usize) {
        if list.len() > max {
            self.add(
                field,
                format!("lists {} {what}; at most {max} are allowed", list.len()),
            );
        }
        for (i, text) in list.iter().enumerate() {
            let chars = text.chars().count();
            if chars > max_chars {
                self.add(
                    &format!("{field}[{i}]"),
                    format!("is {chars} characters; at most {max_chars} are allowed"),
                );
            }
        }
    }

    fn keywords(&mut self, field: &str, keywords: &[String]) {
        self.bounded(field, "words", keywords, MAX_KEYWORDS, MAX_KEYWORD_CHARS);
        for (k, keyword) in keywords.iter().enumerate() {
            if Normalized::new(keyword).is_empty() {
                self.add(
                    &format!("{field}[{k}]"),
                    format!("{keyword:?} has no letters, digits or emoji to match"),
                );
            }
        }
    }

    fn intents(&mut self, intents: &[IntentSpec]) {
        if intents.len() > MAX_INTENTS {
            self.add(
                "intents",
                format!("lists {}; at most {MAX_INTENTS} are allowed", intents.len()),
            );
        }
        let mut names = HashSet::new();
        for (i, intent) in intents.iter().enumerate() {
            let at = format!("intents[{i}]");
            let name = &intent.name;
            let well_formed = (1..=MAX_INTENT_NAME_CHARS).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !well_formed {
                self.add(
                    &format!("{at}.name"),
                    format!("{name:?} must be 1 to {MAX_INTENT_NAME_CHARS} of a-z, 0-9 and _"),
                );
            } else if name == NO_INTENT {
                self.add(
                    &format!("{at}.name"),
                    format!("{NO_INTENT:?} is reserved (the model's answer when no intent fits)"),
                );
            } else if !names.insert(name) {
                self.add(
                    &format!("{at}.name"),
                    format!("{name:?} is used twice in this campaign"),
                );
            }
            self.non_blank(&format!("{at}.description"), &intent.description);
            let chars = intent.description.chars().count();
            if chars > MAX_INTENT_DESCRIPTION_CHARS {
                self.add(
                    &format!("{at}.description"),
                    format!(
                        "is {chars} characters; at most {MAX_INTENT_DESCRIPTION_CHARS} are allowed"
                    ),
                );
            }
            self.bounded(
                &format!("{at}.examples"),
                "examples",
                &intent.examples,
                MAX_INTENT_EXAMPLES,
                MAX_INTENT_EXAMPLE_CHARS,
            );
            for (e, example) in intent.examples.iter().enumerate() {
                self.non_blank(&format!("{at}.examples[{e}]"), example);
            }
        }
    }

    fn campaign(&mut self, campaign: &CampaignSpec) {
        self.slug("slug", &campaign.slug);
        self.non_blank("name", &campaign.name);
        if campaign.cooldown_seconds > MAX_COOLDOWN_SECONDS {
            self.add(
                "cooldown_seconds",
                format!("must be at most {MAX_COOLDOWN_SECONDS} (one year)"),
            );
        }
        if let (Some(start), Some(end)) = (campaign.starts_at, campaign.ends_at)
            && end <= start
        {
            self.add(
                "ends_at",
                format!("{end} must be after starts_at ({start})"),
            );
        }
        if campaign.rules.len() > MAX_RULES {
            self.add(
                "rules",
                format!(
                    "lists {}; at most {MAX_RULES} are allowed",
                    campaign.rules.len()
                ),
            );
        }
        for (r, rule) in campaign.rules.iter().enumerate() {
            let field = format!("rules[{r}].keywords");
            if rule.keywords.is_empty() {
                self.add(&field, "must list at least one keyword");
            }
            self.keywords(&field, &rule.keywords);
            self.keywords(&format!("rules[{r}].exclude"), &rule.exclude);
        }
        self.intents(&campaign.intents);
        self.trigger(campaign);
        let actions = &campaign.actions;
        let username_known = campaign.trigger == Trigger::Comment;
        for (name, texts) in [
            ("private_reply", &actions.private_reply),
            ("dm", &actions.dm),
        ] {
            if texts.0.len() > MAX_TEXT_VARIANTS {
                self.add(
                    &format!("actions.{name}"),
                    format!(
                        "lists {} variants; at most {MAX_TEXT_VARIANTS} are allowed",
                        texts.0.len()
                    ),
                );
            }
            for (v, text) in texts.0.iter().enumerate() {
                let field = if texts.0.len() == 1 {
                    format!("actions.{name}")
                } else {
                    format!("actions.{name}[{v}]")
                };
                self.dm_text(&field, text, username_known);
            }
        }
        self.quick_replies(actions);
        self.flow(campaign);
        if actions.public_replies.len() > MAX_PUBLIC_REPLIES {
            self.add(
                "actions.public_replies",
                format!(
                    "lists {} variants; at most {MAX_PUBLIC_REPLIES} are allowed",
                    actions.public_replies.len()
                ),
            );
        }
        for (v, text) in actions.public_replies.iter().enumerate() {
            let field = format!("actions.public_replies[{v}]");
            self.text(&field, text, username_known);
            let chars = template::longest(text).chars().count();
            if chars > MAX_COMMENT_CHARS {
                self.add(
                    &field,
                    format!(
                        "is {chars} characters{}; Instagram accepts at most {MAX_COMMENT_CHARS}",
                        filled_in(text)
                    ),
                );
            }
        }
    }

    /// What the trigger needs and what only applies to other triggers.
    fn trigger(&mut self, campaign: &CampaignSpec) {
        let trigger = campaign.trigger;
        let only = |what: &str| format!("only applies to trigger: {what}");
        match trigger.rules() {
            RuleUse::Required if campaign.rules.is_empty() => self.add(
                "rules",
                format!("must list at least one rule with trigger: {trigger}"),
            ),
            RuleUse::None if !campaign.rules.is_empty() => self.add(
                "rules",
                format!("do not apply to trigger: {trigger} (it fires on every one)"),
            ),
            _ => {}
        }
        if trigger != Trigger::Comment && !campaign.intents.is_empty() {
            self.add("intents", only("comment"));
        }
        if !matches!(trigger, Trigger::Comment | Trigger::StoryReply)
            && !campaign.media_ids.is_empty()
        {
            self.add("media_ids", only("comment or story_reply"));
        }
        if campaign.next_post && trigger != Trigger::Comment {
            self.add("next_post", only("comment"));
        } else if campaign.next_post && !campaign.media_ids.is_empty() {
            self.add(
                "next_post",
                "listens on the next post you publish: leave media_ids empty",
            );
        }
        let actions = &campaign.actions;
        if trigger == Trigger::Comment {
            if actions.private_reply.is_empty() && actions.public_replies.is_empty() {
                self.add("actions", "set private_reply, public_replies or both");
            }
            if !actions.dm.is_empty() {
                self.add(
                    "actions.dm",
                    "does not apply to trigger: comment (comments get private_reply)",
                );
            }
            if actions.public_reply_when == PublicReplyWhen::Always
                && (actions.private_reply.is_empty() || actions.public_replies.is_empty())
            {
                self.add(
                    "actions.public_reply_when",
                    "only applies with both private_reply and public_replies",
                );
            }
        } else {
            if actions.dm.is_empty() {
                self.add("actions.dm", format!("is required with trigger: {trigger}"));
            }
            if !actions.private_reply.is_empty()
                || !actions.public_replies.is_empty()
                || actions.public_reply_when != PublicReplyWhen::default()
            {
                self.add(
                    "actions",
                    "private_reply, public_replies and public_reply_when only apply to trigger: comment",
                );
            }
        }
        let postback = (Trigger::Postback, trigger);
        self.listens(
            "payloads",
            &campaign.payloads,
            postback,
            MAX_PAYLOAD_CHARS,
            |_| true,
        );
        let referral = (Trigger::Referral, trigger);
        self.listens("refs", &campaign.refs, referral, MAX_REF_CHARS, |c| {
            c.is_ascii_alphanumeric() || "+/=-.:_".contains(c)
        });
        self.listens("ad_ids", &campaign.ad_ids, referral, 32, |c| {
            c.is_ascii_digit()
        });
        if trigger == Trigger::Referral && campaign.refs.is_empty() && campaign.ad_ids.is_empty() {
            self.add("refs", "list the ig.me refs or ad_ids the campaign answers");
        }
        if trigger == Trigger::Postback && campaign.payloads.is_empty() {
            self.add(
                "payloads",
                "must list at least one payload with trigger: postback",
            );
        }
    }

    /// Values a trigger is matched by exactly: only for the trigger they are for (the first of the pair; the
    /// second is the campaign's), unique, bounded, each of characters `allowed`.
    fn listens(
        &mut self,
        field: &str,
        values: &[String],
        (wanted, set): (Trigger, Trigger),
        max_chars: usize,
        allowed: impl Fn(char) -> bool,
    ) {
        if values.is_empty() {
            return;
        }
        if wanted != set {
            self.add(field, format!("only applies to trigger: {wanted}"));
        }
        self.bounded(field, "values", values, MAX_LISTENED, max_chars);
        let mut seen = HashSet::new();
        for (i, value) in values.iter().enumerate() {
            let at = format!("{field}[{i}]");
            self.non_blank(&at, value);
            if !value.chars().all(&allowed) {
                self.add(
                    &at,
                    format!("{value:?} holds a character Meta does not send"),
                );
            }
            if !seen.insert(value) {
                self.add(&at, format!("{value:?} is listed twice"));
            }
        }
    }

    fn quick_replies(&mut self, actions: &ActionsSpec) {
        if !actions.quick_replies.is_empty()
            && actions.private_reply.is_empty()
            && actions.dm.is_empty()
        {
            self.add(
                "actions.quick_replies",
                "need a private_reply or dm to go under",
            );
        }
        self.quick_reply_titles("actions.quick_replies", &actions.quick_replies);
    }

    /// Quick-reply titles as Instagram shows them: at most 13, of at most 20 characters,
    /// none blank or listed twice.
    fn quick_reply_titles(&mut self, field: &str, titles: &[String]) {
        if titles.len() > MAX_QUICK_REPLIES {
            self.add(
                field,
                format!(
                    "lists {}; Instagram shows at most {MAX_QUICK_REPLIES}",
                    titles.len()
                ),
            );
        }
        let mut seen = HashSet::new();
        for (q, title) in titles.iter().enumerate() {
            let field = format!("{field}[{q}]");
            self.non_blank(&field, title);
            let chars = title.chars().count();
            if chars > MAX_QUICK_REPLY_CHARS {
                self.add(
                    &field,
                    format!(
                        "is {chars} characters; Instagram cuts titles at {MAX_QUICK_REPLY_CHARS}"
                    ),
                );
            }
            if !seen.insert(title) {
                self.add(&field, format!("{title:?} is listed twice"));
            }
        }
    }

    /// The buttons under the private reply or DM, and the steps they lead to.
    fn flow(&mut self, campaign: &CampaignSpec) {
        let actions = &campaign.actions;
        let names: Vec<&str> = campaign.steps.iter().map(|s| s.name.as_str()).collect();
        if !actions.buttons.is_empty() {
            if actions.private_reply.is_empty() && actions.dm.is_empty() {
                self.add("actions.buttons", "need a private_reply or dm to go under");
            }
            self.buttons("actions.buttons", &actions.buttons, &names);
            for (name, texts) in [
                ("private_reply", &actions.private_reply),
                ("dm", &actions.dm),
            ] {
                self.template_text(&format!("actions.{name}"), texts);
            }
        }
        if campaign.steps.len() > MAX_STEPS {
            self.add(
                "steps",
                format!(
                    "lists {}; at most {MAX_STEPS} are allowed",
                    campaign.steps.len()
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, step) in campaign.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            let name = &step.name;
            let well_formed = (1..=MAX_STEP_NAME_CHARS).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !well_formed {
                self.add(
                    &format!("{at}.name"),
                    format!("{name:?} must be 1 to {MAX_STEP_NAME_CHARS} of a-z, 0-9, _ and -"),
                );
            } else if !seen.insert(name) {
                self.add(&format!("{at}.name"), format!("{name:?} is used twice"));
            }
            if step.dm.is_empty() {
                self.add(
                    &format!("{at}.dm"),
                    "is required: the message the step sends",
                );
            }
            // A step answers a tap: the person's username is not known there.
            for (v, text) in step.dm.0.iter().enumerate() {
                let field = if step.dm.0.len() == 1 {
                    format!("{at}.dm")
                } else {
                    format!("{at}.dm[{v}]")
                };
                self.dm_text(&field, text, false);
            }
            self.buttons(&format!("{at}.buttons"), &step.buttons, &names);
            self.quick_reply_titles(&format!("{at}.quick_replies"), &step.quick_replies);
            if !step.buttons.is_empty() {
                self.template_text(&format!("{at}.dm"), &step.dm);
            }
            if let Some(gate) = &step.follow_gate {
                self.follow_gate(&format!("{at}.follow_gate"), gate);
            }
            if let Some(capture) = &step.capture {
                self.capture(&format!("{at}.capture"), capture, &names);
            }
            match (&step.only_if, &step.otherwise) {
                (None, Some(_)) => self.add(
                    &format!("{at}.otherwise"),
                    "only applies with only_if (the step sent when it does not hold)",
                ),
                (Some(_), Some(other)) if other == name => self.add(
                    &format!("{at}.otherwise"),
                    format!("{other:?} is this step: name another one"),
                ),
                (Some(_), Some(other)) if !names.contains(&other.as_str()) => self.add(
                    &format!("{at}.otherwise"),
                    format!("{other:?} is not one of the campaign's steps"),
                ),
                _ => {}
            }
        }
    }

    /// Buttons as Meta's button template takes them, each leading to a step of `steps` or
    /// opening an http(s) URL.
    fn buttons(&mut self, field: &str, buttons: &[Button], steps: &[&str]) {
        if buttons.len() > MAX_BUTTONS {
            self.add(
                field,
                format!(
                    "lists {}; Meta's button template takes at most {MAX_BUTTONS}",
                    buttons.len()
                ),
            );
        }
        for (b, button) in buttons.iter().enumerate() {
            let at = format!("{field}[{b}]");
            self.non_blank(&format!("{at}.title"), &button.title);
            let chars = button.title.chars().count();
            if chars > MAX_BUTTON_TITLE_CHARS {
                self.add(
                    &format!("{at}.title"),
                    format!(
                        "is {chars} characters; Instagram cuts titles at {MAX_BUTTON_TITLE_CHARS}"
                    ),
                );
            }
            match (&button.step, &button.url) {
                (Some(step), None) if !steps.contains(&step.as_str()) => self.add(
                    &format!("{at}.step"),
                    format!("{step:?} is not one of the campaign's steps"),
                ),
                (None, Some(url))
                    if !(url.starts_with("https://") || url.starts_with("http://"))
                        || url.len() > MAX_URL_CHARS
                        || url.chars().any(char::is_whitespace) =>
                {
                    self.add(
                        &format!("{at}.url"),
                        format!(
                            "{url:?} must be an http(s) URL of at most {MAX_URL_CHARS} characters"
                        ),
                    );
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => self.add(&at, "set exactly one of step or url"),
            }
        }
    }

    /// The message for people who do not follow yet, and its retry button.
    fn follow_gate(&mut self, at: &str, gate: &FollowGate) {
        let field = format!("{at}.not_following");
        self.dm_text(&field, &gate.not_following, false);
        self.template_text(&field, &Texts(vec![gate.not_following.clone()]));
        let title = format!("{at}.retry_title");
        self.non_blank(&title, &gate.retry_title);
        let chars = gate.retry_title.chars().count();
        if chars > MAX_BUTTON_TITLE_CHARS {
            self.add(
                &title,
                format!("is {chars} characters; Instagram cuts titles at {MAX_BUTTON_TITLE_CHARS}"),
            );
        }
        if !(1..=MAX_GATE_RETRIES).contains(&gate.max_retries) {
            self.add(
                &format!("{at}.max_retries"),
                format!("must be 1 to {MAX_GATE_RETRIES}"),
            );
        }
    }

    /// What a capture step says to a bad answer and after a good one, and where it goes next.
    fn capture(&mut self, at: &str, capture: &Capture, steps: &[&str]) {
        self.dm_text(&format!("{at}.invalid"), &capture.invalid, false);
        if let Some(thanks) = &capture.thanks {
            self.dm_text(&format!("{at}.thanks"), thanks, false);
        }
        if let Some(next) = &capture.next
            && !steps.contains(&next.as_str())
        {
            self.add(
                &format!("{at}.next"),
                format!("{next:?} is not one of the campaign's steps"),
            );
        }
        if !(1..=MAX_GATE_RETRIES).contains(&capture.max_attempts) {
            self.add(
                &format!("{at}.max_attempts"),
                format!("must be 1 to {MAX_GATE_RETRIES}"),
            );
        }
    }

    /// The text above template buttons, which Meta bounds in characters.
    fn template_text(&mut self, field: &str, texts: &Texts) {
        for (v, text) in texts.0.iter().enumerate() {
            let chars = template::longest(text).chars().count();
            if chars > MAX_TEMPLATE_TEXT_CHARS {
                let field = if texts.0.len() == 1 {
                    field.to_owned()
                } else {
                    format!("{field}[{v}]")
                };
                self.add(
                    &field,
                    format!(
                        "is {chars} characters{}; above buttons Meta takes at most {MAX_TEMPLATE_TEXT_CHARS}",
                        filled_in(text)
                    ),
                );
            }
        }
    }

    /// A direct message's text: a text to send, within Meta's size for a message.
    fn dm_text(&mut self, field: &str, text: &str, username_known: bool) {
        self.text(field, text, username_known);
        let bytes = template::longest(text).len();
        if bytes > MAX_DM_BYTES {
            self.add(
                field,
                format!(
                    "is {bytes} bytes{}; Meta accepts at most {MAX_DM_BYTES}",
                    filled_in(text)
                ),
            );
        }
    }

    /// A text to send: not blank, and only known placeholders.
    fn text(&mut self, field: &str, text: &str, username_known: bool) {
        self.non_blank(field, text);
        for problem in template::problems(text, username_known) {
            self.add(field, problem);
        }
    }
}

/// How a length was counted, when placeholders make it differ from the text as written.
fn filled_in(text: &str) -> &'static str {
    if template::longest(text) == text {
        ""
    } else {
        " with the longest username filled in"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: 1
tenant: { slug: acme, name: Acme Shoes }
accounts:
  - ig_user_id: "17841400000000000"
    username: acme.shoes
    login: instagram
    access_token: "IGQVJ-test"
    campaigns:
      - slug: price-list
        name: Price list
        priority: 10
        media_ids: ["18000000000000001"]
        rules:
          - keywords: [price, "how much"]
            exclude: [priceless]
        actions:
          private_reply: "Our prices: https://acme.example/prices"
          public_replies: ["Sent you a DM!", "Check your inbox"]
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let f = CampaignFile::parse(GOOD).unwrap();
        let c = &f.accounts[0].campaigns[0];
        assert_eq!(c.status, CampaignStatus::Active);
        assert_eq!(c.trigger, Trigger::Comment);
        assert_eq!(c.rules[0].mode, MatchMode::WholeWord);
        assert_eq!(c.rules[0].require, Require::Any);
        let rule = &c.rules()[0];
        assert!(rule.fold_accents && !rule.stretch);
        assert!(c.intents().is_empty());
        assert!(matches!(c.media_scope(), MediaScope::Only(ref m) if m.len() == 1));
        assert!(matches!(
            f.accounts[0].token_source(),
            Some(TokenSource::Inline(_))
        ));
        assert!(
            !format!("{:?}", f.accounts[0]).contains("IGQVJ-test"),
            "tokens never print"
        );
    }

    fn problems(yaml: &str) -> String {
        CampaignFile::parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn type_errors_and_typos_name_the_field() {
        let e = problems(&GOOD.replace("priority: 10", "priority: high"));
        assert!(e.contains("accounts[0].campaigns[0].priority"), "{e}");
        let e = problems(&GOOD.replace("priority: 10", "priorty: 10"));
        assert!(
            e.contains("accounts[0].campaigns[0]") && e.contains("priorty"),
            "{e}"
        );
        let e = problems(&GOOD.replace("login: instagram", "login: myspace"));
        assert!(e.contains("accounts[0].login"), "{e}");
        let e = problems(
            &GOOD
                .replace("match: whole_word", "")
                .replace("exclude: [priceless]", "match: fuzzy"),
        );
        assert!(e.contains("accounts[0].campaigns[0].rules[0].match"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let e = problems(&GOOD.replace("[price, \"how much\"]", "[]"));
        assert!(
            e.contains(
                "accounts[0].campaigns[0].rules[0].keywords: must list at least one keyword"
            ),
            "{e}"
        );
        let e = problems(&GOOD.replace("login: instagram", "login: facebook"));
        assert!(e.contains("accounts[0].page_id: is required"), "{e}");
        let long = "x".repeat(1001);
        let e = problems(&GOOD.replace("\"Our prices: https://acme.example/prices\"", &long));
        assert!(
            e.contains("accounts[0].campaigns[0].actions.private_reply: is 1001 bytes"),
            "{e}"
        );
        let e = problems(&GOOD.replace("access_token: \"IGQVJ-test\"", ""));
        assert!(e.contains("accounts[0].access_token"), "{e}");
        let e = problems(
            &GOOD
                .replace("slug: price-list", "slug: Price List")
                .replace("version: 1", "version: 2"),
        );
        assert!(
            e.contains("version: must be 1") && e.contains("accounts[0].campaigns[0].slug"),
            "{e}"
        );
        let e = problems(&GOOD.replace("[price, \"how much\"]", "[\"!!!\"]"));
        assert!(
            e.contains("rules[0].keywords[0]: \"!!!\" has no letters"),
            "{e}"
        );
    }

    #[test]
    fn account_budgets_stay_within_metas_limits() {
        let with = |limits: &str| {
            GOOD.replace(
                "    campaigns:\n",
                &format!("    limits: {limits}\n    campaigns:\n"),
            )
        };
        assert!(CampaignFile::parse(&with("{ private_replies_per_hour: 750 }")).is_ok());
        let e = problems(&with(
            "{ private_replies_per_hour: 5000, send_api_per_second: 0 }",
        ));
        assert!(
            e.contains(
                "accounts[0].limits.private_replies_per_hour: is 5000; Meta allows at most 750"
            ) && e.contains("accounts[0].limits.send_api_per_second: must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn quick_replies_follow_instagrams_limits() {
        let with = |titles: &str| {
            GOOD.replace(
                "          public_replies:",
                &format!("          quick_replies: {titles}\n          public_replies:"),
            )
        };
        let f = CampaignFile::parse(&with("[\"Send me the link\", Later]")).unwrap();
        assert_eq!(
            f.accounts[0].campaigns[0].actions().quick_replies,
            ["Send me the link", "Later"]
        );
        let e = problems(&with("[\"Send me the link right now\", Later, Later]"));
        assert!(
            e.contains("actions.quick_replies[0]: is 26 characters; Instagram cuts titles at 20")
                && e.contains("actions.quick_replies[2]: \"Later\" is listed twice"),
            "{e}"
        );
        let fourteen: Vec<String> = (0..14).map(|i| format!("b{i}")).collect();
        let e = problems(&with(&format!("[{}]", fourteen.join(", "))));
        assert!(e.contains("lists 14; Instagram shows at most 13"), "{e}");
    }

    #[test]
    fn placeholders_are_checked_and_lengths_counted_filled_in() {
        let good = GOOD.replace("\"Sent you a DM!\"", "\"@{username} sent you a DM!\"");
        assert!(CampaignFile::parse(&good).is_ok());
        let e = problems(&GOOD.replace("\"Sent you a DM!\"", "\"Hi {first_name}\""));
        assert!(
            e.contains("actions.public_replies[0]: {first_name} is not a placeholder"),
            "{e}"
        );
        let near_limit = format!("{{username}} {}", "x".repeat(990));
        let e = problems(&GOOD.replace(
            "\"Our prices: https://acme.example/prices\"",
            &format!("\"{near_limit}\""),
        ));
        assert!(
            e.contains("actions.private_reply: is 1021 bytes with the longest username filled in"),
            "{e}"
        );
    }

    #[test]
    fn a_schedule_parses_with_offsets_and_must_end_after_it_starts() {
        let scheduled = |start: &str, end: &str| {
            GOOD.replace(
                "        priority: 10\n",
                &format!("        priority: 10\n        starts_at: \"{start}\"\n        ends_at: \"{end}\"\n"),
            )
        };
        let f = CampaignFile::parse(&scheduled(
            "2026-12-01T09:00:00+01:00",
            "2026-12-02T00:00:00Z",
        ))
        .unwrap();
        assert_eq!(
            f.accounts[0].campaigns[0].schedule(),
            Schedule {
                starts_at_ms: Some(1_796_112_000_000),
                ends_at_ms: Some(1_796_169_600_000),
            }
        );
        let e = problems(&scheduled("2026-12-02T00:00:00Z", "2026-12-01T00:00:00Z"));
        assert!(
            e.contains(
                "accounts[0].campaigns[0].ends_at: 2026-12-01T00:00:00Z must be after starts_at"
            ),
            "{e}"
        );
        let e = problems(&scheduled("next monday", "2026-12-01T00:00:00Z"));
        assert!(e.contains("starts_at"), "{e}");
    }

    const RULES: &str =
        "          - keywords: [price, \"how much\"]\n            exclude: [priceless]\n";

    fn with_intents(intents: &str) -> String {
        GOOD.replace(
            "        actions:\n",
            &format!("        intents:\n{intents}        actions:\n"),
        )
    }

    #[test]
    fn new_modes_flags_emoji_triggers_and_intents_parse() {
        let yaml = with_intents(
            "          - name: purchase\n            description: wants to buy\n            examples: [\"where can I buy this\", \"take my money\"]\n",
        )
        .replace(
            RULES,
            "          - keywords: [pric, \"🔥\"]\n            match: prefix\n            fold_accents: false\n            stretch: true\n          - keywords: [price list]\n            match: phrase\n",
        );
        let f = CampaignFile::parse(&yaml).unwrap();
        let c = &f.accounts[0].campaigns[0];
        let rules = c.rules();
        assert_eq!(rules[0].mode, MatchMode::Prefix);
        assert_eq!(rules[0].keywords, ["pric", "🔥"]);
        assert!(!rules[0].fold_accents && rules[0].stretch);
        assert_eq!(rules[1].mode, MatchMode::Phrase);
        assert_eq!(
            c.intents(),
            [Intent {
                name: "purchase".into(),
                description: "wants to buy".into(),
                examples: vec!["where can I buy this".into(), "take my money".into()],
            }]
        );
    }

    #[test]
    fn bad_intents_name_the_field() {
        let examples = ["\"e\""; 11].join(", ");
        let e = problems(&with_intents(&format!(
            "          - {{ name: Buy!, description: a }}\n          - {{ name: none, description: b }}\n          - {{ name: ok, description: c }}\n          - {{ name: ok, description: \" \", examples: [{examples}] }}\n",
        )));
        let at = "accounts[0].campaigns[0].intents";
        for expected in [
            format!("{at}[0].name: \"Buy!\" must be 1 to 40 of a-z, 0-9 and _"),
            format!("{at}[1].name: \"none\" is reserved"),
            format!("{at}[3].name: \"ok\" is used twice in this campaign"),
            format!("{at}[3].description: must not be empty"),
            format!("{at}[3].examples: lists 11 examples; at most 10 are allowed"),
        ] {
            assert!(e.contains(&expected), "{expected} in: {e}");
        }
        assert!(!e.contains(&format!("{at}[2]")), "{e}");
        let e = problems(&with_intents("          - { name: buy }\n"));
        assert!(
            e.contains(&format!("{at}[0]")) && e.contains("description"),
            "{e}"
        );
    }

    #[test]
    fn one_campaign_is_checked_alone_with_fields_relative_to_it() {
        let f = CampaignFile::parse(GOOD).unwrap();
        let mut c = f.accounts[0].campaigns[0].clone();
        assert!(c.problems().is_empty());
        // The dashboard sends campaigns as JSON: the same shape as in a file.
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(serde_json::from_value::<CampaignSpec>(json).unwrap(), c);
        c.slug = "Black Friday".into();
        c.rules[0].keywords.clear();
        c.actions.private_reply = Texts::default();
        c.actions.public_replies.clear();
        let fields: Vec<String> = c.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["slug", "rules[0].keywords", "actions"]);
    }

    #[test]
    fn a_tenant_webhook_needs_an_http_url_and_one_secret() {
        let with = |webhook: &str| {
            GOOD.replace(
                "tenant: { slug: acme, name: Acme Shoes }",
                &format!("tenant: {{ slug: acme, name: Acme Shoes, webhook: {webhook} }}"),
            )
        };
        let good = CampaignFile::parse(&with(
            r#"{ url: "https://hooks.acme.example/igflow", secret_env: ACME_HOOK_SECRET }"#,
        ))
        .unwrap();
        assert!(good.tenant.webhook.is_some());
        let e = problems(&with(r#"{ url: "ftp://x", secret: s, secret_env: S }"#));
        assert!(
            e.contains("tenant.webhook.url: \"ftp://x\" must be an http(s) URL"),
            "{e}"
        );
        assert!(
            e.contains("tenant.webhook.secret: set exactly one of secret or secret_env"),
            "{e}"
        );
    }

    #[test]
    fn the_documented_example_is_a_valid_file() {
        let readme = include_str!("../../campaigns/README.md");
        let start = readme
            .find("```yaml\nversion: 1")
            .expect("the format's example")
            + 8;
        let end = start + readme[start..].find("```").expect("its end");
        // Its token comes from an environment variable; everything else is as written.
        let file = CampaignFile::parse(&readme[start..end]).unwrap();
        let triggers: Vec<Trigger> = file.accounts[0]
            .campaigns
            .iter()
            .map(|c| c.trigger)
            .collect();
        assert!(
            file.accounts[0]
                .campaigns
                .iter()
                .any(|c| !c.steps.is_empty())
        );
        assert!(
            Trigger::ALL.iter().all(|t| triggers.contains(t)),
            "{triggers:?}"
        );
    }

    #[test]
    fn private_replies_and_dms_take_one_text_or_variants() {
        let c = spec(
            serde_json::json!({ "slug": "v", "name": "V", "rules": [{ "keywords": ["x"] }],
            "actions": { "private_reply": ["Hi {username}!", "Hello {username}!"] } }),
        );
        assert!(c.problems().is_empty(), "{:?}", fields(&c));
        assert_eq!(
            c.to_campaign(uuid::Uuid::nil()).actions.private_reply.len(),
            2
        );
        // JSON reads back as written: a list for variants, a string for one, null for none.
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["actions"]["private_reply"],
            serde_json::json!(["Hi {username}!", "Hello {username}!"])
        );
        assert_eq!(json["actions"]["dm"], serde_json::Value::Null);
        let one = spec(
            serde_json::json!({ "slug": "m", "name": "M", "trigger": "story_mention",
            "actions": { "dm": "Thanks!" } }),
        );
        assert_eq!(
            serde_json::to_value(&one).unwrap()["actions"]["dm"],
            "Thanks!"
        );
        let too_many: Vec<String> = (0..=MAX_TEXT_VARIANTS).map(|i| format!("v{i}")).collect();
        assert_eq!(
            fields(&spec(
                serde_json::json!({ "slug": "m", "name": "M", "trigger": "story_mention",
                "actions": { "dm": too_many } })
            )),
            ["actions.dm: lists 21 variants; at most 20 are allowed"]
        );
        assert_eq!(
            fields(&spec(
                serde_json::json!({ "slug": "m", "name": "M", "trigger": "story_mention",
                "actions": { "dm": ["fine", "x".repeat(MAX_DM_BYTES + 1), " "] } })
            )),
            [
                "actions.dm[1]: is 1001 bytes; Meta accepts at most 1000",
                "actions.dm[2]: must not be empty",
            ]
        );
    }

    #[test]
    fn buttons_and_steps_are_checked_as_meta_takes_them() {
        let good = spec(
            serde_json::json!({ "slug": "f", "name": "F", "rules": [{ "keywords": ["link"] }],
            "actions": { "private_reply": "Tap below", "buttons": [
                { "title": "Send me the link", "step": "link" },
                { "title": "Our shop", "url": "https://shop.example" } ] },
            "steps": [ { "name": "link", "dm": "Here it is", "buttons": [{ "title": "More", "step": "deals" }] },
                       { "name": "deals", "dm": ["20% off", "15% off"] } ] }),
        );
        assert!(good.problems().is_empty(), "{:?}", fields(&good));
        let json = serde_json::to_value(&good).unwrap();
        assert_eq!(serde_json::from_value::<CampaignSpec>(json).unwrap(), good);

        let bad = spec(
            serde_json::json!({ "slug": "f", "name": "F", "rules": [{ "keywords": ["link"] }],
            "actions": { "private_reply": "x".repeat(MAX_TEMPLATE_TEXT_CHARS + 1), "buttons": [
                { "title": "A title far too long for it", "step": "nowhere" },
                { "title": "Site", "url": "ftp://shop.example" },
                { "title": "Both", "step": "link", "url": "https://shop.example" },
                { "title": " ", "step": "link" } ] },
            "steps": [ { "name": "Link!", "dm": "{username}" }, { "name": "link", "dm": [] },
                       { "name": "link", "dm": "again" },
                       { "name": "gated", "dm": "ok", "follow_gate": { "not_following": " ",
                         "retry_title": "Tap here once you follow us", "max_retries": 0 } },
                       { "name": "email", "dm": "Your email?", "capture": { "field": "email",
                         "invalid": "", "next": "nowhere", "max_attempts": 11 } },
                       { "name": "if", "dm": "ok", "only_if": { "known": "phone" },
                         "otherwise": "if" },
                       { "name": "else", "dm": "ok", "otherwise": "email" },
                       { "name": "elsewhere", "dm": "ok", "only_if": { "unknown": "email" },
                         "otherwise": "nowhere" } ] }),
        );
        assert_eq!(
            fields(&bad),
            [
                "actions.buttons: lists 4; Meta's button template takes at most 3",
                "actions.buttons[0].title: is 27 characters; Instagram cuts titles at 20",
                "actions.buttons[0].step: \"nowhere\" is not one of the campaign's steps",
                "actions.buttons[1].url: \"ftp://shop.example\" must be an http(s) URL of at most 2000 characters",
                "actions.buttons[2]: set exactly one of step or url",
                "actions.buttons[3].title: must not be empty",
                "actions.private_reply: is 641 characters; above buttons Meta takes at most 640",
                "steps[0].name: \"Link!\" must be 1 to 32 of a-z, 0-9, _ and -",
                "steps[0].dm: {username} is only known for comments (Meta sends no username with a message)",
                "steps[1].dm: is required: the message the step sends",
                "steps[2].name: \"link\" is used twice",
                "steps[3].follow_gate.not_following: must not be empty",
                "steps[3].follow_gate.retry_title: is 27 characters; Instagram cuts titles at 20",
                "steps[3].follow_gate.max_retries: must be 1 to 10",
                "steps[4].capture.invalid: must not be empty",
                "steps[4].capture.next: \"nowhere\" is not one of the campaign's steps",
                "steps[4].capture.max_attempts: must be 1 to 10",
                "steps[5].otherwise: \"if\" is this step: name another one",
                "steps[6].otherwise: only applies with only_if (the step sent when it does not hold)",
                "steps[7].otherwise: \"nowhere\" is not one of the campaign's steps",
            ]
        );
    }

    #[test]
    fn a_steps_quick_replies_are_checked_as_the_campaigns_are() {
        let step = |quick: serde_json::Value| {
            spec(
                serde_json::json!({ "slug": "f", "name": "F", "rules": [{ "keywords": ["x"] }],
                "actions": { "private_reply": "Tap", "buttons": [{ "title": "Go", "step": "ask" }] },
                "steps": [{ "name": "ask", "dm": "Email?", "quick_replies": quick,
                            "capture": { "field": "email", "invalid": "Again?", "skip_if_known": true } }] }),
            )
        };
        let good = step(serde_json::json!(["Not now"]));
        assert!(good.problems().is_empty(), "{:?}", fields(&good));
        assert!(good.steps[0].capture.as_ref().unwrap().skip_if_known);
        assert_eq!(
            fields(&step(serde_json::json!([
                "Not now",
                "Not now",
                "x".repeat(21)
            ]))),
            [
                "steps[0].quick_replies[1]: \"Not now\" is listed twice",
                "steps[0].quick_replies[2]: is 21 characters; Instagram cuts titles at 20",
            ]
        );
    }

    /// A campaign as the dashboard sends it: JSON in the file's shape.
    fn spec(json: serde_json::Value) -> CampaignSpec {
        serde_json::from_value(json).unwrap()
    }

    fn fields(c: &CampaignSpec) -> Vec<String> {
        c.problems()
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn next_post_is_for_comments_without_media_ids() {
        let c = spec(
            serde_json::json!({ "slug": "d", "name": "D", "next_post": true,
            "rules": [{ "keywords": ["price"] }], "actions": { "private_reply": "Prices" } }),
        );
        assert!(c.problems().is_empty(), "{:?}", fields(&c));
        assert_eq!(c.media_scope(), MediaScope::NextPost { after_ms: None });
        assert_eq!(
            fields(&spec(
                serde_json::json!({ "slug": "d", "name": "D", "next_post": true,
                "media_ids": ["17900000000000001"], "rules": [{ "keywords": ["price"] }],
                "actions": { "private_reply": "Prices" } })
            )),
            ["next_post: listens on the next post you publish: leave media_ids empty"]
        );
        assert_eq!(
            fields(&spec(
                serde_json::json!({ "slug": "s", "name": "S", "trigger": "story_reply",
                "next_post": true, "actions": { "dm": "Hi" } })
            )),
            ["next_post: only applies to trigger: comment"]
        );
    }

    #[test]
    fn each_messaging_trigger_is_checked_for_what_it_needs() {
        let dm = serde_json::json!({ "dm": "Prices: https://acme.example/p" });
        for ok in [
            serde_json::json!({ "slug": "m", "name": "M", "trigger": "story_mention", "actions": { "dm": "Thanks!" } }),
            serde_json::json!({ "slug": "r", "name": "R", "trigger": "story_reply", "media_ids": ["17900000000000001"], "actions": { "dm": "Hi" } }),
            serde_json::json!({ "slug": "r", "name": "R", "trigger": "story_reply", "rules": [{ "keywords": ["win"] }], "actions": { "dm": "Hi" } }),
            serde_json::json!({ "slug": "p", "name": "P", "trigger": "postback", "payloads": ["PRICES"], "actions": { "dm": "Prices" } }),
            serde_json::json!({ "slug": "l", "name": "L", "trigger": "referral", "refs": ["bio"], "ad_ids": ["120210000000000001"], "actions": { "dm": "Welcome" } }),
        ] {
            let c = spec(ok);
            assert!(c.problems().is_empty(), "{:?}: {:?}", c.slug, fields(&c));
        }
        let problems = |json| fields(&spec(json));
        assert_eq!(
            problems(
                serde_json::json!({ "slug": "m", "name": "M", "trigger": "story_mention",
                "rules": [{ "keywords": ["x"] }], "media_ids": ["1"], "actions": { "private_reply": "x" } })
            ),
            [
                "rules: do not apply to trigger: story_mention (it fires on every one)",
                "media_ids: only applies to trigger: comment or story_reply",
                "actions.dm: is required with trigger: story_mention",
                "actions: private_reply, public_replies and public_reply_when only apply to trigger: comment",
            ]
        );
        assert_eq!(
            problems(
                serde_json::json!({ "slug": "p", "name": "P", "trigger": "postback", "actions": dm })
            ),
            ["payloads: must list at least one payload with trigger: postback"]
        );
        assert_eq!(
            problems(
                serde_json::json!({ "slug": "l", "name": "L", "trigger": "referral",
                "refs": ["bio link", "bio", "bio"], "ad_ids": ["ad-1"], "actions": { "dm": "Hi" } })
            ),
            [
                "refs[0]: \"bio link\" holds a character Meta does not send",
                "refs[2]: \"bio\" is listed twice",
                "ad_ids[0]: \"ad-1\" holds a character Meta does not send",
            ]
        );
        assert_eq!(
            problems(
                serde_json::json!({ "slug": "l", "name": "L", "trigger": "referral", "actions": { "dm": "Hi" } })
            ),
            ["refs: list the ig.me refs or ad_ids the campaign answers"]
        );
        assert_eq!(
            problems(
                serde_json::json!({ "slug": "c", "name": "C", "rules": [{ "keywords": ["x"] }],
                "payloads": ["P"], "refs": ["r"], "actions": { "private_reply": "x" } })
            ),
            [
                "payloads: only applies to trigger: postback",
                "refs: only applies to trigger: referral",
            ]
        );
    }

    #[test]
    fn sizes_are_bounded() {
        let many = |n: usize, len: usize| {
            (0..n)
                .map(|i| format!("\"{}{i}\"", "k".repeat(len)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rules = (0..=MAX_RULES)
            .map(|i| format!("          - keywords: [w{i}]\n"))
            .collect::<String>();
        let yaml = with_intents(&format!(
            "          - {{ name: a, description: \"{}\", examples: [{}] }}\n",
            "d".repeat(MAX_INTENT_DESCRIPTION_CHARS + 1),
            many(1, MAX_INTENT_EXAMPLE_CHARS),
        ))
        .replace(RULES, &rules)
        .replace("[w0]", &format!("[{}]", many(MAX_KEYWORDS + 1, 1)))
        .replace("[w1]", &format!("[{}]", many(1, MAX_KEYWORD_CHARS)))
        .replace(
            "[\"Sent you a DM!\", \"Check your inbox\"]",
            &format!("[{}]", many(MAX_PUBLIC_REPLIES + 1, 1)),
        );
        let e = problems(&yaml);
        let at = "accounts[0].campaigns[0]";
        for expected in [
            format!("{at}.rules: lists 21; at most 20 are allowed"),
            format!("{at}.rules[0].keywords: lists 51 words; at most 50 are allowed"),
            format!("{at}.rules[1].keywords[0]: is 101 characters; at most 100 are allowed"),
            format!("{at}.intents[0].description: is 501 characters; at most 500 are allowed"),
            format!("{at}.intents[0].examples[0]: is 301 characters; at most 300 are allowed"),
            format!("{at}.actions.public_replies: lists 21 variants; at most 20 are allowed"),
        ] {
            assert!(e.contains(&expected), "{expected} in: {e}");
        }
    }

    #[test]
    fn json_is_accepted_too() {
        let json = r#"{"version":1,"tenant":{"slug":"t","name":"T"},"accounts":[{"ig_user_id":"1","username":"u","login":"instagram","access_token_env":"TOKEN","campaigns":[]}]}"#;
        let f = CampaignFile::parse(json).unwrap();
        assert!(matches!(
            f.accounts[0].token_source(),
            Some(TokenSource::Env("TOKEN"))
        ));
    }
}
