//! Writes: the private reply to a comment, the public reply under it, and DMs.

use igflow_core::ids::{CommentId, Igsid};
use igflow_core::plan::PlannedButton;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{CallError, GraphClient, Sent};
use crate::clients::store::Account;

/// A text message to one person, optionally with quick-reply or template buttons.
#[derive(Debug, Clone, Copy)]
pub struct DirectMessage<'a> {
    pub text: &'a str,
    /// Button titles; tapping one sends its title back as the person's message, which a
    /// `trigger: message` campaign can answer. The title is also the payload.
    pub quick_replies: &'a [String],
    /// Postback and URL buttons: the text goes out as Meta's button template.
    pub buttons: &'a [PlannedButton],
}

impl DirectMessage<'_> {
    fn body(&self) -> Value {
        let mut body = if self.buttons.is_empty() {
            json!({ "text": self.text })
        } else {
            let buttons: Vec<Value> = self
                .buttons
                .iter()
                .map(|b| match b {
                    PlannedButton::Postback { title, payload } => {
                        json!({ "type": "postback", "title": title, "payload": payload })
                    }
                    PlannedButton::Url { title, url } => {
                        json!({ "type": "web_url", "title": title, "url": url })
                    }
                })
                .collect();
            json!({ "attachment": { "type": "template", "payload": {
                "template_type": "button", "text": self.text, "buttons": buttons } } })
        };
        if !self.quick_replies.is_empty() {
            body["quick_replies"] = self
                .quick_replies
                .iter()
                .map(|title| json!({ "content_type": "text", "title": title, "payload": title }))
                .collect();
        }
        body
    }
}

impl GraphClient {
    /// The one private reply Meta allows per comment, sent as a DM to its author.
    #[tracing::instrument(name = "graph.private_reply", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn private_reply(
        &self,
        account: &Account,
        token: &SecretString,
        comment: &CommentId,
        message: &DirectMessage<'_>,
    ) -> Result<Sent, CallError> {
        let recipient = json!({ "comment_id": comment });
        self.message(account, token, recipient, message).await
    }

    /// A direct message in the thread of someone who wrote to the account.
    #[tracing::instrument(name = "graph.send_dm", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn send_dm(
        &self,
        account: &Account,
        token: &SecretString,
        recipient: &Igsid,
        message: &DirectMessage<'_>,
    ) -> Result<Sent, CallError> {
        self.message(account, token, json!({ "id": recipient }), message)
            .await
            .map_err(CallError::unknown_after_server_error)
    }

    /// One Send API call: a message to `recipient` (a comment or a person).
    async fn message(
        &self,
        account: &Account,
        token: &SecretString,
        recipient: Value,
        message: &DirectMessage<'_>,
    ) -> Result<Sent, CallError> {
        let sender = Self::sender(account);
        let url = format!("{}/{sender}/messages", self.base(account.login));
        let body = json!({ "recipient": recipient, "message": message.body() });
        self.post(&url, token, &body).await
    }

    /// A public reply under the comment.
    #[tracing::instrument(name = "graph.public_reply", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn public_reply(
        &self,
        account: &Account,
        token: &SecretString,
        comment: &CommentId,
        text: &str,
    ) -> Result<Sent, CallError> {
        let url = format!("{}/{comment}/replies", self.base(account.login));
        self.post(&url, token, &json!({ "message": text }))
            .await
            .map_err(CallError::unknown_after_server_error)
    }
}
