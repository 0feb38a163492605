//! Group-wide actions (issue #14 item 5): MarkConversationGroupRead,
//! SetConversationGroupMute (with `apply_to_new_members`) and
//! MoveConversations. Each is one revision with one event batch; their
//! per-item results; a move into a full group fails that item and applies
//! the rest; no reader or watcher ever sees a conversation half moved; bad
//! input is refused naming the field, with the state intact.

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::*;
use tonic::{Code, Status};

fn in_group(name: &str) -> ConversationFilter {
    ConversationFilter { group_name: Some(name.to_string()), ..filter() }
}

async fn members(gc: &mut GroupClient, name: &str) -> Vec<String> {
    let mut ids = list_ids(gc, in_group(name)).await;
    ids.sort();
    ids
}

async fn mark_read(gc: &mut GroupClient, name: &str) -> Result<MarkConversationGroupReadResponse, Status> {
    gc.mark_conversation_group_read(MarkConversationGroupReadRequest { group_name: name.into(), ..Default::default() })
        .await
        .map(|r| r.into_inner())
}

async fn mute(
    gc: &mut GroupClient,
    name: &str,
    opt: RecvOpt,
    apply_to_new_members: bool,
) -> Result<SetConversationGroupMuteResponse, Status> {
    gc.set_conversation_group_mute(SetConversationGroupMuteRequest {
        group_name: name.into(),
        recv_opt: opt as i32,
        apply_to_new_members,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

fn to(names: &[&str]) -> Vec<GroupSelector> {
    names.iter().map(|n| GroupSelector { group_name: n.to_string(), group_id: String::new() }).collect()
}

async fn move_convs(
    gc: &mut GroupClient,
    ids: &[&str],
    from: Option<&str>,
    targets: &[&str],
) -> Result<MoveConversationsResponse, Status> {
    gc.move_conversations(MoveConversationsRequest {
        conversation_ids: strings(ids),
        from_group_name: from.unwrap_or_default().to_string(),
        to: to(targets),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

fn unread_update(id: &str, unread: u32) -> ConversationUpdate {
    ConversationUpdate { unread_count: Some(unread), ..update(id) }
}

fn changed(ids: &[&str]) -> Ev {
    Ev::ConversationsChanged(ConversationsChanged { conversation_ids: strings(ids) })
}

fn added(name: &str, ids: &[&str]) -> Ev {
    Ev::ConversationsAddedToGroup(ConversationsAddedToGroup {
        group_name: name.into(),
        conversation_ids: strings(ids),
        reason: AdditionReason::UserRequest as i32,
        ..Default::default()
    })
}

fn moved_out(name: &str, ids: &[&str]) -> Ev {
    Ev::ConversationsDeletedFromGroup(ConversationsDeletedFromGroup {
        group_name: name.into(),
        conversation_ids: strings(ids),
        reason: RemovalReason::Moved as i32,
        ..Default::default()
    })
}

fn mute_changed(name: &str, opt: Option<RecvOpt>) -> Ev {
    Ev::GroupMuteChanged(GroupMuteChanged {
        group_name: name.into(),
        new_member_recv_opt: opt.map(|o| o as i32),
        ..Default::default()
    })
}

/// A watch from just after the caller's current revision.
async fn watch_next(gc: &mut GroupClient) -> WatchStream {
    let from_revision = revision(gc).await + 1;
    let mut stream = open_ok(gc, from(from_revision)).await;
    expect_bookmark(&mut stream).await;
    stream
}

/// Mark read: every member with unread messages to 0 in one revision, the
/// group's and the user's unread totals follow, other groups' members and
/// `has_group_at_info` are left alone; a second call changes nothing and
/// keeps the revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_read_zeroes_every_member_in_one_revision() {
    let s = TestServer::start().await;
    let (mut gc, mut cc) = (s.group_client("alice"), s.conv_client("alice"));
    upsert_ok(
        &mut cc,
        vec![
            ConversationUpdate { has_group_at_info: Some(true), ..unread_update("C2Ca", 3) },
            unread_update("C2Cb", 2),
            unread_update("C2Cc", 0),
            unread_update("C2Cd", 5),
        ],
    )
    .await;
    create(&mut gc, "Work", &["C2Ca", "C2Cb", "C2Cc", "C2Cx"]).await.unwrap();
    create(&mut gc, "Home", &["C2Cd", "C2Ca"]).await.unwrap();
    assert_eq!(group(&mut gc, "Work").await.unwrap().unread_count, 5);
    let mut stream = watch_next(&mut gc).await;

    let r = mark_read(&mut gc, "Work").await.unwrap();
    assert_eq!(r.changed_conversation_ids, ["C2Ca", "C2Cb"], "the members that had unread messages, in id order");
    let batch = expect_batch(&mut stream).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch), [changed(&["C2Ca", "C2Cb"])]);

    let list = group_list(&mut gc).await;
    assert_eq!(list.revision, r.revision);
    let unread_of = |name: &str| list.groups.iter().find(|g| g.name == name).unwrap().unread_count;
    assert_eq!(unread_of("Work"), 0);
    assert_eq!(unread_of("Home"), 5, "C2Cd of Home keeps its count");
    assert_eq!(unread(&mut gc, None).await.unwrap(), 5);
    let a = find_conversation(&mut gc, "C2Ca").await.unwrap();
    assert_eq!(a.unread_count, 0);
    assert!(a.has_group_at_info, "an @-mention is the client's to clear");
    let x = find_conversation(&mut gc, "C2Cx").await.unwrap();
    assert!(!x.registered, "a member never registered stays so");

    let again = mark_read(&mut gc, "Work").await.unwrap();
    assert!(again.changed_conversation_ids.is_empty());
    assert_eq!(again.revision, r.revision, "nothing changed: the revision is kept");

    // By id, too.
    upsert_ok(&mut cc, vec![unread_update("C2Cd", 7)]).await;
    let home = group(&mut gc, "Home").await.unwrap();
    let r = gc
        .mark_conversation_group_read(MarkConversationGroupReadRequest {
            group_id: home.group_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.changed_conversation_ids, ["C2Cd"]);
    assert_eq!(unread(&mut gc, None).await.unwrap(), 0);
}

/// Mute: every member's receive option in one revision (unregistered
/// members become registered with it), the group's unread total counts
/// only RECEIVE members; with `apply_to_new_members` conversations that
/// join later (Add, Move) get the option in the same batch as their join;
/// unmuting without it forgets the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_sets_members_and_remembers_the_option_for_new_members() {
    let s = TestServer::start().await;
    let (mut gc, mut cc) = (s.group_client("alice"), s.conv_client("alice"));
    upsert_ok(&mut cc, vec![unread_update("C2Ca", 3), unread_update("C2Cm", 4)]).await;
    create(&mut gc, "Noisy", &["C2Ca", "C2Cb"]).await.unwrap();
    create(&mut gc, "Other", &["C2Cm"]).await.unwrap();
    let mut stream = watch_next(&mut gc).await;

    let r = mute(&mut gc, "Noisy", RecvOpt::NotReceive, true).await.unwrap();
    assert_eq!(r.changed_conversation_ids, ["C2Ca", "C2Cb"]);
    let g = r.group.clone().unwrap();
    assert_eq!(g.new_member_recv_opt, Some(RecvOpt::NotReceive as i32));
    assert_eq!(g.unread_count, 0, "muted members do not count");
    assert_eq!(group(&mut gc, "Noisy").await.unwrap(), g, "the group list shows the same group");
    let batch = expect_batch(&mut stream).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch), [mute_changed("Noisy", Some(RecvOpt::NotReceive)), changed(&["C2Ca", "C2Cb"])]);
    assert_eq!(
        batch.events[0].kind,
        Some(Ev::GroupMuteChanged(GroupMuteChanged {
            group_name: "Noisy".into(),
            group_id: g.group_id.clone(),
            new_member_recv_opt: Some(RecvOpt::NotReceive as i32),
        }))
    );
    let b = find_conversation(&mut gc, "C2Cb").await.unwrap();
    assert_eq!(b.recv_opt, RecvOpt::NotReceive as i32);
    assert!(b.registered, "an unregistered member becomes registered with its option");
    assert_eq!(unread(&mut gc, None).await.unwrap(), 4, "only C2Cm still counts");

    // A conversation added later gets the option, in the add's batch.
    let r = add(&mut gc, "Noisy", &["C2Cn"]).await.unwrap();
    let batch = expect_batch(&mut stream).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch), [added("Noisy", &["C2Cn"]), changed(&["C2Cn"])]);
    assert_eq!(find_conversation(&mut gc, "C2Cn").await.unwrap().recv_opt, RecvOpt::NotReceive as i32);

    // And one moved in; the unread totals follow.
    let r = move_convs(&mut gc, &["C2Cm"], Some("Other"), &["Noisy"]).await.unwrap();
    assert_eq!(r.moved_conversation_ids, ["C2Cm"]);
    let batch = expect_batch(&mut stream).await;
    assert_eq!(kinds(&batch), [moved_out("Other", &["C2Cm"]), added("Noisy", &["C2Cm"]), changed(&["C2Cm"])]);
    assert_eq!(find_conversation(&mut gc, "C2Cm").await.unwrap().recv_opt, RecvOpt::NotReceive as i32);
    assert_eq!(unread(&mut gc, None).await.unwrap(), 0);
    assert_eq!(group(&mut gc, "Noisy").await.unwrap().unread_count, 0);

    // Unmute without apply_to_new_members: members receive, the option is
    // forgotten, and the next member keeps its own.
    let r = mute(&mut gc, "Noisy", RecvOpt::Receive, false).await.unwrap();
    assert_eq!(r.changed_conversation_ids, ["C2Ca", "C2Cb", "C2Cm", "C2Cn"]);
    assert_eq!(r.group.as_ref().unwrap().new_member_recv_opt, None);
    assert_eq!(r.group.as_ref().unwrap().unread_count, 7);
    let batch = expect_batch(&mut stream).await;
    assert_eq!(kinds(&batch), [mute_changed("Noisy", None), changed(&["C2Ca", "C2Cb", "C2Cm", "C2Cn"])]);
    add(&mut gc, "Noisy", &["C2Cq"]).await.unwrap();
    let q = find_conversation(&mut gc, "C2Cq").await.unwrap();
    assert_eq!((q.recv_opt, q.registered), (RecvOpt::Receive as i32, false));
    let batch = expect_batch(&mut stream).await;
    assert_eq!(kinds(&batch), [added("Noisy", &["C2Cq"])]);

    // Muting again registers C2Cq (it gets registry data of its own)...
    let r = mute(&mut gc, "Noisy", RecvOpt::Receive, false).await.unwrap();
    assert_eq!(r.changed_conversation_ids, ["C2Cq"]);
    assert!(find_conversation(&mut gc, "C2Cq").await.unwrap().registered);
    // ...and then there is nothing to change: no event, the revision is kept.
    let before = revision(&mut gc).await;
    let r = mute(&mut gc, "Noisy", RecvOpt::Receive, false).await.unwrap();
    assert!(r.changed_conversation_ids.is_empty());
    assert_eq!(r.revision, before);
}

/// A move between two groups: one batch with the removal (reason MOVED)
/// and the addition; per-item results for ids not in `from`, malformed,
/// duplicated, or already in the target (moved all the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_is_one_batch_with_per_item_results() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Inbox", &["C2Ca", "C2Cb", "C2Cc"]).await.unwrap();
    let later = create(&mut gc, "Later", &["C2Cc"]).await.unwrap().group.unwrap();
    let mut stream = watch_next(&mut gc).await;

    let r = move_convs(&mut gc, &["C2Ca", "C2Cc", "C2Cz", "bogus", "c2c_a"], Some("Inbox"), &["Later"]).await.unwrap();
    assert_eq!(r.moved_conversation_ids, ["C2Ca", "C2Cc"]);
    assert_failed(
        &r.failed,
        &[("C2Cz", R::NotInGroup), ("bogus", R::InvalidConversationId), ("c2c_a", R::DuplicateInRequest)],
    );
    assert_eq!(r.targets.len(), 1);
    assert_eq!((r.targets[0].group_name.as_str(), r.targets[0].group_id.as_str()), ("Later", later.group_id.as_str()));
    assert_eq!(r.targets[0].added_conversation_ids, ["C2Ca"]);
    assert_failed(&r.targets[0].failed, &[("C2Cc", R::AlreadyInGroup)]);

    let batch = expect_batch(&mut stream).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch), [moved_out("Inbox", &["C2Ca", "C2Cc"]), added("Later", &["C2Ca"])]);
    assert_eq!(members(&mut gc, "Inbox").await, ["C2Cb"]);
    assert_eq!(members(&mut gc, "Later").await, ["C2Ca", "C2Cc"]);
    let list = group_list(&mut gc).await;
    assert_eq!(list.revision, r.revision);
    assert_eq!(list.groups.iter().map(|g| g.conversation_count).collect::<Vec<_>>(), [1, 2]);

    // Nothing to move: no event, revision kept.
    let r2 = move_convs(&mut gc, &["C2Cz"], Some("Inbox"), &["Later"]).await.unwrap();
    assert_eq!(r2.revision, r.revision);
    assert!(r2.moved_conversation_ids.is_empty());
}

/// "A move into a full group — a per-item failure, the rest applied": the
/// conversation that does not fit stays in `from` and joins no target
/// (GROUP_FULL there, MOVE_NOT_APPLIED in the target that had room); the
/// one that fits is moved into both. Without `from`, targets are
/// independent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_into_a_full_group_fails_that_item_and_applies_the_rest() {
    let s = TestServer::start_with(|c| c.limits.max_conversations_per_group = 3).await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Inbox", &["C2Ca", "C2Cb", "C2Cc"]).await.unwrap();
    create(&mut gc, "Full", &["C2Cx", "C2Cy"]).await.unwrap();
    create(&mut gc, "Roomy", &["C2Cw"]).await.unwrap();
    let mut stream = watch_next(&mut gc).await;

    let r = move_convs(&mut gc, &["C2Ca", "C2Cb"], Some("Inbox"), &["Full", "Roomy"]).await.unwrap();
    assert_eq!(r.moved_conversation_ids, ["C2Ca"]);
    assert_failed(&r.failed, &[("C2Cb", R::GroupFull)]);
    assert_eq!(r.targets[0].added_conversation_ids, ["C2Ca"]);
    assert_failed(&r.targets[0].failed, &[("C2Cb", R::GroupFull)]);
    assert_eq!(r.targets[1].added_conversation_ids, ["C2Ca"]);
    assert_failed(&r.targets[1].failed, &[("C2Cb", R::MoveNotApplied)]);
    let batch = expect_batch(&mut stream).await;
    assert_eq!(kinds(&batch), [moved_out("Inbox", &["C2Ca"]), added("Full", &["C2Ca"]), added("Roomy", &["C2Ca"])]);
    assert_eq!(members(&mut gc, "Inbox").await, ["C2Cb", "C2Cc"], "C2Cb was not half moved");
    assert_eq!(members(&mut gc, "Full").await, ["C2Ca", "C2Cx", "C2Cy"]);
    assert_eq!(members(&mut gc, "Roomy").await, ["C2Ca", "C2Cw"]);

    // Without `from`: each target on its own.
    let r = move_convs(&mut gc, &["C2Cb", "C2Cc"], None, &["Full", "Roomy"]).await.unwrap();
    assert!(r.moved_conversation_ids.is_empty() && r.failed.is_empty());
    assert_failed(&r.targets[0].failed, &[("C2Cb", R::GroupFull), ("C2Cc", R::GroupFull)]);
    assert_eq!(r.targets[1].added_conversation_ids, ["C2Cb"]);
    assert_failed(&r.targets[1].failed, &[("C2Cc", R::GroupFull)]);
    let batch = expect_batch(&mut stream).await;
    assert_eq!(kinds(&batch), [added("Roomy", &["C2Cb"])]);
    assert_eq!(members(&mut gc, "Inbox").await, ["C2Cb", "C2Cc"], "adding leaves the source alone");
}

/// Add N conversations to M groups, by name and by id, in one revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_to_several_groups_by_name_and_id() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "A", &["C2Cz"]).await.unwrap();
    let b = create(&mut gc, "B", &["C2Cz"]).await.unwrap().group.unwrap();
    let mut stream = watch_next(&mut gc).await;
    let r = gc
        .move_conversations(MoveConversationsRequest {
            conversation_ids: strings(&["C2Cp", "GROUPq"]),
            to: vec![
                GroupSelector { group_name: "A".into(), group_id: String::new() },
                GroupSelector { group_name: String::new(), group_id: b.group_id.clone() },
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.targets.iter().map(|t| t.group_name.as_str()).collect::<Vec<_>>(), ["A", "B"]);
    for t in &r.targets {
        assert_eq!(t.added_conversation_ids, ["C2Cp", "GROUPq"]);
    }
    let batch = expect_batch(&mut stream).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch), [added("A", &["C2Cp", "GROUPq"]), added("B", &["C2Cp", "GROUPq"])]);
}

/// Bad requests are refused whole, naming the field, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field_and_change_nothing() {
    let s = TestServer::start_with(|c| c.limits.max_groups = 3).await;
    let mut gc = s.group_client("alice");
    let a = create(&mut gc, "A", &["C2Ca"]).await.unwrap().group.unwrap();
    create(&mut gc, "B", &["C2Cb"]).await.unwrap();
    let before = user_state(&mut gc).await;
    let sel = |name: &str, id: &str| GroupSelector { group_name: name.into(), group_id: id.into() };
    let req = |from: &str, to: Vec<GroupSelector>| MoveConversationsRequest {
        conversation_ids: strings(&["C2Ca"]),
        from_group_name: from.into(),
        to,
        ..Default::default()
    };

    let cases: Vec<(MoveConversationsRequest, Code, &str, &str)> = vec![
        (req("Nope", vec![sel("B", "")]), Code::NotFound, "GROUP_NOT_FOUND", "from_group_name"),
        (req("A", vec![sel("", "g99")]), Code::NotFound, "GROUP_NOT_FOUND", "to.group_id"),
        (req("A", vec![sel("Nope", "")]), Code::NotFound, "GROUP_NOT_FOUND", "to.group_name"),
        (req("A", vec![sel("B", "g2")]), Code::InvalidArgument, "GROUP_NAME_AND_ID", "to.group_name"),
        (req("A", vec![sel("", "zz")]), Code::InvalidArgument, "INVALID_GROUP_ID", "to.group_id"),
        (req("A", vec![]), Code::InvalidArgument, "INVALID_ARGUMENT", "to"),
        (req("A", vec![sel("", &a.group_id)]), Code::InvalidArgument, "INVALID_ARGUMENT", "to"),
        (req("A", vec![sel("B", ""), sel("B", "")]), Code::InvalidArgument, "INVALID_ARGUMENT", "to"),
        (
            req("A", vec![sel("B", ""), sel("X", ""), sel("Y", ""), sel("Z", "")]),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            "to",
        ),
        (
            MoveConversationsRequest { from_group_id: a.group_id.clone(), ..req("A", vec![sel("B", "")]) },
            Code::InvalidArgument,
            "GROUP_NAME_AND_ID",
            "from_group_name",
        ),
        (
            MoveConversationsRequest { expected_revision: Some(1), ..req("A", vec![sel("B", "")]) },
            Code::Aborted,
            "REVISION_MISMATCH",
            "expected_revision",
        ),
        (
            MoveConversationsRequest { conversation_ids: vec![], ..req("A", vec![sel("B", "")]) },
            Code::InvalidArgument,
            "INVALID_CONVERSATION_LIST",
            "conversation_ids",
        ),
    ];
    for (request, code, reason, field) in cases {
        let status = expect_err(gc.move_conversations(request.clone()).await);
        let tencent = match reason {
            "GROUP_NOT_FOUND" => Some("51009"),
            "INVALID_CONVERSATION_LIST" => Some("51006"),
            _ => None,
        };
        let info = assert_status_field(&status, code, reason, tencent, field);
        if reason != "REVISION_MISMATCH" {
            assert!(info.metadata.get("field").is_some_and(|f| f.contains(field)), "{request:?}: {info:?}");
        }
    }

    let status = expect_err(mute(&mut gc, "A", RecvOpt::Unspecified, false).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_ARGUMENT", None, "recv_opt");
    let status = expect_err(mute(&mut gc, "Nope", RecvOpt::NotReceive, true).await);
    assert_status_field(&status, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let status = expect_err(mark_read(&mut gc, "Nope").await);
    assert_status_field(&status, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let status = expect_err(
        gc.mark_conversation_group_read(MarkConversationGroupReadRequest {
            group_name: "A".into(),
            group_id: a.group_id.clone(),
            ..Default::default()
        })
        .await,
    );
    assert_status(&status, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);
    let status = expect_err(
        gc.set_conversation_group_mute(SetConversationGroupMuteRequest {
            group_id: "g77".into(),
            recv_opt: RecvOpt::NotReceive as i32,
            ..Default::default()
        })
        .await,
    );
    assert_status_field(&status, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_id");
    let status = expect_err(
        gc.mark_conversation_group_read(MarkConversationGroupReadRequest {
            group_name: "A".into(),
            expected_revision: Some(before.groups.revision + 5),
            ..Default::default()
        })
        .await,
    );
    assert_status(&status, Code::Aborted, "REVISION_MISMATCH", None);

    assert_eq!(user_state(&mut gc).await, before, "every refusal left the state as it was");
}

/// Never a half-done move visible to a reader: while conversations go back
/// and forth between two groups, every listing shows each of them in
/// exactly one of the two, and every watched batch holds the removal and
/// the addition together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_watchers_never_see_a_half_done_move() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let ids = ["C2Ca", "C2Cb", "C2Cc", "C2Cd"];
    create(&mut gc, "Left", &ids).await.unwrap();
    create(&mut gc, "Right", &["C2Cr"]).await.unwrap();
    let mut stream = watch_next(&mut gc).await;

    let mut mover = s.group_client("alice");
    const MOVES: usize = 24;
    let moves = tokio::spawn(async move {
        let mut last = 0;
        for i in 0..MOVES {
            let (from, to) = if i % 2 == 0 { ("Left", "Right") } else { ("Right", "Left") };
            let r = move_convs(&mut mover, &ids, Some(from), &[to]).await.unwrap();
            assert_eq!(r.moved_conversation_ids.len(), ids.len(), "{r:?}");
            last = r.revision;
        }
        last
    });
    let mut reads = 0;
    while !moves.is_finished() || reads == 0 {
        for c in list_all(&mut gc, None).await.into_iter().filter(|c| ids.contains(&c.conversation_id.as_str())) {
            assert_eq!(c.conversation_group_list.len(), 1, "{} is in exactly one group: {c:?}", c.conversation_id);
        }
        reads += 1;
    }
    let last = moves.await.unwrap();
    let batches = read_through(&mut stream, last).await;
    assert_eq!(batches.len(), MOVES);
    for batch in &batches {
        let k = kinds(batch);
        assert_eq!(k.len(), 2, "{batch:?}");
        assert!(
            matches!(&k[0], Ev::ConversationsDeletedFromGroup(d) if d.conversation_ids.len() == 4 && d.reason == RemovalReason::Moved as i32)
        );
        assert!(matches!(&k[1], Ev::ConversationsAddedToGroup(a) if a.conversation_ids.len() == 4));
    }
}

/// GroupMuteChanged is an event about one group: a watch filtered by that
/// group's id or by the event type gets it, one filtered by another group
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_mute_changed_passes_the_watch_filters_of_its_group() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let quiet = create(&mut gc, "Quiet", &["C2Ca"]).await.unwrap().group.unwrap();
    let other = create(&mut gc, "Other", &["C2Cb"]).await.unwrap().group.unwrap();
    let start = revision(&mut gc).await + 1;
    let by_id = |id: &str| WatchGroupEventsRequest { group_ids: vec![id.to_string()], ..from(start) };
    let mut mine = open_ok(&mut gc, by_id(&quiet.group_id)).await;
    let mut theirs = open_ok(&mut gc, by_id(&other.group_id)).await;
    let by_type = WatchGroupEventsRequest { event_types: vec![GroupEventType::GroupMuteChanged as i32], ..from(start) };
    let mut typed = open_ok(&mut gc, by_type).await;
    for stream in [&mut mine, &mut theirs, &mut typed] {
        expect_bookmark(stream).await;
    }

    let r = mute(&mut gc, "Quiet", RecvOpt::NotReceive, true).await.unwrap();
    let batch = expect_batch(&mut mine).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch)[0], mute_changed("Quiet", Some(RecvOpt::NotReceive)));
    let batch = expect_batch(&mut typed).await;
    assert_eq!(kinds(&batch), [mute_changed("Quiet", Some(RecvOpt::NotReceive))], "only the filtered type");
    // The other group's watcher gets the batch without the group's event
    // (ConversationsChanged is about no group: it passes every group filter).
    let batch = expect_batch(&mut theirs).await;
    assert_eq!(batch.revision, r.revision);
    assert_eq!(kinds(&batch), [changed(&["C2Ca"])]);
}
