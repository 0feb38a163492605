//! A mutation in the making, on either backend. A mutation reads the
//! current state through a [`StateRead`], changes copies of it here, and
//! the plan becomes a [`Planned`]: the writes and events that the backend
//! then commits atomically at its next revision (sled: in the one write of
//! its commit group; etcd: one transaction guarded by the user's record).
//!
//! Every change of a conversation goes through [`Plan::modify_conv`], which
//! keeps the derived data in step with it: member keys, the listing index,
//! and the per-group and per-user counters in the user record. That is what
//! lets reads be single gets and makes limits checkable mid-request.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use super::encoding::{ConversationRecord, GroupRecord, UserRecord};
use super::keys;
use super::state::{StateRead, Table, WriteSet};

use crate::domain::{AdditionReason, ConversationId, EventBatch, EventKind, GroupId, GroupRule, RemovalReason, UserId};
use crate::error::Error;

struct CachedConv {
    /// As stored before this mutation (None: absent).
    original: Option<ConversationRecord>,
    /// As this mutation leaves it.
    current: ConversationRecord,
}

pub struct Plan<'a> {
    view: &'a dyn StateRead,
    pub user_id: UserId,
    pub user: UserRecord,
    convs: HashMap<ConversationId, CachedConv>,
    pub events: Vec<EventKind>,
    pub writes: WriteSet,
    /// The most members a rule adds to a group (max_conversations_per_group).
    member_cap: usize,
    /// The smart groups' rules by group id, in step with `user`.
    rules: Vec<(u32, GroupRule)>,
    /// Memberships the rules began (true) or ended (false) in this
    /// mutation, net of changes that cancelled out: the Rule events.
    rule_changes: BTreeMap<(u32, ConversationId), bool>,
}

/// Whether the record is in a group other than by a rule.
fn explicitly_grouped(record: &ConversationRecord) -> bool {
    record.group_ids.iter().any(|g| !record.rule_group_ids.contains(g))
}

/// A conversation record exists while it is registered or explicitly
/// grouped (a rule selects among existing conversations, it never makes
/// one exist).
fn exists(record: &ConversationRecord) -> bool {
    record.registered || explicitly_grouped(record)
}

/// Settles the rule memberships of one conversation after a change: a
/// smart group's rule adds it when it matches (while the group holds fewer
/// than `member_cap`) and removes it when it no longer does; explicit
/// memberships are never touched. Each change made here is noted for the
/// Rule events. Costs one rule check per smart group of the user.
///
/// `counted` are the groups whose `conversation_count` still counts this
/// conversation (its memberships before the change): a group's room is
/// judged without it.
fn settle(
    rules: &[(u32, GroupRule)],
    groups: &[GroupRecord],
    member_cap: usize,
    counted: &[u32],
    id: &ConversationId,
    record: &mut ConversationRecord,
    changes: &mut BTreeMap<(u32, ConversationId), bool>,
) {
    let ConversationRecord { group_ids, rule_group_ids, .. } = record;
    rule_group_ids.retain(|g| group_ids.contains(g));
    let grouped = explicitly_grouped(record);
    let data = (record.registered || grouped).then(|| record.data());
    for group in groups {
        let g = group.id;
        let by_rule = record.rule_group_ids.contains(&g);
        if record.group_ids.contains(&g) && !by_rule {
            continue;
        }
        let rule = rules.iter().find(|(rule_group, _)| *rule_group == g).map(|(_, rule)| rule);
        let want = match (rule, &data) {
            (Some(rule), Some(data)) => {
                let others = group.conversation_count as usize - usize::from(counted.contains(&g));
                rule.matches(id, data, grouped) && (by_rule || others < member_cap)
            }
            _ => false,
        };
        if want == by_rule {
            continue;
        }
        if want {
            record.group_ids.push(g);
            record.rule_group_ids.push(g);
        } else {
            record.group_ids.retain(|x| *x != g);
            record.rule_group_ids.retain(|x| *x != g);
        }
        match changes.entry((g, id.clone())) {
            Entry::Occupied(change) if *change.get() != want => {
                change.remove();
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(change) => {
                change.insert(want);
            }
        }
    }
}

impl<'a> Plan<'a> {
    /// A plan for `user_id`, whose record (with its current revision) the
    /// backend has read from `view`.
    /// `member_cap` is the most members a rule may give a group
    /// (max_conversations_per_group).
    pub fn new(view: &'a dyn StateRead, user_id: &UserId, user: UserRecord, member_cap: usize) -> Self {
        let rules =
            user.groups.iter().filter_map(|g| g.rule.as_ref().map(|rule| (g.id, rule.rule()))).collect::<Vec<_>>();
        Self {
            view,
            user_id: user_id.clone(),
            user,
            convs: HashMap::new(),
            events: Vec::new(),
            writes: WriteSet::default(),
            member_cap,
            rules,
            rule_changes: BTreeMap::new(),
        }
    }

    /// Replaces the rule of group `group_id` (None: no rule) in the plan's
    /// view of the rules; the caller changes the record and settles.
    pub(super) fn replace_rule(&mut self, group_id: u32, rule: Option<GroupRule>) {
        self.rules.retain(|(g, _)| *g != group_id);
        if let Some(rule) = rule {
            self.rules.push((group_id, rule));
        }
    }

    /// Every conversation the user has, as stored at the start of the
    /// mutation (the listing index holds each existing one once) and as
    /// this plan has made them since.
    pub(super) fn conversation_ids(&self) -> Result<Vec<ConversationId>, Error> {
        let prefix = keys::user_prefix(&self.user_id);
        let mut ids = std::collections::BTreeSet::new();
        self.view.scan(Table::Order, &prefix, None, &mut |key, _| {
            let position =
                keys::order_position(prefix.len(), key).ok_or_else(|| super::encoding::corrupt("order key"))?;
            ids.insert(ConversationId::from_canonical(position.id));
            Ok(true)
        })?;
        ids.extend(self.convs.iter().filter(|(_, c)| exists(&c.current)).map(|(id, _)| id.clone()));
        Ok(ids.into_iter().collect())
    }

    /// The conversation as this plan currently sees it (None: absent).
    pub fn conv(&mut self, id: &ConversationId) -> Result<Option<&ConversationRecord>, Error> {
        self.load(id)?;
        let cached = &self.convs[id];
        Ok(exists(&cached.current).then_some(&cached.current))
    }

    fn load(&mut self, id: &ConversationId) -> Result<(), Error> {
        if !self.convs.contains_key(id) {
            let original = match self.view.get(Table::Convs, &keys::conv_key(&self.user_id, id))? {
                Some(bytes) => Some(super::encoding::decode::<ConversationRecord>(&bytes, "conversation record")?),
                None => None,
            };
            let current = original.clone().unwrap_or_default();
            self.convs.insert(id.clone(), CachedConv { original, current });
        }
        Ok(())
    }

    /// Changes one conversation and keeps every derived value in step.
    pub fn modify_conv(
        &mut self,
        id: &ConversationId,
        change: impl FnOnce(&mut ConversationRecord),
    ) -> Result<(), Error> {
        self.load(id)?;
        let cached = self.convs.get_mut(id).expect("loaded above");
        let before = cached.current.clone();
        change(&mut cached.current);
        if !self.rules.is_empty() || !cached.current.rule_group_ids.is_empty() {
            let counted = if exists(&before) { &before.group_ids[..] } else { &[] };
            let (rules, groups) = (&self.rules, &self.user.groups);
            settle(rules, groups, self.member_cap, counted, id, &mut cached.current, &mut self.rule_changes);
        }
        let after = &cached.current;

        let (was, is) = (exists(&before), exists(after));
        let old_unread = if was { before.counted_unread() } else { 0 };
        let new_unread = if is { after.counted_unread() } else { 0 };
        for group in self.user.groups.iter_mut() {
            let in_before = was && before.group_ids.contains(&group.id);
            let in_after = is && after.group_ids.contains(&group.id);
            if in_before {
                group.unread_count -= old_unread;
            }
            if in_after {
                group.unread_count += new_unread;
            }
            match (in_before, in_after) {
                (false, true) => {
                    group.conversation_count += 1;
                    // A member joins at the end of the group's manual order.
                    let manual = group.manual_mut();
                    manual.last_rank = crate::domain::order::append_rank(manual.last_rank);
                    let rank = super::encoding::encode_rank(manual.last_rank);
                    self.writes.put(Table::Members, keys::member_key(&self.user_id, group.id, id), rank);
                }
                (true, false) => {
                    group.conversation_count -= 1;
                    // A member that leaves is no longer pinned in the group.
                    group.pinned.retain(|pin| pin != id.as_str());
                    self.writes.remove(Table::Members, keys::member_key(&self.user_id, group.id, id));
                }
                _ => {}
            }
        }
        self.user.total_unread = self.user.total_unread - old_unread + new_unread;
        let old_pinned = u32::from(was && before.is_pinned);
        let new_pinned = u32::from(is && after.is_pinned);
        self.user.pinned_count = self.user.pinned_count - old_pinned + new_pinned;
        Ok(())
    }

    /// Turns the plan into its writes and events, or None when nothing
    /// changed (no event: the revision is kept). The user record is not in
    /// the writes: it carries the revision, which only the backend knows.
    pub fn finish(mut self) -> Option<Planned> {
        self.record_rule_changes();
        if self.events.is_empty() {
            return None;
        }
        for (id, cached) in std::mem::take(&mut self.convs) {
            let key = keys::conv_key(&self.user_id, &id);
            let original = cached.original.filter(exists);
            let current = Some(cached.current).filter(exists);
            if original == current {
                continue;
            }
            let old_pos = original.as_ref().map(|r| r.position(&id));
            let new_pos = current.as_ref().map(|r| r.position(&id));
            if old_pos != new_pos {
                if let Some(pos) = &old_pos {
                    self.writes.remove(Table::Order, keys::order_key(&self.user_id, pos));
                }
                if let Some(pos) = &new_pos {
                    self.writes.put(Table::Order, keys::order_key(&self.user_id, pos), Vec::new());
                }
            }
            match current {
                Some(record) => self.writes.put(Table::Convs, key, prost::Message::encode_to_vec(&record)),
                None => self.writes.remove(Table::Convs, key),
            }
        }
        Some(Planned { user_id: self.user_id, user: self.user, events: self.events, writes: self.writes })
    }
}

impl Plan<'_> {
    /// The events of what the rules did, after the events of the change
    /// that caused it: per group in display order, the joins, then the
    /// leaves, each with reason Rule.
    fn record_rule_changes(&mut self) {
        let changes = std::mem::take(&mut self.rule_changes);
        for group in &self.user.groups {
            let (mut joined, mut left) = (Vec::new(), Vec::new());
            let from = (group.id, ConversationId::from_canonical(String::new()));
            for ((_, id), &join) in changes.range(from..).take_while(|((g, _), _)| *g == group.id) {
                if join {
                    joined.push(id.clone());
                } else {
                    left.push(id.clone());
                }
            }
            let group_id = Some(GroupId(group.id));
            if !joined.is_empty() {
                self.events.push(EventKind::ConversationsAddedToGroup {
                    group_id,
                    group_name: group.name.clone(),
                    conversation_ids: joined,
                    reason: AdditionReason::Rule,
                });
            }
            if !left.is_empty() {
                self.events.push(EventKind::ConversationsDeletedFromGroup {
                    group_id,
                    group_name: group.name.clone(),
                    conversation_ids: left,
                    reason: RemovalReason::Rule,
                });
            }
        }
    }
}

/// A mutation that changes something, ready to be committed.
pub struct Planned {
    pub user_id: UserId,
    /// The user's record after the mutation; its `revision` is set by
    /// [`Planned::at`].
    pub user: UserRecord,
    pub events: Vec<EventKind>,
    /// Every write but the user record's.
    pub writes: WriteSet,
}

impl Planned {
    /// The event batch at `revision`, and the user record that goes with it
    /// (encoded, with its revision set).
    pub fn at(mut self, revision: u64, time_ms: i64) -> (WriteSet, Vec<u8>, EventBatch) {
        self.user.revision = revision;
        let batch = EventBatch {
            revision,
            user: self.user_id,
            time_ms,
            group_names: self.user.group_names(),
            group_ids: self.user.groups.iter().map(|g| GroupId(g.id)).collect(),
            events: self.events,
        };
        (self.writes, prost::Message::encode_to_vec(&self.user), batch)
    }
}

impl Plan<'_> {
    /// A group's members with their manual ranks, as this plan leaves them
    /// so far (the stored ones with this plan's writes over them), by rank
    /// then id.
    pub fn members_with_ranks(&self, group_id: u32) -> Result<Vec<(ConversationId, u64)>, Error> {
        let mut members: std::collections::BTreeMap<ConversationId, u64> =
            super::query::members_with_ranks(self.view, &self.user_id, group_id)?.into_iter().collect();
        let prefix = keys::group_members_prefix(&self.user_id, group_id);
        for (key, value) in self.writes.ops[Table::Members as usize].range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| super::encoding::corrupt("member key"))?;
            let id = ConversationId::from_canonical(id.to_string());
            match value {
                Some(value) => members.insert(id, super::encoding::decode_rank(value)?),
                None => members.remove(&id),
            };
        }
        let mut order: Vec<(ConversationId, u64)> = members.into_iter().collect();
        order.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Ok(order)
    }

    /// Gives members of a group new manual ranks; a renumbering starts a
    /// new order epoch.
    pub fn set_ranks(&mut self, index: usize, ranks: &[(ConversationId, u64)], renumbered: bool) {
        let group = &mut self.user.groups[index];
        let group_id = group.id;
        let manual = group.manual_mut();
        if renumbered {
            manual.epoch = manual.epoch.wrapping_add(1);
            manual.last_rank = 0;
        }
        for (id, rank) in ranks {
            manual.last_rank = manual.last_rank.max(*rank);
            let key = keys::member_key(&self.user_id, group_id, id);
            self.writes.put(Table::Members, key, super::encoding::encode_rank(*rank));
        }
    }

    /// Ids of the members of a group as of the start of this mutation (a
    /// mutation that reads them touches the group's members once, after).
    pub fn stored_members(&self, group_id: u32) -> Result<Vec<ConversationId>, Error> {
        super::query::members(self.view, &self.user_id, group_id)
    }
}
