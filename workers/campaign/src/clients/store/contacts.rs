//! `contacts`: the people who wrote to an account, and their choice about automated messages.

use uuid::Uuid;

use super::{Store, StoreError};

impl Store {
    /// Notes that the person was seen, and their choice about automated messages if they
    /// just made one (recorded as theirs: only they may undo it). Returns whether they have
    /// opted out.
    #[tracing::instrument(name = "store.touch_contact", level = "debug", skip_all, fields(account_id = %account_id))]
    pub async fn touch_contact(
        &self,
        account_id: Uuid,
        igsid: &str,
        username: Option<&str>,
        opted_out: Option<bool>,
    ) -> Result<bool, StoreError> {
        let opted_out = sqlx::query_scalar(
            "insert into contacts (account_id, igsid, username, opted_out, opted_out_by)
             values ($1, $2, $3, coalesce($4, false), case when $4 then 'contact' end)
             on conflict (account_id, igsid) do update
               set last_seen_at = now(),
                   username = coalesce(excluded.username, contacts.username),
                   opted_out = coalesce($4, contacts.opted_out),
                   opted_out_by = case when $4 then 'contact' when not $4 then null
                                       else contacts.opted_out_by end
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
