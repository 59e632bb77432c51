//! Turning comments reconciliation found into the envelopes the webhook would have made of
//! them, and enqueueing those igflow has never seen.

use igflow_core::envelope::Envelope;
use igflow_core::ids::IgUserId;
use igflow_core::signature::VerifiedDelivery;
use igflow_core::splitter::split;
use serde_json::json;

use super::ReconcileError;
use crate::clients::graph_lifecycle::ListedComment;
use crate::clients::store::Account;
use crate::jobs::lifecycle::Lifecycle;
use crate::stats::Stats;

/// A comment or reply to recover: as listed, when it was written, and the comment it answers.
pub(super) struct Found {
    pub(super) comment: ListedComment,
    pub(super) at_ms: i64,
    pub(super) parent: Option<String>,
}

/// Enqueues the comments of `found` igflow has never seen; returns how many.
pub(super) async fn recover(
    ctx: &Lifecycle,
    account: &Account,
    media: &str,
    found: &[Found],
    now_ms: i64,
) -> Result<usize, ReconcileError> {
    if found.is_empty() {
        return Ok(0);
    }
    let mut envelopes: Vec<Envelope> = Vec::new();
    for f in found {
        let body = delivery(&account.ig_user_id, f, media);
        envelopes.extend(split(
            VerifiedDelivery::read_from_graph(body.as_bytes()),
            now_ms,
        )?);
    }
    let ids: Vec<String> = envelopes
        .iter()
        .map(|e| e.event_id.as_str().to_owned())
        .collect();
    let unseen = ctx
        .store
        .unseen_events(account.id, account.ig_user_id.as_str(), &ids)
        .await?;
    envelopes.retain(|e| unseen.iter().any(|u| u == e.event_id.as_str()));
    if envelopes.is_empty() {
        return Ok(0);
    }
    let report = ctx.queue.send(&envelopes).await;
    let failed = report.failed + report.oversized.len();
    if failed > 0 {
        return Err(ReconcileError::Queue {
            failed,
            detail: report
                .last_error
                .unwrap_or_else(|| "too large for SQS".to_owned()),
        });
    }
    for e in &envelopes {
        Stats::add(&ctx.stats.recovered_events);
        tracing::info!(event_id = %e.event_id.as_str(), "comment recovered");
    }
    Ok(envelopes.len())
}

/// The `comments` delivery Meta would have sent for the comment: the webhook's shape
/// (`id`, `from`, `text`, `media.id`, a reply's `parent_id`), at the comment's time, so its
/// private-reply window is measured from when it was written.
fn delivery(account: &IgUserId, found: &Found, media: &str) -> String {
    let comment = &found.comment;
    let mut value = json!({ "id": comment.id, "media": { "id": media } });
    if let Some(parent) = &found.parent {
        value["parent_id"] = json!(parent);
    }
    if let Some(text) = &comment.text {
        value["text"] = json!(text);
    }
    if let Some(from) = &comment.from {
        value["from"] = json!({ "id": from.id, "username": from.username });
    }
    json!({
        "object": "instagram",
        "entry": [{ "id": account, "time": found.at_ms / 1000, "changes": [{ "field": "comments", "value": value }] }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use igflow_core::envelope::EventKind;
    use igflow_core::event::Comment;

    fn found(parent: Option<&str>) -> Found {
        let comment: ListedComment = serde_json::from_value(json!({
            "id": "17900000000000042",
            "text": "price?",
            "timestamp": "2026-11-29T10:00:00+0000",
            "from": { "id": "9000000000000042", "username": "ana" },
        }))
        .unwrap();
        let at_ms = comment.written_at_ms().unwrap();
        Found {
            comment,
            at_ms,
            parent: parent.map(str::to_owned),
        }
    }

    fn envelope(found: &Found) -> Envelope {
        let account = IgUserId::parse("17841400000000000").unwrap();
        let body = delivery(&account, found, "18000000000000001");
        let mut envs = split(VerifiedDelivery::read_from_graph(body.as_bytes()), 5).unwrap();
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].account_id, account);
        envs.remove(0)
    }

    #[test]
    fn a_recovered_comment_gets_the_webhooks_event_id_and_its_own_time() {
        let comment = found(None);
        let env = envelope(&comment);
        assert_eq!(env.event_id.as_str(), "comment:17900000000000042");
        assert_eq!(env.kind, EventKind::Comment);
        assert_eq!(env.occurred_at_ms, comment.at_ms);
        let item: Comment = serde_json::from_str(env.item.get()).unwrap();
        assert_eq!(item.from.id.as_str(), "9000000000000042");
        assert!(item.parent_id.is_none());
    }

    #[test]
    fn a_recovered_reply_names_the_comment_it_answers() {
        let env = envelope(&found(Some("17900000000000001")));
        assert_eq!(env.event_id.as_str(), "comment:17900000000000042");
        let item: Comment = serde_json::from_str(env.item.get()).unwrap();
        assert_eq!(
            item.parent_id.map(|p| p.as_str().to_owned()).as_deref(),
            Some("17900000000000001")
        );
    }
}
