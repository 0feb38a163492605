//! ConversationGroupService mutations: create, delete, rename, reorder, add
//! and remove members; their limits, errors and per-item failures
//! (contract §4 "Groups", §5).

use crate::support::inproc::*;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::*;
use tonic::Code;

fn in_group(name: &str) -> ConversationFilter {
    ConversationFilter { group_name: Some(name.to_string()), ..filter() }
}

async fn members(gc: &mut GroupClient, name: &str) -> Vec<String> {
    let mut ids = list_ids(gc, in_group(name)).await;
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Create returns the group, the added ids and a revision, and the group
/// then appears in the group list with its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_returns_group_members_and_revision() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    assert_eq!(revision(&mut gc).await, 0, "a new user's revision is 0");

    let r = create(&mut gc, "Suppliers", &["C2Cbob", "GROUPteam"]).await.unwrap();
    let g = r.group.clone().expect("group");
    assert_eq!(g.name, "Suppliers");
    assert_eq!(g.conversation_count, 2);
    assert_eq!(g.unread_count, 0);
    assert!(g.create_time.is_some(), "create_time is set");
    assert_eq!(sorted(r.success_conversation_ids.clone()), ["C2Cbob", "GROUPteam"]);
    assert!(r.failed.is_empty());
    assert!(r.revision > 0);

    let list = group_list(&mut gc).await;
    assert_eq!(list.group_names, ["Suppliers"]);
    assert_eq!(list.groups, vec![g]);
    assert_eq!(list.revision, r.revision);
    assert_eq!(members(&mut gc, "Suppliers").await, ["C2Cbob", "GROUPteam"]);
}

/// Native SDK ids `c2c_x` / `group_y` are stored and returned as `C2Cx` /
/// `GROUPy`, and match their canonical forms afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_ids_are_normalised_to_canonical_form() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");

    let r = create(&mut gc, "G", &["c2c_x", "group_y"]).await.unwrap();
    assert_eq!(sorted(r.success_conversation_ids), ["C2Cx", "GROUPy"]);
    assert_eq!(members(&mut gc, "G").await, ["C2Cx", "GROUPy"]);

    let x = find_conversation(&mut gc, "C2Cx").await.expect("C2Cx listed");
    assert_eq!(x.r#type, ConversationType::C2c as i32);
    assert_eq!(x.user_id, "x");
    let y = find_conversation(&mut gc, "GROUPy").await.expect("GROUPy listed");
    assert_eq!(y.r#type, ConversationType::Group as i32);
    assert_eq!(y.group_id, "y");

    // The canonical and native forms name the same conversation.
    let r = add(&mut gc, "G", &["C2Cx", "group_y"]).await.unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_failed(&r.failed, &[("C2Cx", R::AlreadyInGroup), ("group_y", R::AlreadyInGroup)]);

    let r = remove(&mut gc, "G", &["c2c_x"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cx"]);
    assert_eq!(members(&mut gc, "G").await, ["GROUPy"]);
}

/// Create succeeds even when some items fail; each bad item fails on its own
/// with INVALID_CONVERSATION_ID or DUPLICATE_IN_REQUEST, reported as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_applies_valid_items_and_reports_invalid_ones_one_by_one() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let max_id = format!("C2C{}", "a".repeat(128));
    let too_long = format!("C2C{}", "a".repeat(129));
    let ids = vec![
        "C2Cok".to_string(),
        "bogus".into(),
        "".into(),
        "C2C".into(),
        "GROUP".into(),
        "c2c_".into(),
        "group_".into(),
        "C2Ca\tb".into(),
        "C2Ccaf\u{e9}".into(),
        "c2cx".into(),
        too_long.clone(),
        "c2c_ok".into(),
        "C2Cok".into(),
        "GROUPg".into(),
        max_id.clone(),
    ];
    let r = create_owned(&mut gc, "Mixed", ids, None).await.unwrap();
    assert_eq!(r.group.as_ref().map(|g| g.conversation_count), Some(3));
    assert_eq!(
        sorted(r.success_conversation_ids.clone()),
        sorted(vec!["C2Cok".into(), "GROUPg".into(), max_id.clone()])
    );
    assert_failed(
        &r.failed,
        &[
            ("bogus", R::InvalidConversationId),
            ("", R::InvalidConversationId),
            ("C2C", R::InvalidConversationId),
            ("GROUP", R::InvalidConversationId),
            ("c2c_", R::InvalidConversationId),
            ("group_", R::InvalidConversationId),
            ("C2Ca\tb", R::InvalidConversationId),
            ("C2Ccaf\u{e9}", R::InvalidConversationId),
            ("c2cx", R::InvalidConversationId),
            (too_long.as_str(), R::InvalidConversationId),
            ("c2c_ok", R::DuplicateInRequest),
            ("C2Cok", R::DuplicateInRequest),
        ],
    );
    assert_eq!(group_names(&mut gc).await, ["Mixed"]);
    assert_eq!(members(&mut gc, "Mixed").await, sorted(vec!["C2Cok".into(), "GROUPg".into(), max_id]));
}

/// Creating a name that is taken is ALREADY_EXISTS / GROUP_ALREADY_EXISTS
/// (no tencent_code), names the field, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_a_taken_name_is_already_exists_and_changes_nothing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let st = expect_err(create(&mut gc, "Family", &["C2Cdad"]).await);
    assert_status_field(&st, Code::AlreadyExists, "GROUP_ALREADY_EXISTS", None, "group_name");
    assert_eq!(user_state(&mut gc).await, before);
}

/// The default group limit: 20 groups are fine, the 21st is
/// RESOURCE_EXHAUSTED / GROUP_LIMIT_EXCEEDED (51010); deleting one frees a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_groups_are_allowed_and_the_twenty_first_is_resource_exhausted() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    for i in 0..20 {
        create(&mut gc, &format!("g{i}"), &["C2Cx"]).await.unwrap_or_else(|e| panic!("group {i}: {e:?}"));
    }
    let before = user_state(&mut gc).await;
    assert_eq!(before.groups.group_names.len(), 20);

    let st = expect_err(create(&mut gc, "g20", &["C2Cx"]).await);
    assert_status(&st, Code::ResourceExhausted, "GROUP_LIMIT_EXCEEDED", Some("51010"));
    assert_eq!(user_state(&mut gc).await, before);

    delete_group(&mut gc, "g0").await.unwrap();
    create(&mut gc, "g20", &["C2Cx"]).await.expect("a slot is free again");
    assert_eq!(group_names(&mut gc).await.len(), 20);
}

/// A lowered group limit is enforced the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_limit_is_configurable() {
    let s = TestServer::start_with(|c| c.limits.max_groups = 2).await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "a", &["C2Cx"]).await.unwrap();
    create(&mut gc, "b", &["C2Cx"]).await.unwrap();
    let st = expect_err(create(&mut gc, "c", &["C2Cx"]).await);
    assert_status(&st, Code::ResourceExhausted, "GROUP_LIMIT_EXCEEDED", Some("51010"));
    assert_eq!(group_names(&mut gc).await, ["a", "b"]);
}

/// Names of up to 32 bytes are accepted and 33 bytes rejected, counting UTF-8
/// bytes, not characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_up_to_32_bytes_are_accepted_and_33_rejected() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let good = [
        "a".repeat(32),
        "\u{e9}".repeat(16),                                  // 16 chars, 32 bytes
        format!("{}{}", "\u{e9}".repeat(10), "a".repeat(12)), // 22 chars, 32 bytes
        "\u{1F600}".repeat(8),                                // 8 chars, 32 bytes
        "R&D / Suppliers (EU)".to_string(),
        "x".to_string(),
    ];
    for name in &good {
        assert!(name.len() <= 32, "{name:?} is {} bytes", name.len());
        create(&mut gc, name, &["C2Cx"]).await.unwrap_or_else(|e| panic!("{name:?} should be accepted: {e:?}"));
    }
    assert_eq!(group_names(&mut gc).await, good.to_vec());
    let before = user_state(&mut gc).await;

    let bad = [
        String::new(),
        "a".repeat(33),
        format!("{}a", "\u{e9}".repeat(16)),                  // 17 chars, 33 bytes
        format!("{}{}", "\u{e9}".repeat(10), "a".repeat(13)), // 23 chars, 33 bytes
        format!("{}a", "\u{1F600}".repeat(8)),                // 9 chars, 33 bytes
        "\u{e9}".repeat(17),                                  // 17 chars, 34 bytes
        "n".repeat(100_000),
    ];
    for name in &bad {
        let st = expect_err(create(&mut gc, name, &["C2Cx"]).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");
    }
    assert_eq!(user_state(&mut gc).await, before);
}

/// A lowered name limit is enforced in bytes as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_name_limit_is_configurable() {
    let s = TestServer::start_with(|c| c.limits.max_group_name_bytes = 4).await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "abcd", &["C2Cx"]).await.unwrap();
    create(&mut gc, "\u{e9}\u{e9}", &["C2Cx"]).await.unwrap();
    for name in ["abcde", "\u{e9}\u{e9}a"] {
        let st = expect_err(create(&mut gc, name, &["C2Cx"]).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");
    }
    assert_eq!(group_names(&mut gc).await, ["abcd", "\u{e9}\u{e9}"]);
}

/// Names containing control characters (C0, DEL, C1) are INVALID_GROUP_NAME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_with_control_characters_are_rejected() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    for name in ["a\nb", "tab\t", "\r", "nul\u{0}", "bell\u{7}", "esc\u{1b}[0m", "del\u{7f}", "c1\u{85}", "\u{9b}x"] {
        let st = expect_err(create(&mut gc, name, &["C2Cx"]).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");
    }
    assert!(group_names(&mut gc).await.is_empty());
}

/// Names are unique byte for byte: case and Unicode normalisation variants
/// are different groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_are_compared_byte_for_byte() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let names = ["Family", "family", "FAMILY", "Family ", "caf\u{e9}", "cafe\u{301}"];
    for name in names {
        create(&mut gc, name, &["C2Cx"]).await.unwrap_or_else(|e| panic!("{name:?}: {e:?}"));
    }
    assert_eq!(group_names(&mut gc).await, names);
    let st = expect_err(create(&mut gc, "cafe\u{301}", &["C2Cx"]).await);
    assert_status(&st, Code::AlreadyExists, "GROUP_ALREADY_EXISTS", None);
}

/// Create needs 1..=100 ids: empty and 101 are INVALID_CONVERSATION_LIST
/// (51006) naming conversation_ids; 100 is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_requires_one_to_100_ids() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");

    let st = expect_err(create(&mut gc, "Empty", &[]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let st = expect_err(create_owned(&mut gc, "Big", c2c_ids("u", 101), None).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    assert!(group_names(&mut gc).await.is_empty(), "nothing was created");
    assert_eq!(revision(&mut gc).await, 0);

    let r = create_owned(&mut gc, "Big", c2c_ids("u", 100), None).await.unwrap();
    assert_eq!(r.success_conversation_ids.len(), 100);
    assert_eq!(r.group.unwrap().conversation_count, 100);
}

/// Deleting a group removes only the group: its conversations stay, with
/// their registry data and their other groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_group_keeps_conversations_and_registry_data() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(
        &mut cc,
        vec![ConversationUpdate { show_name: Some("Ann".into()), unread_count: Some(3), ..update("C2Cann") }],
    )
    .await;
    create(&mut gc, "G", &["C2Cann", "C2Cbob"]).await.unwrap();
    create(&mut gc, "H", &["C2Cbob"]).await.unwrap();
    let rev = revision(&mut gc).await;

    let r = delete_group(&mut gc, "G").await.unwrap();
    assert!(r.revision > rev);
    assert_eq!(group_names(&mut gc).await, ["H"]);
    let ann = find_conversation(&mut gc, "C2Cann").await.expect("C2Cann is still listed");
    assert_eq!(ann.show_name, "Ann");
    assert_eq!(ann.unread_count, 3);
    assert!(ann.registered);
    assert!(ann.conversation_group_list.is_empty());
    let bob = find_conversation(&mut gc, "C2Cbob").await.expect("C2Cbob is still in H");
    assert_eq!(bob.conversation_group_list, ["H"]);
    let st = expect_err(list_page(&mut gc, Some(in_group("G")), 0, "").await);
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
}

/// Deleting a group that does not exist is NOT_FOUND / GROUP_NOT_FOUND
/// (51009); an empty name is INVALID_GROUP_NAME. Neither changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_missing_group_is_not_found() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Keep", &["C2Cx"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let st = expect_err(delete_group(&mut gc, "Nope").await);
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let st = expect_err(delete_group(&mut gc, "").await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");
    assert_eq!(user_state(&mut gc).await, before);
}

/// Rename keeps the members, the position in the display order and the
/// creation time, and conversations list the new name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_keeps_members_and_position() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Ca"]).await.unwrap();
    let b = create(&mut gc, "B", &["C2Cb", "C2Cc"]).await.unwrap().group.unwrap();
    create(&mut gc, "C", &["C2Cc"]).await.unwrap();
    let rev = revision(&mut gc).await;

    let r = rename(&mut gc, "B", "Beta").await.unwrap();
    assert!(r.revision > rev);
    let g = r.group.unwrap();
    assert_eq!(g.name, "Beta");
    assert_eq!(g.conversation_count, 2);
    assert_eq!(g.create_time, b.create_time);
    assert_eq!(group_names(&mut gc).await, ["A", "Beta", "C"]);
    assert_eq!(members(&mut gc, "Beta").await, ["C2Cb", "C2Cc"]);
    let c = find_conversation(&mut gc, "C2Cc").await.unwrap();
    assert_eq!(c.conversation_group_list, ["Beta", "C"]);
    let st = expect_err(list_page(&mut gc, Some(in_group("B")), 0, "").await);
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
    // The old name is free again.
    create(&mut gc, "B", &["C2Cd"]).await.unwrap();
    assert_eq!(group_names(&mut gc).await, ["A", "Beta", "C", "B"]);
}

/// Renaming a group to its own name succeeds, returns the group and keeps
/// the revision and everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_to_the_same_name_succeeds_and_changes_nothing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Ca"]).await.unwrap();
    create(&mut gc, "B", &["C2Cb"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let r = rename(&mut gc, "A", "A").await.unwrap();
    assert_eq!(r.revision, before.groups.revision);
    assert_eq!(r.group.unwrap().name, "A");
    assert_eq!(user_state(&mut gc).await, before);
}

/// Rename errors: a missing old name is GROUP_NOT_FOUND naming old_name, a
/// taken new name GROUP_ALREADY_EXISTS naming new_name, a bad new name
/// INVALID_GROUP_NAME naming new_name; none of them changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_errors_name_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Ca"]).await.unwrap();
    create(&mut gc, "B", &["C2Cb"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let st = expect_err(rename(&mut gc, "Nope", "New").await);
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "old_name");
    let st = expect_err(rename(&mut gc, "A", "B").await);
    assert_status_field(&st, Code::AlreadyExists, "GROUP_ALREADY_EXISTS", None, "new_name");
    for bad in [String::new(), "a".repeat(33), "line\nbreak".to_string()] {
        let st = expect_err(rename(&mut gc, "A", &bad).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "new_name");
    }
    let st = expect_err(rename(&mut gc, "", "New").await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "old_name");
    assert_eq!(user_state(&mut gc).await, before);
}

/// Reorder sets the display order (returned, listed and kept); a new group
/// is appended after the reordered ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorder_sets_the_display_order_and_new_groups_go_last() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    for name in ["A", "B", "C"] {
        create(&mut gc, name, &["C2Cx"]).await.unwrap();
    }
    assert_eq!(group_names(&mut gc).await, ["A", "B", "C"], "creation order until reordered");
    let rev = revision(&mut gc).await;

    let r = reorder(&mut gc, &["C", "A", "B"]).await.unwrap();
    assert_eq!(r.group_names, ["C", "A", "B"]);
    assert!(r.revision > rev);
    let list = group_list(&mut gc).await;
    assert_eq!(list.group_names, ["C", "A", "B"]);
    assert_eq!(list.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["C", "A", "B"]);
    assert_eq!(find_conversation(&mut gc, "C2Cx").await.unwrap().conversation_group_list, ["C", "A", "B"]);

    create(&mut gc, "D", &["C2Cx"]).await.unwrap();
    assert_eq!(group_names(&mut gc).await, ["C", "A", "B", "D"]);
    delete_group(&mut gc, "A").await.unwrap();
    assert_eq!(group_names(&mut gc).await, ["C", "B", "D"]);
}

/// Reordering to the current order succeeds and keeps the revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorder_to_the_current_order_keeps_the_revision() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    for name in ["A", "B"] {
        create(&mut gc, name, &["C2Cx"]).await.unwrap();
    }
    let before = user_state(&mut gc).await;
    let r = reorder(&mut gc, &["A", "B"]).await.unwrap();
    assert_eq!(r.group_names, ["A", "B"]);
    assert_eq!(r.revision, before.groups.revision);
    assert_eq!(user_state(&mut gc).await, before);
}

/// A reorder that is not a permutation of the current groups (missing,
/// unknown, duplicated or no names) is FAILED_PRECONDITION and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorder_requires_a_permutation_of_the_groups() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    for name in ["A", "B", "C"] {
        create(&mut gc, name, &["C2Cx"]).await.unwrap();
    }
    let before = user_state(&mut gc).await;
    let cases: [&[&str]; 6] =
        [&["A", "B"], &["C", "B", "A", "X"], &["A", "B", "B"], &["A", "B", "C", "C"], &[], &["a", "B", "C"]];
    for names in cases {
        let st = expect_err(reorder(&mut gc, names).await);
        assert_status_field(&st, Code::FailedPrecondition, "GROUP_ORDER_MISMATCH", None, "group_names");
    }
    assert_eq!(user_state(&mut gc).await, before);
}

/// Add applies the valid items and fails the others one by one:
/// ALREADY_IN_GROUP, DUPLICATE_IN_REQUEST (second and later copies, after
/// normalisation), INVALID_CONVERSATION_ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_conversations_reports_each_failing_item() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "G", &["C2Ca"]).await.unwrap();
    let rev = revision(&mut gc).await;

    let r = add(&mut gc, "G", &["C2Ca", "C2Cb", "c2c_b", "C2Cb", "x", "GROUPg", "group_g"]).await.unwrap();
    assert_eq!(sorted(r.success_conversation_ids), ["C2Cb", "GROUPg"]);
    assert_failed(
        &r.failed,
        &[
            ("C2Ca", R::AlreadyInGroup),
            ("c2c_b", R::DuplicateInRequest),
            ("C2Cb", R::DuplicateInRequest),
            ("x", R::InvalidConversationId),
            ("group_g", R::DuplicateInRequest),
        ],
    );
    assert!(r.revision > rev);
    assert_eq!(members(&mut gc, "G").await, ["C2Ca", "C2Cb", "GROUPg"]);
    assert_eq!(group(&mut gc, "G").await.unwrap().conversation_count, 3);
}

/// One conversation can be in any number of the user's groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_can_be_in_several_groups() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Cx"]).await.unwrap();
    create(&mut gc, "B", &["C2Cy"]).await.unwrap();
    create(&mut gc, "C", &["C2Cx"]).await.unwrap();
    let r = add(&mut gc, "B", &["C2Cx"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cx"]);
    assert_eq!(find_conversation(&mut gc, "C2Cx").await.unwrap().conversation_group_list, ["A", "B", "C"]);
    for name in ["A", "B", "C"] {
        assert!(members(&mut gc, name).await.contains(&"C2Cx".to_string()), "C2Cx in {name}");
    }
}

/// Add and remove on a missing group are GROUP_NOT_FOUND; an empty or
/// 101-id list is INVALID_CONVERSATION_LIST; 100 ids are fine. Errors change
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_validate_the_group_and_the_list() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "G", &["C2Cx"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let st = expect_err(add(&mut gc, "Nope", &["C2Cy"]).await);
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let st = expect_err(remove(&mut gc, "Nope", &["C2Cx"]).await);
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let st = expect_err(add(&mut gc, "G", &[]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let st = expect_err(remove(&mut gc, "G", &[]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let st = expect_err(add_owned(&mut gc, "G", c2c_ids("u", 101)).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let ids = c2c_ids("u", 101);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let st = expect_err(remove(&mut gc, "G", &id_refs).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let st = expect_err(add(&mut gc, "", &["C2Cy"]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");
    assert_eq!(user_state(&mut gc).await, before);

    let r = add_owned(&mut gc, "G", c2c_ids("u", 100)).await.unwrap();
    assert_eq!(r.success_conversation_ids.len(), 100);
    let r = remove(&mut gc, "G", &id_refs[..100]).await.unwrap();
    assert_eq!(r.success_conversation_ids.len(), 100);
    assert_eq!(members(&mut gc, "G").await, ["C2Cx"]);
}

/// With a lowered per-group limit, items beyond it fail with GROUP_FULL
/// (51008) in create and add, and a freed slot can be used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_full_at_a_configured_limit() {
    let s = TestServer::start_with(|c| c.limits.max_conversations_per_group = 5).await;
    let mut gc = s.group_client("alice");
    let ids = c2c_ids("m", 7);
    let r = create_owned(&mut gc, "G", ids.clone(), None).await.unwrap();
    assert_eq!(sorted(r.success_conversation_ids), ids[..5].to_vec(), "the first five fit");
    assert_failed(&r.failed, &[(ids[5].as_str(), R::GroupFull), (ids[6].as_str(), R::GroupFull)]);
    assert_eq!(r.group.unwrap().conversation_count, 5);

    let rev = revision(&mut gc).await;
    let r = add(&mut gc, "G", &["C2Cextra"]).await.unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_failed(&r.failed, &[("C2Cextra", R::GroupFull)]);
    assert_eq!(r.revision, rev);

    remove(&mut gc, "G", &[ids[0].as_str()]).await.unwrap();
    let r = add(&mut gc, "G", &["C2Cextra", "C2Cmore"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cextra"]);
    assert_failed(&r.failed, &[("C2Cmore", R::GroupFull)]);
    assert_eq!(group(&mut gc, "G").await.unwrap().conversation_count, 5);
}

/// The default limit: a group holds 1000 conversations; the 1001st is a
/// GROUP_FULL item (51008) and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_group_holds_1000_conversations_and_rejects_the_1001st() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let ids = c2c_ids("k", 1001);
    create_owned(&mut gc, "Big", ids[..100].to_vec(), None).await.unwrap();
    for chunk in ids[100..1000].chunks(100) {
        let r = add_owned(&mut gc, "Big", chunk.to_vec()).await.unwrap();
        assert_eq!(r.success_conversation_ids.len(), 100);
        assert!(r.failed.is_empty());
    }
    assert_eq!(group(&mut gc, "Big").await.unwrap().conversation_count, 1000);
    let before = user_state(&mut gc).await;

    let r = add_owned(&mut gc, "Big", vec![ids[1000].clone()]).await.unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_failed(&r.failed, &[(ids[1000].as_str(), R::GroupFull)]);
    assert_eq!(r.revision, before.groups.revision);
    assert_eq!(user_state(&mut gc).await, before);
}

/// Remove applies the valid items and fails the others one by one:
/// NOT_IN_GROUP, DUPLICATE_IN_REQUEST, INVALID_CONVERSATION_ID. A removed
/// registered conversation stays registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_conversations_reports_each_failing_item() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![ConversationUpdate { show_name: Some("Cee".into()), ..update("C2Cc") }]).await;
    create(&mut gc, "G", &["C2Ca", "C2Cb", "C2Cc", "C2Cd"]).await.unwrap();
    let rev = revision(&mut gc).await;

    let r = remove(&mut gc, "G", &["C2Ca", "c2c_a", "C2Cz", "bad", "c2c_b", "C2Cc"]).await.unwrap();
    assert_eq!(sorted(r.success_conversation_ids), ["C2Ca", "C2Cb", "C2Cc"]);
    assert_failed(
        &r.failed,
        &[("c2c_a", R::DuplicateInRequest), ("C2Cz", R::NotInGroup), ("bad", R::InvalidConversationId)],
    );
    assert!(r.revision > rev);
    assert_eq!(members(&mut gc, "G").await, ["C2Cd"]);
    let c = find_conversation(&mut gc, "C2Cc").await.expect("registered conversation stays");
    assert_eq!(c.show_name, "Cee");
    assert!(c.conversation_group_list.is_empty());
}

/// Malformed input of every kind gets an error or a per-item failure, and
/// the server keeps serving with the state unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_rejected_and_the_server_keeps_serving() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "G", &["C2Cx"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let huge = "x".repeat(1 << 20);
    let st = expect_err(create(&mut gc, &huge, &["C2Cy"]).await);
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    let st = expect_err(rename(&mut gc, "G", &huge).await);
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    let r = add_owned(&mut gc, "G", vec![format!("C2C{huge}"), "\u{0}".into(), "C2C\u{0}".into()]).await.unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_eq!(r.failed.len(), 3);
    assert!(
        r.failed.iter().all(|f| f.code == R::InvalidConversationId as i32),
        "{:?}",
        r.failed.iter().map(|f| f.code).collect::<Vec<_>>()
    );
    let r = remove(&mut gc, "G", &["\u{0}", "C2C\u{7f}x"]).await.unwrap();
    assert!(r.success_conversation_ids.is_empty());
    assert_eq!(r.failed.len(), 2);
    assert_eq!(user_state(&mut gc).await, before);

    // Still serving, and still writable.
    create(&mut gc, "H", &["C2Cy"]).await.unwrap();
    assert_eq!(group_names(&mut gc).await, ["G", "H"]);
}

/// Concurrent adds to one group never take it past its limit: exactly as
/// many items succeed as there were free places, and the rest are GROUP_FULL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_never_exceed_the_group_limit() {
    let s = TestServer::start_with(|c| c.limits.max_conversations_per_group = 10).await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "G", &["C2Cfirst"]).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let mut gc = s.group_client("alice");
            tokio::spawn(async move { add_owned(&mut gc, "G", c2c_ids(&format!("t{t}_"), 3)).await.unwrap() })
        })
        .collect();
    let (mut added, mut full) = (0, 0);
    for task in tasks {
        let r = task.await.unwrap();
        added += r.success_conversation_ids.len();
        full += r.failed.iter().filter(|f| f.code == R::GroupFull as i32).count();
        assert_eq!(r.success_conversation_ids.len() + r.failed.len(), 3);
    }
    assert_eq!((added, full), (9, 15), "9 free places, 24 ids offered");
    assert_eq!(group(&mut gc, "G").await.unwrap().conversation_count, 10);
    assert_eq!(list_all(&mut gc, Some(in_group("G"))).await.len(), 10);
}

/// Concurrent creates respect unique names and the group limit: of many
/// creates of one name exactly one wins, and no more than `max_groups` exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_respect_unique_names_and_the_group_limit() {
    let s = TestServer::start_with(|c| c.limits.max_groups = 5).await;
    let same_name: Vec<_> = (0..6)
        .map(|_| {
            let mut gc = s.group_client("alice");
            tokio::spawn(async move { create(&mut gc, "Same", &["C2Cx"]).await })
        })
        .collect();
    let mut won = 0;
    for task in same_name {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(st) => {
                assert_status(&st, Code::AlreadyExists, "GROUP_ALREADY_EXISTS", None);
            }
        }
    }
    assert_eq!(won, 1);

    let many: Vec<_> = (0..10)
        .map(|i| {
            let mut gc = s.group_client("alice");
            tokio::spawn(async move { create(&mut gc, &format!("g{i}"), &["C2Cx"]).await })
        })
        .collect();
    let mut created = 0;
    for task in many {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(st) => {
                assert_status(&st, Code::ResourceExhausted, "GROUP_LIMIT_EXCEEDED", Some("51010"));
            }
        }
    }
    assert_eq!(created, 4);
    let mut gc = s.group_client("alice");
    assert_eq!(group_names(&mut gc).await.len(), 5);
}

/// Reads alice's list three ways (her token, an admin acting for her, with
/// `min_revision`), twice each, and bob's between: each must be `groups` at
/// `revision`, and bob's must stay empty.
async fn check_lists(s: &TestServer, cache_users: usize, revision: u64, groups: &[(&str, u32, u64)]) {
    let want: Vec<(String, u32, u64)> = groups.iter().map(|(n, c, u)| (n.to_string(), *c, *u)).collect();
    let mut alice = s.group_client("alice");
    let mut admin = s.admin_group_client(Some("alice"));
    let mut bob = s.group_client("bob");
    for _ in 0..2 {
        let at_least = GetConversationGroupListRequest { min_revision: Some(revision) };
        let lists = [
            group_list(&mut alice).await,
            group_list(&mut admin).await,
            alice.get_conversation_group_list(at_least).await.expect("with min_revision").into_inner(),
        ];
        for list in lists {
            assert_eq!(list.revision, revision, "cache {cache_users}: the change's revision");
            let got: Vec<(String, u32, u64)> =
                list.groups.iter().map(|g| (g.name.clone(), g.conversation_count, g.unread_count)).collect();
            assert_eq!(got, want, "cache {cache_users}: the groups at revision {revision}");
            assert_eq!(list.group_names, want.iter().map(|g| g.0.clone()).collect::<Vec<_>>());
        }
        // With room for one user, every read of bob's evicts alice's.
        let bob_list = group_list(&mut bob).await;
        assert_eq!((bob_list.revision, bob_list.groups.len()), (0, 0), "cache {cache_users}: bob's list is his own");
    }
}

/// GetConversationGroupList is answered from a cache of encoded answers per
/// user (`--group-list-cache-users`): every read after a change of any
/// kind — a group mutation, an unread count through the registry, an admin
/// acting for the user — shows that change at its revision, repeated reads
/// agree, and users never get each other's answer; the same with the cache
/// holding one user (always evicting) and with it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_list_shows_every_change_cached_or_not() {
    for cache_users in [10_000, 1, 0] {
        let s = TestServer::start_with(|c| c.server.group_list_cache_users = cache_users).await;
        let mut alice = s.group_client("alice");
        let mut alice_cc = s.conv_client("alice");
        let mut admin = s.admin_group_client(Some("alice"));
        check_lists(&s, cache_users, 0, &[]).await;
        let r = create(&mut alice, "A", &["C2Ca"]).await.unwrap().revision;
        check_lists(&s, cache_users, r, &[("A", 1, 0)]).await;
        let r = add(&mut alice, "A", &["C2Cb"]).await.unwrap().revision;
        check_lists(&s, cache_users, r, &[("A", 2, 0)]).await;
        let unread = ConversationUpdate { unread_count: Some(4), ..update("C2Cb") };
        let r = upsert_ok(&mut alice_cc, vec![unread]).await.revision;
        check_lists(&s, cache_users, r, &[("A", 2, 4)]).await;
        let r = create(&mut admin, "B", &["C2Cb"]).await.unwrap().revision;
        check_lists(&s, cache_users, r, &[("A", 2, 4), ("B", 1, 4)]).await;
        let r = reorder(&mut alice, &["B", "A"]).await.unwrap().revision;
        check_lists(&s, cache_users, r, &[("B", 1, 4), ("A", 2, 4)]).await;
        let r = rename(&mut alice, "A", "A2").await.unwrap().revision;
        check_lists(&s, cache_users, r, &[("B", 1, 4), ("A2", 2, 4)]).await;
        let r = delete_group(&mut alice, "B").await.unwrap().revision;
        check_lists(&s, cache_users, r, &[("A2", 2, 4)]).await;
    }
}
