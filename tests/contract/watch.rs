//! WatchGroupEvents (contract §4 "Events and WatchGroupEvents"): where a
//! stream starts, what each batch carries, filters, tenancy, retention and
//! OUT_OF_RANGE, idle bookmarks, shutdown and resume, resource cleanup and
//! watcher limits. The randomised and load tests are in
//! tests/watch_guarantees.rs.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::config::Config;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::*;
use tonic::Code;

/// The one event of a single-event batch.
#[track_caller]
fn only(batch: &EventBatch) -> Ev {
    assert_eq!(batch.events.len(), 1, "expected exactly one event in {batch:?}");
    without_group_id(batch.events[0].kind.clone().expect("kind"))
}

fn created(name: &str, ids: &[&str]) -> Ev {
    Ev::GroupCreated(GroupCreated { group_name: name.into(), conversation_ids: strings(ids), ..Default::default() })
}

fn added(name: &str, ids: &[&str]) -> Ev {
    Ev::ConversationsAddedToGroup(ConversationsAddedToGroup {
        group_name: name.into(),
        conversation_ids: strings(ids),
        reason: AdditionReason::UserRequest as i32,
        ..Default::default()
    })
}

fn removed(name: &str, ids: &[&str], reason: RemovalReason) -> Ev {
    Ev::ConversationsDeletedFromGroup(ConversationsDeletedFromGroup {
        group_name: name.into(),
        conversation_ids: strings(ids),
        reason: reason as i32,
        ..Default::default()
    })
}

fn renamed(old: &str, new: &str) -> Ev {
    Ev::GroupRenamed(GroupRenamed { old_name: old.into(), new_name: new.into(), ..Default::default() })
}

fn reordered(names: &[&str]) -> Ev {
    Ev::GroupsReordered(GroupsReordered { group_names: strings(names) })
}

fn changed(ids: &[&str]) -> Ev {
    Ev::ConversationsChanged(ConversationsChanged { conversation_ids: strings(ids) })
}

fn conversations_deleted(ids: &[&str]) -> Ev {
    Ev::ConversationsDeleted(ConversationsDeleted { conversation_ids: strings(ids) })
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

/// (revision, payloads) of batches, for comparing with an expected list.
fn summary(batches: &[EventBatch]) -> Vec<(u64, Vec<Ev>)> {
    batches.iter().map(|b| (b.revision, kinds(b))).collect()
}

// ---------------------------------------------------------------------------
// Where a stream starts
// ---------------------------------------------------------------------------

/// start_revision N > 0 replays the caller's retained batches with revision
/// >= N (N itself included, other users' revisions skipped), then one
/// bookmark at the current revision, then live batches; replayed and live
/// copies of a batch are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_n_includes_n_then_a_bookmark_then_live_batches() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let r1 = create(&mut alice, "A", &["C2Ca"]).await.unwrap().revision;
    let r2 = create(&mut bob, "B", &["C2Cb"]).await.unwrap().revision;
    let r3 = add(&mut alice, "A", &["C2Cc"]).await.unwrap().revision;
    let r4 = add(&mut bob, "B", &["C2Cd"]).await.unwrap().revision;
    let r5 = remove(&mut alice, "A", &["C2Ca"]).await.unwrap().revision;
    assert_increasing(&[r1, r2, r3, r4, r5], "revisions are global: one sequence for both users");

    // From an alice revision: that revision first.
    let mut from_r3 = open_ok(&mut alice, from(r3)).await;
    let b3 = expect_batch(&mut from_r3).await;
    assert_eq!(b3.revision, r3, "replay from N starts with N");
    assert_eq!(only(&b3), added("A", &["C2Cc"]));
    let b5 = expect_batch(&mut from_r3).await;
    assert_eq!(b5.revision, r5);
    assert_eq!(only(&b5), removed("A", &["C2Ca"], RemovalReason::UserRequest));
    // After the replay: a bookmark at the current revision.
    assert_bookmark_now(&s, expect_bookmark(&mut from_r3).await, r5).await;

    // From a bob revision: alice's next revision after it.
    let mut from_r2 = open_ok(&mut alice, from(r2)).await;
    assert_eq!(expect_batch(&mut from_r2).await, b3, "the same batch, replayed by another stream");
    assert_eq!(expect_batch(&mut from_r2).await, b5);
    assert_bookmark_now(&s, expect_bookmark(&mut from_r2).await, r5).await;

    // From the last revision, and from current + 1 (nothing to replay).
    let mut from_r5 = open_ok(&mut alice, from(r5)).await;
    assert_eq!(expect_batch(&mut from_r5).await, b5);
    assert_bookmark_now(&s, expect_bookmark(&mut from_r5).await, r5).await;
    let mut from_next = open_ok(&mut alice, from(r5 + 1)).await;
    // current + 1 (or less, on etcd: see assert_current): only the bookmark.
    assert_bookmark_now(&s, expect_bookmark(&mut from_next).await, r5).await;

    // Live: bob's change is not alice's; alice's next change reaches every
    // open stream, right after its bookmark.
    let r6 = delete_group(&mut bob, "B").await.unwrap().revision;
    let r7 = rename(&mut alice, "A", "Alpha").await.unwrap().revision;
    assert_increasing(&[r5, r6, r7], "later revisions");
    let mut live = Vec::new();
    for stream in [&mut from_r3, &mut from_r2, &mut from_r5, &mut from_next] {
        let batch = expect_batch(stream).await;
        assert_eq!(batch.revision, r7);
        assert_eq!(only(&batch), renamed("A", "Alpha"));
        live.push(batch);
    }
    assert!(live.windows(2).all(|w| w[0] == w[1]), "every stream gets the same live batch");
    let mut replay = open_ok(&mut alice, from(r6)).await;
    assert_eq!(expect_batch(&mut replay).await, live[0], "the live batch equals its stored copy");
    assert_bookmark_now(&s, expect_bookmark(&mut replay).await, r7).await;
}

/// start_revision 0 starts now: first a bookmark at the server's current
/// revision (nothing replayed), then only later batches; with
/// send_snapshot, first a snapshot of the caller's groups (display order,
/// members) at that revision, then the bookmark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_revision_zero_starts_now_with_a_bookmark_or_a_snapshot() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");

    // Nothing written yet: the current revision is 0 on sled (and on etcd
    // whatever the cluster is at; see assert_current).
    let mut empty = open_ok(&mut alice, from(0)).await;
    let empty_at = expect_bookmark(&mut empty).await;
    assert_bookmark_now(&s, empty_at, 0).await;
    let mut empty_snapshot = open_ok(&mut alice, WatchGroupEventsRequest { send_snapshot: true, ..from(0) }).await;
    let Msg::Snapshot(snapshot) = next_msg(&mut empty_snapshot).await else {
        panic!("send_snapshot: a Snapshot comes first")
    };
    assert_eq!(snapshot.groups, vec![], "a user with no groups: an empty snapshot");
    assert_current("the empty snapshot's revision", snapshot.revision, empty_at);
    assert_eq!(expect_bookmark(&mut empty_snapshot).await, snapshot.revision, "after the snapshot: at its revision");

    let mut mine = Vec::new();
    mine.push(create(&mut alice, "Work", &["C2Cw1", "C2Cw2"]).await.unwrap().revision);
    mine.push(create(&mut alice, "Home", &["C2Ch1"]).await.unwrap().revision);
    mine.push(reorder(&mut alice, &["Home", "Work"]).await.unwrap().revision);
    let last = create(&mut bob, "Elsewhere", &["C2Cb"]).await.unwrap().revision;
    assert!(snapshot.revision < mine[0], "the writes come after the empty snapshot");
    assert_increasing(&[mine[0], mine[1], mine[2], last], "the writes, one after the other");
    published_revision(&s, last).await;

    let mut now = open_ok(&mut alice, from(0)).await;
    // start 0: a bookmark at the current (global) revision.
    assert_bookmark_now(&s, expect_bookmark(&mut now).await, last).await;
    let mut snap = open_ok(&mut alice, WatchGroupEventsRequest { send_snapshot: true, ..from(0) }).await;
    let Msg::Snapshot(snapshot) = next_msg(&mut snap).await else { panic!("send_snapshot: a Snapshot comes first") };
    assert_current("the snapshot's revision", snapshot.revision, last);
    let groups: Vec<(String, BTreeSet<String>)> =
        snapshot.groups.iter().map(|g| (g.name.clone(), g.conversation_ids.iter().cloned().collect())).collect();
    let expected: Vec<(String, BTreeSet<String>)> = vec![
        ("Home".into(), ["C2Ch1".to_string()].into()),
        ("Work".into(), ["C2Cw1".to_string(), "C2Cw2".to_string()].into()),
    ];
    assert_eq!(groups, expected, "snapshot: alice's groups only, in display order, with their members");
    assert_eq!(expect_bookmark(&mut snap).await, snapshot.revision, "after the snapshot: a bookmark at its revision");

    // Nothing is replayed on the streams opened now: their next message is
    // alice's next change.
    let next = add(&mut alice, "Work", &["C2Cw3"]).await.unwrap().revision;
    for stream in [&mut now, &mut snap] {
        let batch = expect_batch(stream).await;
        assert_eq!(batch.revision, next);
        assert_eq!(only(&batch), added("Work", &["C2Cw3"]));
    }
    // The streams opened on the empty server got alice's changes live.
    for stream in [&mut empty, &mut empty_snapshot] {
        let got = read_through(stream, next).await;
        let expected = [mine.as_slice(), &[next]].concat();
        assert_eq!(revisions(&got), expected, "live since the start: alice's changes only");
    }
}

/// A stream opened at 0 before any change receives every later change
/// live, in order, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_at_zero_receives_every_later_change_live() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let before = create(&mut alice, "Before", &["C2Cx"]).await.unwrap().revision;
    let mut stream = open_ok(&mut alice, from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut stream).await, before).await;
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(add(&mut alice, "Before", &[&format!("C2Cy{i}")]).await.unwrap().revision);
        add(&mut bob, "Nope", &["C2Cz"]).await.unwrap_err();
        create(&mut bob, &format!("B{i}"), &["C2Cz"]).await.unwrap();
    }
    let batches = read_through(&mut stream, *mine.last().unwrap()).await;
    assert_eq!(revisions(&batches), mine, "exactly alice's later revisions, in order");
    for (i, batch) in batches.iter().enumerate() {
        assert_eq!(only(batch), added("Before", &[&format!("C2Cy{i}")]));
    }
}

/// start_revision beyond current + 1 is OUT_OF_RANGE / REVISION_IN_FUTURE
/// with the current revision in the metadata; current + 1 is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_revision_beyond_the_next_one_is_revision_in_future() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");

    // Nothing written yet: on sled the revision is 0, so 2 is in the future.
    let status = open(&mut alice, from(ahead(s.stats.revision()))).await.unwrap_err();
    let (oldest, current) = out_of_range(&status, "REVISION_IN_FUTURE");
    assert_eq!(oldest, 1, "nothing trimmed");
    assert_current("current_revision", current, 0);
    assert!(status.message().contains("start_revision"), "message names the field: {status:?}");
    let mut ok = open_ok(&mut alice, from(current + 1)).await;
    assert_current("bookmark", expect_bookmark(&mut ok).await, current);

    create(&mut alice, "A", &["C2Ca"]).await.unwrap();
    let last = create(&mut alice, "B", &["C2Cb"]).await.unwrap().revision;
    let status = open(&mut alice, from(ahead(last))).await.unwrap_err();
    let (oldest, current) = out_of_range(&status, "REVISION_IN_FUTURE");
    assert_eq!(oldest, 1, "nothing trimmed");
    assert_current("current_revision", current, last);
    let status = open(&mut alice, from(u64::MAX)).await.unwrap_err();
    let (oldest, latest) = out_of_range(&status, "REVISION_IN_FUTURE");
    assert_eq!(oldest, 1, "nothing trimmed");
    assert!(latest >= current, "current_revision went back from {current} to {latest}");
    assert_current("current_revision", latest, last);
    let mut next = open_ok(&mut alice, from(latest + 1)).await;
    assert_current("bookmark", expect_bookmark(&mut next).await, latest);
}

/// A start_revision certainly in the future of a server whose revision was
/// `current` a moment ago. On sled only the test's writes move the
/// revision, so current + 2, the first revision beyond the next one, is
/// (the sharpest check). On etcd heartbeats (every replica's, every
/// `--etcd-heartbeat-interval`) and other deployments in the same cluster
/// move it on between the read and the call, so only a revision far ahead
/// is certainly in the future.
fn ahead(current: u64) -> u64 {
    if on_etcd() {
        current + 1_000_000
    } else {
        current + 2
    }
}

// ---------------------------------------------------------------------------
// What a batch carries
// ---------------------------------------------------------------------------

/// Every kind of mutation yields one batch at the revision its response
/// reports, with the documented payload (canonical ids that succeeded only),
/// the user, a commit time and the group list after the change; a registry
/// deletion that touches two groups is a single batch; mutations that change
/// nothing yield nothing; the stored copies equal the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mutation_is_one_batch_with_the_documented_events() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let mut stream = open_ok(&mut gc, from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut stream).await, 0).await;
    let start = now_secs();

    let mut expected: Vec<(u64, Ev, Vec<&str>)> = Vec::new();
    let r = create(&mut gc, "Work", &["c2c_x", "C2Cx", "bad id", "group_g"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, strings(&["C2Cx", "GROUPg"]));
    expected.push((r.revision, created("Work", &["C2Cx", "GROUPg"]), vec!["Work"]));
    let r = create(&mut gc, "Home", &["C2Cy"]).await.unwrap();
    expected.push((r.revision, created("Home", &["C2Cy"]), vec!["Work", "Home"]));
    let r = add(&mut gc, "Work", &["C2Cy", "C2Cx"]).await.unwrap();
    expected.push((r.revision, added("Work", &["C2Cy"]), vec!["Work", "Home"]));
    let unchanged = add(&mut gc, "Work", &["C2Cx"]).await.unwrap();
    assert_eq!(unchanged.revision, r.revision, "an add where every item failed keeps the revision");
    let r = remove(&mut gc, "Work", &["C2Cy", "C2Cnot_there"]).await.unwrap();
    expected.push((r.revision, removed("Work", &["C2Cy"], RemovalReason::UserRequest), vec!["Work", "Home"]));
    let r = rename(&mut gc, "Home", "Family").await.unwrap();
    expected.push((r.revision, renamed("Home", "Family"), vec!["Work", "Family"]));
    assert_eq!(rename(&mut gc, "Work", "Work").await.unwrap().revision, r.revision, "rename to itself: no change");
    let r = reorder(&mut gc, &["Family", "Work"]).await.unwrap();
    expected.push((r.revision, reordered(&["Family", "Work"]), vec!["Family", "Work"]));
    assert_eq!(reorder(&mut gc, &["Family", "Work"]).await.unwrap().revision, r.revision, "same order: no change");
    let r =
        upsert_ok(&mut cc, vec![ConversationUpdate { unread_count: Some(3), ..update("C2Cx") }, update("c2c_q")]).await;
    expected.push((r.revision, changed(&["C2Cx", "C2Cq"]), vec!["Family", "Work"]));
    let r = add(&mut gc, "Family", &["C2Cx"]).await.unwrap();
    expected.push((r.revision, added("Family", &["C2Cx"]), vec!["Family", "Work"]));
    let r = delete_group(&mut gc, "Work").await.unwrap();
    expected.push((
        r.revision,
        Ev::GroupDeleted(GroupDeleted { group_name: "Work".into(), ..Default::default() }),
        vec!["Family"],
    ));
    let r = create(&mut gc, "Work", &["C2Cx", "C2Cq"]).await.unwrap();
    expected.push((r.revision, created("Work", &["C2Cx", "C2Cq"]), vec!["Family", "Work"]));
    let single_revisions: Vec<u64> = expected.iter().map(|(r, ..)| *r).collect();

    // Deleting C2Cx from the registry takes it out of both groups: one batch.
    let deletion = delete_convs(&mut cc, &["C2Cx", "C2Cnope"]).await.unwrap();
    assert_eq!(deletion.success_conversation_ids, strings(&["C2Cx"]));
    let end = now_secs();

    let batches = read_through(&mut stream, deletion.revision).await;
    let mut all_revisions = single_revisions.clone();
    all_revisions.push(deletion.revision);
    assert_eq!(revisions(&batches), all_revisions, "one batch per changing mutation, at its response's revision");
    for (batch, (revision, event, names)) in batches.iter().zip(&expected) {
        assert_eq!(batch.revision, *revision);
        assert_eq!(only(batch), *event, "payload of revision {revision}");
        let e = &batch.events[0];
        assert_eq!(e.revision, *revision);
        assert_eq!(e.user_id, "alice");
        assert_eq!(e.group_names, strings(names), "group_names after revision {revision}");
        let seconds = e.time.as_ref().expect("time").seconds;
        assert!((start - 5..=end + 5).contains(&seconds), "commit time {seconds} outside [{start}, {end}]");
    }
    let last = batches.last().unwrap();
    assert_eq!(last.revision, deletion.revision);
    assert_eq!(last.events.len(), 3, "two group removals and the deletion, in one batch: {last:?}");
    let mut group_removals: Vec<Ev> = last
        .events
        .iter()
        .filter_map(|e| e.kind.clone().map(without_group_id))
        .filter(|k| !matches!(k, Ev::ConversationsDeleted(_)))
        .collect();
    group_removals.sort_by_key(|k| format!("{k:?}"));
    let mut want = vec![
        removed("Family", &["C2Cx"], RemovalReason::ConversationDeleted),
        removed("Work", &["C2Cx"], RemovalReason::ConversationDeleted),
    ];
    want.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(group_removals, want, "removals caused by the deletion");
    assert!(kinds(last).contains(&conversations_deleted(&["C2Cx"])), "ConversationsDeleted in the same batch");
    for e in &last.events {
        assert_eq!((e.revision, e.user_id.as_str()), (deletion.revision, "alice"));
        assert_eq!(e.group_names, strings(&["Family", "Work"]));
    }

    // The log holds the very same batches.
    assert_eq!(full_log(&mut gc, from(1), deletion.revision).await, batches, "stored batches equal the live ones");
    assert_model_matches(&Model::replay(&batches), &observe(&mut gc).await, "after the scripted mutations");
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

/// event_types keeps only the listed kinds, live and in replay alike;
/// UNSPECIFIED or unknown values are INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_filter_keeps_only_the_listed_kinds() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let types = vec![GroupEventType::GroupCreated as i32, GroupEventType::GroupsReordered as i32];
    let request = |start| WatchGroupEventsRequest { event_types: types.clone(), ..from(start) };
    let mut live = open_ok(&mut gc, request(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut live).await, 0).await;

    let c1 = create(&mut gc, "A", &["C2Ca"]).await.unwrap().revision;
    add(&mut gc, "A", &["C2Cb"]).await.unwrap();
    let c2 = create(&mut gc, "B", &["C2Cb"]).await.unwrap().revision;
    upsert_ok(&mut cc, vec![update("C2Cz")]).await;
    let o1 = reorder(&mut gc, &["B", "A"]).await.unwrap().revision;
    rename(&mut gc, "A", "A2").await.unwrap();
    delete_convs(&mut cc, &["C2Cb"]).await.unwrap();
    delete_group(&mut gc, "A2").await.unwrap();
    let c3 = create(&mut gc, "C", &["C2Cc"]).await.unwrap().revision;
    let tail = remove(&mut gc, "C", &["C2Cc"]).await.unwrap().revision;

    let expected = vec![
        (c1, vec![created("A", &["C2Ca"])]),
        (c2, vec![created("B", &["C2Cb"])]),
        (o1, vec![reordered(&["B", "A"])]),
        (c3, vec![created("C", &["C2Cc"])]),
    ];
    let got_live = read_through(&mut live, c3).await;
    assert_eq!(summary(&got_live), expected, "live, filtered by kind");
    let mut replay = open_ok(&mut gc, request(1)).await;
    let got_replay = read_through(&mut replay, c3).await;
    assert_eq!(got_replay, got_live, "replay, filtered by kind, equals live");
    // The filtered-out tail is not sent: the replay's bookmark comes next.
    assert_bookmark_now(&s, expect_bookmark(&mut replay).await, tail).await;

    for bad in [vec![0], vec![99], vec![GroupEventType::GroupCreated as i32, 0], vec![-1]] {
        let status = open(&mut gc, WatchGroupEventsRequest { event_types: bad.clone(), ..from(0) }).await.unwrap_err();
        assert_status_field(&status, Code::InvalidArgument, "INVALID_ARGUMENT", None, "event_types");
    }
}

/// group_names drops events about other groups and keeps events about the
/// named ones (a rename counts for its old and new name); reorders,
/// registry changes and registry deletions always pass; a batch keeps its
/// revision and loses only the filtered events, and a batch left empty is
/// not sent. Combined with event_types, both filters apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_filter_drops_other_groups_but_passes_list_wide_events() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let request = |start| WatchGroupEventsRequest { group_names: strings(&["A"]), ..from(start) };
    let both = |start| WatchGroupEventsRequest {
        group_names: strings(&["A"]),
        event_types: vec![GroupEventType::ConversationsAddedToGroup as i32],
        ..from(start)
    };
    let mut live = open_ok(&mut gc, request(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut live).await, 0).await;
    let mut live_both = open_ok(&mut gc, both(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut live_both).await, 0).await;

    let r1 = create(&mut gc, "A", &["C2Ca"]).await.unwrap().revision;
    create(&mut gc, "B", &["C2Cb"]).await.unwrap();
    add(&mut gc, "B", &["C2Cc"]).await.unwrap();
    let r4 = add(&mut gc, "A", &["C2Cc"]).await.unwrap().revision;
    let r5 = reorder(&mut gc, &["B", "A"]).await.unwrap().revision;
    let r6 = upsert_ok(&mut cc, vec![update("C2Cz")]).await.revision;
    let r7 = delete_convs(&mut cc, &["C2Cb"]).await.unwrap().revision;
    let r8 = delete_convs(&mut cc, &["C2Cc"]).await.unwrap().revision;
    rename(&mut gc, "B", "C").await.unwrap();
    let r10 = rename(&mut gc, "A", "A2").await.unwrap().revision;
    add(&mut gc, "A2", &["C2Cd"]).await.unwrap();
    let r12 = create(&mut gc, "A", &["C2Ce"]).await.unwrap().revision;
    let r13 = add(&mut gc, "A", &["C2Cf"]).await.unwrap().revision;

    let expected = vec![
        (r1, vec![created("A", &["C2Ca"])]),
        (r4, vec![added("A", &["C2Cc"])]),
        (r5, vec![reordered(&["B", "A"])]),
        (r6, vec![changed(&["C2Cz"])]),
        (r7, vec![conversations_deleted(&["C2Cb"])]),
        (r8, vec![removed("A", &["C2Cc"], RemovalReason::ConversationDeleted), conversations_deleted(&["C2Cc"])]),
        (r10, vec![renamed("A", "A2")]),
        (r12, vec![created("A", &["C2Ce"])]),
        (r13, vec![added("A", &["C2Cf"])]),
    ];
    let got_live = read_through(&mut live, r13).await;
    assert_eq!(summary(&got_live), expected, "live, filtered by group name");
    for batch in &got_live {
        for event in &batch.events {
            assert_eq!(event.revision, batch.revision, "filtered events keep their revision");
        }
    }
    let mut replay = open_ok(&mut gc, request(1)).await;
    assert_eq!(read_through(&mut replay, r13).await, got_live, "replay, filtered by group name, equals live");

    let both_expected = vec![(r4, vec![added("A", &["C2Cc"])]), (r13, vec![added("A", &["C2Cf"])])];
    assert_eq!(summary(&read_through(&mut live_both, r13).await), both_expected, "group name AND kind");
}

// ---------------------------------------------------------------------------
// Tenancy
// ---------------------------------------------------------------------------

/// A user's watcher sees only that user's batches (live and replayed); an
/// admin naming a user in x-convgroups-user watches that user; a user
/// token naming another user is PERMISSION_DENIED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_only_their_own_users_events() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let mut alice_live = open_ok(&mut alice, from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut alice_live).await, 0).await;
    let mut as_bob = s.admin_group_client(Some("bob"));
    let mut bob_by_admin = open_ok(&mut as_bob, from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut bob_by_admin).await, 0).await;

    let (mut alice_revs, mut bob_revs) = (Vec::new(), Vec::new());
    for i in 0..4 {
        // Same group names for both users: isolation is by user, not name.
        let name = format!("G{i}");
        alice_revs.push(create(&mut alice, &name, &["C2Cshared"]).await.unwrap().revision);
        bob_revs.push(create(&mut bob, &name, &["C2Cshared"]).await.unwrap().revision);
        bob_revs.push(add(&mut bob, &name, &["C2Cbob"]).await.unwrap().revision);
    }
    // Sentinels: each user's last change comes after the other's.
    alice_revs.push(delete_group(&mut alice, "G0").await.unwrap().revision);
    bob_revs.push(delete_group(&mut bob, "G0").await.unwrap().revision);

    let alice_last = *alice_revs.last().unwrap();
    let bob_last = *bob_revs.last().unwrap();
    let seen = read_through(&mut alice_live, alice_last).await;
    assert_eq!(revisions(&seen), alice_revs, "alice's watcher: alice's revisions only");
    assert!(seen.iter().flat_map(|b| &b.events).all(|e| e.user_id == "alice"));
    let seen = read_through(&mut bob_by_admin, bob_last).await;
    assert_eq!(revisions(&seen), bob_revs, "admin acting for bob: bob's revisions only");
    assert!(seen.iter().flat_map(|b| &b.events).all(|e| e.user_id == "bob"));

    let replay = full_log(&mut alice, from(1), alice_last).await;
    assert_eq!(revisions(&replay), alice_revs, "alice's replay: alice's revisions only");
    assert!(replay.iter().flat_map(|b| &b.events).all(|e| e.user_id == "alice"));
    let mut alice_as_admin = s.admin_group_client(Some("alice"));
    assert_eq!(full_log(&mut alice_as_admin, from(1), alice_last).await, replay, "admin acting for alice");

    let bearer = format!("Bearer {}", s.token("alice", false));
    let mut impostor =
        s.group_client_with(Headers::new(&[("authorization", &bearer), (convgroups::auth::USER_HEADER, "bob")]));
    let status = open(&mut impostor, from(1)).await.unwrap_err();
    assert_status(&status, Code::PermissionDenied, "PERMISSION_DENIED", None);
}

/// all_users is for admin tokens only (PERMISSION_DENIED otherwise) and
/// cannot be combined with send_snapshot (INVALID_ARGUMENT naming it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_users_requires_an_admin_token_and_excludes_snapshots() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    create(&mut alice, "A", &["C2Ca"]).await.unwrap();
    for start in [0, 1] {
        let status = open(&mut alice, all_users_from(start)).await.unwrap_err();
        assert_status(&status, Code::PermissionDenied, "PERMISSION_DENIED", None);
    }
    let mut admin = s.admin_group_client(None);
    let status =
        open(&mut admin, WatchGroupEventsRequest { send_snapshot: true, ..all_users_from(0) }).await.unwrap_err();
    assert_status_field(&status, Code::InvalidArgument, "INVALID_ARGUMENT", None, "send_snapshot");
    // Refused calls hold nothing.
    no_watchers_left(&s).await;
}

/// An admin all_users watcher sees every user's batches, every revision
/// exactly once and in order, live and replayed alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_users_watcher_sees_every_users_batches_in_revision_order() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let mut admin = s.admin_group_client(None);
    let mut live = open_ok(&mut admin, all_users_from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut live).await, 0).await;
    let mut owners = Vec::new();
    for i in 0..5 {
        let r = create(&mut alice, &format!("A{i}"), &["C2Cx"]).await.unwrap().revision;
        owners.push((r, "alice"));
        let r = create(&mut bob, &format!("B{i}"), &["C2Cy"]).await.unwrap().revision;
        owners.push((r, "bob"));
        if i % 2 == 0 {
            let r = add(&mut bob, &format!("B{i}"), &["C2Cz"]).await.unwrap().revision;
            owners.push((r, "bob"));
        }
    }
    let acknowledged: Vec<u64> = owners.iter().map(|(r, _)| *r).collect();
    assert_increasing(&acknowledged, "writes made one after the other");
    let last = owners.last().unwrap().0;
    let got = read_through(&mut live, last).await;
    assert_eq!(revisions(&got), acknowledged, "every acknowledged revision, once, in order");
    let got_owners: Vec<(u64, &str)> = got.iter().map(|b| (b.revision, user_of(b))).collect();
    assert_eq!(got_owners, owners, "each batch carries the user who made the change");
    assert_eq!(full_log(&mut admin, all_users_from(1), last).await, got, "replay equals live");
    // Each user's own stream is the all-users stream restricted to them.
    for user in ["alice", "bob"] {
        let mut gc = s.group_client(user);
        let mine: Vec<EventBatch> = got.iter().filter(|b| user_of(b) == user).cloned().collect();
        let last_mine = mine.last().unwrap().revision;
        assert_eq!(full_log(&mut gc, from(1), last_mine).await, mine, "{user}'s log");
    }
}

/// Live batches go out as one encoding per batch and filter shape, shared
/// by every watcher that wants the same events (and bookmarks as one per
/// revision): what the generated client decodes from each stream is exactly
/// the proto message it would get if each watcher's message were encoded on
/// its own — the whole batch for the unfiltered and all_users watchers, the
/// filtered part for each filter, equal for equal filters, and the same as
/// the replay (encoded per watcher from the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_encodings_decode_as_each_watchers_own_message() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let mut admin = s.admin_group_client(None);
    let only_a = |start| WatchGroupEventsRequest { group_names: strings(&["A"]), ..from(start) };
    let only_b = |start| WatchGroupEventsRequest { group_names: strings(&["B"]), ..from(start) };
    let mut whole = Vec::new();
    for _ in 0..3 {
        whole.push(open_ok(&mut gc, from(0)).await);
    }
    let mut filtered_a = [open_ok(&mut gc, only_a(0)).await, open_ok(&mut gc, only_a(0)).await];
    let mut filtered_b = open_ok(&mut gc, only_b(0)).await;
    let mut all = open_ok(&mut admin, all_users_from(0)).await;
    for stream in whole.iter_mut().chain(filtered_a.iter_mut()).chain([&mut filtered_b, &mut all]) {
        expect_bookmark(stream).await;
    }

    let r1 = create(&mut gc, "A", &["C2Ca", "C2Cx"]).await.unwrap().revision;
    let r2 = create(&mut gc, "B", &["C2Cb", "C2Cx"]).await.unwrap().revision;
    // One batch with an event for each group and one for neither.
    let r3 = delete_convs(&mut cc, &["C2Cx"]).await.unwrap().revision;
    let gone = |group: &str| removed(group, &["C2Cx"], RemovalReason::ConversationDeleted);
    let expected_whole = vec![
        (r1, vec![created("A", &["C2Ca", "C2Cx"])]),
        (r2, vec![created("B", &["C2Cb", "C2Cx"])]),
        (r3, vec![gone("A"), gone("B"), conversations_deleted(&["C2Cx"])]),
    ];

    let first = read_through(&mut whole[0], r3).await;
    assert_eq!(summary(&first), expected_whole, "the whole batches");
    for stream in &mut whole[1..] {
        assert_eq!(read_through(stream, r3).await, first, "every unfiltered watcher decodes the same messages");
    }
    assert_eq!(read_through(&mut all, r3).await, first, "all_users decodes the same messages");
    let replay = read_through(&mut open_ok(&mut gc, from(r1)).await, r3).await;
    assert_eq!(replay, first, "the live shared encoding equals the replay's own");

    let expected_a =
        vec![(r1, vec![created("A", &["C2Ca", "C2Cx"])]), (r3, vec![gone("A"), conversations_deleted(&["C2Cx"])])];
    let got_a = read_through(&mut filtered_a[0], r3).await;
    assert_eq!(summary(&got_a), expected_a, "group A's part");
    assert_eq!(read_through(&mut filtered_a[1], r3).await, got_a, "equal filters decode equal messages");
    let replay_a = read_through(&mut open_ok(&mut gc, only_a(r1)).await, r3).await;
    assert_eq!(replay_a, got_a, "group A's part, live shared and replayed own");
    let expected_b =
        vec![(r2, vec![created("B", &["C2Cb", "C2Cx"])]), (r3, vec![gone("B"), conversations_deleted(&["C2Cx"])])];
    assert_eq!(summary(&read_through(&mut filtered_b, r3).await), expected_b, "group B's part");
    for batch in got_a.iter().chain(&first) {
        assert!(batch.events.iter().all(|e| e.revision == batch.revision && e.user_id == "alice"));
    }
}

// ---------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------

/// With retain_for 0 and 3 events kept per user, compaction trims alice's
/// older events: watching from a trimmed revision is OUT_OF_RANGE /
/// REVISION_COMPACTED with consistent oldest_revision / current_revision;
/// watching from oldest_revision yields exactly the retained batches
/// (unchanged); bob's few events are untouched; all_users has its own
/// floor; a revision beyond the next one is REVISION_IN_FUTURE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_refuses_trimmed_revisions_with_consistent_metadata() {
    let s = TestServer::start_with(|c| {
        c.watch.retain_for = Duration::ZERO;
        c.watch.retain_events_per_user = 3;
        c.watch.compact_interval = Duration::from_millis(50);
    })
    .await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let mut admin = s.admin_group_client(None);
    let mut recorder = open_ok(&mut alice, from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut recorder).await, 0).await;

    let mut a = vec![create(&mut alice, "A", &["C2C0"]).await.unwrap().revision];
    for i in 1..10 {
        a.push(add(&mut alice, "A", &[&format!("C2C{i}")]).await.unwrap().revision);
    }
    let b1 = create(&mut bob, "B", &["C2Cb"]).await.unwrap().revision;
    let b2 = add(&mut bob, "B", &["C2Cc"]).await.unwrap().revision;
    assert_increasing(&[a.as_slice(), &[b1, b2]].concat(), "writes made one after the other");
    let original = read_through(&mut recorder, a[9]).await;
    assert_eq!(revisions(&original), a);

    // Poll until trimming has reached its steady state: alice keeps her
    // last 3 (a[7..]), so the oldest retained revision is just past a[6].
    // oldest_revision is always the last trimmed revision + 1.
    let deadline = tokio::time::Instant::now() + PROMPT;
    let (oldest, current) = loop {
        match open(&mut alice, from(1)).await {
            Ok(_) => {}
            Err(status) => {
                let (oldest, current) = out_of_range(&status, "REVISION_COMPACTED");
                assert_current("current_revision", current, b2);
                assert!(
                    a[..7].contains(&(oldest - 1)),
                    "oldest_revision {oldest} must follow one of alice's first 7 revisions {:?} (past the first, \
                     keeping the last 3)",
                    &a[..7]
                );
                if oldest - 1 == a[6] {
                    break (oldest, current);
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "compaction did not trim alice's log to 3 events");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(a[6] < oldest && oldest <= a[7], "oldest_revision {oldest} after a[6] {} and up to a[7] {}", a[6], a[7]);

    let status = open(&mut alice, from(oldest - 1)).await.unwrap_err();
    let (below_oldest, below_current) = out_of_range(&status, "REVISION_COMPACTED");
    assert_eq!(below_oldest, oldest, "the revision just below the oldest");
    assert!(below_current >= current, "current_revision went back from {current} to {below_current}");
    assert_current("current_revision", below_current, b2);
    assert!(status.message().contains("start_revision"), "message names the field: {status:?}");
    let mut retained = open_ok(&mut alice, from(oldest)).await;
    let got = read_through(&mut retained, a[9]).await;
    assert_eq!(got, original[7..].to_vec(), "from oldest_revision: exactly the retained batches, unchanged");
    assert_bookmark_now(&s, expect_bookmark(&mut retained).await, b2).await;

    // Bob has only 2 events: none trimmed.
    let bob_log = full_log(&mut bob, from(1), b2).await;
    assert_eq!(revisions(&bob_log), vec![b1, b2], "another user's events are retained by its own count");

    // The all-users log has lost what alice lost.
    let status = open(&mut admin, all_users_from(1)).await.unwrap_err();
    let (all_oldest, all_current) = out_of_range(&status, "REVISION_COMPACTED");
    assert_eq!(all_oldest, oldest, "all_users floor");
    assert_current("current_revision", all_current, b2);
    let mut all = open_ok(&mut admin, all_users_from(oldest)).await;
    assert_eq!(revisions(&read_through(&mut all, b2).await), vec![a[7], a[8], a[9], b1, b2]);

    let status = open(&mut alice, from(ahead(s.stats.revision()))).await.unwrap_err();
    let (future_oldest, current) = out_of_range(&status, "REVISION_IN_FUTURE");
    assert_eq!(future_oldest, oldest, "REVISION_IN_FUTURE: the same oldest_revision");
    assert_current("current_revision", current, b2);
    let mut next = open_ok(&mut alice, from(current + 1)).await;
    assert_current("bookmark", expect_bookmark(&mut next).await, current);
}

// ---------------------------------------------------------------------------
// Bookmarks
// ---------------------------------------------------------------------------

/// An idle stream gets a bookmark every bookmark_interval, never below the
/// last batch sent; idle bookmarks advance past other users' revisions;
/// a change of the user still arrives as a batch after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_receive_periodic_bookmarks() {
    let s = TestServer::start_with(|c| c.watch.bookmark_interval = Duration::from_millis(100)).await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let r1 = create(&mut alice, "A", &["C2Ca"]).await.unwrap().revision;
    let r2 = add(&mut alice, "A", &["C2Cb"]).await.unwrap().revision;

    let mut stream = open_ok(&mut alice, from(1)).await;
    assert_eq!(revisions(&read_through(&mut stream, r2).await), vec![r1, r2]);
    let started = tokio::time::Instant::now();
    let mut previous = r2;
    for _ in 0..3 {
        let b = expect_bookmark(&mut stream).await;
        assert!(b >= previous, "idle bookmark {b} went below {previous}");
        previous = b;
    }
    assert!(started.elapsed() < Duration::from_secs(10), "three idle bookmarks of a 100 ms interval took too long");

    // Alice owes nothing between r2 and her next change: bookmarks may move
    // on to bob's revision (on etcd also past it: heartbeats take
    // revisions), never past what the server has reached.
    let r3 = create(&mut bob, "B", &["C2Cb"]).await.unwrap().revision;
    let mut advanced = false;
    for _ in 0..50 {
        let b = expect_bookmark(&mut stream).await;
        assert!(b >= previous, "bookmark {b} went below {previous}");
        // On sled the server's revision is r3: the bookmark is at most r3.
        let stats = s.stats.clone();
        eventually(&format!("bookmark {b} is a revision the server has reached"), || stats.revision() >= b).await;
        previous = b;
        if b >= r3 {
            advanced = true;
            break;
        }
    }
    assert!(advanced, "idle bookmarks never reached bob's revision {r3}");

    // Alice's next change: no bookmark may claim it before its batch.
    let r4 = add(&mut alice, "A", &["C2Cc"]).await.unwrap().revision;
    assert!(r4 > previous, "alice's change {r4} is after the bookmarks before it ({previous})");
    loop {
        match next_msg(&mut stream).await {
            Msg::Bookmark(b) => {
                assert!((previous..r4).contains(&b), "bookmark {b} before batch {r4} (after {previous})");
                previous = b;
            }
            Msg::Events(batch) => {
                assert_eq!(batch.revision, r4);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(expect_bookmark(&mut stream).await >= r4, "idle again: bookmark at or past the last batch");
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

/// What one watch stream saw up to its end.
struct Ended {
    /// Everything up to this revision was covered before the first message.
    covered_before: u64,
    messages: Vec<Msg>,
    status: tonic::Status,
}

impl Ended {
    fn covered(&self) -> u64 {
        self.messages.iter().map(Msg::revision).fold(self.covered_before, u64::max)
    }

    fn batches(&self) -> Vec<EventBatch> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                Msg::Events(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Who a watcher in the shutdown test acts as.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Alice,
    BobByAdmin,
    AllUsers,
}

impl Who {
    fn client(self, s: &TestServer) -> GroupClient {
        match self {
            Who::Alice => s.group_client("alice"),
            Who::BobByAdmin => s.admin_group_client(Some("bob")),
            Who::AllUsers => s.admin_group_client(None),
        }
    }

    fn user(self) -> Option<&'static str> {
        match self {
            Who::Alice => Some("alice"),
            Who::BobByAdmin => Some("bob"),
            Who::AllUsers => None,
        }
    }
}

/// On shutdown, `run` returns Ok within a few seconds although watch
/// streams are open; each stream ends with UNAVAILABLE / SHUTTING_DOWN and
/// resume_revision = last revision it covered + 1; after a restart on the
/// same data directory, watching from resume_revision continues with no
/// gap and no duplicate, including changes made after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_with_a_resume_revision_that_continues_after_restart() {
    // The data directory outlives the first server (whose own temp dir is
    // a dummy), so a second server can open it after `shutdown`. On etcd the
    // second server runs under the same prefix (the same config), and the
    // data directory keeps the token secret.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(dir.path().join("data"));
    use_backend_from_env(&mut config);
    let s = TestServer::start_in(tempfile::tempdir().expect("temp dir"), config.clone()).await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    create(&mut alice, "A", &["C2Ca"]).await.unwrap();
    let bob_first = create(&mut bob, "B", &["C2Cb"]).await.unwrap().revision;
    add(&mut alice, "A", &["C2Cc"]).await.unwrap();

    let watchers = [
        ("alice from 1", Who::Alice, from(1)),
        ("alice from 0", Who::Alice, from(0)),
        ("bob (admin acting for bob) from his first revision", Who::BobByAdmin, from(bob_first)),
        ("all users from 1", Who::AllUsers, all_users_from(1)),
    ];
    let mut readers = Vec::new();
    for (name, who, request) in &watchers {
        let mut stream = open_ok(&mut who.client(&s), request.clone()).await;
        let covered_before = match request.start_revision {
            0 => expect_bookmark(&mut stream).await,
            n => n - 1,
        };
        let reader = tokio::spawn(async move {
            let (messages, status) = read_to_status(&mut stream).await;
            Ended { covered_before, messages, status }
        });
        readers.push((*name, reader));
    }
    // Changes right before the shutdown: some may still be in flight.
    let mut last_write = 0;
    for i in 0..5 {
        add(&mut alice, "A", &[&format!("C2Cx{i}")]).await.unwrap();
        last_write = add(&mut bob, "B", &[&format!("C2Cy{i}")]).await.unwrap().revision;
    }
    let before = published_revision(&s, last_write).await;
    assert_eq!(s.stats.watchers(), watchers.len());

    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.shutdown())
        .await
        .expect("shutdown with open watch streams took more than 5 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut ended = Vec::new();
    for (name, reader) in readers {
        let end = tokio::time::timeout(PROMPT, reader).await.expect("stream did not end").expect("reader panicked");
        assert_status(&end.status, Code::Unavailable, "SHUTTING_DOWN", None);
        let resume = meta_u64(&end.status, "resume_revision");
        assert_eq!(resume, end.covered() + 1, "{name}: resume_revision = last covered revision + 1");
        ended.push((end, resume));
    }

    let s = TestServer::start_in(tempfile::tempdir().expect("temp dir"), config).await;
    // The revision survives the restart (on etcd heartbeats may have moved
    // it on since).
    assert_current("the revision after the restart", s.stats.revision(), before);
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let a_last = add(&mut alice, "A", &["C2Cafter"]).await.unwrap().revision;
    let b_last = add(&mut bob, "B", &["C2Cafter"]).await.unwrap().revision;
    assert_increasing(&[before, a_last, b_last], "revisions continue after the restart");

    let reference = full_log(&mut s.admin_group_client(None), all_users_from(1), b_last).await;
    for ((name, who, request), (end, resume)) in watchers.into_iter().zip(ended) {
        let target = if who == Who::Alice { a_last } else { b_last };
        let resumed = WatchGroupEventsRequest { start_revision: resume, ..request };
        let mut stream = open_ok(&mut who.client(&s), resumed).await;
        let mut seen = end.batches();
        seen.extend(read_through_from(&mut stream, target, resume - 1).await);
        let expected: Vec<EventBatch> = reference
            .iter()
            .filter(|b| who.user().is_none_or(|u| user_of(b) == u) && b.revision > end.covered_before)
            .cloned()
            .collect();
        assert_eq!(revisions(&seen), revisions(&expected), "{name}: before + after the restart, no gap, no duplicate");
        assert_eq!(seen, expected, "{name}: the batches themselves");
    }
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

/// Watchers whose client goes away (stream dropped, or the whole
/// connection closed) release their place and their user's ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watchers_release_their_resources() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let r1 = create(&mut alice, "A", &["C2Ca"]).await.unwrap().revision;

    let mut alice_streams = Vec::new();
    for _ in 0..5 {
        let mut stream = open_ok(&mut alice, from(1)).await;
        read_through(&mut stream, r1).await;
        alice_streams.push(stream);
    }
    let bob_channel = connect(&s, None).await;
    let mut bob = user_client_on(&s, bob_channel.clone(), "bob");
    let admin_channel = connect(&s, None).await;
    let mut admin = admin_client_on(&s, admin_channel.clone(), None);
    let mut others = Vec::new();
    for _ in 0..4 {
        let mut stream = open_ok(&mut bob, from(0)).await;
        expect_bookmark(&mut stream).await;
        others.push(stream);
    }
    for _ in 0..3 {
        let mut stream = open_ok(&mut admin, all_users_from(0)).await;
        expect_bookmark(&mut stream).await;
        others.push(stream);
    }
    assert_eq!(s.stats.watchers(), 12);
    assert_eq!(s.stats.user_channels(), 2, "one ring each for alice and bob");

    drop(alice_streams);
    let stats = s.stats.clone();
    eventually("alice's dropped streams released", || stats.watchers() == 7 && stats.user_channels() == 1).await;

    drop(others);
    drop(bob);
    drop(admin);
    drop(bob_channel);
    drop(admin_channel);
    no_watchers_left(&s).await;

    // The server still serves watches and changes afterwards.
    let mut stream = open_ok(&mut alice, from(0)).await;
    assert_bookmark_now(&s, expect_bookmark(&mut stream).await, r1).await;
    let r = add(&mut alice, "A", &["C2Cb"]).await.unwrap().revision;
    assert_eq!(expect_batch(&mut stream).await.revision, r);
}

/// Beyond max_watchers_per_user or max_watchers a watch is refused with
/// RESOURCE_EXHAUSTED / TOO_MANY_WATCHERS (holding nothing); once a stream
/// closes, a new one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_limits_refuse_extra_streams_until_one_closes() {
    let s = TestServer::start_with(|c| {
        c.watch.max_watchers = 4;
        c.watch.max_watchers_per_user = 2;
    })
    .await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");
    let mut admin = s.admin_group_client(None);
    let a1 = open_ok(&mut alice, from(0)).await;
    let _a2 = open_ok(&mut alice, from(0)).await;
    let status = open(&mut alice, from(0)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "TOO_MANY_WATCHERS", None);
    let _b1 = open_ok(&mut bob, from(0)).await;
    let _all = open_ok(&mut admin, all_users_from(0)).await;
    assert_eq!(s.stats.watchers(), 4);
    let status = open(&mut bob, from(0)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "TOO_MANY_WATCHERS", None);
    let status = open(&mut admin, all_users_from(0)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "TOO_MANY_WATCHERS", None);
    assert_eq!(s.stats.watchers(), 4, "refused watches hold no place");

    drop(a1);
    let deadline = tokio::time::Instant::now() + PROMPT;
    let mut a3 = loop {
        match open(&mut alice, from(0)).await {
            Ok(stream) => break stream,
            Err(status) => assert_status(&status, Code::ResourceExhausted, "TOO_MANY_WATCHERS", None),
        };
        assert!(tokio::time::Instant::now() < deadline, "the dropped stream's place was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_bookmark_now(&s, expect_bookmark(&mut a3).await, 0).await;
    assert_eq!(s.stats.watchers(), 4);
}
