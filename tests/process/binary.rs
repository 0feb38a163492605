//! What a user expects of a server binary (issue 11, item 3), against the
//! real `convgroups` binary:
//!
//! * `--version` names the git commit and the build date; `serve` logs the
//!   same line and the metrics endpoint has `convgroups_build_info` with the
//!   same labels.
//! * `completions bash|zsh|fish` print scripts the shells accept (zsh and
//!   fish only where they are installed; the test says so when not).
//! * The settings file (`--config`, `CONVGROUPS_CONFIG`): it sets what the
//!   flags set, the environment and the flags override it, unknown keys and
//!   wrong values are refused naming the key.
//! * `check-config`: the same verdict and message as `serve`, without
//!   binding a port or touching the data directory; the example file passes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::cli::*;

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `git rev-parse --short=12 HEAD` of the repository, or "unknown" where
/// there is no git checkout (as build.rs says then).
fn head_commit() -> String {
    let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(repo()).output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap().trim().to_string(),
        _ => "unknown".into(),
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    let out = Command::new("date").args(["-u", "+%F"]).output().expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The `(commit X, built D)` part of a version line, checked for shape.
#[track_caller]
fn version_parts(line: &str) -> (String, String) {
    let rest = line
        .strip_prefix(&format!("convgroups {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("should start with `convgroups {} (commit `: {line:?}", env!("CARGO_PKG_VERSION")));
    let (commit, rest) = rest.split_once(", built ").unwrap_or_else(|| panic!("no `, built `: {line:?}"));
    let date = rest.strip_suffix(')').unwrap_or_else(|| panic!("no closing parenthesis: {line:?}"));
    let shape = date.len() == 10
        && date.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
    assert!(shape, "the build date should be YYYY-MM-DD: {line:?}");
    (commit.to_string(), date.to_string())
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let run = execute(command(&["--version"]));
    let (commit, date) = version_parts(run.ok().out());
    assert_eq!(commit, head_commit(), "{run}");
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        // ISO dates compare as strings; the build may be from an earlier day.
        assert!(date <= today(), "built in the future? {run}");
    }
    assert_eq!(execute(command(&["-V"])).ok().out(), run.out());
}

/// GET over plain HTTP/1.0; None while nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(PROMPT)).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn serve_logs_the_version_line_and_exports_build_info() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with(&tmp.path().join("data"), &["--metrics-listen", &metrics]);
    // The metrics endpoint answers from before the version line is logged
    // (it is one of the steps that can refuse the start): wait for both it
    // and the `serving` line.
    let deadline = Instant::now() + PROMPT;
    let text = loop {
        match http_get(metrics_port, "/metrics") {
            Some(text) if text.contains("convgroups_build_info") && server.log().contains(" serving ") => break text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("no build info at /metrics: {other:?}\n{}", server.log()),
        }
    };
    let version = execute(command(&["--version"])).ok().out().to_string();
    let log = server.log();
    assert!(log.lines().any(|l| l.ends_with(&version)), "the start-up log should have {version:?}:\n{log}");
    // Right before `serving`: after every check that can refuse the start
    // (a refusal stays one line), before anything is served.
    let lines: Vec<&str> = log.lines().collect();
    let serving = lines.iter().position(|l| l.contains(" serving ")).expect("a serving line");
    assert!(serving > 0 && lines[serving - 1].ends_with(&version), "the version line comes before serving:\n{log}");

    let (commit, date) = version_parts(&version);
    let line = text.lines().find(|l| l.starts_with("convgroups_build_info{")).expect("a build_info sample");
    for label in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        format!("commit=\"{commit}\""),
        format!("build_date=\"{date}\""),
    ] {
        assert!(line.contains(&label), "{label} missing: {line}");
    }
    assert!(line.ends_with(" 1"), "{line}");
    assert!(text.contains("# HELP convgroups_build_info "), "{text}");
    assert!(server.stop_status().success());
}

// ---------------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------------

/// Whether `program` can be run.
fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn completion_scripts_cover_the_commands_and_parse() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let run = execute(command(&["completions", shell]));
        let script = &run.ok().stdout;
        // fish names a long option without its dashes: `-l max-groups`.
        let long = |name: &str| if shell == "fish" { format!("-l {name}") } else { format!("--{name}") };
        assert!(script.contains("serve") && script.contains(&long("max-groups")), "{shell}: {run}");
        assert!(script.contains("check-config") && script.contains(&long("config")), "{shell}: {run}");
        let file = tmp.path().join(format!("convgroups.{shell}"));
        std::fs::write(&file, script).unwrap();
        let file = file.to_str().unwrap();
        let check = match shell {
            // Sourced for real: the function is defined and registered.
            "bash" => vec!["bash", "-c", "source \"$0\" && complete -p convgroups", file],
            "zsh" => vec!["zsh", "-n", file],
            _ => vec!["fish", "--no-execute", file],
        };
        if !installed(check[0]) {
            eprintln!("{shell} is not installed: its completion script was not parse-checked");
            continue;
        }
        let out = Command::new(check[0]).args(&check[1..]).output().expect("run the shell");
        assert!(
            out.status.success(),
            "{shell} refuses the script: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    execute(command(&["completions", "tcsh"])).expect_code(2).stderr_has("bash");
}

// ---------------------------------------------------------------------------
// The settings file
// ---------------------------------------------------------------------------

/// Writes a settings file into `dir`.
fn settings(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("convgroups.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A fresh data directory with alice's token (issued before the server
/// starts, so both use the same secret).
fn setup() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = token(&data, "alice", false);
    (tmp, data, token)
}

/// Creates groups g1, g2... until one is refused; returns how many were made.
fn groups_until_refused(cli: &Cli) -> usize {
    for n in 1..=10 {
        let run = cli.run(&["groups", "create", &format!("g{n}"), "C2Cbob"]);
        if run.code() != 0 {
            run.expect_code(1).stderr_has("RESOURCE_EXHAUSTED");
            return n - 1;
        }
    }
    panic!("10 groups made: no limit applied");
}

#[test]
fn a_settings_file_sets_max_groups() {
    let (tmp, data, token) = setup();
    let file = settings(tmp.path(), "# the limit\nmax-groups = 2\n");
    let server = Server::start_with(&data, &["--config", file.to_str().unwrap()]);
    assert_eq!(groups_until_refused(&Cli::new(&server, &token)), 2);
}

#[test]
fn the_environment_overrides_the_file_and_a_flag_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let file = settings(tmp.path(), "max-groups = 2\nmax-pinned = 7\n");
    let file = file.to_str().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let check = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["check-config", "--data-dir", data];
        all.extend_from_slice(args);
        let mut cmd = command(&all);
        cmd.envs(env.iter().copied());
        let run = execute(cmd);
        run.ok();
        run
    };
    let line = |run: &Run, key: &str| -> String {
        run.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key}: {run}"))
            .into()
    };
    let file_only = check(&["--config", file], &[]);
    assert!(line(&file_only, "max-groups").starts_with("max-groups = 2 "), "{file_only}");
    assert!(line(&file_only, "max-groups").ends_with(&format!("# {file}")), "{file_only}");
    let env = check(&["--config", file], &[("CONVGROUPS_MAX_GROUPS", "3")]);
    assert!(line(&env, "max-groups").starts_with("max-groups = 3 "), "{env}");
    assert!(line(&env, "max-groups").ends_with("# CONVGROUPS_MAX_GROUPS"), "{env}");
    assert!(line(&env, "max-pinned").starts_with("max-pinned = 7 "), "the rest of the file still counts: {env}");
    let flag = check(&["--config", file, "--max-groups", "4"], &[("CONVGROUPS_MAX_GROUPS", "3")]);
    assert!(line(&flag, "max-groups").starts_with("max-groups = 4 "), "{flag}");
    assert!(line(&flag, "max-groups").ends_with("# --max-groups"), "{flag}");
    // The file named by the environment instead of --config.
    let named = check(&[], &[("CONVGROUPS_CONFIG", file)]);
    assert!(line(&named, "max-groups").starts_with("max-groups = 2 "), "{named}");

    // And a real server: the environment wins over the file, a flag over both.
    let (tmp, data, token) = setup();
    let file = settings(tmp.path(), "max-groups = 2\n");
    let launch = Launch::in_dir(&data).env("CONVGROUPS_MAX_GROUPS", "3");
    let server = launch.args(["--config", file.to_str().unwrap()]).start();
    assert_eq!(groups_until_refused(&Cli::new(&server, &token)), 3);
    drop(server);
    let (tmp, data, token) = setup();
    let file = settings(tmp.path(), "max-groups = 2\n");
    let launch = Launch::in_dir(&data).env("CONVGROUPS_MAX_GROUPS", "3");
    let server = launch.args(["--config", file.to_str().unwrap(), "--max-groups", "1"]).start();
    assert_eq!(groups_until_refused(&Cli::new(&server, &token)), 1);
}

/// `serve` and `check-config` with this settings file: both refused with
/// exit status 2 and one line naming the file; returns that line.
#[track_caller]
fn refused_file(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = settings(tmp.path(), text);
    let file = file.to_str().unwrap();
    let data = tmp.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut lines = Vec::new();
    for sub in ["serve", "check-config"] {
        let args = [sub, "--config", file, "--listen", &listen, "--data-dir", data.to_str().unwrap()];
        let run = execute(command(&args));
        run.expect_code(2);
        let stderr: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(stderr.len(), 1, "one line: {run}");
        assert!(stderr[0].starts_with(&format!("convgroups: --config {file}: ")), "{run}");
        lines.push(stderr[0].to_string());
    }
    assert_eq!(lines[0], lines[1], "serve and check-config say the same");
    assert!(!data.exists(), "nothing was created");
    lines.remove(0)
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let line = refused_file("max-groups = 2\nmax-group = 3\n");
    assert!(line.contains("unknown key `max-group`: did you mean `max-groups`?"), "{line}");
    let line = refused_file("max_groups = 3\n");
    assert!(line.contains("unknown key `max_groups`: keys are spelled as the flags are: `max-groups`"), "{line}");
    let line = refused_file("colour = \"blue\"\n");
    assert!(line.contains("unknown key `colour`"), "{line}");
    let line = refused_file("[server]\nlisten = \"127.0.0.1:1\"\n");
    assert!(line.contains("[server] is not a setting"), "{line}");
    let line = refused_file("auth-secret = \"0123456789abcdef0123\"\n");
    assert!(line.contains("CONVGROUPS_AUTH_SECRET") && !line.contains("0123456789abcdef"), "{line}");
}

#[test]
fn wrong_values_are_refused_naming_the_key() {
    let line = refused_file("max-groups = \"many\"\n");
    assert!(line.ends_with("max-groups = \"many\": invalid digit found in string"), "{line}");
    let line = refused_file("max-groups = 0\n");
    assert!(line.ends_with("max-groups = 0: must be at least 1"), "{line}");
    let line = refused_file("max-groups = true\n");
    assert!(line.ends_with("max-groups = true: takes a value, not true or false"), "{line}");
    let line = refused_file("tls-cert = [\"a.pem\", \"b.pem\"]\n");
    assert!(line.ends_with("takes one value, not a list"), "{line}");
    let line = refused_file("log-format = \"xml\"\n");
    assert!(line.ends_with("log-format = \"xml\": not one of: text, json"), "{line}");
    let line = refused_file("unary-timeout = 30\n");
    assert!(line.contains("unary-timeout = 30: "), "{line}");
    let line = refused_file("max-groups = 2\nmax-pinned = \n");
    assert!(line.contains("not TOML: line 2, column"), "{line}");
    // A list where the flag takes several values is fine.
    let tmp = tempfile::tempdir().unwrap();
    let file = settings(tmp.path(), "cors-allow-origin = [\"https://a.example\", \"https://b.example\"]\n");
    let run = execute(command(&["check-config", "--config", file.to_str().unwrap()]));
    run.ok().stdout_has(r#"cors-allow-origin = ["https://a.example", "https://b.example"]"#);
}

#[test]
fn a_missing_settings_file_is_refused() {
    let run = execute(command(&["check-config", "--config", "/nonexistent/convgroups.toml"]));
    run.expect_code(2).stderr_has("convgroups: --config /nonexistent/convgroups.toml: cannot read it: ");
}

// ---------------------------------------------------------------------------
// check-config
// ---------------------------------------------------------------------------

#[test]
fn check_config_accepts_what_serve_accepts_without_binding_or_creating() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    // A port that is taken: check-config binds nothing, so it does not care.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let secret = "a-secret-of-more-than-16-bytes";
    let mut cmd = command(&["check-config", "--data-dir", data, "--listen", &listen, "--max-groups", "5"]);
    cmd.env("CONVGROUPS_AUTH_SECRET", secret);
    let run = execute(cmd);
    run.ok().stdout_has(&format!("listen = \"{listen}\""));
    assert_eq!(run.stdout.lines().last(), Some("ok"), "{run}");
    assert!(run.stdout.lines().any(|l| l.starts_with("max-groups = 5 ") && l.ends_with("# --max-groups")), "{run}");
    assert!(run.stdout.lines().any(|l| l.starts_with("max-pinned = 50 ") && l.ends_with("# default")), "{run}");
    run.stdout_has("# auth: HS256 tokens signed with CONVGROUPS_AUTH_SECRET (").stdout_has("not shown");
    assert!(!run.stdout.contains(secret), "the secret is not printed: {run}");
    assert!(!Path::new(data).exists(), "the data directory is not created");

    // The printed settings are a settings file that check-config accepts.
    let file = settings(tmp.path(), &run.stdout.replace("\nok\n", "\n"));
    let again = execute(command(&["check-config", "--config", file.to_str().unwrap()]));
    again.ok().stdout_has("max-groups = 5 ");
}

/// check-config refuses what serve refuses, with the same line and exit
/// status.
#[test]
fn check_config_refuses_what_serve_refuses_with_the_same_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let missing = tmp.path().join("nope").join("data");
    let short = tmp.path().join("short-secret");
    std::fs::write(&short, "short\n").unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--data-dir", data, "--default-page-size", "500", "--max-page-size", "100"], 1, "--default-page-size"),
        (vec!["--data-dir", missing.to_str().unwrap()], 1, "--data-dir"),
        (vec!["--data-dir", data, "--auth-secret-file", short.to_str().unwrap()], 1, "--auth-secret-file"),
        (vec!["--data-dir", data, "--auth-secret-file", "/nope"], 1, "--auth-secret-file"),
        (vec!["--data-dir", data, "--tls-cert", "/nope.pem", "--tls-key", "/nope.key"], 1, "--tls-cert"),
        (vec!["--data-dir", data, "--backend", "etcd"], 1, "--etcd-endpoints"),
        (vec!["--data-dir", data, "--log-level", "info,=x=y"], 1, "--log-level"),
        (vec!["--data-dir", data, "--max-groups", "0"], 2, "--max-groups"),
        (
            vec!["--data-dir", data, "--webhook-max-gaps", "1025"],
            1,
            "--webhook-max-gaps: 1025 is more than the most allowed, 1024",
        ),
        (vec!["--data-dir", data, "--webhook-max-gaps", "0"], 2, "--webhook-max-gaps"),
        (
            vec!["--data-dir", data, "--webhook-cursor-save-interval", "2h"],
            1,
            "--webhook-cursor-save-interval: 2h is more than the most allowed, 1h",
        ),
        (vec!["--data-dir", data, "--webhook-cursor-save-interval", "0s"], 2, "--webhook-cursor-save-interval"),
    ];
    for (args, code, setting) in cases {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut runs = Vec::new();
        for sub in ["serve", "check-config"] {
            let mut all = vec![sub, "--listen", &listen];
            all.extend_from_slice(&args);
            let run = execute(command(&all));
            run.expect_code(code).stderr_has(setting);
            runs.push(run);
        }
        assert_eq!(
            runs[0].stderr, runs[1].stderr,
            "serve and check-config should say the same:\n{}\n{}",
            runs[0], runs[1]
        );
        assert!(runs[1].stdout.is_empty(), "{}", runs[1]);
    }
}

#[test]
fn the_example_settings_file_passes_check_config() {
    let example = repo().join("convgroups.example.toml");
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = command(&["check-config", "--config", example.to_str().unwrap()]);
    cmd.current_dir(tmp.path());
    let run = execute(cmd);
    run.ok().stdout_has("max-groups = 20 ").stdout_has("log-format = \"json\"");
    assert_eq!(run.stdout.lines().last(), Some("ok"), "{run}");
    assert!(!tmp.path().join("data").exists(), "{run}");
}

/// Every flag in the README's settings table is a key that check-config
/// prints, and every key check-config prints is in the table.
#[test]
fn every_flag_has_a_key_and_the_readme_lists_them() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|l| l.split('`').next().unwrap().to_string())
        .filter(|flag| flag != "config")
        .collect();
    let run = execute(command(&["check-config", "--data-dir", "data"]));
    let keys: std::collections::BTreeSet<String> = run
        .ok()
        .stdout
        .lines()
        .filter(|l| !l.starts_with("# convgroups ") && !l.starts_with("# auth: ") && *l != "ok")
        .map(|l| l.trim_start_matches("# ").split(' ').next().unwrap().to_string())
        .collect();
    assert!(documented.len() > 30, "{documented:?}");
    assert_eq!(documented, keys, "README table vs. check-config keys");
}
