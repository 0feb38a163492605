//! Operability of the real binary (issue items 1-7, tested as item 10 asks):
//! `convgroups serve` runs as a child process on a free port over a
//! temporary data directory, with its stderr captured to a file, and is
//! stopped with SIGTERM (exit status 0 checked) or killed by pid when a test
//! fails.
//!
//! * settings: `serve --help` documents every flag with its env var; env
//!   vars take effect; invalid settings stop the start with one clear line.
//! * logs: JSON lines, one per RPC with method/user/code/latency_us,
//!   start-up and shutdown lines, no tokens or secrets even at trace level.
//! * metrics: a Prometheus scrape over raw HTTP/1.1.
//! * TLS: a certificate generated at test time (rcgen); plaintext is
//!   refused; ALPN offered to HTTP/1.1 clients (a hand-made ClientHello).
//! * grpc-web: raw HTTP/1.1 unary and streaming calls, the tonic-web client
//!   over HTTP/2 (plain and TLS), CORS preflights.
//! * limits: request size, load shedding, streams per connection,
//!   keepalive.
//! * shutdown: order, resume revision, durability, the second signal.
//!
//! A graceful stop waits until the process handles SIGTERM (SigCgt in
//! /proc/<pid>/status, so Linux only): the server installs its handler only
//! after it accepts connections (`sigterm_right_after_start_up_is_graceful`).
//!
//! Not covered: `--unary-timeout` (no way to make a handler reliably slower
//! than a deadline from outside the process).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::watch_group_events_response::Kind;
use convgroups::pb::*;
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::client::*;
use crate::support::http::*;
use crate::support::inproc::{assert_status, create, expect_err, group_list};
use crate::support::process::*;
use crate::support::watch::{next_watch, read_to_bookmark, watch_from};
use crate::support::PROMPT;

// ===========================================================================
// 1. Settings
// ===========================================================================

/// Every flag this version has (config.rs), without the leading `--`, and
/// whether it has a default value.
const FLAGS: &[(&str, bool)] = &[
    ("listen", true),
    ("data-dir", true),
    ("auth-secret-file", false),
    ("max-groups", true),
    ("max-group-name-bytes", true),
    ("max-conversations-per-group", true),
    ("max-ids-per-request", true),
    ("max-pinned", true),
    ("max-custom-data-bytes", true),
    ("max-text-field-bytes", true),
    ("max-marks", true),
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

// ===========================================================================
// 2. Logs
// ===========================================================================

/// `--log-format json`: every line is a JSON object; each RPC has one line
/// with method, user, code and latency_us; start-up and shutdown lines in
/// order; neither tokens (valid or not) nor the secret appear, at debug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_rpc_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "json.log").args(["--log-format", "json", "--log-level", "debug"]).start();
    let token = server.token("alice");
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    expect_err(create(&mut gc, "Family", &["C2Cdad"]).await);
    group_list(&mut gc).await;

    // Failing authentication: a token signed with another secret, garbage.
    let foreign = convgroups::auth::Secret::from_bytes(b"some-other-secret-for-the-test").issue(
        &convgroups::domain::UserId::parse("alice").unwrap(),
        false,
        Duration::from_secs(600),
    );
    let channel = server.channel().await;
    for bad in [format!("Bearer {foreign}"), "Bearer not.a.jwt-garbage-token".to_string()] {
        let mut bad_client = client_on(channel.clone(), &bad);
        let status =
            expect_err(bad_client.get_conversation_group_list(GetConversationGroupListRequest::default()).await);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(!status.message().contains(&foreign), "the status echoes the token: {status:?}");
    }
    let secret = server.secret_text();
    let addr = server.addr();
    let log = server.stop().await;

    let lines = json_lines(&log);
    let serving = line_index(&lines, "serving", &log);
    assert_eq!(lines[serving].str("addr"), Some(addr.to_string().as_str()), "start-up line: {:?}", lines[serving]);
    let shutting_down = line_index(&lines, "shutting down", &log);
    let stopped = line_index(&lines, "stopped", &log);
    assert!(serving < shutting_down && shutting_down < stopped, "start-up/shutdown lines out of order:\n{log}");

    let creates = rpc_lines(&lines, "CreateConversationGroup");
    assert_eq!(creates.len(), 2, "one line per CreateConversationGroup call:\n{log}");
    let codes: Vec<_> = creates.iter().map(|l| l.str("code").unwrap_or_default()).collect();
    assert_eq!(codes, ["Ok", "AlreadyExists"], "{log}");
    for line in creates {
        assert_eq!(line.str("user"), Some("alice"), "{line:?}");
        assert!(line.get("latency_us").and_then(Json::as_f64).is_some_and(|n| n >= 0.0), "latency_us: {line:?}");
        assert!(line.get("level").is_some() && line.get("timestamp").is_some(), "{line:?}");
    }
    assert_eq!(rpc_lines(&lines, "GetConversationGroupList").iter().filter(|l| l.str("code") == Some("Ok")).count(), 1);
    assert_secrets_absent(
        &log,
        &[
            ("valid token", &token),
            ("foreign token", &foreign),
            ("garbage token", "not.a.jwt-garbage-token"),
            ("auth secret", &secret),
        ],
    );
}

/// Calls rejected by authentication are RPCs too: a log line (method,
/// code UNAUTHENTICATED) and a count in convgroups_rpc_requests_total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_calls_are_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let server = Launch::new(dir.path(), "rejected.log")
        .args(["--log-format", "json", "--metrics-listen", &metrics.to_string()])
        .start();
    let channel = server.channel().await;
    let mut anonymous = ConversationGroupServiceClient::new(channel.clone());
    let status = expect_err(anonymous.get_conversation_group_list(GetConversationGroupListRequest::default()).await);
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut bad = client_on(channel, "Bearer not-a-token");
    expect_err(bad.get_conversation_group_list(GetConversationGroupListRequest::default()).await);
    server.wait_for_log("serving").await;
    let (_, text) = http_get(metrics, "/metrics");
    let log = server.stop().await;

    let lines = json_lines(&log);
    // Whatever the message: a line that names the method and the code.
    let rejected: Vec<_> = lines
        .iter()
        .filter(|l| l.str("method") == Some("GetConversationGroupList") && l.str("code") == Some("Unauthenticated"))
        .collect();
    assert_eq!(
        rejected.len(),
        2,
        "each unauthenticated call should have its line with method, user, code and latency_us:\n{log}"
    );
    for line in rejected {
        assert!(line.get("user").is_some() && line.get("latency_us").is_some(), "{line:?}");
    }
    assert_eq!(
        sample(
            &text,
            "convgroups_rpc_requests_total",
            &["method=\"GetConversationGroupList\"", "code=\"Unauthenticated\""]
        ),
        Some(2.0),
        "unauthenticated calls should be counted:\n{text}"
    );
}

/// RUST_LOG wins over --log-level; even at trace level (every crate, text
/// format, gRPC and grpc-web requests, failing auth) no token and no secret
/// is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_keep_tokens_and_secret_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "trace.log").args(["--log-level", "warn"]).env("RUST_LOG", "trace").start();
    let token = server.token("alice");
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    let mut stream = gc.watch_group_events(watch_from(1)).await.unwrap().into_inner();
    read_to_bookmark(&mut stream).await;
    drop(stream);
    let mut bad = client_on(server.channel().await, &format!("Bearer {token}x"));
    expect_err(bad.get_conversation_group_list(GetConversationGroupListRequest::default()).await);
    // grpc-web over HTTP/1.1 with the header.
    let (addr, bearer) = (server.addr(), server.bearer("alice"));
    let (status, _) =
        tokio::task::spawn_blocking(move || grpc_web_call(addr, "GetConversationGroupList", &bearer, &[]))
            .await
            .unwrap();
    assert_eq!(status, 200);
    let secret = server.secret_text();
    let log = server.stop().await;
    assert!(log.contains("TRACE"), "RUST_LOG=trace should win over --log-level warn:\n{}", &log[..log.len().min(2000)]);
    assert_secrets_absent(&log, &[("token", &token), ("auth secret", &secret)]);
}

// ===========================================================================
// 3. Metrics
// ===========================================================================

/// Scrapes until `ready` holds (bounded); returns the last scrape.
async fn scrape_until(addr: std::net::SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PROMPT;
    loop {
        let scraped = tokio::task::spawn_blocking(move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok().map(|_| http_get(addr, "/metrics"))
        })
        .await
        .unwrap();
        if let Some((status, text)) = scraped {
            assert_eq!(status, 200, "GET /metrics: {text}");
            if ready(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "metrics never showed {what}:\n{text}");
        } else {
            assert!(Instant::now() < deadline, "the metrics endpoint {addr} never accepted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_shows_rpcs_watchers_events_and_storage() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let server = Launch::new(dir.path(), "metrics.log")
        .args(["--metrics-listen", &metrics.to_string(), "--compact-interval", "100ms"])
        .start();
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    create(&mut gc, "Work", &["C2Cboss"]).await.unwrap();
    expect_err(create(&mut gc, "Work", &["C2Cboss"]).await);
    group_list(&mut gc).await;
    // A watch from revision 1 catches up from the log, then stays open.
    let mut stream = gc.watch_group_events(watch_from(1)).await.unwrap().into_inner();
    read_to_bookmark(&mut stream).await;

    let text = scrape_until(metrics, "watchers=1 and the storage size", |t| {
        sample(t, "convgroups_watchers", &[]) == Some(1.0)
            && sample(t, "convgroups_storage_size_bytes", &[]).is_some_and(|v| v > 0.0)
    })
    .await;
    let create_ok = ["method=\"CreateConversationGroup\"", "code=\"Ok\""];
    assert_eq!(sample(&text, "convgroups_rpc_requests_total", &create_ok), Some(2.0), "{text}");
    let create_dup = ["method=\"CreateConversationGroup\"", "code=\"AlreadyExists\""];
    assert_eq!(sample(&text, "convgroups_rpc_requests_total", &create_dup), Some(1.0), "{text}");
    let list_ok = ["method=\"GetConversationGroupList\"", "code=\"Ok\""];
    assert_eq!(sample(&text, "convgroups_rpc_requests_total", &list_ok), Some(1.0), "{text}");
    assert!(text.contains("# TYPE convgroups_rpc_requests_total counter"), "{text}");
    assert!(text.contains("# TYPE convgroups_rpc_duration_seconds histogram"), "{text}");
    let create = "method=\"CreateConversationGroup\"";
    assert_eq!(sample(&text, "convgroups_rpc_duration_seconds_count", &[create]), Some(3.0), "{text}");
    assert_eq!(sample(&text, "convgroups_rpc_duration_seconds_bucket", &[create, "le=\"+Inf\""]), Some(3.0), "{text}");
    assert!(sample(&text, "convgroups_rpc_duration_seconds_bucket", &[create, "le=\"0.001\""]).is_some(), "{text}");
    assert!(sample(&text, "convgroups_events_published_total", &[]).is_some_and(|v| v >= 2.0), "{text}");
    assert!(sample(&text, "convgroups_flush_duration_seconds_count", &[]).is_some_and(|v| v >= 2.0), "{text}");
    assert!(sample(&text, "convgroups_flush_duration_seconds_bucket", &["le=\"+Inf\""]).is_some(), "{text}");
    assert_eq!(sample(&text, "convgroups_watchers_catching_up", &[]), Some(0.0), "catch-up finished:\n{text}");

    drop(stream);
    scrape_until(metrics, "watchers back to 0", |t| sample(t, "convgroups_watchers", &[]) == Some(0.0)).await;
    server.stop().await;
}

// ===========================================================================
// 4. TLS
// ===========================================================================

/// A server with TLS on, using a self-signed certificate for localhost and
/// 127.0.0.1 generated now; also returns the certificate PEM.
fn tls_server(dir: &std::path::Path, log_name: &str) -> (Server, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    let server = Launch::new(dir, log_name)
        .args([
            "--log-format",
            "json",
            "--tls-cert",
            &cert_path.to_string_lossy(),
            "--tls-key",
            &key_path.to_string_lossy(),
        ])
        .start();
    (server, cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_with_a_generated_certificate_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cert_pem) = tls_server(dir.path(), "tls.log");
    let port = server.addr().port();

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cert_pem)).domain_name("localhost");
    let channel = endpoint(&format!("https://127.0.0.1:{port}"))
        .tls_config(tls)
        .expect("client TLS config")
        .connect()
        .await
        .expect("TLS connection");
    let mut gc = client_on(channel.clone(), &server.bearer("alice"));
    create(&mut gc, "Secure", &["C2Cbob"]).await.expect("create over TLS");
    assert_eq!(group_names(&mut gc).await, ["Secure"]);
    // grpc-web over the same TLS port (HTTP/2, as browsers negotiate it).
    let mut web = web_client(channel.clone(), &server.bearer("alice"));
    let list =
        web.get_conversation_group_list(GetConversationGroupListRequest::default()).await.expect("grpc-web over TLS");
    assert_eq!(list.into_inner().group_names, ["Secure"]);
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .expect("health over TLS")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Plaintext gRPC (HTTP/2 prior knowledge) fails.
    let plain = tokio::time::timeout(PROMPT, async {
        let channel = endpoint(&format!("http://127.0.0.1:{port}")).connect().await?;
        let mut gc = client_on(channel, &server.bearer("alice"));
        gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await.map_err(Into::into)
    })
    .await
    .expect("the plaintext attempt should fail promptly, not hang");
    let plain: Result<_, Box<dyn std::error::Error + Send + Sync>> = plain;
    assert!(plain.is_err(), "a plaintext gRPC call succeeded against a TLS server: {plain:?}");

    // Plaintext HTTP/1.1 (grpc-web) gets no HTTP answer.
    let addr = server.addr();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PROMPT)).unwrap();
        let _ = s.write_all(
            b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc-web\r\ncontent-length: 0\r\n\r\n",
        );
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        reply
    })
    .await
    .unwrap();
    assert!(!reply.starts_with(b"HTTP/"), "plaintext HTTP/1.1 was answered: {:?}", String::from_utf8_lossy(&reply));

    // Still serving TLS afterwards; the start-up line says TLS is on.
    assert_eq!(group_names(&mut gc).await, ["Secure"]);
    let log = server.stop().await;
    let lines = json_lines(&log);
    assert!(matches!(lines[line_index(&lines, "serving", &log)].get("tls"), Some(Json::Bool(true))), "{log}");
}

// ===========================================================================
// 5. grpc-web and CORS
// ===========================================================================

/// One grpc-web unary call over HTTP/1.1; the HTTP status and the grpc-web
/// frames of the response body.
fn grpc_web_call(addr: std::net::SocketAddr, method: &str, bearer: &str, message: &[u8]) -> (u16, Vec<(u8, Vec<u8>)>) {
    let (status, _, frames) = grpc_web_call_with(addr, method, &[("authorization", bearer)], message);
    (status, frames)
}

/// Response headers (lowercased names) and grpc-web frames (flag, payload).
type WebResponse = (u16, Vec<(String, String)>, Vec<(u8, Vec<u8>)>);

/// Like [`grpc_web_call`] with any extra headers; also returns the headers.
fn grpc_web_call_with(
    addr: std::net::SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    message: &[u8],
) -> WebResponse {
    let mut head = format!(
        "POST /{GROUP_SERVICE}/{method} HTTP/1.1\ncontent-type: application/grpc-web+proto\nx-grpc-web: 1\n\
         accept: application/grpc-web+proto\nconnection: close"
    );
    for (name, value) in headers {
        head.push_str(&format!("\n{name}: {value}"));
    }
    let mut http = RawHttp::send(addr, &head, &frame(0, message));
    let mut frames = Vec::new();
    while let Some(f) = http.next_frame() {
        frames.push(f);
    }
    (http.status, http.headers.clone(), frames)
}

/// The grpc-status of a grpc-web response: from the trailer frame, else
/// from the headers (a trailers-only answer).
fn grpc_web_status(headers: &[(String, String)], frames: &[(u8, Vec<u8>)]) -> Option<String> {
    let trailers =
        frames.iter().find(|(flag, _)| flag & 0x80 != 0).map(|(_, t)| String::from_utf8_lossy(t).to_string());
    let from_trailers = trailers
        .and_then(|t| t.split("\r\n").find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_string())));
    from_trailers.or_else(|| headers.iter().find(|(n, _)| n == "grpc-status").map(|(_, v)| v.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_unary_calls_over_http1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "web.log").start();
    let (addr, bearer) = (server.addr(), server.bearer("alice"));
    tokio::task::spawn_blocking(move || {
        let request = CreateConversationGroupRequest {
            group_name: "Web".into(),
            conversation_ids: vec!["C2Cbrowser".into()],
            expected_revision: None,
        };
        let (headers_status, headers, frames) = grpc_web_call_with(
            addr,
            "CreateConversationGroup",
            &[("authorization", &bearer)],
            &request.encode_to_vec(),
        );
        assert_eq!(headers_status, 200);
        let content_type = headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
        assert!(content_type.is_some_and(|v| v.starts_with("application/grpc-web")), "content-type {content_type:?}");
        assert_eq!(frames.len(), 2, "a data frame and a trailer frame: {frames:?}");
        assert_eq!(frames[0].0, 0x00, "data frame flag");
        let created = CreateConversationGroupResponse::decode(frames[0].1.as_slice()).expect("decode response");
        assert_eq!(created.success_conversation_ids, ["C2Cbrowser"]);
        assert_eq!(frames[1].0, 0x80, "trailer frame flag");
        let trailers = String::from_utf8_lossy(&frames[1].1).to_ascii_lowercase();
        assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");

        let (status, frames) = grpc_web_call(addr, "GetConversationGroupList", &bearer, &[]);
        assert_eq!(status, 200);
        assert_eq!(grpc_web_status(&[], &frames).as_deref(), Some("0"), "{frames:?}");
        let list = GetConversationGroupListResponse::decode(frames[0].1.as_slice()).expect("decode list");
        assert_eq!(list.group_names, ["Web"]);
        assert_eq!(list.revision, created.revision);

        // Without a token: UNAUTHENTICATED (16) as a grpc-web status.
        let (status, headers, frames) = grpc_web_call_with(addr, "GetConversationGroupList", &[], &[]);
        assert_eq!(status, 200);
        assert_eq!(grpc_web_status(&headers, &frames).as_deref(), Some("16"), "{headers:?} {frames:?}");
    })
    .await
    .unwrap();
    // The same group through plain gRPC on the same port.
    let mut gc = server.group_client("alice").await;
    assert_eq!(group_names(&mut gc).await, ["Web"]);
    server.stop().await;
}

/// WatchGroupEvents through grpc-web over HTTP/1.1: the bookmark, then a
/// batch as frames arrive on the open response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_watch_streams_over_http1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "webwatch.log").start();
    let mut gc = server.group_client("alice").await;
    let first = create(&mut gc, "Before", &["C2Ca"]).await.unwrap().revision;
    let (addr, bearer) = (server.addr(), server.bearer("alice"));
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let head = format!(
            "POST /{GROUP_SERVICE}/WatchGroupEvents HTTP/1.1\ncontent-type: application/grpc-web+proto\n\
             x-grpc-web: 1\nauthorization: {bearer}"
        );
        let mut http = RawHttp::send(addr, &head, &frame(0, &watch_from(0).encode_to_vec()));
        assert_eq!(http.status, 200);
        let (flag, bytes) = http.next_frame().expect("first frame");
        assert_eq!(flag, 0);
        let bookmark = WatchGroupEventsResponse::decode(bytes.as_slice()).unwrap().kind;
        assert!(matches!(bookmark, Some(Kind::Bookmark(b)) if b.revision == first), "{bookmark:?}");
        opened_tx.send(()).unwrap();
        let (flag, bytes) = http.next_frame().expect("second frame");
        assert_eq!(flag, 0);
        match WatchGroupEventsResponse::decode(bytes.as_slice()).unwrap().kind {
            Some(Kind::Events(batch)) => batch.revision,
            other => panic!("expected a batch, got {other:?}"),
        }
    });
    opened_rx.await.expect("watch opened");
    let created = create(&mut gc, "After", &["C2Cb"]).await.unwrap().revision;
    assert_eq!(reader.await.unwrap(), created);
    server.stop().await;
}

/// A grpc-web request as tonic-web's client layer makes it.
type WebRequest = http::Request<tonic_web::GrpcWebCall<tonic::body::Body>>;
/// A channel that speaks grpc-web (tonic-web's client layer).
type WebChannel = tonic_web::GrpcWebClientService<
    tower::util::MapRequest<Channel, fn(WebRequest) -> http::Request<tonic::body::Body>>,
>;

/// A group-service client speaking grpc-web on `channel` (HTTP/2).
fn web_client(
    channel: Channel,
    bearer: &str,
) -> ConversationGroupServiceClient<InterceptedService<WebChannel, Headers>> {
    let to_body: fn(WebRequest) -> http::Request<tonic::body::Body> = |r| r.map(tonic::body::Body::new);
    let web =
        tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).map_request(to_body).service(channel);
    ConversationGroupServiceClient::with_interceptor(web, Headers::new(&[("authorization", bearer)]))
}

/// tonic-web's client layer over HTTP/2 (prior knowledge) on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http2_with_the_tonic_web_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "web2.log").start();
    let mut client = web_client(server.channel().await, &server.bearer("alice"));
    let created = client
        .create_conversation_group(CreateConversationGroupRequest {
            group_name: "H2Web".into(),
            conversation_ids: vec!["C2Cx".into()],
            expected_revision: None,
        })
        .await
        .expect("grpc-web create over HTTP/2")
        .into_inner();
    let list =
        client.get_conversation_group_list(GetConversationGroupListRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.group_names, ["H2Web"]);
    assert_eq!(list.revision, created.revision);
    server.stop().await;
}

/// A CORS preflight; the response headers.
fn preflight(addr: std::net::SocketAddr, origin: &str) -> (u16, Vec<(String, String)>) {
    let head = format!(
        "OPTIONS /{GROUP_SERVICE}/GetConversationGroupList HTTP/1.1\norigin: {origin}\n\
         access-control-request-method: POST\n\
         access-control-request-headers: authorization,content-type,x-grpc-web\nconnection: close"
    );
    let mut http = RawHttp::send(addr, &head, &[]);
    http.read_body();
    (http.status, http.headers.clone())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let with = Launch::new(dir.path(), "cors.log").args(["--cors-allow-origin", "http://example.test"]).start();
    let without_dir = tempfile::tempdir().unwrap();
    let without = Launch::new(without_dir.path(), "nocors.log").start();
    let (with_addr, without_addr, bearer) = (with.addr(), without.addr(), with.bearer("alice"));
    tokio::task::spawn_blocking(move || {
        let (status, headers) = preflight(with_addr, "http://example.test");
        assert!((200..300).contains(&status), "preflight status {status}: {headers:?}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("http://example.test"), "{headers:?}");
        let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        for needed in ["authorization", "content-type", "x-grpc-web"] {
            assert!(allowed.contains(needed), "allow-headers {allowed:?} lacks {needed}");
        }
        assert!(header(&headers, "access-control-allow-methods").unwrap_or_default().contains("POST"), "{headers:?}");

        let (_, headers) = preflight(with_addr, "http://evil.test");
        assert_eq!(header(&headers, "access-control-allow-origin"), None, "other origin allowed: {headers:?}");

        // The call itself, from the allowed origin: readable status headers.
        let (status, headers, frames) = grpc_web_call_with(
            with_addr,
            "GetConversationGroupList",
            &[("authorization", &bearer), ("origin", "http://example.test")],
            &[],
        );
        assert_eq!(status, 200);
        assert_eq!(grpc_web_status(&headers, &frames).as_deref(), Some("0"));
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("http://example.test"), "{headers:?}");
        let exposed = header(&headers, "access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"), "expose-headers {exposed:?}");

        let (_, headers) = preflight(without_addr, "http://example.test");
        assert_eq!(header(&headers, "access-control-allow-origin"), None, "CORS without the flag: {headers:?}");
    })
    .await
    .unwrap();
    with.stop().await;
    without.stop().await;
}

// ===========================================================================
// 6. Server limits
// ===========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_requests_get_resource_exhausted_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "oversize.log").args(["--max-request-bytes", "1024"]).start();
    let mut gc = server.group_client("alice").await;
    let ids = c2c_ids("a-rather-long-peer-id-to-fill-the-request-", 40);
    let size = CreateConversationGroupRequest {
        group_name: "Big".into(),
        conversation_ids: ids.clone(),
        expected_revision: None,
    }
    .encoded_len();
    assert!(size > 1024);
    let status = expect_err(create_owned(&mut gc, "Big", ids, None).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("1024"), "the message should name the limit: {:?}", status.message());
    assert!(
        status.message().contains(&size.to_string()),
        "the message should name the size {size}: {:?}",
        status.message()
    );

    // Same connection, a request under the limit.
    create(&mut gc, "Small", &["C2Cx"]).await.expect("small request after an oversize one");
    assert_eq!(group_names(&mut gc).await, ["Small"]);
    server.stop().await;
}

/// --max-in-flight 1 under a burst: every call either succeeds or is shed
/// at once with RESOURCE_EXHAUSTED / OVERLOADED; the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_beyond_max_in_flight_is_shed_with_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "shed.log").args(["--max-in-flight", "1"]).start();
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let mut gc = client_on(channel.clone(), &server.bearer(&format!("user{i}")));
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                create(&mut gc, "G", &["C2Cx"]).await.map(|_| ())
            } else {
                gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await.map(|_| ())
            }
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => ok += 1,
            Err(status) => {
                let info = assert_status(&status, Code::ResourceExhausted, "OVERLOADED", None);
                assert_eq!(info.metadata.get("max_in_flight").map(String::as_str), Some("1"));
                assert!(status.message().contains("max_in_flight"), "{status:?}");
                shed += 1;
            }
        }
    }
    eprintln!("max-in-flight 1: {ok} ok, {shed} shed");
    assert!(ok >= 1, "at least one call gets through");
    let mut gc = server.group_client("after").await;
    create(&mut gc, "After", &["C2Cx"]).await.expect("serving after the burst");
    server.stop().await;
}

/// --http2-max-concurrent-streams 2: a third call on a connection holding
/// two open watch streams waits; another connection is unaffected; closing
/// one stream lets the call through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_per_connection_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "streams.log").args(["--http2-max-concurrent-streams", "2"]).start();
    let channel = server.channel().await;
    let mut gc = client_on(channel.clone(), &server.bearer("alice"));
    let mut first = gc.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    read_to_bookmark(&mut first).await;
    let mut second = gc.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    read_to_bookmark(&mut second).await;

    let mut third = gc.clone();
    let mut blocked = tokio::spawn(async move { group_list(&mut third).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut blocked).await.is_err(),
        "a third stream ran on a connection limited to 2"
    );
    let mut other = server.group_client("alice").await;
    group_list(&mut other).await;
    drop(first);
    tokio::time::timeout(PROMPT, blocked).await.expect("call runs once a stream closes").unwrap();
    drop(second);
    server.stop().await;
}

/// HTTP/2 keepalive: a peer that completes the handshake but never answers
/// PINGs is pinged and then disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_keepalive_drops_peers_that_do_not_answer_pings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "keepalive.log")
        .args(["--http2-keepalive-interval", "300ms", "--http2-keepalive-timeout", "300ms"])
        .start();
    let addr = server.addr();
    let (pinged, closed) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // empty SETTINGS
        let started = Instant::now();
        let (mut buf, mut pinged, mut closed) = (Vec::new(), None, None);
        while started.elapsed() < PROMPT && closed.is_none() {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => closed = Some(started.elapsed()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => closed = Some(started.elapsed()),
            }
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                if kind == 4 && flags & 1 == 0 {
                    let _ = s.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]); // SETTINGS ack
                }
                if kind == 6 && flags & 1 == 0 && pinged.is_none() {
                    pinged = Some(started.elapsed()); // never answered
                }
                buf.drain(..9 + len);
            }
        }
        (pinged, closed)
    })
    .await
    .unwrap();
    let pinged = pinged.expect("the server never sent a keepalive PING");
    let closed = closed.expect("the server kept a connection whose PINGs went unanswered");
    assert!(closed > pinged, "closed at {closed:?}, pinged at {pinged:?}");
    server.stop().await;
}

// ===========================================================================
// 7. Graceful shutdown
// ===========================================================================

/// SIGTERM with an open watch stream and a health watcher: health goes
/// NOT_SERVING, the stream ends with UNAVAILABLE / SHUTTING_DOWN and the
/// revision to resume from, the process exits 0 promptly, the log says
/// "shutting down" before "stopped", and acknowledged writes survive a
/// restart on the same directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_in_order_and_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch::new(dir.path(), "shutdown.log").args(["--log-format", "json"]);
    let mut server = launch.clone().start();
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    let last = create(&mut gc, "Work", &["C2Cboss"]).await.unwrap().revision;
    let mut watch = gc.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    assert_eq!(read_to_bookmark(&mut watch).await, last);
    let mut health = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(PROMPT, health.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let signalled = Instant::now();
    server.sigterm();
    // Health: NOT_SERVING (or the stream/connection ends).
    let seen = tokio::time::timeout(PROMPT, health.message()).await.expect("health watch after SIGTERM");
    if let Ok(Some(update)) = &seen {
        assert_eq!(update.status, ServingStatus::NotServing as i32, "{update:?}");
    }
    drop(health);
    // The watch ends with SHUTTING_DOWN and where to resume.
    let status = loop {
        match next_watch(&mut watch).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("watch ended without a status"),
            Err(status) => break status,
        }
    };
    let info = assert_status(&status, Code::Unavailable, "SHUTTING_DOWN", None);
    assert_eq!(info.metadata.get("resume_revision"), Some(&(last + 1).to_string()), "{status:?}");
    let exit = server.exited_within(Duration::from_secs(8)).await;
    let log = server.log();
    let exit = exit.unwrap_or_else(|| panic!("still running {:?} after SIGTERM; log:\n{log}", signalled.elapsed()));
    assert!(exit.success(), "exit status {exit}; log:\n{log}");
    let lines = json_lines(&log);
    assert!(line_index(&lines, "shutting down", &log) < line_index(&lines, "stopped", &log), "{log}");
    assert!(!log.contains("still running after the shutdown grace"), "drain hit the grace period:\n{log}");

    let server = launch.again("restart.log").start();
    let mut gc = server.group_client("alice").await;
    let list = group_list(&mut gc).await;
    assert_eq!(list.group_names, ["Family", "Work"]);
    assert_eq!(list.revision, last);
    server.stop().await;
}

/// A client watching health (as gRPC client-side health checking does)
/// must not hold the drain up until --shutdown-grace: streams are ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_health_watch_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Launch::new(dir.path(), "healthwatch.log").args(["--shutdown-grace", "8s"]).start();
    let mut health = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(PROMPT, health.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let signalled = Instant::now();
    server.sigterm();
    let update = tokio::time::timeout(PROMPT, health.message()).await.expect("health update");
    assert!(matches!(&update, Ok(Some(u)) if u.status == ServingStatus::NotServing as i32), "{update:?}");
    // The client keeps watching, as real clients do.
    let exit = server.exited_within(Duration::from_secs(5)).await;
    let log = server.log();
    let waited = signalled.elapsed();
    drop(health);
    let exit = exit.unwrap_or_else(|| {
        panic!(
            "still running {waited:?} after SIGTERM with only a health watch open (--shutdown-grace 8s); log:\n{log}"
        )
    });
    assert!(exit.success(), "{exit}; log:\n{log}");
}

/// A watch whose client never reads keeps the drain waiting (here up to
/// --shutdown-grace 30s); new connections are refused meanwhile; a second
/// SIGTERM ends it at once, still with exit 0 and storage flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_cuts_the_drain_short() {
    let dir = tempfile::tempdir().unwrap();
    let launch =
        Launch::new(dir.path(), "force.log").args(["--shutdown-grace", "30s", "--max-ids-per-request", "1000"]);
    let mut server = launch.clone().start();
    let mut gc = server.group_client("alice").await;
    // A snapshot of ~120 KB, far more than the reader's 64 KiB window.
    let ids = c2c_ids(&"p".repeat(110), 1000);
    create_owned(&mut gc, "Big", ids, None).await.expect("big group");
    let lazy = endpoint(&format!("http://{}", server.addr()))
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .unwrap();
    let mut lazy_client = client_on(lazy, &server.bearer("alice"));
    let request = WatchGroupEventsRequest { send_snapshot: true, ..Default::default() };
    let _never_read = lazy_client.watch_group_events(request).await.expect("watch opened").into_inner();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let first_signal = Instant::now();
    server.sigterm();
    server.wait_for_log("shutting down").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(server.child.try_wait().is_none(), "the drain did not wait for the unread stream; log:\n{}", server.log());
    let refused = TcpStream::connect_timeout(&server.addr(), Duration::from_secs(2));
    assert!(refused.is_err(), "a new connection was accepted while shutting down");

    server.sigterm();
    let exit = server.exited_within(Duration::from_secs(10)).await;
    let log = server.log();
    let exit = exit.unwrap_or_else(|| panic!("second SIGTERM did not end the drain; log:\n{log}"));
    assert!(exit.success(), "exit status {exit} after the second signal; log:\n{log}");
    assert!(first_signal.elapsed() < Duration::from_secs(10), "took {:?}", first_signal.elapsed());
    assert!(log.contains("second signal"), "{log}");
    assert!(log.contains("stopped"), "storage flush/stop line missing:\n{log}");

    let server = launch.again("force-restart.log").start();
    let mut gc = server.group_client("alice").await;
    let big = group(&mut gc, "Big").await.expect("the acknowledged group survives");
    assert_eq!(big.conversation_count, 1000);
    server.stop().await;
}

/// SIGTERM as soon as the port accepts connections (a pod stopped right
/// after it started) is still a graceful stop: exit 0 after "stopped", not
/// death by the signal's default action before storage is flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_up_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(dir.path(), "early.log");
    launch.wait_serving = false;
    let mut server = launch.start();
    // Not server.sigterm(), which waits until the handler is installed.
    signal(server.pid(), "TERM");
    let exit = server.exited_within(PROMPT).await.expect("exit after SIGTERM");
    let log = server.log();
    assert!(exit.success(), "SIGTERM right after start-up: exit status {exit} (expected 0); log:\n{log}");
    assert!(log.contains("stopped"), "{log}");
}
