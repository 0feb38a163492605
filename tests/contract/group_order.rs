//! Order inside a group (issue #14 item 3): each group's sort mode
//! (RECENT, MANUAL, ALPHABETICAL), manual moves, the group's own pins, and
//! listings of one group in its order with keyset paging that stays correct
//! while the order changes. On sled, and on etcd when
//! CONVGROUPS_TEST_ETCD_ENDPOINTS is set.

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::move_conversations_in_group_request::Placement;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::*;
use tonic::Code;

fn in_group(name: &str) -> ConversationFilter {
    ConversationFilter { group_name: Some(name.to_string()), ..filter() }
}

async fn set_mode(gc: &mut GroupClient, name: &str, mode: GroupSortMode) -> Result<u64, tonic::Status> {
    let request =
        SetConversationGroupSortModeRequest { group_name: name.into(), sort_mode: mode as i32, ..Default::default() };
    gc.set_conversation_group_sort_mode(request).await.map(|r| r.into_inner().revision)
}

async fn move_in(
    gc: &mut GroupClient,
    name: &str,
    ids: &[&str],
    placement: Placement,
) -> Result<MoveConversationsInGroupResponse, tonic::Status> {
    let request = MoveConversationsInGroupRequest {
        group_name: name.into(),
        conversation_ids: strings(ids),
        placement: Some(placement),
        ..Default::default()
    };
    gc.move_conversations_in_group(request).await.map(|r| r.into_inner())
}

async fn pin(gc: &mut GroupClient, name: &str, ids: &[&str]) -> Result<PinConversationsInGroupResponse, tonic::Status> {
    let request = PinConversationsInGroupRequest {
        group_name: name.into(),
        conversation_ids: strings(ids),
        ..Default::default()
    };
    gc.pin_conversations_in_group(request).await.map(|r| r.into_inner())
}

async fn unpin(
    gc: &mut GroupClient,
    name: &str,
    ids: &[&str],
) -> Result<UnpinConversationsInGroupResponse, tonic::Status> {
    let request = UnpinConversationsInGroupRequest {
        group_name: name.into(),
        conversation_ids: strings(ids),
        ..Default::default()
    };
    gc.unpin_conversations_in_group(request).await.map(|r| r.into_inner())
}

fn before(id: &str) -> Placement {
    Placement::BeforeConversationId(id.into())
}

fn after(id: &str) -> Placement {
    Placement::AfterConversationId(id.into())
}

/// The batch of `revision` on a watch stream (read through it).
async fn batch_at(stream: &mut WatchStream, revision: u64) -> EventBatch {
    let batches = read_through(stream, revision).await;
    batches.into_iter().find(|b| b.revision == revision).unwrap_or_else(|| panic!("no batch at {revision}"))
}

/// A group's listing, walked in pages of `page_size`.
async fn group_ids(gc: &mut GroupClient, name: &str, page_size: u32) -> Vec<String> {
    ids_of(&list_all_paged(gc, Some(in_group(name)), page_size).await.expect("group listing"))
}

/// Every group starts RECENT with no pins, and a listing of one group is
/// then exactly today's order (pinned, order_key descending, id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_default_to_recent_which_is_the_listing_order_of_today() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let u = |id: &str, pinned: bool, key: u64| ConversationUpdate {
        is_pinned: Some(pinned),
        order_key: Some(key),
        ..update(id)
    };
    upsert_ok(&mut cc, vec![u("C2Ca", false, 5), u("C2Cb", true, 1), u("C2Cc", false, 9), u("C2Cd", false, 9)]).await;
    let g = create(&mut gc, "G", &["C2Ca", "C2Cb", "C2Cc", "C2Cd", "C2Conly"]).await.unwrap().group.unwrap();
    assert_eq!(g.sort_mode, GroupSortMode::Recent as i32);
    assert!(g.pinned_conversation_ids.is_empty());
    let expected = ["C2Cb", "C2Cc", "C2Cd", "C2Ca", "C2Conly"];
    assert_eq!(group_ids(&mut gc, "G", 1000).await, expected);
    assert_eq!(group_ids(&mut gc, "G", 2).await, expected, "paged the same");
    // Setting the mode it has changes nothing.
    let rev = revision(&mut gc).await;
    assert_eq!(set_mode(&mut gc, "G", GroupSortMode::Recent).await.unwrap(), rev);
}

/// ALPHABETICAL: show_name byte-wise (no case folding: upper case sorts
/// before lower case), ties and empty names by conversation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alphabetical_sorts_show_names_byte_wise_then_ids() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let named = |id: &str, name: &str| ConversationUpdate { show_name: Some(name.into()), ..update(id) };
    upsert_ok(
        &mut cc,
        vec![
            named("C2C1", "bob"),
            named("C2C2", "Alice"),
            named("C2C3", "alice"),
            named("C2C4", "Zed"),
            named("C2C5", "bob"),
        ],
    )
    .await;
    let request = CreateConversationGroupRequest {
        group_name: "A".into(),
        conversation_ids: strings(&["C2C1", "C2C2", "C2C3", "C2C4", "C2C5", "C2C0"]),
        sort_mode: Some(GroupSortMode::Alphabetical as i32),
        ..Default::default()
    };
    let created = gc.create_conversation_group(request).await.unwrap().into_inner();
    assert_eq!(created.group.unwrap().sort_mode, GroupSortMode::Alphabetical as i32);
    let expected = ["C2C0", "C2C2", "C2C4", "C2C3", "C2C1", "C2C5"];
    assert_eq!(group_ids(&mut gc, "A", 1000).await, expected);
    assert_eq!(group_ids(&mut gc, "A", 1).await, expected);
    // A rename moves it at once.
    upsert_ok(&mut cc, vec![named("C2C5", "Aaron")]).await;
    assert_eq!(group_ids(&mut gc, "A", 3).await, ["C2C0", "C2C5", "C2C2", "C2C4", "C2C3", "C2C1"]);
    // Other filters still apply within the group's order.
    let only = ConversationFilter { conversation_ids: strings(&["C2C1", "C2C2"]), ..in_group("A") };
    assert_eq!(list_ids(&mut gc, only).await, ["C2C2", "C2C1"]);
}

/// MANUAL: members in the order they joined; moves before/after a member
/// and to either end, several ids in the order given, each one revision
/// with one GroupOrderChanged; new members go to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_moves_place_ids_in_order_in_one_revision_each() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "M", &["C2Ca", "C2Cb", "C2Cc", "C2Cd", "C2Ce"]).await.unwrap();
    let start = set_mode(&mut gc, "M", GroupSortMode::Manual).await.unwrap();
    assert_eq!(group_ids(&mut gc, "M", 1000).await, ["C2Ca", "C2Cb", "C2Cc", "C2Cd", "C2Ce"]);
    let mut stream = open_ok(&mut gc, from(start + 1)).await;

    let r = move_in(&mut gc, "M", &["C2Ce", "C2Cd"], Placement::ToStart(true)).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Ce", "C2Cd"]);
    assert_eq!(group_ids(&mut gc, "M", 2).await, ["C2Ce", "C2Cd", "C2Ca", "C2Cb", "C2Cc"]);
    let batch = batch_at(&mut stream, r.revision).await;
    assert_eq!(batch.events.len(), 1);
    let Some(Ev::GroupOrderChanged(e)) = &batch.events[0].kind else { panic!("{batch:?}") };
    assert_eq!((e.group_name.as_str(), e.sort_mode), ("M", GroupSortMode::Manual as i32));
    assert!(e.group_id.starts_with('g'), "{e:?}");
    assert_eq!((e.conversation_ids.clone(), e.after_conversation_id.as_str()), (strings(&["C2Ce", "C2Cd"]), ""));

    let r = move_in(&mut gc, "M", &["C2Ca"], Placement::ToEnd(true)).await.unwrap();
    assert_eq!(group_ids(&mut gc, "M", 1000).await, ["C2Ce", "C2Cd", "C2Cb", "C2Cc", "C2Ca"]);
    let Some(Ev::GroupOrderChanged(e)) = &batch_at(&mut stream, r.revision).await.events[0].kind else { panic!() };
    assert_eq!(e.after_conversation_id, "C2Cc");
    assert!(r.revision > 0);

    move_in(&mut gc, "M", &["C2Ca", "C2Cc"], before("C2Cd")).await.unwrap();
    assert_eq!(group_ids(&mut gc, "M", 1000).await, ["C2Ce", "C2Ca", "C2Cc", "C2Cd", "C2Cb"]);
    move_in(&mut gc, "M", &["C2Ce"], after("C2Cb")).await.unwrap();
    assert_eq!(group_ids(&mut gc, "M", 1000).await, ["C2Ca", "C2Cc", "C2Cd", "C2Cb", "C2Ce"]);

    // A move that leaves the order as it is changes nothing.
    let rev = revision(&mut gc).await;
    let r = move_in(&mut gc, "M", &["C2Cc"], after("C2Ca")).await.unwrap();
    assert_eq!((r.success_conversation_ids.clone(), r.revision), (strings(&["C2Cc"]), rev));

    // New members join at the end; a member that leaves and comes back too.
    add(&mut gc, "M", &["C2Cnew"]).await.unwrap();
    remove(&mut gc, "M", &["C2Ca"]).await.unwrap();
    add(&mut gc, "M", &["C2Ca"]).await.unwrap();
    assert_eq!(group_ids(&mut gc, "M", 3).await, ["C2Cc", "C2Cd", "C2Cb", "C2Ce", "C2Cnew", "C2Ca"]);

    // Many moves into one spot (some 32 fill a gap; then the group is
    // renumbered) keep the order exact.
    let mut expected = group_ids(&mut gc, "M", 1000).await;
    for round in 0..40 {
        let id = expected.last().unwrap().clone();
        move_in(&mut gc, "M", &[&id], after("C2Cc")).await.unwrap();
        expected.pop();
        expected.insert(1, id);
        assert_eq!(group_ids(&mut gc, "M", 1000).await, expected, "round {round}");
    }
    // Switching to RECENT and back keeps the manual order.
    set_mode(&mut gc, "M", GroupSortMode::Recent).await.unwrap();
    set_mode(&mut gc, "M", GroupSortMode::Manual).await.unwrap();
    assert_eq!(group_ids(&mut gc, "M", 1000).await, expected);
}

/// Bad moves: refused with the reason and the field, nothing changed; items
/// that are not members fail one by one and the rest move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_moves_are_refused_with_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "M", &["C2Ca", "C2Cb", "C2Cc"]).await.unwrap();
    create(&mut gc, "Other", &["C2Cx"]).await.unwrap();

    let status = expect_err(move_in(&mut gc, "M", &["C2Ca"], Placement::ToEnd(true)).await);
    assert_status_field(&status, Code::FailedPrecondition, "SORT_MODE_NOT_MANUAL", None, "sort_mode");
    set_mode(&mut gc, "M", GroupSortMode::Manual).await.unwrap();
    let rev = revision(&mut gc).await;

    let status = expect_err(move_in(&mut gc, "M", &["C2Ca"], before("C2Cx")).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_PLACEMENT", None, "before_conversation_id");
    let status = expect_err(move_in(&mut gc, "M", &["C2Ca", "C2Cb"], after("C2Cb")).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_PLACEMENT", None, "after_conversation_id");
    let status = expect_err(move_in(&mut gc, "M", &["C2Ca"], after("not an id")).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_PLACEMENT", None, "after_conversation_id");
    let status = expect_err(move_in(&mut gc, "M", &["C2Ca"], Placement::ToStart(false)).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_PLACEMENT", None, "to_start");
    let request = MoveConversationsInGroupRequest {
        group_name: "M".into(),
        conversation_ids: strings(&["C2Ca"]),
        ..Default::default()
    };
    let status = expect_err(gc.move_conversations_in_group(request).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_PLACEMENT", None, "placement");
    let status = expect_err(move_in(&mut gc, "M", &[], Placement::ToEnd(true)).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), "conversation_ids");
    let request = MoveConversationsInGroupRequest {
        group_name: "M".into(),
        group_id: "g1".into(),
        conversation_ids: strings(&["C2Ca"]),
        placement: Some(Placement::ToEnd(true)),
        ..Default::default()
    };
    let status = expect_err(gc.move_conversations_in_group(request).await);
    assert_status(&status, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);
    let request = MoveConversationsInGroupRequest {
        group_id: "g99".into(),
        conversation_ids: strings(&["C2Ca"]),
        placement: Some(Placement::ToEnd(true)),
        ..Default::default()
    };
    let status = expect_err(gc.move_conversations_in_group(request).await);
    assert_status_field(&status, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_id");
    let request = SetConversationGroupSortModeRequest { group_name: "M".into(), sort_mode: 0, ..Default::default() };
    let status = expect_err(gc.set_conversation_group_sort_mode(request).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_SORT_MODE", None, "sort_mode");
    let request = SetConversationGroupSortModeRequest { group_name: "M".into(), sort_mode: 42, ..Default::default() };
    let status = expect_err(gc.set_conversation_group_sort_mode(request).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_SORT_MODE", None, "sort_mode");
    let request = MoveConversationsInGroupRequest {
        group_name: "M".into(),
        conversation_ids: strings(&["C2Cc"]),
        placement: Some(Placement::ToStart(true)),
        expected_revision: Some(rev + 1000),
        ..Default::default()
    };
    let status = expect_err(gc.move_conversations_in_group(request).await);
    assert_status(&status, Code::Aborted, "REVISION_MISMATCH", None);
    assert_eq!(revision(&mut gc).await, rev, "every refusal left the state as it was");
    assert_eq!(group_ids(&mut gc, "M", 1000).await, ["C2Ca", "C2Cb", "C2Cc"]);

    // Per item: not a member, duplicate, bad id; the rest are moved.
    let r = move_in(&mut gc, "M", &["C2Cc", "C2Cx", "c2c_c", "bad id"], Placement::ToStart(true)).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cc"]);
    assert_failed(
        &r.failed,
        &[("C2Cx", R::NotInGroup), ("c2c_c", R::DuplicateInRequest), ("bad id", R::InvalidConversationId)],
    );
    assert_eq!(group_ids(&mut gc, "M", 1000).await, ["C2Cc", "C2Ca", "C2Cb"]);
    // Every item failing changes nothing.
    let rev = revision(&mut gc).await;
    let r = move_in(&mut gc, "M", &["C2Cx"], Placement::ToStart(true)).await.unwrap();
    assert_eq!(r.revision, rev);
}

/// The group's own pins: listed first in every mode in pin order (newest
/// pins first; pinning a pinned id again moves it to the front), limited
/// by max_pinned_per_group, gone when the member leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_pins_come_first_in_every_mode_and_are_limited() {
    let s = TestServer::start_with(|c| c.limits.max_pinned_per_group = 2).await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let named = |id: &str, name: &str| ConversationUpdate { show_name: Some(name.into()), ..update(id) };
    upsert_ok(&mut cc, vec![named("C2Ca", "a"), named("C2Cb", "b"), named("C2Cc", "c"), named("C2Cd", "d")]).await;
    create(&mut gc, "P", &["C2Ca", "C2Cb", "C2Cc", "C2Cd"]).await.unwrap();
    set_mode(&mut gc, "P", GroupSortMode::Alphabetical).await.unwrap();
    let start = revision(&mut gc).await;
    let mut stream = open_ok(&mut gc, from(start + 1)).await;

    let r = pin(&mut gc, "P", &["C2Cc", "C2Cx"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cc"]);
    assert_failed(&r.failed, &[("C2Cx", R::NotInGroup)]);
    assert_eq!(r.pinned_conversation_ids, ["C2Cc"]);
    let batch = batch_at(&mut stream, r.revision).await;
    let Some(Ev::GroupPinsChanged(e)) = &batch.events[0].kind else { panic!("{batch:?}") };
    assert_eq!((e.group_name.as_str(), e.pinned_conversation_ids.clone()), ("P", strings(&["C2Cc"])));
    assert!(e.group_id.starts_with('g'));
    assert_eq!(group_ids(&mut gc, "P", 1).await, ["C2Cc", "C2Ca", "C2Cb", "C2Cd"]);

    let r = pin(&mut gc, "P", &["C2Cd", "C2Ca"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cd"]);
    assert_failed(&r.failed, &[("C2Ca", R::GroupPinLimitExceeded)]);
    assert!(r.failed[0].message.contains("max_pinned_per_group"), "{:?}", r.failed);
    assert_eq!(r.pinned_conversation_ids, ["C2Cd", "C2Cc"]);
    // Pinning the pinned ones again reorders them.
    let r = pin(&mut gc, "P", &["C2Cc"]).await.unwrap();
    assert_eq!(r.pinned_conversation_ids, ["C2Cc", "C2Cd"]);
    assert_eq!(group(&mut gc, "P").await.unwrap().pinned_conversation_ids, ["C2Cc", "C2Cd"]);
    for mode in [GroupSortMode::Recent, GroupSortMode::Manual, GroupSortMode::Alphabetical] {
        set_mode(&mut gc, "P", mode).await.unwrap();
        let ids = group_ids(&mut gc, "P", 1).await;
        assert_eq!(&ids[..2], ["C2Cc", "C2Cd"], "{mode:?}");
    }

    let r = unpin(&mut gc, "P", &["C2Cc", "C2Ca", "C2Cx"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cc"]);
    assert_failed(&r.failed, &[("C2Ca", R::NotPinnedInGroup), ("C2Cx", R::NotInGroup)]);
    assert_eq!(r.pinned_conversation_ids, ["C2Cd"]);
    assert_eq!(group_ids(&mut gc, "P", 2).await, ["C2Cd", "C2Ca", "C2Cb", "C2Cc"]);
    // A pinned member that leaves is no longer pinned, and back it is not.
    remove(&mut gc, "P", &["C2Cd"]).await.unwrap();
    assert!(group(&mut gc, "P").await.unwrap().pinned_conversation_ids.is_empty());
    add(&mut gc, "P", &["C2Cd"]).await.unwrap();
    assert_eq!(group_ids(&mut gc, "P", 1000).await, ["C2Ca", "C2Cb", "C2Cc", "C2Cd"]);
    // Group pins are not the conversation's own pin.
    assert!(!find_conversation(&mut gc, "C2Cc").await.unwrap().is_pinned);
}

/// Paging a MANUAL group while it is rearranged: every member that is not
/// moved during the walk comes exactly once, in order; a token issued
/// before the sort mode changed is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_stays_correct_while_the_order_changes() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let ids = c2c_ids("m", 30);
    create_owned(&mut gc, "M", ids.clone(), None).await.unwrap();
    set_mode(&mut gc, "M", GroupSortMode::Manual).await.unwrap();

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut moved = Vec::new();
    for step in 0.. {
        let page = list_page(&mut gc, Some(in_group("M")), 4, &token).await.unwrap();
        seen.extend(ids_of(&page.conversations));
        if page.is_finished {
            break;
        }
        token = page.next_page_token;
        // Between pages: move a member not yet listed to the start, one
        // already listed to the end, and pin one not yet listed.
        let listed: Vec<String> = seen.clone();
        let ahead: Vec<&String> = ids.iter().filter(|id| !listed.contains(id) && !moved.contains(*id)).collect();
        if ahead.len() < 3 {
            continue;
        }
        let (a, b) = (ahead[ahead.len() - 1].clone(), listed[0].clone());
        move_in(&mut gc, "M", &[&a], Placement::ToStart(true)).await.unwrap();
        move_in(&mut gc, "M", &[&b], Placement::ToEnd(true)).await.unwrap();
        moved.extend([a, b]);
        if step == 2 {
            let c = ahead[0].clone();
            pin(&mut gc, "M", &[&c]).await.unwrap();
            moved.push(c);
        }
    }
    let steady: Vec<&String> = ids.iter().filter(|id| !moved.contains(id)).collect();
    let seen_steady: Vec<&String> = seen.iter().filter(|id| !moved.contains(id)).collect();
    assert_eq!(seen_steady, steady, "every member that kept its place, once, in order");

    // A renumbering of the manual order (many moves into one spot) refuses
    // the tokens of the ranks before it, rather than misreading them.
    let page = list_page(&mut gc, Some(in_group("M")), 4, "").await.unwrap();
    let first = ids_of(&page.conversations)[1].clone();
    let mut renumbered = false;
    for round in 0..40 {
        let last = group_ids(&mut gc, "M", 1000).await.last().unwrap().clone();
        move_in(&mut gc, "M", &[&last], after(&first)).await.unwrap();
        if let Err(status) = list_page(&mut gc, Some(in_group("M")), 4, &page.next_page_token).await {
            assert_status_field(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");
            assert!(round > 16, "renumbered after only {round} moves into one spot");
            renumbered = true;
            break;
        }
    }
    assert!(renumbered, "40 moves into one spot renumber the group");

    let page = list_page(&mut gc, Some(in_group("M")), 4, "").await.unwrap();
    set_mode(&mut gc, "M", GroupSortMode::Alphabetical).await.unwrap();
    let status = expect_err(list_page(&mut gc, Some(in_group("M")), 4, &page.next_page_token).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");
    // A group token is bound to its filter.
    let status = expect_err(list_page(&mut gc, Some(filter()), 4, &page.next_page_token).await);
    assert_status(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None);
}

/// A group created with a sort mode tells watchers in the same revision,
/// and the group list and snapshot show it; by id works as by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_a_mode_and_calls_by_id() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut stream = open_ok(&mut gc, from(1)).await;
    let request = CreateConversationGroupRequest {
        group_name: "C".into(),
        conversation_ids: strings(&["C2Ca", "C2Cb"]),
        sort_mode: Some(GroupSortMode::Manual as i32),
        ..Default::default()
    };
    let created = gc.create_conversation_group(request).await.unwrap().into_inner();
    let id = created.group.unwrap().group_id;
    let batch = batch_at(&mut stream, created.revision).await;
    assert!(matches!(batch.events[0].kind, Some(Ev::GroupCreated(_))));
    let Some(Ev::GroupOrderChanged(e)) = &batch.events[1].kind else { panic!("{batch:?}") };
    assert_eq!((e.group_id.as_str(), e.sort_mode), (id.as_str(), GroupSortMode::Manual as i32));

    let request = MoveConversationsInGroupRequest {
        group_id: id.clone(),
        conversation_ids: strings(&["C2Cb"]),
        placement: Some(Placement::ToStart(true)),
        ..Default::default()
    };
    gc.move_conversations_in_group(request).await.unwrap();
    let by_id = ConversationFilter { group_id: Some(id.clone()), ..filter() };
    assert_eq!(list_ids(&mut gc, by_id).await, ["C2Cb", "C2Ca"]);
    let request = PinConversationsInGroupRequest {
        group_id: id.clone(),
        conversation_ids: strings(&["C2Ca"]),
        ..Default::default()
    };
    gc.pin_conversations_in_group(request).await.unwrap();
    let request = SetConversationGroupSortModeRequest {
        group_id: id.clone(),
        sort_mode: GroupSortMode::Alphabetical as i32,
        expected_revision: Some(revision(&mut gc).await),
        ..Default::default()
    };
    let r = gc.set_conversation_group_sort_mode(request).await.unwrap().into_inner();
    let g = r.group.unwrap();
    assert_eq!((g.sort_mode, g.pinned_conversation_ids), (GroupSortMode::Alphabetical as i32, strings(&["C2Ca"])));
    // Unknown sort modes on create are refused.
    let request = CreateConversationGroupRequest {
        group_name: "D".into(),
        conversation_ids: strings(&["C2Ca"]),
        sort_mode: Some(9),
        ..Default::default()
    };
    let status = expect_err(gc.create_conversation_group(request).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_SORT_MODE", None, "sort_mode");
}

/// The manual order and the pins survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_and_pins_survive_a_restart() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "M", &["C2Ca", "C2Cb", "C2Cc"]).await.unwrap();
    set_mode(&mut gc, "M", GroupSortMode::Manual).await.unwrap();
    move_in(&mut gc, "M", &["C2Cc", "C2Cb"], Placement::ToStart(true)).await.unwrap();
    pin(&mut gc, "M", &["C2Ca"]).await.unwrap();
    let s = s.restart().await;
    let mut gc = s.group_client("alice");
    assert_eq!(group_ids(&mut gc, "M", 1).await, ["C2Ca", "C2Cc", "C2Cb"]);
    assert_eq!(group(&mut gc, "M").await.unwrap().sort_mode, GroupSortMode::Manual as i32);
}
