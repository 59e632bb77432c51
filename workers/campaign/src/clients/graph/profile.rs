//! The User Profile API: whether a person who messaged the account follows it.

use igflow_core::ids::Igsid;
use secrecy::SecretString;
use serde::Deserialize;

use super::{CallError, GraphClient};
use crate::clients::store::Account;

#[derive(Deserialize)]
struct Profile {
    /// Absent when Meta withholds it (no consent yet): taken as "not following".
    #[serde(default)]
    is_user_follow_business: bool,
}

impl GraphClient {
    /// Whether `person` follows the account. Meta answers only for people who messaged the
    /// account (a tap counts); an error answer is an error, never "not following".
    #[tracing::instrument(name = "graph.user_follows", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn user_follows(
        &self,
        account: &Account,
        token: &SecretString,
        person: &Igsid,
    ) -> Result<bool, CallError> {
        let url = format!(
            "{}/{person}?fields=is_user_follow_business",
            self.base(account.login)
        );
        let profile: Profile = self.read(&url, token).await?;
        Ok(profile.is_user_follow_business)
    }
}
