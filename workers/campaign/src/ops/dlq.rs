//! `igflow-worker dlq`: what sits in the dead-letter queue and why, and redriving it.

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use igflow_core::envelope::Envelope;
use igflow_core::runtime::queue::{QueueSender, delete_messages};
use igflow_core::runtime::sqs::SqsError;

use crate::clients::store::{MessageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Sqs(#[from] SqsError),
    /// Some messages were not moved; what was sent is deduped if redriven again.
    #[error("{failed} messages not sent back to the events queue: {detail}")]
    NotRedriven { failed: usize, detail: String },
    #[error("the events queue has no redrive policy, so it has no DLQ")]
    NoDlq,
    #[error(transparent)]
    Store(#[from] crate::clients::store::StoreError),
}

/// One DLQ message, as an operator sees it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub message_id: String,
    pub kind: Option<String>,
    pub event_id: Option<String>,
    pub receive_count: u32,
    pub last_error: Option<String>,
    body: String,
    receipt: String,
}

/// Which messages a redrive moves.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    /// By SQS message id or event id.
    Ids(Vec<String>),
}

impl Selection {
    fn takes(&self, m: &DeadLetter) -> bool {
        match self {
            Self::All => true,
            Self::Ids(ids) => ids
                .iter()
                .any(|id| *id == m.message_id || m.event_id.as_deref() == Some(id.as_str())),
        }
    }
}

pub struct Dlq {
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    main: QueueSender,
    store: Store,
}

/// How long listed messages stay hidden from others while an operator looks at them.
const PEEK_VISIBILITY: i32 = 30;

impl Dlq {
    /// Finds the DLQ from the events queue's redrive policy.
    pub async fn connect(
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        store: Store,
    ) -> Result<Self, DlqError> {
        let policy = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| SqsError::sdk("GetQueueAttributes", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy).cloned())
            .ok_or(DlqError::NoDlq)?;
        let arn = serde_json::from_str::<serde_json::Value>(&policy)
            .ok()
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned))
            .ok_or(DlqError::NoDlq)?;
        // arn:aws:sqs:{region}:{account}:{name}
        let parts: Vec<&str> = arn.split(':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            return Err(DlqError::NoDlq);
        };
        let dlq_url = sqs
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
            .map_err(|e| SqsError::sdk("GetQueueUrl", e))?
            .queue_url
            .ok_or(DlqError::NoDlq)?;
        Ok(Self {
            main: QueueSender::new(sqs.clone(), queue_url),
            sqs,
            dlq_url,
            store,
        })
    }

    /// Reads up to `max` messages (hiding them for a short while), with their recorded errors.
    pub async fn peek(&self, max: usize) -> Result<Vec<DeadLetter>, DlqError> {
        let mut messages: Vec<Message> = Vec::new();
        while messages.len() < max {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(i32::try_from((max - messages.len()).min(10)).unwrap_or(10))
                .visibility_timeout(PEEK_VISIBILITY)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| SqsError::sdk("ReceiveMessage", e))?
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            messages.extend(batch);
        }
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        let mut errors = self.store.message_errors(&ids).await?;
        Ok(messages
            .into_iter()
            .map(|m| {
                let message_id = m.message_id.clone().unwrap_or_default();
                let body = m.body.clone().unwrap_or_default();
                let envelope = Envelope::decode(&body).ok();
                let recorded: Option<MessageError> = errors.remove(&message_id);
                DeadLetter {
                    kind: envelope.as_ref().map(|e| e.kind.as_str().to_owned()),
                    event_id: envelope.as_ref().map(|e| e.event_id.to_string()),
                    receive_count: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0),
                    last_error: recorded.map(|r| r.error),
                    receipt: m.receipt_handle.unwrap_or_default(),
                    message_id,
                    body,
                }
            })
            .collect())
    }

    /// Makes peeked messages visible again at once.
    pub async fn release(&self, letters: &[DeadLetter]) -> Result<(), DlqError> {
        for l in letters {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.dlq_url)
                .receipt_handle(&l.receipt)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| SqsError::sdk("ChangeMessageVisibility", e))?;
        }
        Ok(())
    }

    /// Moves the selected messages back to the events queue; returns how many moved.
    pub async fn redrive(&self, selection: &Selection, max: usize) -> Result<usize, DlqError> {
        let letters = self.peek(max).await?;
        let (chosen, others): (Vec<_>, Vec<_>) =
            letters.into_iter().partition(|l| selection.takes(l));
        self.release(&others).await?;
        let bodies: Vec<&str> = chosen.iter().map(|l| l.body.as_str()).collect();
        let report = self.main.send_raw(&bodies).await;
        if report.failed > 0 {
            // Nothing is deleted from the DLQ: what was sent is deduped if sent again.
            return Err(DlqError::NotRedriven {
                failed: report.failed,
                detail: report.last_error.unwrap_or_default(),
            });
        }
        let receipts: Vec<&str> = chosen.iter().map(|l| l.receipt.as_str()).collect();
        match delete_messages(&self.sqs, &self.dlq_url, &receipts).await? {
            0 => {}
            // Those stay in the DLQ as well; moving them again is absorbed by the dedupe.
            n => tracing::warn!(failed = n, "redriven messages not deleted from the DLQ"),
        }
        Ok(chosen.len())
    }
}
