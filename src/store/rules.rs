//! Mutations: the rules of groups and conversations, applied to a [`Plan`]
//! and shared by every backend. Stateless validation (name syntax, list
//! sizes, field limits) has already happened at the service boundary; what
//! is checked here needs the state.
//!
//! Each rule is a function that returns the mutation as a [`Rule`]: the
//! backend runs it against the current state, and may run it again on a
//! fresh state when another writer got there first (etcd's optimistic
//! transactions), so a rule is `Fn`, not `FnOnce`, and starts from its
//! inputs each time.
//!
//! Order of checks, the same for every mutation that looks a group up by
//! name: a name that could never be a group's is INVALID_GROUP_NAME, then a
//! stale `expected_revision` is REVISION_MISMATCH, then a name that names no
//! group is GROUP_NOT_FOUND.

use super::codec::{ConversationRecord, GroupRecord};
use super::plan::Plan;
use crate::config::Limits;
use crate::domain::{
    check_group_name, now_ms, BatchOutcome, BatchResult, ConversationPatch, EventKind, GroupView, Item, ItemCode,
    RemovalReason,
};
use crate::error::Error;

/// Answer of CreateConversationGroup.
#[derive(Debug, Clone)]
pub struct CreatedGroup {
    pub group: GroupView,
    pub outcome: BatchOutcome,
}

pub(super) fn group_view(group: &GroupRecord) -> GroupView {
    GroupView {
        name: group.name.clone(),
        conversation_count: group.conversation_count,
        unread_count: group.unread_count,
        create_time_ms: group.create_time_ms,
    }
}

/// A mutation as a backend runs it: plans against the state, returns the
/// answer.
pub trait Rule<R>: Fn(&mut Plan<'_>, &Limits) -> Result<R, Error> + Send + Sync + 'static {}
impl<R, F: Fn(&mut Plan<'_>, &Limits) -> Result<R, Error> + Send + Sync + 'static> Rule<R> for F {}

/// Finds a group by name after checking `expected_revision` (see the module
/// docs for the order). A name that names no group is reported as invalid if
/// it could never be a group name (so the client learns the rule), else as
/// not found. A name over today's length limit that names an existing group
/// (the limit was lowered) is still found.
fn find_group(
    plan: &Plan<'_>,
    limits: &Limits,
    field: &'static str,
    name: &str,
    expected_revision: Option<u64>,
) -> Result<usize, Error> {
    let index = plan.user.group_index(name);
    if index.is_none() {
        if let Err(message) = check_group_name(name, limits.max_group_name_bytes) {
            return Err(Error::InvalidGroupName { field, message, limit: limits.max_group_name_bytes });
        }
    }
    plan.check_revision(expected_revision)?;
    index.ok_or_else(|| Error::GroupNotFound { field, name: name.to_string() })
}

/// Adds items to the group at `index`, failing items one by one.
fn add_members(
    plan: &mut Plan<'_>,
    limits: &Limits,
    index: usize,
    items: &[Item<()>],
    result: &mut BatchResult,
) -> Result<(), Error> {
    let group_id = plan.user.groups[index].id;
    for item in items {
        let already = plan.conv(&item.id)?.is_some_and(|r| r.group_ids.contains(&group_id));
        if already {
            let message = format!("{} is already in group {:?}", item.id, plan.user.groups[index].name);
            result.fail_item(item, ItemCode::AlreadyInGroup, message);
        } else if plan.user.groups[index].conversation_count as usize >= limits.max_conversations_per_group {
            let message = format!(
                "group {:?} already holds {} conversations, the most allowed (max_conversations_per_group)",
                plan.user.groups[index].name, limits.max_conversations_per_group
            );
            result.fail_item(item, ItemCode::GroupFull, message);
        } else {
            plan.modify_conv(&item.id, |r| r.group_ids.push(group_id))?;
            result.succeed(item.id.clone());
        }
    }
    Ok(())
}

pub fn create_group(
    name: String,
    items: Vec<Item<()>>,
    result: BatchResult,
    expected_revision: Option<u64>,
) -> impl Rule<(GroupView, BatchResult)> {
    move |plan, limits| {
        let mut result = result.clone();
        plan.check_revision(expected_revision)?;
        if plan.user.group_index(&name).is_some() {
            return Err(Error::GroupAlreadyExists { field: "group_name", name: name.clone() });
        }
        if plan.user.groups.len() >= limits.max_groups {
            return Err(Error::GroupLimitExceeded { limit: limits.max_groups });
        }
        let id = plan.user.next_group_id;
        plan.user.next_group_id += 1;
        plan.user.groups.push(GroupRecord { id, name: name.clone(), create_time_ms: now_ms(), ..Default::default() });
        let index = plan.user.groups.len() - 1;
        add_members(plan, limits, index, &items, &mut result)?;
        plan.events
            .push(EventKind::GroupCreated { group_name: name.clone(), conversation_ids: result.succeeded().to_vec() });
        Ok((group_view(&plan.user.groups[index]), result))
    }
}

pub fn delete_group(name: String, expected_revision: Option<u64>) -> impl Rule<()> {
    move |plan, limits| {
        let index = find_group(plan, limits, "group_name", &name, expected_revision)?;
        let group_id = plan.user.groups[index].id;
        for id in plan.stored_members(group_id)? {
            plan.modify_conv(&id, |r| r.group_ids.retain(|g| *g != group_id))?;
        }
        plan.user.groups.remove(index);
        plan.events.push(EventKind::GroupDeleted { group_name: name.clone() });
        Ok(())
    }
}

pub fn rename_group(old_name: String, new_name: String, expected_revision: Option<u64>) -> impl Rule<GroupView> {
    move |plan, limits| {
        let index = find_group(plan, limits, "old_name", &old_name, expected_revision)?;
        if old_name != new_name {
            if plan.user.group_index(&new_name).is_some() {
                return Err(Error::GroupAlreadyExists { field: "new_name", name: new_name.clone() });
            }
            plan.user.groups[index].name = new_name.clone();
            plan.events.push(EventKind::GroupRenamed { old_name: old_name.clone(), new_name: new_name.clone() });
        }
        Ok(group_view(&plan.user.groups[index]))
    }
}

pub fn reorder_groups(names: Vec<String>, expected_revision: Option<u64>) -> impl Rule<Vec<String>> {
    move |plan, _| {
        plan.check_revision(expected_revision)?;
        let current = plan.user.group_names();
        if names.len() != current.len() {
            return Err(Error::GroupOrderMismatch {
                message: format!(
                    "names {} groups, but the user has {}; list every group exactly once",
                    names.len(),
                    current.len()
                ),
            });
        }
        let mut reordered = Vec::with_capacity(names.len());
        for name in &names {
            let Some(index) = plan.user.group_index(name) else {
                return Err(Error::GroupOrderMismatch { message: format!("{name:?} is not one of the user's groups") });
            };
            if reordered.iter().any(|g: &GroupRecord| g.name == *name) {
                return Err(Error::GroupOrderMismatch { message: format!("{name:?} appears more than once") });
            }
            reordered.push(plan.user.groups[index].clone());
        }
        if names != current {
            plan.user.groups = reordered;
            plan.events.push(EventKind::GroupsReordered { group_names: names.clone() });
        }
        Ok(names.clone())
    }
}

pub fn add_to_group(
    name: String,
    items: Vec<Item<()>>,
    result: BatchResult,
    expected_revision: Option<u64>,
) -> impl Rule<BatchResult> {
    move |plan, limits| {
        let mut result = result.clone();
        let index = find_group(plan, limits, "group_name", &name, expected_revision)?;
        add_members(plan, limits, index, &items, &mut result)?;
        if !result.succeeded().is_empty() {
            plan.events.push(EventKind::ConversationsAddedToGroup {
                group_name: name.clone(),
                conversation_ids: result.succeeded().to_vec(),
            });
        }
        Ok(result)
    }
}

pub fn remove_from_group(
    name: String,
    items: Vec<Item<()>>,
    result: BatchResult,
    expected_revision: Option<u64>,
) -> impl Rule<BatchResult> {
    move |plan, limits| {
        let mut result = result.clone();
        let index = find_group(plan, limits, "group_name", &name, expected_revision)?;
        let group_id = plan.user.groups[index].id;
        for item in &items {
            if plan.conv(&item.id)?.is_some_and(|r| r.group_ids.contains(&group_id)) {
                plan.modify_conv(&item.id, |r| r.group_ids.retain(|g| *g != group_id))?;
                result.succeed(item.id.clone());
            } else {
                let message = format!("{} is not in group {name:?}", item.id);
                result.fail_item(item, ItemCode::NotInGroup, message);
            }
        }
        if !result.succeeded().is_empty() {
            plan.events.push(EventKind::ConversationsDeletedFromGroup {
                group_name: name.clone(),
                conversation_ids: result.succeeded().to_vec(),
                reason: RemovalReason::UserRequest,
            });
        }
        Ok(result)
    }
}

pub fn upsert_conversations(items: Vec<Item<ConversationPatch>>, result: BatchResult) -> impl Rule<BatchResult> {
    move |plan, limits| {
        let mut result = result.clone();
        let now = now_ms();
        let mut changed = Vec::new();
        for item in &items {
            let before = plan.conv(&item.id)?.cloned().unwrap_or_default();
            let mut data = before.data();
            if !data.apply(&item.value) {
                result.succeed(item.id.clone());
                continue;
            }
            if data.is_pinned && !before.is_pinned && plan.user.pinned_count as usize >= limits.max_pinned {
                let message = format!(
                    "is_pinned: the user already has {} pinned conversations, the most allowed (max_pinned)",
                    limits.max_pinned
                );
                result.fail_item(item, ItemCode::PinLimitExceeded, message);
                continue;
            }
            data.update_time_ms = Some(now);
            plan.modify_conv(&item.id, |r: &mut ConversationRecord| r.set_data(&data))?;
            result.succeed(item.id.clone());
            changed.push(item.id.clone());
        }
        if !changed.is_empty() {
            plan.events.push(EventKind::ConversationsChanged { conversation_ids: changed });
        }
        Ok(result)
    }
}

pub fn delete_conversations(items: Vec<Item<()>>, result: BatchResult) -> impl Rule<BatchResult> {
    move |plan, _| {
        let mut result = result.clone();
        // Removals per group, kept in display order for the events.
        let mut removed: Vec<(u32, Vec<_>)> = plan.user.groups.iter().map(|g| (g.id, Vec::new())).collect();
        for item in &items {
            let Some(record) = plan.conv(&item.id)? else {
                let message = format!("{}: the user has no such conversation", item.id);
                result.fail_item(item, ItemCode::ConversationNotFound, message);
                continue;
            };
            for (group_id, ids) in removed.iter_mut() {
                if record.group_ids.contains(group_id) {
                    ids.push(item.id.clone());
                }
            }
            plan.modify_conv(&item.id, |r| *r = ConversationRecord::default())?;
            result.succeed(item.id.clone());
        }
        for (group_id, ids) in removed {
            if ids.is_empty() {
                continue;
            }
            let group_name =
                plan.user.groups.iter().find(|g| g.id == group_id).map(|g| g.name.clone()).unwrap_or_default();
            plan.events.push(EventKind::ConversationsDeletedFromGroup {
                group_name,
                conversation_ids: ids,
                reason: RemovalReason::ConversationDeleted,
            });
        }
        if !result.succeeded().is_empty() {
            plan.events.push(EventKind::ConversationsDeleted { conversation_ids: result.succeeded().to_vec() });
        }
        Ok(result)
    }
}
