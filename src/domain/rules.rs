//! The rules of groups and conversations: what each mutation checks and
//! changes, and the events it records. Stateless validation (name syntax,
//! list sizes, field limits) has already happened at the service boundary;
//! what is checked here needs the state.
//!
//! The rules see one user's state only through [`UserState`] (look a group
//! or a conversation up, change them, record an event), so they are the
//! same on every storage backend: each backend's planner implements the
//! trait over its own reads and turns the changes into one atomic write.
//! A backend may run a rule again on a fresh state (etcd, when another
//! replica changed the user first), so the rules take their inputs by
//! reference and start from them each time.
//!
//! Order of checks, the same for every mutation that looks a group up by
//! name: a name that could never be a group's is INVALID_GROUP_NAME, then a
//! stale `expected_revision` is REVISION_MISMATCH, then a name that names no
//! group is GROUP_NOT_FOUND.

use crate::config::Limits;
use crate::domain::{
    check_group_name, now_ms, AdditionReason, ConversationData, ConversationId, ConversationPatch, EventKind, GroupId,
    GroupLook, GroupRef, GroupRule, GroupView, Item, ItemCode, ItemResults, LookUpdate, Placement, RecvOpt,
    RemovalReason, SortMode,
};
use crate::error::Error;

/// One user's state as a mutation sees and changes it. Groups are named by
/// their position in display order; conversations by id. Every change is
/// kept in step with what derives from it (member counts, unread counters,
/// the listing index) by the implementation.
pub trait UserState {
    /// The revision of the user's latest change.
    fn revision(&self) -> u64;
    /// Group names in display order.
    fn group_names(&self) -> Vec<String>;
    /// The position of the group called `name`.
    fn group_index(&self, name: &str) -> Option<usize>;
    /// The position of the group with this id.
    fn group_index_by_id(&self, id: GroupId) -> Option<usize>;
    fn group(&self, index: usize) -> GroupView;
    /// Appends a new, empty group; returns its position.
    fn create_group(&mut self, name: &str, create_time_ms: i64) -> usize;
    fn remove_group(&mut self, index: usize) -> Result<(), Error>;
    fn rename_group(&mut self, index: usize, name: &str);
    fn set_group_look(&mut self, index: usize, look: &GroupLook);
    /// Puts the groups in the order of `order` (positions, each once).
    fn reorder_groups(&mut self, order: &[usize]);
    /// Pinned conversations of the user.
    fn pinned_count(&self) -> usize;
    /// The conversation's registry data and the positions of the groups
    /// holding it; None if the user has no such conversation.
    fn conversation(&mut self, id: &ConversationId) -> Result<Option<(ConversationData, Vec<usize>)>, Error>;
    fn join(&mut self, id: &ConversationId, index: usize) -> Result<(), Error>;
    fn leave(&mut self, id: &ConversationId, index: usize) -> Result<(), Error>;
    fn set_data(&mut self, id: &ConversationId, data: &ConversationData) -> Result<(), Error>;
    /// Sets (or, with None, clears) the rule of the group at `index` and
    /// settles every conversation of the user against it: matches join by
    /// rule, members by rule that no longer match leave. The implementation
    /// keeps rule memberships settled after every change of a conversation
    /// and records the joins and leaves as events with reason Rule.
    fn set_rule(&mut self, index: usize, rule: Option<GroupRule>) -> Result<(), Error>;
    /// Whether the conversation is in the group at `index` by its rule only
    /// (not added explicitly).
    fn member_by_rule(&mut self, id: &ConversationId, index: usize) -> Result<bool, Error>;
    /// Forgets the conversation: registry data and every membership.
    fn forget(&mut self, id: &ConversationId) -> Result<(), Error>;
    fn record(&mut self, event: EventKind);
    /// The members of the group at `index` as this mutation leaves them so
    /// far, in conversation id order.
    fn members(&mut self, index: usize) -> Result<Vec<ConversationId>, Error>;
    /// Sets (or, None, forgets) the receive option the group gives new
    /// members.
    fn set_new_member_recv_opt(&mut self, index: usize, opt: Option<RecvOpt>);
    /// The group's manual order: every member with its rank, by rank then
    /// id (see [`crate::domain::order`]).
    fn manual_order(&mut self, index: usize) -> Result<Vec<(ConversationId, u64)>, Error>;
    /// Gives these members of the group these ranks (`renumbered`: every
    /// member's rank changed, which starts a new order epoch).
    fn set_ranks(&mut self, index: usize, ranks: &[(ConversationId, u64)], renumbered: bool);
    fn set_sort_mode(&mut self, index: usize, mode: SortMode);
    /// Replaces the group's pins (members of it, in listing order).
    fn set_group_pins(&mut self, index: usize, pinned: Vec<ConversationId>);
}

/// Fails with REVISION_MISMATCH unless `expected` is unset or equals the
/// user's current revision.
fn check_revision(state: &impl UserState, expected: Option<u64>) -> Result<(), Error> {
    match expected {
        Some(expected) if expected != state.revision() => {
            Err(Error::RevisionMismatch { expected, current: state.revision() })
        }
        _ => Ok(()),
    }
}

/// Where a request names a group: the request's field for a name and the
/// one for an id, for errors.
#[derive(Debug, Clone, Copy)]
pub struct GroupFields {
    pub name: &'static str,
    pub id: &'static str,
}

impl GroupFields {
    /// `group_name` / `group_id`, the fields of most requests.
    pub const GROUP: GroupFields = GroupFields { name: "group_name", id: "group_id" };
}

/// Finds a group by name or id after checking `expected_revision` (see the
/// module docs for the order). A name over today's length limit that names
/// an existing group (the limit was lowered) is still found.
pub fn find_group(
    state: &impl UserState,
    limits: &Limits,
    fields: GroupFields,
    group: &GroupRef,
    expected_revision: Option<u64>,
) -> Result<usize, Error> {
    match group {
        GroupRef::Name(name) => {
            let index = state.group_index(name);
            if index.is_none() {
                if let Err(message) = check_group_name(name, limits.max_group_name_bytes) {
                    return Err(Error::InvalidGroupName {
                        field: fields.name,
                        message,
                        limit: limits.max_group_name_bytes,
                    });
                }
            }
            check_revision(state, expected_revision)?;
            index.ok_or_else(|| Error::GroupNotFound { field: fields.name, name: name.to_string() })
        }
        GroupRef::Id(id) => {
            check_revision(state, expected_revision)?;
            state.group_index_by_id(*id).ok_or(Error::GroupIdNotFound { field: fields.id, id: *id })
        }
    }
}

/// Whether the conversation is in the group at `index` (explicitly or by
/// its rule).
fn in_group(state: &mut impl UserState, id: &ConversationId, index: usize) -> Result<bool, Error> {
    Ok(state.conversation(id)?.is_some_and(|(_, groups)| groups.contains(&index)))
}

/// Adds items to the group at `index`, failing items one by one.
fn add_members(
    state: &mut impl UserState,
    limits: &Limits,
    index: usize,
    items: &[Item<()>],
    result: &mut ItemResults,
    changed: &mut Vec<ConversationId>,
) -> Result<(), Error> {
    for item in items {
        let already = in_group(state, &item.id, index)?;
        let group = state.group(index);
        if already {
            result.fail_item(
                item,
                ItemCode::AlreadyInGroup,
                format!("{} is already in group {:?}", item.id, group.name),
            );
        } else if group.conversation_count as usize >= limits.max_conversations_per_group {
            let message = format!(
                "group {:?} already holds {} conversations, the most allowed (max_conversations_per_group)",
                group.name, limits.max_conversations_per_group
            );
            result.fail_item(item, ItemCode::GroupFull, message);
        } else {
            state.join(&item.id, index)?;
            result.succeed(item.id.clone());
            give_new_member_opt(state, index, &item.id, changed)?;
        }
    }
    Ok(())
}

/// Sets a conversation's receive option as an upsert of `recv_opt` would
/// (a conversation never registered becomes registered); returns whether
/// its data changed.
fn set_recv_opt(state: &mut impl UserState, id: &ConversationId, opt: RecvOpt) -> Result<bool, Error> {
    let mut data = state.conversation(id)?.map(|(data, _)| data).unwrap_or_default();
    if !data.apply(&ConversationPatch { recv_opt: Some(opt), ..Default::default() }) {
        return Ok(false);
    }
    data.update_time_ms = Some(now_ms());
    state.set_data(id, &data)?;
    Ok(true)
}

/// Gives a conversation that just joined the group at `index` the group's
/// new-member receive option, if it has one; notes it in `changed` when
/// its data changed, for the one ConversationsChanged of the mutation.
fn give_new_member_opt(
    state: &mut impl UserState,
    index: usize,
    id: &ConversationId,
    changed: &mut Vec<ConversationId>,
) -> Result<(), Error> {
    if let Some(opt) = state.group(index).new_member_recv_opt {
        if set_recv_opt(state, id, opt)? && !changed.contains(id) {
            changed.push(id.clone());
        }
    }
    Ok(())
}

/// Records the ConversationsChanged of conversations given a group's
/// new-member option, if any.
fn record_changed(state: &mut impl UserState, changed: Vec<ConversationId>) {
    if !changed.is_empty() {
        state.record(EventKind::ConversationsChanged { conversation_ids: changed });
    }
}

/// Creates a group with explicit members and, for a smart group, a rule:
/// the explicit members are added first, then the rule's matches join (in
/// the same revision, as ConversationsAddedToGroup with reason Rule).
#[allow(clippy::too_many_arguments)]
pub fn create_group(
    state: &mut impl UserState,
    limits: &Limits,
    name: &str,
    items: &[Item<()>],
    sort_mode: SortMode,
    rule: Option<&GroupRule>,
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<(GroupView, ItemResults), Error> {
    check_revision(state, expected_revision)?;
    if state.group_index(name).is_some() {
        return Err(Error::GroupAlreadyExists { field: "group_name", name: name.to_string() });
    }
    if state.group_names().len() >= limits.max_groups {
        return Err(Error::GroupLimitExceeded { limit: limits.max_groups });
    }
    let index = state.create_group(name, now_ms());
    // A new group gives new members no option: nothing changes here.
    add_members(state, limits, index, items, &mut result, &mut Vec::new())?;
    state.record(EventKind::GroupCreated {
        group_id: Some(state.group(index).id),
        group_name: name.to_string(),
        conversation_ids: result.succeeded().to_vec(),
    });
    // A watcher learns a mode other than the default as it learns every
    // mode change: GroupOrderChanged, after GroupCreated, in the same
    // revision.
    apply_sort_mode(state, index, sort_mode);
    if let Some(rule) = rule {
        state.record(EventKind::GroupRuleChanged {
            group_id: Some(state.group(index).id),
            group_name: name.to_string(),
            rule: Some(rule.clone()),
        });
        state.set_rule(index, Some(rule.clone()))?;
    }
    Ok((state.group(index), result))
}

/// Sets, changes or (None) clears a group's rule. Members by rule that no
/// longer match leave and new matches join, in the same revision; explicit
/// members stay. Setting the rule a group already has changes nothing.
pub fn set_group_rule(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    rule: Option<&GroupRule>,
    expected_revision: Option<u64>,
) -> Result<GroupView, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let view = state.group(index);
    if view.rule.as_ref() == rule {
        return Ok(view);
    }
    state.record(EventKind::GroupRuleChanged { group_id: Some(view.id), group_name: view.name, rule: rule.cloned() });
    state.set_rule(index, rule.cloned())?;
    Ok(state.group(index))
}

pub fn delete_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    expected_revision: Option<u64>,
) -> Result<(), Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let GroupView { id, name, .. } = state.group(index);
    state.remove_group(index)?;
    state.record(EventKind::GroupDeleted { group_id: Some(id), group_name: name });
    Ok(())
}

pub fn rename_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    new_name: &str,
    expected_revision: Option<u64>,
) -> Result<GroupView, Error> {
    let fields = GroupFields { name: "old_name", id: "group_id" };
    let index = find_group(state, limits, fields, group, expected_revision)?;
    let GroupView { id, name: old_name, .. } = state.group(index);
    if old_name != new_name {
        if state.group_index(new_name).is_some() {
            return Err(Error::GroupAlreadyExists { field: "new_name", name: new_name.to_string() });
        }
        state.rename_group(index, new_name);
        state.record(EventKind::GroupRenamed { group_id: Some(id), old_name, new_name: new_name.to_string() });
    }
    Ok(state.group(index))
}

/// Writes the fields of `update` on the group's look; records GroupUpdated
/// with the fields that changed, or nothing when none did (the revision is
/// then kept, as for a rename to the same name). The values were checked at
/// the boundary.
pub fn update_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    update: &LookUpdate,
    expected_revision: Option<u64>,
) -> Result<GroupView, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let GroupView { id, name, mut look, .. } = state.group(index);
    let changed = look.apply(&update.fields, &update.values);
    if !changed.is_empty() {
        state.set_group_look(index, &look);
        state.record(EventKind::GroupUpdated { group_id: Some(id), group_name: name, changed, look });
    }
    Ok(state.group(index))
}

/// Sets the display order from `groups` (all names, or all ids: `field`
/// is the request's field, for errors); returns the groups in it.
pub fn reorder_groups(
    state: &mut impl UserState,
    field: &'static str,
    groups: &[GroupRef],
    expected_revision: Option<u64>,
) -> Result<Vec<GroupView>, Error> {
    check_revision(state, expected_revision)?;
    let current = state.group_names();
    let mismatch = |message: String| Error::GroupOrderMismatch { field, message };
    if groups.len() != current.len() {
        return Err(mismatch(format!(
            "names {} groups, but the user has {}; list every group exactly once",
            groups.len(),
            current.len()
        )));
    }
    let mut order = Vec::with_capacity(groups.len());
    for group in groups {
        let index = match group {
            GroupRef::Name(name) => state.group_index(name),
            GroupRef::Id(id) => state.group_index_by_id(*id),
        };
        let Some(index) = index else {
            return Err(mismatch(format!("{group} is not one of the user's groups")));
        };
        if order.contains(&index) {
            return Err(mismatch(format!("{group} appears more than once")));
        }
        order.push(index);
    }
    let names: Vec<String> = order.iter().map(|&index| current[index].clone()).collect();
    if names != current {
        state.reorder_groups(&order);
        state.record(EventKind::GroupsReordered { group_names: names });
    }
    Ok((0..current.len()).map(|index| state.group(index)).collect())
}

pub fn add_to_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    items: &[Item<()>],
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<ItemResults, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let mut changed = Vec::new();
    add_members(state, limits, index, items, &mut result, &mut changed)?;
    if !result.succeeded().is_empty() {
        let GroupView { id, name, .. } = state.group(index);
        state.record(EventKind::ConversationsAddedToGroup {
            group_id: Some(id),
            group_name: name,
            conversation_ids: result.succeeded().to_vec(),
            reason: AdditionReason::UserRequest,
        });
    }
    record_changed(state, changed);
    Ok(result)
}

pub fn remove_from_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    items: &[Item<()>],
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<ItemResults, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let GroupView { id, name, .. } = state.group(index);
    for item in items {
        if !in_group(state, &item.id, index)? {
            result.fail_item(item, ItemCode::NotInGroup, format!("{} is not in group {name:?}", item.id));
        } else if state.member_by_rule(&item.id, index)? {
            let message = format!(
                "{} is in group {name:?} by the group's rule only; change the rule (e.g. its exclude_ids) to take it out",
                item.id
            );
            result.fail_item(item, ItemCode::InGroupByRule, message);
        } else {
            state.leave(&item.id, index)?;
            result.succeed(item.id.clone());
        }
    }
    if !result.succeeded().is_empty() {
        state.record(EventKind::ConversationsDeletedFromGroup {
            group_id: Some(id),
            group_name: name,
            conversation_ids: result.succeeded().to_vec(),
            reason: RemovalReason::UserRequest,
        });
    }
    Ok(result)
}

pub fn upsert_conversations(
    state: &mut impl UserState,
    limits: &Limits,
    items: &[Item<ConversationPatch>],
    mut result: ItemResults,
) -> Result<ItemResults, Error> {
    let now = now_ms();
    let mut changed = Vec::new();
    for item in items {
        let before = state.conversation(&item.id)?.map(|(data, _)| data).unwrap_or_default();
        let mut data = before.clone();
        if !data.apply(&item.value) {
            result.succeed(item.id.clone());
            continue;
        }
        if data.mark_list.len() > limits.max_marks && data.mark_list.len() > before.mark_list.len() {
            let message = format!(
                "add_marks: the marks would number {}, more than the {} allowed (max_marks)",
                data.mark_list.len(),
                limits.max_marks
            );
            result.fail_item(item, ItemCode::InvalidField, message);
            continue;
        }
        if data.is_pinned && !before.is_pinned && state.pinned_count() >= limits.max_pinned {
            let message = format!(
                "is_pinned: the user already has {} pinned conversations, the most allowed (max_pinned)",
                limits.max_pinned
            );
            result.fail_item(item, ItemCode::PinLimitExceeded, message);
            continue;
        }
        data.update_time_ms = Some(now);
        state.set_data(&item.id, &data)?;
        result.succeed(item.id.clone());
        changed.push(item.id.clone());
    }
    if !changed.is_empty() {
        state.record(EventKind::ConversationsChanged { conversation_ids: changed });
    }
    Ok(result)
}

pub fn delete_conversations(
    state: &mut impl UserState,
    items: &[Item<()>],
    mut result: ItemResults,
) -> Result<ItemResults, Error> {
    // Removals per group, in display order for the events.
    let mut removed: Vec<Vec<ConversationId>> = vec![Vec::new(); state.group_names().len()];
    for item in items {
        let Some((_, groups)) = state.conversation(&item.id)? else {
            let message = format!("{}: the user has no such conversation", item.id);
            result.fail_item(item, ItemCode::ConversationNotFound, message);
            continue;
        };
        for index in groups {
            removed[index].push(item.id.clone());
        }
        state.forget(&item.id)?;
        result.succeed(item.id.clone());
    }
    for (index, ids) in removed.into_iter().enumerate() {
        if !ids.is_empty() {
            let GroupView { id, name, .. } = state.group(index);
            state.record(EventKind::ConversationsDeletedFromGroup {
                group_id: Some(id),
                group_name: name,
                conversation_ids: ids,
                reason: RemovalReason::ConversationDeleted,
            });
        }
    }
    if !result.succeeded().is_empty() {
        state.record(EventKind::ConversationsDeleted { conversation_ids: result.succeeded().to_vec() });
    }
    Ok(result)
}

/// MarkConversationGroupRead: every member's unread count to 0. Returns the
/// members that had unread messages (the ones changed), in id order.
pub fn mark_group_read(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    expected_revision: Option<u64>,
) -> Result<Vec<ConversationId>, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let now = now_ms();
    let mut changed = Vec::new();
    for id in state.members(index)? {
        let Some((mut data, _)) = state.conversation(&id)? else { continue };
        // A member never registered has nothing unread: it stays as it is.
        if data.unread_count == 0 {
            continue;
        }
        data.unread_count = 0;
        data.update_time_ms = Some(now);
        state.set_data(&id, &data)?;
        changed.push(id);
    }
    record_changed(state, changed.clone());
    Ok(changed)
}

/// SetConversationGroupMute: every member's receive option, and the option
/// the group remembers for new members (`apply_to_new_members`; false
/// forgets it). Returns the members whose option changed and the group.
pub fn set_group_mute(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    recv_opt: RecvOpt,
    apply_to_new_members: bool,
    expected_revision: Option<u64>,
) -> Result<(Vec<ConversationId>, GroupView), Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let mut changed = Vec::new();
    for id in state.members(index)? {
        if set_recv_opt(state, &id, recv_opt)? {
            changed.push(id);
        }
    }
    let remembered = apply_to_new_members.then_some(recv_opt);
    let GroupView { id, name, new_member_recv_opt, .. } = state.group(index);
    if new_member_recv_opt != remembered {
        state.set_new_member_recv_opt(index, remembered);
        state.record(EventKind::GroupMuteChanged {
            group_id: Some(id),
            group_name: name,
            new_member_recv_opt: remembered,
        });
    }
    record_changed(state, changed.clone());
    Ok((changed, state.group(index)))
}

/// What MoveConversations did in one target group.
#[derive(Debug, Clone)]
pub struct MoveTarget {
    /// The group after the move.
    pub group: GroupView,
    /// Succeeded: the conversations that joined it; failed: ALREADY_IN_GROUP,
    /// GROUP_FULL, MOVE_NOT_APPLIED.
    pub result: ItemResults,
}

/// What MoveConversations did.
#[derive(Debug, Clone)]
pub struct Moved {
    pub targets: Vec<MoveTarget>,
    /// Succeeded: the conversations that left `from` (a move); failed: the
    /// items applied nowhere.
    pub result: ItemResults,
}

/// The GROUP_FULL message for the group at `index`, if it is full.
fn group_full(state: &impl UserState, limits: &Limits, index: usize) -> Option<String> {
    let group = state.group(index);
    (group.conversation_count as usize >= limits.max_conversations_per_group).then(|| {
        format!(
            "group {:?} already holds {} conversations, the most allowed (max_conversations_per_group)",
            group.name, limits.max_conversations_per_group
        )
    })
}

/// Where MoveConversations names its groups, for errors.
const FROM_FIELDS: GroupFields = GroupFields { name: "from_group_name", id: "from_group_id" };
const TO_FIELDS: GroupFields = GroupFields { name: "to.group_name", id: "to.group_id" };

/// MoveConversations: moves `items` from `from` into every group of `to`,
/// each conversation whole or not at all; without `from`, adds each to
/// every target it fits in (see the proto for the per-item rules).
pub fn move_conversations(
    state: &mut impl UserState,
    limits: &Limits,
    from: Option<&GroupRef>,
    to: &[GroupRef],
    items: &[Item<()>],
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<Moved, Error> {
    // The module's order of checks over every group the request names:
    // names that could never be a group's, then the revision, then
    // existence.
    let refs = from.map(|r| (FROM_FIELDS, r)).into_iter().chain(to.iter().map(|r| (TO_FIELDS, r)));
    for (fields, group) in refs.clone() {
        if let GroupRef::Name(name) = group {
            if state.group_index(name).is_none() {
                if let Err(message) = check_group_name(name, limits.max_group_name_bytes) {
                    let limit = limits.max_group_name_bytes;
                    return Err(Error::InvalidGroupName { field: fields.name, message, limit });
                }
            }
        }
    }
    check_revision(state, expected_revision)?;
    let from_index = from.map(|group| find_group(state, limits, FROM_FIELDS, group, None)).transpose()?;
    let mut targets: Vec<usize> = Vec::with_capacity(to.len());
    for (position, group) in to.iter().enumerate() {
        let index = find_group(state, limits, TO_FIELDS, group, None)?;
        let name = state.group(index).name;
        if Some(index) == from_index {
            let message = format!("to[{position}] names the from group {name:?}; a move needs another group");
            return Err(Error::InvalidArgument { field: "to", message });
        }
        if targets.contains(&index) {
            let message = format!("to[{position}] names group {name:?} a second time");
            return Err(Error::InvalidArgument { field: "to", message });
        }
        targets.push(index);
    }
    let mut per_target = vec![ItemResults::default(); targets.len()];
    let mut changed = Vec::new();
    for item in items {
        let groups = state.conversation(&item.id)?.map(|(_, groups)| groups).unwrap_or_default();
        if let Some(from_index) = from_index {
            if !groups.contains(&from_index) {
                let name = state.group(from_index).name;
                result.fail_item(item, ItemCode::NotInGroup, format!("{} is not in group {name:?}", item.id));
                continue;
            }
            // A move takes a conversation out of `from`, which a member by
            // a smart group's rule only cannot leave (as in
            // DeleteConversationsFromGroup).
            if state.member_by_rule(&item.id, from_index)? {
                let name = state.group(from_index).name;
                let message = format!(
                    "{} is in group {name:?} by the group's rule only; change the rule (e.g. its exclude_ids) to \
                     take it out",
                    item.id
                );
                result.fail_item(item, ItemCode::InGroupByRule, message);
                continue;
            }
        }
        // A move is all or nothing: a full target keeps the conversation
        // where it is, and out of every other target too.
        if from_index.is_some() {
            let blocked = targets
                .iter()
                .find_map(|&index| (!groups.contains(&index)).then(|| group_full(state, limits, index)).flatten());
            if let Some(message) = blocked {
                for (slot, &index) in targets.iter().enumerate() {
                    let name = state.group(index).name;
                    let (code, text) = if groups.contains(&index) {
                        (ItemCode::AlreadyInGroup, format!("{} is already in group {name:?}", item.id))
                    } else if let Some(message) = group_full(state, limits, index) {
                        (ItemCode::GroupFull, message)
                    } else {
                        let text = format!("{} was not moved: another target is full ({message})", item.id);
                        (ItemCode::MoveNotApplied, text)
                    };
                    per_target[slot].fail_item(item, code, text);
                }
                result.fail_item(item, ItemCode::GroupFull, format!("{} was not moved: {message}", item.id));
                continue;
            }
        }
        for (slot, &index) in targets.iter().enumerate() {
            // Asked again for each target: joining an earlier one may have
            // made it a member of this one by a smart group's rule.
            let member = in_group(state, &item.id, index)?;
            if member {
                let name = state.group(index).name;
                per_target[slot].fail_item(
                    item,
                    ItemCode::AlreadyInGroup,
                    format!("{} is already in group {name:?}", item.id),
                );
            } else if let Some(message) = group_full(state, limits, index) {
                per_target[slot].fail_item(item, ItemCode::GroupFull, message);
            } else {
                state.join(&item.id, index)?;
                per_target[slot].succeed(item.id.clone());
                give_new_member_opt(state, index, &item.id, &mut changed)?;
            }
        }
        if let Some(from_index) = from_index {
            state.leave(&item.id, from_index)?;
            result.succeed(item.id.clone());
        }
    }
    if let Some(from_index) = from_index {
        if !result.succeeded().is_empty() {
            let GroupView { id, name, .. } = state.group(from_index);
            state.record(EventKind::ConversationsDeletedFromGroup {
                group_id: Some(id),
                group_name: name,
                conversation_ids: result.succeeded().to_vec(),
                reason: RemovalReason::Moved,
            });
        }
    }
    for (slot, &index) in targets.iter().enumerate() {
        if !per_target[slot].succeeded().is_empty() {
            let GroupView { id, name, .. } = state.group(index);
            state.record(EventKind::ConversationsAddedToGroup {
                group_id: Some(id),
                group_name: name,
                conversation_ids: per_target[slot].succeeded().to_vec(),
                reason: AdditionReason::UserRequest,
            });
        }
    }
    record_changed(state, changed);
    let targets = targets
        .iter()
        .zip(per_target)
        .map(|(&index, result)| MoveTarget { group: state.group(index), result })
        .collect();
    Ok(Moved { targets, result })
}

/// Sets a group's sort mode (SetConversationGroupSortMode, and the general
/// group update's `sort_mode` path). The same mode again changes nothing.
pub fn set_sort_mode(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    mode: SortMode,
    expected_revision: Option<u64>,
) -> Result<GroupView, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    apply_sort_mode(state, index, mode);
    Ok(state.group(index))
}

/// Gives the group at `index` (found by the caller) the sort mode `mode`,
/// with its GroupOrderChanged event; returns whether it changed. The part
/// of [`set_sort_mode`] that a mutation changing several fields of a group
/// at once (a field-mask update) calls after finding the group itself.
pub fn apply_sort_mode(state: &mut impl UserState, index: usize, mode: SortMode) -> bool {
    let GroupView { id, name, sort_mode, .. } = state.group(index);
    if sort_mode == mode {
        return false;
    }
    state.set_sort_mode(index, mode);
    state.record(EventKind::GroupOrderChanged {
        group_id: Some(id),
        group_name: name,
        sort_mode: mode,
        conversation_ids: Vec::new(),
        after: None,
    });
    true
}

/// The request field an anchor came from, for errors.
fn placement_field(placement: &Placement) -> &'static str {
    match placement {
        Placement::Before(_) => "before_conversation_id",
        Placement::After(_) => "after_conversation_id",
        Placement::Start => "to_start",
        Placement::End => "to_end",
    }
}

/// Moves members of a MANUAL group to one place of its order
/// (MoveConversationsInGroup). Items that are no members fail one by one;
/// an anchor that is no member, or is moved itself, fails the request.
pub fn move_in_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    items: &[Item<()>],
    placement: &Placement,
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<ItemResults, Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let GroupView { id, name, sort_mode, .. } = state.group(index);
    if sort_mode != SortMode::Manual {
        return Err(Error::SortModeNotManual { name, mode: sort_mode.name() });
    }
    let order = state.manual_order(index)?;
    let field = placement_field(placement);
    if let Placement::Before(anchor) | Placement::After(anchor) = placement {
        if !order.iter().any(|(member, _)| member == anchor) {
            return Err(Error::InvalidPlacement {
                field,
                message: format!("{anchor} is not in group {name:?}: the anchor must be a member"),
            });
        }
        if items.iter().any(|item| item.id == *anchor) {
            return Err(Error::InvalidPlacement {
                field,
                message: format!("{anchor} is one of the conversations moved: it cannot be their anchor too"),
            });
        }
    }
    let mut moving = Vec::with_capacity(items.len());
    for item in items {
        if order.iter().any(|(member, _)| *member == item.id) {
            moving.push(item.id.clone());
            result.succeed(item.id.clone());
        } else {
            result.fail_item(item, ItemCode::NotInGroup, format!("{} is not in group {name:?}", item.id));
        }
    }
    if moving.is_empty() {
        return Ok(result);
    }
    let ranks = crate::domain::order::move_ranks(&order, &moving, placement).map_err(|_| {
        Error::Internal(format!("move in group {name:?}: the anchor vanished between two reads of one state"))
    })?;
    let mut after: Vec<(ConversationId, u64)> = order
        .iter()
        .map(|(member, rank)| {
            let rank = ranks.changes.iter().find(|(changed, _)| changed == member).map_or(*rank, |(_, rank)| *rank);
            (member.clone(), rank)
        })
        .collect();
    after.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    // A move that leaves the order as it was changes nothing: no write, no
    // event, the revision is kept.
    if after.iter().map(|(member, _)| member).eq(order.iter().map(|(member, _)| member)) {
        return Ok(result);
    }
    state.set_ranks(index, &ranks.changes, ranks.renumbered);
    let first = after.iter().position(|(member, _)| *member == moving[0]).expect("moved members stay members");
    state.record(EventKind::GroupOrderChanged {
        group_id: Some(id),
        group_name: name,
        sort_mode,
        conversation_ids: moving,
        after: first.checked_sub(1).map(|before| after[before].0.clone()),
    });
    Ok(result)
}

/// Pins members of a group in it (PinConversationsInGroup): to the front of
/// its pins, in request order; an id already pinned moves there too.
/// Returns the pins after.
pub fn pin_in_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    items: &[Item<()>],
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<(ItemResults, Vec<ConversationId>), Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let GroupView { id, name, pinned, .. } = state.group(index);
    let mut front: Vec<ConversationId> = Vec::new();
    let mut count = pinned.len();
    for item in items {
        if !in_group(state, &item.id, index)? {
            result.fail_item(item, ItemCode::NotInGroup, format!("{} is not in group {name:?}", item.id));
        } else if !pinned.contains(&item.id) && count >= limits.max_pinned_per_group {
            let message = format!(
                "group {name:?} already has {} pinned conversations, the most allowed (max_pinned_per_group)",
                limits.max_pinned_per_group
            );
            result.fail_item(item, ItemCode::GroupPinLimitExceeded, message);
        } else {
            if !pinned.contains(&item.id) {
                count += 1;
            }
            front.push(item.id.clone());
            result.succeed(item.id.clone());
        }
    }
    let mut after = front.clone();
    after.extend(pinned.iter().filter(|pin| !front.contains(pin)).cloned());
    store_pins(state, index, (id, name), &pinned, &after);
    Ok((result, after))
}

/// Stores a group's pins and records GroupPinsChanged, if they changed.
fn store_pins(
    state: &mut impl UserState,
    index: usize,
    (id, name): (GroupId, String),
    before: &[ConversationId],
    after: &[ConversationId],
) {
    if after != before {
        state.set_group_pins(index, after.to_vec());
        state.record(EventKind::GroupPinsChanged { group_id: Some(id), group_name: name, pinned: after.to_vec() });
    }
}

/// Unpins conversations in a group (UnpinConversationsInGroup); returns the
/// pins after.
pub fn unpin_in_group(
    state: &mut impl UserState,
    limits: &Limits,
    group: &GroupRef,
    items: &[Item<()>],
    mut result: ItemResults,
    expected_revision: Option<u64>,
) -> Result<(ItemResults, Vec<ConversationId>), Error> {
    let index = find_group(state, limits, GroupFields::GROUP, group, expected_revision)?;
    let GroupView { id, name, pinned: before, .. } = state.group(index);
    let mut pinned = before.clone();
    for item in items {
        if pinned.contains(&item.id) {
            pinned.retain(|pin| *pin != item.id);
            result.succeed(item.id.clone());
        } else if in_group(state, &item.id, index)? {
            result.fail_item(item, ItemCode::NotPinnedInGroup, format!("{} is not pinned in group {name:?}", item.id));
        } else {
            result.fail_item(item, ItemCode::NotInGroup, format!("{} is not in group {name:?}", item.id));
        }
    }
    store_pins(state, index, (id, name), &before, &pinned);
    Ok((result, pinned))
}
