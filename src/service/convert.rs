//! Conversion and validation at the boundary: protobuf in, domain types out
//! (and back). Every rejection names the field and the limit.

use base64::Engine;
use prost_types::Timestamp;

use crate::config::Limits;
use crate::domain::rules::GroupFields;
use crate::domain::{
    check_group_name, AdditionReason, ConversationFilter, ConversationId, ConversationKind, ConversationPatch,
    ConversationView, EventBatch, EventKind, EventType, GroupColor, GroupId, GroupLook, GroupRank, GroupRef, GroupRule,
    GroupView, ItemCode, ItemError, ItemFailure, ItemOutcomes, LastMessage, ListPosition, LookField, LookUpdate,
    Placement, RecvOpt, RemovalReason, SortMode, TimeMs,
};
use crate::error::Error;
use crate::pb;

pub fn timestamp(ms: TimeMs) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

fn time_ms(ts: &Timestamp) -> TimeMs {
    ts.seconds.saturating_mul(1000).saturating_add(i64::from(ts.nanos) / 1_000_000)
}

/// The group a request names: by name or by id, exactly one (see the
/// proto's "Group ids"). Neither is an empty name, INVALID_GROUP_NAME as it
/// always was; a name is checked later, by the rules, only if it names no
/// group (a name over a since-lowered limit still finds its group).
pub fn group_ref(fields: GroupFields, name: String, id: String) -> Result<GroupRef, Error> {
    match (name.is_empty(), id.is_empty()) {
        (false, false) => Err(Error::GroupNameAndId { name_field: fields.name, id_field: fields.id }),
        (_, true) => Ok(GroupRef::Name(name)),
        (true, false) => Ok(GroupRef::Id(group_id(fields.id, &id)?)),
    }
}

/// A smart group's rule as a client sent it (`field` is the request's
/// field): ids parsed, at least something to select, at most
/// `max_rule_ids` ids.
pub fn rule(field: &'static str, rule: pb::GroupRule, limits: &Limits) -> Result<GroupRule, Error> {
    let invalid = |message: String| Error::InvalidRule { field, message, limit: limits.max_rule_ids };
    let kind = match rule.r#type {
        None => None,
        Some(value) => match pb::ConversationType::try_from(value) {
            Ok(pb::ConversationType::C2c) => Some(ConversationKind::C2c),
            Ok(pb::ConversationType::Group) => Some(ConversationKind::Group),
            _ => return Err(invalid(format!("type: {value} is not CONVERSATION_TYPE_C2C or CONVERSATION_TYPE_GROUP"))),
        },
    };
    let count = rule.include_ids.len() + rule.exclude_ids.len();
    if count > limits.max_rule_ids {
        return Err(invalid(format!(
            "include_ids and exclude_ids hold {count} ids, more than the {} allowed (max_rule_ids)",
            limits.max_rule_ids
        )));
    }
    let parse = |list: &'static str, raw: &[String]| -> Result<Vec<ConversationId>, Error> {
        let mut ids = Vec::with_capacity(raw.len());
        for (i, raw) in raw.iter().enumerate() {
            let id = ConversationId::parse(raw).map_err(|e| invalid(format!("{list}[{i}] {raw:?}: {e}")))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    };
    let parsed = GroupRule {
        kind,
        mark_type: rule.mark_type,
        has_unread_count: rule.has_unread_count,
        muted: rule.muted,
        ungrouped: rule.ungrouped,
        has_group_at_info: rule.has_group_at_info,
        include_ids: parse("include_ids", &rule.include_ids)?,
        exclude_ids: parse("exclude_ids", &rule.exclude_ids)?,
    };
    if !parsed.has_criteria() && parsed.include_ids.is_empty() {
        return Err(invalid("selects nothing: set a criterion or include_ids".into()));
    }
    Ok(parsed)
}

pub fn pb_rule(rule: &GroupRule) -> pb::GroupRule {
    pb::GroupRule {
        r#type: rule.kind.map(|kind| match kind {
            ConversationKind::C2c => pb::ConversationType::C2c as i32,
            ConversationKind::Group => pb::ConversationType::Group as i32,
        }),
        mark_type: rule.mark_type,
        has_unread_count: rule.has_unread_count,
        muted: rule.muted,
        ungrouped: rule.ungrouped,
        has_group_at_info: rule.has_group_at_info,
        include_ids: ids(&rule.include_ids),
        exclude_ids: ids(&rule.exclude_ids),
    }
}

/// A group id as a client sent it.
pub fn group_id(field: &'static str, id: &str) -> Result<GroupId, Error> {
    GroupId::parse(id).map_err(|message| Error::InvalidGroupId { field, message })
}

/// A group name that is being created (group_name of Create, new_name of
/// Rename): the full rule applies.
pub fn new_group_name(field: &'static str, name: String, limits: &Limits) -> Result<String, Error> {
    check_group_name(&name, limits.max_group_name_bytes).map_err(|message| Error::InvalidGroupName {
        field,
        message,
        limit: limits.max_group_name_bytes,
    })?;
    Ok(name)
}

/// The size rule of conversation lists: 1..=max_ids_per_request items.
pub fn check_list_size(field: &'static str, len: usize, limits: &Limits) -> Result<(), Error> {
    let limit = limits.max_ids_per_request;
    if len == 0 {
        return Err(Error::InvalidConversationList { field, message: "is empty; send at least one".into(), limit });
    }
    if len > limit {
        return Err(Error::InvalidConversationList {
            field,
            message: format!("has {len} items, more than the {limit} allowed (max_ids_per_request)"),
            limit,
        });
    }
    Ok(())
}

/// The domain's event types and their protobuf enum values: the one table
/// both directions are read from.
const EVENT_TYPES: [(EventType, pb::GroupEventType); 13] = [
    (EventType::GroupCreated, pb::GroupEventType::GroupCreated),
    (EventType::GroupDeleted, pb::GroupEventType::GroupDeleted),
    (EventType::GroupRenamed, pb::GroupEventType::GroupRenamed),
    (EventType::GroupsReordered, pb::GroupEventType::GroupsReordered),
    (EventType::ConversationsAddedToGroup, pb::GroupEventType::ConversationsAddedToGroup),
    (EventType::ConversationsDeletedFromGroup, pb::GroupEventType::ConversationsDeletedFromGroup),
    (EventType::ConversationsChanged, pb::GroupEventType::ConversationsChanged),
    (EventType::ConversationsDeleted, pb::GroupEventType::ConversationsDeleted),
    (EventType::GroupOrderChanged, pb::GroupEventType::GroupOrderChanged),
    (EventType::GroupPinsChanged, pb::GroupEventType::GroupPinsChanged),
    (EventType::GroupUpdated, pb::GroupEventType::GroupUpdated),
    (EventType::GroupMuteChanged, pb::GroupEventType::GroupMuteChanged),
    (EventType::GroupRuleChanged, pb::GroupEventType::GroupRuleChanged),
];

/// The domain's event type of a `GroupEventType` value (None for
/// UNSPECIFIED and unknown values).
pub fn event_type(value: i32) -> Option<EventType> {
    EVENT_TYPES.iter().find(|(_, pb)| *pb as i32 == value).map(|(domain, _)| *domain)
}

/// The `GroupEventType` of a domain event type.
pub fn pb_event_type(event_type: EventType) -> pb::GroupEventType {
    EVENT_TYPES.iter().find(|(domain, _)| *domain == event_type).map(|(_, pb)| *pb).expect("every type is listed")
}

pub fn recv_opt(value: i32) -> Option<RecvOpt> {
    match pb::RecvOpt::try_from(value).ok()? {
        pb::RecvOpt::Unspecified => None,
        pb::RecvOpt::Receive => Some(RecvOpt::Receive),
        pb::RecvOpt::NotReceive => Some(RecvOpt::NotReceive),
        pb::RecvOpt::ReceiveNotNotify => Some(RecvOpt::ReceiveNotNotify),
        pb::RecvOpt::ReceiveNotNotifyExceptAt => Some(RecvOpt::ReceiveNotNotifyExceptAt),
        pb::RecvOpt::NotReceiveExceptAt => Some(RecvOpt::NotReceiveExceptAt),
    }
}

fn pb_recv_opt(opt: RecvOpt) -> pb::RecvOpt {
    match opt {
        RecvOpt::Receive => pb::RecvOpt::Receive,
        RecvOpt::NotReceive => pb::RecvOpt::NotReceive,
        RecvOpt::ReceiveNotNotify => pb::RecvOpt::ReceiveNotNotify,
        RecvOpt::ReceiveNotNotifyExceptAt => pb::RecvOpt::ReceiveNotNotifyExceptAt,
        RecvOpt::NotReceiveExceptAt => pb::RecvOpt::NotReceiveExceptAt,
    }
}

/// Validates one ConversationUpdate into a patch, or the item's failure.
pub fn patch(index: usize, update: pb::ConversationUpdate, limits: &Limits) -> Result<ConversationPatch, ItemError> {
    let field = |name: &str| format!("conversations[{index}].{name}");
    let text = |name: &str, value: Option<String>| match value {
        Some(v) if v.len() > limits.max_text_field_bytes => Err((
            ItemCode::InvalidField,
            format!(
                "{}: is {} bytes, more than the {} allowed (max_text_field_bytes)",
                field(name),
                v.len(),
                limits.max_text_field_bytes
            ),
        )),
        other => Ok(other),
    };
    if let Some(data) = &update.custom_data {
        if data.len() > limits.max_custom_data_bytes {
            return Err((
                ItemCode::CustomDataTooLarge,
                format!(
                    "{}: is {} bytes, more than the {} allowed (max_custom_data_bytes)",
                    field("custom_data"),
                    data.len(),
                    limits.max_custom_data_bytes
                ),
            ));
        }
    }
    let recv = match update.recv_opt {
        None => None,
        Some(value) => Some(recv_opt(value).ok_or_else(|| {
            (ItemCode::InvalidField, format!("{}: {value} is not a RecvOpt other than UNSPECIFIED", field("recv_opt")))
        })?),
    };
    if let Some(marks) = &update.mark_list {
        if marks.values.len() > limits.max_marks {
            return Err((
                ItemCode::InvalidField,
                format!(
                    "{}: has {} values, more than the {} allowed (max_marks)",
                    field("mark_list"),
                    marks.values.len(),
                    limits.max_marks
                ),
            ));
        }
    }
    if update.mark_list.is_some() && !(update.add_marks.is_empty() && update.remove_marks.is_empty()) {
        return Err((
            ItemCode::InvalidField,
            format!("{}: set either mark_list or add_marks/remove_marks, not both", field("mark_list")),
        ));
    }
    for (name, marks) in [("add_marks", &update.add_marks), ("remove_marks", &update.remove_marks)] {
        if marks.len() > limits.max_marks {
            return Err((
                ItemCode::InvalidField,
                format!(
                    "{}: has {} values, more than the {} allowed (max_marks)",
                    field(name),
                    marks.len(),
                    limits.max_marks
                ),
            ));
        }
    }
    if let Some(mark) = update.add_marks.iter().find(|mark| update.remove_marks.contains(mark)) {
        return Err((
            ItemCode::InvalidField,
            format!("{}: {mark} is also in remove_marks; a mark is either added or removed", field("add_marks")),
        ));
    }
    let last_message = match update.last_message {
        None => None,
        Some(m) => Some(LastMessage {
            sender: text("last_message.sender", Some(m.sender))?.unwrap_or_default(),
            text: text("last_message.text", Some(m.text))?.unwrap_or_default(),
            time_ms: m.time.as_ref().map(time_ms),
        }),
    };
    Ok(ConversationPatch {
        show_name: text("show_name", update.show_name)?,
        face_url: text("face_url", update.face_url)?,
        unread_count: update.unread_count,
        is_pinned: update.is_pinned,
        order_key: update.order_key,
        recv_opt: recv,
        mark_list: update.mark_list.map(|m| m.values),
        add_marks: update.add_marks,
        remove_marks: update.remove_marks,
        custom_data: update.custom_data,
        has_group_at_info: update.has_group_at_info,
        last_message,
    })
}

pub fn filter(filter: Option<pb::ConversationFilter>, limits: &Limits) -> Result<ConversationFilter, Error> {
    let Some(f) = filter else { return Ok(ConversationFilter::default()) };
    let kind = match f.r#type {
        None => None,
        Some(value) => match pb::ConversationType::try_from(value) {
            Ok(pb::ConversationType::C2c) => Some(ConversationKind::C2c),
            Ok(pb::ConversationType::Group) => Some(ConversationKind::Group),
            _ => {
                return Err(Error::InvalidArgument {
                    field: "filter.type",
                    message: format!("{value} is not CONVERSATION_TYPE_C2C or CONVERSATION_TYPE_GROUP"),
                })
            }
        },
    };
    if f.conversation_ids.len() > limits.max_ids_per_request {
        check_list_size("filter.conversation_ids", f.conversation_ids.len(), limits)?;
    }
    let mut conversation_ids = Vec::with_capacity(f.conversation_ids.len());
    for (i, raw) in f.conversation_ids.iter().enumerate() {
        let id = ConversationId::parse(raw).map_err(|e| Error::InvalidArgument {
            field: "filter.conversation_ids",
            message: format!("[{i}] {raw:?}: {e}"),
        })?;
        if !conversation_ids.contains(&id) {
            conversation_ids.push(id);
        }
    }
    let group_id = match (&f.group_name, f.group_id) {
        (Some(_), Some(_)) => {
            return Err(Error::GroupNameAndId { name_field: "filter.group_name", id_field: "filter.group_id" })
        }
        (_, Some(id)) => Some(group_id("filter.group_id", &id)?),
        (_, None) => None,
    };
    Ok(ConversationFilter {
        kind,
        group_name: f.group_name,
        group_id,
        mark_type: f.mark_type,
        has_unread_count: f.has_unread_count,
        has_group_at_info: f.has_group_at_info,
        conversation_ids,
    })
}

/// Page tokens: base64url of `[version][filter fingerprint u64]`, then
/// for version 2 (listings of one group) the group rank (`[tag u8]` and
/// 0: pinned index u32, 1: manual order epoch u32 and rank u64, 2: show
/// name as `[len u32]
/// [bytes]`, 3: recent), then `[unpinned u8][inverted order key u64]
/// [conversation id]`. Version 1 (every other listing, and group listings
/// before groups had an order) has no rank: one of a group listing reads as
/// RECENT, the only order groups had then. Opaque to clients; bound to the
/// filter so it cannot be replayed with another.
const PAGE_TOKEN_VERSION: u8 = 1;
const GROUP_PAGE_TOKEN_VERSION: u8 = 2;

/// Whether a listing with this filter is in one group's order.
fn names_one_group(filter: &ConversationFilter) -> bool {
    filter.group_id.is_some() || filter.group_name.as_deref().is_some_and(|name| !name.is_empty())
}

pub fn encode_page_token(filter: &ConversationFilter, after: &ListPosition) -> String {
    let mut raw = Vec::with_capacity(32 + after.id.len());
    match &after.group {
        None => {
            raw.push(PAGE_TOKEN_VERSION);
            raw.extend_from_slice(&filter.fingerprint().to_be_bytes());
        }
        Some(rank) => {
            raw.push(GROUP_PAGE_TOKEN_VERSION);
            raw.extend_from_slice(&filter.fingerprint().to_be_bytes());
            match rank {
                GroupRank::Pinned(index) => {
                    raw.push(0);
                    raw.extend_from_slice(&index.to_be_bytes());
                }
                GroupRank::Manual { epoch, rank } => {
                    raw.push(1);
                    raw.extend_from_slice(&epoch.to_be_bytes());
                    raw.extend_from_slice(&rank.to_be_bytes());
                }
                GroupRank::Alphabetical(name) => {
                    raw.push(2);
                    raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
                    raw.extend_from_slice(name.as_bytes());
                }
                GroupRank::Recent => raw.push(3),
            }
        }
    }
    raw.push(after.unpinned);
    raw.extend_from_slice(&after.inverted_order_key.to_be_bytes());
    raw.extend_from_slice(after.id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_page_token(token: &str, filter: &ConversationFilter) -> Result<Option<ListPosition>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| Error::InvalidPageToken)?;
    if raw.len() < 9 || raw[1..9] != filter.fingerprint().to_be_bytes() {
        return Err(Error::InvalidPageToken);
    }
    /// Splits `n` bytes off the front.
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
        if rest.len() < n {
            return Err(Error::InvalidPageToken);
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    let mut rest = &raw[9..];
    let group = match raw[0] {
        PAGE_TOKEN_VERSION => names_one_group(filter).then_some(GroupRank::Recent),
        GROUP_PAGE_TOKEN_VERSION if names_one_group(filter) => Some(match take(&mut rest, 1)?[0] {
            0 => GroupRank::Pinned(u32::from_be_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes"))),
            1 => GroupRank::Manual {
                epoch: u32::from_be_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes")),
                rank: u64::from_be_bytes(take(&mut rest, 8)?.try_into().expect("8 bytes")),
            },
            2 => {
                let len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes")) as usize;
                let name = std::str::from_utf8(take(&mut rest, len)?).map_err(|_| Error::InvalidPageToken)?;
                GroupRank::Alphabetical(name.to_string())
            }
            3 => GroupRank::Recent,
            _ => return Err(Error::InvalidPageToken),
        }),
        _ => return Err(Error::InvalidPageToken),
    };
    let unpinned = take(&mut rest, 1)?[0];
    let inverted_order_key = u64::from_be_bytes(take(&mut rest, 8)?.try_into().expect("8 bytes"));
    let id = std::str::from_utf8(rest).map_err(|_| Error::InvalidPageToken)?;
    let id = ConversationId::parse(id).map_err(|_| Error::InvalidPageToken)?;
    if unpinned > 1 {
        return Err(Error::InvalidPageToken);
    }
    Ok(Some(ListPosition { group, unpinned, inverted_order_key, id: id.as_str().to_string() }))
}

/// The domain's sort mode of a `GroupSortMode` value (None for
/// UNSPECIFIED and unknown values).
pub fn sort_mode(value: i32) -> Option<SortMode> {
    match pb::GroupSortMode::try_from(value).ok()? {
        pb::GroupSortMode::Unspecified => None,
        pb::GroupSortMode::Recent => Some(SortMode::Recent),
        pb::GroupSortMode::Manual => Some(SortMode::Manual),
        pb::GroupSortMode::Alphabetical => Some(SortMode::Alphabetical),
    }
}

/// A sort mode a request must set (`field`): UNSPECIFIED and unknown
/// values are INVALID_SORT_MODE.
pub fn required_sort_mode(field: &'static str, value: i32) -> Result<SortMode, Error> {
    sort_mode(value).ok_or_else(|| Error::InvalidSortMode {
        field,
        message: format!(
            "{value} is not GROUP_SORT_MODE_RECENT, GROUP_SORT_MODE_MANUAL or GROUP_SORT_MODE_ALPHABETICAL"
        ),
    })
}

pub fn pb_sort_mode(mode: SortMode) -> pb::GroupSortMode {
    match mode {
        SortMode::Recent => pb::GroupSortMode::Recent,
        SortMode::Manual => pb::GroupSortMode::Manual,
        SortMode::Alphabetical => pb::GroupSortMode::Alphabetical,
    }
}

/// MoveConversationsInGroup's placement.
pub fn placement(placement: Option<pb::move_conversations_in_group_request::Placement>) -> Result<Placement, Error> {
    use pb::move_conversations_in_group_request::Placement as P;
    let anchor = |field: &'static str, raw: String| {
        ConversationId::parse(&raw)
            .map_err(|e| Error::InvalidPlacement { field, message: format!("{raw:?} is not a conversation id: {e}") })
    };
    match placement {
        Some(P::BeforeConversationId(raw)) => Ok(Placement::Before(anchor("before_conversation_id", raw)?)),
        Some(P::AfterConversationId(raw)) => Ok(Placement::After(anchor("after_conversation_id", raw)?)),
        Some(P::ToStart(true)) => Ok(Placement::Start),
        Some(P::ToEnd(true)) => Ok(Placement::End),
        Some(P::ToStart(false)) => {
            Err(Error::InvalidPlacement { field: "to_start", message: "must be true when set".into() })
        }
        Some(P::ToEnd(false)) => {
            Err(Error::InvalidPlacement { field: "to_end", message: "must be true when set".into() })
        }
        None => Err(Error::InvalidPlacement {
            field: "placement",
            message: "set one of before_conversation_id, after_conversation_id, to_start, to_end".into(),
        }),
    }
}

/// The domain's colours and their protobuf values: the one table both
/// directions are read from.
const COLORS: [(GroupColor, pb::GroupColor); 8] = [
    (GroupColor::None, pb::GroupColor::Unspecified),
    (GroupColor::Red, pb::GroupColor::Red),
    (GroupColor::Orange, pb::GroupColor::Orange),
    (GroupColor::Violet, pb::GroupColor::Violet),
    (GroupColor::Green, pb::GroupColor::Green),
    (GroupColor::Cyan, pb::GroupColor::Cyan),
    (GroupColor::Blue, pb::GroupColor::Blue),
    (GroupColor::Pink, pb::GroupColor::Pink),
];

fn pb_color(color: GroupColor) -> pb::GroupColor {
    COLORS.iter().find(|(domain, _)| *domain == color).map(|(_, pb)| *pb).expect("every colour is listed")
}

/// The `update_mask` paths and the wildcard that names them all.
const ALL_PATHS: &str = "*";

/// Validates UpdateConversationGroup's mask and the values it names (the
/// others are ignored, so a client may send a whole look it read and name
/// only what it changes).
pub fn look_update(
    mask: Option<prost_types::FieldMask>,
    look: Option<pb::GroupLook>,
    limits: &Limits,
) -> Result<LookUpdate, Error> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    let mask_error = |path: &str, message: String| Error::InvalidUpdateMask { path: path.to_string(), message };
    if paths.is_empty() {
        return Err(mask_error(
            "",
            "is empty; name the fields to write (icon, color, collapsed, custom_data, or * for all)".into(),
        ));
    }
    let mut fields = Vec::new();
    for path in &paths {
        let named = if path == ALL_PATHS {
            LookField::ALL.to_vec()
        } else {
            let field = LookField::from_path(path).ok_or_else(|| {
                mask_error(
                    path,
                    format!("{path:?} is not a field of GroupLook (icon, color, collapsed, custom_data, or *)"),
                )
            })?;
            vec![field]
        };
        for field in named {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    let look = look.unwrap_or_default();
    let limit = limits.max_group_icon_bytes;
    if fields.contains(&LookField::Icon) {
        let message = if look.icon.len() > limit {
            Some(format!("is {} bytes, more than the {limit} allowed (max_group_icon_bytes)", look.icon.len()))
        } else if look.icon.chars().any(char::is_control) {
            Some("contains a control character".to_string())
        } else {
            None
        };
        if let Some(message) = message {
            return Err(Error::InvalidGroupIcon { message, limit });
        }
    }
    let color = if fields.contains(&LookField::Color) {
        COLORS.iter().find(|(_, pb)| *pb as i32 == look.color).map(|(domain, _)| *domain).ok_or_else(|| {
            Error::InvalidArgument {
                field: "look.color",
                message: format!("{} is not a GroupColor this server knows", look.color),
            }
        })?
    } else {
        GroupColor::None
    };
    let limit = limits.max_group_custom_data_bytes;
    if fields.contains(&LookField::CustomData) && look.custom_data.len() > limit {
        return Err(Error::GroupCustomDataTooLarge {
            message: format!(
                "is {} bytes, more than the {limit} allowed (max_group_custom_data_bytes)",
                look.custom_data.len()
            ),
            limit,
        });
    }
    Ok(LookUpdate {
        fields,
        values: GroupLook { icon: look.icon, color, collapsed: look.collapsed, custom_data: look.custom_data },
    })
}

pub fn look(look: GroupLook) -> pb::GroupLook {
    pb::GroupLook {
        icon: look.icon,
        color: pb_color(look.color) as i32,
        collapsed: look.collapsed,
        custom_data: look.custom_data,
    }
}

pub fn group(view: GroupView) -> pb::ConversationGroup {
    let look = look(view.look);
    pb::ConversationGroup {
        group_id: view.id.to_string(),
        rule: view.rule.as_ref().map(pb_rule),
        name: view.name,
        conversation_count: view.conversation_count,
        unread_count: view.unread_count,
        create_time: Some(timestamp(view.create_time_ms)),
        new_member_recv_opt: view.new_member_recv_opt.map(|opt| pb_recv_opt(opt) as i32),
        icon: look.icon,
        color: look.color,
        collapsed: look.collapsed,
        custom_data: look.custom_data,
        sort_mode: pb_sort_mode(view.sort_mode) as i32,
        pinned_conversation_ids: ids(&view.pinned),
    }
}

pub fn conversation(view: ConversationView) -> pb::Conversation {
    let ConversationView { id, data, group_names, group_ids } = view;
    let (kind, user_id, group_id) = match id.kind() {
        ConversationKind::C2c => (pb::ConversationType::C2c, id.peer().to_string(), String::new()),
        ConversationKind::Group => (pb::ConversationType::Group, String::new(), id.peer().to_string()),
    };
    pb::Conversation {
        conversation_id: id.as_str().to_string(),
        r#type: kind as i32,
        user_id,
        group_id,
        show_name: data.show_name,
        face_url: data.face_url,
        unread_count: data.unread_count,
        is_pinned: data.is_pinned,
        order_key: data.order_key,
        recv_opt: pb_recv_opt(data.recv_opt) as i32,
        mark_list: data.mark_list,
        custom_data: data.custom_data,
        has_group_at_info: data.has_group_at_info,
        last_message: data.last_message.map(|m| pb::LastMessage {
            sender: m.sender,
            text: m.text,
            time: m.time_ms.map(timestamp),
        }),
        conversation_group_list: group_names,
        conversation_group_ids: group_ids.iter().map(GroupId::to_string).collect(),
        update_time: data.update_time_ms.map(timestamp),
        registered: data.registered,
    }
}

fn result_code(code: ItemCode) -> pb::ConversationResultCode {
    use pb::ConversationResultCode as C;
    match code {
        ItemCode::InvalidConversationId => C::InvalidConversationId,
        ItemCode::AlreadyInGroup => C::AlreadyInGroup,
        ItemCode::GroupFull => C::GroupFull,
        ItemCode::DuplicateInRequest => C::DuplicateInRequest,
        ItemCode::NotInGroup => C::NotInGroup,
        ItemCode::PinLimitExceeded => C::PinLimitExceeded,
        ItemCode::CustomDataTooLarge => C::CustomDataTooLarge,
        ItemCode::ConversationNotFound => C::ConversationNotFound,
        ItemCode::InvalidField => C::InvalidField,
        ItemCode::GroupPinLimitExceeded => C::GroupPinLimitExceeded,
        ItemCode::NotPinnedInGroup => C::NotPinnedInGroup,
        ItemCode::InGroupByRule => C::InGroupByRule,
        ItemCode::MoveNotApplied => C::MoveNotApplied,
    }
}

pub fn failure(f: ItemFailure) -> pb::ConversationResult {
    pb::ConversationResult {
        conversation_id: f.raw_id,
        code: result_code(f.code) as i32,
        message: f.message,
        tencent_code: f.code.tencent_code(),
    }
}

/// (success ids, failures, revision) of an item outcome.
pub fn outcome(o: ItemOutcomes) -> (Vec<String>, Vec<pb::ConversationResult>, u64) {
    (
        o.succeeded.into_iter().map(|id| id.as_str().to_string()).collect(),
        o.failed.into_iter().map(failure).collect(),
        o.revision,
    )
}

pub fn ids(ids: &[ConversationId]) -> Vec<String> {
    ids.iter().map(|id| id.as_str().to_string()).collect()
}

/// A group id in an event: empty where the event was stored without one.
fn event_group_id(id: &Option<GroupId>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// One stored batch as the wire shape; every event carries the batch's
/// revision, user, time and group list.
pub fn event_batch(batch: &EventBatch) -> pb::EventBatch {
    use pb::group_event::Kind;
    let events = batch
        .events
        .iter()
        .map(|event| {
            let kind = match event {
                EventKind::GroupCreated { group_id, group_name, conversation_ids } => {
                    Kind::GroupCreated(pb::GroupCreated {
                        group_name: group_name.clone(),
                        conversation_ids: ids(conversation_ids),
                        group_id: event_group_id(group_id),
                    })
                }
                EventKind::GroupDeleted { group_id, group_name } => Kind::GroupDeleted(pb::GroupDeleted {
                    group_name: group_name.clone(),
                    group_id: event_group_id(group_id),
                }),
                EventKind::GroupRenamed { group_id, old_name, new_name } => Kind::GroupRenamed(pb::GroupRenamed {
                    old_name: old_name.clone(),
                    new_name: new_name.clone(),
                    group_id: event_group_id(group_id),
                }),
                EventKind::GroupsReordered { group_names } => {
                    Kind::GroupsReordered(pb::GroupsReordered { group_names: group_names.clone() })
                }
                EventKind::ConversationsAddedToGroup { group_id, group_name, conversation_ids, reason } => {
                    Kind::ConversationsAddedToGroup(pb::ConversationsAddedToGroup {
                        group_name: group_name.clone(),
                        conversation_ids: ids(conversation_ids),
                        group_id: event_group_id(group_id),
                        reason: match reason {
                            AdditionReason::UserRequest => pb::AdditionReason::UserRequest,
                            AdditionReason::Rule => pb::AdditionReason::Rule,
                        } as i32,
                    })
                }
                EventKind::ConversationsDeletedFromGroup { group_id, group_name, conversation_ids, reason } => {
                    Kind::ConversationsDeletedFromGroup(pb::ConversationsDeletedFromGroup {
                        group_id: event_group_id(group_id),
                        group_name: group_name.clone(),
                        conversation_ids: ids(conversation_ids),
                        reason: match reason {
                            RemovalReason::UserRequest => pb::RemovalReason::UserRequest,
                            RemovalReason::ConversationDeleted => pb::RemovalReason::ConversationDeleted,
                            RemovalReason::Rule => pb::RemovalReason::Rule,
                            RemovalReason::Moved => pb::RemovalReason::Moved,
                        } as i32,
                    })
                }
                EventKind::ConversationsChanged { conversation_ids } => {
                    Kind::ConversationsChanged(pb::ConversationsChanged { conversation_ids: ids(conversation_ids) })
                }
                EventKind::ConversationsDeleted { conversation_ids } => {
                    Kind::ConversationsDeleted(pb::ConversationsDeleted { conversation_ids: ids(conversation_ids) })
                }
                EventKind::GroupRuleChanged { group_id, group_name, rule } => {
                    Kind::GroupRuleChanged(pb::GroupRuleChanged {
                        group_name: group_name.clone(),
                        group_id: event_group_id(group_id),
                        rule: rule.as_ref().map(pb_rule),
                    })
                }
                EventKind::GroupMuteChanged { group_id, group_name, new_member_recv_opt } => {
                    Kind::GroupMuteChanged(pb::GroupMuteChanged {
                        group_name: group_name.clone(),
                        group_id: event_group_id(group_id),
                        new_member_recv_opt: new_member_recv_opt.map(|opt| pb_recv_opt(opt) as i32),
                    })
                }
                EventKind::GroupUpdated { group_id, group_name, changed, look: new } => {
                    Kind::GroupUpdated(pb::GroupUpdated {
                        group_name: group_name.clone(),
                        group_id: event_group_id(group_id),
                        changed_paths: changed.iter().map(|f| f.path().to_string()).collect(),
                        look: Some(look(new.clone())),
                    })
                }
                EventKind::GroupOrderChanged { group_id, group_name, sort_mode, conversation_ids, after } => {
                    Kind::GroupOrderChanged(pb::GroupOrderChanged {
                        group_id: event_group_id(group_id),
                        group_name: group_name.clone(),
                        sort_mode: pb_sort_mode(*sort_mode) as i32,
                        conversation_ids: ids(conversation_ids),
                        after_conversation_id: after.as_ref().map(|id| id.as_str().to_string()).unwrap_or_default(),
                    })
                }
                EventKind::GroupPinsChanged { group_id, group_name, pinned } => {
                    Kind::GroupPinsChanged(pb::GroupPinsChanged {
                        group_id: event_group_id(group_id),
                        group_name: group_name.clone(),
                        pinned_conversation_ids: ids(pinned),
                    })
                }
            };
            pb::GroupEvent {
                revision: batch.revision,
                user_id: batch.user.as_str().to_string(),
                time: Some(timestamp(batch.time_ms)),
                group_names: batch.group_names.clone(),
                group_ids: batch.group_ids.iter().map(GroupId::to_string).collect(),
                kind: Some(kind),
            }
        })
        .collect();
    pb::EventBatch { revision: batch.revision, events }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protobuf event type but UNSPECIFIED has its domain type, and
    /// back.
    #[test]
    fn event_types_convert_both_ways() {
        for t in EventType::ALL {
            assert_eq!(event_type(pb_event_type(t) as i32), Some(t));
        }
        assert_eq!(event_type(pb::GroupEventType::Unspecified as i32), None);
        assert_eq!(event_type(99), None);
    }

    /// Every domain colour has its protobuf value, in the order of both
    /// enums.
    #[test]
    fn colours_convert_in_order() {
        for (i, color) in GroupColor::ALL.iter().enumerate() {
            assert_eq!(pb_color(*color) as usize, i);
        }
    }

    #[test]
    fn look_updates_check_the_mask_and_only_the_named_values() {
        let limits = Limits::default();
        let mask =
            |paths: &[&str]| Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() });
        let bad_icon = pb::GroupLook { icon: "x".repeat(100), color: 99, ..Default::default() };
        // Values outside the mask are not looked at.
        let update = look_update(mask(&["collapsed", "collapsed"]), Some(bad_icon.clone()), &limits).unwrap();
        assert_eq!(update.fields, [LookField::Collapsed]);
        assert!(matches!(
            look_update(mask(&["icon"]), Some(bad_icon.clone()), &limits),
            Err(Error::InvalidGroupIcon { .. })
        ));
        assert!(matches!(
            look_update(mask(&["color"]), Some(bad_icon), &limits),
            Err(Error::InvalidArgument { field: "look.color", .. })
        ));
        let tab = pb::GroupLook { icon: "a\tb".into(), ..Default::default() };
        assert!(matches!(look_update(mask(&["icon"]), Some(tab), &limits), Err(Error::InvalidGroupIcon { .. })));
        assert!(matches!(look_update(mask(&[]), None, &limits), Err(Error::InvalidUpdateMask { .. })));
        assert!(matches!(look_update(None, None, &limits), Err(Error::InvalidUpdateMask { .. })));
        match look_update(mask(&["icon", "name"]), None, &limits) {
            Err(Error::InvalidUpdateMask { path, .. }) => assert_eq!(path, "name"),
            other => panic!("{other:?}"),
        }
        assert_eq!(look_update(mask(&["*"]), None, &limits).unwrap().fields, LookField::ALL);
    }

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_filter() {
        let filter = ConversationFilter::default();
        let position = ListPosition { group: None, unpinned: 1, inverted_order_key: 42, id: "C2Cbob".into() };
        let token = encode_page_token(&filter, &position);
        assert_eq!(decode_page_token(&token, &filter).unwrap(), Some(position.clone()));
        // In one group's order, every kind of rank round-trips; a version 1
        // token of a group listing reads as RECENT.
        let group = ConversationFilter { group_name: Some("g".into()), ..Default::default() };
        for rank in [
            GroupRank::Pinned(3),
            GroupRank::Manual { epoch: 2, rank: 1 << 40 },
            GroupRank::Alphabetical("Zoë".into()),
            GroupRank::Recent,
        ] {
            let ranked = ListPosition { group: Some(rank), ..position.clone() };
            let token = encode_page_token(&group, &ranked);
            assert_eq!(decode_page_token(&token, &group).unwrap(), Some(ranked));
            assert!(matches!(decode_page_token(&token, &filter), Err(Error::InvalidPageToken)));
        }
        let old = encode_page_token(&group, &position);
        let recent = ListPosition { group: Some(GroupRank::Recent), ..position.clone() };
        assert_eq!(decode_page_token(&old, &group).unwrap(), Some(recent));
        let other = ConversationFilter { has_unread_count: Some(true), ..Default::default() };
        assert!(matches!(decode_page_token(&token, &other), Err(Error::InvalidPageToken)));
        for forged in ["!!", "AAAA", "x", "AQ"] {
            assert!(decode_page_token(forged, &filter).is_err(), "{forged:?}");
        }
    }

    #[test]
    fn timestamps_keep_milliseconds_including_before_1970() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            assert_eq!(time_ms(&timestamp(ms)), ms);
        }
    }
}
