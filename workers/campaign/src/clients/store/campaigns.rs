//! `campaigns` with their `rules`, `intents` and `actions`, as the worker and the dashboard
//! read them.

use std::collections::HashMap;
use std::time::Duration;

use igflow_core::campaign::{ActionKind, Actions, Campaign, Intent, MediaScope, Rule, Schedule};
use igflow_core::ids::MediaId;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, corrupt};

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: Uuid,
    slug: String,
    trigger: String,
    priority: i32,
    media_ids: Vec<String>,
    payloads: Vec<String>,
    refs: Vec<String>,
    ad_ids: Vec<String>,
    public_reply_when: String,
    shadow: bool,
    buttons: Json<serde_json::Value>,
    steps: Json<serde_json::Value>,
    cooldown_seconds: i32,
    starts_at_ms: Option<i64>,
    ends_at_ms: Option<i64>,
    next_post_after_ms: Option<i64>,
    next_post_media: Option<String>,
}

/// A rule as stored (one row of `rules`).
#[derive(sqlx::FromRow)]
pub struct RuleRow {
    pub campaign_id: Uuid,
    pub match_mode: String,
    pub require: String,
    pub keywords: Vec<String>,
    pub exclude: Vec<String>,
    pub fold_accents: bool,
    pub stretch: bool,
}

/// An intent as stored (one row of `intents`).
#[derive(sqlx::FromRow)]
pub struct IntentRow {
    pub campaign_id: Uuid,
    pub name: String,
    pub description: String,
    pub examples: Vec<String>,
}

/// An action as stored (one row of `actions`).
#[derive(sqlx::FromRow)]
pub struct ActionRow {
    pub campaign_id: Uuid,
    pub kind: String,
    pub variants: Vec<String>,
    pub quick_replies: Vec<String>,
}

/// The rules, intents and actions of many campaigns, read in three queries. The worker and
/// the dashboard both read campaigns through this, so the two never disagree on what a
/// stored campaign says; each maps the rows to its own types.
pub struct CampaignParts {
    /// By campaign, then position.
    pub rules: Vec<RuleRow>,
    /// By campaign, then position.
    pub intents: Vec<IntentRow>,
    pub actions: Vec<ActionRow>,
}

impl CampaignParts {
    #[tracing::instrument(name = "store.load", level = "debug", skip_all)]
    pub async fn load(
        conn: &mut sqlx::PgConnection,
        campaign_ids: &[Uuid],
    ) -> Result<Self, sqlx::Error> {
        let rules = sqlx::query_as(
            "select campaign_id, match_mode, require, keywords, exclude, fold_accents, stretch
             from rules where campaign_id = any($1) order by campaign_id, position",
        )
        .bind(campaign_ids)
        .fetch_all(&mut *conn)
        .await?;
        let intents = sqlx::query_as(
            "select campaign_id, name, description, examples
             from intents where campaign_id = any($1) order by campaign_id, position",
        )
        .bind(campaign_ids)
        .fetch_all(&mut *conn)
        .await?;
        let actions = sqlx::query_as(
            "select campaign_id, kind, variants, quick_replies from actions where campaign_id = any($1)",
        )
        .bind(campaign_ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            rules,
            intents,
            actions,
        })
    }
}

impl Store {
    /// The account's active campaigns with their rules and actions.
    #[tracing::instrument(name = "store.active_campaigns", level = "debug", skip_all, fields(account_id = %account_id))]
    pub async fn active_campaigns(&self, account_id: Uuid) -> Result<Vec<Campaign>, StoreError> {
        let campaigns: Vec<CampaignRow> = sqlx::query_as(
            "select id, slug, trigger, priority, media_ids, payloads, refs, ad_ids,
                    public_reply_when, shadow, buttons, steps, cooldown_seconds,
                    (extract(epoch from starts_at) * 1000)::bigint as starts_at_ms,
                    (extract(epoch from ends_at) * 1000)::bigint as ends_at_ms,
                    (extract(epoch from next_post_after) * 1000)::bigint as next_post_after_ms,
                    next_post_media
             from campaigns where account_id = $1 and status = 'active'",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = campaigns.iter().map(|c| c.id).collect();
        let parts = CampaignParts::load(&mut *self.pool.acquire().await?, &ids).await?;
        let mut parts = PartsByCampaign::new(parts)?;
        campaigns
            .into_iter()
            .map(|c| c.into_campaign(&mut parts))
            .collect()
    }

    /// Binds a "next post" campaign to the post it was waiting for, unless another worker
    /// already did or it no longer waits (changed since): whether this call bound it.
    #[tracing::instrument(name = "store.bind_next_post", level = "debug", skip_all, fields(campaign_id = %campaign_id, media = %media))]
    pub async fn bind_next_post(
        &self,
        campaign_id: Uuid,
        media: &MediaId,
    ) -> Result<bool, StoreError> {
        let bound: Option<Uuid> = sqlx::query_scalar(
            "update campaigns set next_post_media = $2
             where id = $1 and next_post_after is not null and next_post_media is null
             returning id",
        )
        .bind(campaign_id)
        .bind(media.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(bound.is_some())
    }
}

/// A campaign's rules, intents and actions, parsed and grouped by campaign.
struct PartsByCampaign {
    rules: HashMap<Uuid, Vec<Rule>>,
    intents: HashMap<Uuid, Vec<Intent>>,
    actions: HashMap<Uuid, Actions>,
}

impl PartsByCampaign {
    fn new(parts: CampaignParts) -> Result<Self, StoreError> {
        let mut by = Self {
            rules: HashMap::new(),
            intents: HashMap::new(),
            actions: HashMap::new(),
        };
        for r in parts.rules {
            let bad = corrupt("rules", r.campaign_id);
            by.rules.entry(r.campaign_id).or_default().push(Rule {
                mode: r.match_mode.parse().map_err(&bad)?,
                require: r.require.parse().map_err(&bad)?,
                keywords: r.keywords,
                exclude: r.exclude,
                fold_accents: r.fold_accents,
                stretch: r.stretch,
            });
        }
        for i in parts.intents {
            by.intents.entry(i.campaign_id).or_default().push(Intent {
                name: i.name,
                description: i.description,
                examples: i.examples,
            });
        }
        for a in parts.actions {
            let bad = corrupt("actions", a.campaign_id);
            let entry = by.actions.entry(a.campaign_id).or_default();
            let kind = a.kind.parse::<ActionKind>().map_err(&bad)?;
            if kind.is_dm() && !a.quick_replies.is_empty() {
                entry.quick_replies = a.quick_replies;
            }
            match kind {
                ActionKind::PrivateReply => entry.private_reply = a.variants,
                ActionKind::PublicReply => entry.public_replies = a.variants,
                ActionKind::Dm => entry.dm = a.variants,
            }
        }
        Ok(by)
    }
}

impl CampaignRow {
    /// The campaign, with its parts taken out of `parts`.
    fn into_campaign(self, parts: &mut PartsByCampaign) -> Result<Campaign, StoreError> {
        let bad = corrupt("campaigns", self.id);
        let media = match (self.next_post_after_ms, self.next_post_media) {
            (_, Some(found)) => {
                MediaScope::Only(vec![MediaId::parse(found).map_err(|e| bad(e.to_string()))?])
            }
            (Some(after_ms), None) => MediaScope::NextPost {
                after_ms: Some(after_ms),
            },
            (None, None) if self.media_ids.is_empty() => MediaScope::Any,
            (None, None) => MediaScope::Only(
                self.media_ids
                    .into_iter()
                    .map(MediaId::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(e.to_string()))?,
            ),
        };
        Ok(Campaign {
            id: self.id,
            slug: self.slug,
            trigger: self.trigger.parse().map_err(&bad)?,
            priority: self.priority,
            media,
            payloads: self.payloads,
            refs: self.refs,
            ad_ids: self.ad_ids,
            schedule: Schedule {
                starts_at_ms: self.starts_at_ms,
                ends_at_ms: self.ends_at_ms,
            },
            cooldown: Duration::from_secs(u64::try_from(self.cooldown_seconds).unwrap_or(0)),
            shadow: self.shadow,
            rules: parts.rules.remove(&self.id).unwrap_or_default(),
            intents: parts.intents.remove(&self.id).unwrap_or_default(),
            steps: serde_json::from_value(self.steps.0).map_err(|e| bad(e.to_string()))?,
            actions: Actions {
                public_reply_when: self.public_reply_when.parse().map_err(&bad)?,
                buttons: serde_json::from_value(self.buttons.0).map_err(|e| bad(e.to_string()))?,
                ..parts.actions.remove(&self.id).unwrap_or_default()
            },
        })
    }
}
