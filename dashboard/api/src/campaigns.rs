//! Campaigns: list, read, create, edit, pause, resume, archive, and the keyword tester.
//! Checked by the campaign files' validator; file campaigns are read-only (RLS says so).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use igflow_core::campaign::{
    Button, Campaign, CampaignStatus, MatchMode, MediaScope, Require, Step, Texts, Trigger,
};
use igflow_core::campaign_file::{ActionsSpec, CampaignSpec, FieldError, IntentSpec, RuleSpec};
use igflow_core::ids::{IgUserId, MediaId};
use igflow_core::tester::TestResult;
use igflow_worker::ops::simulate::{self, SimulateError, Simulated};

use igflow_worker::clients::store::{CampaignParts, bind_campaign_columns, write_campaign_parts};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::AppState;
use crate::auth::User;
use crate::db::as_user;
use crate::error::ApiError;

/// A campaign as the dashboard shows it: the same fields as in a campaign file, plus who
/// owns it.
#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    /// `file` (read-only here, changed by `igflow-worker apply`) or `dashboard`.
    pub managed_by: String,
    /// The file a file campaign was applied from.
    pub source: Option<String>,
    pub updated_at: String,
    /// The post a `next_post` campaign found (the first published after it was saved);
    /// `None` while it waits for it.
    pub next_post_media: Option<String>,
    pub campaign: CampaignSpec,
}

impl CampaignView {
    /// The campaign as the worker sees it now: a "next post" campaign listens on the post
    /// it found, once it has.
    fn to_campaign(&self) -> Campaign {
        let mut campaign = self.campaign.to_campaign(self.id);
        if let Some(media) = self
            .next_post_media
            .as_deref()
            .and_then(|m| MediaId::parse(m).ok())
        {
            campaign.media = MediaScope::Only(vec![media]);
        }
        campaign
    }
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: Uuid,
    tenant_id: Uuid,
    account_id: Uuid,
    slug: String,
    name: String,
    trigger: String,
    status: String,
    priority: i32,
    cooldown_seconds: i32,
    media_ids: Vec<String>,
    payloads: Vec<String>,
    refs: Vec<String>,
    ad_ids: Vec<String>,
    public_reply_when: String,
    shadow: bool,
    buttons: sqlx::types::Json<Vec<Button>>,
    steps: sqlx::types::Json<Vec<Step>>,
    next_post: bool,
    next_post_media: Option<String>,
    starts_at_ms: Option<i64>,
    ends_at_ms: Option<i64>,
    managed_by: String,
    source: Option<String>,
    updated_at: String,
}

fn stored<T: std::str::FromStr<Err = String>>(value: &str) -> Result<T, ApiError> {
    value
        .parse()
        .map_err(|e: String| ApiError::Internal(format!("a stored campaign is unreadable: {e}")))
}

fn timestamp(ms: Option<i64>) -> Result<Option<jiff::Timestamp>, ApiError> {
    ms.map(jiff::Timestamp::from_millisecond)
        .transpose()
        .map_err(|e| ApiError::Internal(format!("a stored schedule is unreadable: {e}")))
}

/// One campaign as the user sees it now: what create, update and status changes answer with.
async fn view_of(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
) -> Result<CampaignView, ApiError> {
    load(tx, "id = $1", Some(id))
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// The campaigns `filter` selects, with their rules, intents and actions, as the user may see them.
async fn load(
    tx: &mut Transaction<'static, Postgres>,
    filter: &str,
    arg: Option<Uuid>,
) -> Result<Vec<CampaignView>, ApiError> {
    let sql = format!(
        "select id, tenant_id, account_id, slug, name, trigger, status, priority, cooldown_seconds,
                media_ids, payloads, refs, ad_ids, public_reply_when, shadow, buttons, steps,
                next_post_after is not null as next_post, next_post_media,
                (extract(epoch from starts_at) * 1000)::bigint as starts_at_ms,
                (extract(epoch from ends_at) * 1000)::bigint as ends_at_ms, managed_by, source,
                to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as updated_at
         from campaigns where {filter} order by priority desc, slug"
    );
    let rows: Vec<CampaignRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(arg)
        .fetch_all(&mut **tx)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let CampaignParts {
        rules,
        intents,
        actions,
    } = CampaignParts::load(tx, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let mut spec_actions = ActionsSpec {
                private_reply: Texts::default(),
                public_replies: Vec::new(),
                dm: Texts::default(),
                quick_replies: Vec::new(),
                public_reply_when: stored(&r.public_reply_when)?,
                buttons: r.buttons.0,
            };
            for a in actions.iter().filter(|a| a.campaign_id == r.id) {
                match a.kind.as_str() {
                    "private_reply" => spec_actions.private_reply = Texts(a.variants.clone()),
                    "public_reply" => spec_actions.public_replies.clone_from(&a.variants),
                    _ => spec_actions.dm = Texts(a.variants.clone()),
                }
                if !a.quick_replies.is_empty() {
                    spec_actions.quick_replies.clone_from(&a.quick_replies);
                }
            }
            let campaign = CampaignSpec {
                slug: r.slug,
                name: r.name,
                trigger: stored::<Trigger>(&r.trigger)?,
                status: stored::<CampaignStatus>(&r.status)?,
                priority: r.priority,
                cooldown_seconds: u32::try_from(r.cooldown_seconds).unwrap_or(0),
                shadow: r.shadow,
                steps: r.steps.0,
                media_ids: r
                    .media_ids
                    .into_iter()
                    .map(|m| MediaId::parse(m).map_err(|e| ApiError::Internal(e.to_string())))
                    .collect::<Result<_, _>>()?,
                next_post: r.next_post,
                payloads: r.payloads,
                refs: r.refs,
                ad_ids: r.ad_ids,
                starts_at: timestamp(r.starts_at_ms)?,
                ends_at: timestamp(r.ends_at_ms)?,
                rules: rules
                    .iter()
                    .filter(|x| x.campaign_id == r.id)
                    .map(|x| {
                        Ok(RuleSpec {
                            keywords: x.keywords.clone(),
                            mode: stored::<MatchMode>(&x.match_mode)?,
                            require: stored::<Require>(&x.require)?,
                            exclude: x.exclude.clone(),
                            fold_accents: x.fold_accents,
                            stretch: x.stretch,
                        })
                    })
                    .collect::<Result<_, ApiError>>()?,
                intents: intents
                    .iter()
                    .filter(|x| x.campaign_id == r.id)
                    .map(|x| IntentSpec {
                        name: x.name.clone(),
                        description: x.description.clone(),
                        examples: x.examples.clone(),
                    })
                    .collect(),
                actions: spec_actions,
            };
            Ok(CampaignView {
                id: r.id,
                tenant_id: r.tenant_id,
                account_id: r.account_id,
                managed_by: r.managed_by,
                source: r.source,
                updated_at: r.updated_at,
                next_post_media: r.next_post_media,
                campaign,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub account_id: Option<Uuid>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    user: User,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<CampaignView>>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let views = load(
        &mut tx,
        "($1::uuid is null or account_id = $1)",
        q.account_id,
    )
    .await?;
    Ok(Json(views))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(id): Path<Uuid>,
) -> Result<Json<CampaignView>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    view_of(&mut tx, id).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub account_id: Uuid,
    pub campaign: CampaignSpec,
}

fn validate(spec: &CampaignSpec) -> Result<(), ApiError> {
    let problems = spec.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(problems))
    }
}

/// A slug is unique per account; say so next to the field rather than as a conflict.
async fn check_slug_free(
    tx: &mut Transaction<'static, Postgres>,
    account_id: Uuid,
    slug: &str,
    except: Option<Uuid>,
) -> Result<(), ApiError> {
    let taken: bool = sqlx::query_scalar(
        "select exists (select 1 from campaigns where account_id = $1 and slug = $2
                        and ($3::uuid is null or id <> $3))",
    )
    .bind(account_id)
    .bind(slug)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?;
    if taken {
        return Err(ApiError::Invalid(vec![FieldError {
            field: "slug".into(),
            message: format!("{slug:?} is already used by another campaign of this account"),
        }]));
    }
    Ok(())
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    user: User,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    validate(&body.campaign)?;
    let c = &body.campaign;
    let mut tx = as_user(&state.pool, &user).await?;
    check_slug_free(&mut tx, body.account_id, &c.slug, None).await?;
    // The account row, as the user sees it, gives the tenant: none visible, 404.
    let insert = sqlx::query_scalar(
        "insert into campaigns (tenant_id, account_id, slug, name, trigger, media_ids, status,
                                priority, cooldown_seconds, starts_at, ends_at, payloads, refs,
                                ad_ids, public_reply_when, shadow, buttons, steps, next_post_after)
         select a.tenant_id, a.id, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz, $10::timestamptz,
                $11, $12, $13, $14, $15, $16, $17, case when $18 then now() end
         from ig_accounts a where a.id = $1
         returning id",
    )
    .bind(body.account_id);
    let id: Uuid = bind_campaign_columns(insert, c).fetch_one(&mut *tx).await?;
    write_campaign_parts(&mut tx, id, c).await?;
    let view = view_of(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(campaign_id = %id, user = %user.id, "campaign created");
    Ok((StatusCode::CREATED, Json(view)))
}

/// Why a campaign the user asked to change was not changed: hidden (another tenant's, or
/// none), or visible but read-only.
async fn not_changed(tx: &mut Transaction<'static, Postgres>, id: Uuid) -> ApiError {
    let visible: Result<Option<(String, Option<String>)>, _> =
        sqlx::query_as("select managed_by, source from campaigns where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await;
    match visible {
        Ok(None) => ApiError::NotFound,
        Ok(Some((managed_by, source))) if managed_by == "file" => ApiError::Forbidden(format!(
            "this campaign comes from the campaign file {}: change it there and run igflow-worker apply",
            source.unwrap_or_else(|| "(unknown)".into())
        )),
        Ok(Some(_)) => ApiError::Forbidden(
            "your role in this workspace cannot change campaigns (viewers read only)".into(),
        ),
        Err(e) => e.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub campaign: CampaignSpec,
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateBody>,
) -> Result<Json<CampaignView>, ApiError> {
    validate(&body.campaign)?;
    let c = &body.campaign;
    let mut tx = as_user(&state.pool, &user).await?;
    let account: Option<Uuid> =
        sqlx::query_scalar("select account_id from campaigns where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let account = account.ok_or(ApiError::NotFound)?;
    check_slug_free(&mut tx, account, &c.slug, Some(id)).await?;
    let update = sqlx::query_scalar(
        "update campaigns set slug = $2, name = $3, trigger = $4, media_ids = $5, status = $6,
                priority = $7, cooldown_seconds = $8, starts_at = $9::timestamptz,
                ends_at = $10::timestamptz, payloads = $11, refs = $12, ad_ids = $13,
                public_reply_when = $14, shadow = $15, buttons = $16, steps = $17,
                next_post_after = case when $18 then coalesce(next_post_after, now()) end,
                next_post_media = case when $18 then next_post_media end,
                updated_at = now()
         where id = $1 returning id",
    )
    .bind(id);
    let updated: Option<Uuid> = bind_campaign_columns(update, c)
        .fetch_optional(&mut *tx)
        .await?;
    if updated.is_none() {
        return Err(not_changed(&mut tx, id).await);
    }
    write_campaign_parts(&mut tx, id, c).await?;
    let view = view_of(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
pub struct StatusBody {
    pub status: CampaignStatus,
}

/// Pause, resume (`active`) or archive.
pub async fn set_status(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(id): Path<Uuid>,
    Json(body): Json<StatusBody>,
) -> Result<Json<CampaignView>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let updated: Option<Uuid> = sqlx::query_scalar(
        "update campaigns set status = $2, updated_at = now() where id = $1 returning id",
    )
    .bind(id)
    .bind(body.status.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if updated.is_none() {
        return Err(not_changed(&mut tx, id).await);
    }
    let view = view_of(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
pub struct TesterBody {
    pub account_id: Uuid,
    /// What the person did; a comment unless told.
    #[serde(default = "comment")]
    pub trigger: Trigger,
    #[serde(default)]
    pub text: Option<String>,
    /// The media commented on, or the story replied to.
    #[serde(default)]
    pub media_id: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default, rename = "ref")]
    pub ref_param: Option<String>,
    #[serde(default)]
    pub ad_id: Option<String>,
}

fn comment() -> Trigger {
    Trigger::Comment
}

/// What the account's active campaigns would do with a comment, message, story mention or
/// reply, tap or referral, as the worker decides it.
pub async fn test(
    State(state): State<Arc<AppState>>,
    user: User,
    Json(body): Json<TesterBody>,
) -> Result<Json<TestResult>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let (tenant, ig_user_id, username): (Uuid, String, String) =
        sqlx::query_as("select tenant_id, ig_user_id, username from ig_accounts where id = $1")
            .bind(body.account_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound)?;
    let account = IgUserId::parse(ig_user_id).map_err(|e| ApiError::Internal(e.to_string()))?;
    let campaigns = load(
        &mut tx,
        "account_id = $1 and status = 'active'",
        Some(body.account_id),
    )
    .await?
    .into_iter()
    .map(|v| v.to_campaign())
    .collect();
    tx.commit().await?;
    let event = Simulated {
        account: None,
        trigger: body.trigger,
        text: body.text.as_deref(),
        media: body.media_id.as_deref(),
        payload: body.payload.as_deref(),
        ref_param: body.ref_param.as_deref(),
        ad_id: body.ad_id.as_deref(),
        at_ms: igflow_core::runtime::now_ms(),
        contact: None,
    };
    let result = simulate::decide(campaigns, &account, tenant, &event, &state.classifier)
        .await
        .map_err(|e| match e {
            SimulateError::Missing { .. } => ApiError::BadRequest(e.to_string()),
            e => ApiError::BadRequest(format!("a campaign of this account cannot be matched: {e}")),
        })?;
    tracing::debug!(account = %username, fired = result.fired.is_some(), "keyword tested");
    Ok(Json(result))
}
