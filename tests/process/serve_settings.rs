//! Settings of `convgroups serve`: `serve --help` documents every flag with
//! its env var; env vars take effect and flags win; invalid settings stop
//! the start with one clear line.

use std::collections::HashMap;
use std::net::TcpListener;

use tonic::Code;

use crate::support::http::*;
use crate::support::inproc::*;
use crate::support::process::*;

/// Every flag this version has (config.rs), without the leading `--`, and
/// whether it has a default value.
const FLAGS: &[(&str, bool)] = &[
    ("listen", true),
    ("data-dir", true),
    ("auth-secret-file", false),
    ("max-groups", true),
    ("watch-user-ring", true),
    ("watch-all-users-ring", true),
    ("max-group-name-bytes", true),
    ("max-conversations-per-group", true),
    ("max-ids-per-request", true),
    ("max-pinned", true),
    ("max-custom-data-bytes", true),
    ("max-text-field-bytes", true),
    ("max-marks", true),
    ("max-group-icon-bytes", true),
    ("max-group-custom-data-bytes", true),
    ("default-page-size", true),
    ("max-page-size", true),
    ("bookmark-interval", true),
    ("retain-for", true),
    ("retain-events-per-user", true),
    ("compact-interval", true),
    ("max-watchers", true),
    ("max-watchers-per-user", true),
    ("max-request-bytes", true),
    ("max-in-flight", true),
    ("unary-timeout", true),
    ("tls-cert", false),
    ("tls-key", false),
    ("cors-allow-origin", false),
    ("metrics-listen", false),
    ("shutdown-grace", true),
    ("http2-max-concurrent-streams", true),
    ("http2-keepalive-interval", true),
    ("http2-keepalive-timeout", true),
    ("storage-retry-interval", true),
    ("log-level", true),
    ("log-format", true),
];

/// `serve --help` has a block per flag: a description line, the
/// `CONVGROUPS_*` variable and (where there is one) the default; every flag
/// it shows has its variable, and no known flag is missing.
#[test]
fn help_documents_every_flag_with_its_env_var_and_default() {
    let run = run_to_end(&["serve", "--help"], &[]);
    assert!(run.status.success(), "serve --help failed: {run:?}");
    let help = run.stdout;
    // Blocks: a line starting with `-` (after indentation) and what follows
    // up to the next such line.
    let mut blocks: HashMap<String, Vec<String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        let b = trimmed.as_bytes();
        // `--flag <VALUE>` or `-h, --help`; not `- value: ...` lists.
        if trimmed.starts_with("--") || (b.len() > 2 && b[0] == b'-' && b[1].is_ascii_alphanumeric() && b[2] == b',') {
            let flag = trimmed
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .map(|w| w.trim_start_matches('-').to_string())
                .unwrap_or_default();
            blocks.insert(flag.clone(), Vec::new());
            current = Some(flag);
        } else if let Some(flag) = &current {
            blocks.get_mut(flag).expect("block").push(line.trim().to_string());
        }
    }
    for (flag, has_default) in FLAGS {
        let block = blocks.get(*flag).unwrap_or_else(|| panic!("--{flag} is not in `serve --help`:\n{help}"));
        let text = block.join("\n");
        let var = format!("CONVGROUPS_{}", flag.to_ascii_uppercase().replace('-', "_"));
        assert!(text.contains(&format!("[env: {var}=")), "--{flag} does not show [env: {var}=]:\n{text}");
        assert!(
            block.first().is_some_and(|l| !l.is_empty() && !l.starts_with('[')),
            "--{flag} has no description line:\n{text}"
        );
        if *has_default {
            assert!(text.contains("[default: "), "--{flag} does not show its default:\n{text}");
        }
    }
    for (flag, block) in &blocks {
        if flag == "help" || flag.is_empty() {
            continue;
        }
        let text = block.join("\n");
        assert!(text.contains("[env: CONVGROUPS_"), "--{flag} has no CONVGROUPS_* variable:\n{text}");
    }
}

/// Settings through the environment alone (no flags): CONVGROUPS_LISTEN,
/// CONVGROUPS_DATA_DIR, CONVGROUPS_MAX_GROUPS=1, CONVGROUPS_LOG_FORMAT=json;
/// and a flag wins over its variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_the_environment_take_effect_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(dir.path(), "env.log");
    launch.address_flags = false;
    let (addr, data_dir) = (launch.addr.to_string(), launch.data_dir.to_string_lossy().to_string());
    let launch = launch
        .env("CONVGROUPS_LISTEN", addr)
        .env("CONVGROUPS_DATA_DIR", data_dir)
        .env("CONVGROUPS_MAX_GROUPS", "1")
        .env("CONVGROUPS_LOG_FORMAT", "json");
    let server = launch.clone().start();
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "One", &["C2Cbob"]).await.expect("first group");
    let status = expect_err(create(&mut gc, "Two", &["C2Cbob"]).await);
    let info = assert_status(&status, Code::ResourceExhausted, "GROUP_LIMIT_EXCEEDED", Some("51010"));
    assert_eq!(info.metadata.get("max_groups").map(String::as_str), Some("1"));
    let log = server.stop().await;
    json_lines(&log);
    assert!(launch.data_dir.join("auth-secret").exists(), "CONVGROUPS_DATA_DIR was not used");

    // Same environment, but --max-groups 2 on the command line.
    let mut again = launch.again("flag.log");
    again.env.retain(|(k, _)| k != "CONVGROUPS_LISTEN");
    let addr = again.addr.to_string();
    let again = again.env("CONVGROUPS_LISTEN", addr).args(["--max-groups", "2"]);
    let server = again.start();
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Two", &["C2Cbob"]).await.expect("--max-groups 2 beats CONVGROUPS_MAX_GROUPS=1");
    server.stop().await;
}

/// A start that must fail: non-zero exit, no panic, and one line that names
/// `setting` (clap's own usage errors: the first line). Returns that line.
#[track_caller]
fn assert_refused(args: &[&str], setting: &str) -> String {
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    let run = run_to_end(&full, &[]);
    let stderr = &run.stderr;
    assert!(!run.status.success(), "`serve {}` should fail; it exited with {}", args.join(" "), run.status);
    assert!(!stderr.contains("panicked"), "panic on an invalid setting:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let first = *lines.first().unwrap_or_else(|| panic!("no message on stderr for `serve {}`", args.join(" ")));
    if first.starts_with("error:") {
        // clap: `error: invalid value ... for '--listen <LISTEN>'` (or the
        // missing argument on the next line), then usage hints.
        assert!(stderr.contains(setting), "clap error does not name {setting}: {stderr}");
    } else {
        assert_eq!(
            lines.len(),
            1,
            "a failed start should print exactly one line (no start-up line for a server that never served); \
             stderr:\n{stderr}"
        );
        assert!(first.starts_with("convgroups: "), "error line without the program name: {first}");
        assert!(first.contains(setting), "error line does not name {setting}: {first}");
    }
    first.to_string()
}

/// Fresh --listen and --data-dir for a start that is expected to fail.
fn scratch(dir: &tempfile::TempDir) -> (String, String) {
    (free_addr().to_string(), dir.path().join("data").to_string_lossy().to_string())
}

#[test]
fn invalid_listen_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = scratch(&dir);
    assert_refused(&["--listen", "127.0.0.1:notaport", "--data-dir", &data], "--listen");
    assert_refused(&["--listen", "localhost", "--data-dir", &data], "--listen");
}

#[test]
fn listen_address_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = scratch(&dir);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = assert_refused(&["--listen", &addr, "--data-dir", &data], "--listen");
    assert!(line.contains(&addr), "{line}");
}

#[test]
fn unreadable_tls_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, data) = scratch(&dir);
    let missing = dir.path().join("missing-cert.pem").to_string_lossy().to_string();
    let key = dir.path().join("missing-key.pem").to_string_lossy().to_string();
    let line = assert_refused(
        &["--listen", &listen, "--data-dir", &data, "--tls-cert", &missing, "--tls-key", &key],
        "--tls-cert",
    );
    assert!(line.contains(&missing), "the error should name the file: {line}");
    // A key without a certificate (and the reverse) is a usage error.
    assert_refused(&["--listen", &listen, "--data-dir", &data, "--tls-key", &key], "--tls-cert");
}

/// Readable files that are not PEM: the error says what is wrong, not just
/// "transport error".
#[test]
fn tls_files_that_are_not_pem_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, data) = scratch(&dir);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let garbage = garbage.to_string_lossy().to_string();
    let line = assert_refused(
        &["--listen", &listen, "--data-dir", &data, "--tls-cert", &garbage, "--tls-key", &garbage],
        "--tls-",
    );
    let detail = line.splitn(3, ':').nth(2).unwrap_or_default().to_ascii_lowercase();
    assert!(
        detail.contains(&garbage.to_ascii_lowercase())
            || ["pem", "certificate", "private key", "no key", "no cert"].iter().any(|w| detail.contains(w)),
        "the error should say what is wrong with the file, got: {line}"
    );
}

#[test]
fn data_dir_that_cannot_be_created_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let data = file.join("data").to_string_lossy().to_string();
    let line = assert_refused(&["--listen", &free_addr().to_string(), "--data-dir", &data], "--data-dir");
    assert!(line.contains(&data), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_held_by_a_running_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Launch::new(dir.path(), "first.log").start();
    let data = first.launch.data_dir.to_string_lossy().to_string();
    let line = assert_refused(&["--listen", &free_addr().to_string(), "--data-dir", &data], "--data-dir");
    assert!(line.contains("another"), "the error should hint at another server: {line}");
    // The running server is unharmed.
    let mut gc = first.group_client("alice").await;
    create(&mut gc, "Still", &["C2Cx"]).await.expect("first server still serves");
    first.stop().await;
}

#[test]
fn metrics_address_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, data) = scratch(&dir);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line =
        assert_refused(&["--listen", &listen, "--data-dir", &data, "--metrics-listen", &addr], "--metrics-listen");
    assert!(line.contains(&addr), "{line}");
}

#[test]
fn invalid_cors_origin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, data) = scratch(&dir);
    assert_refused(
        &["--listen", &listen, "--data-dir", &data, "--cors-allow-origin", "http://a\u{7f}b"],
        "--cors-allow-origin",
    );
}

#[test]
fn invalid_log_settings_and_durations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, data) = scratch(&dir);
    assert_refused(&["--listen", &listen, "--data-dir", &data, "--log-level", "a=b=c"], "--log-level");
    assert_refused(&["--listen", &listen, "--data-dir", &data, "--log-format", "xml"], "--log-format");
    assert_refused(&["--listen", &listen, "--data-dir", &data, "--shutdown-grace", "soon"], "--shutdown-grace");
}

/// Zero where zero cannot work: an interval of 0 would spin a timer (tokio
/// even panics on it), a timeout of 0 fails every call, a page size, id
/// count, request size or call budget of 0 makes every request fail. Each
/// is refused at start, naming the flag.
#[test]
fn zero_intervals_and_counts_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, data) = scratch(&dir);
    for flag in [
        "--bookmark-interval",
        "--compact-interval",
        "--unary-timeout",
        "--http2-keepalive-interval",
        "--http2-keepalive-timeout",
        "--storage-retry-interval",
    ] {
        assert_refused(&["--listen", &listen, "--data-dir", &data, flag, "0s"], flag);
    }
    for flag in [
        "--max-group-name-bytes",
        "--max-ids-per-request",
        "--default-page-size",
        "--max-page-size",
        "--max-request-bytes",
        "--max-in-flight",
        "--http2-max-concurrent-streams",
    ] {
        assert_refused(&["--listen", &listen, "--data-dir", &data, flag, "0"], flag);
    }
}
