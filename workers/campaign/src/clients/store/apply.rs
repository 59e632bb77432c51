//! Writing a campaign file: its tenant, accounts and campaigns in one transaction, and the
//! campaign columns and parts that the dashboard writes through the same functions.

use igflow_core::campaign::ActionKind;
use igflow_core::campaign_file::{AccountSpec, CampaignFile, CampaignSpec};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Store, StoreError};

/// Who owns what a file's account would write.
#[derive(Debug, Clone, Default)]
pub struct FileOwnership {
    /// Those of the file's campaign slugs that name campaigns made in the dashboard.
    pub dashboard_slugs: Vec<String>,
    /// The slug of the tenant the account belongs to, if it exists.
    pub tenant: Option<String>,
}

/// What writing a file changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileWritten {
    /// File campaigns in the database that the file no longer lists, now archived.
    pub archived: u64,
}

impl Store {
    /// Who owns the account and the campaign slugs `account` would write.
    #[tracing::instrument(name = "store.file_ownership", level = "debug", skip_all)]
    pub async fn file_ownership(&self, account: &AccountSpec) -> Result<FileOwnership, StoreError> {
        let slugs: Vec<&str> = account.campaigns.iter().map(|c| c.slug.as_str()).collect();
        let dashboard_slugs = sqlx::query_scalar(
            "select c.slug from campaigns c join ig_accounts a on a.id = c.account_id
             where a.ig_user_id = $1 and c.managed_by = 'dashboard' and c.slug = any($2)",
        )
        .bind(account.ig_user_id.as_str())
        .bind(&slugs)
        .fetch_all(&self.pool)
        .await?;
        let tenant = sqlx::query_scalar(
            "select t.slug from ig_accounts a join tenants t on t.id = a.tenant_id where a.ig_user_id = $1",
        )
        .bind(account.ig_user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(FileOwnership {
            dashboard_slugs,
            tenant,
        })
    }

    /// Writes the file's tenant, accounts and campaigns in one transaction, and archives the
    /// file campaigns it no longer lists. `secret_ref` names each account's token secret;
    /// `source` names the file for the dashboard.
    #[tracing::instrument(name = "store.write_file", level = "debug", skip_all)]
    pub async fn write_file(
        &self,
        file: &CampaignFile,
        source: &str,
        secret_ref: impl Fn(&AccountSpec) -> String,
        webhook_secret_ref: Option<String>,
    ) -> Result<FileWritten, StoreError> {
        let mut tx = self.pool.begin().await?;
        let tenant_id: Uuid = sqlx::query_scalar(
            "insert into tenants (slug, name, webhook_url, webhook_secret_ref) values ($1, $2, $3, $4)
             on conflict (slug) do update set name = excluded.name, webhook_url = excluded.webhook_url,
               webhook_secret_ref = excluded.webhook_secret_ref, updated_at = now()
             returning id",
        )
        .bind(&file.tenant.slug)
        .bind(&file.tenant.name)
        .bind(file.tenant.webhook.as_ref().map(|w| w.url.as_str()))
        .bind(webhook_secret_ref)
        .fetch_one(&mut *tx)
        .await?;
        let mut written = FileWritten::default();
        for account in &file.accounts {
            let account_id =
                upsert_account(&mut tx, tenant_id, account, &secret_ref(account)).await?;
            for campaign in &account.campaigns {
                upsert_campaign(&mut tx, tenant_id, account_id, campaign, source).await?;
            }
            let slugs: Vec<&str> = account.campaigns.iter().map(|c| c.slug.as_str()).collect();
            written.archived += sqlx::query(
                "update campaigns set status = 'archived', updated_at = now()
                 where account_id = $1 and managed_by = 'file' and status <> 'archived'
                   and not (slug = any($2))",
            )
            .bind(account_id)
            .bind(&slugs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }
}

async fn upsert_account(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    account: &AccountSpec,
    secret_ref: &str,
) -> Result<Uuid, sqlx::Error> {
    // Applying a file with a token resumes an account paused for its token. A file's token
    // has no known expiry: the token refresh job learns it from its first refresh.
    sqlx::query_scalar(
        "insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, page_id, token_secret_ref, limits)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (ig_user_id) do update set
           username = excluded.username, login_flavor = excluded.login_flavor, page_id = excluded.page_id,
           token_secret_ref = excluded.token_secret_ref, token_updated_at = now(), limits = excluded.limits,
           token_expires_at = null, token_refresh_error = null, token_refresh_failed_at = null,
           status = case when ig_accounts.status = 'paused' then 'active' else ig_accounts.status end,
           status_reason = case when ig_accounts.status = 'paused' then null else ig_accounts.status_reason end,
           updated_at = now()
         returning id",
    )
    .bind(tenant_id)
    .bind(account.ig_user_id.as_str())
    .bind(&account.username)
    .bind(account.login.as_str())
    .bind(account.page_id.as_ref().map(|p| p.as_str()))
    .bind(secret_ref)
    .bind(sqlx::types::Json(account.limits))
    .fetch_one(&mut **tx)
    .await
}

async fn upsert_campaign(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    account_id: Uuid,
    c: &CampaignSpec,
    source: &str,
) -> Result<(), sqlx::Error> {
    let insert = sqlx::query_scalar(
        "insert into campaigns (tenant_id, account_id, slug, name, trigger, media_ids, status, priority, cooldown_seconds, starts_at, ends_at, payloads, refs, ad_ids, public_reply_when, shadow, buttons, steps, next_post_after, managed_by, source)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz, $11::timestamptz, $12, $13, $14, $15, $16, $17, $18, case when $19 then now() end, 'file', $20)
         on conflict (account_id, slug) do update set
           source = excluded.source, name = excluded.name, trigger = excluded.trigger, media_ids = excluded.media_ids,
           status = excluded.status, priority = excluded.priority,
           cooldown_seconds = excluded.cooldown_seconds, starts_at = excluded.starts_at,
           ends_at = excluded.ends_at, payloads = excluded.payloads, refs = excluded.refs,
           ad_ids = excluded.ad_ids, public_reply_when = excluded.public_reply_when,
           shadow = excluded.shadow, buttons = excluded.buttons, steps = excluded.steps,
           next_post_after = case when $19 then coalesce(campaigns.next_post_after, now()) end,
           next_post_media = case when $19 then campaigns.next_post_media end,
           updated_at = now()
         returning id",
    )
    .bind(tenant_id)
    .bind(account_id);
    let campaign_id: Uuid = bind_campaign_columns(insert, c)
        .bind(source)
        .fetch_one(&mut **tx)
        .await?;
    write_campaign_parts(tx, campaign_id, c).await
}

/// Binds a campaign's own columns in the order every campaign write lists them, after the
/// parameters already bound: slug, name, trigger, media_ids, status, priority,
/// cooldown_seconds, starts_at, ends_at, payloads, refs, ad_ids, public_reply_when, shadow,
/// buttons, steps, next_post (a bool: the statement arms `next_post_after` when it is first
/// set and keeps the time and the post found while it stays set). `apply` and the dashboard
/// both write through this.
pub fn bind_campaign_columns<'q, O>(
    query: QueryScalar<'q, Postgres, O, PgArguments>,
    c: &'q CampaignSpec,
) -> QueryScalar<'q, Postgres, O, PgArguments> {
    let media: Vec<&str> = c.media_ids.iter().map(|m| m.as_str()).collect();
    query
        .bind(&c.slug)
        .bind(&c.name)
        .bind(c.trigger.as_str())
        .bind(media)
        .bind(c.status.as_str())
        .bind(c.priority)
        .bind(i32::try_from(c.cooldown_seconds).unwrap_or(i32::MAX))
        .bind(c.starts_at.map(|t| t.to_string()))
        .bind(c.ends_at.map(|t| t.to_string()))
        .bind(&c.payloads)
        .bind(&c.refs)
        .bind(&c.ad_ids)
        .bind(c.actions.public_reply_when.as_str())
        .bind(c.shadow)
        .bind(sqlx::types::Json(&c.actions.buttons))
        .bind(sqlx::types::Json(&c.steps))
        .bind(c.next_post)
}

/// Replaces a campaign's rules, intents and actions with the spec's: they belong to the
/// campaign wholesale. `apply` and the dashboard both write them through this.
#[tracing::instrument(name = "store.write_campaign_parts", level = "debug", skip_all, fields(campaign_id = %campaign_id))]
pub async fn write_campaign_parts(
    tx: &mut Transaction<'_, Postgres>,
    campaign_id: Uuid,
    c: &CampaignSpec,
) -> Result<(), sqlx::Error> {
    sqlx::query("delete from rules where campaign_id = $1")
        .bind(campaign_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("delete from intents where campaign_id = $1")
        .bind(campaign_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("delete from actions where campaign_id = $1")
        .bind(campaign_id)
        .execute(&mut **tx)
        .await?;
    write_rules_and_intents(tx, campaign_id, c).await?;
    write_actions(tx, campaign_id, c).await
}

async fn write_rules_and_intents(
    tx: &mut Transaction<'_, Postgres>,
    campaign_id: Uuid,
    c: &CampaignSpec,
) -> Result<(), sqlx::Error> {
    for (position, rule) in c.rules.iter().enumerate() {
        sqlx::query(
            "insert into rules (campaign_id, position, match_mode, require, keywords, exclude, fold_accents, stretch)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(campaign_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(rule.mode.as_str())
        .bind(rule.require.as_str())
        .bind(&rule.keywords)
        .bind(&rule.exclude)
        .bind(rule.fold_accents)
        .bind(rule.stretch)
        .execute(&mut **tx)
        .await?;
    }
    for (position, intent) in c.intents.iter().enumerate() {
        sqlx::query(
            "insert into intents (campaign_id, position, name, description, examples)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(campaign_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(&intent.name)
        .bind(&intent.description)
        .bind(&intent.examples)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_actions(
    tx: &mut Transaction<'_, Postgres>,
    campaign_id: Uuid,
    c: &CampaignSpec,
) -> Result<(), sqlx::Error> {
    let actions = c.actions();
    let rows = [
        (ActionKind::PrivateReply, actions.private_reply),
        (ActionKind::PublicReply, actions.public_replies),
        (ActionKind::Dm, actions.dm),
    ];
    let no_buttons = Vec::new();
    for (kind, variants) in rows.into_iter().filter(|(_, v)| !v.is_empty()) {
        let buttons = if kind.is_dm() {
            &actions.quick_replies
        } else {
            &no_buttons
        };
        sqlx::query(
            "insert into actions (campaign_id, kind, variants, quick_replies) values ($1, $2, $3, $4)",
        )
        .bind(campaign_id)
        .bind(kind.as_str())
        .bind(&variants)
        .bind(buttons)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
