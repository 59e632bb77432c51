//! Read-backs: whether a public reply or a DM whose outcome was unknown is there after all.

use igflow_core::ids::{CommentId, Igsid};
use secrecy::SecretString;
use serde::Deserialize;

use super::{CallError, GraphClient};
use crate::clients::store::Account;

#[derive(Deserialize)]
struct RepliesPage {
    #[serde(default)]
    data: Vec<Reply>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    from: Option<ReplyAuthor>,
}

#[derive(Deserialize)]
struct ReplyAuthor {
    id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// `GET /{ig-user-id}/conversations?user_id=...`: the account's thread with one person.
#[derive(Deserialize)]
struct Conversations {
    #[serde(default)]
    data: Vec<Conversation>,
}

#[derive(Deserialize)]
struct Conversation {
    id: String,
}

/// `GET /{conversation-id}?fields=messages{message,from,created_time}`: its recent messages
/// (Meta returns the 20 newest).
#[derive(Deserialize)]
struct Thread {
    #[serde(default)]
    messages: Option<ThreadMessages>,
}

#[derive(Deserialize)]
struct ThreadMessages {
    #[serde(default)]
    data: Vec<ThreadMessage>,
}

#[derive(Deserialize)]
struct ThreadMessage {
    id: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    from: Option<ReplyAuthor>,
    /// `2026-11-29T17:30:00+0000`.
    #[serde(default)]
    created_time: Option<String>,
}

/// Meta's clock and ours differ a little: a message this much older than the attempt may
/// still be its.
const CLOCK_SKEW_MS: i64 = 60_000;

impl ThreadMessage {
    /// Whether this is the account's message with exactly `text`, written at or after
    /// `since_ms` (when known). A time that does not parse counts as recent: taking a DM for
    /// sent is the safe mistake, sending it twice is not.
    fn is(&self, senders: &[&str], text: &str, since_ms: Option<i64>) -> bool {
        let recent = match (since_ms, &self.created_time) {
            (Some(since), Some(at)) => jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", at)
                .map_or(true, |t| {
                    t.as_millisecond() >= since.saturating_sub(CLOCK_SKEW_MS)
                }),
            _ => true,
        };
        recent
            && self.message.as_deref() == Some(text)
            && self
                .from
                .as_ref()
                .is_some_and(|f| senders.contains(&f.id.as_str()))
    }
}

/// Pages of replies read back before giving up.
const READ_BACK_PAGES: usize = 5;

impl GraphClient {
    /// Looks for the account's reply with exactly `text` under the comment: the read-back for
    /// a public reply whose outcome was unknown. Returns the reply's id if it is there; an
    /// error answer is an error ("could not check"), never "not there".
    #[tracing::instrument(name = "graph.find_public_reply", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn find_public_reply(
        &self,
        account: &Account,
        token: &SecretString,
        comment: &CommentId,
        text: &str,
    ) -> Result<Option<String>, CallError> {
        let mut url = format!(
            "{}/{comment}/replies?fields=id,text,from&limit=100",
            self.base(account.login)
        );
        // A viral comment has many replies; ours is recent, a few pages are enough.
        for _ in 0..READ_BACK_PAGES {
            let page: RepliesPage = self.read(&url, token).await?;
            let ours = page.data.into_iter().find(|r| {
                r.text.as_deref() == Some(text)
                    && r.from
                        .as_ref()
                        .is_some_and(|f| f.id == account.ig_user_id.as_str())
            });
            if let Some(reply) = ours {
                return Ok(Some(reply.id));
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(None)
    }

    /// Looks for the account's DM with exactly `text` to `recipient`, written since
    /// `since_ms`: the read-back for a DM whose outcome was unknown (Conversations API).
    /// Returns the message's id if it is there; an error answer is an error, never "not there".
    #[tracing::instrument(name = "graph.find_dm", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn find_dm(
        &self,
        account: &Account,
        token: &SecretString,
        recipient: &Igsid,
        text: &str,
        since_ms: Option<i64>,
    ) -> Result<Option<String>, CallError> {
        let base = self.base(account.login);
        let sender = Self::sender(account);
        let threads: Conversations = self
            .read(
                &format!("{base}/{sender}/conversations?platform=instagram&user_id={recipient}"),
                token,
            )
            .await?;
        let senders = [sender, account.ig_user_id.as_str()];
        for thread in threads.data {
            let thread: Thread = self
                .read(
                    &format!(
                        "{base}/{}?fields=messages{{message,from,created_time}}",
                        thread.id
                    ),
                    token,
                )
                .await?;
            let ours = thread
                .messages
                .into_iter()
                .flat_map(|m| m.data)
                .find(|m| m.is(&senders, text, since_ms));
            if let Some(message) = ours {
                return Ok(Some(message.id));
            }
        }
        Ok(None)
    }
}
