//! Meta's `signed_request`, the form field of the app callbacks (deauthorize, data deletion
//! request): `<sig>.<payload>`, both base64url without padding, where `sig` is the
//! HMAC-SHA256 of the payload part *as sent* (the base64url text, not the decoded JSON) under
//! the app secret. A callback is trusted only through [`SignedRequest`], which only
//! [`verify`] builds.
//!
//! The payload's `user_id` is taken to be the Instagram professional account's id
//! (`ig_accounts.ig_user_id`): with Instagram Login the app user is that account. To be
//! confirmed with a real app before launch.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::envelope::{ENVELOPE_VERSION, Envelope, EventKind};
use crate::ids::{EventId, IgUserId};
use crate::signature::Verifier;
use crate::time::UnixMillis;

/// base64url; Meta leaves the padding off, but a padded part is read too.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const ALGORITHM: &str = "HMAC-SHA256";
/// Meta's ids are about 20 digits; the bound keeps event ids well inside their limit.
const MAX_USER_ID_DIGITS: usize = 64;
/// Hex digits of the confirmation code.
const CODE_LEN: usize = 20;
/// How old a signed request may be when it arrives. Meta signs one when the person acts and
/// sends it at once; the margin is for its retries while our queue is down (a day covers a
/// long outage). Older ones are refused: a captured request cannot be replayed later, e.g.
/// to disable an account that has added the app again.
pub const MAX_AGE_SECONDS: i64 = 24 * 3600;
/// Clock skew tolerated for a request issued "in the future".
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a callback was refused. The messages never include the signed request or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("signed_request must be a signature and a payload, base64url, joined by a dot")]
    Shape,
    #[error("signed_request's signature is not base64url")]
    SignatureEncoding,
    #[error("signed_request's signature does not match for any configured app secret")]
    Mismatch,
    #[error("signed_request's payload is not base64url")]
    PayloadEncoding,
    #[error("signed_request's payload is not a JSON object: {0}")]
    PayloadJson(String),
    #[error("signed_request's algorithm must be HMAC-SHA256")]
    Algorithm,
    #[error("signed_request's payload has no {0}")]
    MissingField(&'static str),
    #[error("signed_request's {field} {problem}")]
    InvalidField {
        field: &'static str,
        problem: &'static str,
    },
    #[error(
        "signed_request was issued {age_seconds} s before it arrived; only requests issued within {MAX_AGE_SECONDS} s (and at most {MAX_SKEW_SECONDS} s ahead of this server's clock) are accepted, so an old one cannot be replayed"
    )]
    Stale { age_seconds: i64 },
}

impl SignedRequestError {
    /// A signature that does not match (403); everything else is a bad request (400).
    pub fn is_forgery(&self) -> bool {
        matches!(self, Self::Mismatch)
    }
}

/// Which of Meta's app callbacks a signed request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// The account removed the app.
    Deauthorize,
    /// The account asked for its data to be deleted.
    DataDeletion,
}

impl Callback {
    pub fn kind(self) -> EventKind {
        match self {
            Self::Deauthorize => EventKind::AppDeauthorized,
            Self::DataDeletion => EventKind::DataDeletion,
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Self::Deauthorize => "deauthorize",
            Self::DataDeletion => "data_deletion",
        }
    }
}

/// A signed request whose signature matched one of the app secrets.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    user_id: IgUserId,
    /// Seconds, as Meta sent it: part of the event id and the confirmation code.
    issued_at: i64,
    payload: Map<String, Value>,
    /// Hex SHA-256 of the signed request as sent.
    request_id: String,
}

impl SignedRequest {
    pub fn user_id(&self) -> &IgUserId {
        &self.user_id
    }

    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// The data deletion request's code: 20 hex digits of SHA-256 over `user_id:issued_at`,
    /// so Meta's retries of one request get the same code.
    pub fn confirmation_code(&self) -> String {
        let digest = Sha256::digest(format!("{}:{}", self.user_id, self.issued_at));
        let mut code = hex::encode(digest);
        code.truncate(CODE_LEN);
        code
    }

    /// The one envelope the callback enqueues: event id `{callback}:{user_id}:{issued_at}`,
    /// stable across Meta's retries; the item is the verified payload (plus the confirmation
    /// code, for a deletion).
    pub fn envelope(&self, callback: Callback, received_at_ms: i64) -> Envelope {
        let mut item = self.payload.clone();
        if callback == Callback::DataDeletion {
            item.insert(
                "confirmation_code".into(),
                Value::String(self.confirmation_code()),
            );
        }
        let id = format!(
            "{}:{}:{}",
            callback.id_prefix(),
            self.user_id,
            self.issued_at
        );
        // A prefix, at most 64 digits and an integer always make a valid id, and a JSON
        // object of JSON values always serializes.
        #[allow(clippy::expect_used)]
        let (event_id, item) = (
            EventId::parse(id).expect("callback ids are valid"),
            serde_json::value::to_raw_value(&item).expect("a JSON object serializes"),
        );
        Envelope {
            v: ENVELOPE_VERSION,
            event_id,
            kind: callback.kind(),
            account_id: self.user_id.clone(),
            field: None,
            occurred_at_ms: UnixMillis::from_either(self.issued_at).0,
            received_at_ms,
            delivery_id: self.request_id.clone(),
            item,
        }
    }
}

/// Checks the signature first, so an unsigned request learns nothing about the parsing;
/// then the payload: HMAC-SHA256, a numeric `user_id` and an integer `issued_at` within
/// [`MAX_AGE_SECONDS`] of `now_ms`.
pub fn verify(
    verifier: &Verifier,
    signed_request: &str,
    now_ms: i64,
) -> Result<SignedRequest, SignedRequestError> {
    let (sig, payload) = signed_request
        .split_once('.')
        .filter(|(s, p)| !s.is_empty() && !p.is_empty())
        .ok_or(SignedRequestError::Shape)?;
    let sig = BASE64URL
        .decode(sig)
        .map_err(|_| SignedRequestError::SignatureEncoding)?;
    if !verifier.matches_any(payload.as_bytes(), &sig) {
        return Err(SignedRequestError::Mismatch);
    }
    let json = BASE64URL
        .decode(payload)
        .map_err(|_| SignedRequestError::PayloadEncoding)?;
    let payload: Map<String, Value> = serde_json::from_slice(&json)
        .map_err(|e| SignedRequestError::PayloadJson(e.to_string()))?;
    match payload.get("algorithm").and_then(Value::as_str) {
        Some(a) if a.eq_ignore_ascii_case(ALGORITHM) => {}
        _ => return Err(SignedRequestError::Algorithm),
    }
    let user_id = match payload.get("user_id") {
        None | Some(Value::Null) => return Err(SignedRequestError::MissingField("user_id")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(invalid("user_id", "must be a numeric id")),
    };
    if user_id.is_empty()
        || user_id.len() > MAX_USER_ID_DIGITS
        || !user_id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid("user_id", "must be a numeric id"));
    }
    let issued_at = match payload.get("issued_at") {
        None | Some(Value::Null) => return Err(SignedRequestError::MissingField("issued_at")),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| invalid("issued_at", "must be an integer"))?;
    let age_seconds = (now_ms / 1000).saturating_sub(issued_at);
    if !(-MAX_SKEW_SECONDS..=MAX_AGE_SECONDS).contains(&age_seconds) {
        return Err(SignedRequestError::Stale { age_seconds });
    }
    Ok(SignedRequest {
        user_id: IgUserId::parse(user_id)
            .map_err(|_| invalid("user_id", "must be a numeric id"))?,
        issued_at,
        payload,
        request_id: hex::encode(Sha256::digest(signed_request.as_bytes())),
    })
}

fn invalid(field: &'static str, problem: &'static str) -> SignedRequestError {
    SignedRequestError::InvalidField { field, problem }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, KeyInit, Mac};
    use secrecy::SecretString;

    use super::*;

    const PAYLOAD: &str = r#"{"algorithm":"HMAC-SHA256","expires":0,"issued_at":1732200000,"user_id":"17841400000000000"}"#;
    /// A minute after `PAYLOAD` was issued.
    const NOW_MS: i64 = 1_732_200_060_000;

    fn verify(
        verifier: &Verifier,
        signed_request: &str,
    ) -> Result<SignedRequest, SignedRequestError> {
        super::verify(verifier, signed_request, NOW_MS)
    }

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets
                .iter()
                .map(|s| SecretString::from((*s).to_owned()))
                .collect(),
        )
    }

    /// Signs an already encoded payload part, as Meta does (independently of the code under
    /// test: the HMAC crate directly).
    fn sign_part(secret: &str, part: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(part.as_bytes());
        BASE64URL.encode(mac.finalize().into_bytes())
    }

    fn signed(secret: &str, payload: &str) -> String {
        let part = BASE64URL.encode(payload);
        format!("{}.{part}", sign_part(secret, &part))
    }

    #[test]
    fn a_valid_request_yields_the_user_the_code_and_the_envelopes() {
        let request = verify(&verifier(&["s"]), &signed("s", PAYLOAD)).unwrap();
        assert_eq!(request.user_id().as_str(), "17841400000000000");
        assert_eq!(request.issued_at(), 1_732_200_000);
        // sha256("17841400000000000:1732200000"), first 20 hex digits.
        assert_eq!(request.confirmation_code(), "cd66ad9c108579b33638");

        let deletion = request.envelope(Callback::DataDeletion, 42);
        assert_eq!(
            deletion.event_id.as_str(),
            "data_deletion:17841400000000000:1732200000"
        );
        assert_eq!(deletion.kind, EventKind::DataDeletion);
        assert_eq!(deletion.account_id.as_str(), "17841400000000000");
        assert_eq!(
            (deletion.occurred_at_ms, deletion.received_at_ms),
            (1_732_200_000_000, 42)
        );
        let item: Value = serde_json::from_str(deletion.item.get()).unwrap();
        assert_eq!(item["confirmation_code"], "cd66ad9c108579b33638");
        assert_eq!(item["user_id"], "17841400000000000");
        // The envelope goes through the queue contract unchanged.
        let decoded = Envelope::decode(&deletion.encode()).unwrap();
        assert_eq!(decoded.kind, EventKind::DataDeletion);

        let deauth = request.envelope(Callback::Deauthorize, 42);
        assert_eq!(
            deauth.event_id.as_str(),
            "deauthorize:17841400000000000:1732200000"
        );
        assert_eq!(deauth.kind, EventKind::AppDeauthorized);
        let item: Value = serde_json::from_str(deauth.item.get()).unwrap();
        assert_eq!(item, serde_json::from_str::<Value>(PAYLOAD).unwrap());

        // Deterministic: the same request twice gives the same code and ids.
        let again = verify(&verifier(&["s"]), &signed("s", PAYLOAD)).unwrap();
        assert_eq!(again.confirmation_code(), request.confirmation_code());
        assert_eq!(
            again.envelope(Callback::DataDeletion, 1).event_id,
            deletion.event_id
        );
    }

    #[test]
    fn any_configured_secret_is_accepted_and_others_are_forgeries() {
        let v = verifier(&["old", "new"]);
        for key in ["old", "new"] {
            assert!(verify(&v, &signed(key, PAYLOAD)).is_ok(), "{key}");
        }
        let forged = verify(&v, &signed("attacker", PAYLOAD)).unwrap_err();
        assert_eq!(forged, SignedRequestError::Mismatch);
        assert!(forged.is_forgery());

        // A genuine signature over another payload.
        let (sig, _) = signed("new", PAYLOAD)
            .split_once('.')
            .map(|(s, p)| (s.to_owned(), p.to_owned()))
            .unwrap();
        let other = BASE64URL.encode(PAYLOAD.replace("17841400000000000", "17841400000000001"));
        assert_eq!(
            verify(&v, &format!("{sig}.{other}")).unwrap_err(),
            SignedRequestError::Mismatch
        );
        // A truncated signature is a mismatch too, never a partial comparison.
        let short = BASE64URL.encode(&BASE64URL.decode(&sig).unwrap()[..16]);
        let part = BASE64URL.encode(PAYLOAD);
        assert_eq!(
            verify(&v, &format!("{short}.{part}")).unwrap_err(),
            SignedRequestError::Mismatch
        );
    }

    #[test]
    fn only_hmac_sha256_is_accepted() {
        let v = verifier(&["s"]);
        for payload in [
            PAYLOAD.replace("HMAC-SHA256", "HMAC-SHA1"),
            PAYLOAD.replace("HMAC-SHA256", "none"),
            PAYLOAD.replace(r#""algorithm":"HMAC-SHA256","#, ""),
            PAYLOAD.replace(r#""HMAC-SHA256""#, "256"),
        ] {
            let e = verify(&v, &signed("s", &payload)).unwrap_err();
            assert_eq!(e, SignedRequestError::Algorithm, "{payload}");
            assert!(!e.is_forgery());
        }
        // Meta's own samples compare case-insensitively.
        let lower = PAYLOAD.replace("HMAC-SHA256", "hmac-sha256");
        assert!(verify(&v, &signed("s", &lower)).is_ok());
    }

    #[test]
    fn padded_and_unpadded_parts_are_read_and_the_signature_covers_the_part_as_sent() {
        let v = verifier(&["s"]);
        // 92 bytes of JSON: base64 needs one '=' of padding.
        let bare = BASE64URL.encode(PAYLOAD);
        assert_eq!(bare.len() % 4, 3, "this payload's encoding needs padding");
        let padded = format!("{bare}=");
        let sig = sign_part("s", &padded);
        for request in [
            format!("{sig}.{padded}"),
            format!("{sig}=.{padded}"),
            format!("{}.{bare}", sign_part("s", &bare)),
        ] {
            assert!(verify(&v, &request).is_ok(), "{request}");
        }
        // The signature is over the text as sent: padding the part afterwards breaks it.
        assert_eq!(
            verify(&v, &format!("{}.{padded}", sign_part("s", &bare))).unwrap_err(),
            SignedRequestError::Mismatch
        );
        // Standard base64's alphabet is not base64url.
        let std_sig = sig.replace('-', "+").replace('_', "/");
        let std_sig = if std_sig == sig {
            format!("+{}", &sig[1..])
        } else {
            std_sig
        };
        assert_eq!(
            verify(&v, &format!("{std_sig}.{padded}")).unwrap_err(),
            SignedRequestError::SignatureEncoding
        );
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        let v = verifier(&["s"]);
        for shape in ["", ".", "abc", "abc.", ".abc"] {
            assert_eq!(
                verify(&v, shape).unwrap_err(),
                SignedRequestError::Shape,
                "{shape:?}"
            );
        }
        assert_eq!(
            verify(&v, "not*base64.eyJ9").unwrap_err(),
            SignedRequestError::SignatureEncoding
        );
        // Signed correctly, but the payload part is not base64url.
        let bad_part = "eyJ*bad";
        assert_eq!(
            verify(&v, &format!("{}.{bad_part}", sign_part("s", bad_part))).unwrap_err(),
            SignedRequestError::PayloadEncoding
        );
        for (payload, want) in [
            ("not json", "PayloadJson"),
            ("[1,2]", "PayloadJson"),
            (
                r#"{"algorithm":"HMAC-SHA256","issued_at":1}"#,
                "MissingField(\"user_id\")",
            ),
            (
                r#"{"algorithm":"HMAC-SHA256","issued_at":1,"user_id":null}"#,
                "MissingField(\"user_id\")",
            ),
            (
                r#"{"algorithm":"HMAC-SHA256","user_id":"1"}"#,
                "MissingField(\"issued_at\")",
            ),
            (
                r#"{"algorithm":"HMAC-SHA256","issued_at":1,"user_id":"1 2"}"#,
                "InvalidField",
            ),
            (
                r#"{"algorithm":"HMAC-SHA256","issued_at":1,"user_id":""}"#,
                "InvalidField",
            ),
            (
                r#"{"algorithm":"HMAC-SHA256","issued_at":1,"user_id":{"id":1}}"#,
                "InvalidField",
            ),
            (
                r#"{"algorithm":"HMAC-SHA256","issued_at":"soon","user_id":"1"}"#,
                "InvalidField",
            ),
        ] {
            let e = verify(&v, &signed("s", payload)).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{payload}: {e:?}");
            assert!(!e.is_forgery());
        }
        // A numeric user id is read as its digits.
        let numeric =
            r#"{"algorithm":"HMAC-SHA256","issued_at":"1732200000","user_id":17841400000000000}"#;
        let ok = verify(&v, &signed("s", numeric)).unwrap();
        assert_eq!(
            (ok.user_id().as_str(), ok.issued_at()),
            ("17841400000000000", 1_732_200_000)
        );
    }

    #[test]
    fn stale_and_future_requests_are_refused() {
        let v = verifier(&["s"]);
        let request = signed("s", PAYLOAD);
        let at = |seconds_after: i64| {
            super::verify(&v, &request, (1_732_200_000 + seconds_after) * 1000)
        };
        assert!(at(0).is_ok());
        assert!(at(MAX_AGE_SECONDS).is_ok());
        assert!(at(-MAX_SKEW_SECONDS).is_ok());
        assert_eq!(
            at(MAX_AGE_SECONDS + 1).unwrap_err(),
            SignedRequestError::Stale {
                age_seconds: MAX_AGE_SECONDS + 1
            }
        );
        assert_eq!(
            at(-MAX_SKEW_SECONDS - 1).unwrap_err(),
            SignedRequestError::Stale {
                age_seconds: -MAX_SKEW_SECONDS - 1
            }
        );
        // Extreme values are refused, not overflowed.
        for issued_at in [i64::MIN, i64::MAX] {
            let payload = PAYLOAD.replace("1732200000", &issued_at.to_string());
            let e = verify(&v, &signed("s", &payload)).unwrap_err();
            assert!(matches!(e, SignedRequestError::Stale { .. }), "{e:?}");
        }
    }
}
