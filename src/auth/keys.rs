//! Tokens signed with public keys: an identity provider's JWKS
//! (`--auth-jwks-file`, keys chosen by `kid`, re-read when it changes) and
//! PEM keys (`--auth-public-key`). Every refusal names what failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

use super::Verified;
use crate::config::AuthKeySettings;
use crate::domain::UserId;
use crate::error::Error;

/// RSA keys sign with any of these unless their JWK names one `alg`.
const RSA_ALGORITHMS: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

/// One verification key.
struct Key {
    /// How error messages name the key: `"kid"` or the PEM file.
    name: String,
    decoding: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys of one JWKS document.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid`.
    unnamed: Vec<Arc<Key>>,
}

/// The admin claim: `NAME` (true) or `NAME=VALUE`.
struct AdminClaim {
    name: String,
    value: Option<String>,
}

/// The public keys and the claim rules of public-key tokens.
pub(super) struct PublicKeys {
    jwks_file: Option<PathBuf>,
    /// The JWKS as last loaded, and the file's bytes it came from.
    jwks: RwLock<(Arc<KeySet>, Vec<u8>)>,
    /// The last file content that failed to load, and why (logged once,
    /// not on every poll).
    broken: Mutex<Option<(Vec<u8>, String)>>,
    pem: Vec<Arc<Key>>,
    issuer: Option<String>,
    audience: Option<String>,
    user_claim: String,
    admin_claim: AdminClaim,
    pub(super) reload_interval: Duration,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeys").field("jwks_file", &self.jwks_file).finish_non_exhaustive()
    }
}

fn setting_error(setting: &'static str, message: String) -> Error {
    Error::InvalidSetting { setting: crate::config::Setting::Flag(setting), message }
}

impl PublicKeys {
    /// Loads every configured key; None when no public key is configured.
    pub(super) fn load(settings: &AuthKeySettings) -> Result<Option<Self>, Error> {
        if !settings.any() {
            return Ok(None);
        }
        let mut pem = Vec::new();
        for path in &settings.auth_public_key {
            pem.push(Arc::new(load_pem(path)?));
        }
        let (set, bytes) = match &settings.auth_jwks_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| setting_error("--auth-jwks-file", format!("cannot read {}: {e}", path.display())))?;
                let set = parse_jwks(&bytes)
                    .map_err(|e| setting_error("--auth-jwks-file", format!("{}: {e}", path.display())))?;
                (set, bytes)
            }
            None => (KeySet::default(), Vec::new()),
        };
        if settings.auth_user_claim.is_empty() {
            return Err(setting_error("--auth-user-claim", "must name a claim".into()));
        }
        let admin_claim = match settings.auth_admin_claim.split_once('=') {
            Some((name, value)) => AdminClaim { name: name.into(), value: Some(value.into()) },
            None => AdminClaim { name: settings.auth_admin_claim.clone(), value: None },
        };
        if admin_claim.name.is_empty() {
            return Err(setting_error("--auth-admin-claim", "must name a claim (NAME or NAME=VALUE)".into()));
        }
        Ok(Some(Self {
            jwks_file: settings.auth_jwks_file.clone(),
            jwks: RwLock::new((Arc::new(set), bytes)),
            broken: Mutex::new(None),
            pem,
            issuer: settings.auth_issuer.clone(),
            audience: settings.auth_audience.clone(),
            user_claim: settings.auth_user_claim.clone(),
            admin_claim,
            reload_interval: settings.auth_jwks_reload_interval,
        }))
    }

    pub(super) fn has_jwks(&self) -> bool {
        self.jwks_file.is_some()
    }

    /// Re-reads the JWKS file; true when its keys changed. A file that
    /// cannot be read or parsed keeps the keys loaded before, and is logged
    /// (once per content) as an error naming the file.
    pub(super) fn reload(&self) -> bool {
        let Some(path) = &self.jwks_file else { return false };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.log_broken(path, Vec::new(), &format!("cannot read it: {e}"));
                return false;
            }
        };
        if self.jwks.read().map(|jwks| jwks.1 == bytes).unwrap_or(false) {
            return false;
        }
        match parse_jwks(&bytes) {
            Ok(set) => {
                let kids: Vec<&String> = set.by_kid.keys().collect();
                tracing::info!(file = %path.display(), kids = ?kids, unnamed = set.unnamed.len(), "--auth-jwks-file: loaded new keys");
                if let Ok(mut jwks) = self.jwks.write() {
                    *jwks = (Arc::new(set), bytes);
                }
                if let Ok(mut broken) = self.broken.lock() {
                    *broken = None;
                }
                true
            }
            Err(e) => {
                self.log_broken(path, bytes, &e);
                false
            }
        }
    }

    fn log_broken(&self, path: &Path, bytes: Vec<u8>, error: &str) {
        let Ok(mut broken) = self.broken.lock() else { return };
        let seen = (bytes, error.to_string());
        if broken.as_ref() == Some(&seen) {
            return;
        }
        *broken = Some(seen);
        tracing::error!(
            file = %path.display(),
            error,
            "--auth-jwks-file {}: {error}; keeping the keys loaded before",
            path.display()
        );
    }

    /// Checks a token whose header names a public-key algorithm.
    pub(super) fn verify(&self, token: &str, header: &Header) -> Result<Verified, String> {
        let set = self.jwks.read().map(|jwks| jwks.0.clone()).unwrap_or_default();
        let unnamed: Vec<&Arc<Key>> = self.pem.iter().chain(set.unnamed.iter()).collect();
        let unknown_kid = |kid: &String| {
            let mut known: Vec<&String> = set.by_kid.keys().collect();
            known.sort();
            format!(
                "unknown kid {kid:?}: no key of the server has it (the JWKS{} has {})",
                self.jwks_file.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default(),
                if known.is_empty() { "no kids".into() } else { format!("kids {known:?}") }
            )
        };
        let not_allowed = |keys: &[&Arc<Key>]| {
            let allowed: Vec<String> =
                keys.iter().map(|k| format!("key {} takes {}", k.name, names(&k.algorithms))).collect();
            format!("algorithm {:?} not allowed: {}", header.alg, allowed.join("; "))
        };
        let usable: Vec<&Arc<Key>> = match &header.kid {
            Some(kid) => match set.by_kid.get(kid) {
                Some(key) if key.algorithms.contains(&header.alg) => vec![key],
                Some(key) => return Err(not_allowed(&[key])),
                // A kid the JWKS does not have: keys without a kid (PEM
                // keys) of the token's algorithm may still have signed it.
                None => {
                    let fallback: Vec<&Arc<Key>> =
                        unnamed.into_iter().filter(|k| k.algorithms.contains(&header.alg)).collect();
                    if fallback.is_empty() {
                        return Err(unknown_kid(kid));
                    }
                    fallback
                }
            },
            None if unnamed.is_empty() => {
                return Err("the token has no kid, and every key of the server has one (the JWKS keys); \
                            the identity provider must set the kid header"
                    .into())
            }
            None => {
                let usable: Vec<&Arc<Key>> =
                    unnamed.iter().copied().filter(|k| k.algorithms.contains(&header.alg)).collect();
                if usable.is_empty() {
                    return Err(not_allowed(&unnamed));
                }
                usable
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let mut failed = Vec::new();
        for key in usable {
            match jsonwebtoken::decode::<Value>(token, &key.decoding, &validation) {
                Ok(data) => return self.claims(&data.claims),
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    failed.push(key.name.clone())
                }
                Err(e) => return Err(super::explain(&e, token)),
            }
        }
        let kid_note = match &header.kid {
            Some(kid) if !set.by_kid.contains_key(kid) => format!(" (its kid {kid:?} is in no JWKS)"),
            _ => String::new(),
        };
        Err(format!(
            "bad signature for key {}{kid_note}: the token was not signed with {}",
            failed.join(", "),
            if failed.len() == 1 { "it" } else { "any of them" }
        ))
    }

    /// Issuer, audience, user and admin of a token whose signature and
    /// times are good.
    fn claims(&self, claims: &Value) -> Result<Verified, String> {
        if let Some(expected) = &self.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == expected => {}
                Some(Value::String(iss)) => return Err(format!("wrong issuer {iss:?} (expected {expected:?})")),
                Some(other) => return Err(format!("wrong issuer {other} (expected {expected:?})")),
                None => return Err(format!("the claim `iss` is missing (expected {expected:?})")),
            }
        }
        if let Some(expected) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
                Some(_) => false,
                None => return Err(format!("the claim `aud` is missing (expected {expected:?})")),
            };
            if !ok {
                return Err(format!("wrong audience {} (expected {expected:?})", claims["aud"]));
            }
        }
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(user)) => {
                UserId::parse(user).map_err(|e| format!("the claim `{}` (the user id): {e}", self.user_claim))?
            }
            Some(_) => return Err(format!("the claim `{}` (the user id) is not a string", self.user_claim)),
            None => return Err(format!("the claim `{}` (the user id) is missing", self.user_claim)),
        };
        let admin = match (claims.get(&self.admin_claim.name), &self.admin_claim.value) {
            (None, _) => false,
            (Some(value), None) => value == &Value::Bool(true),
            (Some(Value::String(s)), Some(wanted)) => s == wanted || s.split(' ').any(|part| part == wanted),
            (Some(Value::Array(items)), Some(wanted)) => items.iter().any(|i| i.as_str() == Some(wanted)),
            (Some(_), Some(_)) => false,
        };
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok(Verified { user, admin, exp })
    }
}

fn names(algorithms: &[Algorithm]) -> String {
    algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
}

/// A PEM public key file: RSA (`PUBLIC KEY` or `RSA PUBLIC KEY`), EC P-256
/// or P-384, or Ed25519.
fn load_pem(path: &Path) -> Result<Key, Error> {
    let fail = |message: String| setting_error("--auth-public-key", format!("{}: {message}", path.display()));
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("PRIVATE KEY-----") {
        return Err(fail(
            "holds a private key; give the public key (`openssl pkey -in key.pem -pubout` prints it)".into(),
        ));
    }
    if !text.contains("PUBLIC KEY-----") {
        return Err(fail("holds no PEM block `-----BEGIN PUBLIC KEY-----`".into()));
    }
    let name = format!("{} (--auth-public-key)", path.display());
    if let Ok(decoding) = DecodingKey::from_rsa_pem(&pem) {
        return Ok(Key { name, decoding, algorithms: RSA_ALGORITHMS.to_vec() });
    }
    if let Ok(decoding) = DecodingKey::from_ec_pem(&pem) {
        // The uncompressed point: 65 bytes on P-256, 97 on P-384.
        let algorithm = match decoding.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => Algorithm::ES256,
            Ok(97) => Algorithm::ES384,
            _ => return Err(fail("an EC key on a curve other than P-256 and P-384".into())),
        };
        return Ok(Key { name, decoding, algorithms: vec![algorithm] });
    }
    if let Ok(decoding) = DecodingKey::from_ed_pem(&pem) {
        return Ok(Key { name, decoding, algorithms: vec![Algorithm::EdDSA] });
    }
    Err(fail("not an RSA, EC (P-256, P-384) or Ed25519 public key".into()))
}

/// A JWKS document. Keys for encryption (`"use": "enc"`) and of kinds
/// convgroups cannot verify are skipped with a warning; a symmetric
/// (`oct`) key, a duplicate `kid` or no usable key at all refuses the file.
fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWKS: no \"keys\" array (expected {\"keys\": [{\"kty\": ...}, ...]})")?;
    let mut set = KeySet::default();
    for (index, raw) in keys.iter().enumerate() {
        let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("key #{index}: {e}"))?;
        let kid = jwk.common.key_id.clone();
        let label = match &kid {
            Some(kid) => format!("{kid:?}"),
            None => format!("#{index} (no kid)"),
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            tracing::warn!(key = %label, "--auth-jwks-file: skipping a key for encryption (\"use\": \"enc\")");
            continue;
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                ref curve => return Err(format!("key {label}: curve {curve:?} is not supported (P-256, P-384)")),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            AlgorithmParameters::OctetKeyPair(okp) => {
                return Err(format!("key {label}: curve {:?} is not supported (Ed25519)", okp.curve))
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!(
                    "key {label}: a symmetric (\"oct\") key; a JWKS holds public keys only \
                     (an HS256 secret goes in --auth-secret-file)"
                ))
            }
            _ => {
                tracing::warn!(key = %label, "--auth-jwks-file: skipping a key of a kind convgroups does not verify");
                continue;
            }
        };
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(alg) => match alg.to_string().parse::<Algorithm>() {
                Ok(alg) if family.contains(&alg) => vec![alg],
                _ => return Err(format!("key {label}: \"alg\": {alg} does not fit its key type")),
            },
        };
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {label}: {e}"))?;
        let key = Arc::new(Key { name: label.clone(), decoding, algorithms });
        match kid {
            Some(kid) => {
                if set.by_kid.insert(kid, key).is_some() {
                    return Err(format!("two keys have the kid {label}"));
                }
            }
            None => set.unnamed.push(key),
        }
    }
    if set.by_kid.is_empty() && set.unnamed.is_empty() {
        return Err("holds no signature key convgroups can use".into());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_without_keys_or_with_a_secret_is_refused() {
        assert!(parse_jwks(b"{\"keys\": []}").err().unwrap().contains("no signature key"));
        assert!(parse_jwks(b"[]").err().unwrap().contains("no \"keys\" array"));
        let oct = br#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#;
        assert!(parse_jwks(oct).err().unwrap().contains("symmetric"));
    }
}
