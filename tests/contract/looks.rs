//! How a group looks (#14 item 2): UpdateConversationGroup sets a group's
//! icon, colour, collapsed state and client data under an AIP-134 update
//! mask; every answer that returns groups shows them at once (the cached
//! group lists included), one GroupUpdated event records a change, an update
//! that changes nothing keeps the revision, and bad input is refused naming
//! the field, with nothing changed.

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::*;
use prost_types::FieldMask;
use tonic::{Code, Status};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask { paths: strings(paths) })
}

fn by_name(name: &str, look: GroupLook, paths: &[&str]) -> UpdateConversationGroupRequest {
    UpdateConversationGroupRequest {
        group_name: name.into(),
        look: Some(look),
        update_mask: mask(paths),
        ..Default::default()
    }
}

async fn update(
    gc: &mut GroupClient,
    request: UpdateConversationGroupRequest,
) -> Result<UpdateConversationGroupResponse, Status> {
    gc.update_conversation_group(request).await.map(|r| r.into_inner())
}

/// The look fields of a group as the API shows them.
fn look_of(g: &ConversationGroup) -> GroupLook {
    GroupLook { icon: g.icon.clone(), color: g.color, collapsed: g.collapsed, custom_data: g.custom_data.clone() }
}

fn styled() -> GroupLook {
    GroupLook {
        icon: "🚚".into(), color: GroupColor::Orange as i32, collapsed: true, custom_data: vec![0, 1, 2, 0xff]
    }
}

/// A new group has no look; an update of all four fields takes one new
/// revision and shows in its answer, in GetConversationGroupList right away
/// (read before the update too, so a cached answer would be stale), in a
/// read with `min_revision` (the etcd replica's record cache), in a rename's
/// answer and in the watch snapshot; and it survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_shows_in_every_answer_that_returns_groups() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let created = create(&mut gc, "Suppliers", &["C2Cbob"]).await.unwrap();
    assert_eq!(look_of(&created.group.unwrap()), GroupLook::default(), "a new group has no look");
    create(&mut gc, "Other", &["C2Ccarol"]).await.unwrap();
    let before = revision(&mut gc).await;
    // Reads that may be answered from caches later.
    for _ in 0..2 {
        assert_eq!(look_of(&group_list(&mut gc).await.groups[0]), GroupLook::default());
        let cached = gc
            .get_conversation_group_list(GetConversationGroupListRequest { min_revision: Some(before) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(look_of(&cached.groups[0]), GroupLook::default());
    }

    let r =
        update(&mut gc, by_name("Suppliers", styled(), &["icon", "color", "collapsed", "custom_data"])).await.unwrap();
    assert!(r.revision > before, "an update that changes something takes a higher revision");
    let shown = r.group.unwrap();
    assert_eq!(look_of(&shown), styled());
    assert_eq!((shown.name.as_str(), shown.group_id.as_str(), shown.conversation_count), ("Suppliers", "g0", 1));

    let list = group_list(&mut gc).await;
    assert_eq!(list.revision, r.revision);
    assert_eq!(look_of(&list.groups[0]), styled(), "GetConversationGroupList shows the update at once");
    assert_eq!(look_of(&list.groups[1]), GroupLook::default(), "the other group is untouched");
    let at_least = gc
        .get_conversation_group_list(GetConversationGroupListRequest { min_revision: Some(r.revision) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(look_of(&at_least.groups[0]), styled(), "a read with min_revision shows it too");

    let renamed = rename(&mut gc, "Suppliers", "Vendors").await.unwrap().group.unwrap();
    assert_eq!(look_of(&renamed), styled(), "a rename keeps the look");

    let mut watch = open_ok(&mut gc, WatchGroupEventsRequest { send_snapshot: true, ..from(0) }).await;
    let Msg::Snapshot(snapshot) = next_msg(&mut watch).await else { panic!("a Snapshot comes first") };
    let g = &snapshot.groups[0];
    assert_eq!(
        GroupLook { icon: g.icon.clone(), color: g.color, collapsed: g.collapsed, custom_data: g.custom_data.clone() },
        styled(),
        "the watch snapshot shows the look"
    );
    drop(watch);

    let s = s.restart().await;
    let mut gc = s.group_client("alice");
    assert_eq!(look_of(&group(&mut gc, "Vendors").await.unwrap()), styled(), "the look survives a restart");
}

/// Only the masked fields are written, each from `look` (a masked field
/// left at its default clears it); repeated paths count once; `*` names all
/// four. Values outside the mask are ignored, even invalid ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_masked_fields_change() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Work", &["C2Cbob"]).await.unwrap();
    update(&mut gc, by_name("Work", styled(), &["*"])).await.unwrap();

    let other = GroupLook { icon: "x".repeat(500), color: 99, collapsed: false, custom_data: vec![7; 5000] };
    let r = update(&mut gc, by_name("Work", other.clone(), &["collapsed", "collapsed"])).await.unwrap();
    assert_eq!(look_of(&r.group.unwrap()), GroupLook { collapsed: false, ..styled() }, "only collapsed changed");

    let r = update(&mut gc, by_name("Work", GroupLook::default(), &["icon", "custom_data"])).await.unwrap();
    let expected = GroupLook { color: GroupColor::Orange as i32, ..GroupLook::default() };
    assert_eq!(look_of(&r.group.unwrap()), expected, "masked fields at their default are cleared");

    let r = update(&mut gc, by_name("Work", GroupLook { color: GroupColor::Pink as i32, ..other }, &["color"]))
        .await
        .unwrap();
    assert_eq!(r.group.unwrap().color, GroupColor::Pink as i32);
    let r = update(&mut gc, by_name("Work", GroupLook::default(), &["*"])).await.unwrap();
    assert_eq!(look_of(&r.group.unwrap()), GroupLook::default(), "* with an empty look clears everything");
    assert_eq!(look_of(&group(&mut gc, "Work").await.unwrap()), GroupLook::default());
}

/// One GroupUpdated event per changing update, carrying the group's id and
/// name, the paths that changed (not those set to the value they had) and
/// the whole look after it; the watch filters by id, name and type pass it.
/// An update that changes nothing keeps the revision and records no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changing_update_records_one_group_updated_event_and_a_no_op_none() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Work", &["C2Cbob"]).await.unwrap();
    create(&mut gc, "Home", &["C2Cmum"]).await.unwrap();
    let start = revision(&mut gc).await + 1;

    let first = GroupLook { icon: "💼".into(), color: GroupColor::Blue as i32, ..Default::default() };
    let r1 = update(&mut gc, by_name("Work", first.clone(), &["icon", "color", "collapsed"])).await.unwrap();
    assert_eq!(r1.revision, revision(&mut gc).await);
    // Everything as it is: no change, no revision, no event.
    let same = update(&mut gc, by_name("Work", first.clone(), &["*"])).await.unwrap();
    assert_eq!(same.revision, r1.revision, "an update that changes nothing keeps the revision");
    assert_eq!(look_of(&same.group.unwrap()), first);
    let by_id = UpdateConversationGroupRequest {
        group_id: "g0".into(),
        look: Some(GroupLook { icon: "💼".into(), collapsed: true, ..Default::default() }),
        update_mask: mask(&["icon", "collapsed"]),
        ..Default::default()
    };
    let r2 = update(&mut gc, by_id).await.unwrap();
    assert!(r2.revision > r1.revision);
    // A change of another group, to see the filters drop it.
    let r3 = update(&mut gc, by_name("Home", styled(), &["color"])).await.unwrap();

    let updated = |batch: &EventBatch| -> Vec<GroupUpdated> {
        batch
            .events
            .iter()
            .map(|e| match &e.kind {
                Some(Ev::GroupUpdated(u)) => u.clone(),
                other => panic!("expected GroupUpdated, got {other:?}"),
            })
            .collect()
    };
    let mut all = open_ok(&mut gc, from(start)).await;
    let batches = read_through(&mut all, r3.revision).await;
    assert_eq!(batches.iter().map(|b| b.revision).collect::<Vec<_>>(), [r1.revision, r2.revision, r3.revision]);
    assert_eq!(
        updated(&batches[0]),
        [GroupUpdated {
            group_name: "Work".into(),
            group_id: "g0".into(),
            changed_paths: strings(&["icon", "color"]),
            look: Some(first.clone()),
        }],
        "collapsed was named but already false: not among the changed paths"
    );
    assert_eq!(
        updated(&batches[1]),
        [GroupUpdated {
            group_name: "Work".into(),
            group_id: "g0".into(),
            changed_paths: strings(&["collapsed"]),
            look: Some(GroupLook { collapsed: true, ..first.clone() }),
        }]
    );
    assert_eq!(batches[2].events[0].group_ids, strings(&["g0", "g1"]));
    assert_eq!(
        updated(&batches[2])[0].look,
        Some(GroupLook { color: GroupColor::Orange as i32, ..Default::default() })
    );

    for request in [
        WatchGroupEventsRequest { group_ids: strings(&["g0"]), ..from(start) },
        WatchGroupEventsRequest { group_names: strings(&["Work"]), ..from(start) },
    ] {
        let mut filtered = open_ok(&mut gc, request.clone()).await;
        let batches = read_through(&mut filtered, r3.revision).await;
        let revisions: Vec<u64> = batches.iter().filter(|b| !b.events.is_empty()).map(|b| b.revision).collect();
        assert_eq!(revisions, [r1.revision, r2.revision], "{request:?}: only the events about Work");
    }
    let mut by_type =
        open_ok(&mut gc, WatchGroupEventsRequest { event_types: vec![GroupEventType::GroupUpdated as i32], ..from(1) })
            .await;
    let batches = read_through(&mut by_type, r3.revision).await;
    let kept: Vec<u64> = batches.iter().filter(|b| !b.events.is_empty()).map(|b| b.revision).collect();
    assert_eq!(kept, [r1.revision, r2.revision, r3.revision], "the type filter keeps exactly the updates");
}

/// Bad requests are refused with the reason and the field (and the limit),
/// in the contract's order, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_are_refused_naming_the_field_and_change_nothing() {
    let s = TestServer::start_with(|c| {
        c.limits.max_group_icon_bytes = 4;
        c.limits.max_group_custom_data_bytes = 8;
    })
    .await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Work", &["C2Cbob"]).await.unwrap();
    update(&mut gc, by_name("Work", styled(), &["*"])).await.unwrap();
    let before = user_state(&mut gc).await;
    let rev = before.groups.revision;

    let status = expect_err(update(&mut gc, by_name("Work", styled(), &["icon", "name"])).await);
    let info = assert_status_field(&status, Code::InvalidArgument, "INVALID_UPDATE_MASK", None, "update_mask");
    assert_eq!(info.metadata.get("path").map(String::as_str), Some("name"), "{status:?}");
    assert!(status.message().contains("\"name\""), "the message names the path: {status:?}");
    for empty in [None, mask(&[])] {
        let request = UpdateConversationGroupRequest { update_mask: empty, ..by_name("Work", styled(), &[]) };
        let status = expect_err(update(&mut gc, request).await);
        let info = assert_status_field(&status, Code::InvalidArgument, "INVALID_UPDATE_MASK", None, "update_mask");
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("update_mask"));
    }

    let long_icon = GroupLook { icon: "🚚🚚".into(), ..Default::default() };
    let status = expect_err(update(&mut gc, by_name("Work", long_icon, &["icon"])).await);
    let info = assert_status_field(&status, Code::InvalidArgument, "INVALID_GROUP_ICON", None, "look.icon");
    assert_eq!(info.metadata.get("max_bytes").map(String::as_str), Some("4"));
    assert!(status.message().contains("max_group_icon_bytes"), "{status:?}");
    let control = GroupLook { icon: "a\nb".into(), ..Default::default() };
    let status = expect_err(update(&mut gc, by_name("Work", control, &["icon"])).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_GROUP_ICON", None, "look.icon");

    let big = GroupLook { custom_data: vec![1; 9], ..Default::default() };
    let status = expect_err(update(&mut gc, by_name("Work", big, &["custom_data"])).await);
    let info =
        assert_status_field(&status, Code::InvalidArgument, "GROUP_CUSTOM_DATA_TOO_LARGE", None, "look.custom_data");
    assert_eq!(info.metadata.get("max_bytes").map(String::as_str), Some("8"));
    assert!(status.message().contains("max_group_custom_data_bytes"), "{status:?}");

    let status =
        expect_err(update(&mut gc, by_name("Work", GroupLook { color: 8, ..Default::default() }, &["color"])).await);
    let info = assert_status_field(&status, Code::InvalidArgument, "INVALID_ARGUMENT", None, "look.color");
    assert_eq!(info.metadata.get("field").map(String::as_str), Some("look.color"));

    let both = UpdateConversationGroupRequest { group_id: "g0".into(), ..by_name("Work", styled(), &["icon"]) };
    let status = expect_err(update(&mut gc, both).await);
    assert_status(&status, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);
    let bad_id = UpdateConversationGroupRequest { group_id: "zz".into(), ..by_name("", styled(), &["icon"]) };
    let status = expect_err(update(&mut gc, bad_id).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_GROUP_ID", None, "group_id");
    let unknown_id = UpdateConversationGroupRequest { group_id: "g9".into(), ..by_name("", styled(), &["icon"]) };
    let status = expect_err(update(&mut gc, unknown_id).await);
    let info = assert_status_field(&status, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_id");
    assert_eq!(info.metadata.get("group_id").map(String::as_str), Some("g9"));
    let status = expect_err(update(&mut gc, by_name("Nope", styled(), &["icon"])).await);
    assert_status_field(&status, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    let status = expect_err(update(&mut gc, by_name("", styled(), &["icon"])).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");

    let stale = UpdateConversationGroupRequest {
        expected_revision: Some(rev - 1),
        ..by_name("Work", GroupLook::default(), &["*"])
    };
    let status = expect_err(update(&mut gc, stale).await);
    assert_status(&status, Code::Aborted, "REVISION_MISMATCH", None);
    // Validation comes before expected_revision (the contract's order).
    let stale_and_bad =
        UpdateConversationGroupRequest { expected_revision: Some(rev - 1), ..by_name("Work", styled(), &["nope"]) };
    assert_status(
        &expect_err(update(&mut gc, stale_and_bad).await),
        Code::InvalidArgument,
        "INVALID_UPDATE_MASK",
        None,
    );

    assert_eq!(user_state(&mut gc).await, before, "no refusal changed anything");
    let current = UpdateConversationGroupRequest {
        expected_revision: Some(rev),
        ..by_name("Work", GroupLook::default(), &["collapsed"])
    };
    assert!(update(&mut gc, current).await.unwrap().revision > rev, "the current revision is accepted");
}

/// A stored look longer than a since-lowered limit is kept and shown; only
/// new values are checked, and an update of another field goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_limit_keeps_stored_looks() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "Work", &["C2Cbob"]).await.unwrap();
    update(&mut gc, by_name("Work", styled(), &["*"])).await.unwrap();
    let mut s = s;
    s.config.limits.max_group_icon_bytes = 1;
    s.config.limits.max_group_custom_data_bytes = 1;
    let s = s.restart().await;
    let mut gc = s.group_client("alice");
    assert_eq!(look_of(&group(&mut gc, "Work").await.unwrap()), styled());
    let r = update(&mut gc, by_name("Work", GroupLook::default(), &["collapsed"])).await.unwrap();
    assert_eq!(look_of(&r.group.unwrap()), GroupLook { collapsed: false, ..styled() });
}
