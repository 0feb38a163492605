//! Protobuf messages as JSON (the proto3 JSON mapping: lowerCamelCase field
//! names, 64-bit integers as strings, enums by name, bytes in base64,
//! timestamps in RFC 3339) and as text for people.
//!
//! Unlike the canonical mapping, fields at their default value are written
//! too, so scripts can rely on every field being there; unset message fields
//! (an absent `lastMessage`, `createTime`...) are left out.

use base64::Engine as _;

use super::output::{cell, rfc3339, Json, Table};
use crate::pb::group_event::Kind as EventKind;
use crate::pb::watch_group_events_response::Kind as WatchKind;
use crate::pb::*;

/// An enum value by its name, or by number when this build does not know it
/// (the proto3 JSON rule for unknown values).
fn enum_json(value: i32, name: Option<&'static str>) -> Json {
    name.map_or(Json::Int(i64::from(value)), Json::str)
}

fn timestamp(fields: &mut Vec<(&'static str, Json)>, key: &'static str, ts: &Option<prost_types::Timestamp>) {
    if let Some(ts) = ts {
        fields.push((key, Json::str(rfc3339(ts))));
    }
}

fn base64(bytes: &[u8]) -> Json {
    Json::str(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn color(value: i32) -> Json {
    enum_json(value, GroupColor::try_from(value).ok().map(|c| c.as_str_name()))
}

pub fn group(g: &ConversationGroup) -> Json {
    let mut f = vec![
        ("groupId", Json::str(&g.group_id)),
        ("name", Json::str(&g.name)),
        ("conversationCount", Json::Int(i64::from(g.conversation_count))),
        ("unreadCount", Json::u64(g.unread_count)),
    ];
    timestamp(&mut f, "createTime", &g.create_time);
    f.push(("icon", Json::str(&g.icon)));
    f.push(("color", color(g.color)));
    f.push(("collapsed", Json::Bool(g.collapsed)));
    f.push(("customData", base64(&g.custom_data)));
    if let Some(r) = &g.rule {
        f.push(("rule", rule(r)));
    }
    if let Some(opt) = g.new_member_recv_opt {
        f.push(("newMemberRecvOpt", recv_opt(opt)));
    }
    f.push(("sortMode", sort_mode(g.sort_mode)));
    f.push(("pinnedConversationIds", Json::strings(&g.pinned_conversation_ids)));
    Json::Obj(f)
}

fn sort_mode(value: i32) -> Json {
    enum_json(value, GroupSortMode::try_from(value).ok().map(|m| m.as_str_name()))
}

/// A pin or unpin in a group: the batch shape plus the group's pins.
pub fn group_pins(success: &[String], failed: &[ConversationResult], revision: u64, pinned: &[String]) -> Json {
    let Json::Obj(mut f) = batch(success, failed, revision) else { unreachable!("batch is an object") };
    f.push(("pinnedConversationIds", Json::strings(pinned)));
    Json::Obj(f)
}

fn recv_opt(value: i32) -> Json {
    enum_json(value, RecvOpt::try_from(value).ok().map(|r| r.as_str_name()))
}

pub fn marked_read(r: &MarkConversationGroupReadResponse) -> Json {
    Json::Obj(vec![
        ("changedConversationIds", Json::strings(&r.changed_conversation_ids)),
        ("revision", Json::u64(r.revision)),
    ])
}

pub fn muted(r: &SetConversationGroupMuteResponse) -> Json {
    let mut f = vec![("changedConversationIds", Json::strings(&r.changed_conversation_ids))];
    if let Some(g) = &r.group {
        f.push(("group", group(g)));
    }
    f.push(("revision", Json::u64(r.revision)));
    Json::Obj(f)
}

pub fn moved(r: &MoveConversationsResponse) -> Json {
    let targets = r
        .targets
        .iter()
        .map(|t| {
            Json::Obj(vec![
                ("groupName", Json::str(&t.group_name)),
                ("groupId", Json::str(&t.group_id)),
                ("addedConversationIds", Json::strings(&t.added_conversation_ids)),
                ("failed", Json::Arr(t.failed.iter().map(result).collect())),
            ])
        })
        .collect();
    Json::Obj(vec![
        ("targets", Json::Arr(targets)),
        ("movedConversationIds", Json::strings(&r.moved_conversation_ids)),
        ("failed", Json::Arr(r.failed.iter().map(result).collect())),
        ("revision", Json::u64(r.revision)),
    ])
}

fn look(l: &GroupLook) -> Json {
    Json::Obj(vec![
        ("icon", Json::str(&l.icon)),
        ("color", color(l.color)),
        ("collapsed", Json::Bool(l.collapsed)),
        ("customData", base64(&l.custom_data)),
    ])
}

fn last_message(m: &LastMessage) -> Json {
    let mut f = vec![("sender", Json::str(&m.sender)), ("text", Json::str(&m.text))];
    timestamp(&mut f, "time", &m.time);
    Json::Obj(f)
}

pub fn conversation(c: &Conversation) -> Json {
    let mut f = vec![
        ("conversationId", Json::str(&c.conversation_id)),
        ("type", enum_json(c.r#type, ConversationType::try_from(c.r#type).ok().map(|t| t.as_str_name()))),
        ("userId", Json::str(&c.user_id)),
        ("groupId", Json::str(&c.group_id)),
        ("showName", Json::str(&c.show_name)),
        ("faceUrl", Json::str(&c.face_url)),
        ("unreadCount", Json::Int(i64::from(c.unread_count))),
        ("isPinned", Json::Bool(c.is_pinned)),
        ("orderKey", Json::u64(c.order_key)),
        ("recvOpt", enum_json(c.recv_opt, RecvOpt::try_from(c.recv_opt).ok().map(|r| r.as_str_name()))),
        ("markList", Json::Arr(c.mark_list.iter().map(|m| Json::u64(*m)).collect())),
        ("customData", base64(&c.custom_data)),
        ("hasGroupAtInfo", Json::Bool(c.has_group_at_info)),
    ];
    if let Some(m) = &c.last_message {
        f.push(("lastMessage", last_message(m)));
    }
    f.push(("conversationGroupList", Json::strings(&c.conversation_group_list)));
    f.push(("conversationGroupIds", Json::strings(&c.conversation_group_ids)));
    timestamp(&mut f, "updateTime", &c.update_time);
    f.push(("registered", Json::Bool(c.registered)));
    Json::Obj(f)
}

/// The short name of a per-item result code: `ALREADY_IN_GROUP` for
/// `CONVERSATION_RESULT_CODE_ALREADY_IN_GROUP`.
pub fn result_code_name(code: i32) -> String {
    match ConversationResultCode::try_from(code) {
        Ok(c) => c.as_str_name().trim_start_matches("CONVERSATION_RESULT_CODE_").to_string(),
        Err(_) => code.to_string(),
    }
}

fn result(r: &ConversationResult) -> Json {
    Json::Obj(vec![
        ("conversationId", Json::str(&r.conversation_id)),
        ("code", enum_json(r.code, ConversationResultCode::try_from(r.code).ok().map(|c| c.as_str_name()))),
        ("message", Json::str(&r.message)),
        ("tencentCode", Json::Int(i64::from(r.tencent_code))),
    ])
}

/// `successConversationIds`, `failed` and `revision`: the shape of every
/// batch response.
pub fn batch(success: &[String], failed: &[ConversationResult], revision: u64) -> Json {
    Json::Obj(vec![
        ("successConversationIds", Json::strings(success)),
        ("failed", Json::Arr(failed.iter().map(result).collect())),
        ("revision", Json::u64(revision)),
    ])
}

pub fn group_list(r: &GetConversationGroupListResponse) -> Json {
    Json::Obj(vec![
        ("groupNames", Json::strings(&r.group_names)),
        ("groups", Json::Arr(r.groups.iter().map(group).collect())),
        ("revision", Json::u64(r.revision)),
    ])
}

pub fn created(r: &CreateConversationGroupResponse) -> Json {
    let mut f = Vec::new();
    if let Some(g) = &r.group {
        f.push(("group", group(g)));
    }
    if let Json::Obj(rest) = batch(&r.success_conversation_ids, &r.failed, r.revision) {
        f.extend(rest);
    }
    Json::Obj(f)
}

/// An answer of one group and a revision (rename, rule).
pub fn renamed(g: &Option<ConversationGroup>, revision: u64) -> Json {
    let mut f = Vec::new();
    if let Some(g) = g {
        f.push(("group", group(g)));
    }
    f.push(("revision", Json::u64(revision)));
    Json::Obj(f)
}

fn rule(r: &GroupRule) -> Json {
    let mut f = Vec::new();
    if let Some(t) = r.r#type {
        f.push(("type", enum_json(t, ConversationType::try_from(t).ok().map(|t| t.as_str_name()))));
    }
    if let Some(mark) = r.mark_type {
        f.push(("markType", Json::u64(mark)));
    }
    for (key, value) in [
        ("hasUnreadCount", r.has_unread_count),
        ("muted", r.muted),
        ("ungrouped", r.ungrouped),
        ("hasGroupAtInfo", r.has_group_at_info),
    ] {
        if let Some(value) = value {
            f.push((key, Json::Bool(value)));
        }
    }
    if !r.include_ids.is_empty() {
        f.push(("includeIds", Json::strings(&r.include_ids)));
    }
    if !r.exclude_ids.is_empty() {
        f.push(("excludeIds", Json::strings(&r.exclude_ids)));
    }
    Json::Obj(f)
}

pub fn updated(r: &UpdateConversationGroupResponse) -> Json {
    let mut f = Vec::new();
    if let Some(g) = &r.group {
        f.push(("group", group(g)));
    }
    f.push(("revision", Json::u64(r.revision)));
    Json::Obj(f)
}

pub fn sorted(r: &SetConversationGroupSortModeResponse) -> Json {
    let mut f = Vec::new();
    if let Some(g) = &r.group {
        f.push(("group", group(g)));
    }
    f.push(("revision", Json::u64(r.revision)));
    Json::Obj(f)
}

pub fn revision_only(revision: u64) -> Json {
    Json::Obj(vec![("revision", Json::u64(revision))])
}

pub fn reordered(r: &ReorderConversationGroupsResponse) -> Json {
    Json::Obj(vec![
        ("groupNames", Json::strings(&r.group_names)),
        ("groupIds", Json::strings(&r.group_ids)),
        ("revision", Json::u64(r.revision)),
    ])
}

/// A listing, possibly the concatenation of several pages.
pub fn conversation_list(r: &GetConversationListResponse) -> Json {
    Json::Obj(vec![
        ("conversations", Json::Arr(r.conversations.iter().map(conversation).collect())),
        ("nextPageToken", Json::str(&r.next_page_token)),
        ("isFinished", Json::Bool(r.is_finished)),
        ("revision", Json::u64(r.revision)),
    ])
}

pub fn unread(r: &GetUnreadCountResponse) -> Json {
    Json::Obj(vec![("unreadCount", Json::u64(r.unread_count)), ("revision", Json::u64(r.revision))])
}

fn ids(conversation_ids: &[String]) -> Json {
    Json::strings(conversation_ids)
}

fn event(e: &GroupEvent) -> Json {
    let mut f = vec![("revision", Json::u64(e.revision)), ("userId", Json::str(&e.user_id))];
    timestamp(&mut f, "time", &e.time);
    f.push(("groupNames", Json::strings(&e.group_names)));
    f.push(("groupIds", Json::strings(&e.group_ids)));
    let kind = match &e.kind {
        Some(EventKind::GroupCreated(k)) => Some((
            "groupCreated",
            Json::Obj(vec![
                ("groupId", Json::str(&k.group_id)),
                ("groupName", Json::str(&k.group_name)),
                ("conversationIds", ids(&k.conversation_ids)),
            ]),
        )),
        Some(EventKind::GroupDeleted(k)) => Some((
            "groupDeleted",
            Json::Obj(vec![("groupId", Json::str(&k.group_id)), ("groupName", Json::str(&k.group_name))]),
        )),
        Some(EventKind::GroupRenamed(k)) => Some((
            "groupRenamed",
            Json::Obj(vec![
                ("groupId", Json::str(&k.group_id)),
                ("oldName", Json::str(&k.old_name)),
                ("newName", Json::str(&k.new_name)),
            ]),
        )),
        Some(EventKind::GroupsReordered(k)) => {
            Some(("groupsReordered", Json::Obj(vec![("groupNames", Json::strings(&k.group_names))])))
        }
        Some(EventKind::ConversationsAddedToGroup(k)) => Some((
            "conversationsAddedToGroup",
            Json::Obj(vec![
                ("groupId", Json::str(&k.group_id)),
                ("groupName", Json::str(&k.group_name)),
                ("conversationIds", ids(&k.conversation_ids)),
                ("reason", enum_json(k.reason, AdditionReason::try_from(k.reason).ok().map(|r| r.as_str_name()))),
            ]),
        )),
        Some(EventKind::ConversationsDeletedFromGroup(k)) => Some((
            "conversationsDeletedFromGroup",
            Json::Obj(vec![
                ("groupId", Json::str(&k.group_id)),
                ("groupName", Json::str(&k.group_name)),
                ("conversationIds", ids(&k.conversation_ids)),
                ("reason", enum_json(k.reason, RemovalReason::try_from(k.reason).ok().map(|r| r.as_str_name()))),
            ]),
        )),
        Some(EventKind::ConversationsChanged(k)) => {
            Some(("conversationsChanged", Json::Obj(vec![("conversationIds", ids(&k.conversation_ids))])))
        }
        Some(EventKind::ConversationsDeleted(k)) => {
            Some(("conversationsDeleted", Json::Obj(vec![("conversationIds", ids(&k.conversation_ids))])))
        }
        Some(EventKind::GroupRuleChanged(k)) => {
            let mut f = vec![("groupId", Json::str(&k.group_id)), ("groupName", Json::str(&k.group_name))];
            if let Some(r) = &k.rule {
                f.push(("rule", rule(r)));
            }
            Some(("groupRuleChanged", Json::Obj(f)))
        }
        Some(EventKind::GroupMuteChanged(k)) => {
            let mut g = vec![("groupId", Json::str(&k.group_id)), ("groupName", Json::str(&k.group_name))];
            if let Some(opt) = k.new_member_recv_opt {
                g.push(("newMemberRecvOpt", recv_opt(opt)));
            }
            Some(("groupMuteChanged", Json::Obj(g)))
        }
        Some(EventKind::GroupUpdated(k)) => {
            let mut g = vec![
                ("groupId", Json::str(&k.group_id)),
                ("groupName", Json::str(&k.group_name)),
                ("changedPaths", Json::strings(&k.changed_paths)),
            ];
            if let Some(l) = &k.look {
                g.push(("look", look(l)));
            }
            Some(("groupUpdated", Json::Obj(g)))
        }
        Some(EventKind::GroupOrderChanged(k)) => Some((
            "groupOrderChanged",
            Json::Obj(vec![
                ("groupId", Json::str(&k.group_id)),
                ("groupName", Json::str(&k.group_name)),
                ("sortMode", sort_mode(k.sort_mode)),
                ("conversationIds", ids(&k.conversation_ids)),
                ("afterConversationId", Json::str(&k.after_conversation_id)),
            ]),
        )),
        Some(EventKind::GroupPinsChanged(k)) => Some((
            "groupPinsChanged",
            Json::Obj(vec![
                ("groupId", Json::str(&k.group_id)),
                ("groupName", Json::str(&k.group_name)),
                ("pinnedConversationIds", ids(&k.pinned_conversation_ids)),
            ]),
        )),
        None => None,
    };
    f.extend(kind);
    Json::Obj(f)
}

/// One message of a watch stream: `{"events":...}`, `{"snapshot":...}` or
/// `{"bookmark":...}`.
pub fn watch_response(r: &WatchGroupEventsResponse) -> Json {
    match &r.kind {
        Some(WatchKind::Events(b)) => Json::Obj(vec![(
            "events",
            Json::Obj(vec![
                ("revision", Json::u64(b.revision)),
                ("events", Json::Arr(b.events.iter().map(event).collect())),
            ]),
        )]),
        Some(WatchKind::Snapshot(s)) => Json::Obj(vec![(
            "snapshot",
            Json::Obj(vec![
                ("revision", Json::u64(s.revision)),
                (
                    "groups",
                    Json::Arr(
                        s.groups
                            .iter()
                            .map(|g| {
                                Json::Obj(vec![
                                    ("groupId", Json::str(&g.group_id)),
                                    ("name", Json::str(&g.name)),
                                    ("conversationIds", ids(&g.conversation_ids)),
                                    ("icon", Json::str(&g.icon)),
                                    ("color", color(g.color)),
                                    ("collapsed", Json::Bool(g.collapsed)),
                                    ("customData", base64(&g.custom_data)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ]),
        )]),
        Some(WatchKind::Bookmark(b)) => {
            Json::Obj(vec![("bookmark", Json::Obj(vec![("revision", Json::u64(b.revision))]))])
        }
        None => Json::Obj(vec![]),
    }
}

// ---------------------------------------------------------------------------
// Text for people
// ---------------------------------------------------------------------------

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `2 conversations`, `1 conversation`.
pub fn conversations_count(n: usize) -> String {
    plural(n, "conversation", "conversations")
}

/// A group name quoted for a sentence, escaped like a Rust string literal.
pub fn quoted(name: &str) -> String {
    format!("{name:?}")
}

pub fn group_table(r: &GetConversationGroupListResponse) -> String {
    let mut table = Table::new(&["NAME", "ID", "CONVERSATIONS", "UNREAD", "CREATED", "LOOK"]);
    for g in &r.groups {
        table.row(vec![
            g.name.clone(),
            g.group_id.clone(),
            g.conversation_count.to_string(),
            g.unread_count.to_string(),
            g.create_time.as_ref().map(rfc3339).unwrap_or_default(),
            look_summary(g),
        ]);
    }
    let summary = format!("{} at revision {}\n", plural(r.groups.len(), "group", "groups"), r.revision);
    if table.is_empty() {
        summary
    } else {
        table.render() + &summary
    }
}

/// `📌 red collapsed`: the look of a group in a few words (custom data is
/// for programs, not shown).
fn look_summary(g: &ConversationGroup) -> String {
    let mut words = Vec::new();
    if !g.icon.is_empty() {
        words.push(g.icon.clone());
    }
    match GroupColor::try_from(g.color) {
        Ok(GroupColor::Unspecified) => {}
        Ok(c) => words.push(c.as_str_name().trim_start_matches("GROUP_COLOR_").to_lowercase()),
        Err(_) => words.push(g.color.to_string()),
    }
    if g.collapsed {
        words.push("collapsed".into());
    }
    words.join(" ")
}

fn type_name(t: i32) -> &'static str {
    match ConversationType::try_from(t) {
        Ok(ConversationType::C2c) => "c2c",
        Ok(ConversationType::Group) => "group",
        _ => "?",
    }
}

pub fn conversation_table(r: &GetConversationListResponse) -> String {
    let mut table = Table::new(&["CONVERSATION", "TYPE", "NAME", "UNREAD", "PINNED", "GROUPS"]);
    for c in &r.conversations {
        table.row(vec![
            c.conversation_id.clone(),
            type_name(c.r#type).into(),
            c.show_name.clone(),
            c.unread_count.to_string(),
            if c.is_pinned { "yes" } else { "" }.into(),
            c.conversation_group_list.join(", "),
        ]);
    }
    let mut out = if table.is_empty() { String::new() } else { table.render() };
    out.push_str(&format!("{} at revision {}", conversations_count(r.conversations.len()), r.revision));
    if !r.is_finished && !r.next_page_token.is_empty() {
        out.push_str(&format!("; more with --page-token {} (or --all)", cell(&r.next_page_token)));
    }
    out.push('\n');
    out
}
