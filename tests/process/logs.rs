//! Logs of `convgroups serve`: JSON lines, one per RPC with
//! method/user/code/latency_us, start-up and shutdown lines, no tokens or
//! secrets even at trace level.

use std::time::Duration;

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::*;
use tonic::Code;

use crate::support::client::*;
use crate::support::http::*;
use crate::support::inproc::*;
use crate::support::process::*;
use crate::support::watch::{read_to_bookmark, watch_from};

use super::grpc_web::grpc_web_call;

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
