//! `contacts`: the people who wrote to an account, and their choice about automated messages.

use uuid::Uuid;

use super::batch::Touch;
use super::{Store, StoreError};

impl Store {
    /// Notes that the person was seen, and their choice about automated messages if they
    /// just made one (recorded as theirs: only they may undo it). Returns whether they have
    /// opted out. A sighting alone is written with other events' rows (`batch`); a choice,
    /// rare, at once.
    #[tracing::instrument(name = "store.touch_contact", level = "debug", skip_all, fields(account_id = %account_id))]
    pub async fn touch_contact(
        &self,
        account_id: Uuid,
        igsid: &str,
        username: Option<&str>,
        opted_out: Option<bool>,
    ) -> Result<bool, StoreError> {
        let Some(opted_out) = opted_out else {
            let (igsid, username) = (igsid.to_owned(), username.map(str::to_owned));
            return (self.batches)
                .touch(Touch {
                    account_id,
                    igsid,
                    username,
                })
                .await;
        };
        let opted_out = sqlx::query_scalar(
            "insert into contacts (account_id, igsid, username, opted_out, opted_out_by)
             values ($1, $2, $3, $4, case when $4 then 'contact' end)
             on conflict (account_id, igsid) do update
               set last_seen_at = now(),
                   username = coalesce(excluded.username, contacts.username),
                   opted_out = $4,
                   opted_out_by = case when $4 then 'contact' end
             returning opted_out",
        )
        .bind(account_id)
        .bind(igsid)
        .bind(username)
        .bind(opted_out)
        .fetch_one(&self.pool)
        .await?;
        Ok(opted_out)
    }
}

/// What Postgres knows of one person for `simulate --contact`.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ContactState {
    /// The account is in the database at all.
    pub account_known: bool,
    pub contact_known: bool,
    pub opted_out: bool,
    /// The campaign of that slug on the account, if there is one.
    pub campaign_id: Option<Uuid>,
}

impl Store {
    /// The person as the worker would find them: known, opted out, and the campaign's id.
    #[tracing::instrument(name = "store.contact_state", level = "debug", skip_all)]
    pub async fn contact_state(
        &self,
        ig_user_id: &str,
        igsid: &str,
        campaign_slug: &str,
    ) -> Result<ContactState, StoreError> {
        Ok(sqlx::query_as(
            "select true as account_known, c.id is not null as contact_known,
                    coalesce(c.opted_out, false) as opted_out, k.id as campaign_id
             from ig_accounts a
             left join contacts c on c.account_id = a.id and c.igsid = $2
             left join campaigns k on k.account_id = a.id and k.slug = $3
             where a.ig_user_id = $1",
        )
        .bind(ig_user_id)
        .bind(igsid)
        .bind(campaign_slug)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or_default())
    }
}

impl Store {
    /// The email or phone number on record for the person, if any.
    #[tracing::instrument(name = "store.contact_detail", level = "debug", skip_all, fields(account_id = %account_id))]
    pub async fn contact_detail(
        &self,
        account_id: Uuid,
        igsid: &str,
        field: igflow_core::campaign::CaptureField,
    ) -> Result<Option<String>, StoreError> {
        // The field's name is its column's (`contacts.email`, `contacts.phone`).
        let sql = format!(
            "select {} from contacts where account_id = $1 and igsid = $2",
            field.as_str()
        );
        Ok(
            sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql))
                .bind(account_id)
                .bind(igsid)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }
}
