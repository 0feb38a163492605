//! Events: what one committed mutation changed, as stored in the event log
//! and streamed to watchers.

use super::ids::{ConversationId, GroupId, UserId};
use super::model::{GroupLook, GroupRule, LookField, RecvOpt, SortMode, TimeMs};

/// Why conversations left a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    UserRequest,
    ConversationDeleted,
    /// A smart group's rule stopped matching (or was changed or cleared).
    Rule,
    /// MoveConversations: the same batch adds them to the target groups
    /// that did not hold them yet.
    Moved,
}

/// Why conversations joined a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdditionReason {
    #[default]
    UserRequest,
    /// A smart group's rule started matching.
    Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// `group_id` is None only in events stored before groups had ids shown.
pub enum EventKind {
    GroupCreated {
        group_id: Option<GroupId>,
        group_name: String,
        conversation_ids: Vec<ConversationId>,
    },
    GroupDeleted {
        group_id: Option<GroupId>,
        group_name: String,
    },
    GroupRenamed {
        group_id: Option<GroupId>,
        old_name: String,
        new_name: String,
    },
    GroupsReordered {
        group_names: Vec<String>,
    },
    ConversationsAddedToGroup {
        group_id: Option<GroupId>,
        group_name: String,
        conversation_ids: Vec<ConversationId>,
        reason: AdditionReason,
    },
    ConversationsDeletedFromGroup {
        group_id: Option<GroupId>,
        group_name: String,
        conversation_ids: Vec<ConversationId>,
        reason: RemovalReason,
    },
    ConversationsChanged {
        conversation_ids: Vec<ConversationId>,
    },
    ConversationsDeleted {
        conversation_ids: Vec<ConversationId>,
    },
    /// A group's rule was set, changed or cleared (None: no longer a smart
    /// group). Members that join or leave because of it are in
    /// ConversationsAddedToGroup / ConversationsDeletedFromGroup events of
    /// the same batch, with reason Rule.
    GroupRuleChanged {
        group_id: Option<GroupId>,
        group_name: String,
        rule: Option<GroupRule>,
    },
    /// The option a group gives new members changed (None: forgotten).
    GroupMuteChanged {
        group_id: Option<GroupId>,
        group_name: String,
        new_member_recv_opt: Option<RecvOpt>,
    },
    /// How a group looks changed: the fields that changed, and the whole
    /// look after the change.
    GroupUpdated {
        group_id: Option<GroupId>,
        group_name: String,
        changed: Vec<LookField>,
        look: GroupLook,
    },
    /// The group's sort mode changed (no ids), or a manual move put
    /// `conversation_ids` right after `after` (None: at the start).
    GroupOrderChanged {
        group_id: Option<GroupId>,
        group_name: String,
        sort_mode: SortMode,
        conversation_ids: Vec<ConversationId>,
        after: Option<ConversationId>,
    },
    /// The group's pins after a pin or unpin.
    GroupPinsChanged {
        group_id: Option<GroupId>,
        group_name: String,
        pinned: Vec<ConversationId>,
    },
}

/// The kind tag of an event, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    GroupCreated,
    GroupDeleted,
    GroupRenamed,
    GroupsReordered,
    ConversationsAddedToGroup,
    ConversationsDeletedFromGroup,
    ConversationsChanged,
    ConversationsDeleted,
    GroupUpdated,
    GroupMuteChanged,
    GroupRuleChanged,
    GroupOrderChanged,
    GroupPinsChanged,
}

impl EventType {
    /// Every event type, in the order of the contract.
    pub const ALL: [EventType; 13] = [
        EventType::GroupCreated,
        EventType::GroupDeleted,
        EventType::GroupRenamed,
        EventType::GroupsReordered,
        EventType::ConversationsAddedToGroup,
        EventType::ConversationsDeletedFromGroup,
        EventType::ConversationsChanged,
        EventType::ConversationsDeleted,
        EventType::GroupUpdated,
        EventType::GroupMuteChanged,
        EventType::GroupRuleChanged,
        EventType::GroupOrderChanged,
        EventType::GroupPinsChanged,
    ];
}

impl EventKind {
    pub fn event_type(&self) -> EventType {
        match self {
            EventKind::GroupCreated { .. } => EventType::GroupCreated,
            EventKind::GroupDeleted { .. } => EventType::GroupDeleted,
            EventKind::GroupRenamed { .. } => EventType::GroupRenamed,
            EventKind::GroupsReordered { .. } => EventType::GroupsReordered,
            EventKind::ConversationsAddedToGroup { .. } => EventType::ConversationsAddedToGroup,
            EventKind::ConversationsDeletedFromGroup { .. } => EventType::ConversationsDeletedFromGroup,
            EventKind::ConversationsChanged { .. } => EventType::ConversationsChanged,
            EventKind::ConversationsDeleted { .. } => EventType::ConversationsDeleted,
            EventKind::GroupUpdated { .. } => EventType::GroupUpdated,
            EventKind::GroupMuteChanged { .. } => EventType::GroupMuteChanged,
            EventKind::GroupRuleChanged { .. } => EventType::GroupRuleChanged,
            EventKind::GroupOrderChanged { .. } => EventType::GroupOrderChanged,
            EventKind::GroupPinsChanged { .. } => EventType::GroupPinsChanged,
        }
    }

    /// The id of the group this event is about, where it names one and
    /// was stored with it.
    pub fn group_id(&self) -> Option<GroupId> {
        match self {
            EventKind::GroupCreated { group_id, .. }
            | EventKind::GroupDeleted { group_id, .. }
            | EventKind::GroupRenamed { group_id, .. }
            | EventKind::ConversationsAddedToGroup { group_id, .. }
            | EventKind::ConversationsDeletedFromGroup { group_id, .. }
            | EventKind::GroupOrderChanged { group_id, .. }
            | EventKind::GroupPinsChanged { group_id, .. } => *group_id,
            EventKind::GroupUpdated { group_id, .. } => *group_id,
            EventKind::GroupMuteChanged { group_id, .. } => *group_id,
            EventKind::GroupRuleChanged { group_id, .. } => *group_id,
            EventKind::GroupsReordered { .. }
            | EventKind::ConversationsChanged { .. }
            | EventKind::ConversationsDeleted { .. } => None,
        }
    }

    /// The group names this event is about; empty for events that concern
    /// the whole group list or no group.
    pub fn group_names(&self) -> Vec<&str> {
        match self {
            EventKind::GroupCreated { group_name, .. }
            | EventKind::GroupDeleted { group_name, .. }
            | EventKind::ConversationsAddedToGroup { group_name, .. }
            | EventKind::ConversationsDeletedFromGroup { group_name, .. }
            | EventKind::GroupOrderChanged { group_name, .. }
            | EventKind::GroupPinsChanged { group_name, .. } => vec![group_name],
            EventKind::GroupUpdated { group_name, .. } => vec![group_name],
            EventKind::GroupMuteChanged { group_name, .. } => vec![group_name],
            EventKind::GroupRuleChanged { group_name, .. } => vec![group_name],
            EventKind::GroupRenamed { old_name, new_name, .. } => vec![old_name, new_name],
            EventKind::GroupsReordered { .. }
            | EventKind::ConversationsChanged { .. }
            | EventKind::ConversationsDeleted { .. } => vec![],
        }
    }
}

/// Whose events: one user's, or every user's (an admin's `all_users`
/// watch). The same choice picks a watcher's hub subscription and the part
/// of the stored log it replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    User(UserId),
    AllUsers,
}

/// Everything one mutation committed: one user, one revision, one or more
/// events, and the user's group list after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    pub revision: u64,
    pub user: UserId,
    pub time_ms: TimeMs,
    pub group_names: Vec<String>,
    /// The ids of `group_names`, in the same order (empty in batches stored
    /// before groups had ids shown).
    pub group_ids: Vec<GroupId>,
    pub events: Vec<EventKind>,
}
