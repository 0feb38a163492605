//! Revisions and optimistic concurrency (contract §4 "Revisions"): every
//! change takes a higher revision, no-ops keep it, `expected_revision`
//! mismatches are ABORTED and change nothing.

use crate::support::inproc::*;
use convgroups::pb::*;
use tonic::Code;

/// Every kind of mutation that changes something returns a revision higher
/// than the one before, and the read RPCs report the latest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_changing_mutation_takes_a_higher_revision() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let mut revs = vec![revision(&mut gc).await];
    assert_eq!(revs[0], 0);

    revs.push(create(&mut gc, "A", &["C2Ca"]).await.unwrap().revision);
    revs.push(create(&mut gc, "B", &["C2Cb"]).await.unwrap().revision);
    revs.push(add(&mut gc, "A", &["C2Cc"]).await.unwrap().revision);
    revs.push(remove(&mut gc, "A", &["C2Cc"]).await.unwrap().revision);
    revs.push(rename(&mut gc, "A", "Alpha").await.unwrap().revision);
    revs.push(reorder(&mut gc, &["B", "Alpha"]).await.unwrap().revision);
    revs.push(upsert_ok(&mut cc, vec![ConversationUpdate { unread_count: Some(1), ..update("C2Ca") }]).await.revision);
    revs.push(upsert_ok(&mut cc, vec![ConversationUpdate { unread_count: Some(2), ..update("C2Ca") }]).await.revision);
    revs.push(delete_convs(&mut cc, &["C2Cb"]).await.unwrap().revision);
    revs.push(delete_group(&mut gc, "B").await.unwrap().revision);

    for pair in revs.windows(2) {
        assert!(pair[1] > pair[0], "revisions must increase: {revs:?}");
    }
    let last = *revs.last().unwrap();
    assert_eq!(revision(&mut gc).await, last);
    let list = list_page(&mut gc, None, 0, "").await.unwrap();
    assert_eq!(list.revision, last, "GetConversationList carries the current revision");
    let unread =
        gc.get_unread_count(GetUnreadCountRequest { filter: None, min_revision: None }).await.unwrap().into_inner();
    assert_eq!(unread.revision, last, "GetUnreadCount carries the current revision");
}

/// Mutations that change nothing keep the revision: add/remove/upsert/delete
/// where every item fails, rename to the same name, reorder to the same
/// order, and an upsert that stores equal values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_that_change_nothing_keep_the_revision() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![ConversationUpdate { show_name: Some("Ann".into()), ..update("C2Cann") }]).await;
    create(&mut gc, "A", &["C2Ca"]).await.unwrap();
    create(&mut gc, "B", &["C2Cb"]).await.unwrap();
    let before = user_state(&mut gc).await;
    let rev = before.groups.revision;

    let r = add(&mut gc, "A", &["C2Ca", "bad"]).await.unwrap();
    assert_eq!((r.success_conversation_ids.len(), r.failed.len(), r.revision), (0, 2, rev), "add, all failed");
    let r = remove(&mut gc, "A", &["C2Cz", "bad"]).await.unwrap();
    assert_eq!((r.success_conversation_ids.len(), r.failed.len(), r.revision), (0, 2, rev), "remove, all failed");
    assert_eq!(rename(&mut gc, "B", "B").await.unwrap().revision, rev, "rename to same name");
    assert_eq!(reorder(&mut gc, &["A", "B"]).await.unwrap().revision, rev, "reorder to same order");
    let r =
        upsert(&mut cc, vec![update("bad"), ConversationUpdate { recv_opt: Some(0), ..update("C2Cx") }]).await.unwrap();
    assert_eq!((r.success_conversation_ids.len(), r.failed.len(), r.revision), (0, 2, rev), "upsert, all failed");
    let r =
        upsert(&mut cc, vec![ConversationUpdate { show_name: Some("Ann".into()), ..update("C2Cann") }]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cann"], "an item that changes nothing succeeds");
    assert_eq!(r.revision, rev, "upsert of equal values");
    let r = delete_convs(&mut cc, &["C2Cnobody", "bad"]).await.unwrap();
    assert_eq!((r.success_conversation_ids.len(), r.failed.len(), r.revision), (0, 2, rev), "delete, all failed");

    assert_eq!(user_state(&mut gc).await, before);
}

/// Each mutation succeeds with the current revision as `expected_revision`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_expected_revision_is_accepted_by_every_mutation() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");

    let r = create_owned(&mut gc, "A", strings(&["C2Ca"]), Some(0)).await.unwrap();
    let r = gc
        .add_conversations_to_group(AddConversationsToGroupRequest {
            group_name: "A".into(),
            conversation_ids: strings(&["C2Cb"]),
            expected_revision: Some(r.revision),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let r = gc
        .delete_conversations_from_group(DeleteConversationsFromGroupRequest {
            group_name: "A".into(),
            conversation_ids: strings(&["C2Cb"]),
            expected_revision: Some(r.revision),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let r = create_owned(&mut gc, "B", strings(&["C2Cb"]), Some(r.revision)).await.unwrap();
    let r = gc
        .rename_conversation_group(RenameConversationGroupRequest {
            old_name: "A".into(),
            new_name: "Alpha".into(),
            expected_revision: Some(r.revision),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let r = gc
        .reorder_conversation_groups(ReorderConversationGroupsRequest {
            group_names: strings(&["B", "Alpha"]),
            expected_revision: Some(r.revision),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let r = gc
        .delete_conversation_group(DeleteConversationGroupRequest {
            group_name: "B".into(),
            expected_revision: Some(r.revision),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(group_names(&mut gc).await, ["Alpha"]);
    assert_eq!(revision(&mut gc).await, r.revision);
}

/// A stale (or future) `expected_revision` makes every mutation fail with
/// ABORTED / REVISION_MISMATCH (no tencent_code) and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_revision_mismatch_is_aborted_and_changes_nothing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let stale = create(&mut gc, "A", &["C2Ca"]).await.unwrap().revision;
    create(&mut gc, "B", &["C2Cb"]).await.unwrap();
    let before = user_state(&mut gc).await;
    let current = before.groups.revision;

    for wrong in [stale, current + 1000, 0] {
        let results: Vec<(&str, tonic::Status)> = vec![
            ("create", expect_err(create_owned(&mut gc, "C", strings(&["C2Cc"]), Some(wrong)).await)),
            (
                "delete",
                expect_err(
                    gc.delete_conversation_group(DeleteConversationGroupRequest {
                        group_name: "A".into(),
                        expected_revision: Some(wrong),
                        ..Default::default()
                    })
                    .await,
                ),
            ),
            (
                "rename",
                expect_err(
                    gc.rename_conversation_group(RenameConversationGroupRequest {
                        old_name: "A".into(),
                        new_name: "Z".into(),
                        expected_revision: Some(wrong),
                        ..Default::default()
                    })
                    .await,
                ),
            ),
            (
                "reorder",
                expect_err(
                    gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
                        group_names: strings(&["B", "A"]),
                        expected_revision: Some(wrong),
                        ..Default::default()
                    })
                    .await,
                ),
            ),
            (
                "add",
                expect_err(
                    gc.add_conversations_to_group(AddConversationsToGroupRequest {
                        group_name: "A".into(),
                        conversation_ids: strings(&["C2Cnew"]),
                        expected_revision: Some(wrong),
                        ..Default::default()
                    })
                    .await,
                ),
            ),
            (
                "remove",
                expect_err(
                    gc.delete_conversations_from_group(DeleteConversationsFromGroupRequest {
                        group_name: "A".into(),
                        conversation_ids: strings(&["C2Ca"]),
                        expected_revision: Some(wrong),
                        ..Default::default()
                    })
                    .await,
                ),
            ),
        ];
        for (rpc, st) in results {
            assert_eq!(st.code(), Code::Aborted, "{rpc} with expected_revision {wrong}: {st:?}");
            assert_status_field(&st, Code::Aborted, "REVISION_MISMATCH", None, "expected_revision");
        }
        assert_eq!(user_state(&mut gc).await, before, "nothing changed (expected_revision {wrong})");
    }
}

/// Checks run in the documented order: request validation first, then
/// `expected_revision`, then the state of the groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_then_expected_revision_then_group_state() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Ca"]).await.unwrap();
    let before = user_state(&mut gc).await;
    let stale = before.groups.revision + 7;

    // A bad name with a stale revision: validation wins.
    let st = expect_err(create_owned(&mut gc, "", strings(&["C2Cx"]), Some(stale)).await);
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    // An empty list with a stale revision: validation wins.
    let st = expect_err(create_owned(&mut gc, "New", vec![], Some(stale)).await);
    assert_status(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"));
    // A taken name with a stale revision: the revision check wins.
    let st = expect_err(create_owned(&mut gc, "A", strings(&["C2Cx"]), Some(stale)).await);
    assert_status(&st, Code::Aborted, "REVISION_MISMATCH", None);
    // A missing group with a stale revision: the revision check wins.
    let st = expect_err(
        gc.delete_conversation_group(DeleteConversationGroupRequest {
            group_name: "Nope".into(),
            expected_revision: Some(stale),
            ..Default::default()
        })
        .await,
    );
    assert_status(&st, Code::Aborted, "REVISION_MISMATCH", None);
    // A looked-up name that could never be a group's, with a stale revision:
    // validation wins, for every call that looks a group up, as for Create.
    let st = expect_err(
        gc.delete_conversation_group(DeleteConversationGroupRequest {
            group_name: String::new(),
            expected_revision: Some(stale),
            ..Default::default()
        })
        .await,
    );
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    let st = expect_err(
        gc.rename_conversation_group(RenameConversationGroupRequest {
            old_name: "\u{7}bell".into(),
            new_name: "B".into(),
            expected_revision: Some(stale),
            ..Default::default()
        })
        .await,
    );
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    let st = expect_err(
        gc.add_conversations_to_group(AddConversationsToGroupRequest {
            group_name: "x".repeat(33),
            conversation_ids: strings(&["C2Cx"]),
            expected_revision: Some(stale),
            ..Default::default()
        })
        .await,
    );
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    // A non-permutation with a stale revision: the revision check wins.
    let st = expect_err(
        gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
            group_names: strings(&["X"]),
            expected_revision: Some(stale),
            ..Default::default()
        })
        .await,
    );
    assert_status(&st, Code::Aborted, "REVISION_MISMATCH", None);
    assert_eq!(user_state(&mut gc).await, before);
}

/// The revision sequence is server-wide, but each caller's current revision
/// is that of its own latest change: another user's writes neither change it
/// nor break the caller's `expected_revision`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_revision_is_per_caller_from_one_server_wide_sequence() {
    let s = TestServer::start().await;
    let mut alice = s.group_client("alice");
    let mut bob = s.group_client("bob");

    let a1 = create(&mut alice, "A", &["C2Cx"]).await.unwrap().revision;
    assert_eq!(revision(&mut bob).await, 0, "bob has made no change yet");
    let b1 = create(&mut bob, "B", &["C2Cx"]).await.unwrap().revision;
    assert!(b1 > a1, "one increasing sequence across users: {a1} then {b1}");
    assert_eq!(revision(&mut alice).await, a1, "bob's change does not move alice's revision");

    let a2 = create_owned(&mut alice, "A2", strings(&["C2Cy"]), Some(a1)).await.unwrap().revision;
    assert!(a2 > b1);
    assert_eq!(revision(&mut bob).await, b1);
    let st = expect_err(create_owned(&mut bob, "B2", strings(&["C2Cy"]), Some(a2)).await);
    assert_status(&st, Code::Aborted, "REVISION_MISMATCH", None);
}

/// Of concurrent mutations that all expect the same revision, exactly one
/// succeeds; the others are ABORTED and leave no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_the_same_expected_revision_exactly_one_wins() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let rev = create(&mut gc, "A", &["C2Ca"]).await.unwrap().revision;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let mut gc = s.group_client("alice");
            tokio::spawn(async move {
                gc.add_conversations_to_group(AddConversationsToGroupRequest {
                    group_name: "A".into(),
                    conversation_ids: vec![format!("C2Cw{i}")],
                    expected_revision: Some(rev),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(r) => winners.push(r),
            Err(st) => {
                assert_status(&st, Code::Aborted, "REVISION_MISMATCH", None);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    let mut gc = s.group_client("alice");
    assert_eq!(group(&mut gc, "A").await.unwrap().conversation_count, 2);
    assert_eq!(revision(&mut gc).await, winners[0].revision);
}

/// Reads may pass `min_revision` (the highest revision the client has
/// seen) instead of asking for a linearizable read: every read RPC answers
/// at a revision at least that high — so a client sees its own writes,
/// also where an etcd replica answers from memory — and refuses a
/// `min_revision` beyond the current revision with OUT_OF_RANGE /
/// REVISION_IN_FUTURE naming the field, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_with_min_revision_see_the_clients_writes_and_refuse_a_future_revision() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let groups = |gc: &mut GroupClient, min: u64| {
        let mut gc = gc.clone();
        async move {
            gc.get_conversation_group_list(GetConversationGroupListRequest { min_revision: Some(min) })
                .await
                .map(|r| r.into_inner())
        }
    };
    let created = create(&mut gc, "A", &["C2Ca"]).await.unwrap().revision;
    // Twice: on etcd the first read is kept in the replica's memory and the
    // second may be answered from there.
    for _ in 0..2 {
        let list = groups(&mut gc, created).await.unwrap();
        assert_eq!((list.group_names, list.revision), (vec!["A".to_string()], created));
    }
    let added = add(&mut gc, "A", &["C2Cb"]).await.unwrap().revision;
    let list = groups(&mut gc, added).await.unwrap();
    assert_eq!((list.groups[0].conversation_count, list.revision), (2, added), "a read at `added` misses the add");
    // A revision seen earlier is a lower bound, not a point in the past.
    assert_eq!(groups(&mut gc, created).await.unwrap().revision, added);
    let page = gc
        .get_conversation_list(GetConversationListRequest { min_revision: Some(added), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.conversations.len(), page.revision), (2, added));
    let unread = gc
        .get_unread_count(GetUnreadCountRequest { filter: None, min_revision: Some(added) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unread.revision, added);

    let before = user_state(&mut gc).await;
    let future = added + 1_000_000;
    let refused = [
        expect_err(groups(&mut gc, future).await),
        expect_err(
            gc.get_conversation_list(GetConversationListRequest { min_revision: Some(future), ..Default::default() })
                .await,
        ),
        expect_err(gc.get_unread_count(GetUnreadCountRequest { filter: None, min_revision: Some(future) }).await),
    ];
    for status in refused {
        let info = assert_status_field(&status, Code::OutOfRange, "REVISION_IN_FUTURE", None, "min_revision");
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("min_revision"), "{status:?}");
        let current: u64 = info.metadata["current_revision"].parse().expect("current_revision");
        assert!(current >= added && current < future, "current_revision {current} in {status:?}");
    }
    assert_eq!(user_state(&mut gc).await, before, "a refused read changed something");
}
