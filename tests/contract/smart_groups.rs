//! Smart groups: a group with a rule holds the conversations the rule
//! selects, kept up to date in the same revision as the change that makes a
//! conversation match or stop matching, with RULE events; listing, counts,
//! unread totals and snapshots treat rule members as any members.

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::*;
use tonic::Code;

fn unread_rule() -> GroupRule {
    GroupRule { has_unread_count: Some(true), ..Default::default() }
}

async fn create_smart(
    gc: &mut GroupClient,
    name: &str,
    ids: &[&str],
    rule: GroupRule,
) -> CreateConversationGroupResponse {
    gc.create_conversation_group(CreateConversationGroupRequest {
        group_name: name.into(),
        conversation_ids: strings(ids),
        rule: Some(rule),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|s| panic!("create {name}: {s:?}"))
    .into_inner()
}

async fn set_rule(gc: &mut GroupClient, name: &str, rule: Option<GroupRule>) -> SetConversationGroupRuleResponse {
    gc.set_conversation_group_rule(SetConversationGroupRuleRequest {
        group_name: name.into(),
        rule,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|s| panic!("rule of {name}: {s:?}"))
    .into_inner()
}

fn with_unread(id: &str, unread: u32) -> ConversationUpdate {
    ConversationUpdate { unread_count: Some(unread), ..update(id) }
}

fn rule_added(group: &str, ids: &[&str]) -> Ev {
    Ev::ConversationsAddedToGroup(ConversationsAddedToGroup {
        group_name: group.into(),
        conversation_ids: strings(ids),
        reason: AdditionReason::Rule as i32,
        ..Default::default()
    })
}

fn rule_removed(group: &str, ids: &[&str]) -> Ev {
    Ev::ConversationsDeletedFromGroup(ConversationsDeletedFromGroup {
        group_name: group.into(),
        conversation_ids: strings(ids),
        reason: RemovalReason::Rule as i32,
        ..Default::default()
    })
}

async fn members(gc: &mut GroupClient, group: &str) -> Vec<String> {
    let mut ids = list_ids(gc, ConversationFilter { group_name: Some(group.into()), ..Default::default() }).await;
    ids.sort();
    ids
}

/// Created with a rule and no explicit members, a group holds what the rule
/// selects; a registry change that makes a conversation match or stop
/// matching moves it in or out in the same revision, with RULE events
/// after the change's own; counts and unread totals follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_membership_follows_registry_changes_in_the_same_revision() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![with_unread("C2Ca", 2), with_unread("C2Cb", 0)]).await;
    let start = revision(&mut gc).await + 1;

    let created = create_smart(&mut gc, "Unread", &[], unread_rule()).await;
    let group = created.group.unwrap();
    assert_eq!(group.conversation_count, 1, "{group:?}");
    assert_eq!(group.unread_count, 2);
    assert_eq!(group.rule, Some(unread_rule()), "the group shows its rule");
    assert!(created.success_conversation_ids.is_empty());
    assert_eq!(members(&mut gc, "Unread").await, ["C2Ca"]);

    let joined = upsert_ok(&mut cc, vec![with_unread("C2Cb", 3)]).await.revision;
    assert_eq!(members(&mut gc, "Unread").await, ["C2Ca", "C2Cb"]);
    let left = upsert_ok(&mut cc, vec![with_unread("C2Ca", 0)]).await.revision;
    assert_eq!(members(&mut gc, "Unread").await, ["C2Cb"]);
    let unread_now = group_list(&mut gc).await.groups[0].clone();
    assert_eq!((unread_now.conversation_count, unread_now.unread_count), (1, 3));
    let filter = ConversationFilter { group_name: Some("Unread".into()), ..Default::default() };
    assert_eq!(unread(&mut gc, Some(filter)).await.unwrap(), 3);

    let mut watch = open_ok(&mut gc, from(start)).await;
    let batches = read_through(&mut watch, left).await;
    assert_eq!(revisions(&batches), [created.revision, joined, left], "one batch per mutation");
    let kinds0 = kinds(&batches[0]);
    assert!(matches!(&kinds0[0], Ev::GroupCreated(c) if c.group_name == "Unread" && c.conversation_ids.is_empty()));
    assert!(matches!(&kinds0[1], Ev::GroupRuleChanged(r) if r.rule == Some(unread_rule())), "{kinds0:?}");
    assert_eq!(kinds0[2], rule_added("Unread", &["C2Ca"]));
    let changed = |id: &str| Ev::ConversationsChanged(ConversationsChanged { conversation_ids: strings(&[id]) });
    assert_eq!(kinds(&batches[1]), [changed("C2Cb"), rule_added("Unread", &["C2Cb"])]);
    assert_eq!(kinds(&batches[2]), [changed("C2Ca"), rule_removed("Unread", &["C2Ca"])]);
    let rule_event = &batches[2].events[1];
    let Some(Ev::ConversationsDeletedFromGroup(d)) = &rule_event.kind else { unreachable!() };
    assert_eq!(d.group_id, group.group_id, "rule events carry the group id");
}

/// Explicit members stay whatever the rule says; a member by rule only
/// cannot be removed explicitly (IN_GROUP_BY_RULE, the rest of the request
/// applied); include_ids and exclude_ids override the criteria.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_members_include_and_exclude() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![with_unread("C2Ca", 1), with_unread("C2Cb", 1), with_unread("C2Cc", 0)]).await;
    let rule = GroupRule {
        has_unread_count: Some(true),
        include_ids: strings(&["c2c_c"]),
        exclude_ids: strings(&["C2Cb"]),
        ..Default::default()
    };
    let created = create_smart(&mut gc, "Smart", &["C2Cx"], rule).await;
    assert_eq!(created.success_conversation_ids, ["C2Cx"]);
    assert_eq!(created.group.unwrap().rule.unwrap().include_ids, ["C2Cc"], "ids are stored canonical");
    assert_eq!(members(&mut gc, "Smart").await, ["C2Ca", "C2Cc", "C2Cx"], "C2Cb is excluded, C2Cc included");

    // C2Cx was added explicitly: it stays although it does not match.
    upsert_ok(&mut cc, vec![with_unread("C2Cx", 0)]).await;
    assert!(members(&mut gc, "Smart").await.contains(&"C2Cx".to_string()));

    let r = remove(&mut gc, "Smart", &["C2Ca", "C2Cx"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cx"]);
    assert_failed(&r.failed, &[("C2Ca", ConversationResultCode::InGroupByRule)]);
    assert_eq!(members(&mut gc, "Smart").await, ["C2Ca", "C2Cc"]);

    // An explicit add of a member by rule is ALREADY_IN_GROUP.
    let r = add(&mut gc, "Smart", &["C2Ca"]).await.unwrap();
    assert_failed(&r.failed, &[("C2Ca", ConversationResultCode::AlreadyInGroup)]);
}

/// "Ungrouped" means in no group except smart groups: filing a conversation
/// into an ordinary group takes it out of an inbox-like smart group in the
/// same batch, and deleting that group brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungrouped_rule_follows_filing() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![update("C2Ca"), update("C2Cb")]).await;
    create_smart(&mut gc, "Inbox", &[], GroupRule { ungrouped: Some(true), ..Default::default() }).await;
    assert_eq!(members(&mut gc, "Inbox").await, ["C2Ca", "C2Cb"]);

    let start = revision(&mut gc).await + 1;
    let filed = create(&mut gc, "Work", &["C2Ca"]).await.unwrap().revision;
    assert_eq!(members(&mut gc, "Inbox").await, ["C2Cb"]);
    let deleted = delete_group(&mut gc, "Work").await.unwrap().revision;
    assert_eq!(members(&mut gc, "Inbox").await, ["C2Ca", "C2Cb"]);

    let mut watch = open_ok(&mut gc, from(start)).await;
    let batches = read_through(&mut watch, deleted).await;
    assert_eq!(revisions(&batches), [filed, deleted]);
    assert_eq!(kinds(&batches[0])[1], rule_removed("Inbox", &["C2Ca"]));
    assert_eq!(kinds(&batches[1])[1], rule_added("Inbox", &["C2Ca"]));
}

/// Changing a rule moves members in and out in one revision; clearing it
/// makes the group ordinary (members by rule leave, explicit ones stay);
/// setting the same rule again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_change_and_clear_a_rule() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    let muted = ConversationUpdate { recv_opt: Some(RecvOpt::NotReceive as i32), ..update("GROUPm") };
    upsert_ok(&mut cc, vec![muted, with_unread("C2Cu", 4), update("C2Cq")]).await;
    create(&mut gc, "G", &["C2Cq"]).await.unwrap();

    let r = set_rule(&mut gc, "G", Some(unread_rule())).await;
    assert_eq!(members(&mut gc, "G").await, ["C2Cq", "C2Cu"]);
    let same = set_rule(&mut gc, "G", Some(unread_rule())).await;
    assert_eq!(same.revision, r.revision, "the same rule again changes nothing");

    let muted_rule = GroupRule { muted: Some(true), ..Default::default() };
    set_rule(&mut gc, "G", Some(muted_rule.clone())).await;
    assert_eq!(members(&mut gc, "G").await, ["C2Cq", "GROUPm"]);
    let g = group(&mut gc, "G").await.unwrap();
    assert_eq!((g.conversation_count, g.unread_count), (2, 0), "a muted member adds no unread");

    let start = revision(&mut gc).await + 1;
    let cleared = set_rule(&mut gc, "G", None).await;
    assert_eq!(cleared.group.unwrap().rule, None);
    assert_eq!(members(&mut gc, "G").await, ["C2Cq"], "explicit members stay");
    let mut watch = open_ok(&mut gc, from(start)).await;
    let batch = expect_batch(&mut watch).await;
    assert_eq!(batch.revision, cleared.revision);
    let k = kinds(&batch);
    assert!(matches!(&k[0], Ev::GroupRuleChanged(r) if r.rule.is_none()), "{k:?}");
    assert_eq!(k[1], rule_removed("G", &["GROUPm"]));

    // By id too.
    let by_id = gc
        .set_conversation_group_rule(SetConversationGroupRuleRequest {
            group_id: g.group_id.clone(),
            rule: Some(muted_rule),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.group.unwrap().conversation_count, 2);
}

/// Deleting a conversation that is a member by rule reports its removal
/// once, as CONVERSATION_DELETED; deleting the smart group deletes no
/// conversation; snapshots list rule members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_and_snapshots() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![with_unread("C2Ca", 1), with_unread("C2Cb", 1)]).await;
    create_smart(&mut gc, "Unread", &[], unread_rule()).await;

    let mut snap = open_ok(&mut gc, WatchGroupEventsRequest { send_snapshot: true, ..Default::default() }).await;
    let Msg::Snapshot(snapshot) = next_msg(&mut snap).await else { panic!("expected a snapshot") };
    let mut in_snapshot = snapshot.groups[0].conversation_ids.clone();
    in_snapshot.sort();
    assert_eq!(in_snapshot, ["C2Ca", "C2Cb"]);

    let start = revision(&mut gc).await + 1;
    let gone = delete_convs(&mut cc, &["C2Ca"]).await.unwrap().revision;
    let mut watch = open_ok(&mut gc, from(start)).await;
    let batch = expect_batch(&mut watch).await;
    assert_eq!(batch.revision, gone);
    let removals: Vec<Ev> =
        kinds(&batch).into_iter().filter(|k| matches!(k, Ev::ConversationsDeletedFromGroup(_))).collect();
    assert_eq!(removals.len(), 1, "one removal, not a second one by rule: {removals:?}");
    assert!(
        matches!(&removals[0], Ev::ConversationsDeletedFromGroup(d) if d.reason == RemovalReason::ConversationDeleted as i32)
    );

    delete_group(&mut gc, "Unread").await.unwrap();
    assert!(find_conversation(&mut gc, "C2Cb").await.is_some(), "the conversation itself stays");
}

/// A rule adds members only while the group has room
/// (max_conversations_per_group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_fills_a_group_only_to_its_limit() {
    let s = TestServer::start_with(|c| c.limits.max_conversations_per_group = 2).await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![with_unread("C2Ca", 1), with_unread("C2Cb", 1), with_unread("C2Cc", 1)]).await;
    let created = create_smart(&mut gc, "Unread", &[], unread_rule()).await;
    assert_eq!(created.group.unwrap().conversation_count, 2);
    upsert_ok(&mut cc, vec![with_unread("C2Cd", 1)]).await;
    assert_eq!(members(&mut gc, "Unread").await.len(), 2);
}

/// A full group's explicit member that matches the rule stays, by the
/// rule, when it is removed explicitly: its own place is room enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_member_removed_from_a_full_group_stays_by_its_rule() {
    let s = TestServer::start_with(|c| c.limits.max_conversations_per_group = 2).await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![with_unread("C2Cx", 1), with_unread("C2Cy", 0)]).await;
    create(&mut gc, "S", &["C2Cx", "C2Cy"]).await.unwrap();
    set_rule(&mut gc, "S", Some(unread_rule())).await;
    let r = remove(&mut gc, "S", &["C2Cx"]).await.unwrap();
    assert_eq!(r.success_conversation_ids, ["C2Cx"]);
    assert_eq!(members(&mut gc, "S").await, ["C2Cx", "C2Cy"], "C2Cx left explicitly and came back by the rule");
    let r = remove(&mut gc, "S", &["C2Cx"]).await.unwrap();
    assert_failed(&r.failed, &[("C2Cx", ConversationResultCode::InGroupByRule)]);
}

/// A rule that selects nothing, names a malformed id or holds too many ids
/// is INVALID_RULE naming the field and the limit; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_and_change_nothing() {
    let s = TestServer::start_with(|c| c.limits.max_rule_ids = 2).await;
    let mut gc = s.group_client("alice");
    create(&mut gc, "G", &["C2Ca"]).await.unwrap();
    let before = user_state(&mut gc).await;

    let bad = [
        (GroupRule::default(), "selects nothing"),
        (GroupRule { exclude_ids: strings(&["C2Ca"]), ..Default::default() }, "selects nothing"),
        (GroupRule { include_ids: strings(&["nonsense"]), ..Default::default() }, "include_ids[0]"),
        (
            GroupRule {
                include_ids: strings(&["C2Ca", "C2Cb"]),
                exclude_ids: strings(&["C2Cc"]),
                ..Default::default()
            },
            "max_rule_ids",
        ),
        (GroupRule { r#type: Some(7), ..Default::default() }, "type"),
    ];
    for (rule, says) in bad {
        let st = expect_err(
            gc.set_conversation_group_rule(SetConversationGroupRuleRequest {
                group_name: "G".into(),
                rule: Some(rule.clone()),
                ..Default::default()
            })
            .await,
        );
        let info = assert_status_field(&st, Code::InvalidArgument, "INVALID_RULE", None, "rule");
        assert_eq!(info.metadata.get("max_rule_ids").map(String::as_str), Some("2"));
        assert!(st.message().contains(says), "{rule:?}: {:?} should say {says:?}", st.message());
        let st = expect_err(
            gc.create_conversation_group(CreateConversationGroupRequest {
                group_name: "New".into(),
                rule: Some(rule),
                ..Default::default()
            })
            .await,
        );
        assert_status(&st, Code::InvalidArgument, "INVALID_RULE", None);
    }
    // Without a rule, an empty create is still INVALID_CONVERSATION_LIST.
    let st = expect_err(create(&mut gc, "New", &[]).await);
    assert_status(&st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"));
    let st = expect_err(
        gc.set_conversation_group_rule(SetConversationGroupRuleRequest {
            group_name: "Nope".into(),
            rule: Some(unread_rule()),
            ..Default::default()
        })
        .await,
    );
    assert_status_field(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"), "group_name");
    assert_eq!(user_state(&mut gc).await, before, "nothing changed");
}

/// A watch snapshot describes every group as GetConversationGroupList does:
/// rule, sort mode, the group's pins and the receive option it gives new
/// members, besides name, id, look and members, so a watcher starting from
/// a snapshot needs no second read to know them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_describes_each_group_as_the_group_list_does() {
    let s = TestServer::start().await;
    let mut gc = s.group_client("alice");
    let mut cc = s.conv_client("alice");
    upsert_ok(&mut cc, vec![with_unread("C2Ca", 1), with_unread("C2Cb", 0)]).await;
    create_smart(&mut gc, "Unread", &["C2Cb"], unread_rule()).await;
    gc.create_conversation_group(CreateConversationGroupRequest {
        group_name: "Work".into(),
        conversation_ids: strings(&["C2Cb", "C2Cc", "C2Cd"]),
        sort_mode: Some(GroupSortMode::Alphabetical as i32),
        ..Default::default()
    })
    .await
    .unwrap();
    gc.pin_conversations_in_group(PinConversationsInGroupRequest {
        group_name: "Work".into(),
        conversation_ids: strings(&["C2Cd"]),
        ..Default::default()
    })
    .await
    .unwrap();
    gc.set_conversation_group_mute(SetConversationGroupMuteRequest {
        group_name: "Work".into(),
        recv_opt: RecvOpt::ReceiveNotNotify as i32,
        apply_to_new_members: true,
        ..Default::default()
    })
    .await
    .unwrap();

    let list = gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await.unwrap().into_inner();
    let mut watch = open_ok(&mut gc, WatchGroupEventsRequest { send_snapshot: true, ..Default::default() }).await;
    let Msg::Snapshot(snapshot) = next_msg(&mut watch).await else { panic!("expected a snapshot") };
    assert_eq!(snapshot.revision, list.revision);
    let described: Vec<_> = snapshot
        .groups
        .iter()
        .map(|g| {
            let group = ConversationGroup {
                name: g.name.clone(),
                group_id: g.group_id.clone(),
                rule: g.rule.clone(),
                icon: g.icon.clone(),
                color: g.color,
                collapsed: g.collapsed,
                custom_data: g.custom_data.clone(),
                new_member_recv_opt: g.new_member_recv_opt,
                sort_mode: g.sort_mode,
                pinned_conversation_ids: g.pinned_conversation_ids.clone(),
                ..Default::default()
            };
            (group, g.conversation_ids.clone())
        })
        .collect();
    let listed: Vec<_> = list
        .groups
        .iter()
        .map(|g| ConversationGroup { conversation_count: 0, unread_count: 0, create_time: None, ..g.clone() })
        .collect();
    assert_eq!(described.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>(), listed);
    // The fields this test is about are really set, not both defaults.
    let (unread, work) = (&described[0].0, &described[1].0);
    assert_eq!(unread.rule, Some(unread_rule()));
    assert_eq!(
        (work.sort_mode, work.pinned_conversation_ids.clone(), work.new_member_recv_opt),
        (GroupSortMode::Alphabetical as i32, strings(&["C2Cd"]), Some(RecvOpt::ReceiveNotNotify as i32))
    );
    // Members of each, ordered by id: the rule's and the explicit ones.
    assert_eq!(described[0].1, strings(&["C2Ca", "C2Cb"]));
    assert_eq!(described[1].1, strings(&["C2Cb", "C2Cc", "C2Cd"]));
    for (group, (_, ids)) in list.groups.iter().zip(&described) {
        assert_eq!(group.conversation_count as usize, ids.len(), "{}", group.name);
    }
}
