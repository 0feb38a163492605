//! The command-line client end to end: the real binary against a real
//! `convgroups serve` child process on 127.0.0.1, checking what people and
//! scripts see (tables, `--json`, errors and exit codes), `watch` output,
//! graceful SIGTERM, and a backup/restore round trip.

use crate::support::cli::*;

/// The JSON of one event batch starts like this (the time follows).
fn batch_prefix(revision: u64) -> String {
    format!(r#"{{"events":{{"revision":"{revision}","events":[{{"revision":"{revision}","userId":"alice","time":""#)
}

/// A fresh data directory with alice's token issued (before any server
/// starts, so the server loads the same secret).
fn setup() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let token = token(&data, "alice", false);
    (tmp, data, token)
}

/// Cells of a table row.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

/// Every groups subcommand: text and JSON output, per-item failures (exit 3)
/// and RPC errors (exit 1 with code, reason and message).
#[test]
fn groups_commands_print_tables_json_and_errors() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);

    assert_eq!(cli.run(&["groups", "list"]).ok().out(), "0 groups at revision 0");

    let run = cli.run(&["groups", "create", "Suppliers", "C2Cbob", "group_g1"]);
    assert_eq!(run.ok().out(), r#"Created group "Suppliers" with 2 conversations at revision 1."#);

    // A bad id fails alone: the group is created, the exit code says 3.
    let run = cli.run(&["groups", "create", "R&D", "c2c_carol", "bad-id", "--json"]);
    run.expect_code(3)
        .stdout_has(r#""group":{"groupId":"g1","name":"R&D","conversationCount":1,"unreadCount":"0","createTime":""#)
        .stdout_has(r#""successConversationIds":["C2Ccarol"],"failed":[{"conversationId":"bad-id","code":"CONVERSATION_RESULT_CODE_INVALID_CONVERSATION_ID","message":""#)
        .stdout_has(r#""tencentCode":0}],"revision":"2"}"#)
        .stderr_has("error: bad-id: INVALID_CONVERSATION_ID: ");
    assert_eq!(run.stdout.lines().count(), 1, "one JSON object: {run}");

    let run = cli.run(&["groups", "list"]);
    let lines: Vec<&str> = run.ok().out().lines().collect();
    assert_eq!(lines.len(), 4, "{run}");
    assert_eq!(cells(lines[0]), ["NAME", "ID", "CONVERSATIONS", "UNREAD", "CREATED", "LOOK"]);
    assert_eq!(cells(lines[1])[..4], ["Suppliers", "g0", "2", "0"]);
    assert!(cells(lines[1])[4].ends_with('Z'), "RFC 3339 creation time: {run}");
    assert_eq!(cells(lines[2])[..4], ["R&D", "g1", "1", "0"]);
    assert_eq!(lines[3], "2 groups at revision 2");
    // Columns line up.
    assert_eq!(lines[0].find("CONVERSATIONS"), lines[1].find('2'));

    let run = cli.run(&["groups", "list", "--json"]);
    let out = run.ok().out();
    assert!(out.starts_with(r#"{"groupNames":["Suppliers","R&D"],"groups":[{"groupId":"g0","name":"Suppliers","conversationCount":2,"unreadCount":"0","createTime":""#), "{run}");
    assert!(out.ends_with(r#""revision":"2"}"#), "{run}");

    let run = cli.run(&["groups", "add", "Suppliers", "C2Cdave", "C2Cbob"]);
    run.expect_code(3).stderr_has("error: C2Cbob: ALREADY_IN_GROUP: ");
    assert_eq!(run.out(), r#"Added 1 conversation to group "Suppliers" at revision 3."#);

    let run = cli.run(&["groups", "remove", "Suppliers", "GROUPg1"]);
    assert_eq!(run.ok().out(), r#"Removed 1 conversation from group "Suppliers" at revision 4."#);
    let run = cli.run(&["groups", "remove", "Suppliers", "GROUPg1", "--json"]);
    run.expect_code(3).stderr_has("error: GROUPg1: NOT_IN_GROUP: ");
    assert!(run.out().starts_with(r#"{"successConversationIds":[],"failed":[{"conversationId":"GROUPg1","code":"CONVERSATION_RESULT_CODE_NOT_IN_GROUP""#), "{run}");

    // A group by its id (ids stay the same across renames).
    let run = cli.run(&["groups", "rename", "--by-id", "g0", "Vendors"]);
    assert_eq!(run.ok().out(), r#"Renamed group g0 to "Vendors" at revision 5."#);

    let run = cli.run(&["groups", "reorder", "R&D", "Vendors", "--json"]);
    assert_eq!(run.ok().out(), r#"{"groupNames":["R&D","Vendors"],"groupIds":["g1","g0"],"revision":"6"}"#);
    let run = cli.run(&["groups", "reorder", "Vendors", "R&D"]);
    assert_eq!(run.ok().out(), r#"Group order: "Vendors", "R&D" at revision 7."#);

    // RPC errors: `error: <CODE> <REASON>: <message>`, exit 1, nothing on stdout.
    let run = cli.run(&["groups", "reorder", "Vendors"]);
    run.expect_code(1).stderr_has("error: FAILED_PRECONDITION GROUP_ORDER_MISMATCH: group_names: ");
    assert_eq!(run.stdout, "");
    cli.run(&["groups", "rename", "Nope", "X"])
        .expect_code(1)
        .stderr_has(r#"error: NOT_FOUND GROUP_NOT_FOUND: old_name: no group named "Nope""#);
    cli.run(&["groups", "create", "Vendors", "C2Cx"])
        .expect_code(1)
        .stderr_has("error: ALREADY_EXISTS GROUP_ALREADY_EXISTS: ");
    cli.run(&["groups", "add", "Vendors", "C2Cx", "--expected-revision", "1"]).expect_code(1).stderr_has(
        "error: ABORTED REVISION_MISMATCH: expected_revision: is 1, but the caller's current revision is 7",
    );
    let long = "x".repeat(40);
    cli.run(&["groups", "create", &long, "C2Cx"])
        .expect_code(1)
        .stderr_has("error: INVALID_ARGUMENT INVALID_GROUP_NAME: ");

    let run = cli.run(&["groups", "delete", "R&D", "--expected-revision", "7"]);
    assert_eq!(run.ok().out(), r#"Deleted group "R&D" at revision 8."#);
    let run = cli.run(&["groups", "delete", "R&D", "--json"]);
    run.expect_code(1).stderr_has("error: NOT_FOUND GROUP_NOT_FOUND: ");
    cli.run(&["groups", "delete", "--by-id", "g1"])
        .expect_code(1)
        .stderr_has("error: NOT_FOUND GROUP_NOT_FOUND: group_id: the user has no group with id g1");
    cli.run(&["groups", "add", "--by-id", "Vendors", "C2Cx"])
        .expect_code(1)
        .stderr_has("error: INVALID_ARGUMENT INVALID_GROUP_ID: group_id: ");

    let run = cli.run(&["groups", "list", "--json"]);
    assert!(
        run.ok().out().starts_with(
            r#"{"groupNames":["Vendors"],"groups":[{"groupId":"g0","name":"Vendors","conversationCount":2,"#
        ),
        "{run}"
    );
    let run = cli.run(&["groups", "add", "--by-id", "g0", "C2Ceve"]);
    assert_eq!(run.ok().out(), r#"Added 1 conversation to group g0 at revision 9."#);
    let run = cli.run(&["conversations", "list", "--group-id", "g0", "--json"]);
    let out = run.ok().out();
    assert!(out.contains(r#""conversationId":"C2Ceve""#) && out.contains(r#""conversationGroupIds":["g0"]"#), "{run}");

    // Usage errors are clap's: exit 2.
    cli.run(&["groups", "create", "OnlyAName"]).expect_code(2);
    cli.run(&["groups", "frobnicate"]).expect_code(2);

    assert!(server.stop_status().success());
}

/// Smart groups from the command line: `create` with rule flags and no
/// ids, `rule` to change and `--clear` it, the rule in `--json`, and the
/// usage errors of a rule flag where none fits.
#[test]
fn smart_groups_from_the_command_line() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["conversations", "upsert", "C2Cbob", "--unread", "2"]).ok();
    cli.run(&["conversations", "upsert", "C2Ccarol"]).ok();

    let run = cli.run(&["groups", "create", "Unread", "--match-unread", "true"]);
    assert_eq!(run.ok().out(), r#"Created group "Unread" with 0 conversations at revision 3."#);
    let run = cli.run(&["conversations", "list", "--group", "Unread", "--json"]);
    let out = run.ok().out();
    assert!(out.contains(r#""conversationId":"C2Cbob""#) && !out.contains("C2Ccarol"), "{run}");
    let run = cli.run(&["groups", "list", "--json"]);
    assert!(run.ok().out().contains(r#""rule":{"hasUnreadCount":true}"#), "{run}");

    let run = cli.run(&["groups", "rule", "--by-id", "g0", "--include", "c2c_carol"]);
    assert_eq!(run.ok().out(), "Group g0 has its rule and 1 conversation at revision 4.");
    let run = cli.run(&["groups", "remove", "Unread", "C2Ccarol"]);
    run.expect_code(3).stderr_has("error: C2Ccarol: IN_GROUP_BY_RULE: ");
    let run = cli.run(&["groups", "rule", "Unread", "--clear"]);
    assert_eq!(run.ok().out(), r#"Group "Unread" has no rule and 0 conversations at revision 5."#);

    // Usage errors: no ids and no rule; --clear with a rule flag; nothing.
    cli.run(&["groups", "create", "Empty"]).expect_code(2);
    cli.run(&["groups", "rule", "Unread", "--clear", "--match-muted", "true"]).expect_code(2);
    cli.run(&["groups", "rule", "Unread"]).expect_code(2);
    cli.run(&["groups", "rule", "Unread", "--match-type", "c2c", "--exclude", "nonsense"])
        .expect_code(1)
        .stderr_has("error: INVALID_ARGUMENT INVALID_RULE: rule: exclude_ids[0]");
    assert!(server.stop_status().success());
}

/// The order inside a group: `groups sort`, `move-in`, `pin` and `unpin`,
/// by name and `--by-id`, with text and JSON output and their errors.
#[test]
fn groups_order_commands_sort_move_and_pin() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "Fav", "C2Ca", "C2Cb", "C2Cc"]).ok();
    let listing = |cli: &Cli| -> Vec<String> {
        let run = cli.run(&["conversations", "list", "--group", "Fav", "--json"]);
        let value: serde_json::Value = serde_json::from_str(run.ok().out()).expect("JSON listing");
        value["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["conversationId"].as_str().unwrap().into())
            .collect()
    };

    // A move before the group is MANUAL: exit 1 with the reason.
    cli.run(&["groups", "move-in", "Fav", "C2Cc", "--to-start"])
        .expect_code(1)
        .stderr_has("error: FAILED_PRECONDITION SORT_MODE_NOT_MANUAL: sort_mode: ");
    let run = cli.run(&["groups", "sort", "Fav", "manual"]);
    assert_eq!(run.ok().out(), r#"Group "Fav" is sorted MANUAL at revision 2."#);

    let run = cli.run(&["groups", "move-in", "Fav", "C2Cc", "C2Cb", "--to-start"]);
    assert_eq!(run.ok().out(), r#"Moved 2 conversations in group "Fav" at revision 3."#);
    assert_eq!(listing(&cli), ["C2Cc", "C2Cb", "C2Ca"]);
    // By id, after an anchor; an id not in the group fails alone (exit 3).
    let run = cli.run(&["groups", "move-in", "g0", "C2Cc", "C2Cx", "--after", "C2Ca", "--by-id", "--json"]);
    run.expect_code(3).stderr_has("error: C2Cx: NOT_IN_GROUP: ");
    assert!(run.out().starts_with(r#"{"successConversationIds":["C2Cc"],"failed":[{"conversationId":"C2Cx""#), "{run}");
    assert_eq!(listing(&cli), ["C2Cb", "C2Ca", "C2Cc"]);
    cli.run(&["groups", "move-in", "Fav", "C2Ca", "--before", "C2Cnope"])
        .expect_code(1)
        .stderr_has("error: INVALID_ARGUMENT INVALID_PLACEMENT: before_conversation_id: ");
    // Exactly one placement.
    cli.run(&["groups", "move-in", "Fav", "C2Ca"]).expect_code(2);
    cli.run(&["groups", "move-in", "Fav", "C2Ca", "--to-start", "--to-end"]).expect_code(2);

    let run = cli.run(&["groups", "pin", "Fav", "C2Cc"]);
    assert_eq!(run.ok().out(), r#"Pinned 1 conversation in group "Fav" at revision 5; pinned: C2Cc."#);
    assert_eq!(listing(&cli), ["C2Cc", "C2Cb", "C2Ca"]);
    let run = cli.run(&["groups", "unpin", "g0", "C2Cc", "C2Cb", "--by-id", "--json"]);
    run.expect_code(3).stderr_has("error: C2Cb: NOT_PINNED_IN_GROUP: ");
    assert!(run.out().ends_with(r#""revision":"6","pinnedConversationIds":[]}"#), "{run}");

    let run = cli.run(&["groups", "sort", "g0", "alphabetical", "--by-id", "--json"]);
    let out = run.ok().out();
    assert!(out.contains(r#""sortMode":"GROUP_SORT_MODE_ALPHABETICAL","pinnedConversationIds":[]"#), "{run}");
    assert!(out.ends_with(r#""revision":"7"}"#), "{run}");
    cli.run(&["groups", "sort", "Fav", "sideways"]).expect_code(2);
    assert!(server.stop_status().success());
}

/// Tokens, the acting-user header, TLS flags and unreachable servers.
#[test]
fn auth_and_connection_errors_are_explained() {
    let (_tmp, data, token) = setup();
    let admin = crate::support::cli::token(&data, "ops", true);
    let bob = crate::support::cli::token(&data, "bob", false);
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "Mine", "C2Cbob"]).ok();

    // No token at all: said before any call.
    execute(command(&["groups", "list", "--addr", &server.uri()]))
        .expect_code(1)
        .stderr_has("error: no token: pass --token or set CONVGROUPS_TOKEN");
    // --token works as well as the environment variable.
    let listed = execute(command(&["groups", "list", "--addr", &server.uri(), "--token", &token]));
    assert_eq!(listed.ok().out().lines().last(), Some("1 group at revision 1"));
    execute(command(&["groups", "list", "--addr", &server.uri(), "--token", "not-a-jwt"]))
        .expect_code(1)
        .stderr_has("error: UNAUTHENTICATED UNAUTHENTICATED: ");

    // An admin token acts for the user named by --user; a user token may not.
    let as_admin = Cli { addr: server.uri(), token: admin };
    let run = as_admin.run(&["groups", "list", "--user", "alice", "--json"]);
    assert!(run.ok().out().starts_with(r#"{"groupNames":["Mine"]"#), "{run}");
    let as_bob = Cli { addr: server.uri(), token: bob };
    assert_eq!(as_bob.run(&["groups", "list"]).ok().out(), "0 groups at revision 0");
    as_bob
        .run(&["groups", "list", "--user", "alice"])
        .expect_code(1)
        .stderr_has("error: PERMISSION_DENIED PERMISSION_DENIED: ");

    // Nothing listening.
    let nowhere = format!("127.0.0.1:{}", free_port());
    execute(command(&["groups", "list", "--addr", &nowhere, "--token", &token, "--timeout", "3s"]))
        .expect_code(1)
        .stderr_has(&format!("error: cannot connect to http://{nowhere}: "));
    // TLS flags that cannot work are refused up front.
    execute(command(&["groups", "list", "--addr", "https://127.0.0.1:1", "--token", &token]))
        .expect_code(1)
        .stderr_has("https needs --ca-cert");
    execute(command(&["groups", "list", "--token", &token, "--ca-cert", "/nonexistent.pem"]))
        .expect_code(1)
        .stderr_has("--ca-cert needs an https:// address");

    assert!(server.stop_status().success());
}

/// conversations list/unread/upsert/delete: ordering, every filter, paging
/// by hand and with --all, JSON fields, per-item failures.
#[test]
fn conversations_commands_filter_page_and_update() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);

    let run =
        cli.run(&["conversations", "upsert", "C2Cbob", "--name", "Bob", "--unread", "3", "--pin", "--order-key", "10"]);
    assert_eq!(run.ok().out(), "Upserted 1 conversation at revision 1.");
    cli.run(&[
        "conversations",
        "upsert",
        "c2c_carol",
        "--name",
        "Carol \"C\"",
        "--order-key",
        "20",
        "--marks",
        "7,8",
        "--custom-data",
        "hi",
    ])
    .ok();
    cli.run(&["conversations", "upsert", "GROUPteam", "--unread", "2", "--recv-opt", "not-receive"]).ok();
    cli.run(&["conversations", "upsert", "nope", "--unread", "1"])
        .expect_code(3)
        .stderr_has("error: nope: INVALID_CONVERSATION_ID: ");
    cli.run(&["groups", "create", "Friends", "C2Cbob"]).ok();

    // Pinned first, then order key descending.
    let run = cli.run(&["conversations", "list"]);
    let lines: Vec<&str> = run.ok().out().lines().collect();
    assert_eq!(cells(lines[0]), ["CONVERSATION", "TYPE", "NAME", "UNREAD", "PINNED", "GROUPS"]);
    assert_eq!(cells(lines[1]), ["C2Cbob", "c2c", "Bob", "3", "yes", "Friends"]);
    assert_eq!(cells(lines[2]), ["C2Ccarol", "c2c", "Carol \"C\"", "0"]);
    assert_eq!(cells(lines[3]), ["GROUPteam", "group", "2"]);
    assert_eq!(lines[4], "3 conversations at revision 4");

    let run = cli.run(&["conversations", "list", "--id", "C2Ccarol", "--json"]);
    let prefix = concat!(
        r#"{"conversations":[{"conversationId":"C2Ccarol","type":"CONVERSATION_TYPE_C2C","userId":"carol","groupId":"","#,
        r#""showName":"Carol \"C\"","faceUrl":"","unreadCount":0,"isPinned":false,"orderKey":"20","recvOpt":"RECV_OPT_RECEIVE","#,
        r#""markList":["7","8"],"customData":"aGk=","hasGroupAtInfo":false,"conversationGroupList":[],"conversationGroupIds":[],"#,
        r#""updateTime":""#
    );
    assert!(run.ok().out().starts_with(prefix), "{run}");
    assert!(
        run.out().ends_with(r#"Z","registered":true}],"nextPageToken":"","isFinished":true,"revision":"4"}"#),
        "{run}"
    );

    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["conversations", "list"];
        all.extend_from_slice(args);
        let run = cli.run(&all);
        let lines: Vec<&str> = run.ok().out().lines().collect();
        lines[1..lines.len() - 1].iter().map(|l| cells(l)[0].to_string()).collect()
    };
    assert_eq!(ids(&["--group", "Friends"]), ["C2Cbob"]);
    assert_eq!(ids(&["--ungrouped"]), ["C2Ccarol", "GROUPteam"]);
    assert_eq!(ids(&["--unread"]), ["C2Cbob", "GROUPteam"]);
    assert_eq!(ids(&["--type", "group"]), ["GROUPteam"]);
    assert_eq!(ids(&["--type", "c2c", "--unread"]), ["C2Cbob"]);
    assert_eq!(ids(&["--mark", "7"]), ["C2Ccarol"]);
    assert_eq!(ids(&["--id", "GROUPteam", "--id", "C2Cbob"]), ["C2Cbob", "GROUPteam"]);
    let run = cli.run(&["conversations", "list", "--unread", "--group", "Friends", "--json"]);
    assert!(run.ok().out().starts_with(r#"{"conversations":[{"conversationId":"C2Cbob","#), "{run}");

    // Paging by hand: the footer names the token of the next page.
    let run = cli.run(&["conversations", "list", "--page-size", "1"]);
    let footer = run.ok().out().lines().last().unwrap().to_string();
    assert!(footer.starts_with("1 conversation at revision 4; more with --page-token "), "{run}");
    let page_token = footer.split("--page-token ").nth(1).unwrap().split(' ').next().unwrap();
    assert_eq!(ids(&["--page-size", "1", "--page-token", page_token]), ["C2Ccarol"]);
    // --all follows the tokens to the end.
    assert_eq!(ids(&["--page-size", "1", "--all"]), ["C2Cbob", "C2Ccarol", "GROUPteam"]);
    let run = cli.run(&["conversations", "list", "--page-size", "2", "--all", "--json"]);
    let out = run.ok().out();
    assert_eq!(out.matches(r#"{"conversationId":"#).count(), 3, "{run}");
    assert!(out.ends_with(r#"],"nextPageToken":"","isFinished":true,"revision":"4"}"#), "{run}");

    // Muted conversations do not count.
    assert_eq!(cli.run(&["conversations", "unread"]).ok().out(), "3");
    assert_eq!(cli.run(&["conversations", "unread", "--type", "group"]).ok().out(), "0");
    assert_eq!(
        cli.run(&["conversations", "unread", "--group", "Friends", "--json"]).ok().out(),
        r#"{"unreadCount":"3","revision":"4"}"#
    );
    cli.run(&["conversations", "list", "--group", "Nope"])
        .expect_code(1)
        .stderr_has(r#"error: NOT_FOUND GROUP_NOT_FOUND: filter.group_name: no group named "Nope""#);

    let run = cli.run(&["conversations", "upsert", "C2Cbob", "--unpin", "--clear-marks", "--json"]);
    assert_eq!(run.ok().out(), r#"{"successConversationIds":["C2Cbob"],"failed":[],"revision":"5"}"#);
    let run = cli.run(&["conversations", "delete", "C2Ccarol", "C2Cnobody"]);
    run.expect_code(3).stderr_has("error: C2Cnobody: CONVERSATION_NOT_FOUND: ");
    assert_eq!(run.out(), "Deleted 1 conversation at revision 6.");
    assert_eq!(ids(&[]), ["C2Cbob", "GROUPteam"]);

    cli.run(&["conversations", "upsert", "C2Cbob", "--pin", "--unpin"]).expect_code(2);
    cli.run(&["conversations", "list", "--group", "A", "--ungrouped"]).expect_code(2);

    assert!(server.stop_status().success());
}

/// `watch --snapshot` prints the snapshot and a bookmark, then the live
/// event of another CLI call; filters apply; replay and bad revisions.
#[test]
fn watch_prints_snapshot_bookmark_and_live_events() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "G", "C2Cbob"]).ok();

    let mut watch = cli.watch(&["--snapshot"]);
    assert_eq!(
        watch.next_line(),
        r#"{"snapshot":{"revision":"1","groups":[{"groupId":"g0","name":"G","conversationIds":["C2Cbob"],"icon":"","color":"GROUP_COLOR_UNSPECIFIED","collapsed":false,"customData":""}]}}"#
    );
    assert_eq!(watch.next_line(), r#"{"bookmark":{"revision":"1"}}"#);
    let mut renames = cli.watch(&["--type", "group-renamed"]);
    assert_eq!(renames.next_line(), r#"{"bookmark":{"revision":"1"}}"#);
    let mut by_id = cli.watch(&["--group-id", "g0", "--type", "group-renamed"]);
    assert_eq!(by_id.next_line(), r#"{"bookmark":{"revision":"1"}}"#);

    cli.run(&["groups", "add", "G", "C2Ccarol"]).ok();
    let line = watch.next_line();
    assert!(line.starts_with(&batch_prefix(2)), "{line}");
    assert!(
        line.ends_with(
            r#"Z","groupNames":["G"],"groupIds":["g0"],"conversationsAddedToGroup":{"groupId":"g0","groupName":"G","conversationIds":["C2Ccarol"],"reason":"ADDITION_REASON_USER_REQUEST"}}]}}"#
        ),
        "{line}"
    );
    cli.run(&["groups", "rename", "G", "H"]).ok();
    let line = watch.next_line();
    assert!(line.starts_with(&batch_prefix(3)), "{line}");
    assert!(
        line.ends_with(
            r#""groupNames":["H"],"groupIds":["g0"],"groupRenamed":{"groupId":"g0","oldName":"G","newName":"H"}}]}}"#
        ),
        "{line}"
    );
    // The filtered watchers skipped the add.
    assert_eq!(renames.next_line(), line);
    assert_eq!(by_id.next_line(), line);
    drop(by_id);
    drop(watch);
    drop(renames);

    // Replay from a revision, ending at the bookmark with --no-follow.
    let (lines, status, stderr) = cli.watch(&["--from", "2", "--no-follow"]).finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with(&batch_prefix(2)) && lines[1].starts_with(&batch_prefix(3)), "{lines:?}");
    assert_eq!(lines[2], r#"{"bookmark":{"revision":"3"}}"#);

    // Ctrl-C ends a watch quietly, with status 0.
    let mut watch = cli.watch(&[]);
    assert_eq!(watch.next_line(), r#"{"bookmark":{"revision":"3"}}"#);
    watch.signal("INT");
    let (lines, status, stderr) = watch.finish();
    assert!(lines.is_empty() && status.success() && stderr.is_empty(), "{lines:?} {status} {stderr}");

    let (lines, status, stderr) = cli.watch(&["--from", "99"]).finish();
    assert_eq!(status.code(), Some(1));
    assert!(lines.is_empty());
    assert!(stderr.starts_with("error: OUT_OF_RANGE REVISION_IN_FUTURE: start_revision: 99 is newer"), "{stderr}");

    assert!(server.stop_status().success());
}

/// SIGTERM stops the server with status 0 and ends watch streams with the
/// revision to resume from; a backup of the stopped server restores into a
/// new directory with the same groups, members, revisions, event log and
/// auth secret.
#[test]
fn sigterm_then_backup_and_restore_round_trip() {
    let (tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "Suppliers", "C2Cbob", "GROUPacme"]).ok();
    cli.run(&["groups", "create", "R&D", "C2Ccarol"]).ok();
    cli.run(&["conversations", "upsert", "C2Cbob", "--name", "Bob", "--unread", "4", "--pin"]).ok();
    cli.run(&["groups", "add", "R&D", "C2Cbob"]).ok();
    cli.run(&["groups", "remove", "Suppliers", "GROUPacme"]).ok();
    cli.run(&["groups", "rename", "R&D", "Research"]).ok();
    cli.run(&["groups", "reorder", "Research", "Suppliers"]).ok();
    cli.run(&["conversations", "delete", "C2Ccarol"]).ok();
    let revision = 8;

    let groups_before = cli.run(&["groups", "list", "--json"]).ok().stdout.clone();
    assert!(groups_before.contains(&format!(r#""revision":"{revision}""#)), "{groups_before}");
    let conversations_before = cli.run(&["conversations", "list", "--all", "--json"]).ok().stdout.clone();
    let (events_before, status, stderr) = cli.watch(&["--from", "1", "--no-follow"]).finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(events_before.len(), revision + 1, "one batch per revision, then a bookmark: {events_before:?}");

    // A backup needs the server stopped (sled's lock says so).
    let backup = tmp.path().join("convgroups.backup");
    let backup_arg = backup.to_str().unwrap();
    execute(command(&["backup", "--data-dir", data.to_str().unwrap(), "--out", backup_arg]))
        .expect_code(1)
        .stderr_has("error: --data-dir: cannot open the database in");

    // SIGTERM: watchers are told where to resume, the server exits 0.
    let mut live = cli.watch(&[]);
    assert_eq!(live.next_line(), format!(r#"{{"bookmark":{{"revision":"{revision}"}}}}"#));
    let log = server.log();
    let status = server.stop_status();
    assert!(status.success(), "the server exited with {status} after SIGTERM:\n{log}");
    let (lines, status, stderr) = live.finish();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: UNAVAILABLE SHUTTING_DOWN: "), "{stderr}");
    assert!(stderr.contains(&format!("resume with: convgroups watch --from {}", revision + 1)), "{stderr}");

    let backed_up = execute(command(&["backup", "--data-dir", data.to_str().unwrap(), "--out", backup_arg, "--json"]));
    let summary = backed_up.ok().out().to_string();
    assert!(summary.starts_with(r#"{"trees":"#) && summary.contains(r#","entries":"#), "{backed_up}");

    let restored = tmp.path().join("restored");
    let restore =
        execute(command(&["restore", "--in", backup_arg, "--data-dir", restored.to_str().unwrap(), "--json"]));
    assert_eq!(restore.ok().out(), summary, "restore moves what backup wrote");

    // The old token still works: the secret came back too.
    let server = Server::start(&restored);
    let cli = Cli::new(&server, &token);
    assert_eq!(cli.run(&["groups", "list", "--json"]).ok().stdout, groups_before);
    assert_eq!(cli.run(&["conversations", "list", "--all", "--json"]).ok().stdout, conversations_before);
    let (events_after, status, stderr) = cli.watch(&["--from", "1", "--no-follow"]).finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(events_after, events_before, "the event log replays identically");
    // Revisions continue where they were.
    let run = cli.run(&["groups", "delete", "Suppliers"]);
    assert_eq!(run.ok().out(), format!(r#"Deleted group "Suppliers" at revision {}."#, revision + 1));

    let status = server.stop_status();
    assert!(status.success(), "{status}");
}

/// restore refuses a directory that holds a database and a damaged or
/// foreign file, restoring nothing; backup refuses a directory without a
/// database.
#[test]
fn restore_refuses_non_empty_target_and_damaged_files() {
    let (tmp, data, token) = setup();
    let server = Server::start(&data);
    Cli::new(&server, &token).run(&["groups", "create", "G", "C2Cbob"]).ok();
    assert!(server.stop_status().success());

    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let backup = path("good.backup");
    execute(command(&["backup", "--data-dir", data.to_str().unwrap(), "--out", &backup])).ok();
    let bytes = std::fs::read(&backup).unwrap();

    execute(command(&["restore", "--in", &backup, "--data-dir", data.to_str().unwrap()]))
        .expect_code(1)
        .stderr_has("error: --data-dir: ")
        .stderr_has("already holds a database; restore into an empty directory");

    // One flipped byte in the middle.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(path("flipped.backup"), &flipped).unwrap();
    // The last byte before the end record (kind, length, 8-byte checksum):
    // payload, so only the checksum can notice.
    let mut payload = bytes.clone();
    let end_record = 1 + 4 + 8;
    payload[bytes.len() - end_record - 1] ^= 0x01;
    std::fs::write(path("payload.backup"), &payload).unwrap();
    // The last byte of the checksum itself.
    let mut bad_sum = bytes.clone();
    *bad_sum.last_mut().unwrap() ^= 0x80;
    std::fs::write(path("bad-sum.backup"), &bad_sum).unwrap();
    std::fs::write(path("short.backup"), &bytes[..bytes.len() - 20]).unwrap();
    std::fs::write(path("foreign.backup"), b"hello, world\n").unwrap();

    let target = path("target");
    for (file, reason) in [
        // Depending on where it lands, a flip reads as damage or truncation
        // (a length field); either way nothing is restored.
        ("flipped.backup", ""),
        ("payload.backup", "checksum mismatch: the file is damaged"),
        ("bad-sum.backup", "checksum mismatch: the file is damaged"),
        ("short.backup", "truncated"),
        ("foreign.backup", "not a convgroups backup"),
    ] {
        let refused = execute(command(&["restore", "--in", &path(file), "--data-dir", &target]));
        refused.expect_code(1).stderr_has(&format!("error: --in: {}: {reason}", path(file)));
        assert_eq!(refused.stdout, "");
        assert!(!tmp.path().join("target").join("db").exists(), "a refused restore writes nothing: {refused}");
    }
    execute(command(&["restore", "--in", &backup, "--data-dir", &target])).ok();

    execute(command(&["backup", "--data-dir", &path("empty"), "--out", &path("x.backup")]))
        .expect_code(1)
        .stderr_has("holds no convgroups database");
}

/// With --ca-cert the client verifies the server's certificate over TLS.
#[test]
fn tls_with_ca_cert() {
    let (tmp, data, token) = setup();
    let write = |name: &str, text: String| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let ca = new_ca();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_pem = write("ca.pem", ca.pem());
    let other_ca_pem = write("other-ca.pem", new_ca().pem());
    let cert = write("cert.pem", leaf.pem());
    let key = write("key.pem", leaf_key.serialize_pem());

    let server = Server::start_with(&data, &["--tls-cert", &cert, "--tls-key", &key]);
    let https = format!("https://127.0.0.1:{}", server.port);
    let cli = Cli { addr: https.clone(), token };
    assert_eq!(cli.run(&["groups", "list", "--ca-cert", &ca_pem]).ok().out(), "0 groups at revision 0");
    // The certificate's DNS name instead of the address (connecting to
    // `localhost` could reach ::1, and tests only use 127.0.0.1).
    let run = cli.run(&["groups", "list", "--ca-cert", &ca_pem, "--tls-server-name", "localhost"]);
    assert_eq!(run.ok().out(), "0 groups at revision 0");
    cli.run(&["groups", "list", "--ca-cert", &other_ca_pem])
        .expect_code(1)
        .stderr_has(&format!("error: cannot connect to {https}: "));
    cli.run(&["groups", "list"]).expect_code(1).stderr_has("https needs --ca-cert");

    assert!(server.stop_status().success());
}

fn new_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "convgroups test CA");
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// The groups and conversations a user sees, without the revisions (etcd
/// numbers revisions itself, so a restore into etcd keeps the state, not its
/// revision numbers).
fn state_without_revisions(cli: &Cli) -> (serde_json::Value, serde_json::Value) {
    fn strip(mut value: serde_json::Value) -> serde_json::Value {
        match &mut value {
            serde_json::Value::Object(map) => {
                map.remove("revision");
                for item in map.values_mut() {
                    *item = strip(item.take());
                }
            }
            serde_json::Value::Array(items) => {
                for item in items.iter_mut() {
                    *item = strip(item.take());
                }
            }
            _ => {}
        }
        value
    }
    let parse = |args: &[&str]| -> serde_json::Value {
        let run = cli.run(args);
        strip(serde_json::from_str(run.ok().out()).unwrap_or_else(|e| panic!("{e}: {run}")))
    };
    (parse(&["groups", "list", "--json"]), parse(&["conversations", "list", "--all", "--json"]))
}

/// Moving a deployment between backends: a backup of a sled server restores
/// into an empty etcd prefix, where replicas serve the same groups and
/// conversations to the same tokens (the event log starts afresh: an old
/// revision is REVISION_COMPACTED); and a backup of that etcd deployment
/// restores into a sled directory with its revisions.
#[test]
fn a_sled_backup_restores_into_etcd_and_an_etcd_backup_back_into_sled() {
    let own_cluster =
        crate::support::etcd::shared_endpoints().is_none().then(|| crate::support::etcd::EtcdCluster::start(1));
    let endpoints =
        own_cluster.as_ref().map(|c| c.endpoints_csv()).or_else(crate::support::etcd::shared_endpoints).unwrap();
    let prefix = format!("/cli-move-{:08x}/", rand::random::<u32>());
    let etcd = ["--backend", "etcd", "--etcd-endpoints", &endpoints, "--etcd-prefix", &prefix];

    let (tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "Suppliers", "C2Cbob", "GROUPacme"]).ok();
    cli.run(&["groups", "create", "R&D", "C2Ccarol"]).ok();
    cli.run(&["conversations", "upsert", "C2Cbob", "--name", "Bob", "--unread", "4", "--pin"]).ok();
    cli.run(&["groups", "rename", "R&D", "Research"]).ok();
    cli.run(&["groups", "reorder", "Research", "Suppliers"]).ok();
    let on_sled = state_without_revisions(&cli);
    assert!(
        on_sled.0.to_string().contains(r#""Research""#) && on_sled.1.to_string().contains(r#""Bob""#),
        "{on_sled:?}"
    );
    assert!(server.stop_status().success());

    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (from_sled, etcd_dir) = (path("sled.backup"), path("etcd-secret"));
    execute(command(&["backup", "--data-dir", data.to_str().unwrap(), "--out", &from_sled])).ok();
    let mut restore = vec!["restore", "--in", &from_sled, "--data-dir", &etcd_dir];
    restore.extend_from_slice(&etcd);
    execute(command(&restore)).ok();
    // Restoring twice would mix two deployments: refused, nothing written.
    execute(command(&restore)).expect_code(1).stderr_has("--etcd-prefix");

    let replica = Server::start_with(std::path::Path::new(&etcd_dir), &etcd);
    let cli = Cli::new(&replica, &token);
    assert_eq!(state_without_revisions(&cli), on_sled, "the etcd deployment serves what sled held");
    let (_, status, stderr) = cli.watch(&["--from", "1", "--no-follow"]).finish();
    assert!(!status.success() && stderr.contains("REVISION_COMPACTED"), "{status}: {stderr}");
    cli.run(&["groups", "add", "Suppliers", "C2Cdave"]).ok();
    let on_etcd = cli.run(&["groups", "list", "--json"]).ok().stdout.clone();
    let conversations_on_etcd = cli.run(&["conversations", "list", "--all", "--json"]).ok().stdout.clone();

    // And back: the etcd backup restores into sled with etcd's revisions.
    let (from_etcd, sled_again) = (path("etcd.backup"), tmp.path().join("sled-again"));
    let mut backup = vec!["backup", "--data-dir", &etcd_dir, "--out", &from_etcd];
    backup.extend_from_slice(&etcd);
    execute(command(&backup)).ok();
    assert!(replica.stop_status().success());
    execute(command(&["restore", "--in", &from_etcd, "--data-dir", sled_again.to_str().unwrap()])).ok();
    let server = Server::start(&sled_again);
    let cli = Cli::new(&server, &token);
    assert_eq!(cli.run(&["groups", "list", "--json"]).ok().stdout, on_etcd);
    assert_eq!(cli.run(&["conversations", "list", "--all", "--json"]).ok().stdout, conversations_on_etcd);
    assert!(server.stop_status().success());
}

/// `groups mark-read`, `groups mute` and `groups move` (issue #14 item 5):
/// text and JSON output, `--by-id`, and a move's per-item failure (exit 3).
#[test]
fn groups_actions_mark_read_mute_and_move() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "Work", "C2Ca", "C2Cb"]).ok();
    cli.run(&["groups", "create", "Home", "C2Cc"]).ok();
    cli.run(&["conversations", "upsert", "C2Ca", "--unread", "4"]).ok();

    let run = cli.run(&["groups", "mark-read", "Work"]);
    assert_eq!(run.ok().out(), r#"Marked 1 conversation of group "Work" read at revision 4."#);
    let run = cli.run(&["groups", "mark-read", "g0", "--by-id", "--json"]);
    assert_eq!(run.ok().out(), r#"{"changedConversationIds":[],"revision":"4"}"#);

    let run = cli.run(&["groups", "mute", "g0", "--by-id", "--recv-opt", "not-receive", "--new-members", "--json"]);
    let out = run.ok().out();
    assert!(
        out.starts_with(r#"{"changedConversationIds":["C2Ca","C2Cb"],"group":{"groupId":"g0","name":"Work""#),
        "{run}"
    );
    assert!(out.contains(r#""newMemberRecvOpt":"RECV_OPT_NOT_RECEIVE","#), "{run}");
    assert!(out.ends_with(r#"},"revision":"5"}"#), "{run}");

    let run = cli.run(&["groups", "move", "C2Ca", "C2Cz", "--from", "Work", "--to", "Home"]);
    run.expect_code(3).stderr_has("error: C2Cz: NOT_IN_GROUP: ");
    assert_eq!(
        run.out(),
        "Moved 1 conversation out of group \"Work\".\nAdded 1 conversation to group \"Home\".\nRevision 6."
    );
    let run = cli.run(&["groups", "move", "C2Cq", "--to", "g0", "--to", "g1", "--by-id", "--json"]);
    assert_eq!(
        run.ok().out(),
        r#"{"targets":[{"groupName":"Work","groupId":"g0","addedConversationIds":["C2Cq"],"failed":[]},{"groupName":"Home","groupId":"g1","addedConversationIds":["C2Cq"],"failed":[]}],"movedConversationIds":[],"failed":[],"revision":"7"}"#
    );
    // Work gave C2Cq its remembered option.
    let run = cli.run(&["conversations", "list", "--json"]);
    assert!(run.ok().out().contains(r#""recvOpt":"RECV_OPT_NOT_RECEIVE","markList":[],"customData":"","hasGroupAtInfo":false,"conversationGroupList":["Work","Home"]"#), "{run}");

    let run = cli.run(&["groups", "move", "C2Cb", "--from", "Work", "--to", "Work"]);
    run.expect_code(1).stderr_has("error: INVALID_ARGUMENT INVALID_ARGUMENT: to: ");
    let run = cli.run(&["groups", "mute", "Nope"]);
    run.expect_code(1).stderr_has("error: NOT_FOUND GROUP_NOT_FOUND: group_name: ");
}

/// `groups update`: only the flags given go in the update mask (the other
/// fields keep their values), `--clear-icon` clears, `--by-id` names the
/// group by id; `groups list` shows the look; no flag at all is a usage
/// error; a bad value is the server's error.
#[test]
fn groups_update_sends_only_the_given_fields() {
    let (_tmp, data, token) = setup();
    let server = Server::start(&data);
    let cli = Cli::new(&server, &token);
    cli.run(&["groups", "create", "Suppliers", "C2Cbob"]).ok();

    let run = cli.run(&[
        "groups",
        "update",
        "Suppliers",
        "--icon",
        "🚚",
        "--color",
        "orange",
        "--custom-data-base64",
        "AQI=",
    ]);
    assert_eq!(run.ok().out(), r#"Updated icon, color, custom_data of group "Suppliers" at revision 2."#);
    let run = cli.run(&["groups", "update", "g0", "--by-id", "--collapsed", "true", "--json"]);
    run.ok()
        .stdout_has(r#""name":"Suppliers","#)
        .stdout_has(r#""icon":"🚚","color":"GROUP_COLOR_ORANGE","collapsed":true,"customData":"AQI=","#)
        .stdout_has(r#""revision":"3"}"#);
    let run = cli.run(&["groups", "list"]);
    let out = run.ok().out();
    assert!(out.lines().nth(1).is_some_and(|row| row.ends_with("🚚 orange collapsed")), "{run}");

    let run = cli.run(&["groups", "update", "Suppliers", "--clear-icon", "--color", "none", "--json"]);
    run.ok().stdout_has(r#""icon":"","color":"GROUP_COLOR_UNSPECIFIED","collapsed":true,"customData":"AQI=","#);

    cli.run(&["groups", "update", "Suppliers"]).expect_code(2);
    cli.run(&["groups", "update", "Suppliers", "--icon", "way too long for an icon"])
        .expect_code(1)
        .stderr_has("error: INVALID_ARGUMENT INVALID_GROUP_ICON: look.icon: ");
    cli.run(&["groups", "update", "Suppliers", "--custom-data-base64", "not base64!"])
        .expect_code(1)
        .stderr_has("--custom-data-base64");
}
