//! Authentication: JWTs in `authorization: Bearer <token>`, HS256 with the
//! server's secret or signed with an identity provider's public keys
//! (the `keys` module: `--auth-jwks-file`, `--auth-public-key`).
//!
//! The interceptor checks the token and hands the service layer a typed
//! [`Caller`] as a request extension; services never see headers. The secret
//! comes from `--auth-secret-file`, `CONVGROUPS_AUTH_SECRET`, or a random one
//! generated on first start into the data directory (mode 0600) — the last
//! only when no public key is configured.

mod keys;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::config::Config;
use crate::domain::UserId;
use crate::error::Error;

/// Name of the generated secret file inside the data directory.
pub const SECRET_FILE_NAME: &str = "auth-secret";
/// Header through which an admin token names the user it acts for.
pub const USER_HEADER: &str = "x-convgroups-user";
/// Bytes of a generated secret (256 bits, the HMAC-SHA256 block strength).
const GENERATED_SECRET_BYTES: usize = 32;
/// Fewest bytes a configured secret may have. A short HS256 secret can be
/// found by brute force from any one token; 16 bytes (128 bits, if random)
/// is the floor, 32 random bytes what `openssl rand -base64 32` gives.
pub const MIN_SECRET_BYTES: usize = 16;

/// JWT claims: `sub` is the user id, `exp` the expiry (seconds since the
/// epoch), `adm` marks an administrator/backend token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    adm: bool,
}

/// The HS256 key pair derived from the secret. Cheap to clone.
#[derive(Clone)]
pub struct Secret {
    inner: Arc<(EncodingKey, DecodingKey)>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, even in debug output.
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn from_bytes(secret: &[u8]) -> Self {
        Self { inner: Arc::new((EncodingKey::from_secret(secret), DecodingKey::from_secret(secret))) }
    }

    /// The secret the configuration names: the file, else the environment
    /// value, else the generated file in the data directory (created on first
    /// use with mode 0600 and reused afterwards).
    pub fn load_or_create(config: &Config) -> Result<Self, Error> {
        Self::load(config, true)
    }

    /// The secret the configuration names, like [`load_or_create`](Self::load_or_create),
    /// but refusing, instead of creating one, when the data directory holds
    /// none: `convgroups token` run in the wrong directory must not make a
    /// second secret whose tokens the server then refuses.
    pub fn load_existing(config: &Config) -> Result<Self, Error> {
        Self::load(config, false)
    }

    /// Checks the secret the configuration names as [`load_or_create`](Self::load_or_create)
    /// would (readable, long enough), but creates nothing: for
    /// `convgroups check-config`. Says where the secret comes from.
    pub fn check(config: &Config) -> Result<String, Error> {
        if let Some(path) = &config.auth_secret_file {
            Self::read_file("--auth-secret-file", path)?;
            return Ok(format!("the file {} (--auth-secret-file)", path.display()));
        }
        if let Some(value) = &config.auth_secret {
            check_length("CONVGROUPS_AUTH_SECRET", value.as_bytes(), "")?;
            return Ok(format!("CONVGROUPS_AUTH_SECRET ({} bytes, not shown)", value.len()));
        }
        let path = config.data_dir.join(SECRET_FILE_NAME);
        if path.exists() {
            Self::read_file("--data-dir", &path)?;
            return Ok(format!("the file {} (generated)", path.display()));
        }
        check_data_dir(&config.data_dir)?;
        Ok(format!("none yet: serve generates {} on its first start", path.display()))
    }

    fn load(config: &Config, create: bool) -> Result<Self, Error> {
        if let Some(path) = &config.auth_secret_file {
            return Self::read_file("--auth-secret-file", path);
        }
        if let Some(value) = &config.auth_secret {
            check_length("CONVGROUPS_AUTH_SECRET", value.as_bytes(), "")?;
            return Ok(Self::from_bytes(value.as_bytes()));
        }
        let path = config.data_dir.join(SECRET_FILE_NAME);
        if path.exists() {
            return Self::read_file("--data-dir", &path);
        }
        if !create {
            return Err(Error::InvalidSetting {
                setting: crate::config::Setting::DataDir,
                message: format!(
                    "there is no auth secret at {}: pass the server's --data-dir (a server creates its secret there \
                     on first start), or --auth-secret-file or CONVGROUPS_AUTH_SECRET as the server has them; \
                     --create-secret makes one for a server not started yet",
                    path.display()
                ),
            });
        }
        check_data_dir(&config.data_dir)?;
        fs::create_dir_all(&config.data_dir).map_err(|e| Error::InvalidSetting {
            setting: crate::config::Setting::DataDir,
            message: format!("cannot create {}: {e}", config.data_dir.display()),
        })?;
        let mut bytes = [0u8; GENERATED_SECRET_BYTES];
        rand::fill(&mut bytes);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        write_private(&path, encoded.as_bytes())?;
        Ok(Self::from_bytes(encoded.as_bytes()))
    }

    fn read_file(setting: &'static str, path: &Path) -> Result<Self, Error> {
        let raw = fs::read(path).map_err(|e| Error::InvalidSetting {
            setting: crate::config::Setting::Flag(setting),
            message: format!("cannot read the auth secret {}: {e}", path.display()),
        })?;
        // A trailing newline from `echo secret > file` is not part of the key.
        let trimmed = raw.trim_ascii_end();
        check_length(setting, trimmed, &format!("{} ", path.display()))?;
        Ok(Self::from_bytes(trimmed))
    }

    /// Signs a token for `user`, valid for `ttl`.
    pub fn issue(&self, user: &UserId, admin: bool, ttl: Duration) -> String {
        let exp = jsonwebtoken::get_current_timestamp().saturating_add(ttl.as_secs());
        let claims = Claims { sub: user.as_str().to_string(), exp, adm: admin };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.inner.0)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Checks a bearer token: signature (HS256 only; `alg: none` and every
    /// other algorithm are refused), expiry (no leeway) and a valid `sub`.
    fn verify(&self, token: &str) -> Result<Verified, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.1, &validation).map_err(|e| explain(&e, token))?;
        let user = UserId::parse(&data.claims.sub).map_err(|e| format!("sub: {e}"))?;
        Ok(Verified { user, admin: data.claims.adm, exp: data.claims.exp })
    }
}

/// What a failed token check means, for the client: jsonwebtoken's error
/// names (`ExpiredSignature`) say nothing to someone holding a token.
fn explain(error: &jsonwebtoken::errors::Error, token: &str) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        // jsonwebtoken checks claims only after the signature, so the expiry
        // read here is the signed one.
        ErrorKind::ExpiredSignature => {
            let exp = jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(token)
                .ok()
                .and_then(|c| c.get("exp").and_then(serde_json::Value::as_u64));
            match exp {
                Some(exp) => format!(
                    "expired at {} (exp {exp}); get a new token",
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(exp))
                ),
                None => "expired; get a new token".into(),
            }
        }
        ErrorKind::ImmatureSignature => {
            let nbf = jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(token)
                .ok()
                .and_then(|c| c.get("nbf").and_then(serde_json::Value::as_u64));
            match nbf {
                Some(nbf) => format!(
                    "not valid before {} (nbf {nbf})",
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(nbf))
                ),
                None => "not valid yet (nbf)".into(),
            }
        }
        ErrorKind::InvalidSignature => "signature does not match this server's secret (a token made with another \
             --data-dir, --auth-secret-file or CONVGROUPS_AUTH_SECRET than the server's)"
            .into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            match jsonwebtoken::decode_header(token) {
                Ok(header) => format!("algorithm {:?} is not accepted; tokens are HS256", header.alg),
                Err(_) => "the algorithm is not accepted; tokens are HS256".into(),
            }
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("the claim `{claim}` is missing"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the claim `{claim}` has the wrong type"),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "not a JWT (three base64url parts separated by dots, as `convgroups token` prints)".into()
        }
        ErrorKind::Json(e) => format!("not a JWT: a part is not the expected JSON ({e})"),
        _ => format!("rejected ({error})"),
    }
}

/// A configured secret too short to resist guessing is refused, naming the
/// setting and the limit.
fn check_length(setting: &'static str, secret: &[u8], what: &str) -> Result<(), Error> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::InvalidSetting {
            setting: crate::config::Setting::Flag(setting),
            message: format!(
                "the auth secret {what}is {} bytes; at least {MIN_SECRET_BYTES} are needed \
                 (`openssl rand -base64 32` makes a good one)",
                secret.len()
            ),
        });
    }
    Ok(())
}

/// convgroups creates the data directory, but not its parents: a typo in a
/// parent (`/var/lib/convgroup/data`) must not quietly start an empty
/// database with a new secret.
pub fn check_data_dir(data_dir: &Path) -> Result<(), Error> {
    if data_dir.exists() {
        return Ok(());
    }
    let parent = match data_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => return Ok(()),
    };
    let problem = if parent.is_dir() {
        return Ok(());
    } else if parent.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    Err(Error::InvalidSetting {
        setting: crate::config::Setting::DataDir,
        message: format!(
            "cannot create {}: its parent {} {problem}; convgroups creates only the data directory itself \
             (check the path, or create the parent)",
            data_dir.display(),
            parent.display()
        ),
    })
}

/// The secret a server generated in `data_dir` (None: none yet), as its
/// file holds it: what a backup carries.
pub fn generated_secret(data_dir: &Path) -> Option<Vec<u8>> {
    fs::read(data_dir.join(SECRET_FILE_NAME)).ok()
}

/// Puts a backed-up generated secret back into `data_dir`, where a server
/// (or `--auth-secret-file`) finds it: mode 0600, never over an existing one.
pub fn restore_generated_secret(data_dir: &Path, secret: &[u8]) -> Result<(), Error> {
    fs::create_dir_all(data_dir).map_err(|e| Error::InvalidSetting {
        setting: crate::config::Setting::DataDir,
        message: format!("cannot create {}: {e}", data_dir.display()),
    })?;
    write_private(&data_dir.join(SECRET_FILE_NAME), secret)
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), Error> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let fail = |e: std::io::Error| Error::InvalidSetting {
        setting: crate::config::Setting::DataDir,
        message: format!("cannot write the auth secret {}: {e}", path.display()),
    };
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(fail)
}

/// Who is calling, as established by the interceptor.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's subject.
    pub subject: UserId,
    /// Whether the token is an admin token.
    pub admin: bool,
    /// The user the call acts for: the subject, or for an admin token the
    /// user named in `x-convgroups-user` (the subject when absent; see
    /// [`Caller::user`]).
    pub acting_for: UserId,
    /// Whether `x-convgroups-user` named the user.
    pub named: bool,
}

impl Caller {
    /// The user whose data a call reads or changes. An admin token acts for
    /// no one by itself: it must name the user in `x-convgroups-user`
    /// (INVALID_ARGUMENT otherwise), so a backend that forgets the header
    /// does not quietly read and write a user named after its own token.
    pub fn user(&self) -> Result<&UserId, Error> {
        if self.admin && !self.named {
            return Err(Error::InvalidArgument {
                field: USER_HEADER,
                message: format!(
                    "missing: an admin token must name the user it acts for in the {USER_HEADER} header \
                     (the command-line client's --user)"
                ),
            });
        }
        Ok(&self.acting_for)
    }
}

/// Checks bearer tokens. The tonic interceptor in front of the services
/// (`service::Gate`) calls it before the request body is decoded, and logs
/// and counts a refused call there like any other.
#[derive(Clone, Debug)]
pub struct Authenticator {
    /// The HS256 secret; None when public keys are configured and no secret
    /// explicitly.
    secret: Option<Secret>,
    /// Public keys of an identity provider, if configured.
    keys: Option<Arc<keys::PublicKeys>>,
    /// Tokens already verified, by their exact text. A client sends the same
    /// token with every call; checking its signature and parsing its JSON
    /// each time was a large part of the cost of a cheap read. Expiry is
    /// still checked on every use.
    verified: Arc<Mutex<HashMap<String, Verified>>>,
}

/// What a valid token says.
#[derive(Clone, Debug)]
struct Verified {
    user: UserId,
    admin: bool,
    exp: u64,
}

/// Verified tokens remembered at most; the cache is emptied when full
/// (simpler than LRU, and tokens are re-verified at the cost of one check).
const VERIFIED_CACHE_SIZE: usize = 10_000;

impl Authenticator {
    /// HS256 tokens of this secret only.
    pub fn new(secret: Secret) -> Self {
        Self { secret: Some(secret), keys: None, verified: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// What the configuration names: the public keys, if any, and the
    /// secret — with public keys only when configured explicitly
    /// (`--auth-secret-file`, `CONVGROUPS_AUTH_SECRET`), else the data
    /// directory's (created on first start).
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let keys = keys::PublicKeys::load(&config.auth_keys)?.map(Arc::new);
        let explicit = config.auth_secret_file.is_some() || config.auth_secret.is_some();
        let secret = if keys.is_none() || explicit { Some(Secret::load_or_create(config)?) } else { None };
        Ok(Self { secret, keys, verified: Arc::new(Mutex::new(HashMap::new())) })
    }

    /// Checks the token settings as [`from_config`](Self::from_config)
    /// would (public keys loaded and parsed, the secret readable and long
    /// enough where one is used) but creates nothing: for
    /// `convgroups check-config`. Says which tokens will be accepted.
    pub fn check_settings(config: &Config) -> Result<String, Error> {
        let keys = keys::PublicKeys::load(&config.auth_keys)?;
        let explicit = config.auth_secret_file.is_some() || config.auth_secret.is_some();
        let secret = if keys.is_none() || explicit { Some(Secret::check(config)?) } else { None };
        Ok(match (keys, secret) {
            (Some(_), Some(secret)) => format!("public-key tokens, and HS256 tokens signed with {secret}"),
            (Some(_), None) => "public-key tokens only (no HS256 secret configured)".into(),
            (None, Some(secret)) => format!("HS256 tokens signed with {secret}"),
            (None, None) => unreachable!("a secret is checked whenever no public key is configured"),
        })
    }

    /// How often the JWKS file should be re-read; None without one.
    pub fn jwks_reload_interval(&self) -> Option<Duration> {
        self.keys.as_ref().filter(|k| k.has_jwks()).map(|k| k.reload_interval)
    }

    /// Re-reads `--auth-jwks-file`; a changed file's keys are used from now
    /// on (tokens verified before are checked again, so a removed key's
    /// tokens are refused at once). A broken file keeps the keys before and
    /// is logged. True when the keys changed.
    pub fn reload_keys(&self) -> bool {
        let changed = self.keys.as_ref().is_some_and(|k| k.reload());
        if changed {
            if let Ok(mut cache) = self.verified.lock() {
                cache.clear();
            }
        }
        changed
    }

    /// Dispatches on the token's algorithm: HS256 to the secret, the
    /// public-key algorithms to the keys.
    fn check(&self, token: &str) -> Result<Verified, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| explain(&e, token))?;
        let hmac = matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        match (&self.secret, &self.keys) {
            (Some(secret), _) if hmac => secret.verify(token),
            (None, _) if hmac => Err(format!(
                "algorithm {:?} not allowed: this server takes tokens signed with public keys \
                 (--auth-jwks-file, --auth-public-key); HS256 tokens only when --auth-secret-file \
                 or CONVGROUPS_AUTH_SECRET is set too",
                header.alg
            )),
            (_, Some(keys)) => keys.verify(token, &header),
            (_, None) => Err(format!(
                "algorithm {:?} not allowed: tokens are HS256 (this server has no --auth-jwks-file or \
                 --auth-public-key)",
                header.alg
            )),
        }
    }

    fn verify(&self, token: &str) -> Result<Verified, String> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(hit) = self.verified.lock().ok().and_then(|cache| cache.get(token).cloned()) {
            // `exp` is the last valid second, as jsonwebtoken checks it (no leeway).
            if hit.exp >= now {
                return Ok(hit);
            }
        }
        let verified = self.check(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(token.to_string(), verified.clone());
        }
        Ok(verified)
    }

    /// Who is calling: UNAUTHENTICATED without a valid token,
    /// PERMISSION_DENIED for a user token that names another user.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Error> {
        let unauthenticated = |message: &str| Error::Unauthenticated { message: message.to_string() };
        let header = metadata
            .get("authorization")
            .ok_or_else(|| unauthenticated("authorization: missing; send `authorization: Bearer <token>`"))?;
        let header = header.to_str().map_err(|_| unauthenticated("authorization: not ASCII"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("authorization: expected `Bearer <token>`"))?
            .trim();
        let Verified { user: subject, admin, .. } =
            self.verify(token).map_err(|e| unauthenticated(&format!("authorization: invalid token: {e}")))?;
        let acting_for = match metadata.get(USER_HEADER) {
            None => subject.clone(),
            Some(value) => {
                let value = value.to_str().map_err(|_| Error::InvalidArgument {
                    field: USER_HEADER,
                    message: "not a valid user id".into(),
                })?;
                let named = UserId::parse(value)
                    .map_err(|e| Error::InvalidArgument { field: USER_HEADER, message: e.to_string() })?;
                if !admin && named != subject {
                    return Err(Error::PermissionDenied {
                        message: format!("{USER_HEADER}: a user token acts only for its own user"),
                    });
                }
                named
            }
        };
        let named = metadata.get(USER_HEADER).is_some();
        Ok(Caller { subject, admin, acting_for, named })
    }
}
