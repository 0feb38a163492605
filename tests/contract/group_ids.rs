//! Stable group ids: every group has a server-assigned id that a rename
//! keeps and that is never given to another group of the user; every call
//! that names a group takes the id instead of the name; events, snapshots
//! and listings carry it.

use std::collections::BTreeSet;

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::*;
use tonic::Code;

async fn id_of(gc: &mut GroupClient, name: &str) -> String {
    group(gc, name).await.unwrap_or_else(|| panic!("no group {name:?}")).group_id
}

fn by_id(group_id: &str) -> ConversationFilter {
    ConversationFilter { group_id: Some(group_id.to_string()), ..Default::default() }
}

/// A rename keeps the id; a deleted name created again gets a new one; ids
/// of one user's groups are all different and never come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_survive_renames_and_are_never_reused() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let created = create(&mut gc, "Work", &["C2Ca"]).await.unwrap().group.unwrap();
    assert!(!created.group_id.is_empty(), "a created group has an id: {created:?}");
    assert_eq!(id_of(&mut gc, "Work").await, created.group_id, "the list shows the id the create returned");

    let renamed = rename(&mut gc, "Work", "Office").await.unwrap().group.unwrap();
    assert_eq!(renamed.group_id, created.group_id, "a rename keeps the id");
    assert_eq!(id_of(&mut gc, "Office").await, created.group_id);

    let mut seen = BTreeSet::from([created.group_id.clone()]);
    for round in 0..3 {
        delete_group(&mut gc, "Office").await.unwrap();
        let again = create(&mut gc, "Office", &["C2Ca"]).await.unwrap().group.unwrap();
        assert!(seen.insert(again.group_id.clone()), "round {round}: id {} given twice", again.group_id);
    }
    // Another user's ids are their own: the same id may name bob's group,
    // and never alice's.
    let mut bob = s.group_client("bob");
    create(&mut bob, "Work", &["C2Cb"]).await.unwrap();
    let st = expect_err(
        gc.delete_conversation_group(DeleteConversationGroupRequest {
            group_id: created.group_id.clone(),
            ..Default::default()
        })
        .await,
    );
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_id");
    assert_eq!(group_names(&mut bob).await, ["Work"], "bob's group is untouched");
}

/// Every mutation that names a group does the same by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_takes_the_id_instead_of_the_name() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let work = create(&mut gc, "Work", &["C2Ca"]).await.unwrap().group.unwrap().group_id;
    let home = create(&mut gc, "Home", &["C2Cb"]).await.unwrap().group.unwrap().group_id;

    let added = gc
        .add_conversations_to_group(AddConversationsToGroupRequest {
            group_id: work.clone(),
            conversation_ids: strings(&["C2Cc", "C2Ca"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.success_conversation_ids, ["C2Cc"]);
    assert_failed(&added.failed, &[("C2Ca", ConversationResultCode::AlreadyInGroup)]);

    let removed = gc
        .delete_conversations_from_group(DeleteConversationsFromGroupRequest {
            group_id: work.clone(),
            conversation_ids: strings(&["C2Ca"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.success_conversation_ids, ["C2Ca"]);

    let renamed = gc
        .rename_conversation_group(RenameConversationGroupRequest {
            group_id: work.clone(),
            new_name: "Office".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.group.unwrap().name, "Office");

    let reordered = gc
        .reorder_conversation_groups(ReorderConversationGroupsRequest {
            group_ids: vec![home.clone(), work.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reordered.group_names, ["Home", "Office"]);
    assert_eq!(reordered.group_ids, [home.clone(), work.clone()]);

    assert_eq!(list_ids(&mut gc, by_id(&work)).await, ["C2Cc"], "the listing filter takes the id");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![ConversationUpdate { unread_count: Some(4), ..update("C2Cc") }]).await;
    assert_eq!(unread(&mut gc, Some(by_id(&work))).await.unwrap(), 4, "so does the unread count");
    assert_eq!(unread(&mut gc, Some(by_id(&home))).await.unwrap(), 0);

    let listed = find_conversation(&mut gc, "C2Cc").await.unwrap();
    assert_eq!(listed.conversation_group_list, ["Office"]);
    assert_eq!(listed.conversation_group_ids, [work.as_str()], "a listed conversation names its groups' ids");

    gc.delete_conversation_group(DeleteConversationGroupRequest { group_id: work.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(group_names(&mut gc).await, ["Home"]);
    let st = expect_err(
        gc.get_conversation_list(GetConversationListRequest { filter: Some(by_id(&work)), ..Default::default() }).await,
    );
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "filter.group_id");
}

/// Both a name and an id, an id not of the server's form, an unknown id:
/// each refused with its own reason, naming the fields, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_references_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let work = create(&mut gc, "Work", &["C2Ca"]).await.unwrap().group.unwrap().group_id;
    let before = user_state(&mut gc).await;

    let both = expect_err(
        gc.delete_conversation_group(DeleteConversationGroupRequest {
            group_name: "Work".into(),
            group_id: work.clone(),
            ..Default::default()
        })
        .await,
    );
    let info = assert_status(&both, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);
    assert_eq!(info.metadata.get("field").map(String::as_str), Some("group_name,group_id"));

    let both = expect_err(
        gc.rename_conversation_group(RenameConversationGroupRequest {
            old_name: "Work".into(),
            group_id: work.clone(),
            new_name: "X".into(),
            ..Default::default()
        })
        .await,
    );
    let info = assert_status(&both, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);
    assert_eq!(info.metadata.get("field").map(String::as_str), Some("old_name,group_id"));

    let neither = expect_err(
        gc.add_conversations_to_group(AddConversationsToGroupRequest {
            conversation_ids: strings(&["C2Cb"]),
            ..Default::default()
        })
        .await,
    );
    assert_status_field(&neither, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");

    for malformed in ["work", "g", "g01", "G1", "g-1", "g99999999999"] {
        let st = expect_err(
            gc.add_conversations_to_group(AddConversationsToGroupRequest {
                group_id: malformed.into(),
                conversation_ids: strings(&["C2Cb"]),
                ..Default::default()
            })
            .await,
        );
        assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_ID", None, "group_id");
    }

    let unknown = expect_err(
        gc.delete_conversations_from_group(DeleteConversationsFromGroupRequest {
            group_id: "g4000".into(),
            conversation_ids: strings(&["C2Ca"]),
            ..Default::default()
        })
        .await,
    );
    let info = assert_status_field(&unknown, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_id");
    assert_eq!(info.metadata.get("group_id").map(String::as_str), Some("g4000"));

    let mixed = expect_err(
        gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
            group_names: strings(&["Work"]),
            group_ids: vec![work.clone()],
            ..Default::default()
        })
        .await,
    );
    assert_status(&mixed, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);
    let unknown = expect_err(
        gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
            group_ids: strings(&["g4000"]),
            ..Default::default()
        })
        .await,
    );
    let info = assert_status(&unknown, Code::FailedPrecondition, "GROUP_ORDER_MISMATCH", None);
    assert_eq!(info.metadata.get("field").map(String::as_str), Some("group_ids"));

    let filter =
        ConversationFilter { group_name: Some("Work".into()), group_id: Some(work.clone()), ..Default::default() };
    let st =
        expect_err(gc.get_unread_count(GetUnreadCountRequest { filter: Some(filter), ..Default::default() }).await);
    assert_status(&st, Code::InvalidArgument, "GROUP_NAME_AND_ID", None);

    let watch = open(&mut gc, WatchGroupEventsRequest { group_ids: strings(&["nope"]), ..Default::default() }).await;
    assert_status_field(&expect_err(watch), Code::InvalidArgument, "INVALID_GROUP_ID", None, "group_ids");

    assert_eq!(user_state(&mut gc).await, before, "no refused call changed anything");
}

/// Events about one group carry its id (a rename's too), every batch the
/// ids of the whole list, a snapshot the id of each group; the watch's
/// id filter keeps a group's events across its renames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_snapshots_carry_ids_and_the_watch_filters_by_them() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let start = revision(&mut gc).await + 1;
    let work = create(&mut gc, "Work", &["C2Ca"]).await.unwrap().group.unwrap().group_id;
    let home = create(&mut gc, "Home", &["C2Cb"]).await.unwrap().group.unwrap().group_id;
    rename(&mut gc, "Work", "Office").await.unwrap();
    add(&mut gc, "Office", &["C2Cc"]).await.unwrap();
    remove(&mut gc, "Home", &["C2Cb"]).await.unwrap();
    delete_convs(&mut cc, &["C2Ca"]).await.unwrap();
    let last = delete_group(&mut gc, "Home").await.unwrap().revision;

    let mut all = open_ok(&mut gc, from(start)).await;
    let batches = read_through(&mut all, last).await;
    let mut ids_seen = Vec::new();
    for batch in &batches {
        for e in &batch.events {
            assert_eq!(e.group_ids.len(), e.group_names.len(), "group_ids go with group_names: {e:?}");
            let id = match e.kind.as_ref().expect("kind") {
                Ev::GroupCreated(k) => k.group_id.clone(),
                Ev::GroupDeleted(k) => k.group_id.clone(),
                Ev::GroupRenamed(k) => k.group_id.clone(),
                Ev::ConversationsAddedToGroup(k) => k.group_id.clone(),
                Ev::ConversationsDeletedFromGroup(k) => k.group_id.clone(),
                _ => continue,
            };
            ids_seen.push(id);
        }
    }
    // create Work, create Home, rename Work, add to Office, remove from
    // Home, deletion of C2Ca from Office, delete Home.
    assert_eq!(ids_seen, [&work, &home, &work, &work, &home, &work, &home].map(String::clone));
    let final_batch = batches.last().unwrap();
    assert_eq!(final_batch.events[0].group_names, ["Office"]);
    assert_eq!(final_batch.events[0].group_ids, [work.as_str()]);

    // Filtered by Work's id: its events under both names, none of Home's.
    let mut only_work =
        open_ok(&mut gc, WatchGroupEventsRequest { group_ids: vec![work.clone()], ..from(start) }).await;
    let kept = read_through(&mut only_work, last).await;
    let kept_ids: Vec<String> = kept
        .iter()
        .flat_map(|b| b.events.iter())
        .filter_map(|e| match e.kind.as_ref()? {
            Ev::GroupCreated(k) => Some(k.group_id.clone()),
            Ev::GroupRenamed(k) => Some(k.group_id.clone()),
            Ev::ConversationsAddedToGroup(k) => Some(k.group_id.clone()),
            Ev::ConversationsDeletedFromGroup(k) => Some(k.group_id.clone()),
            Ev::GroupDeleted(k) => Some(k.group_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept_ids,
        [&work, &work, &work, &work].map(String::clone),
        "the id filter follows the group across its rename"
    );

    let mut snap = open_ok(&mut gc, WatchGroupEventsRequest { send_snapshot: true, ..Default::default() }).await;
    let Msg::Snapshot(snapshot) = next_msg(&mut snap).await else { panic!("expected a snapshot first") };
    assert_eq!(snapshot.groups.len(), 1);
    assert_eq!(snapshot.groups[0].name, "Office");
    assert_eq!(snapshot.groups[0].group_id, work);
}
