//! Standard Webhooks signatures (standardwebhooks.com): a secret is
//! `whsec_` + base64 of its bytes; a signature is
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), and a
//! message carries one per valid secret, space-separated, so that a
//! receiver still holding the previous secret verifies during a rotation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Bytes of a generated secret (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 32;
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret. Its `Debug` never shows the bytes, so it cannot reach
/// a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The `whsec_...` form given to the receiver (and stored).
    pub fn encode(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let b64 = text.strip_prefix(SECRET_PREFIX)?;
        STANDARD.decode(b64).ok().filter(|b| !b.is_empty()).map(Self)
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets.into_iter().map(|s| s.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's test vectors
    /// (libraries' shared test: secret, id, timestamp, payload, signature).
    #[test]
    fn signs_the_specifications_test_vector() {
        let secret = Secret::decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_round_trip_and_never_print() {
        let secret = Secret::generate();
        assert_eq!(Secret::decode(&secret.encode()), Some(secret.clone()));
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert!(Secret::decode("whsec_").is_none());
        assert!(Secret::decode("nope").is_none());
    }
}
