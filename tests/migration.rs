//! Data of the per-table sled layout opens with this version. The fixture
//! (tests/fixtures/layout-v1, made by its `make.sh` with the binary of
//! commit 80a93b1) holds a data directory and a backup written by that
//! version, and what it answered: the groups, the conversations and the
//! whole event log of two users whose changes interleave. This version must
//! give the same answers from the converted directory, from the restored
//! backup, and after an interrupted conversion; and go on from the same
//! revision.

mod support;

use std::path::{Path, PathBuf};

use support::cli::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/layout-v1");

/// The last revision in the fixture (make.sh makes 12 changes).
const LAST_REVISION: u64 = 12;

const USERS: [&str; 2] = ["alice", "bob"];

/// The tree names of the per-table layout.
const OLD_TREES: [&str; 7] = ["meta", "users", "convs", "members", "order", "events", "user_events"];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A copy of the fixture's data directory (the original stays untouched).
fn old_data_dir(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    copy_dir(&Path::new(FIXTURE).join("data"), &data);
    data
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join("expected").join(name)).expect("fixture file")
}

/// Tokens of both users, minted from the directory's secret.
fn tokens(data: &Path) -> Vec<(&'static str, String)> {
    USERS.iter().map(|user| (*user, token(data, user, false))).collect()
}

/// Whether `got` says everything `want` says: every field of `want` is
/// in `got` with the same value, arrays element by element. Fields added
/// to the API since the fixture was made (group ids, looks, addition
/// reasons) may come on top: the API only grows.
fn says_at_least(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => {
            want.iter().all(|(key, value)| got.get(key).is_some_and(|g| says_at_least(g, value)))
        }
        (Value::Array(got), Value::Array(want)) => {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| says_at_least(g, w))
        }
        _ => got == want,
    }
}

#[track_caller]
fn assert_says_at_least(got: &str, want: &str, what: &str) {
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("JSON");
    assert!(says_at_least(&parse(got), &parse(want)), "{what}:\n got {got}\nwant {want}");
}

/// Every answer the old version gave, given again by this server.
fn assert_same_answers(server: &Server, tokens: &[(&str, String)]) {
    for (user, token) in tokens {
        let cli = Cli::new(server, token);
        let groups = cli.run(&["groups", "list", "--json"]).ok().stdout.clone();
        assert_says_at_least(&groups, &expected(&format!("{user}-groups.json")), "groups");
        let conversations = cli.run(&["conversations", "list", "--all", "--json"]).ok().stdout.clone();
        assert_says_at_least(&conversations, &expected(&format!("{user}-conversations.json")), "conversations");
        let (events, status, stderr) = cli.watch(&["--from", "1", "--no-follow"]).finish();
        assert!(status.success(), "{stderr}");
        let want: Vec<String> = expected(&format!("{user}-watch.jsonl")).lines().map(str::to_string).collect();
        assert_eq!(events.len(), want.len(), "{user}'s event log replays as the old version wrote it");
        for (got, want) in events.iter().zip(&want) {
            assert_says_at_least(got, want, "an event the old version wrote");
        }
    }
}

/// Names of the sled trees in a stopped server's directory.
fn tree_names(data: &Path) -> Vec<String> {
    let db = sled::open(data.join("db")).expect("open the database");
    db.tree_names().iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect()
}

#[test]
fn a_data_directory_of_the_per_table_layout_is_converted_on_start() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = old_data_dir(tmp.path());
    assert!(tree_names(&data).iter().any(|n| n == "users"), "the fixture is of the per-table layout");
    let tokens = tokens(&data);

    let server = Server::start(&data);
    assert_same_answers(&server, &tokens);
    // Revisions go on from the old ones, and the new batch is in alice's log
    // right after her old ones.
    let alice = Cli::new(&server, &tokens[0].1);
    let run = alice.run(&["groups", "create", "New", "C2Cnew"]);
    let next = LAST_REVISION + 1;
    assert_eq!(run.ok().out(), format!(r#"Created group "New" with 1 conversation at revision {next}."#));
    let (events, status, stderr) = alice.watch(&["--from", "1", "--no-follow"]).finish();
    assert!(status.success(), "{stderr}");
    let old_events = expected("alice-watch.jsonl").lines().count() - 1;
    assert_eq!(events.len(), old_events + 2, "old batches, the new one, a bookmark: {events:?}");
    assert!(events[old_events].starts_with(&format!(r#"{{"events":{{"revision":"{next}""#)), "{events:?}");
    assert!(server.stop_status().success());

    let trees = tree_names(&data);
    for old in OLD_TREES {
        assert!(!trees.iter().any(|n| n == old), "{old} is dropped once converted: {trees:?}");
    }

    // Opened again: nothing to convert, everything kept.
    let server = Server::start(&data);
    let groups = alice_groups(&server, &tokens[0].1);
    assert!(groups.contains(r#""groupNames":["Research","Suppliers","New"]"#), "{groups}");
    assert!(groups.ends_with(&format!("\"revision\":\"{next}\"}}\n")), "{groups}");
    let bob = Cli::new(&server, &tokens[1].1);
    assert_says_at_least(
        &bob.run(&["groups", "list", "--json"]).ok().stdout.clone(),
        &expected("bob-groups.json"),
        "bob",
    );
    assert!(server.stop_status().success());
}

fn alice_groups(server: &Server, token: &str) -> String {
    Cli::new(server, token).run(&["groups", "list", "--json"]).ok().stdout.clone()
}

/// A conversion cut short (by a crash, say) leaves the per-table trees and
/// an unmarked new tree: it starts again from the old trees.
#[test]
fn an_interrupted_conversion_starts_again() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = old_data_dir(tmp.path());
    {
        let db = sled::open(data.join("db")).expect("open the database");
        let store = db.open_tree("store").expect("tree");
        // Half a conversion: a user record that is not the fixture's.
        store.insert(b"u\x05alice", b"not a record".to_vec()).expect("insert");
        store.insert(b"e\x00\x00\x00\x00\x00\x00\x00\x63", b"not a batch".to_vec()).expect("insert");
        db.flush().expect("flush");
    }
    let tokens = tokens(&data);
    let server = Server::start(&data);
    assert_same_answers(&server, &tokens);
    assert!(server.stop_status().success());
}

/// A backup written by the old version restores, and a backup of the
/// converted directory restores to the same answers again.
#[test]
fn a_backup_of_the_per_table_layout_restores() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let restored = tmp.path().join("restored");
    let backup = Path::new(FIXTURE).join("backup");
    execute(command(&["restore", "--in", backup.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()])).ok();
    let tokens = tokens(&restored);
    let server = Server::start(&restored);
    assert_same_answers(&server, &tokens);
    assert!(server.stop_status().success());

    let again = tmp.path().join("again.backup");
    execute(command(&["backup", "--data-dir", restored.to_str().unwrap(), "--out", again.to_str().unwrap()])).ok();
    let twice = tmp.path().join("twice");
    execute(command(&["restore", "--in", again.to_str().unwrap(), "--data-dir", twice.to_str().unwrap()])).ok();
    let server = Server::start(&twice);
    assert_same_answers(&server, &tokens);
    let alice = Cli::new(&server, &tokens[0].1);
    let run = alice.run(&["groups", "delete", "Suppliers"]);
    assert_eq!(run.ok().out(), format!(r#"Deleted group "Suppliers" at revision {}."#, LAST_REVISION + 1));
    assert!(server.stop_status().success());
}
