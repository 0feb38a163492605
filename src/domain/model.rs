//! The data of groups and conversations, free of protobuf and of storage.

use super::ids::{ConversationId, ConversationKind, GroupId};

/// Milliseconds since the Unix epoch: the one clock unit of the domain.
pub type TimeMs = i64;

/// Receive option of a conversation. Only `Receive` counts towards unread
/// totals; the rest are forms of muting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecvOpt {
    #[default]
    Receive,
    NotReceive,
    ReceiveNotNotify,
    ReceiveNotNotifyExceptAt,
    NotReceiveExceptAt,
}

impl RecvOpt {
    pub fn counts_unread(self) -> bool {
        self == RecvOpt::Receive
    }

    /// What a conversation with this option and `unread_count` adds to
    /// unread totals: the one rule, for stored records and domain data alike.
    pub fn counted_unread(self, unread_count: u32) -> u64 {
        if self.counts_unread() {
            u64::from(unread_count)
        } else {
            0
        }
    }
}

/// Preview of a conversation's latest message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastMessage {
    pub sender: String,
    pub text: String,
    pub time_ms: Option<TimeMs>,
}

/// The registry data of one conversation. `Default` is what a conversation
/// that is grouped but never registered looks like.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationData {
    pub registered: bool,
    pub show_name: String,
    pub face_url: String,
    pub unread_count: u32,
    pub is_pinned: bool,
    pub order_key: u64,
    pub recv_opt: RecvOpt,
    pub mark_list: Vec<u64>,
    pub custom_data: Vec<u8>,
    pub has_group_at_info: bool,
    pub last_message: Option<LastMessage>,
    pub update_time_ms: Option<TimeMs>,
}

impl ConversationData {
    /// What this conversation contributes to unread totals.
    pub fn counted_unread(&self) -> u64 {
        self.recv_opt.counted_unread(self.unread_count)
    }

    /// Applies a patch; returns whether any stored field changed.
    /// `update_time_ms` and `registered` are bookkeeping, not compared.
    pub fn apply(&mut self, patch: &ConversationPatch) -> bool {
        let before = self.clone();
        macro_rules! set {
            ($field:ident) => {
                if let Some(value) = &patch.$field {
                    self.$field = value.clone();
                }
            };
        }
        set!(show_name);
        set!(face_url);
        set!(unread_count);
        set!(is_pinned);
        set!(order_key);
        set!(recv_opt);
        set!(mark_list);
        // One step on the server, so concurrent marks of two devices are
        // both kept (see the proto's add_marks).
        self.mark_list.retain(|mark| !patch.remove_marks.contains(mark));
        for mark in &patch.add_marks {
            if !self.mark_list.contains(mark) {
                self.mark_list.push(*mark);
            }
        }
        set!(custom_data);
        set!(has_group_at_info);
        if let Some(message) = &patch.last_message {
            self.last_message = Some(message.clone());
        }
        let changed = *self != before || !self.registered;
        self.registered = true;
        changed
    }
}

/// An upsert of one conversation: `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationPatch {
    pub show_name: Option<String>,
    pub face_url: Option<String>,
    pub unread_count: Option<u32>,
    pub is_pinned: Option<bool>,
    pub order_key: Option<u64>,
    pub recv_opt: Option<RecvOpt>,
    pub mark_list: Option<Vec<u64>>,
    /// Added to the marks (after `mark_list`, which a valid patch does not
    /// set together with these), each once.
    pub add_marks: Vec<u64>,
    pub remove_marks: Vec<u64>,
    pub custom_data: Option<Vec<u8>>,
    pub has_group_at_info: Option<bool>,
    pub last_message: Option<LastMessage>,
}

/// A conversation as listed: id, data, and the names of its groups in
/// display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    pub id: ConversationId,
    pub data: ConversationData,
    pub group_names: Vec<String>,
    /// The ids of `group_names`, in the same order.
    pub group_ids: Vec<GroupId>,
}

/// The rule of a smart group: which conversations are its members without
/// being added. Set criteria combine with AND; `include_ids` are members
/// whatever the criteria say, `exclude_ids` never. A rule with no
/// criterion matches only its `include_ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRule {
    pub kind: Option<ConversationKind>,
    /// `Some(0)`: conversations with no mark.
    pub mark_type: Option<u64>,
    pub has_unread_count: Option<bool>,
    /// true: recv_opt is anything but RECEIVE.
    pub muted: Option<bool>,
    /// true: in no group except by a rule (a rule's own members are not
    /// "grouped" for this, or a rule could exclude itself).
    pub ungrouped: Option<bool>,
    pub has_group_at_info: Option<bool>,
    pub include_ids: Vec<ConversationId>,
    pub exclude_ids: Vec<ConversationId>,
}

impl GroupRule {
    /// Whether any criterion is set (else only `include_ids` match).
    pub fn has_criteria(&self) -> bool {
        self.kind.is_some()
            || self.mark_type.is_some()
            || self.has_unread_count.is_some()
            || self.muted.is_some()
            || self.ungrouped.is_some()
            || self.has_group_at_info.is_some()
    }

    /// Whether a conversation with this data, explicitly in a group or
    /// not, is a member by the rule.
    pub fn matches(&self, id: &ConversationId, data: &ConversationData, explicitly_grouped: bool) -> bool {
        if self.exclude_ids.contains(id) {
            return false;
        }
        if self.include_ids.contains(id) {
            return true;
        }
        if !self.has_criteria() {
            return false;
        }
        if self.kind.is_some_and(|kind| kind != id.kind()) {
            return false;
        }
        match self.mark_type {
            Some(0) if !data.mark_list.is_empty() => return false,
            Some(mark) if mark != 0 && !data.mark_list.contains(&mark) => return false,
            _ => {}
        }
        let checks = [
            (self.has_unread_count, data.unread_count > 0),
            (self.muted, !data.recv_opt.counts_unread()),
            (self.ungrouped, !explicitly_grouped),
            (self.has_group_at_info, data.has_group_at_info),
        ];
        checks.iter().all(|(want, is)| want.is_none_or(|want| want == *is))
    }
}

/// One group as shown to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub id: GroupId,
    pub name: String,
    /// Set for a smart group.
    pub rule: Option<GroupRule>,
    pub conversation_count: u32,
    pub unread_count: u64,
    pub create_time_ms: TimeMs,
    /// The receive option conversations get when they join the group
    /// (SetConversationGroupMute with `apply_to_new_members`).
    pub new_member_recv_opt: Option<RecvOpt>,
    pub look: GroupLook,
    pub sort_mode: SortMode,
    /// The group's own pinned conversations, in listing order.
    pub pinned: Vec<ConversationId>,
}

/// The colour of a group's tag: a fixed palette, so every client draws it
/// in its own theme. `None` (the default) is no colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupColor {
    #[default]
    None,
    Red,
    Orange,
    Violet,
    Green,
    Cyan,
    Blue,
    Pink,
}

impl GroupColor {
    /// Every colour, in the order of the contract (the stored codes and the
    /// protobuf values are the positions here).
    pub const ALL: [GroupColor; 8] = [
        GroupColor::None,
        GroupColor::Red,
        GroupColor::Orange,
        GroupColor::Violet,
        GroupColor::Green,
        GroupColor::Cyan,
        GroupColor::Blue,
        GroupColor::Pink,
    ];
}

/// How a group looks. `Default` is a group nobody styled (and every group
/// stored before looks existed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupLook {
    /// An emoji or short text; empty: none.
    pub icon: String,
    pub color: GroupColor,
    /// Shown folded on every device of the user.
    pub collapsed: bool,
    pub custom_data: Vec<u8>,
}

/// One field of [`GroupLook`], as an update names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookField {
    Icon,
    Color,
    Collapsed,
    CustomData,
}

impl LookField {
    /// Every field, in the order the contract lists them (events list
    /// their changed fields in this order).
    pub const ALL: [LookField; 4] = [LookField::Icon, LookField::Color, LookField::Collapsed, LookField::CustomData];

    /// The update-mask path (the protobuf field name).
    pub fn path(self) -> &'static str {
        match self {
            LookField::Icon => "icon",
            LookField::Color => "color",
            LookField::Collapsed => "collapsed",
            LookField::CustomData => "custom_data",
        }
    }

    pub fn from_path(path: &str) -> Option<LookField> {
        LookField::ALL.into_iter().find(|f| f.path() == path)
    }
}

impl GroupLook {
    /// Copies the named fields from `values`; returns the fields whose
    /// value changed, in [`LookField::ALL`] order.
    pub fn apply(&mut self, fields: &[LookField], values: &GroupLook) -> Vec<LookField> {
        let mut changed = Vec::new();
        for field in LookField::ALL.into_iter().filter(|f| fields.contains(f)) {
            let differs = match field {
                LookField::Icon => self.icon != values.icon,
                LookField::Color => self.color != values.color,
                LookField::Collapsed => self.collapsed != values.collapsed,
                LookField::CustomData => self.custom_data != values.custom_data,
            };
            if differs {
                match field {
                    LookField::Icon => self.icon = values.icon.clone(),
                    LookField::Color => self.color = values.color,
                    LookField::Collapsed => self.collapsed = values.collapsed,
                    LookField::CustomData => self.custom_data = values.custom_data.clone(),
                }
                changed.push(field);
            }
        }
        changed
    }
}

/// An update of a group's look: the fields to write and their new values
/// (the other fields of `values` are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookUpdate {
    pub fields: Vec<LookField>,
    pub values: GroupLook,
}

/// How a listing of one group orders the members that are not pinned in
/// it (see the proto's GroupSortMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortMode {
    /// The conversations' own listing order: what every group had before
    /// groups had a sort mode, so the default.
    #[default]
    Recent,
    /// The stored manual order (a rank per member).
    Manual,
    /// `show_name` byte-wise, then id.
    Alphabetical,
}

impl SortMode {
    /// The mode's name as the proto spells it after `GROUP_SORT_MODE_`.
    pub fn name(self) -> &'static str {
        match self {
            SortMode::Recent => "RECENT",
            SortMode::Manual => "MANUAL",
            SortMode::Alphabetical => "ALPHABETICAL",
        }
    }
}

/// Where MoveConversationsInGroup puts the moved conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Start,
    End,
    Before(ConversationId),
    After(ConversationId),
}

/// The user's groups in display order, at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
    pub revision: u64,
}

/// Which conversations a listing covers; `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub kind: Option<ConversationKind>,
    /// `Some("")`: conversations in no group.
    pub group_name: Option<String>,
    /// Only the members of this group (not together with `group_name`).
    pub group_id: Option<GroupId>,
    /// `Some(0)`: conversations with no mark.
    pub mark_type: Option<u64>,
    pub has_unread_count: Option<bool>,
    pub has_group_at_info: Option<bool>,
    /// Non-empty: only these.
    pub conversation_ids: Vec<ConversationId>,
}

impl ConversationFilter {
    /// Whether a conversation passes every filter except `group_name` and
    /// `conversation_ids`, which pick the candidates instead.
    pub fn matches(&self, id: &ConversationId, data: &ConversationData, in_any_group: bool) -> bool {
        if self.kind.is_some_and(|kind| kind != id.kind()) {
            return false;
        }
        if self.group_name.as_deref() == Some("") && in_any_group {
            return false;
        }
        match self.mark_type {
            Some(0) if !data.mark_list.is_empty() => return false,
            Some(mark) if mark != 0 && !data.mark_list.contains(&mark) => return false,
            _ => {}
        }
        if self.has_unread_count.is_some_and(|want| want != (data.unread_count > 0)) {
            return false;
        }
        if self.has_group_at_info.is_some_and(|want| want != data.has_group_at_info) {
            return false;
        }
        true
    }

    /// A stable fingerprint, bound into page tokens so a token is only
    /// accepted with the filter it was issued for: FNV-1a over a canonical
    /// byte encoding of the filter (each field in a fixed order, absent or
    /// present, variable-length values length-prefixed), so it does not
    /// depend on how Rust formats a value and two different filters cannot
    /// render alike. Not a security measure, a consistency check.
    pub fn fingerprint(&self) -> u64 {
        fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
            match value {
                None => out.push(0),
                Some(bytes) => {
                    out.push(1);
                    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
        let flag = |b: Option<bool>| b.map(|b| [u8::from(b)]);
        let mut out = Vec::with_capacity(64);
        field(&mut out, self.kind.map(|k| [u8::from(k == ConversationKind::C2c)]).as_ref().map(|b| &b[..]));
        field(&mut out, self.group_name.as_deref().map(str::as_bytes));
        field(&mut out, self.mark_type.map(u64::to_be_bytes).as_ref().map(|b| &b[..]));
        field(&mut out, flag(self.has_unread_count).as_ref().map(|b| &b[..]));
        field(&mut out, flag(self.has_group_at_info).as_ref().map(|b| &b[..]));
        out.extend_from_slice(&(self.conversation_ids.len() as u32).to_be_bytes());
        for id in &self.conversation_ids {
            field(&mut out, Some(id.as_str().as_bytes()));
        }
        // Appended only when set, so every filter without it keeps the
        // fingerprint (and the page tokens) it had before ids existed.
        if let Some(id) = self.group_id {
            out.push(b'g');
            out.extend_from_slice(&id.0.to_be_bytes());
        }
        super::fnv1a(super::FNV1A_START, &out)
    }
}

/// The part of a position that a listing of one group puts first: the
/// group's pins, then its sort mode's key. Variants compare in declaration
/// order, so pinned members come first; one listing only ever holds
/// `Pinned` and the one variant of the group's mode (a page token of
/// another mode is refused, see [`GroupRank::fits`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupRank {
    /// Pinned in the group, at this index of its pins.
    Pinned(u32),
    /// MANUAL: the member's rank (ties, only in orders stored before ranks
    /// existed, fall back to the id), in the group's order epoch (bumped
    /// by every renumbering; equal within one listing).
    Manual { epoch: u32, rank: u64 },
    /// ALPHABETICAL: the show name, byte-wise.
    Alphabetical(String),
    /// RECENT: the conversation's own position decides.
    Recent,
}

impl GroupRank {
    /// Whether a position of this kind belongs to a listing of a group in
    /// `mode` whose manual order is in `epoch` (a pinned position fits
    /// every mode).
    pub fn fits(&self, mode: SortMode, epoch: u32) -> bool {
        match (self, mode) {
            (GroupRank::Pinned(_), _)
            | (GroupRank::Alphabetical(_), SortMode::Alphabetical)
            | (GroupRank::Recent, SortMode::Recent) => true,
            (GroupRank::Manual { epoch: of, .. }, SortMode::Manual) => *of == epoch,
            _ => false,
        }
    }
}

/// The listing order: pinned first, then `order_key` descending, then id
/// ascending; in a listing of one group, the group's [`GroupRank`] before
/// all that. Comparing two keys gives the listing order directly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListPosition {
    /// Some only in a listing of one group. For every rank but `Recent`
    /// the two fields below are zero, so the id breaks ties.
    pub group: Option<GroupRank>,
    /// 0 for pinned, 1 for unpinned (pinned sort first).
    pub unpinned: u8,
    /// `u64::MAX - order_key` (larger keys sort first).
    pub inverted_order_key: u64,
    pub id: String,
}

impl ListPosition {
    pub fn of(id: &ConversationId, data: &ConversationData) -> Self {
        Self::new(id, data.is_pinned, data.order_key)
    }

    /// The position of a conversation with these fields (a stored record
    /// gives them without being decoded into [`ConversationData`]).
    pub fn new(id: &ConversationId, is_pinned: bool, order_key: u64) -> Self {
        let (unpinned, inverted_order_key) = Self::rank(is_pinned, order_key);
        Self { group: None, unpinned, inverted_order_key, id: id.as_str().to_string() }
    }

    /// The position in a listing of one group.
    pub fn in_group(id: &ConversationId, data: &ConversationData, rank: GroupRank) -> Self {
        match rank {
            GroupRank::Recent => Self { group: Some(GroupRank::Recent), ..Self::of(id, data) },
            rank => Self { group: Some(rank), unpinned: 0, inverted_order_key: 0, id: id.as_str().to_string() },
        }
    }

    /// The part of the position before the id: `(unpinned, inverted_order_key)`.
    pub fn rank(is_pinned: bool, order_key: u64) -> (u8, u64) {
        (u8::from(!is_pinned), u64::MAX - order_key)
    }
}

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationView>,
    /// Where the next page starts after (None on the last page).
    pub next_after: Option<ListPosition>,
    pub revision: u64,
}

/// Per-item result codes of multi-item requests (contract §2 ConversationResult).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemCode {
    InvalidConversationId,
    AlreadyInGroup,
    GroupFull,
    DuplicateInRequest,
    NotInGroup,
    PinLimitExceeded,
    CustomDataTooLarge,
    ConversationNotFound,
    InvalidField,
    /// Remove from group: the conversation is a member by the group's rule
    /// only (change the rule, e.g. its exclude_ids, to take it out).
    InGroupByRule,
    /// A move's target had room, but another target of the same move was
    /// full, so the conversation moved nowhere.
    MoveNotApplied,
    GroupPinLimitExceeded,
    NotPinnedInGroup,
}

impl ItemCode {
    /// Tencent Cloud Chat's code for the same case, where it has one.
    pub fn tencent_code(self) -> i32 {
        match self {
            ItemCode::GroupFull => 51008,
            ItemCode::PinLimitExceeded => 51012,
            _ => 0,
        }
    }
}

/// One failed item: the id as sent, why, and a message naming the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    pub raw_id: String,
    pub code: ItemCode,
    pub message: String,
}

/// Outcome of a multi-item mutation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemOutcomes {
    pub succeeded: Vec<ConversationId>,
    pub failed: Vec<ItemFailure>,
    pub revision: u64,
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn fingerprints_tell_filters_apart_and_do_not_change_between_builds() {
        let none = ConversationFilter::default();
        let no_group = ConversationFilter { group_name: Some(String::new()), ..Default::default() };
        let ids = |ids: &[&str]| ConversationFilter {
            conversation_ids: ids.iter().map(|id| ConversationId::parse(id).unwrap()).collect(),
            ..Default::default()
        };
        let all = [
            none.clone(),
            no_group,
            ConversationFilter { group_name: Some("a".into()), ..Default::default() },
            ConversationFilter { mark_type: Some(0), ..Default::default() },
            ConversationFilter { has_unread_count: Some(false), ..Default::default() },
            ConversationFilter { has_group_at_info: Some(false), ..Default::default() },
            ConversationFilter { kind: Some(ConversationKind::C2c), ..Default::default() },
            ConversationFilter { kind: Some(ConversationKind::Group), ..Default::default() },
            ids(&["C2Ca", "C2Cb"]),
            ids(&["C2Cb", "C2Ca"]),
            ids(&["C2Cab"]),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.fingerprint(), b.fingerprint(), "{a:?} and {b:?}");
            }
        }
        // Pinned (FNV-1a of the nine zero bytes of the empty filter, checked
        // with Python): page tokens issued by one build are accepted by the next
        // (and by every replica of a cluster running mixed builds).
        assert_eq!(none.fingerprint(), 0xe604_823a_2490_29bf, "{:#x}", none.fingerprint());
        let full = ConversationFilter {
            kind: Some(ConversationKind::C2c),
            group_name: Some("Suppliers".into()),
            mark_type: Some(7),
            has_unread_count: Some(true),
            has_group_at_info: None,
            conversation_ids: vec![ConversationId::parse("C2Calice").unwrap()],
            group_id: None,
        };
        assert_eq!(full.fingerprint(), 0xaae5_5b5c_bae4_5624, "{:#x}", full.fingerprint());
        // A group id is bound in too, and two ids differ.
        let by_id = |id| ConversationFilter { group_id: Some(GroupId(id)), ..Default::default() };
        assert_ne!(by_id(1).fingerprint(), none.fingerprint());
        assert_ne!(by_id(1).fingerprint(), by_id(2).fingerprint());
    }
}
