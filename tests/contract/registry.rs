//! ConversationService (the registry): upsert and delete, their limits and
//! per-item failures (contract §4 "Conversation registry", §5).

use crate::support::inproc::*;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::*;
use tonic::Code;

fn full_update(id: &str) -> ConversationUpdate {
    ConversationUpdate {
        conversation_id: id.to_string(),
        show_name: Some("Ann".into()),
        face_url: Some("https://example.com/ann.png".into()),
        unread_count: Some(7),
        is_pinned: Some(true),
        order_key: Some(1_700_000_000_123),
        recv_opt: Some(RecvOpt::ReceiveNotNotify as i32),
        mark_list: Some(MarkList { values: vec![1, 1 << 40] }),
        custom_data: Some(vec![0, 1, 2, 255]),
        has_group_at_info: Some(true),
        last_message: Some(LastMessage {
            sender: "ann".into(),
            text: "see you at 8".into(),
            time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        }),
        ..Default::default()
    }
}

/// Upsert stores every writable field, and a later upsert changes only the
/// fields it sets (a set-but-empty mark list clears the marks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_creates_and_updates_keeping_unset_fields() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");

    let r = upsert_ok(&mut cc, vec![full_update("C2Cann")]).await;
    assert_eq!(r.success_conversation_ids, ["C2Cann"]);
    assert!(r.revision > 0);
    let c = find_conversation(&mut gc, "C2Cann").await.expect("listed");
    assert_eq!(c.r#type, ConversationType::C2c as i32);
    assert_eq!(c.user_id, "ann");
    assert_eq!(c.show_name, "Ann");
    assert_eq!(c.face_url, "https://example.com/ann.png");
    assert_eq!(c.unread_count, 7);
    assert!(c.is_pinned);
    assert_eq!(c.order_key, 1_700_000_000_123);
    assert_eq!(c.recv_opt, RecvOpt::ReceiveNotNotify as i32);
    assert_eq!(c.mark_list, [1, 1 << 40]);
    assert_eq!(c.custom_data, [0, 1, 2, 255]);
    assert!(c.has_group_at_info);
    assert_eq!(c.last_message, full_update("x").last_message);
    assert!(c.registered);
    assert!(c.update_time.is_some());

    let r = upsert_ok(&mut cc, vec![ConversationUpdate { show_name: Some("Annie".into()), ..update("C2Cann") }]).await;
    assert_eq!(r.success_conversation_ids, ["C2Cann"]);
    let c2 = find_conversation(&mut gc, "C2Cann").await.unwrap();
    assert_eq!(c2, Conversation { show_name: "Annie".into(), update_time: c2.update_time, ..c.clone() });

    upsert_ok(&mut cc, vec![ConversationUpdate { mark_list: Some(MarkList { values: vec![] }), ..update("C2Cann") }])
        .await;
    let c3 = find_conversation(&mut gc, "C2Cann").await.unwrap();
    assert!(c3.mark_list.is_empty(), "an empty MarkList clears the marks");
    assert_eq!(c3.show_name, "Annie");
    assert_eq!(c3.custom_data, [0, 1, 2, 255]);
}

/// A new conversation upserted with no fields set gets the defaults
/// (recv_opt RECEIVE), and a GROUP id gets its type and group_id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_with_only_an_id_registers_defaults() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let r = upsert_ok(&mut cc, vec![update("group_team")]).await;
    assert_eq!(r.success_conversation_ids, ["GROUPteam"], "native id normalised");
    let c = find_conversation(&mut gc, "GROUPteam").await.expect("listed");
    assert_eq!(c.r#type, ConversationType::Group as i32);
    assert_eq!(c.group_id, "team");
    assert_eq!(c.user_id, "");
    assert_eq!(c.recv_opt, RecvOpt::Receive as i32);
    assert_eq!((c.unread_count, c.is_pinned, c.order_key), (0, false, 0));
    assert!(c.registered);
}

/// Upsert fails bad ids (INVALID_CONVERSATION_ID) and repeated ids
/// (DUPLICATE_IN_REQUEST, after normalisation) item by item and applies the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_reports_invalid_and_duplicate_ids() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let r = upsert(
        &mut cc,
        vec![
            ConversationUpdate { unread_count: Some(1), ..update("c2c_a") },
            ConversationUpdate { unread_count: Some(2), ..update("C2Ca") },
            update("nonsense"),
            update("GROUP"),
            update("C2Cb"),
        ],
    )
    .await
    .unwrap();
    let mut ok = r.success_conversation_ids.clone();
    ok.sort();
    assert_eq!(ok, ["C2Ca", "C2Cb"]);
    assert_failed(
        &r.failed,
        &[("C2Ca", R::DuplicateInRequest), ("nonsense", R::InvalidConversationId), ("GROUP", R::InvalidConversationId)],
    );
    assert_eq!(ids_of(&list_all(&mut gc, None).await).len(), 2);
    assert_eq!(find_conversation(&mut gc, "C2Ca").await.unwrap().unread_count, 1, "the first copy was applied");
}

/// Upsert takes 1..=100 items: empty and 101 are INVALID_CONVERSATION_LIST
/// (51006) naming the field; 100 are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_requires_one_to_100_items() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let st = expect_err(upsert(&mut cc, vec![]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversations");
    let many: Vec<_> = c2c_ids("u", 101).iter().map(|id| update(id)).collect();
    let st = expect_err(upsert(&mut cc, many.clone()).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversations");
    assert!(list_all(&mut gc, None).await.is_empty());
    assert_eq!(revision(&mut gc).await, 0);

    let r = upsert_ok(&mut cc, many[..100].to_vec()).await;
    assert_eq!(r.success_conversation_ids.len(), 100);
    assert_eq!(list_all(&mut gc, None).await.len(), 100);
}

/// The default pin limit: 50 pinned conversations are fine, pinning a 51st
/// is a PIN_LIMIT_EXCEEDED item (51012) that is not applied; unpinning one
/// frees a slot; re-pinning a pinned one is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pins_are_allowed_and_the_fifty_first_fails() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let ids = c2c_ids("p", 51);
    let pins: Vec<_> = ids[..50].iter().map(|id| ConversationUpdate { is_pinned: Some(true), ..update(id) }).collect();
    upsert_ok(&mut cc, pins).await;
    let before = user_state(&mut gc).await;

    let r = upsert(
        &mut cc,
        vec![ConversationUpdate { is_pinned: Some(true), show_name: Some("51st".into()), ..update(&ids[50]) }],
    )
    .await
    .unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_failed(&r.failed, &[(ids[50].as_str(), R::PinLimitExceeded)]);
    assert!(r.failed[0].message.contains("is_pinned"), "message names the field: {:?}", r.failed[0].message);
    assert_eq!(r.revision, before.groups.revision);
    assert_eq!(user_state(&mut gc).await, before, "the failed item was not applied");

    // Re-pinning an already pinned conversation does not count twice.
    let r = upsert(&mut cc, vec![ConversationUpdate { is_pinned: Some(true), ..update(&ids[0]) }]).await.unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);

    upsert_ok(&mut cc, vec![ConversationUpdate { is_pinned: Some(false), ..update(&ids[0]) }]).await;
    upsert_ok(&mut cc, vec![ConversationUpdate { is_pinned: Some(true), ..update(&ids[50]) }]).await;
    let pinned = list_all(&mut gc, None).await.into_iter().filter(|c| c.is_pinned).count();
    assert_eq!(pinned, 50);
}

/// Pins within one request count against the (lowered) limit in order: the
/// items beyond it fail, the rest are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_limit_counts_pins_within_one_request() {
    let s = TestServer::start_with(|c| c.limits.max_pinned = 2).await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let r = upsert(
        &mut cc,
        vec![
            ConversationUpdate { is_pinned: Some(true), ..update("C2Ca") },
            ConversationUpdate { is_pinned: Some(true), ..update("C2Cb") },
            ConversationUpdate { is_pinned: Some(true), ..update("C2Cc") },
            ConversationUpdate { is_pinned: Some(false), ..update("C2Cd") },
        ],
    )
    .await
    .unwrap();
    let mut ok = r.success_conversation_ids.clone();
    ok.sort();
    assert_eq!(ok, ["C2Ca", "C2Cb", "C2Cd"]);
    assert_failed(&r.failed, &[("C2Cc", R::PinLimitExceeded)]);
    assert_eq!(list_ids(&mut gc, filter()).await, ["C2Ca", "C2Cb", "C2Cd"]);
}

/// custom_data of 256 bytes is stored; 257 bytes is a CUSTOM_DATA_TOO_LARGE
/// item naming the field, and the stored value is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_data_of_256_bytes_is_accepted_and_257_rejected() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![ConversationUpdate { custom_data: Some(vec![7; 256]), ..update("C2Ca") }]).await;
    assert_eq!(find_conversation(&mut gc, "C2Ca").await.unwrap().custom_data, vec![7; 256]);
    let before = user_state(&mut gc).await;

    let r = upsert(
        &mut cc,
        vec![
            ConversationUpdate { custom_data: Some(vec![8; 257]), ..update("C2Ca") },
            ConversationUpdate { custom_data: Some(vec![8; 257]), ..update("C2Cnew") },
        ],
    )
    .await
    .unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_failed(&r.failed, &[("C2Ca", R::CustomDataTooLarge), ("C2Cnew", R::CustomDataTooLarge)]);
    for f in &r.failed {
        assert!(f.message.contains("custom_data"), "message names the field: {:?}", f.message);
    }
    assert_eq!(user_state(&mut gc).await, before);
}

fn marks(id: &str, add: &[u64], remove: &[u64]) -> ConversationUpdate {
    ConversationUpdate { add_marks: add.to_vec(), remove_marks: remove.to_vec(), ..update(id) }
}

/// add_marks / remove_marks change the stored marks in one step: added
/// values are appended once each, removed ones go, the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_marks_keep_the_other_marks() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(
        &mut cc,
        vec![ConversationUpdate { mark_list: Some(MarkList { values: vec![1, 8] }), ..update("C2Cann") }],
    )
    .await;
    upsert_ok(&mut cc, vec![marks("C2Cann", &[2, 1, 4, 2], &[])]).await;
    assert_eq!(find_conversation(&mut gc, "C2Cann").await.unwrap().mark_list, [1, 8, 2, 4]);
    upsert_ok(&mut cc, vec![marks("C2Cann", &[16], &[8, 99])]).await;
    assert_eq!(find_conversation(&mut gc, "C2Cann").await.unwrap().mark_list, [1, 2, 4, 16]);
    // Removing what is not there changes nothing: no new revision.
    let before = upsert_ok(&mut cc, vec![marks("C2Cann", &[], &[])]).await.revision;
    assert_eq!(upsert_ok(&mut cc, vec![marks("C2Cann", &[], &[32])]).await.revision, before);
    // A new conversation starts with no marks.
    upsert_ok(&mut cc, vec![marks("C2Cbob", &[4], &[1])]).await;
    assert_eq!(find_conversation(&mut gc, "C2Cbob").await.unwrap().mark_list, [4]);
}

/// Two clients marking the same conversation at the same moment, each
/// with its own mark, both take effect (what a read-modify-write of
/// mark_list could not promise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_marks_of_one_conversation_are_all_kept() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut tasks = Vec::new();
    for mark in 1..=16u64 {
        let mut cc = s.conv_client("alice");
        tasks.push(tokio::spawn(async move { upsert_ok(&mut cc, vec![marks("C2Cann", &[mark], &[])]).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut stored = find_conversation(&mut gc, "C2Cann").await.unwrap().mark_list;
    stored.sort();
    assert_eq!(stored, (1..=16).collect::<Vec<u64>>());
}

/// Mark edits that cannot be applied fail their item with INVALID_FIELD
/// naming the field, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_mark_edits_are_invalid_field_items() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(
        &mut cc,
        vec![ConversationUpdate { mark_list: Some(MarkList { values: (1..=63).collect() }), ..update("C2Cfull") }],
    )
    .await;
    let before = user_state(&mut gc).await;
    let cases: Vec<(ConversationUpdate, &str)> = vec![
        (
            ConversationUpdate { mark_list: Some(MarkList { values: vec![1] }), ..marks("C2Cboth", &[2], &[]) },
            "mark_list",
        ),
        (marks("C2Ctwice", &[3], &[3]), "add_marks"),
        (marks("C2Cmany", &(1..=65).collect::<Vec<_>>(), &[]), "add_marks"),
        (marks("C2Cmanyrm", &[], &(1..=65).collect::<Vec<_>>()), "remove_marks"),
        // 63 stored + 2 new = 65, over max_marks (64).
        (marks("C2Cfull", &[100, 101], &[]), "max_marks"),
    ];
    let r = upsert(&mut cc, cases.iter().map(|(u, _)| u.clone()).collect()).await.unwrap();
    assert!(r.success_conversation_ids.is_empty(), "{:?}", r.success_conversation_ids);
    let expected: Vec<(&str, R)> = cases.iter().map(|(u, _)| (u.conversation_id.as_str(), R::InvalidField)).collect();
    assert_failed(&r.failed, &expected);
    for (u, field) in &cases {
        let f = r.failed.iter().find(|f| f.conversation_id == u.conversation_id).unwrap();
        assert!(f.message.contains(field), "{}: message {:?} names {field}", u.conversation_id, f.message);
    }
    assert_eq!(user_state(&mut gc).await, before, "nothing changed");
    let stored = find_conversation(&mut gc, "C2Cfull").await.unwrap().mark_list;
    assert_eq!(stored, (1..=63).collect::<Vec<u64>>(), "the refused add left the marks as they were");
    for id in ["C2Cboth", "C2Ctwice", "C2Cmany", "C2Cmanyrm"] {
        assert!(find_conversation(&mut gc, id).await.is_none(), "{id} was not registered");
    }
    // Up to the limit is fine; removing while adding keeps it there.
    upsert_ok(&mut cc, vec![marks("C2Cfull", &[100], &[])]).await;
    upsert_ok(&mut cc, vec![marks("C2Cfull", &[101], &[1])]).await;
    assert_eq!(find_conversation(&mut gc, "C2Cfull").await.unwrap().mark_list.len(), 64);
}

/// Out-of-range fields are INVALID_FIELD items whose message names the
/// field: unspecified or unknown recv_opt, text fields over 1024 bytes, more
/// than 64 marks. Values at the limits are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_fields_are_invalid_field_items() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let long = "x".repeat(1025);
    let last =
        |sender: &str, text: &str| Some(LastMessage { sender: sender.to_string(), text: text.to_string(), time: None });
    let cases: Vec<(ConversationUpdate, &str)> = vec![
        (ConversationUpdate { recv_opt: Some(RecvOpt::Unspecified as i32), ..update("C2Cr0") }, "recv_opt"),
        (ConversationUpdate { recv_opt: Some(42), ..update("C2Cr42") }, "recv_opt"),
        (ConversationUpdate { show_name: Some(long.clone()), ..update("C2Cname") }, "show_name"),
        (ConversationUpdate { face_url: Some(long.clone()), ..update("C2Cface") }, "face_url"),
        (ConversationUpdate { last_message: last(&long, "hi"), ..update("C2Csender") }, "sender"),
        (ConversationUpdate { last_message: last("ann", &long), ..update("C2Ctext") }, "text"),
        (
            ConversationUpdate { mark_list: Some(MarkList { values: (1..=65).collect() }), ..update("C2Cmarks") },
            "mark_list",
        ),
    ];
    let r = upsert(&mut cc, cases.iter().map(|(u, _)| u.clone()).collect()).await.unwrap();
    assert!(r.success_conversation_ids.is_empty(), "{:?}", r.success_conversation_ids);
    let expected: Vec<(&str, R)> = cases.iter().map(|(u, _)| (u.conversation_id.as_str(), R::InvalidField)).collect();
    assert_failed(&r.failed, &expected);
    for (u, field) in &cases {
        let f = r.failed.iter().find(|f| f.conversation_id == u.conversation_id).unwrap();
        assert!(f.message.contains(field), "{}: message {:?} names {field}", u.conversation_id, f.message);
    }
    assert!(list_all(&mut gc, None).await.is_empty(), "no failed item was stored");
    assert_eq!(r.revision, 0);

    let at_limit = "y".repeat(1024);
    let r = upsert(
        &mut cc,
        vec![ConversationUpdate {
            show_name: Some(at_limit.clone()),
            face_url: Some(at_limit.clone()),
            last_message: last(&at_limit, &at_limit),
            mark_list: Some(MarkList { values: (1..=64).collect() }),
            recv_opt: Some(RecvOpt::NotReceiveExceptAt as i32),
            ..update("C2Cmax")
        }],
    )
    .await
    .unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let c = find_conversation(&mut gc, "C2Cmax").await.unwrap();
    assert_eq!((c.show_name.len(), c.mark_list.len()), (1024, 64));
}

/// Deleting a conversation removes its registry data and its membership in
/// every group (group counts and unread totals follow); it can be
/// registered again from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_conversations_removes_registry_data_and_every_membership() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(
        &mut cc,
        vec![ConversationUpdate { show_name: Some("Ann".into()), unread_count: Some(4), ..update("C2Cann") }],
    )
    .await;
    upsert_ok(&mut cc, vec![ConversationUpdate { unread_count: Some(1), ..update("C2Cbob") }]).await;
    create(&mut gc, "G1", &["C2Cann", "C2Cbob"]).await.unwrap();
    create(&mut gc, "G2", &["C2Cann"]).await.unwrap();
    assert_eq!(group(&mut gc, "G1").await.unwrap().unread_count, 5);
    let rev = revision(&mut gc).await;

    let r = delete_convs(&mut cc, &["c2c_ann"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cann"]);
    assert!(r.failed.is_empty());
    assert!(r.revision > rev);
    assert!(find_conversation(&mut gc, "C2Cann").await.is_none());
    let g1 = group(&mut gc, "G1").await.unwrap();
    assert_eq!((g1.conversation_count, g1.unread_count), (1, 1));
    let g2 = group(&mut gc, "G2").await.unwrap();
    assert_eq!((g2.conversation_count, g2.unread_count), (0, 0));
    assert_eq!(group_names(&mut gc).await, ["G1", "G2"], "groups themselves stay");

    upsert_ok(&mut cc, vec![update("C2Cann")]).await;
    let again = find_conversation(&mut gc, "C2Cann").await.unwrap();
    assert_eq!((again.show_name.as_str(), again.unread_count), ("", 0), "old registry data is gone");
    assert!(again.conversation_group_list.is_empty(), "old memberships are gone");
}

/// DeleteConversations fails unknown ids with CONVERSATION_NOT_FOUND, bad
/// ids with INVALID_CONVERSATION_ID, repeats with DUPLICATE_IN_REQUEST; a
/// conversation that is only grouped (never registered) can be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_conversations_reports_each_failing_item() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![update("C2Ca"), update("C2Ckeep")]).await;
    create(&mut gc, "G", &["GROUPonly"]).await.unwrap();

    let r = delete_convs(&mut cc, &["C2Ca", "c2c_a", "C2Cunknown", "bad", "group_only"]).await.unwrap();
    let mut ok = r.success_conversation_ids.clone();
    ok.sort();
    assert_eq!(ok, ["C2Ca", "GROUPonly"]);
    assert_failed(
        &r.failed,
        &[("c2c_a", R::DuplicateInRequest), ("C2Cunknown", R::ConversationNotFound), ("bad", R::InvalidConversationId)],
    );
    assert_eq!(list_ids(&mut gc, filter()).await, ["C2Ckeep"]);
    assert_eq!(group(&mut gc, "G").await.unwrap().conversation_count, 0);

    // Deleting it a second time: it is gone.
    let r = delete_convs(&mut cc, &["C2Ca"]).await.unwrap();
    assert_failed(&r.failed, &[("C2Ca", R::ConversationNotFound)]);
}

/// DeleteConversations takes 1..=100 ids: empty and 101 are
/// INVALID_CONVERSATION_LIST (51006) and change nothing; 100 are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_conversations_requires_one_to_100_ids() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let ids = c2c_ids("d", 101);
    upsert_ok(&mut cc, ids[..100].iter().map(|id| update(id)).collect()).await;
    upsert_ok(&mut cc, vec![update(&ids[100])]).await;
    let before = user_state(&mut gc).await;

    let st = expect_err(delete_convs(&mut cc, &[]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let st = expect_err(delete_convs(&mut cc, &refs).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    assert_eq!(user_state(&mut gc).await, before);

    let r = delete_convs(&mut cc, &refs[..100]).await.unwrap();
    assert_eq!(r.success_conversation_ids.len(), 100);
    assert_eq!(list_ids(&mut gc, filter()).await, [ids[100].clone()]);
}
