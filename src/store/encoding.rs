//! Stored values, encoded with prost. Protobuf gives a compact, versionable
//! encoding for free: a field added later decodes as its default from values
//! written before. These records are private to the store and never leave it.

use prost::Message;

use crate::domain::{
    AdditionReason, ConversationData, ConversationId, ConversationKind, EventBatch, EventKind, EventType, GroupColor,
    GroupId, GroupLook, GroupRule, LastMessage, ListPosition, LookField, RecvOpt, RemovalReason, SortMode, UserId,
};
use crate::error::Error;

/// One group inside a [`UserRecord`].
#[derive(Clone, PartialEq, Message)]
pub struct GroupRecord {
    /// Stable internal id: member keys use it, so a rename rewrites nothing.
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(int64, tag = "3")]
    pub create_time_ms: i64,
    #[prost(uint32, tag = "4")]
    pub conversation_count: u32,
    /// Sum of unread counts of members that receive: maintained on every
    /// change so listing groups never scans members.
    #[prost(uint64, tag = "5")]
    pub unread_count: u64,
    /// The receive option new members get (SetConversationGroupMute with
    /// `apply_to_new_members`), in `ConversationRecord::recv_opt`'s codes;
    /// absent: none.
    #[prost(uint32, optional, tag = "13")]
    pub new_member_recv_opt: Option<u32>,
    /// A smart group's rule (see `Plan::modify_conv`, which keeps the
    /// members it selects settled).
    #[prost(message, optional, tag = "15")]
    pub rule: Option<RuleRecord>,
    /// How the group looks (tags 6..=9); records written before decode as
    /// a group nobody styled.
    #[prost(string, tag = "6")]
    pub icon: String,
    /// The colour's code (see [`color_code`]); 0 is none.
    #[prost(uint32, tag = "7")]
    pub color: u32,
    #[prost(bool, tag = "8")]
    pub collapsed: bool,
    #[prost(bytes = "vec", tag = "9")]
    pub custom_data: Vec<u8>,
    /// The sort mode's code ([`sort_mode_code`]): 0, the default of groups
    /// stored before modes existed, is RECENT.
    #[prost(uint32, tag = "10")]
    pub sort_mode: u32,
    /// The group's own pinned conversations, in listing order. Bounded by
    /// `max_pinned_per_group`, so it fits the one small record.
    #[prost(string, repeated, tag = "11")]
    pub pinned: Vec<String>,
    /// Where the group's manual order stands (absent: no member has had a
    /// rank yet).
    #[prost(message, optional, tag = "12")]
    pub manual: Option<ManualOrderRecord>,
}

/// A smart group's rule as stored ([`GroupRule`]); tri-state criteria are
/// optional fields.
#[derive(Clone, PartialEq, Message)]
pub struct RuleRecord {
    /// 1: C2C, 2: GROUP.
    #[prost(uint32, optional, tag = "1")]
    pub kind: Option<u32>,
    #[prost(uint64, optional, tag = "2")]
    pub mark_type: Option<u64>,
    #[prost(bool, optional, tag = "3")]
    pub has_unread_count: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub muted: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub ungrouped: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub has_group_at_info: Option<bool>,
    #[prost(string, repeated, tag = "7")]
    pub include_ids: Vec<String>,
    #[prost(string, repeated, tag = "8")]
    pub exclude_ids: Vec<String>,
}

impl RuleRecord {
    pub fn of(rule: &GroupRule) -> Self {
        Self {
            kind: rule.kind.map(|kind| match kind {
                ConversationKind::C2c => 1,
                ConversationKind::Group => 2,
            }),
            mark_type: rule.mark_type,
            has_unread_count: rule.has_unread_count,
            muted: rule.muted,
            ungrouped: rule.ungrouped,
            has_group_at_info: rule.has_group_at_info,
            include_ids: ids_to_strings(&rule.include_ids),
            exclude_ids: ids_to_strings(&rule.exclude_ids),
        }
    }

    pub fn rule(&self) -> GroupRule {
        GroupRule {
            kind: self.kind.map(|kind| if kind == 2 { ConversationKind::Group } else { ConversationKind::C2c }),
            mark_type: self.mark_type,
            has_unread_count: self.has_unread_count,
            muted: self.muted,
            ungrouped: self.ungrouped,
            has_group_at_info: self.has_group_at_info,
            include_ids: strings_to_ids(&self.include_ids),
            exclude_ids: strings_to_ids(&self.exclude_ids),
        }
    }
}

/// The bookkeeping of a group's manual order (the ranks themselves are the
/// member keys' values, see [`super::keys`]).
#[derive(Clone, PartialEq, Message)]
pub struct ManualOrderRecord {
    /// The highest rank handed out: a member that joins takes the next.
    #[prost(uint64, tag = "1")]
    pub last_rank: u64,
    /// Bumped by every renumbering of the whole group, and part of every
    /// page token of the manual order: a token of the ranks before one is
    /// refused, never compared with the new ranks.
    #[prost(uint32, tag = "2")]
    pub epoch: u32,
}

/// The stored code of a sort mode (part of the on-disk format).
pub fn sort_mode_code(mode: SortMode) -> u32 {
    match mode {
        SortMode::Recent => 0,
        SortMode::Manual => 1,
        SortMode::Alphabetical => 2,
    }
}

/// The sort mode of a stored code; an unknown code (from a newer build)
/// lists as RECENT, the order every group had before modes.
pub fn sort_mode_of_code(code: u32) -> SortMode {
    match code {
        1 => SortMode::Manual,
        2 => SortMode::Alphabetical,
        _ => SortMode::Recent,
    }
}

/// A member key's value: the member's manual rank, big-endian; empty (a
/// member stored before ranks existed) is rank 0.
pub fn encode_rank(rank: u64) -> Vec<u8> {
    rank.to_be_bytes().to_vec()
}

pub fn decode_rank(value: &[u8]) -> Result<u64, Error> {
    match value.len() {
        0 => Ok(0),
        8 => Ok(u64::from_be_bytes(value.try_into().expect("8 bytes"))),
        _ => Err(corrupt("member rank")),
    }
}

impl GroupRecord {
    pub fn sort_mode(&self) -> SortMode {
        sort_mode_of_code(self.sort_mode)
    }

    pub fn manual_mut(&mut self) -> &mut ManualOrderRecord {
        self.manual.get_or_insert_with(Default::default)
    }

    pub fn order_epoch(&self) -> u32 {
        self.manual.as_ref().map_or(0, |m| m.epoch)
    }

    pub fn look(&self) -> GroupLook {
        GroupLook {
            icon: self.icon.clone(),
            color: color_from_code(self.color),
            collapsed: self.collapsed,
            custom_data: self.custom_data.clone(),
        }
    }

    pub fn set_look(&mut self, look: &GroupLook) {
        self.icon = look.icon.clone();
        self.color = color_code(look.color);
        self.collapsed = look.collapsed;
        self.custom_data = look.custom_data.clone();
    }
}

/// A group's look inside an [`EventRecord`] (the same fields as in
/// [`GroupRecord`]).
#[derive(Clone, PartialEq, Message)]
pub struct LookRecord {
    #[prost(string, tag = "1")]
    pub icon: String,
    #[prost(uint32, tag = "2")]
    pub color: u32,
    #[prost(bool, tag = "3")]
    pub collapsed: bool,
    #[prost(bytes = "vec", tag = "4")]
    pub custom_data: Vec<u8>,
}

/// The stored code of a colour: its position in [`GroupColor::ALL`], part
/// of the on-disk format.
pub fn color_code(color: GroupColor) -> u32 {
    GroupColor::ALL.iter().position(|c| *c == color).expect("every colour is listed") as u32
}

/// The colour of a stored code; a code this build does not know reads as
/// no colour rather than failing the whole record.
pub fn color_from_code(code: u32) -> GroupColor {
    GroupColor::ALL.get(code as usize).copied().unwrap_or_default()
}

/// Everything about a user that fits in one small value: read with one get by
/// GetConversationGroupList, the hottest read.
#[derive(Clone, PartialEq, Message)]
pub struct UserRecord {
    /// Revision of the user's latest change.
    #[prost(uint64, tag = "1")]
    pub revision: u64,
    #[prost(uint32, tag = "2")]
    pub next_group_id: u32,
    /// Groups in display order.
    #[prost(message, repeated, tag = "3")]
    pub groups: Vec<GroupRecord>,
    #[prost(uint32, tag = "4")]
    pub pinned_count: u32,
    /// Sum of unread counts over all conversations that receive.
    #[prost(uint64, tag = "5")]
    pub total_unread: u64,
    /// sled only: the `seq` of the user's newest event batch (how many it
    /// has had), so trimming finds a user's newest N with one read.
    #[prost(uint64, tag = "6")]
    pub events: u64,
}

impl UserRecord {
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct LastMessageRecord {
    #[prost(string, tag = "1")]
    pub sender: String,
    #[prost(string, tag = "2")]
    pub text: String,
    #[prost(int64, optional, tag = "3")]
    pub time_ms: Option<i64>,
}

/// One conversation of one user: registry data plus the ids of the groups
/// holding it. It exists while the conversation is registered or grouped.
#[derive(Clone, PartialEq, Message)]
pub struct ConversationRecord {
    #[prost(bool, tag = "1")]
    pub registered: bool,
    #[prost(string, tag = "2")]
    pub show_name: String,
    #[prost(string, tag = "3")]
    pub face_url: String,
    #[prost(uint32, tag = "4")]
    pub unread_count: u32,
    #[prost(bool, tag = "5")]
    pub is_pinned: bool,
    #[prost(uint64, tag = "6")]
    pub order_key: u64,
    /// 0 = receive (the default), then the other options in contract order.
    #[prost(uint32, tag = "7")]
    pub recv_opt: u32,
    #[prost(uint64, repeated, tag = "8")]
    pub mark_list: Vec<u64>,
    #[prost(bytes = "vec", tag = "9")]
    pub custom_data: Vec<u8>,
    #[prost(bool, tag = "10")]
    pub has_group_at_info: bool,
    #[prost(message, optional, tag = "11")]
    pub last_message: Option<LastMessageRecord>,
    #[prost(int64, optional, tag = "12")]
    pub update_time_ms: Option<i64>,
    /// Every group holding the conversation, explicitly or by a rule.
    #[prost(uint32, repeated, tag = "13")]
    pub group_ids: Vec<u32>,
    /// The groups of `group_ids` that hold it by their rule only.
    #[prost(uint32, repeated, tag = "14")]
    pub rule_group_ids: Vec<u32>,
}

pub(super) fn recv_opt_code(opt: RecvOpt) -> u32 {
    match opt {
        RecvOpt::Receive => 0,
        RecvOpt::NotReceive => 1,
        RecvOpt::ReceiveNotNotify => 2,
        RecvOpt::ReceiveNotNotifyExceptAt => 3,
        RecvOpt::NotReceiveExceptAt => 4,
    }
}

pub(super) fn recv_opt_from_code(code: u32) -> RecvOpt {
    match code {
        1 => RecvOpt::NotReceive,
        2 => RecvOpt::ReceiveNotNotify,
        3 => RecvOpt::ReceiveNotNotifyExceptAt,
        4 => RecvOpt::NotReceiveExceptAt,
        _ => RecvOpt::Receive,
    }
}

impl ConversationRecord {
    pub fn data(&self) -> ConversationData {
        ConversationData {
            registered: self.registered,
            show_name: self.show_name.clone(),
            face_url: self.face_url.clone(),
            unread_count: self.unread_count,
            is_pinned: self.is_pinned,
            order_key: self.order_key,
            recv_opt: recv_opt_from_code(self.recv_opt),
            mark_list: self.mark_list.clone(),
            custom_data: self.custom_data.clone(),
            has_group_at_info: self.has_group_at_info,
            last_message: self.last_message.as_ref().map(|m| LastMessage {
                sender: m.sender.clone(),
                text: m.text.clone(),
                time_ms: m.time_ms,
            }),
            update_time_ms: self.update_time_ms,
        }
    }

    /// The data, moved out of the record (a listing builds each answer from
    /// its decoded record without copying it again); with the group ids.
    pub fn into_data(self) -> (ConversationData, Vec<u32>) {
        let data = ConversationData {
            registered: self.registered,
            show_name: self.show_name,
            face_url: self.face_url,
            unread_count: self.unread_count,
            is_pinned: self.is_pinned,
            order_key: self.order_key,
            recv_opt: recv_opt_from_code(self.recv_opt),
            mark_list: self.mark_list,
            custom_data: self.custom_data,
            has_group_at_info: self.has_group_at_info,
            last_message: self.last_message.map(|m| LastMessage { sender: m.sender, text: m.text, time_ms: m.time_ms }),
            update_time_ms: self.update_time_ms,
        };
        (data, self.group_ids)
    }

    pub fn set_data(&mut self, data: &ConversationData) {
        self.registered = data.registered;
        self.show_name = data.show_name.clone();
        self.face_url = data.face_url.clone();
        self.unread_count = data.unread_count;
        self.is_pinned = data.is_pinned;
        self.order_key = data.order_key;
        self.recv_opt = recv_opt_code(data.recv_opt);
        self.mark_list = data.mark_list.clone();
        self.custom_data = data.custom_data.clone();
        self.has_group_at_info = data.has_group_at_info;
        self.last_message = data.last_message.as_ref().map(|m| LastMessageRecord {
            sender: m.sender.clone(),
            text: m.text.clone(),
            time_ms: m.time_ms,
        });
        self.update_time_ms = data.update_time_ms;
    }

    /// What this conversation adds to unread totals (the domain's rule).
    pub fn counted_unread(&self) -> u64 {
        recv_opt_from_code(self.recv_opt).counted_unread(self.unread_count)
    }

    /// Where this conversation sits in the listing.
    pub fn position(&self, id: &ConversationId) -> ListPosition {
        ListPosition::new(id, self.is_pinned, self.order_key)
    }
}

/// One stored event.
#[derive(Clone, PartialEq, Message)]
pub struct EventRecord {
    /// The event type's code in [`EVENT_CODES`].
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    /// The group name (old name for a rename).
    #[prost(string, tag = "2")]
    pub group_name: String,
    /// The new name of a rename.
    #[prost(string, tag = "3")]
    pub new_name: String,
    /// Conversation ids, or group names for a reorder.
    #[prost(string, repeated, tag = "4")]
    pub items: Vec<String>,
    /// Removal reason: 1 user request, 2 conversation deleted, 3 rule,
    /// 4 moved; addition reason: 0 user request, 3 rule.
    #[prost(uint32, tag = "5")]
    pub reason: u32,
    /// The group's id, for events about one group (absent in events
    /// stored before ids were recorded).
    #[prost(uint32, optional, tag = "6")]
    pub group_id: Option<u32>,
    /// The rule of a GroupRuleChanged (absent: cleared).
    #[prost(message, optional, tag = "15")]
    pub rule: Option<RuleRecord>,
    /// GroupMuteChanged: the option new members get, in
    /// `ConversationRecord::recv_opt`'s codes (absent: none).
    #[prost(uint32, optional, tag = "13")]
    pub recv_opt: Option<u32>,
    /// GroupUpdated: the group's look after the change (the changed
    /// fields' paths are in `items`).
    #[prost(message, optional, tag = "7")]
    pub look: Option<LookRecord>,
    /// GroupOrderChanged: the sort mode's code ([`sort_mode_code`]).
    #[prost(uint32, tag = "10")]
    pub sort_mode: u32,
    /// GroupOrderChanged: the member before the moved ones (absent: at the
    /// start, or a mode change).
    #[prost(string, optional, tag = "11")]
    pub after: Option<String>,
}

/// Only the back link of a stored [`BatchRecord`] (same tag): decoding it
/// skips the user, names and events, for walking a user's log back to where
/// a read starts without decoding every batch on the way.
#[derive(Clone, PartialEq, Message)]
pub struct BatchLink {
    #[prost(uint64, tag = "6")]
    pub previous: u64,
}

/// One revision of the event log.
#[derive(Clone, PartialEq, Message)]
pub struct BatchRecord {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(int64, tag = "2")]
    pub time_ms: i64,
    #[prost(string, repeated, tag = "3")]
    pub group_names: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub events: Vec<EventRecord>,
    /// Random per attempt on the etcd backend (0 on sled): after a
    /// transaction whose outcome was lost, finding its own nonce in the log
    /// tells the replica that its attempt is the one that committed.
    #[prost(uint64, tag = "5")]
    pub nonce: u64,
    /// On sled: the revision of the same user's batch before this one (0:
    /// none). A user's log is walked back along it, so it needs no index of
    /// its own. Unused on etcd, whose log keys carry it.
    #[prost(uint64, tag = "6")]
    pub previous: u64,
    /// On sled: the batch's place in its user's log (1, 2, ...; see
    /// [`UserRecord::events`]).
    #[prost(uint64, tag = "7")]
    pub seq: u64,
    /// The ids of `group_names`, in the same order.
    #[prost(uint32, repeated, tag = "8")]
    pub group_ids: Vec<u32>,
}

/// The stored code of each event type (`EventRecord::kind`): part of the
/// on-disk format, so a code never changes meaning.
const EVENT_CODES: [(EventType, u32); 13] = [
    (EventType::GroupCreated, 1),
    (EventType::GroupDeleted, 2),
    (EventType::GroupRenamed, 3),
    (EventType::GroupsReordered, 4),
    (EventType::ConversationsAddedToGroup, 5),
    (EventType::ConversationsDeletedFromGroup, 6),
    (EventType::ConversationsChanged, 7),
    (EventType::ConversationsDeleted, 8),
    (EventType::GroupUpdated, 9),
    (EventType::GroupMuteChanged, 12),
    (EventType::GroupRuleChanged, 13),
    (EventType::GroupOrderChanged, 10),
    (EventType::GroupPinsChanged, 11),
];

fn event_code(event_type: EventType) -> u32 {
    EVENT_CODES.iter().find(|(t, _)| *t == event_type).map(|(_, code)| *code).expect("every type has a code")
}

fn event_type_of_code(code: u32) -> Option<EventType> {
    EVENT_CODES.iter().find(|(_, c)| *c == code).map(|(t, _)| *t)
}

fn ids_to_strings(ids: &[ConversationId]) -> Vec<String> {
    ids.iter().map(|id| id.as_str().to_string()).collect()
}

fn strings_to_ids(items: &[String]) -> Vec<ConversationId> {
    items.iter().map(|s| ConversationId::from_canonical(s.clone())).collect()
}

impl BatchRecord {
    pub fn from_batch(batch: &EventBatch) -> Self {
        let events = batch
            .events
            .iter()
            .map(|event| {
                let mut r = EventRecord {
                    kind: event_code(event.event_type()),
                    group_id: event.group_id().map(|id| id.0),
                    ..Default::default()
                };
                match event {
                    EventKind::GroupCreated { group_name, conversation_ids, .. } => {
                        r.group_name = group_name.clone();
                        r.items = ids_to_strings(conversation_ids);
                    }
                    EventKind::GroupDeleted { group_name, .. } => {
                        r.group_name = group_name.clone();
                    }
                    EventKind::GroupRenamed { old_name, new_name, .. } => {
                        r.group_name = old_name.clone();
                        r.new_name = new_name.clone();
                    }
                    EventKind::GroupsReordered { group_names } => {
                        r.items = group_names.clone();
                    }
                    EventKind::ConversationsAddedToGroup { group_name, conversation_ids, reason, .. } => {
                        r.group_name = group_name.clone();
                        r.items = ids_to_strings(conversation_ids);
                        r.reason = match reason {
                            AdditionReason::UserRequest => 0,
                            AdditionReason::Rule => 3,
                        };
                    }
                    EventKind::ConversationsDeletedFromGroup { group_name, conversation_ids, reason, .. } => {
                        r.group_name = group_name.clone();
                        r.items = ids_to_strings(conversation_ids);
                        r.reason = match reason {
                            RemovalReason::UserRequest => 1,
                            RemovalReason::ConversationDeleted => 2,
                            RemovalReason::Rule => 3,
                            RemovalReason::Moved => 4,
                        };
                    }
                    EventKind::ConversationsChanged { conversation_ids } => {
                        r.items = ids_to_strings(conversation_ids);
                    }
                    EventKind::ConversationsDeleted { conversation_ids } => {
                        r.items = ids_to_strings(conversation_ids);
                    }
                    EventKind::GroupRuleChanged { group_name, rule, .. } => {
                        r.group_name = group_name.clone();
                        r.rule = rule.as_ref().map(RuleRecord::of);
                    }
                    EventKind::GroupMuteChanged { group_name, new_member_recv_opt, .. } => {
                        r.group_name = group_name.clone();
                        r.recv_opt = new_member_recv_opt.map(recv_opt_code);
                    }
                    EventKind::GroupUpdated { group_name, changed, look, .. } => {
                        r.group_name = group_name.clone();
                        r.items = changed.iter().map(|f| f.path().to_string()).collect();
                        r.look = Some(LookRecord {
                            icon: look.icon.clone(),
                            color: color_code(look.color),
                            collapsed: look.collapsed,
                            custom_data: look.custom_data.clone(),
                        });
                    }
                    EventKind::GroupOrderChanged { group_name, sort_mode, conversation_ids, after, .. } => {
                        r.group_name = group_name.clone();
                        r.sort_mode = sort_mode_code(*sort_mode);
                        r.items = ids_to_strings(conversation_ids);
                        r.after = after.as_ref().map(|id| id.as_str().to_string());
                    }
                    EventKind::GroupPinsChanged { group_name, pinned, .. } => {
                        r.group_name = group_name.clone();
                        r.items = ids_to_strings(pinned);
                    }
                }
                r
            })
            .collect();
        Self {
            user: batch.user.as_str().to_string(),
            time_ms: batch.time_ms,
            group_names: batch.group_names.clone(),
            group_ids: batch.group_ids.iter().map(|id| id.0).collect(),
            events,
            nonce: 0,
            previous: 0,
            seq: 0,
        }
    }

    pub fn into_batch(self, revision: u64) -> Result<EventBatch, Error> {
        let user = UserId::parse(&self.user).map_err(|e| corrupt(&format!("event {revision}: user {e}")))?;
        let events = self
            .events
            .into_iter()
            .map(|r| {
                let Some(event_type) = event_type_of_code(r.kind) else {
                    return Err(corrupt(&format!("event {revision}: unknown kind {}", r.kind)));
                };
                let group_id = r.group_id.map(GroupId);
                Ok(match event_type {
                    EventType::GroupCreated => EventKind::GroupCreated {
                        group_id,
                        group_name: r.group_name,
                        conversation_ids: strings_to_ids(&r.items),
                    },
                    EventType::GroupDeleted => EventKind::GroupDeleted { group_id, group_name: r.group_name },
                    EventType::GroupRenamed => {
                        EventKind::GroupRenamed { group_id, old_name: r.group_name, new_name: r.new_name }
                    }
                    EventType::GroupsReordered => EventKind::GroupsReordered { group_names: r.items },
                    EventType::ConversationsAddedToGroup => EventKind::ConversationsAddedToGroup {
                        group_id,
                        group_name: r.group_name,
                        conversation_ids: strings_to_ids(&r.items),
                        reason: if r.reason == 3 { AdditionReason::Rule } else { AdditionReason::UserRequest },
                    },
                    EventType::ConversationsDeletedFromGroup => EventKind::ConversationsDeletedFromGroup {
                        group_id,
                        group_name: r.group_name,
                        conversation_ids: strings_to_ids(&r.items),
                        reason: match r.reason {
                            2 => RemovalReason::ConversationDeleted,
                            3 => RemovalReason::Rule,
                            4 => RemovalReason::Moved,
                            _ => RemovalReason::UserRequest,
                        },
                    },
                    EventType::ConversationsChanged => {
                        EventKind::ConversationsChanged { conversation_ids: strings_to_ids(&r.items) }
                    }
                    EventType::ConversationsDeleted => {
                        EventKind::ConversationsDeleted { conversation_ids: strings_to_ids(&r.items) }
                    }
                    EventType::GroupRuleChanged => EventKind::GroupRuleChanged {
                        group_id,
                        group_name: r.group_name,
                        rule: r.rule.as_ref().map(RuleRecord::rule),
                    },
                    EventType::GroupMuteChanged => EventKind::GroupMuteChanged {
                        group_id,
                        group_name: r.group_name,
                        new_member_recv_opt: r.recv_opt.map(recv_opt_from_code),
                    },
                    EventType::GroupUpdated => EventKind::GroupUpdated {
                        group_id,
                        group_name: r.group_name,
                        changed: r.items.iter().filter_map(|path| LookField::from_path(path)).collect(),
                        look: r
                            .look
                            .map(|l| GroupLook {
                                icon: l.icon,
                                color: color_from_code(l.color),
                                collapsed: l.collapsed,
                                custom_data: l.custom_data,
                            })
                            .unwrap_or_default(),
                    },
                    EventType::GroupOrderChanged => EventKind::GroupOrderChanged {
                        group_id,
                        group_name: r.group_name,
                        sort_mode: sort_mode_of_code(r.sort_mode),
                        conversation_ids: strings_to_ids(&r.items),
                        after: r.after.map(ConversationId::from_canonical),
                    },
                    EventType::GroupPinsChanged => EventKind::GroupPinsChanged {
                        group_id,
                        group_name: r.group_name,
                        pinned: strings_to_ids(&r.items),
                    },
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // Batches stored before ids were recorded have none; a list of
        // another length would be corrupt, and is dropped rather than shown
        // against the wrong names.
        let group_ids = if self.group_ids.len() == self.group_names.len() {
            self.group_ids.into_iter().map(GroupId).collect()
        } else {
            Vec::new()
        };
        Ok(EventBatch { revision, user, time_ms: self.time_ms, group_names: self.group_names, group_ids, events })
    }
}

pub fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored data is corrupt: {what}"))
}

/// Decodes a stored value, reporting which record was unreadable.
pub fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Error> {
    M::decode(bytes).map_err(|e| corrupt(&format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user's log is walked back by decoding only each batch's link: it
    /// must read the same `previous` as the whole record, past every field
    /// before and after it.
    #[test]
    fn a_batch_link_reads_the_records_previous() {
        let record = BatchRecord {
            user: "alice".into(),
            time_ms: 7,
            group_names: vec!["Work".into(), "Home".into()],
            events: vec![EventRecord {
                kind: 5,
                group_name: "Work".into(),
                items: vec!["C2Cbob".into()],
                ..Default::default()
            }],
            nonce: 99,
            previous: 4242,
            ..Default::default()
        };
        let link = decode::<BatchLink>(&record.encode_to_vec(), "event batch").unwrap();
        assert_eq!(link.previous, 4242);
        let first = BatchRecord { previous: 0, ..record };
        assert_eq!(decode::<BatchLink>(&first.encode_to_vec(), "event batch").unwrap().previous, 0);
    }

    /// The stored codes are the format of every event log on disk: pinned.
    #[test]
    fn every_event_type_has_its_own_pinned_code() {
        let codes: Vec<u32> = EventType::ALL.iter().map(|t| event_code(*t)).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 10, 11]);
        for t in EventType::ALL {
            assert_eq!(event_type_of_code(event_code(t)), Some(t));
        }
        assert_eq!(event_type_of_code(0), None);
    }

    /// Colour codes are stored: pinned, and an unknown one reads as none.
    #[test]
    fn colour_codes_are_pinned() {
        let codes: Vec<u32> = GroupColor::ALL.iter().map(|c| color_code(*c)).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(color_from_code(6), GroupColor::Blue);
        assert_eq!(color_from_code(99), GroupColor::None);
    }

    /// A group record written before looks existed (tags 1..=5 only)
    /// decodes as a group nobody styled, and a styled one round-trips.
    #[test]
    fn group_records_without_a_look_decode_as_unstyled() {
        #[derive(Clone, PartialEq, Message)]
        struct OldGroupRecord {
            #[prost(uint32, tag = "1")]
            id: u32,
            #[prost(string, tag = "2")]
            name: String,
        }
        let old = OldGroupRecord { id: 3, name: "Work".into() }.encode_to_vec();
        let record: GroupRecord = decode(&old, "group").unwrap();
        assert_eq!((record.id, record.name.as_str()), (3, "Work"));
        assert_eq!(record.look(), GroupLook::default());
        let look = GroupLook { icon: "📌".into(), color: GroupColor::Pink, collapsed: true, custom_data: vec![0, 1] };
        let mut styled = record.clone();
        styled.set_look(&look);
        assert_eq!(decode::<GroupRecord>(&styled.encode_to_vec(), "group").unwrap().look(), look);
    }
}
