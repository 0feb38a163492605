//! Cluster mode on a real 3-member etcd cluster (Debian's `etcd`, started by
//! the harness on free loopback ports) with three `convgroups serve
//! --backend etcd` replicas as child processes.
//!
//! The guarantees across replicas (a write acknowledged on one is read on
//! another right after; `expected_revision` conflicts are caught across
//! replicas; a watch on any replica from a revision another returned is
//! ordered, gap-free and duplicate-free), and the faults: the etcd leader
//! killed and restarted, a replica killed, a member stopped, every member
//! stopped (the replica cut off), every member killed and restarted, and
//! etcd's history compacted while a replica was away. Each fault runs under
//! writers and watchers on all three replicas and ends with the same checks
//! (`cluster_support::check`).
//!
//! Every fault runs a second time under the group workload
//! (`cluster_support::groups`), next to its adds-workload twin and sharing
//! its choreography: upserts that make conversations join and leave smart
//! groups by rule, MoveConversations between two plain groups,
//! MoveConversationsInGroup and pins in a MANUAL group,
//! MarkConversationGroupRead of a smart group, and SetConversationGroupMute
//! of plain group `A` with `apply_to_new_members`. Its check
//! (`cluster_support::groups::check`): every watcher's batches equal the
//! stored log; folding them gives every group's listed members; no move is
//! half applied in any batch and each conversation is where its last
//! acknowledged move put it; smart groups hold exactly what their rules
//! select from the stored fields; the MANUAL group lists its pins then its
//! manual order as the events say, every member once; every conversation's
//! receive option is what the mutes of `A` and the moves into it give it by
//! the log, and each acknowledged mute's option is `A`'s at its revision.
//! What a twin asserts about the fault itself (no stale read with a member
//! stopped; refusals with `STORAGE_UNAVAILABLE`, no new stream, streams
//! ended and recovery with no restart when cut off; the compaction met)
//! the group test asserts too; after the compaction it also reads at the
//! cluster's revision through the replica that was away, with every user's
//! record in its memory, and must see what it missed.

mod cluster_support;
mod linearizability;
mod support;

use std::time::{Duration, Instant};

use cluster_support::groups::{self, GroupWorkload};
use cluster_support::{check, info, reason, setup, Deployment, Workload};
use convgroups::pb::move_conversations_in_group_request::Placement;
use convgroups::pb::*;
use linearizability::{Op, Ret};
use support::inproc::group_list;
use support::watch::{from, full_log};
use tonic::Code;

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn add(client: &mut support::client::GroupClient, id: &str, expected: Option<u64>) -> Result<u64, tonic::Status> {
    client
        .add_conversations_to_group(AddConversationsToGroupRequest {
            group_name: "G".into(),
            conversation_ids: vec![id.into()],
            expected_revision: expected,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_is_read_on_every_other_right_after() {
    let d = Deployment::start();
    setup(&d).await;
    for n in 0..30u32 {
        let writer = (n % 3) as usize;
        let revision = add(&mut d.client(writer, "ann"), &format!("C2Cread{n}"), None).await.expect("add");
        for reader in 0..3 {
            let list = d
                .client(reader, "ann")
                .get_conversation_group_list(GetConversationGroupListRequest::default())
                .await
                .expect("list")
                .into_inner();
            assert!(
                list.revision >= revision,
                "replica {reader} read revision {} after {revision} was acknowledged on {writer}",
                list.revision
            );
            assert_eq!(
                list.groups[0].conversation_count,
                n + 2,
                "replica {reader} missed the add acknowledged on {writer}"
            );
        }
    }
}

/// A read that passes the revision its client has seen (`min_revision`)
/// may be answered from a replica's memory, and still sees every write up to
/// that revision whichever replica made it: the change feed drops a user's
/// kept record before it reports the change's revision as reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_at_the_clients_revision_on_another_replica_sees_its_write_from_memory() {
    let d = Deployment::start();
    setup(&d).await;
    let read = |replica: usize, min: u64| {
        let mut client = d.client(replica, "ann");
        async move {
            client
                .get_conversation_group_list(GetConversationGroupListRequest { min_revision: Some(min) })
                .await
                .expect("read with min_revision")
                .into_inner()
        }
    };
    for n in 0..30u32 {
        let writer = (n % 3) as usize;
        let revision = add(&mut d.client(writer, "ann"), &format!("C2Cseen{n}"), None).await.expect("add");
        for reader in 0..3 {
            // Twice: the second read finds the first one's record in memory.
            for _ in 0..2 {
                let list = read(reader, revision).await;
                assert_eq!(
                    (list.groups[0].conversation_count, list.revision),
                    (n + 2, revision),
                    "replica {reader} answered min_revision {revision} without the add acknowledged on {writer}"
                );
            }
        }
    }
    for replica in 0..3 {
        let metrics = d.metrics(replica);
        let hits = cluster_support::sample(&metrics, "convgroups_etcd_read_cache_total", &[r#"result="hit""#]);
        assert!(hits.unwrap_or(0.0) >= 10.0, "replica {replica} answered few reads from memory: {hits:?}");
    }
}

/// A watch "from now" opened right after an acknowledgement, on a replica
/// whose change feed may not have brought that batch yet, starts after it:
/// the acknowledged change is history, and the first batch is the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_now_opened_after_an_answer_starts_after_it_on_every_replica() {
    let d = Deployment::start();
    setup(&d).await;
    for n in 0..20u32 {
        let (writer, watcher) = ((n % 3) as usize, ((n + 1) % 3) as usize);
        let before = add(&mut d.client(writer, "ann"), &format!("C2Cbefore{n}"), None).await.expect("add");
        let mut stream = d
            .client(watcher, "ann")
            .watch_group_events(WatchGroupEventsRequest::default())
            .await
            .expect("watch from now")
            .into_inner();
        let after = add(&mut d.client(writer, "ann"), &format!("C2Cafter{n}"), None).await.expect("add");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("a message")
                .expect("ok")
                .expect("open");
            match message.kind {
                Some(watch_group_events_response::Kind::Bookmark(b)) => {
                    assert!(b.revision >= before, "replica {watcher} started before {before}: bookmark {}", b.revision)
                }
                Some(watch_group_events_response::Kind::Events(batch)) => {
                    assert_eq!(batch.revision, after, "replica {watcher}: first batch after the answer at {before}");
                    break;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_revision_conflicts_are_caught_across_replicas() {
    let d = Deployment::start();
    setup(&d).await;
    let mut clients: Vec<_> = (0..3).map(|r| d.client(r, "ben")).collect();
    for round in 0..15 {
        let current = clients[0]
            .get_conversation_group_list(GetConversationGroupListRequest::default())
            .await
            .expect("list")
            .into_inner()
            .revision;
        let calls = clients.iter().cloned().enumerate().map(|(r, mut client)| {
            let id = format!("C2Cr{round}x{r}");
            async move { add(&mut client, &id, Some(current)).await }
        });
        let results = futures_join_all(calls).await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {won} of 3 writers with expected_revision {current} won: {results:?}");
        for result in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(result.code(), Code::Aborted, "the losers get ABORTED: {result:?}");
            assert_eq!(reason(result), "REVISION_MISMATCH");
        }
    }
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = Vec::new();
    for future in futures {
        set.push(tokio::spawn(future));
    }
    let mut outputs = Vec::new();
    for handle in set {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_replica_from_a_revision_of_another_replays_then_follows() {
    let d = Deployment::start();
    let start = setup(&d).await;
    let mut revisions = Vec::new();
    for n in 0..5 {
        revisions.push(add(&mut d.client(n % 3, "cai"), &format!("C2Cpast{n}"), None).await.expect("add"));
    }
    let mut stream = d
        .client(2, "cai")
        .watch_group_events(WatchGroupEventsRequest { start_revision: revisions[0], ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    for n in 0..5 {
        revisions.push(add(&mut d.client(n % 2, "cai"), &format!("C2Clive{n}"), None).await.expect("add"));
    }
    let mut got = Vec::new();
    while got.len() < revisions.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a message within 10 s")
            .expect("stream ok")
            .expect("stream open");
        if let Some(watch_group_events_response::Kind::Events(batch)) = message.kind {
            got.push(batch.revision);
        }
    }
    assert_eq!(got, revisions, "replayed then live, each once, in order (setup was at {start})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_on_a_replica_cost_etcd_one_watch() {
    let d = Deployment::start();
    setup(&d).await;
    let before = cluster_support::etcd_watchers(&d.etcd);
    let mut streams = Vec::new();
    for n in 0..200 {
        let user = cluster_support::USERS[n % 3];
        let stream =
            d.client(0, user).watch_group_events(WatchGroupEventsRequest::default()).await.expect("watch").into_inner();
        streams.push(stream);
    }
    let after = cluster_support::etcd_watchers(&d.etcd);
    assert_eq!(after, before, "200 watch streams on a replica opened etcd watches ({before} → {after})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_under_load_loses_nothing() {
    let mut d = Deployment::start();
    let start = setup(&d).await;
    let workload = Workload::start(&d, start).await;
    pause(1500).await;
    let leader = d.etcd.leader();
    d.etcd.kill(leader);
    pause(2500).await;
    d.etcd.restart(leader);
    d.etcd.wait_healthy();
    pause(1000).await;
    let recorded = workload.finish(&d, (leader + 1) % 3).await;
    check(&d, 0, &recorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_under_load_its_clients_resume_on_another() {
    let mut d = Deployment::start();
    let start = setup(&d).await;
    let workload = Workload::start(&d, start).await;
    pause(1500).await;
    d.kill_replica(1);
    pause(2000).await;
    let recorded = workload.finish(&d, 0).await;
    assert!(recorded.seen.iter().any(|(_, s)| s.resumes > 0), "no watcher had to resume: the kill did not bite");
    check(&d, 2, &recorded).await;
    d.restart_replica(1);
    check(&d, 1, &recorded).await;
}

/// The group workload (smart groups, moves between groups, manual order,
/// pins; `cluster_support::groups`) across the etcd leader's kill -9 and
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_under_group_moves_rules_and_reorders_loses_nothing() {
    let mut d = Deployment::start();
    groups::setup(&d).await;
    let workload = GroupWorkload::start(&d);
    pause(1500).await;
    let leader = d.etcd.leader();
    d.etcd.kill(leader);
    pause(2500).await;
    d.etcd.restart(leader);
    d.etcd.wait_healthy();
    pause(1000).await;
    let recorded = workload.finish(&d, (leader + 1) % 3).await;
    groups::check(&d, 0, &recorded).await;
}

/// The group workload across a replica's kill -9: its writers and watchers
/// go on on the others, and the replica restarted reads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_under_group_moves_rules_and_reorders_its_clients_resume_on_another() {
    let mut d = Deployment::start();
    groups::setup(&d).await;
    let workload = GroupWorkload::start(&d);
    pause(1500).await;
    d.kill_replica(1);
    pause(2000).await;
    let recorded = workload.finish(&d, 0).await;
    assert!(recorded.seen.iter().any(|(_, s)| s.resumes > 0), "no watcher had to resume: the kill did not bite");
    groups::check(&d, 2, &recorded).await;
    d.restart_replica(1);
    groups::check(&d, 1, &recorded).await;
}

/// Stops (SIGSTOP) member 0, where every replica starts and so the one they
/// must leave, for 6 s, while `write(replica, n)` writes as `ann` through
/// replica n % 3 and a read through the next replica must be at least at the
/// revision of each acknowledged write; then resumes it. Returns how many of
/// these writes were acknowledged.
async fn stop_a_member_reading_after_each_write<F, Fut>(d: &mut Deployment, mut write: F) -> usize
where
    F: FnMut(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<u64, tonic::Status>>,
{
    d.etcd.stop(0);
    let deadline = Instant::now() + Duration::from_secs(6);
    let (mut n, mut acked) = (0, 0);
    while Instant::now() < deadline {
        let writer = n % 3;
        if let Ok(revision) = write(writer, n).await {
            acked += 1;
            let reader = (writer + 1) % 3;
            let read = d
                .client(reader, "ann")
                .get_conversation_group_list(GetConversationGroupListRequest::default())
                .await
                .expect("a read on the majority")
                .into_inner();
            assert!(
                read.revision >= revision,
                "stale read: {} on replica {reader} after {revision} on {writer}",
                read.revision
            );
        }
        n += 1;
    }
    d.etcd.resume(0);
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_leaves_the_majority_serving_with_no_stale_read() {
    let mut d = Deployment::start();
    let start = setup(&d).await;
    let workload = Workload::start(&d, start).await;
    pause(1000).await;
    // These adds are part of ann's history too (one more client thread).
    let history = workload.history("ann");
    let clients: Vec<_> = (0..3).map(|r| d.client(r, "ann")).collect();
    let acked_while_stopped = stop_a_member_reading_after_each_write(&mut d, |writer, n| {
        let (history, mut client) = (history.clone(), clients[writer].clone());
        async move {
            let conversation = format!("C2Cstale{n}");
            let call = history.invoke(1000, Op::Add { conversation: conversation.clone() });
            let result = add(&mut client, &conversation, None).await;
            match cluster_support::classify(result.clone()) {
                cluster_support::Outcome::Ok(revision) => history.ok(call, Ret::Added { revision }),
                cluster_support::Outcome::NotApplied(_) => history.failed(call),
                cluster_support::Outcome::Unknown(_) => history.unknown(call),
            }
            result
        }
    })
    .await;
    assert!(acked_while_stopped > 0, "no add was acknowledged while the member was stopped");
    let recorded = workload.finish(&d, 0).await;
    check(&d, 1, &recorded).await;
}

/// The group workload across a stopped member, with the same reads after
/// writes (reorders of `M`, recorded with the workload's calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_under_group_moves_rules_mutes_and_reorders_gives_no_stale_read() {
    let mut d = Deployment::start();
    groups::setup(&d).await;
    let workload = GroupWorkload::start(&d);
    pause(1000).await;
    let extra = workload.extra_writer(&d, "ann");
    let acked_while_stopped = stop_a_member_reading_after_each_write(&mut d, |writer, n| {
        let mut extra = extra.clone();
        let op = groups::Op::Reorder {
            ids: vec![groups::manual_member(n % groups::MANUAL_MEMBERS)],
            placement: Placement::ToEnd(true),
        };
        async move { extra.call(writer, op).await }
    })
    .await;
    assert!(acked_while_stopped > 0, "no reorder was acknowledged while the member was stopped");
    pause(1000).await;
    let recorded = workload.finish(&d, 0).await;
    groups::check(&d, 1, &recorded).await;
}

/// Stops (SIGSTOP) every member, cutting every replica off, and waits until
/// `replicas` report NOT_SERVING.
async fn cut_every_replica_off(d: &mut Deployment, replicas: &[usize]) {
    for member in 0..3 {
        d.etcd.stop(member);
    }
    for replica in replicas {
        d.wait_health(*replica, false, Duration::from_secs(20)).await;
    }
}

/// Resumes every member and waits until `replicas` report SERVING again (by
/// themselves: nothing is restarted).
async fn reconnect_every_replica(d: &mut Deployment, replicas: &[usize]) {
    for member in 0..3 {
        d.etcd.resume(member);
    }
    for replica in replicas {
        d.wait_health(*replica, true, Duration::from_secs(30)).await;
    }
}

/// A mutation refused by a cut-off replica: UNAVAILABLE, saying why.
fn assert_refused_as_cut_off(refused: &tonic::Status) {
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(reason(refused), "STORAGE_UNAVAILABLE", "{refused:?}");
    assert!(refused.message().contains("storage"), "the message says why: {}", refused.message());
}

/// A cut-off replica opens no new stream: it could promise it nothing.
async fn assert_no_new_stream(d: &Deployment, replica: usize) {
    let watch = d
        .client(replica, "ann")
        .watch_group_events(WatchGroupEventsRequest { start_revision: 0, ..Default::default() })
        .await
        .expect_err("no new stream while cut off");
    assert_eq!((watch.code(), reason(&watch).as_str()), (Code::Unavailable, "STORAGE_UNAVAILABLE"), "{watch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_etcd_refuses_ends_streams_and_recovers_by_itself() {
    let mut d = Deployment::start();
    let start = setup(&d).await;
    let mut stream = d
        .client(0, "ann")
        .watch_group_events(WatchGroupEventsRequest { start_revision: start + 1, ..Default::default() })
        .await
        .expect("watch")
        .into_inner();
    let before = add(&mut d.client(0, "ann"), "C2Cbefore", None).await.expect("add before");
    cut_every_replica_off(&mut d, &[0]).await;
    let refused = add(&mut d.client(0, "ann"), "C2Cduring", None).await.expect_err("refused while cut off");
    assert_refused_as_cut_off(&refused);
    // A new stream is refused too: the replica could promise it nothing.
    assert_no_new_stream(&d, 0).await;
    // The open stream ends, telling the client where to resume.
    let mut resume = None;
    let mut seen = Vec::new();
    while resume.is_none() {
        match tokio::time::timeout(Duration::from_secs(20), stream.message()).await.expect("the stream ends") {
            Ok(Some(message)) => {
                if let Some(watch_group_events_response::Kind::Events(batch)) = message.kind {
                    seen.push(batch.revision);
                }
            }
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                resume = Some(info(&status, "resume_revision").expect("resume_revision").parse::<u64>().unwrap());
            }
        }
    }
    assert_eq!(seen, vec![before], "the batch before the outage was delivered once");
    // Past `before` (delivered, not to repeat); it may be past before + 1,
    // as idle bookmarks (heartbeats) moved the stream on with no batch of
    // ann's in between. That it skips nothing is checked below: the resumed
    // stream's first batch is the first write after the outage.
    let resume = resume.unwrap();
    assert!(resume > before, "resume_revision {resume} would repeat the batch at {before}");
    reconnect_every_replica(&mut d, &[0]).await;
    let after = add(&mut d.client(0, "ann"), "C2Cafter", None).await.expect("mutations work again, no restart");
    let mut resumed = d
        .client(0, "ann")
        .watch_group_events(WatchGroupEventsRequest { start_revision: resume, ..Default::default() })
        .await
        .expect("resume")
        .into_inner();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), resumed.message())
            .await
            .expect("a message")
            .expect("ok")
            .expect("open");
        if let Some(watch_group_events_response::Kind::Events(batch)) = message.kind {
            assert_eq!(batch.revision, after, "resumed with no gap and no repeat");
            break;
        }
    }
    assert!(resume <= after, "resume_revision {resume} skips past the next write at {after}");
    assert!(!d.log(0).contains("panicked"), "{}", d.log(0));
}

/// The group workload while every replica is cut off: a mute and a reorder
/// are refused as not applied with the reason, no stream opens, every
/// watcher's stream ends and resumes, and every replica serves again by
/// itself, with nothing lost or applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_cut_off_under_group_moves_rules_mutes_and_reorders_refuse_and_recover_by_themselves() {
    let mut d = Deployment::start();
    groups::setup(&d).await;
    let workload = GroupWorkload::start(&d);
    pause(1500).await;
    cut_every_replica_off(&mut d, &[0, 1, 2]).await;
    let mut extra = workload.extra_writer(&d, "ann");
    let mute = groups::Op::Mute { opt: RecvOpt::NotReceive };
    assert_refused_as_cut_off(&extra.call(0, mute).await.expect_err("a mute refused while cut off"));
    let reorder = groups::Op::Reorder { ids: vec![groups::manual_member(0)], placement: Placement::ToStart(true) };
    assert_refused_as_cut_off(&extra.call(1, reorder.clone()).await.expect_err("a reorder refused while cut off"));
    assert_no_new_stream(&d, 2).await;
    reconnect_every_replica(&mut d, &[0, 1, 2]).await;
    for replica in 0..3 {
        extra.call(replica, reorder.clone()).await.expect("mutations work again, no restart");
    }
    pause(1500).await;
    let recorded = workload.finish(&d, 0).await;
    for (user, seen) in &recorded.seen {
        assert!(
            seen.endings.iter().any(|e| e.starts_with("stream on") && e.contains("Unavailable")),
            "a watcher of {user}: no open stream of it was ended UNAVAILABLE while cut off: {:?}",
            seen.endings
        );
    }
    groups::check(&d, 1, &recorded).await;
    for replica in 0..3 {
        assert!(!d.log(replica).contains("panicked"), "{}", d.log(replica));
    }
}

/// kill -9 of every member 1.5 s into a workload, a restart 1.5 s later,
/// and 2 s more of it.
async fn kill_and_restart_every_member(d: &mut Deployment) {
    pause(1500).await;
    d.etcd.kill_all();
    pause(1500).await;
    d.etcd.restart_all();
    pause(2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_killed_and_restarted_loses_nothing_acknowledged() {
    let mut d = Deployment::start();
    let start = setup(&d).await;
    let workload = Workload::start(&d, start).await;
    kill_and_restart_every_member(&mut d).await;
    let recorded = workload.finish(&d, 0).await;
    check(&d, 2, &recorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_killed_and_restarted_under_group_moves_rules_mutes_and_reorders_loses_nothing() {
    let mut d = Deployment::start();
    groups::setup(&d).await;
    let workload = GroupWorkload::start(&d);
    kill_and_restart_every_member(&mut d).await;
    let recorded = workload.finish(&d, 0).await;
    groups::check(&d, 2, &recorded).await;
}

/// Replicas 0 and 1 over every member, replica 2 over member 2 only, so
/// that stopping that member cuts off replica 2's change feed and nothing
/// else.
fn replica_2_on_member_2_alone() -> Deployment {
    let etcd = cluster_support::EtcdCluster::start(3);
    let all = etcd.endpoints_csv();
    let only_member_2 = etcd.endpoints()[2].clone();
    Deployment::start_on(etcd, vec![all.clone(), all, only_member_2])
}

/// Stops member 2 and waits until replica 2 has given its feed up (before
/// that, a quick resume would only continue the same etcd watch).
async fn take_replica_2_away(d: &mut Deployment) {
    d.wait_health(2, true, Duration::from_secs(10)).await;
    d.etcd.stop(2);
    d.wait_health(2, false, Duration::from_secs(20)).await;
}

/// Compacts etcd's history to now and brings member 2, and so replica 2,
/// back.
async fn compact_and_bring_replica_2_back(d: &mut Deployment) {
    d.etcd.compact_to_latest();
    // Killed and restarted rather than resumed: a restarted member serves
    // clients only once it has caught up with the cluster (the compaction
    // included), while a resumed one would first answer the feed's
    // reconnect still queued in its socket, from its old history.
    d.etcd.kill(2);
    d.etcd.restart(2);
    d.etcd.wait_healthy();
    d.wait_health(2, true, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_history_compacted_while_a_replica_was_away_is_filled_from_the_stored_log() {
    let mut d = replica_2_on_member_2_alone();
    let start = setup(&d).await;
    take_replica_2_away(&mut d).await;
    let mut written = Vec::new();
    for n in 0..20 {
        written.push(add(&mut d.client(n % 2, "ben"), &format!("C2Caway{n}"), None).await.expect("add on 0 and 1"));
    }
    compact_and_bring_replica_2_back(&mut d).await;
    // A watcher on replica 2 from before the outage gets every batch.
    let mut stream = d
        .client(2, "ben")
        .watch_group_events(WatchGroupEventsRequest { start_revision: start + 1, ..Default::default() })
        .await
        .expect("watch on replica 2")
        .into_inner();
    // Until every written batch came, or a bookmark says everything up to
    // the last one was sent (then a missing batch fails here at once,
    // instead of the test waiting on bookmarks for ever).
    let last = *written.last().expect("written");
    let mut got = Vec::new();
    while got.len() < written.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a message")
            .expect("ok")
            .expect("open");
        match message.kind {
            Some(watch_group_events_response::Kind::Events(batch)) => got.push(batch.revision),
            Some(watch_group_events_response::Kind::Bookmark(b)) if b.revision >= last => break,
            _ => {}
        }
    }
    assert_eq!(got, written);
    // And its live feed carries on past the compacted history.
    let live = add(&mut d.client(0, "ben"), "C2Clive", None).await.expect("add");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the live batch reaches replica 2")
            .expect("ok")
            .expect("open");
        match message.kind {
            Some(watch_group_events_response::Kind::Events(batch)) => {
                assert_eq!(batch.revision, live);
                break;
            }
            Some(watch_group_events_response::Kind::Bookmark(b)) => {
                assert!(b.revision < live, "a bookmark at {} passed the live batch {live} without it", b.revision)
            }
            _ => {}
        }
    }
    assert!(
        d.log(2).contains("compacted past the change feed"),
        "replica 2 should have met etcd's compaction on reconnecting:\n{}",
        d.log(2)
    );
}

/// Waits (bounded) until replica 2 has met etcd's compaction `times` times:
/// its feed meets it moments after the replica serves again.
async fn wait_compaction_met(d: &Deployment, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.log(2).matches("compacted past the change feed").count() < times {
        assert!(
            Instant::now() < deadline,
            "replica 2 should have met etcd's compaction on reconnecting:\n{}",
            d.log(2)
        );
        pause(100).await;
    }
}

/// The group workload across replica 2's absence and a compaction of etcd's
/// history past it; the workload ends while replica 2 is away, so that all
/// it missed comes from the stored log. Replica 2's replay from revision 1
/// passes `groups::check` and a watch on it from where it was before equals
/// the stored log. Then once more with every user's record in replica 2's
/// memory: its reads at the cluster's revision, which it may answer from
/// memory, see what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_history_compacted_while_a_replica_was_away_under_group_moves_rules_mutes_and_reorders() {
    let mut d = replica_2_on_member_2_alone();
    groups::setup(&d).await;
    let workload = GroupWorkload::start(&d);
    pause(1000).await;
    let mut before = Vec::new();
    for user in cluster_support::USERS {
        before.push(groups::current_revision(&mut d.client(2, user)).await);
    }
    take_replica_2_away(&mut d).await;
    pause(2000).await;
    let recorded = workload.finish(&d, 0).await;
    compact_and_bring_replica_2_back(&mut d).await;
    wait_compaction_met(&d, 1).await;
    groups::check(&d, 2, &recorded).await;
    for (user, before) in cluster_support::USERS.iter().zip(before) {
        let through = groups::current_revision(&mut d.client(0, user)).await;
        let on_2 = full_log(&mut d.client(2, user), from(before + 1), through).await;
        let stored = full_log(&mut d.client(0, user), from(before + 1), through).await;
        let revisions = |log: &[EventBatch]| log.iter().map(|b| b.revision).collect::<Vec<_>>();
        assert_eq!(
            revisions(&on_2),
            revisions(&stored),
            "{user}: replica 2's batches since {before} vs the stored log"
        );
        assert!(on_2 == stored, "{user}: replica 2's batches since {before} differ from the stored log");
    }

    // Every user's record read (and kept) by replica 2, which then misses a
    // reorder of each user's M.
    for user in cluster_support::USERS {
        groups::current_revision(&mut d.client(2, user)).await;
    }
    take_replica_2_away(&mut d).await;
    for user in cluster_support::USERS {
        let op = groups::Op::Reorder { ids: vec![groups::manual_member(0)], placement: Placement::ToEnd(true) };
        GroupWorkload::extra_writer_on(&d, user).call(0, op).await.expect("a reorder on replica 0");
    }
    compact_and_bring_replica_2_back(&mut d).await;
    wait_compaction_met(&d, 2).await;
    for user in cluster_support::USERS {
        let now = group_list(&mut d.client(0, user)).await;
        let read = d
            .client(2, user)
            .get_conversation_group_list(GetConversationGroupListRequest { min_revision: Some(now.revision) })
            .await
            .expect("a read at the cluster's revision on replica 2")
            .into_inner();
        assert_eq!(read, now, "{user}: replica 2 at min_revision {} vs replica 0", now.revision);
    }
}
