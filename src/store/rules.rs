//! The domain's rules ([`crate::domain::rules`]) as the backends run them:
//! [`Plan`] implements the rules' view of a user's state over the stored
//! records, and each mutation is a [`Rule`] closure over its inputs that a
//! backend can run (and run again on a fresh state).

use super::encoding::{recv_opt_code, recv_opt_from_code, ConversationRecord, GroupRecord, RuleRecord};
use super::plan::Plan;
use crate::config::Limits;
use crate::domain::rules::{self as domain, UserState};
use crate::domain::{
    ConversationData, ConversationId, ConversationPatch, EventKind, GroupId, GroupLook, GroupRef, GroupRule, GroupView,
    Item, ItemOutcomes, ItemResults, LookUpdate, Placement, RecvOpt, SortMode,
};
use crate::error::Error;

/// Answer of CreateConversationGroup.
#[derive(Debug, Clone)]
pub struct CreatedGroup {
    pub group: GroupView,
    pub outcome: ItemOutcomes,
}

pub(super) fn group_view(group: &GroupRecord) -> GroupView {
    GroupView {
        id: GroupId(group.id),
        name: group.name.clone(),
        rule: group.rule.as_ref().map(RuleRecord::rule),
        conversation_count: group.conversation_count,
        unread_count: group.unread_count,
        create_time_ms: group.create_time_ms,
        new_member_recv_opt: group.new_member_recv_opt.map(recv_opt_from_code),
        look: group.look(),
        sort_mode: group.sort_mode(),
        pinned: group.pinned.iter().map(|id| ConversationId::from_canonical(id.clone())).collect(),
    }
}

/// A mutation as a backend runs it: plans against the state, returns the
/// answer.
pub trait Rule<R>: Fn(&mut Plan<'_>, &Limits) -> Result<R, Error> + Send + Sync + 'static {}
impl<R, F: Fn(&mut Plan<'_>, &Limits) -> Result<R, Error> + Send + Sync + 'static> Rule<R> for F {}

impl Plan<'_> {
    fn group_id(&self, index: usize) -> u32 {
        self.user.groups[index].id
    }
}

impl UserState for Plan<'_> {
    fn revision(&self) -> u64 {
        self.user.revision
    }

    fn group_names(&self) -> Vec<String> {
        self.user.group_names()
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.user.group_index(name)
    }

    fn group_index_by_id(&self, id: GroupId) -> Option<usize> {
        self.user.groups.iter().position(|g| g.id == id.0)
    }

    fn group(&self, index: usize) -> GroupView {
        group_view(&self.user.groups[index])
    }

    fn create_group(&mut self, name: &str, create_time_ms: i64) -> usize {
        // Stable internal ids: member keys use them, so a rename rewrites
        // nothing.
        let id = self.user.next_group_id;
        self.user.next_group_id += 1;
        self.user.groups.push(GroupRecord { id, name: name.to_string(), create_time_ms, ..Default::default() });
        self.user.groups.len() - 1
    }

    fn remove_group(&mut self, index: usize) -> Result<(), Error> {
        let group_id = self.group_id(index);
        // Its rule goes first, so that settling its members (and those an
        // `ungrouped` rule of another group now matches) never adds to it.
        self.replace_rule(group_id, None);
        for id in self.stored_members(group_id)? {
            self.modify_conv(&id, |r| {
                r.group_ids.retain(|g| *g != group_id);
                r.rule_group_ids.retain(|g| *g != group_id);
            })?;
        }
        self.user.groups.remove(index);
        Ok(())
    }

    fn rename_group(&mut self, index: usize, name: &str) {
        self.user.groups[index].name = name.to_string();
    }

    fn set_group_look(&mut self, index: usize, look: &GroupLook) {
        self.user.groups[index].set_look(look);
    }

    fn reorder_groups(&mut self, order: &[usize]) {
        self.user.groups = order.iter().map(|&i| self.user.groups[i].clone()).collect();
    }

    fn pinned_count(&self) -> usize {
        self.user.pinned_count as usize
    }

    fn conversation(&mut self, id: &ConversationId) -> Result<Option<(ConversationData, Vec<usize>)>, Error> {
        let Some(record) = self.conv(id)? else { return Ok(None) };
        let (data, group_ids) = (record.data(), record.group_ids.clone());
        let positions =
            self.user.groups.iter().enumerate().filter(|(_, g)| group_ids.contains(&g.id)).map(|(i, _)| i).collect();
        Ok(Some((data, positions)))
    }

    fn join(&mut self, id: &ConversationId, index: usize) -> Result<(), Error> {
        let group_id = self.group_id(index);
        self.modify_conv(id, |r| r.group_ids.push(group_id))
    }

    fn leave(&mut self, id: &ConversationId, index: usize) -> Result<(), Error> {
        let group_id = self.group_id(index);
        self.modify_conv(id, |r| r.group_ids.retain(|g| *g != group_id))
    }

    fn set_data(&mut self, id: &ConversationId, data: &ConversationData) -> Result<(), Error> {
        self.modify_conv(id, |r| r.set_data(data))
    }

    fn set_rule(&mut self, index: usize, rule: Option<GroupRule>) -> Result<(), Error> {
        let group_id = self.group_id(index);
        self.user.groups[index].rule = rule.as_ref().map(RuleRecord::of);
        self.replace_rule(group_id, rule);
        // Every conversation of the user is settled against the new rule:
        // the cost of a rule change is one check per conversation.
        for id in self.conversation_ids()? {
            self.modify_conv(&id, |_| {})?;
        }
        Ok(())
    }

    fn member_by_rule(&mut self, id: &ConversationId, index: usize) -> Result<bool, Error> {
        let group_id = self.group_id(index);
        Ok(self.conv(id)?.is_some_and(|r| r.rule_group_ids.contains(&group_id)))
    }

    fn forget(&mut self, id: &ConversationId) -> Result<(), Error> {
        self.modify_conv(id, |r| *r = ConversationRecord::default())
    }

    fn record(&mut self, event: EventKind) {
        self.events.push(event);
    }

    fn members(&mut self, index: usize) -> Result<Vec<ConversationId>, Error> {
        // The member keys as this plan leaves them (modify_conv writes one
        // for every join and leave), in id order.
        let mut ids: Vec<ConversationId> =
            self.members_with_ranks(self.group_id(index))?.into_iter().map(|(id, _)| id).collect();
        ids.sort();
        Ok(ids)
    }

    fn set_new_member_recv_opt(&mut self, index: usize, opt: Option<RecvOpt>) {
        self.user.groups[index].new_member_recv_opt = opt.map(recv_opt_code);
    }

    fn manual_order(&mut self, index: usize) -> Result<Vec<(ConversationId, u64)>, Error> {
        self.members_with_ranks(self.group_id(index))
    }

    fn set_ranks(&mut self, index: usize, ranks: &[(ConversationId, u64)], renumbered: bool) {
        Plan::set_ranks(self, index, ranks, renumbered);
    }

    fn set_sort_mode(&mut self, index: usize, mode: SortMode) {
        self.user.groups[index].sort_mode = super::encoding::sort_mode_code(mode);
    }

    fn set_group_pins(&mut self, index: usize, pinned: Vec<ConversationId>) {
        self.user.groups[index].pinned = pinned.into_iter().map(|id| id.as_str().to_string()).collect();
    }
}

pub fn create_group(
    name: String,
    items: Vec<Item<()>>,
    sort_mode: SortMode,
    rule: Option<GroupRule>,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<(GroupView, ItemResults)> {
    move |plan, limits| {
        domain::create_group(plan, limits, &name, &items, sort_mode, rule.as_ref(), result.clone(), expected_revision)
    }
}

pub fn set_group_rule(
    group: GroupRef,
    rule: Option<GroupRule>,
    expected_revision: Option<u64>,
) -> impl Rule<GroupView> {
    move |plan, limits| domain::set_group_rule(plan, limits, &group, rule.as_ref(), expected_revision)
}

pub fn delete_group(group: GroupRef, expected_revision: Option<u64>) -> impl Rule<()> {
    move |plan, limits| domain::delete_group(plan, limits, &group, expected_revision)
}

pub fn rename_group(group: GroupRef, new_name: String, expected_revision: Option<u64>) -> impl Rule<GroupView> {
    move |plan, limits| domain::rename_group(plan, limits, &group, &new_name, expected_revision)
}

pub fn update_group(group: GroupRef, update: LookUpdate, expected_revision: Option<u64>) -> impl Rule<GroupView> {
    move |plan, limits| domain::update_group(plan, limits, &group, &update, expected_revision)
}

pub fn reorder_groups(
    field: &'static str,
    groups: Vec<GroupRef>,
    expected_revision: Option<u64>,
) -> impl Rule<Vec<GroupView>> {
    move |plan, _| domain::reorder_groups(plan, field, &groups, expected_revision)
}

pub fn add_to_group(
    group: GroupRef,
    items: Vec<Item<()>>,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<ItemResults> {
    move |plan, limits| domain::add_to_group(plan, limits, &group, &items, result.clone(), expected_revision)
}

pub fn remove_from_group(
    group: GroupRef,
    items: Vec<Item<()>>,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<ItemResults> {
    move |plan, limits| domain::remove_from_group(plan, limits, &group, &items, result.clone(), expected_revision)
}

pub fn upsert_conversations(items: Vec<Item<ConversationPatch>>, result: ItemResults) -> impl Rule<ItemResults> {
    move |plan, limits| domain::upsert_conversations(plan, limits, &items, result.clone())
}

pub fn delete_conversations(items: Vec<Item<()>>, result: ItemResults) -> impl Rule<ItemResults> {
    move |plan, _| domain::delete_conversations(plan, &items, result.clone())
}

pub fn mark_group_read(group: GroupRef, expected_revision: Option<u64>) -> impl Rule<Vec<ConversationId>> {
    move |plan, limits| domain::mark_group_read(plan, limits, &group, expected_revision)
}

pub fn set_group_mute(
    group: GroupRef,
    recv_opt: RecvOpt,
    apply_to_new_members: bool,
    expected_revision: Option<u64>,
) -> impl Rule<(Vec<ConversationId>, GroupView)> {
    move |plan, limits| domain::set_group_mute(plan, limits, &group, recv_opt, apply_to_new_members, expected_revision)
}

pub fn move_conversations(
    from: Option<GroupRef>,
    to: Vec<GroupRef>,
    items: Vec<Item<()>>,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<domain::Moved> {
    move |plan, limits| {
        domain::move_conversations(plan, limits, from.as_ref(), &to, &items, result.clone(), expected_revision)
    }
}

pub fn set_sort_mode(group: GroupRef, mode: SortMode, expected_revision: Option<u64>) -> impl Rule<GroupView> {
    move |plan, limits| domain::set_sort_mode(plan, limits, &group, mode, expected_revision)
}

pub fn move_in_group(
    group: GroupRef,
    items: Vec<Item<()>>,
    placement: Placement,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<ItemResults> {
    move |plan, limits| {
        domain::move_in_group(plan, limits, &group, &items, &placement, result.clone(), expected_revision)
    }
}

pub fn pin_in_group(
    group: GroupRef,
    items: Vec<Item<()>>,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<(ItemResults, Vec<ConversationId>)> {
    move |plan, limits| domain::pin_in_group(plan, limits, &group, &items, result.clone(), expected_revision)
}

pub fn unpin_in_group(
    group: GroupRef,
    items: Vec<Item<()>>,
    result: ItemResults,
    expected_revision: Option<u64>,
) -> impl Rule<(ItemResults, Vec<ConversationId>)> {
    move |plan, limits| domain::unpin_in_group(plan, limits, &group, &items, result.clone(), expected_revision)
}
