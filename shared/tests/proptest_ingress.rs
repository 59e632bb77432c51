//! Property tests for the verifier and the splitter: arbitrary input never panics, and every
//! accepted delivery yields envelopes that encode and decode again, one per distinct item.

use std::collections::HashSet;

use igflow_core::envelope::Envelope;
use igflow_core::signature::{Verifier, sign};
use igflow_core::splitter::split;
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};

fn secret() -> SecretString {
    SecretString::from("proptest-app-secret".to_owned())
}

fn verify_and_split(body: &[u8]) -> Option<Vec<Envelope>> {
    let header = sign(&secret(), body);
    let verified = Verifier::new(vec![secret()])
        .verify(Some(header.as_bytes()), body)
        .expect("a correctly signed body verifies");
    split(verified, 1_732_200_000_000).ok()
}

/// Ids as Meta sends them: digits (often beyond 2^53), sometimes as JSON numbers.
fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[1-9][0-9]{5,19}".prop_map(Value::from),
        (1u64..u64::MAX).prop_map(Value::from),
    ]
}

fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1_500_000_000i64..2_000_000_000).prop_map(Value::from),
        (1_500_000_000_000i64..2_000_000_000_000).prop_map(Value::from),
        (1_500_000_000i64..2_000_000_000).prop_map(|t| Value::from(t.to_string())),
        Just(Value::from("<TIME>")),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        Just("price? 😍 कीमत விலை".to_owned())
    ]
}

fn change() -> impl Strategy<Value = Value> {
    let comment = (id(), id(), text(), id()).prop_map(|(cid, from, text, media)| {
        json!({"field": "comments", "value": {"id": cid, "from": {"id": from, "username": "u"}, "text": text, "media": {"id": media}}})
    });
    let other = ("[a-z_]{1,20}", any::<i64>())
        .prop_map(|(field, n)| json!({"field": field, "value": {"n": n}}));
    prop_oneof![3 => comment, 1 => other]
}

fn messaging_item() -> impl Strategy<Value = Value> {
    (id(), time(), "[A-Za-z0-9_-]{1,40}", text(), 0..6u8).prop_map(
        |(sender, ts, mid, text, shape)| {
            let body = match shape {
                0 => json!({"message": {"mid": mid, "text": text}}),
                1 => json!({"message": {"mid": mid, "is_echo": true, "text": text}}),
                2 => json!({"postback": {"payload": text, "title": "t"}}),
                3 => json!({"reaction": {"mid": mid, "action": "react", "emoji": "❤"}}),
                4 => json!({"read": {"mid": mid}}),
                _ => json!({"referral": {"ref": text}}),
            };
            let mut item =
                json!({"sender": {"id": sender}, "recipient": {"id": "1"}, "timestamp": ts});
            if let (Some(item), Some(body)) = (item.as_object_mut(), body.as_object()) {
                item.extend(body.clone());
            }
            item
        },
    )
}

fn delivery() -> impl Strategy<Value = Value> {
    let entry = (id(), time(), prop::collection::vec(change(), 0..5), prop::collection::vec(messaging_item(), 0..5))
        .prop_map(|(id, time, changes, messaging)| json!({"id": id, "time": time, "changes": changes, "messaging": messaging}));
    prop::collection::vec(entry, 0..4)
        .prop_map(|entry| json!({"object": "instagram", "entry": entry}))
}

/// Meta's encoding: non-ASCII escaped as \uXXXX.
fn escape(v: &Value) -> String {
    v.to_string()
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_and_headers_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048), header in prop::option::of(prop::collection::vec(any::<u8>(), 0..100))) {
        let verifier = Verifier::new(vec![secret()]);
        let _ = verifier.verify(header.as_deref(), &body);
        let _ = verify_and_split(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any::<i64>().prop_map(Value::from).prop_recursive(4, 64, 8, |inner| prop_oneof![
        prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
        prop::collection::hash_map("[a-z]{1,8}|entry|changes|messaging|field|value|id|time", inner, 0..8)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ])) {
        let _ = verify_and_split(v.to_string().as_bytes());
    }

    #[test]
    fn accepted_deliveries_yield_envelopes_that_decode_again(d in delivery(), escaped in any::<bool>()) {
        let body = if escaped { escape(&d) } else { d.to_string() };
        let envelopes = verify_and_split(body.as_bytes()).expect("generated deliveries are well formed");
        let mut items = HashSet::new();
        for entry in d["entry"].as_array().into_iter().flatten() {
            for c in entry["changes"].as_array().into_iter().flatten() {
                items.insert(c["value"].to_string());
            }
            for m in entry["messaging"].as_array().into_iter().flatten() {
                items.insert(m.to_string());
            }
        }
        prop_assert!(envelopes.len() <= items.len());
        let mut ids = HashSet::new();
        for e in &envelopes {
            prop_assert!(ids.insert(e.event_id.clone()), "event ids are unique within a delivery");
            let again = Envelope::decode(&e.encode()).expect("envelopes decode");
            prop_assert_eq!(&again.event_id, &e.event_id);
            prop_assert_eq!(again.kind, e.kind);
            prop_assert_eq!(again.item.get(), e.item.get());
            prop_assert!(body.contains(e.item.get()), "items are Meta's bytes");
        }
    }
}
