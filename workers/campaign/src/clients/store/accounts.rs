//! `ig_accounts`: the Instagram accounts igflow acts for.

use igflow_core::campaign::{AccountLimits, AccountStatus, LoginFlavor};
use igflow_core::ids::{IgUserId, PageId};
use uuid::Uuid;

use super::{Store, StoreError};

/// An Instagram account igflow acts for.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub ig_user_id: IgUserId,
    pub login: LoginFlavor,
    pub page_id: Option<PageId>,
    pub token_secret_ref: String,
    pub status: AccountStatus,
    /// Its own rate budgets, where it has any.
    pub limits: AccountLimits,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    tenant_id: Uuid,
    ig_user_id: String,
    login_flavor: String,
    page_id: Option<String>,
    token_secret_ref: String,
    status: String,
    /// Read as any JSON and checked here, so a bad value names its row.
    limits: sqlx::types::Json<serde_json::Value>,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        let id = r.id;
        let bad = |problem: String| StoreError::CorruptAccount { id, problem };
        Ok(Self {
            id: r.id,
            tenant_id: r.tenant_id,
            ig_user_id: IgUserId::parse(r.ig_user_id).map_err(|e| bad(e.to_string()))?,
            login: r.login_flavor.parse().map_err(&bad)?,
            page_id: r
                .page_id
                .map(PageId::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            token_secret_ref: r.token_secret_ref,
            status: r.status.parse().map_err(&bad)?,
            limits: serde_json::from_value(r.limits.0).map_err(|e| bad(format!("limits: {e}")))?,
        })
    }
}

impl Store {
    #[tracing::instrument(name = "store.account", level = "debug", skip_all)]
    pub async fn account(&self, ig_user_id: &IgUserId) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sqlx::query_as(
            "select id, tenant_id, ig_user_id, login_flavor, page_id, token_secret_ref, status, limits
             from ig_accounts where ig_user_id = $1",
        )
        .bind(ig_user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Account::try_from).transpose()
    }

    /// Stops all actions for the account until an operator (or a token refresh) resumes it.
    #[tracing::instrument(name = "store.pause_account", level = "debug", skip_all, fields(account_id = %account_id))]
    pub async fn pause_account(&self, account_id: Uuid, reason: &str) -> Result<(), StoreError> {
        sqlx::query("update ig_accounts set status = 'paused', status_reason = $2, updated_at = now() where id = $1")
            .bind(account_id)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
