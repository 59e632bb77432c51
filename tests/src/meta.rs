//! Deliveries shaped and encoded the way Meta sends them, for tests and the demo.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use igflow_core::signature::sign;
use secrecy::SecretString;
use serde_json::{Value, json};

/// Deliveries carry the current time, as Meta's do: windows are measured from it.
fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One comment on an account's media.
#[derive(Debug, Clone)]
pub struct CommentSpec {
    pub comment_id: String,
    pub from_id: String,
    pub username: String,
    pub text: String,
    pub media_id: String,
    /// Set when the account itself wrote the comment.
    pub self_ig_scoped_id: Option<String>,
}

impl CommentSpec {
    pub fn new(comment_id: &str, from_id: &str, text: &str) -> Self {
        Self {
            comment_id: comment_id.to_owned(),
            from_id: from_id.to_owned(),
            username: format!("user{from_id}"),
            text: text.to_owned(),
            media_id: "18000000000000001".to_owned(),
            self_ig_scoped_id: None,
        }
    }

    fn value(&self) -> Value {
        let mut from = json!({ "id": self.from_id, "username": self.username });
        if let Some(s) = &self.self_ig_scoped_id {
            from["self_ig_scoped_id"] = json!(s);
        }
        json!({
            "field": "comments",
            "value": {
                "id": self.comment_id,
                "from": from,
                "text": self.text,
                "media": { "id": self.media_id, "media_product_type": "REELS" },
            }
        })
    }
}

/// A `comments` delivery for `account` holding `comments`, in Meta's encoding.
pub fn comment_delivery(account: &str, comments: &[CommentSpec]) -> String {
    let changes: Vec<Value> = comments.iter().map(CommentSpec::value).collect();
    meta_encode(&json!({
        "object": "instagram",
        "entry": [{ "id": account, "time": now().as_secs(), "changes": changes }],
    }))
}

/// A `messaging` delivery for `account` holding one item from `sender` to `recipient`, made
/// of `fields` (`message`, `postback`, `referral`, as Meta names them).
fn messaging_delivery(
    account: &str,
    sender: &str,
    recipient: &str,
    timestamp_ms: u128,
    fields: Value,
) -> String {
    let mut item = json!({
        "sender": { "id": sender },
        "recipient": { "id": recipient },
        "timestamp": timestamp_ms,
    });
    if let (Some(item), Value::Object(fields)) = (item.as_object_mut(), fields) {
        item.extend(fields);
    }
    meta_encode(&json!({
        "object": "instagram",
        "entry": [{ "id": account, "time": now().as_millis(), "messaging": [item] }],
    }))
}

/// What a person did in the conversation with `account`, now: `fields` such as
/// `{"postback": {...}}` or `{"referral": {...}}`, in Meta's shape.
pub fn person_delivery(account: &str, sender: &str, fields: Value) -> String {
    messaging_delivery(account, sender, account, now().as_millis(), fields)
}

/// The echo Meta sends of a message the account itself sent.
pub fn echo_delivery(account: &str, recipient: &str, mid: &str, text: &str) -> String {
    let message = json!({ "mid": mid, "text": text, "is_echo": true, "is_self": true });
    messaging_delivery(
        account,
        account,
        recipient,
        now().as_millis(),
        json!({ "message": message }),
    )
}

/// A direct message from `sender` to `account`, sent at `timestamp_ms`.
pub fn message_delivery(
    account: &str,
    sender: &str,
    mid: &str,
    text: &str,
    timestamp_ms: u128,
) -> String {
    messaging_delivery(
        account,
        sender,
        account,
        timestamp_ms,
        json!({ "message": { "mid": mid, "text": text } }),
    )
}

/// Now, in Unix milliseconds (for message timestamps).
pub fn now_ms() -> u128 {
    now().as_millis()
}

/// The payload of an app callback's `signed_request` (deauthorize, data deletion), as Meta's
/// documentation shows it.
pub fn callback_payload(user_id: &str, issued_at: i64) -> Value {
    json!({
        "algorithm": "HMAC-SHA256",
        "expires": 0,
        "issued_at": issued_at,
        "user_id": user_id,
    })
}

/// Meta's `signed_request`: base64url (no padding) of the HMAC-SHA256 of the encoded payload
/// part under the app secret, a dot, and the payload part, base64url of the JSON.
pub fn signed_request(app_secret: &SecretString, payload: &Value) -> String {
    signed_request_over(app_secret, &URL_SAFE_NO_PAD.encode(meta_encode(payload)))
}

/// A `signed_request` whose payload part is `part` exactly as given (any text: the refusal
/// tests sign parts that are not base64url or not JSON), signed as Meta signs it.
pub fn signed_request_over(app_secret: &SecretString, part: &str) -> String {
    // The webhook's own `sha256=<hex>` signer, turned into raw bytes for base64url.
    let header = sign(app_secret, part.as_bytes());
    let mac = hex::decode(header.trim_start_matches("sha256=")).expect("sign() writes hex");
    format!("{}.{part}", URL_SAFE_NO_PAD.encode(mac))
}

/// The form body of an app callback.
pub fn callback_form(signed_request: &str) -> String {
    format!("signed_request={signed_request}")
}

/// Serializes like Meta: non-ASCII as `\uXXXX` escapes (surrogate pairs beyond the BMP) and
/// `/` as `\/`. Signatures must be computed over exactly these bytes.
pub fn meta_encode(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len() + plain.len() / 4);
    for c in plain.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// API Gateway's REST API proxy event (payload 1.0) for a POST to `route` under the `prod`
/// stage, as Lambda hands it to `lambda_http`; `base64`: the body arrives base64-encoded.
pub fn rest_api_event(route: &str, headers: &[(&str, &str)], body: &str, base64: bool) -> String {
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        body.to_owned()
    };
    let host = ("Host", "abc.execute-api.us-east-1.amazonaws.com");
    let single: serde_json::Map<String, Value> = headers
        .iter()
        .chain([&host])
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let multi: serde_json::Map<String, Value> = single
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "resource": route,
        "path": route,
        "httpMethod": "POST",
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "resourceId": "abc", "resourcePath": route, "httpMethod": "POST", "path": format!("/prod{route}"),
            "accountId": "123456789012", "stage": "prod", "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": { "sourceIp": "173.252.127.1", "userAgent": "facebookexternalua" },
            "apiId": "abc", "protocol": "HTTP/1.1", "requestTimeEpoch": 1_732_200_000_000_i64
        },
        "body": body,
        "isBase64Encoded": base64
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_encoding_escapes_and_round_trips() {
        let v = json!({ "t": "Prix 😍 é कीमत a/b" });
        let encoded = meta_encode(&v);
        assert!(encoded.is_ascii());
        assert!(
            encoded.contains("\\ud83d\\ude0d")
                && encoded.contains("\\u00e9")
                && encoded.contains("a\\/b")
        );
        assert_eq!(serde_json::from_str::<Value>(&encoded).unwrap(), v);
    }
}
