//! The watch guarantees (contract §4) under concurrency and load, checked
//! in the spirit of etcd's robustness tests: record everything every
//! watcher received while writers race, then compare it with the stored
//! log, with what the writers were told, and with the final state.
//!
//! Randomised parts use a seeded RNG; a failure prints `WATCH_SEED=...`,
//! and `WATCH_SEED=<n> cargo test --test contract watch_guarantees` replays the same
//! choices (thread timing still varies).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::*;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Awaits a task, re-raising its panic with the original message.
async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("task failed: {e}"),
    }
}

/// Awaits every task within `limit` overall.
async fn join_all<T>(what: &str, handles: Vec<JoinHandle<T>>, limit: Duration) -> Vec<T> {
    let all = async {
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(join(handle).await);
        }
        out
    };
    tokio::time::timeout(limit, all).await.unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

// ---------------------------------------------------------------------------
// Random writers
// ---------------------------------------------------------------------------

const GROUP_NAMES: [&str; 6] = ["work", "family", "friends", "r&d", "suppliers", "vip"];

/// 1..=max conversation ids of `user`'s small pool (so operations collide),
/// sometimes in the native SDK form, sometimes repeated in one request.
fn conversation_ids(rng: &mut Rng, user: &str, max: u64) -> Vec<String> {
    let count = 1 + rng.below(max);
    (0..count)
        .map(|_| {
            let k = rng.below(13);
            let native = rng.chance(1, 5);
            match (k < 10, native) {
                (true, false) => format!("C2C{user}{k}"),
                (true, true) => format!("c2c_{user}{k}"),
                (false, false) => format!("GROUPteam{}", k - 10),
                (false, true) => format!("group_team{}", k - 10),
            }
        })
        .collect()
}

/// What one writer did: every revision its successful calls returned, and
/// for each call that certainly changed something, its revision and the
/// event it must have produced.
#[derive(Debug, Default)]
struct WriterLog {
    user: &'static str,
    returned: BTreeSet<u64>,
    changes: Vec<(u64, Ev)>,
    refused: usize,
}

/// Errors a racing writer may legitimately get; anything else fails.
#[track_caller]
fn expected_refusal(status: &Status) {
    let reason = status.get_details_error_info().map(|i| i.reason).unwrap_or_default();
    let allowed = matches!(
        (status.code(), reason.as_str()),
        (Code::NotFound, "GROUP_NOT_FOUND")
            | (Code::AlreadyExists, "GROUP_ALREADY_EXISTS")
            | (Code::FailedPrecondition, "GROUP_ORDER_MISMATCH")
            | (Code::ResourceExhausted, "GROUP_LIMIT_EXCEEDED")
    );
    assert!(allowed || refused_under_contention(status), "unexpected error from a writer: {status:?}");
}

/// Runs `ops` random mutations of `user`'s groups and registry.
/// `order_base` makes upserted order_keys unique, so every accepted
/// upsert item changes something.
async fn writer(
    s_group: GroupClient,
    s_conv: ConvClient,
    user: &'static str,
    mut rng: Rng,
    ops: usize,
    order_base: u64,
) -> WriterLog {
    let (mut gc, mut cc) = (s_group, s_conv);
    let mut log = WriterLog { user, ..Default::default() };
    for i in 0..ops as u64 {
        let name = rng.pick(&GROUP_NAMES).to_string();
        let outcome: Result<(u64, Option<Ev>), Status> = match rng.below(100) {
            0..=14 => {
                let ids = conversation_ids(&mut rng, user, 3);
                create_owned(&mut gc, &name, ids, None).await.map(|r| {
                    let event = GroupCreated {
                        group_name: name.clone(),
                        conversation_ids: r.success_conversation_ids,
                        ..Default::default()
                    };
                    (r.revision, Some(Ev::GroupCreated(event)))
                })
            }
            15..=22 => delete_group(&mut gc, &name).await.map(|r| {
                (r.revision, Some(Ev::GroupDeleted(GroupDeleted { group_name: name.clone(), ..Default::default() })))
            }),
            23..=32 => {
                let mut new_name = rng.pick(&GROUP_NAMES).to_string();
                while new_name == name {
                    new_name = rng.pick(&GROUP_NAMES).to_string();
                }
                rename(&mut gc, &name, &new_name).await.map(|r| {
                    let event =
                        GroupRenamed { old_name: name.clone(), new_name: new_name.clone(), ..Default::default() };
                    (r.revision, Some(Ev::GroupRenamed(event)))
                })
            }
            33..=42 => {
                let mut names = group_names(&mut gc).await;
                rng.shuffle(&mut names);
                gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
                    group_names: names,
                    expected_revision: None,
                    ..Default::default()
                })
                .await
                // A reorder may change nothing (same order): no known event.
                .map(|r| (r.into_inner().revision, None))
            }
            43..=62 => add_owned(&mut gc, &name, conversation_ids(&mut rng, user, 3)).await.map(|r| {
                let event = (!r.success_conversation_ids.is_empty()).then(|| {
                    Ev::ConversationsAddedToGroup(ConversationsAddedToGroup {
                        group_name: name.clone(),
                        conversation_ids: r.success_conversation_ids,
                        reason: AdditionReason::UserRequest as i32,
                        ..Default::default()
                    })
                });
                (r.revision, event)
            }),
            63..=77 => gc
                .delete_conversations_from_group(DeleteConversationsFromGroupRequest {
                    group_name: name.clone(),
                    conversation_ids: conversation_ids(&mut rng, user, 3),
                    expected_revision: None,
                    ..Default::default()
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    let event = (!r.success_conversation_ids.is_empty()).then(|| {
                        Ev::ConversationsDeletedFromGroup(ConversationsDeletedFromGroup {
                            group_name: name.clone(),
                            conversation_ids: r.success_conversation_ids,
                            reason: RemovalReason::UserRequest as i32,
                            ..Default::default()
                        })
                    });
                    (r.revision, event)
                }),
            78..=89 => {
                let updates = conversation_ids(&mut rng, user, 2)
                    .into_iter()
                    .map(|id| ConversationUpdate {
                        conversation_id: id,
                        order_key: Some(order_base + i),
                        unread_count: Some(rng.below(5) as u32),
                        ..Default::default()
                    })
                    .collect();
                upsert(&mut cc, updates).await.map(|r| {
                    let ids = r.success_conversation_ids;
                    let event = (!ids.is_empty())
                        .then_some(Ev::ConversationsChanged(ConversationsChanged { conversation_ids: ids }));
                    (r.revision, event)
                })
            }
            _ => cc
                .delete_conversations(DeleteConversationsRequest {
                    conversation_ids: conversation_ids(&mut rng, user, 2),
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    let ids = r.success_conversation_ids;
                    let event = (!ids.is_empty())
                        .then_some(Ev::ConversationsDeleted(ConversationsDeleted { conversation_ids: ids }));
                    (r.revision, event)
                }),
        };
        match outcome {
            Ok((revision, event)) => {
                if revision > 0 {
                    log.returned.insert(revision);
                }
                if let Some(event) = event {
                    log.changes.push((revision, event));
                }
            }
            Err(status) => {
                expected_refusal(&status);
                log.refused += 1;
            }
        }
    }
    log
}

/// Spawns `per_user` writers for each user.
fn spawn_writers(
    s: &TestServer,
    users: &[&'static str],
    per_user: usize,
    ops: usize,
    seed: u64,
) -> Vec<JoinHandle<WriterLog>> {
    let mut handles = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for w in 0..per_user {
            let index = (u * per_user + w) as u64;
            let rng = Rng::derive(seed, 1_000 + index);
            let task = writer(s.group_client(user), s.conv_client(user), user, rng, ops, (index + 1) << 32);
            handles.push(tokio::spawn(task));
        }
    }
    handles
}

/// Checks that a writer's known change is what the stored batch holds.
#[track_caller]
fn assert_change_recorded(batch: &EventBatch, event: &Ev, user: &str) {
    assert_eq!(user_of(batch), user, "revision {} belongs to {user}", batch.revision);
    match event {
        Ev::ConversationsDeleted(_) => {
            let (last, rest) = batch.events.split_last().expect("non-empty batch");
            assert_eq!(last.kind.as_ref(), Some(event), "revision {}: the deletion event", batch.revision);
            for e in rest {
                let Some(Ev::ConversationsDeletedFromGroup(r)) = &e.kind else {
                    panic!("revision {}: unexpected event beside a deletion: {e:?}", batch.revision)
                };
                assert_eq!(r.reason, RemovalReason::ConversationDeleted as i32, "revision {}", batch.revision);
            }
        }
        _ => {
            // The call's event, then only what a smart group's rule did
            // because of it.
            assert_eq!(
                batch.events[0].kind.clone().map(without_group_id).as_ref(),
                Some(event),
                "revision {}: the event of the call (by name)",
                batch.revision
            );
            for e in &batch.events[1..] {
                let by_rule = match &e.kind {
                    Some(Ev::ConversationsAddedToGroup(a)) => a.reason == AdditionReason::Rule as i32,
                    Some(Ev::ConversationsDeletedFromGroup(d)) => d.reason == RemovalReason::Rule as i32,
                    _ => false,
                };
                assert!(by_rule, "revision {}: only RULE events may follow the call's: {batch:?}", batch.revision);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Resuming watchers
// ---------------------------------------------------------------------------

/// Where writers ended: the last revision of each user, and overall.
#[derive(Debug, Clone)]
struct Targets {
    per_user: BTreeMap<&'static str, u64>,
    global: u64,
}

/// Everything a watcher received over all its streams.
#[derive(Debug)]
struct WatcherLog {
    name: String,
    user: Option<&'static str>,
    /// Revisions up to this one predate the watcher (start - 1, or the
    /// first bookmark of a watch from 0).
    first_cover: u64,
    batches: Vec<EventBatch>,
    opens: usize,
    /// Resumes from a bookmark beyond the last batch.
    bookmark_resumes: usize,
}

/// A watcher that cancels its stream at random moments (after a random
/// message, or when a random lifetime runs out) and resumes from its last
/// batch + 1 or its last bookmark + 1, checking order as it goes, until it
/// has covered the writers' final revision for its scope.
#[allow(clippy::too_many_arguments)]
async fn resuming_watcher(
    name: String,
    mut client: GroupClient,
    user: Option<&'static str>,
    all_users: bool,
    initial_start: u64,
    mut rng: Rng,
    done: watch::Receiver<Option<Targets>>,
) -> WatcherLog {
    let target = || done.borrow().as_ref().map(|t| user.map_or(t.global, |u| t.per_user[u]));
    let mut first_cover = initial_start.checked_sub(1);
    let mut cover = first_cover.unwrap_or(0);
    let mut last_batch = cover;
    let mut start = initial_start;
    let mut log =
        WatcherLog { name: name.clone(), user, first_cover: 0, batches: Vec::new(), opens: 0, bookmark_resumes: 0 };
    loop {
        let request = WatchGroupEventsRequest { start_revision: start, all_users, ..Default::default() };
        let mut stream = open(&mut client, request)
            .await
            .unwrap_or_else(|status| panic!("{name}: watch from {start} refused: {status:?}"));
        log.opens += 1;
        let lifetime = Instant::now() + Duration::from_millis(20 + rng.below(300));
        let mut first_message = true;
        loop {
            if let (Some(fc), Some(t)) = (first_cover, target()) {
                if cover >= t {
                    log.first_cover = fc;
                    return log;
                }
            }
            let received = tokio::select! {
                received = tokio::time::timeout(PROMPT, stream.message()) => {
                    received.unwrap_or_else(|_| panic!("{name}: no message within {PROMPT:?} (start {start})"))
                }
                _ = tokio::time::sleep_until(lifetime) => break,
            };
            let msg = match received {
                Ok(Some(response)) => to_msg(response),
                Ok(None) => panic!("{name}: stream from {start} ended"),
                Err(status) => panic!("{name}: stream from {start} failed: {status:?}"),
            };
            match msg {
                Msg::Bookmark(b) if start == 0 && first_message => {
                    first_cover = Some(b);
                    cover = b;
                    last_batch = b;
                }
                Msg::Bookmark(b) => {
                    assert!(start == 0 || b + 1 >= start, "{name}: bookmark {b} below start {start}");
                    assert!(b >= last_batch, "{name}: bookmark {b} below the last batch {last_batch}");
                    cover = cover.max(b);
                }
                Msg::Events(batch) => {
                    assert!(!(start == 0 && first_message), "{name}: a watch from 0 must begin with a bookmark");
                    assert!(batch.revision >= start, "{name}: batch {} before start {start}", batch.revision);
                    assert!(
                        batch.revision > cover,
                        "{name}: batch {} arrived although {cover} was already covered (duplicate or out of order)",
                        batch.revision
                    );
                    check_batch_shape(&batch, user);
                    cover = batch.revision;
                    last_batch = batch.revision;
                    log.batches.push(batch);
                }
                Msg::Snapshot(snapshot) => panic!("{name}: unrequested snapshot {snapshot:?}"),
            }
            first_message = false;
            if rng.chance(1, 16) {
                break;
            }
        }
        drop(stream);
        start = match first_cover {
            None => 0,
            Some(_) if rng.chance(1, 2) => last_batch + 1,
            Some(_) => {
                if cover > last_batch {
                    log.bookmark_resumes += 1;
                }
                cover + 1
            }
        };
    }
}

const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// The robustness check. Writers race over three users (creates, deletes,
/// renames, reorders, adds, removes, upserts, registry deletions) while
/// user watchers, admin-for-user watchers and all_users watchers cancel and
/// resume at random. Afterwards, for every watcher: revisions strictly
/// increasing, no duplicate, no gap (exactly the stored log of its scope
/// after its start, batch for batch); the stored log is exactly the set of
/// revisions the writers were told, each known change is in its batch, the
/// global log has every revision a writer was told once, in order (and
/// nothing else); and replaying each user's
/// events from revision 1 gives the groups, order, members and
/// conversations the read RPCs report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_resuming_watchers_keep_every_guarantee() {
    let seed = seed();
    let s = TestServer::start_with(|c| c.watch.bookmark_interval = Duration::from_millis(50)).await;
    let (done_tx, done_rx) = watch::channel::<Option<Targets>>(None);

    let mut watchers = Vec::new();
    let mut index = 0;
    let mut spawn_watcher = |name: String, client, user, all_users, start| {
        index += 1;
        let rng = Rng::derive(seed, index);
        watchers.push(tokio::spawn(resuming_watcher(name, client, user, all_users, start, rng, done_rx.clone())));
    };
    for user in USERS {
        spawn_watcher(format!("{user} #1 from 1"), s.group_client(user), Some(user), false, 1);
        spawn_watcher(format!("{user} #2 from 0"), s.group_client(user), Some(user), false, 0);
        spawn_watcher(format!("admin for {user} from 1"), s.admin_group_client(Some(user)), Some(user), false, 1);
    }
    spawn_watcher("all users from 1".into(), s.admin_group_client(None), None, true, 1);
    spawn_watcher("all users from 0".into(), s.admin_group_client(None), None, true, 0);
    let watcher_count = watchers.len();

    // A smart group per user (conversations with unread messages), so the
    // writers' registry changes move conversations in and out of it: the
    // RULE events of those batches are under every guarantee too.
    let mut smart_revisions = Vec::new();
    for user in USERS {
        let created = s
            .group_client(user)
            .create_conversation_group(CreateConversationGroupRequest {
                group_name: "unread".into(),
                rule: Some(GroupRule { has_unread_count: Some(true), ..Default::default() }),
                ..Default::default()
            })
            .await
            .expect("smart group")
            .into_inner();
        smart_revisions.push((user, created.revision));
    }

    let writers = spawn_writers(&s, &USERS, 2, 150, seed);
    let writer_logs = join_all("writers", writers, Duration::from_secs(120)).await;

    let mut returned: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (user, revision) in smart_revisions {
        returned.entry(user).or_default().insert(revision);
    }
    let mut changes: Vec<(u64, Ev, &str)> = Vec::new();
    for log in &writer_logs {
        returned.entry(log.user).or_default().extend(&log.returned);
        changes.extend(log.changes.iter().map(|(r, e)| (*r, e.clone(), log.user)));
    }
    let per_user: BTreeMap<&'static str, u64> =
        USERS.iter().map(|u| (*u, returned.get(u).and_then(|r| r.last().copied()).unwrap_or(0))).collect();
    // The last revision a writer was told; the server is at it (on etcd
    // possibly past it: heartbeats take revisions too).
    let global = *per_user.values().max().expect("users");
    published_revision(&s, global).await;
    let refused: usize = writer_logs.iter().map(|l| l.refused).sum();
    eprintln!("writers: last revision {global}, {} known changes, {refused} refused calls", changes.len());
    done_tx.send_replace(Some(Targets { per_user: per_user.clone(), global }));
    let watcher_logs = join_all("watchers", watchers, Duration::from_secs(60)).await;

    // The stored log, read by fresh watchers.
    let all_log = full_log(&mut s.admin_group_client(None), all_users_from(1), global).await;
    let all_returned: Vec<u64> = returned.values().flatten().copied().collect::<BTreeSet<u64>>().into_iter().collect();
    assert_eq!(revisions(&all_log), all_returned, "global log: every revision a writer was told, once, in order");
    let by_revision: BTreeMap<u64, &EventBatch> = all_log.iter().map(|b| (b.revision, b)).collect();
    let mut logs: BTreeMap<&str, Vec<EventBatch>> = BTreeMap::new();
    for user in USERS {
        let log = full_log(&mut s.group_client(user), from(1), per_user[user]).await;
        let from_all: Vec<EventBatch> = all_log.iter().filter(|b| user_of(b) == user).cloned().collect();
        assert_eq!(log, from_all, "{user}: own log = all-users log restricted to {user}");
        let stored: BTreeSet<u64> = revisions(&log).into_iter().collect();
        assert_eq!(stored, returned[user], "{user}: stored revisions = revisions returned to the writers");
        logs.insert(user, log);
    }

    // Each known change has its own revision and its event.
    let mut seen = BTreeSet::new();
    for (revision, event, user) in &changes {
        assert!(seen.insert(*revision), "two changing calls were told the same revision {revision}");
        let batch = by_revision.get(revision).unwrap_or_else(|| panic!("no batch at {user}'s revision {revision}"));
        assert_change_recorded(batch, event, user);
    }

    let rule_events = logs
        .values()
        .flatten()
        .flat_map(|b| &b.events)
        .filter(
            |e| matches!(&e.kind, Some(Ev::ConversationsAddedToGroup(a)) if a.reason == AdditionReason::Rule as i32),
        )
        .count();
    assert!(rule_events > 0, "the writers' registry changes moved conversations into the smart groups");

    // Final state: replay vs the read RPCs.
    for user in USERS {
        let model = Model::replay(&logs[user]);
        assert_model_matches(&model, &observe(&mut s.group_client(user)).await, user);
    }

    // Every watcher: exactly the log of its scope after its start.
    let (mut opens, mut bookmark_resumes) = (0, 0);
    for log in &watcher_logs {
        let scope_log = match log.user {
            Some(user) => &logs[user],
            None => &all_log,
        };
        let expected: Vec<EventBatch> = scope_log.iter().filter(|b| b.revision > log.first_cover).cloned().collect();
        assert_eq!(
            revisions(&log.batches),
            revisions(&expected),
            "{}: received revisions vs stored log (after {})",
            log.name,
            log.first_cover
        );
        assert_eq!(log.batches, expected, "{}: received batches vs stored log", log.name);
        opens += log.opens;
        bookmark_resumes += log.bookmark_resumes;
    }
    eprintln!("watchers: {watcher_count} watchers, {opens} streams, {bookmark_resumes} resumes past the last batch");
    assert!(opens >= 3 * watcher_count, "watchers were meant to cancel and resume often: {opens} streams");
    no_watchers_left(&s).await;
}

// ---------------------------------------------------------------------------
// A watcher that does not read
// ---------------------------------------------------------------------------

/// A watcher that never reads (on a connection with a small flow-control
/// window, so the server cannot buffer its backlog) while 3000 mutations
/// land: the writers all finish, a reading watcher gets everything in
/// order, and when the slow watcher finally reads it gets every batch in
/// order with no gap (it fell behind its ring and caught up from the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_never_reads_blocks_nobody_and_later_catches_up_without_gap() {
    const WRITERS: usize = 30;
    const PER_WRITER: usize = 100;
    // Far more batches than the user's live ring, the stream's buffer and a
    // 16 KiB flow-control window can hold: the slow watcher must lag.
    const _: () = assert!(WRITERS * PER_WRITER > 4 * convgroups::config::DEFAULT_WATCH_USER_RING);
    const MUTATIONS: usize = WRITERS * PER_WRITER;
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    const GROUPS: usize = 10;
    let mut setup = 0;
    for g in 0..GROUPS {
        setup = create(&mut gc, &format!("g{g}"), &["C2Cseed"]).await.unwrap().revision;
    }

    let slow_channel = connect(&s, Some(16 * 1024)).await;
    let mut slow_client = user_client_on(&s, slow_channel, "alice");
    let mut slow = open_ok(&mut slow_client, from(0)).await;
    let mut fast = open_ok(&mut gc, from(0)).await;
    let fast_start = expect_bookmark(&mut fast).await;
    assert_bookmark_now(&s, fast_start, setup).await;
    // The revisions are known only once written: the reader counts batches.
    let fast_reader = tokio::spawn(async move { read_batches_from(&mut fast, MUTATIONS, fast_start).await });

    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut gc = s.group_client("alice");
        writers.push(tokio::spawn(async move {
            let group = format!("g{}", w % GROUPS);
            let mut revisions = Vec::with_capacity(PER_WRITER);
            let mut contended = 0;
            for i in 0..PER_WRITER {
                let id = format!("C2Cw{w}-{}", i / 2);
                let revision = loop {
                    let result = if i % 2 == 0 {
                        add(&mut gc, &group, &[&id]).await.map(|r| r.revision)
                    } else {
                        remove(&mut gc, &group, &[&id]).await.map(|r| r.revision)
                    };
                    match result {
                        Ok(revision) => break revision,
                        Err(status) if refused_under_contention(&status) => contended += 1,
                        Err(status) => panic!("writer {w}, mutation {i}: {status:?}"),
                    }
                };
                revisions.push(revision);
            }
            (revisions, contended)
        }));
    }
    let results = join_all("writers", writers, Duration::from_secs(180)).await;
    let contended: usize = results.iter().map(|(_, c)| c).sum();
    let written: BTreeSet<u64> = results.into_iter().flat_map(|(r, _)| r).collect();
    eprintln!(
        "{} mutations in {:?}, {contended} refused under contention and retried",
        written.len(),
        started.elapsed()
    );
    assert_eq!(written.len(), MUTATIONS, "every mutation took its own revision");
    assert!(*written.first().expect("writes") > setup, "the mutations come after the setup");
    let written: Vec<u64> = written.into_iter().collect();
    let target = *written.last().expect("writes");

    let fast_batches = tokio::time::timeout(Duration::from_secs(60), join(fast_reader))
        .await
        .expect("the reading watcher fell behind");
    assert_eq!(revisions(&fast_batches), written, "reading watcher: all, in order");

    // The slow watcher's first message is still its bookmark, from before
    // the mutations.
    let slow_start = expect_bookmark(&mut slow).await;
    assert_current("the slow watcher's bookmark", slow_start, setup);
    assert!(slow_start < written[0], "the slow watcher's bookmark {slow_start} claims a mutation it was owed");
    let slow_batches = tokio::time::timeout(Duration::from_secs(60), read_through_from(&mut slow, target, slow_start))
        .await
        .expect("the slow watcher did not catch up");
    assert_eq!(revisions(&slow_batches), revisions(&fast_batches), "slow watcher: every revision, in order");
    assert_eq!(slow_batches, fast_batches, "slow watcher: the same batches");
    let model = Model::replay(&full_log(&mut gc, from(1), target).await);
    assert_model_matches(&model, &observe(&mut gc).await, "after 3000 mutations");
}

/// Whether a mutation was refused, certainly not applied, because it could
/// not commit in time: on etcd a mutation commits only if the user's record
/// is unchanged since it was read, and gives up after `--etcd-retry-for`
/// (or an overloaded etcd's request timeout) with UNAVAILABLE /
/// STORAGE_UNAVAILABLE without `outcome: unknown`. Many concurrent writers
/// of one user on a busy machine provoke that; the stored log is still
/// checked against what writers were told, so a refused call that did
/// apply would fail the tests. Never accepted on sled, where writers of a
/// user queue.
fn refused_under_contention(status: &Status) -> bool {
    let Some(info) = status.get_details_error_info() else { return false };
    on_etcd()
        && status.code() == Code::Unavailable
        && info.reason == "STORAGE_UNAVAILABLE"
        && !info.metadata.contains_key("outcome")
}

// ---------------------------------------------------------------------------
// Many watchers
// ---------------------------------------------------------------------------

/// 1,000 watch streams at once over four connections (800 of one user,
/// 200 all_users): each receives every batch of a sequence of mutations,
/// in order, identical to the stored log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_watchers_each_receive_every_event_in_order() {
    const WATCHERS: usize = 1000;
    const CHANNELS: usize = 4;
    const MUTATIONS: u64 = 20;
    let s = TestServer::start_with(|c| c.watch.max_watchers_per_user = WATCHERS).await;
    let mut gc = s.group_client("alice");
    let base = create(&mut gc, "G", &["C2C0"]).await.unwrap().revision;

    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(connect(&s, None).await);
    }
    let (ready_tx, mut ready_rx) = mpsc::channel::<u64>(WATCHERS);
    let mut handles = Vec::new();
    for i in 0..WATCHERS {
        let channel = channels[i % CHANNELS].clone();
        let all_users = i % 5 == 4;
        let mut client =
            if all_users { admin_client_on(&s, channel, None) } else { user_client_on(&s, channel, "alice") };
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            let request = if all_users { all_users_from(0) } else { from(0) };
            let mut stream = open_ok(&mut client, request).await;
            let bookmark = expect_bookmark(&mut stream).await;
            ready.send(bookmark).await.expect("test alive");
            // The revisions are known only once written: count batches.
            read_batches_from(&mut stream, MUTATIONS as usize, bookmark).await
        }));
    }
    drop(ready_tx);
    let opening = async {
        let mut bookmarks = Vec::with_capacity(WATCHERS);
        for _ in 0..WATCHERS {
            let bookmark = ready_rx.recv().await.expect("a watcher task ended early");
            assert_current("a watcher's first bookmark", bookmark, base);
            bookmarks.push(bookmark);
        }
        bookmarks
    };
    let bookmarks =
        tokio::time::timeout(Duration::from_secs(60), opening).await.expect("1000 watchers did not open in time");
    let latest_start = bookmarks.into_iter().max().expect("watchers");
    assert_bookmark_now(&s, latest_start, base).await;
    assert_eq!(s.stats.watchers(), WATCHERS);

    let mut written = Vec::new();
    for i in 0..MUTATIONS {
        let id = format!("C2C{}", i / 2 + 1);
        let revision = if i % 2 == 0 {
            add(&mut gc, "G", &[&id]).await.expect("add").revision
        } else {
            remove(&mut gc, "G", &[&id]).await.expect("remove").revision
        };
        written.push(revision);
    }
    assert_increasing(&written, "mutations made one after the other");
    assert!(written[0] > latest_start, "every watcher started before the mutations");
    let target = *written.last().expect("mutations");
    let reference = full_log(&mut gc, from(base + 1), target).await;
    assert_eq!(revisions(&reference), written);

    let received = join_all("1000 watchers", handles, Duration::from_secs(120)).await;
    for (i, batches) in received.iter().enumerate() {
        assert_eq!(revisions(batches), written, "watcher {i}: every revision, in order");
        assert_eq!(*batches, reference, "watcher {i}: the stored batches");
    }
    drop(received);
    drop(channels);
    no_watchers_left(&s).await;
}

// ---------------------------------------------------------------------------
// Snapshots under writes
// ---------------------------------------------------------------------------

/// What a send_snapshot watcher received.
struct SnapshotLog {
    snapshot: Snapshot,
    bookmark: u64,
    batches: Vec<EventBatch>,
}

/// Watches opened with send_snapshot while writers change alice's groups
/// (and bob's, as noise): each snapshot equals the replayed log at its
/// revision (a consistent cut, nothing half-applied), the live batches
/// after it are exactly the stored ones after its revision, and the
/// snapshot plus those batches equals the final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_under_concurrent_writes_plus_live_events_equal_the_final_state() {
    let seed = seed();
    let s = TestServer::start_with(|c| c.watch.bookmark_interval = Duration::from_millis(50)).await;
    let (done_tx, done_rx) = watch::channel::<Option<u64>>(None);

    let mut writers = spawn_writers(&s, &["alice"], 2, 150, seed);
    writers.extend(spawn_writers(&s, &["bob"], 1, 60, seed ^ 0xb0b));

    let mut rng = Rng::derive(seed, 77);
    let mut watchers: Vec<JoinHandle<SnapshotLog>> = Vec::new();
    while watchers.len() < 12 && !writers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        let mut gc = s.group_client("alice");
        let mut done = done_rx.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = open_ok(&mut gc, WatchGroupEventsRequest { send_snapshot: true, ..from(0) }).await;
            let Msg::Snapshot(snapshot) = next_msg(&mut stream).await else {
                panic!("send_snapshot: the first message must be the snapshot")
            };
            let bookmark = expect_bookmark(&mut stream).await;
            assert!(bookmark >= snapshot.revision, "bookmark {bookmark} below the snapshot {}", snapshot.revision);
            let target = *done.wait_for(|t| t.is_some()).await.expect("test alive");
            let batches = read_through_from(&mut stream, target.expect("set"), bookmark).await;
            SnapshotLog { snapshot, bookmark, batches }
        }));
    }
    let writer_logs = join_all("writers", writers, Duration::from_secs(120)).await;
    let alice_last = writer_logs.iter().filter(|l| l.user == "alice").flat_map(|l| l.returned.last()).max().copied();
    let alice_last = alice_last.expect("alice changed something");
    done_tx.send_replace(Some(alice_last));
    let logs = join_all("snapshot watchers", watchers, Duration::from_secs(60)).await;

    let mut gc = s.group_client("alice");
    let reference = full_log(&mut gc, from(1), alice_last).await;
    let observed = observe(&mut gc).await;
    assert_model_matches(&Model::replay(&reference), &observed, "alice's full replay");
    let mut snapshot_revisions = BTreeSet::new();
    let mut followed = 0;
    for (i, log) in logs.iter().enumerate() {
        let at = log.snapshot.revision;
        snapshot_revisions.insert(at);
        let before: Vec<EventBatch> = reference.iter().filter(|b| b.revision <= at).cloned().collect();
        let after: Vec<EventBatch> = reference.iter().filter(|b| b.revision > at).cloned().collect();
        let cut = Model::from_snapshot(&log.snapshot);
        assert_eq!(cut.groups, Model::replay(&before).groups, "snapshot {i} at {at}: equals the log replayed to {at}");
        assert!(
            after.first().is_none_or(|b| b.revision > log.bookmark),
            "snapshot {i}: bookmark {} claims batch {:?} was sent",
            log.bookmark,
            after.first().map(|b| b.revision)
        );
        assert_eq!(log.batches, after, "snapshot {i} at {at}: the live batches after it");
        let mut model = cut;
        model.apply_all(&log.batches);
        assert_model_matches(&model, &observed, &format!("snapshot {i} at {at} + live batches"));
        followed += usize::from(!log.batches.is_empty());
    }
    eprintln!(
        "{} snapshots at {} distinct revisions, {followed} followed by changes",
        logs.len(),
        snapshot_revisions.len()
    );
    assert!(snapshot_revisions.len() >= 2, "snapshots were meant to be taken while writes went on");
    assert!(followed >= 1, "at least one snapshot was meant to be followed by live changes");
}
