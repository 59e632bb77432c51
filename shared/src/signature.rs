//! `X-Hub-Signature-256` verification. Meta signs the raw body bytes with the app secret; a
//! delivery is trusted only through [`VerifiedDelivery`], which only [`Verifier::verify`] builds.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

/// Why a delivery was refused. The messages never include the body or the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("X-Hub-Signature-256 header is not `sha256=` followed by 64 hex digits")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body for any configured app secret")]
    Mismatch,
}

/// A body whose signature matched one of the app secrets.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedDelivery<'a> {
    body: &'a [u8],
}

impl<'a> VerifiedDelivery<'a> {
    /// A delivery an operator vouches for: one captured from Meta and replayed from a file
    /// (`igflow-worker replay`). Never for anything that arrived over the network.
    pub fn vouched_by_operator(body: &'a [u8]) -> Self {
        Self { body }
    }

    /// A delivery igflow built itself from what the Graph API answered its own authenticated
    /// reads (reconciliation of comments Meta did not deliver): Meta's data, fetched by igflow.
    pub fn read_from_graph(body: &'a [u8]) -> Self {
        Self { body }
    }

    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Hex SHA-256 of the raw body: names the delivery in envelopes and logs.
    pub fn delivery_id(&self) -> String {
        hex::encode(Sha256::digest(self.body))
    }
}

/// Holds the app secrets (several during a rotation, or one per login flavor's app), each as
/// an HMAC already keyed with it: every check clones one instead of hashing the key again
/// (two of the nine SHA-256 blocks a 1-item delivery costs).
#[derive(Clone)]
pub struct Verifier {
    keyed: Vec<HmacSha256>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.keyed.len())
            .finish()
    }
}

impl Verifier {
    pub fn new(secrets: Vec<SecretString>) -> Self {
        Self {
            keyed: secrets.iter().map(mac).collect(),
        }
    }

    /// Checks `header` (the value of `X-Hub-Signature-256`, if any) against `body`.
    pub fn verify<'a>(
        &self,
        header: Option<&[u8]>,
        body: &'a [u8],
    ) -> Result<VerifiedDelivery<'a>, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let expected = parse_header(header)?;
        if self.matches_any(body, &expected) {
            Ok(VerifiedDelivery { body })
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Whether `tag` is the HMAC-SHA256 of `data` under one of the secrets, compared in
    /// constant time. Also checks the app callbacks' `signed_request`.
    pub(crate) fn matches_any(&self, data: &[u8], tag: &[u8]) -> bool {
        // Every secret is tried so the time taken does not tell which one matched.
        let mut matched = false;
        for keyed in &self.keyed {
            let mut mac = keyed.clone();
            mac.update(data);
            matched |= mac.verify_slice(tag).is_ok();
        }
        matched
    }
}

fn mac(secret: &SecretString) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key size")
}

fn parse_header(header: &[u8]) -> Result<[u8; 32], SignatureError> {
    let header = header.trim_ascii();
    if header.len() != PREFIX.len() + 64
        || !header[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
    {
        return Err(SignatureError::Malformed);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(&header[PREFIX.len()..], &mut out)
        .map_err(|_| SignatureError::Malformed)?;
    Ok(out)
}

/// The header value Meta would send for `body`; used by tests, the demo and replay tooling.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time equality for the webhook handshake's verify token. The digests are compared,
/// not the tokens: `ct_eq` on slices of different lengths returns at once, which would tell a
/// prober the token's length.
pub fn token_matches(expected: &SecretString, given: &str) -> bool {
    Sha256::digest(expected.expose_secret().as_bytes())
        .ct_eq(&Sha256::digest(given.as_bytes()))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn public_test_vector() {
        // From the fixtures README: secret `sesame`, body `hello world`.
        assert_eq!(
            sign(&secret("sesame"), b"hello world"),
            "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17"
        );
    }

    #[test]
    fn accepts_any_configured_secret_and_refuses_the_rest() {
        let v = Verifier::new(vec![secret("old"), secret("new")]);
        let body = br#"{"object":"instagram","entry":[]}"#;
        for key in ["old", "new"] {
            let header = sign(&secret(key), body);
            let ok = v.verify(Some(header.as_bytes()), body).unwrap();
            assert_eq!(ok.body(), body);
        }
        let forged = sign(&secret("attacker"), body);
        assert_eq!(
            v.verify(Some(forged.as_bytes()), body).unwrap_err(),
            SignatureError::Mismatch
        );
        let upper = sign(&secret("new"), body).to_uppercase();
        assert!(v.verify(Some(upper.as_bytes()), body).is_ok());
    }

    #[test]
    fn refuses_missing_sha1_and_truncated_headers() {
        let v = Verifier::new(vec![secret("s")]);
        let body = b"{}";
        let good = sign(&secret("s"), body);
        assert_eq!(v.verify(None, body).unwrap_err(), SignatureError::Missing);
        for bad in [
            "sha1=0123456789abcdef0123456789abcdef01234567".to_owned(),
            good[..good.len() - 2].to_owned(),
            format!("{good}00"),
            "sha256=zz".to_owned() + &good[9..],
            String::new(),
        ] {
            assert_eq!(
                v.verify(Some(bad.as_bytes()), body).unwrap_err(),
                SignatureError::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn verify_token_comparison() {
        let t = secret("meatyhamhock");
        assert!(token_matches(&t, "meatyhamhock"));
        assert!(!token_matches(&t, "meatyhamhoc"));
        assert!(!token_matches(&t, ""));
        assert!(!token_matches(&t, "meatyhamhockmeatyhamhock"));
        assert!(!token_matches(&secret(""), "x"));
    }
}
