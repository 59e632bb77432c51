//! Splits one verified delivery into one envelope per item (entry × changes/messaging), with
//! event ids that stay the same when Meta redelivers (docs/architecture.md, "The queue envelope").

use std::collections::HashSet;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::envelope::{ENVELOPE_VERSION, Envelope, EventKind};
use crate::ids::{EventId, IgUserId};
use crate::signature::VerifiedDelivery;
use crate::time::UnixMillis;

#[derive(Debug, thiserror::Error)]
#[error("delivery is not a Meta webhook payload: {0}")]
pub struct SplitError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct Delivery<'a> {
    /// Always present in Meta's deliveries ("instagram", or "page" for Facebook Login);
    /// requiring it refuses bodies that are not deliveries at all.
    #[serde(rename = "object")]
    _object: String,
    #[serde(borrow, default)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    id: IgUserId,
    #[serde(default, deserialize_with = "lenient_time")]
    time: Option<UnixMillis>,
    #[serde(borrow, default)]
    changes: Vec<Change<'a>>,
    #[serde(borrow, default)]
    messaging: Vec<&'a RawValue>,
    /// Messaging items for threads another app controls (handover protocol).
    #[serde(borrow, default)]
    standby: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Change<'a> {
    field: String,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// The few fields of a `changes[].value` that name a comment.
#[derive(Deserialize)]
struct CommentProbe {
    id: Option<String>,
    comment_id: Option<String>,
}

#[derive(Deserialize)]
struct Party {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Mid {
    mid: Option<String>,
}

#[derive(Deserialize)]
struct MessageProbe {
    mid: Option<String>,
    #[serde(default)]
    is_deleted: bool,
}

#[derive(Deserialize)]
struct EditProbe {
    mid: Option<String>,
    num_edit: Option<i64>,
}

/// A time that cannot be read is treated as absent: the item is still enqueued.
fn lenient_time<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<UnixMillis>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Time(UnixMillis),
        Other(IgnoredAny),
    }
    Ok(match Lenient::deserialize(de)? {
        Lenient::Time(t) => Some(t),
        Lenient::Other(_) => None,
    })
}

#[derive(Deserialize)]
struct PostbackProbe {
    mid: Option<String>,
    payload: Option<String>,
}

#[derive(Deserialize)]
struct ReactionProbe {
    mid: Option<String>,
    action: Option<String>,
}

/// The fields of a `messaging[]` object that decide its kind and id.
#[derive(Deserialize)]
struct MessagingProbe {
    sender: Option<Party>,
    #[serde(default, deserialize_with = "lenient_time")]
    timestamp: Option<UnixMillis>,
    message: Option<MessageProbe>,
    message_edit: Option<EditProbe>,
    postback: Option<PostbackProbe>,
    reaction: Option<ReactionProbe>,
    read: Option<Mid>,
    referral: Option<IgnoredAny>,
    optin: Option<IgnoredAny>,
    pass_thread_control: Option<IgnoredAny>,
    take_thread_control: Option<IgnoredAny>,
    request_thread_control: Option<IgnoredAny>,
}

/// Kind and id of one item, plus its own time when it carries one.
struct Identity {
    kind: EventKind,
    id: Option<String>,
    occurred_at: Option<UnixMillis>,
}

impl Identity {
    fn generic(kind: EventKind) -> Self {
        Self {
            kind,
            id: None,
            occurred_at: None,
        }
    }
}

/// `changes` fields whose value is a messaging object (the app dashboard's test shape).
const MESSAGING_FIELDS: &[&str] = &[
    "messages",
    "message_edit",
    "message_reactions",
    "messaging_handover",
    "messaging_optins",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_seen",
    "standby",
];

fn identify_change(field: &str, value: &RawValue) -> Identity {
    let kind = match field {
        "comments" => EventKind::Comment,
        "live_comments" => EventKind::LiveComment,
        "mentions" => return Identity::generic(EventKind::Mention),
        // The dashboard's "Test" button sends messaging objects under `changes`.
        f if MESSAGING_FIELDS.contains(&f) => return identify_messaging(value),
        _ => return Identity::generic(EventKind::Other),
    };
    let id = serde_json::from_str::<CommentProbe>(value.get())
        .ok()
        .and_then(|p| p.id.or(p.comment_id))
        .map(|id| format!("comment:{id}"));
    Identity {
        kind,
        id,
        occurred_at: None,
    }
}

fn identify_messaging(item: &RawValue) -> Identity {
    let Ok(p) = serde_json::from_str::<MessagingProbe>(item.get()) else {
        return Identity::generic(EventKind::Other);
    };
    let sender = p.sender.and_then(|s| s.id);
    let occurred_at = p.timestamp;
    let (kind, id) = if let Some(message) = p.message {
        // A deletion names the deleted message's mid: keep it apart from the message itself.
        let suffix = if message.is_deleted { ":deleted" } else { "" };
        let id = message.mid.map(|mid| format!("message:{mid}{suffix}"));
        (EventKind::Message, id)
    } else if let Some(edit) = p.message_edit {
        let id = edit
            .mid
            .map(|mid| format!("message_edit:{mid}:{}", edit.num_edit.unwrap_or_default()));
        (EventKind::MessageEdit, id)
    } else if let Some(postback) = p.postback {
        let id = match (postback.mid, &sender, occurred_at) {
            (Some(mid), _, _) => Some(format!("postback:{mid}")),
            (None, Some(sender), Some(ts)) => Some(format!(
                "postback:{sender}:{}:{}",
                ts.0,
                postback.payload.unwrap_or_default()
            )),
            _ => None,
        };
        (EventKind::Postback, id)
    } else if let Some(reaction) = p.reaction {
        let id = match (reaction.mid, &sender, occurred_at) {
            (Some(mid), Some(sender), Some(ts)) => Some(format!(
                "reaction:{mid}:{sender}:{}:{}",
                reaction.action.unwrap_or_default(),
                ts.0
            )),
            _ => None,
        };
        (EventKind::Reaction, id)
    } else if let Some(read) = p.read {
        let id = match (&sender, read.mid) {
            (Some(sender), Some(mid)) => Some(format!("seen:{sender}:{mid}")),
            _ => None,
        };
        (EventKind::Seen, id)
    } else if p.referral.is_some() {
        (EventKind::Referral, None)
    } else if p.optin.is_some() {
        (EventKind::Optin, None)
    } else if p.pass_thread_control.is_some()
        || p.take_thread_control.is_some()
        || p.request_thread_control.is_some()
    {
        (EventKind::Handover, None)
    } else {
        (EventKind::Other, None)
    };
    Identity {
        kind,
        id,
        occurred_at,
    }
}

/// `item:{sha256 of account, field and item bytes}`: stable because Meta resends the same bytes.
fn hashed_id(account: &IgUserId, field: &str, item: &RawValue) -> EventId {
    let mut h = Sha256::new();
    h.update(account.as_str().as_bytes());
    h.update([0]);
    h.update(field.as_bytes());
    h.update([0]);
    h.update(item.get().as_bytes());
    // "item:" and 64 hex digits always make a valid id.
    #[allow(clippy::expect_used)]
    EventId::parse(format!("item:{}", hex::encode(h.finalize()))).expect("hash ids are valid")
}

/// One envelope per item; an item repeated inside the same delivery is kept once.
pub fn split(
    delivery: VerifiedDelivery<'_>,
    received_at_ms: i64,
) -> Result<Vec<Envelope>, SplitError> {
    let parsed: Delivery<'_> = serde_json::from_slice(delivery.body())?;
    let delivery_id = delivery.delivery_id();
    let mut seen = HashSet::new();
    let mut out = Vec::new();

    for entry in parsed.entry {
        let changes = entry
            .changes
            .into_iter()
            .map(|c| (identify_change(&c.field, c.value), Some(c.field), c.value));
        let messaging = entry
            .messaging
            .into_iter()
            .map(|item| (identify_messaging(item), None, item));
        let standby = entry
            .standby
            .into_iter()
            .map(|item| (identify_messaging(item), Some("standby".to_owned()), item));
        for (identity, field, item) in changes.chain(messaging).chain(standby) {
            // An id Meta sent empty or with spaces falls back to the content hash.
            let event_id = identity
                .id
                .and_then(|id| EventId::parse(id).ok())
                .unwrap_or_else(|| {
                    hashed_id(&entry.id, field.as_deref().unwrap_or("messaging"), item)
                });
            if !seen.insert(event_id.clone()) {
                continue;
            }
            let occurred_at_ms = identity
                .occurred_at
                .or(entry.time)
                .map_or(received_at_ms, |t| t.0);
            out.push(Envelope {
                v: ENVELOPE_VERSION,
                event_id,
                kind: identity.kind,
                account_id: entry.id.clone(),
                field,
                occurred_at_ms,
                received_at_ms,
                delivery_id: delivery_id.clone(),
                item: item.to_owned(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::signature::{Verifier, sign};

    fn split_str(body: &str) -> Vec<Envelope> {
        let secret = SecretString::from("s".to_owned());
        let header = sign(&secret, body.as_bytes());
        let verified = Verifier::new(vec![secret])
            .verify(Some(header.as_bytes()), body.as_bytes())
            .unwrap();
        split(verified, 42).unwrap()
    }

    fn ids(envs: &[Envelope]) -> Vec<(&str, EventKind)> {
        envs.iter().map(|e| (e.event_id.as_str(), e.kind)).collect()
    }

    #[test]
    fn comments_use_the_comment_id_and_entry_time_in_seconds() {
        let body = r#"{"object":"instagram","entry":[{"id":"17841400000000000","time":1732200000,"changes":[
            {"field":"comments","value":{"id":"17900000000000001","from":{"id":"9","username":"a"},"text":"Price? \u00e9","media":{"id":"m1"}}},
            {"field":"live_comments","value":{"id":"17900000000000002","text":"hi"}},
            {"field":"comments","value":{"comment_id":"17900000000000003","text":"fb flavor"}}]}]}"#;
        let envs = split_str(body);
        assert_eq!(
            ids(&envs),
            vec![
                ("comment:17900000000000001", EventKind::Comment),
                ("comment:17900000000000002", EventKind::LiveComment),
                ("comment:17900000000000003", EventKind::Comment),
            ]
        );
        assert_eq!(envs[0].occurred_at_ms, 1_732_200_000_000);
        assert_eq!(envs[0].account_id.as_str(), "17841400000000000");
        assert_eq!(envs[0].field.as_deref(), Some("comments"));
        assert!(
            envs[0].item.get().contains(r"\u00e9"),
            "item bytes are Meta's, unescaped never"
        );
    }

    #[test]
    fn messaging_kinds_and_ids() {
        let body = r#"{"object":"instagram","entry":[{"id":"1","time":1569262486134,"messaging":[
            {"sender":{"id":"u"},"recipient":{"id":"1"},"timestamp":1569262485349,"message":{"mid":"m1","text":"hi"}},
            {"sender":{"id":"u"},"recipient":{"id":"1"},"timestamp":1569262485350,"postback":{"mid":"m2","payload":"P"}},
            {"sender":{"id":"u"},"recipient":{"id":"1"},"timestamp":1569262485351,"postback":{"title":"t","payload":"P"}},
            {"sender":{"id":"u"},"recipient":{"id":"1"},"timestamp":1569262485352,"reaction":{"mid":"m1","action":"react","reaction":"love"}},
            {"sender":{"id":"u"},"recipient":{"id":"1"},"timestamp":1569262485353,"read":{"mid":"m1"}},
            {"sender":{"id":"u"},"recipient":{"id":"1"},"timestamp":1569262485354,"referral":{"ref":"r","source":"IGME"}}]}]}"#;
        let envs = split_str(body);
        let got = ids(&envs);
        assert_eq!(got[0], ("message:m1", EventKind::Message));
        assert_eq!(got[1], ("postback:m2", EventKind::Postback));
        assert_eq!(got[2], ("postback:u:1569262485351:P", EventKind::Postback));
        assert_eq!(
            got[3],
            ("reaction:m1:u:react:1569262485352", EventKind::Reaction)
        );
        assert_eq!(got[4], ("seen:u:m1", EventKind::Seen));
        assert_eq!(got[5].1, EventKind::Referral);
        assert!(got[5].0.starts_with("item:"));
        assert_eq!(envs[0].occurred_at_ms, 1_569_262_485_349);
    }

    #[test]
    fn unknown_fields_are_kept_with_a_stable_hash_id() {
        let body = r#"{"object":"instagram","entry":[{"id":"1","time":1,"changes":[{"field":"story_insights","value":{"x":1}}]}]}"#;
        let a = split_str(body);
        let b = split_str(body);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, EventKind::Other);
        assert_eq!(a[0].event_id, b[0].event_id);
    }

    #[test]
    fn the_same_item_twice_in_one_delivery_is_enqueued_once() {
        let c = r#"{"field":"comments","value":{"id":"5","text":"price"}}"#;
        let body = format!(
            r#"{{"object":"instagram","entry":[{{"id":"1","time":1,"changes":[{c},{c}]}},{{"id":"1","time":1,"changes":[{c}]}}]}}"#
        );
        assert_eq!(split_str(&body).len(), 1);
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let secret = SecretString::from("s".to_owned());
        for body in [
            "",
            "[]",
            "{}",
            r#"{"object":"instagram","entry":[{"time":1}]}"#,
            r#"{"object":"instagram","entry":5}"#,
            r#"{"object":"instagram","entry":[{"id":"1","changes":[{"value":{}}]}]}"#,
            "not json",
        ] {
            let header = sign(&secret, body.as_bytes());
            let v = Verifier::new(vec![secret.clone()])
                .verify(Some(header.as_bytes()), body.as_bytes())
                .unwrap();
            assert!(split(v, 0).is_err(), "{body}");
        }
    }

    /// One delivery per messaging shape Meta documents, for both login flavors.
    fn messaging(item: &str) -> Vec<Envelope> {
        split_str(&format!(
            r#"{{"object":"instagram","entry":[{{"id":"100","time":1732200000123,"messaging":[{item}]}}]}}"#
        ))
    }

    #[test]
    fn every_messaging_shape_gets_its_kind_and_stable_id() {
        let s = r#""sender":{"id":"u"},"recipient":{"id":"100"},"timestamp":1732200000000"#;
        let cases = [
            (
                format!(r#"{{{s},"message":{{"mid":"m1","text":"hi"}}}}"#),
                EventKind::Message,
                "message:m1",
            ),
            (
                format!(
                    r#"{{{s},"message":{{"mid":"m2","attachments":[{{"type":"image","payload":{{"url":"https://x"}}}}]}}}}"#
                ),
                EventKind::Message,
                "message:m2",
            ),
            (
                format!(
                    r#"{{{s},"message":{{"mid":"m3","text":"Red","quick_reply":{{"payload":"RED"}}}}}}"#
                ),
                EventKind::Message,
                "message:m3",
            ),
            (
                format!(
                    r#"{{{s},"message":{{"mid":"m4","text":"wow","reply_to":{{"story":{{"url":"https://s","id":"st1"}}}}}}}}"#
                ),
                EventKind::Message,
                "message:m4",
            ),
            (
                format!(
                    r#"{{{s},"message":{{"mid":"m5","attachments":[{{"type":"story_mention","payload":{{"url":"https://s"}}}}]}}}}"#
                ),
                EventKind::Message,
                "message:m5",
            ),
            (
                format!(
                    r#"{{{s},"message":{{"mid":"m6","attachments":[{{"type":"share","payload":{{"url":"https://p"}}}}]}}}}"#
                ),
                EventKind::Message,
                "message:m6",
            ),
            (
                format!(r#"{{{s},"message":{{"mid":"m1","is_deleted":true}}}}"#),
                EventKind::Message,
                "message:m1:deleted",
            ),
            (
                format!(r#"{{{s},"message_edit":{{"mid":"m1","text":"hi!","num_edit":1}}}}"#),
                EventKind::MessageEdit,
                "message_edit:m1:1",
            ),
            (
                r#"{"sender":{"id":"100"},"recipient":{"id":"u"},"timestamp":1,"message":{"mid":"e1","text":"x","is_echo":true}}"#.to_owned(),
                EventKind::Message,
                "message:e1",
            ),
            (
                format!(r#"{{{s},"postback":{{"mid":"p1","title":"Start","payload":"GO"}}}}"#),
                EventKind::Postback,
                "postback:p1",
            ),
            (
                format!(r#"{{{s},"postback":{{"title":"Start","payload":"GO"}}}}"#),
                EventKind::Postback,
                "postback:u:1732200000000:GO",
            ),
            (
                format!(
                    r#"{{{s},"reaction":{{"mid":"m1","action":"react","reaction":"love","emoji":"\u2764\ufe0f"}}}}"#
                ),
                EventKind::Reaction,
                "reaction:m1:u:react:1732200000000",
            ),
            (
                format!(r#"{{{s},"reaction":{{"mid":"m1","action":"unreact"}}}}"#),
                EventKind::Reaction,
                "reaction:m1:u:unreact:1732200000000",
            ),
            (
                format!(r#"{{{s},"read":{{"mid":"m1"}}}}"#),
                EventKind::Seen,
                "seen:u:m1",
            ),
        ];
        for (item, kind, id) in cases {
            let envs = messaging(&item);
            assert_eq!(envs.len(), 1, "{item}");
            assert_eq!(
                (envs[0].kind, envs[0].event_id.as_str()),
                (kind, id),
                "{item}"
            );
            assert_eq!(
                envs[0].occurred_at_ms,
                if id.starts_with("message:e1") {
                    1000
                } else {
                    1_732_200_000_000
                }
            );
        }
        let hashed = [
            (
                format!(r#"{{{s},"referral":{{"ref":"r","source":"IGME","type":"OPEN_THREAD"}}}}"#),
                EventKind::Referral,
            ),
            (
                format!(r#"{{{s},"optin":{{"type":"notification_messages","payload":"p"}}}}"#),
                EventKind::Optin,
            ),
            (
                format!(
                    r#"{{{s},"pass_thread_control":{{"new_owner_app_id":"1","metadata":"m"}}}}"#
                ),
                EventKind::Handover,
            ),
            (
                format!(r#"{{{s},"take_thread_control":{{"previous_owner_app_id":"1"}}}}"#),
                EventKind::Handover,
            ),
            (format!(r#"{{{s},"something_new":{{}}}}"#), EventKind::Other),
        ];
        for (item, kind) in hashed {
            let envs = messaging(&item);
            assert_eq!(envs[0].kind, kind, "{item}");
            assert!(envs[0].event_id.as_str().starts_with("item:"), "{item}");
            assert_eq!(
                envs[0].event_id,
                messaging(&item)[0].event_id,
                "stable: {item}"
            );
        }
    }

    #[test]
    fn standby_dashboard_tests_and_mentions_are_enqueued() {
        let standby = split_str(
            r#"{"object":"instagram","entry":[{"id":"100","time":1,"standby":[{"sender":{"id":"u"},"recipient":{"id":"100"},"timestamp":2,"message":{"mid":"s1","text":"hi"}}]}]}"#,
        );
        assert_eq!(
            (standby[0].event_id.as_str(), standby[0].field.as_deref()),
            ("message:s1", Some("standby"))
        );
        let test_shape = split_str(
            r#"{"object":"instagram","entry":[{"id":"0","time":1,"changes":[
                {"field":"messages","value":{"sender":{"id":"12334"},"recipient":{"id":"23245"},"timestamp":"1527459824","message":{"mid":"random_mid","text":"random_text"}}},
                {"field":"messaging_postbacks","value":{"sender":{"id":"1"},"recipient":{"id":"0"},"timestamp":"1527459824","postback":{"mid":"pb","payload":"P"}}},
                {"field":"mentions","value":{"media_id":"17918195224117851","comment_id":"17895695668004550"}}]}]}"#,
        );
        assert_eq!(
            ids(&test_shape)[..2],
            [
                ("message:random_mid", EventKind::Message),
                ("postback:pb", EventKind::Postback)
            ]
        );
        assert_eq!(
            test_shape[0].occurred_at_ms, 1_527_459_824_000,
            "string seconds"
        );
        assert_eq!(test_shape[2].kind, EventKind::Mention);
    }

    #[test]
    fn metas_documented_examples_split() {
        let fixtures = [
            (
                include_str!(
                    "../fixtures/meta/comments_self_comment__meta_docs_self_messaging.json"
                ),
                EventKind::Comment,
            ),
            (
                include_str!(
                    "../fixtures/meta/messages_echo_is_self__meta_docs_self_messaging.json"
                ),
                EventKind::Message,
            ),
            (
                include_str!(
                    "../fixtures/meta/messages_ig_post_share__meta_docs_new_attachment.json"
                ),
                EventKind::Message,
            ),
            (
                include_str!("../fixtures/meta/messages_quick_reply__meta_docs.json"),
                EventKind::Message,
            ),
            (
                include_str!(
                    "../fixtures/meta/messaging_postbacks_is_self__meta_docs_self_messaging.json"
                ),
                EventKind::Postback,
            ),
        ];
        for (body, kind) in fixtures {
            let envs = split_str(body);
            assert_eq!(envs.len(), 1, "{body}");
            assert_eq!(envs[0].kind, kind, "{body}");
            let again = Envelope::decode(&envs[0].encode()).unwrap();
            assert_eq!(again.item.get(), envs[0].item.get());
        }
    }
}
