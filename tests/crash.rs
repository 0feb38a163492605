//! Crash test (issue item 1): the real binary under concurrent writers and
//! watchers is killed with SIGKILL at random moments and restarted on the
//! same data directory, cycle after cycle. After every restart:
//!
//! * every acknowledged mutation is present, and a mutation whose outcome
//!   the client never learned (in flight at the kill) is either entirely
//!   present or entirely absent;
//! * every user's state is internally consistent: group list, counts and
//!   unread sums, members per group, each conversation's
//!   `conversation_group_list`, the no-group filter;
//! * replaying the event log from revision 1 (per user, and for all users)
//!   rebuilds exactly the stored groups, and a fresh snapshot agrees;
//! * the global log has no gap, revisions never go back, and new mutations
//!   take revisions above everything acknowledged or watched before;
//! * watchers (one per user and one `all_users`) resume from the revision
//!   after the last one they saw and, in the end, have received exactly the
//!   stored log: no gap, no duplicate, nothing a crash took back.
//!
//! Each writer owns its groups (`w<k>-g<n>`) and conversations
//! (`C2Cw<k>-<n>`), two writers share each user, so each writer's part of
//! a user's state follows from its own acknowledged operations alone.
//!
//! Knobs (environment): `CONVGROUPS_CRASH_CYCLES` (kills, default 4),
//! `CONVGROUPS_CRASH_SEED` (replays a run; printed at the start),
//! `CONVGROUPS_CRASH_USERS` (3), `CONVGROUPS_CRASH_WRITERS_PER_USER` (2),
//! `CONVGROUPS_CRASH_MAX_DELAY_MS` (longest run before a kill, 1500).
//! Long mode with the release binary:
//! `CONVGROUPS_CRASH_CYCLES=50 cargo test --release --test crash -- --nocapture`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use convgroups::pb::*;
use support::reliability::*;
use tonic::transport::Channel;
use tonic::Status;

/// Conversation ids each writer draws from.
const POOL: u64 = 40;

/// The server's default `max_pinned_per_group`.
const GROUP_PINS: usize = 5;

// ---------------------------------------------------------------------------
// Operations and the model of one writer's part of a user's state
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Create {
        name: String,
        ids: Vec<String>,
    },
    Add {
        group: String,
        ids: Vec<String>,
    },
    Remove {
        group: String,
        ids: Vec<String>,
    },
    Rename {
        old: String,
        new: String,
    },
    DeleteGroup {
        name: String,
    },
    Upsert {
        items: Vec<(String, u32)>,
    },
    DeleteConvs {
        ids: Vec<String>,
    },
    /// Makes a group a smart group whose rule includes these conversations
    /// (None: clears the rule).
    SetRule {
        group: String,
        include: Option<Vec<String>>,
    },
    /// MarkConversationGroupRead.
    MarkRead {
        group: String,
    },
    /// SetConversationGroupMute: NOT_RECEIVE (`mute`) or RECEIVE.
    Mute {
        group: String,
        mute: bool,
    },
    /// MoveConversations from one group to another.
    Move {
        from: String,
        to: String,
        ids: Vec<String>,
    },
    /// UpdateConversationGroup of the masked fields of `look`.
    Update {
        group: String,
        look: Look,
        paths: Vec<&'static str>,
    },
    /// SetConversationGroupSortMode to MANUAL (`manual`) or RECENT.
    Sort {
        group: String,
        manual: bool,
    },
    /// MoveConversationsInGroup to the start (the group is MANUAL).
    MoveIn {
        group: String,
        ids: Vec<String>,
    },
    /// PinConversationsInGroup (`pin`) or UnpinConversationsInGroup.
    Pin {
        group: String,
        ids: Vec<String>,
        pin: bool,
    },
}

/// What an operation must do, as the model predicts it.
#[derive(Debug)]
struct Outcome {
    success: BTreeSet<String>,
    /// False when nothing changes (no event, no new revision).
    changed: bool,
}

/// A writer's groups (display order among themselves) with their explicit
/// members, the rules of its smart groups (by group name: the included
/// conversations, which are members while they exist), and registered
/// conversations (id → unread count).
#[derive(Debug, Clone, Default)]
struct Model {
    groups: Vec<(String, BTreeSet<String>)>,
    rules: BTreeMap<String, Vec<String>>,
    registry: BTreeMap<String, u32>,
    /// Registered conversations whose receive option is NOT_RECEIVE: their
    /// unread counts are left out of the groups' totals.
    muted: BTreeSet<String>,
    /// Looks of groups that were given one (by name).
    looks: BTreeMap<String, Look>,
    /// Per group name: the order inside it.
    orders: BTreeMap<String, GroupOrder>,
}

/// A group's sort mode, manual order (joining appends) and own pins.
#[derive(Debug, Clone, Default)]
struct GroupOrder {
    manual: bool,
    order: Vec<String>,
    pins: Vec<String>,
}

impl GroupOrder {
    fn leave(&mut self, id: &str) {
        self.order.retain(|m| m != id);
        self.pins.retain(|m| m != id);
    }
}

/// The part of a user's observable state that belongs to one writer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WriterView {
    groups: Vec<GroupView>,
    convs: BTreeMap<String, ConvView>,
}

fn unique(ids: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.iter().filter(|id| seen.insert((*id).clone())).cloned().collect()
}

impl Model {
    fn group_mut(&mut self, name: &str) -> &mut BTreeSet<String> {
        &mut self.groups.iter_mut().find(|(n, _)| n == name).expect("op on a modelled group").1
    }

    fn exists(&self, id: &str) -> bool {
        self.registry.contains_key(id) || self.groups.iter().any(|(_, m)| m.contains(id))
    }

    /// Every member of a group, explicit or by its rule.
    fn members(&self, group: &str) -> BTreeSet<String> {
        self.effective().into_iter().find(|(n, _)| n == group).expect("op on a modelled group").1
    }

    /// Each group with every member: explicit ones, and for a smart group
    /// the included conversations that exist (a writer's rules include only
    /// its own conversations, which no other writer touches).
    fn effective(&self) -> Vec<(String, BTreeSet<String>)> {
        let mut groups = self.groups.clone();
        for (name, members) in groups.iter_mut() {
            if let Some(include) = self.rules.get(name) {
                members.extend(include.iter().filter(|id| self.exists(id)).cloned());
            }
        }
        groups
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Create { name, ids } => {
                let members: BTreeSet<String> = unique(ids).into_iter().collect();
                self.groups.push((name.clone(), members.clone()));
                self.orders.insert(name.clone(), GroupOrder { order: unique(ids), ..Default::default() });
                Outcome { success: members, changed: true }
            }
            Op::Add { group, ids } => {
                // A member by rule is already in the group.
                let effective = self.effective();
                let current = &effective.iter().find(|(n, _)| n == group).expect("op on a modelled group").1;
                let fresh: Vec<String> = unique(ids).into_iter().filter(|id| !current.contains(id)).collect();
                let members = self.group_mut(group);
                let added: Vec<String> = fresh.into_iter().filter(|id| members.insert(id.clone())).collect();
                self.orders.get_mut(group).expect("ordered").order.extend(added.iter().cloned());
                let success: BTreeSet<String> = added.into_iter().collect();
                let changed = !success.is_empty();
                Outcome { success, changed }
            }
            Op::Remove { group, ids } => {
                let members = self.group_mut(group);
                let success: BTreeSet<String> = unique(ids).into_iter().filter(|id| members.remove(id)).collect();
                let order = self.orders.get_mut(group).expect("ordered");
                success.iter().for_each(|id| order.leave(id));
                let changed = !success.is_empty();
                Outcome { success, changed }
            }
            Op::Rename { old, new } => {
                self.groups.iter_mut().find(|(n, _)| n == old).expect("renamed group").0 = new.clone();
                if let Some(rule) = self.rules.remove(old) {
                    self.rules.insert(new.clone(), rule);
                }
                if let Some(look) = self.looks.remove(old) {
                    self.looks.insert(new.clone(), look);
                }
                let order = self.orders.remove(old).expect("ordered");
                self.orders.insert(new.clone(), order);
                Outcome { success: BTreeSet::new(), changed: true }
            }
            Op::DeleteGroup { name } => {
                self.groups.retain(|(n, _)| n != name);
                self.rules.remove(name);
                self.looks.remove(name);
                self.orders.remove(name);
                Outcome { success: BTreeSet::new(), changed: true }
            }
            Op::Sort { group, manual } => {
                let order = self.orders.get_mut(group).expect("ordered");
                let changed = order.manual != *manual;
                order.manual = *manual;
                Outcome { success: BTreeSet::new(), changed }
            }
            Op::MoveIn { group, ids } => {
                let order = self.orders.get_mut(group).expect("ordered");
                let moving: Vec<String> = unique(ids).into_iter().filter(|id| order.order.contains(id)).collect();
                let mut new: Vec<String> = moving.clone();
                new.extend(order.order.iter().filter(|id| !moving.contains(id)).cloned());
                let changed = new != order.order;
                order.order = new;
                Outcome { success: moving.into_iter().collect(), changed }
            }
            Op::Pin { group, ids, pin } => {
                let order = self.orders.get_mut(group).expect("ordered");
                let before = order.pins.clone();
                let mut success = BTreeSet::new();
                if *pin {
                    let mut front = Vec::new();
                    for id in unique(ids) {
                        let new = !before.contains(&id);
                        let count = before.len() + front.iter().filter(|f| !before.contains(f)).count();
                        if order.order.contains(&id) && (!new || count < GROUP_PINS) {
                            front.push(id.clone());
                            success.insert(id);
                        }
                    }
                    front.extend(before.iter().filter(|p| !success.contains(*p)).cloned());
                    order.pins = front;
                } else {
                    for id in unique(ids) {
                        if order.pins.contains(&id) {
                            order.pins.retain(|p| *p != id);
                            success.insert(id);
                        }
                    }
                }
                let changed = order.pins != before;
                Outcome { success, changed }
            }
            Op::Upsert { items } => {
                let mut changed = false;
                for (id, unread) in items {
                    if self.registry.insert(id.clone(), *unread) != Some(*unread) {
                        changed = true;
                    }
                }
                Outcome { success: items.iter().map(|(id, _)| id.clone()).collect(), changed }
            }
            Op::MarkRead { group } => {
                let members = self.members(group);
                let success: BTreeSet<String> =
                    members.into_iter().filter(|id| self.registry.get(id).is_some_and(|unread| *unread > 0)).collect();
                for id in &success {
                    self.registry.insert(id.clone(), 0);
                }
                let changed = !success.is_empty();
                Outcome { success, changed }
            }
            Op::Mute { group, mute } => {
                let members = self.members(group);
                let mut success = BTreeSet::new();
                for id in members {
                    // An unregistered member becomes registered with its option.
                    let registered = self.registry.contains_key(&id);
                    self.registry.entry(id.clone()).or_insert(0);
                    let toggled = if *mute { self.muted.insert(id.clone()) } else { self.muted.remove(&id) };
                    if toggled || !registered {
                        success.insert(id);
                    }
                }
                let changed = !success.is_empty();
                Outcome { success, changed }
            }
            Op::Move { from, to, ids } => {
                // Only explicit members move (one there by the rule only is
                // IN_GROUP_BY_RULE); one already in `to` (by its rule) stays
                // there as it is.
                let moved: Vec<String> = unique(ids).into_iter().filter(|id| self.group_mut(from).remove(id)).collect();
                let in_to = self.members(to);
                let joined: Vec<String> = moved.iter().filter(|id| !in_to.contains(*id)).cloned().collect();
                self.group_mut(to).extend(joined.iter().cloned());
                // Joining appends to a group's manual order; leaving drops
                // the member (and its pin) unless it stays by a rule.
                self.orders.get_mut(to).expect("ordered").order.extend(joined);
                let still = self.members(from);
                let order = self.orders.get_mut(from).expect("ordered");
                for id in moved.iter().filter(|id| !still.contains(*id)) {
                    order.leave(id);
                }
                let success: BTreeSet<String> = moved.into_iter().collect();
                let changed = !success.is_empty();
                Outcome { success, changed }
            }
            Op::DeleteConvs { ids } => {
                let success: BTreeSet<String> = unique(ids).into_iter().filter(|id| self.exists(id)).collect();
                for id in &success {
                    self.muted.remove(id);
                    self.registry.remove(id);
                    for (_, members) in self.groups.iter_mut() {
                        members.remove(id);
                    }
                    self.orders.values_mut().for_each(|order| order.leave(id));
                }
                let changed = !success.is_empty();
                Outcome { success, changed }
            }
            Op::SetRule { group, include } => {
                let changed = self.rules.get(group) != include.as_ref();
                match include {
                    Some(include) => self.rules.insert(group.clone(), include.clone()),
                    None => self.rules.remove(group),
                };
                Outcome { success: BTreeSet::new(), changed }
            }
            Op::Update { group, look, paths } => {
                let before = self.looks.get(group).cloned().unwrap_or_default();
                let mut after = before.clone();
                for path in paths {
                    match *path {
                        "icon" => after.0 = look.0.clone(),
                        "color" => after.1 = look.1,
                        "collapsed" => after.2 = look.2,
                        _ => after.3 = look.3.clone(),
                    }
                }
                let changed = after != before;
                self.looks.insert(group.clone(), after);
                Outcome { success: BTreeSet::new(), changed }
            }
        }
    }

    fn view(&self) -> WriterView {
        let effective = Model { groups: self.effective(), rules: BTreeMap::new(), ..self.clone() };
        effective.plain_view()
    }

    /// The view of explicit memberships only (`view` passes the effective
    /// ones).
    fn plain_view(&self) -> WriterView {
        let unread = |id: &String| self.registry.get(id).copied().unwrap_or(0);
        let groups = self
            .groups
            .iter()
            .map(|(name, members)| {
                let order = &self.orders[name];
                // Every conversation here has order_key 0 and is not pinned
                // itself: RECENT lists by id.
                let rest: Vec<String> =
                    if order.manual { order.order.clone() } else { members.iter().cloned().collect() };
                GroupView {
                    name: name.clone(),
                    count: members.len() as u32,
                    unread: members.iter().filter(|id| !self.muted.contains(*id)).map(|id| u64::from(unread(id))).sum(),
                    members: members.clone(),
                    look: self.looks.get(name).cloned().unwrap_or_default(),
                    order: order
                        .pins
                        .iter()
                        .cloned()
                        .chain(rest.into_iter().filter(|id| !order.pins.contains(id)))
                        .collect(),
                    sort_mode: if order.manual { GroupSortMode::Manual } else { GroupSortMode::Recent } as i32,
                    pinned: order.pins.clone(),
                }
            })
            .collect();
        let ids: BTreeSet<&String> = self.registry.keys().chain(self.groups.iter().flat_map(|(_, m)| m)).collect();
        let convs = ids
            .into_iter()
            .map(|id| {
                let groups = self.groups.iter().filter(|(_, m)| m.contains(id)).map(|(n, _)| n.clone()).collect();
                (id.clone(), ConvView { registered: self.registry.contains_key(id), unread: unread(id), groups })
            })
            .collect();
        WriterView { groups, convs }
    }
}

// ---------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------

struct Writer {
    index: usize,
    user: String,
    token: String,
    rng: Rng,
    model: Model,
    max_groups: usize,
    next_name: u64,
    /// Every changing op acknowledged from now on must have a revision
    /// above this (its previous one, and after a restart everything seen).
    floor: u64,
    /// Highest revision of a change acknowledged to this writer.
    acked_revision: u64,
    /// Highest revision reported by an answer that changed nothing.
    noop_revision: u64,
    acked: u64,
    /// The op in flight when the call failed (outcome unknown).
    pending: Option<Op>,
    /// How the last run ended.
    failure: Option<(Instant, Status)>,
    problems: Vec<String>,
}

impl Writer {
    fn group_prefix(&self) -> String {
        format!("w{}-", self.index)
    }

    fn conv_prefix(&self) -> String {
        format!("C2Cw{}-", self.index)
    }

    fn pool_id(&mut self) -> String {
        format!("{}{}", self.conv_prefix(), self.rng.below(POOL))
    }

    fn ids(&mut self, max: u64) -> Vec<String> {
        let n = self.rng.range(1, max);
        let mut ids: Vec<String> = (0..n).map(|_| self.pool_id()).collect();
        if self.rng.percent(10) {
            // A copy in the same request: DUPLICATE_IN_REQUEST for it.
            let copy = ids[0].clone();
            ids.push(copy);
        }
        ids
    }

    fn fresh_name(&mut self) -> String {
        self.next_name += 1;
        format!("{}g{}", self.group_prefix(), self.next_name)
    }

    fn some_group(&mut self) -> String {
        let names: Vec<String> = self.model.groups.iter().map(|(n, _)| n.clone()).collect();
        self.rng.pick(&names).clone()
    }

    fn next_op(&mut self) -> Op {
        let groups = self.model.groups.len();
        let roll = self.rng.below(100);
        if groups == 0 || (roll < 15 && groups < self.max_groups) {
            let name = self.fresh_name();
            return Op::Create { name, ids: self.ids(5) };
        }
        match roll {
            0..=14 | 70..=76 if groups > 1 => Op::DeleteGroup { name: self.some_group() },
            0..=44 => {
                let group = self.some_group();
                Op::Add { group, ids: self.ids(12) }
            }
            45..=59 => {
                let group = self.some_group();
                let mut ids: Vec<String> =
                    self.model.groups.iter().find(|(n, _)| *n == group).unwrap().1.iter().cloned().collect();
                ids.retain(|_| self.rng.percent(40));
                ids.extend(self.ids(3));
                Op::Remove { group, ids }
            }
            60..=64 => {
                let old = self.some_group();
                Op::Rename { old, new: self.fresh_name() }
            }
            77..=79 => Op::MarkRead { group: self.some_group() },
            80..=81 => {
                let mute = self.rng.percent(60);
                Op::Mute { group: self.some_group(), mute }
            }
            82..=86 if groups > 1 => {
                let from = self.some_group();
                let to = loop {
                    let to = self.some_group();
                    if to != from {
                        break to;
                    }
                };
                let mut ids: Vec<String> =
                    self.model.groups.iter().find(|(n, _)| *n == from).unwrap().1.iter().cloned().collect();
                ids.retain(|_| self.rng.percent(50));
                ids.extend(self.ids(2));
                Op::Move { from, to, ids }
            }
            // Even writers give their groups rules, odd ones order them:
            // the model keeps the two apart (a rule's members have no
            // manual order it could predict).
            87..=88 if self.index % 2 == 0 => {
                let group = self.some_group();
                let include = if self.rng.percent(20) { None } else { Some(unique(&self.ids(4))) };
                Op::SetRule { group, include }
            }
            87..=91 if self.index % 2 == 1 => {
                let group = self.some_group();
                let members: Vec<String> = self.model.orders[&group].order.clone();
                let mut ids: Vec<String> = members.into_iter().filter(|_| self.rng.percent(30)).collect();
                ids.push(self.pool_id());
                match self.rng.below(4) {
                    0 => Op::Sort { group, manual: self.rng.percent(80) },
                    1 if self.model.orders[&group].manual => Op::MoveIn { group, ids },
                    1 => Op::Sort { group, manual: true },
                    2 => Op::Pin { group, ids, pin: true },
                    _ => Op::Pin { group, ids, pin: false },
                }
            }
            65..=69 => {
                let group = self.some_group();
                let icons = ["", "\u{1f69a}", "\u{2605}", "ab"];
                let look = (
                    self.rng.pick(&icons).to_string(),
                    self.rng.below(8) as i32,
                    self.rng.percent(50),
                    (0..self.rng.below(4)).map(|i| i as u8).collect(),
                );
                let paths: Vec<&'static str> = ["icon", "color", "collapsed", "custom_data"]
                    .into_iter()
                    .filter(|_| self.rng.percent(60))
                    .collect();
                let paths = if paths.is_empty() { vec!["color"] } else { paths };
                Op::Update { group, look, paths }
            }
            70..=91 => {
                let n = self.rng.range(1, 5);
                let items = (0..n).map(|_| (self.pool_id(), self.rng.below(10) as u32)).collect();
                Op::Upsert { items: unique_items(items) }
            }
            _ => {
                let existing: Vec<String> = self.model.view().convs.into_keys().collect();
                let mut ids = Vec::new();
                for _ in 0..self.rng.range(1, 3) {
                    if !existing.is_empty() && self.rng.percent(80) {
                        ids.push(self.rng.pick(&existing).clone());
                    } else {
                        ids.push(self.pool_id());
                    }
                }
                Op::DeleteConvs { ids }
            }
        }
    }

    /// Runs operations until a call fails (the kill). Every acknowledged
    /// answer is checked against the model's prediction.
    async fn run(mut self, channel: Channel) -> Self {
        let mut gc = group_client(channel.clone(), &self.token);
        let mut cc = conv_client(channel, &self.token);
        loop {
            let op = self.next_op();
            match execute(&mut gc, &mut cc, &op).await {
                Ok((success, revision)) => {
                    let before = self.model.view();
                    let outcome = self.model.apply(&op);
                    self.acked += 1;
                    if success != outcome.success {
                        self.problems.push(format!(
                            "{op:?}: succeeded for {success:?}, the model expects {:?} (state before: {before:?})",
                            outcome.success
                        ));
                    }
                    if outcome.changed && revision <= self.floor {
                        self.problems.push(format!(
                            "{op:?} changed state at revision {revision}, not above {} (an earlier revision of this \
                             writer, or one seen before the last restart)",
                            self.floor
                        ));
                    }
                    if !outcome.changed && revision < self.acked_revision {
                        self.problems.push(format!(
                            "{op:?} changed nothing and reported revision {revision}, below the {} acknowledged before",
                            self.acked_revision
                        ));
                    }
                    if outcome.changed {
                        self.floor = self.floor.max(revision);
                        self.acked_revision = self.acked_revision.max(revision);
                    } else {
                        self.noop_revision = self.noop_revision.max(revision);
                    }
                }
                Err(status) => {
                    self.pending = Some(op);
                    self.failure = Some((Instant::now(), status));
                    return self;
                }
            }
        }
    }

    /// This writer's part of a user's state.
    fn extract(&self, view: &UserView) -> WriterView {
        let (gp, cp) = (self.group_prefix(), self.conv_prefix());
        WriterView {
            groups: view.groups.iter().filter(|g| g.name.starts_with(&gp)).cloned().collect(),
            convs: view
                .convs
                .iter()
                .filter(|(id, _)| id.starts_with(&cp))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// After a restart: the stored state must be the model (every
    /// acknowledged op) or the model plus the op in flight at the kill,
    /// entirely. Returns whether the pending op turned out applied.
    fn resolve(&mut self, view: &UserView) -> Result<Option<bool>, String> {
        let actual = self.extract(view);
        let without = self.model.view();
        let Some(op) = self.pending.take() else {
            return if actual == without {
                Ok(None)
            } else {
                Err(format!(
                    "writer {} ({}): stored state differs from its acknowledged operations (stored vs \
                     expected):\n{}",
                    self.index,
                    self.user,
                    diff(&actual, &without)
                ))
            };
        };
        if actual == without {
            return Ok(Some(false));
        }
        let mut with = self.model.clone();
        with.apply(&op);
        if actual == with.view() {
            self.model = with;
            return Ok(Some(true));
        }
        Err(format!(
            "writer {} ({}): stored state is neither its acknowledged operations nor those plus the one in flight \
             at the kill ({op:?}), i.e. an acknowledged change is lost or the in-flight one is half-applied\n\
             stored vs without the op:\n{}\nstored vs with the op:\n{}",
            self.index,
            self.user,
            diff(&actual, &without),
            diff(&actual, &with.view())
        ))
    }
}

/// The differences between two writer views, one line each.
fn diff(stored: &WriterView, expected: &WriterView) -> String {
    let mut lines = Vec::new();
    let names = |v: &WriterView| v.groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
    if names(stored) != names(expected) {
        lines.push(format!("  group order: {:?} vs {:?}", names(stored), names(expected)));
    }
    for g in &stored.groups {
        match expected.groups.iter().find(|e| e.name == g.name) {
            Some(e) if e != g => lines.push(format!("  group {}: {g:?} vs {e:?}", g.name)),
            _ => {}
        }
    }
    let ids: BTreeSet<&String> = stored.convs.keys().chain(expected.convs.keys()).collect();
    for id in ids {
        let (a, b) = (stored.convs.get(id), expected.convs.get(id));
        if a != b {
            lines.push(format!("  {id}: {a:?} vs {b:?}"));
        }
    }
    lines.join("\n")
}

fn unique_items(items: Vec<(String, u32)>) -> Vec<(String, u32)> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|(id, _)| seen.insert(id.clone())).collect()
}

/// Sends one operation; returns the ids reported successful and the
/// revision of the answer.
async fn execute(gc: &mut GroupClient, cc: &mut ConvClient, op: &Op) -> Result<(BTreeSet<String>, u64), Status> {
    let set = |ids: Vec<String>| ids.into_iter().collect::<BTreeSet<String>>();
    Ok(match op.clone() {
        Op::Create { name, ids } => {
            let request = CreateConversationGroupRequest {
                group_name: name,
                conversation_ids: ids,
                expected_revision: None,
                ..Default::default()
            };
            let r = gc.create_conversation_group(request).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::Add { group, ids } => {
            let request = AddConversationsToGroupRequest {
                group_name: group,
                conversation_ids: ids,
                expected_revision: None,
                ..Default::default()
            };
            let r = gc.add_conversations_to_group(request).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::Remove { group, ids } => {
            let request = DeleteConversationsFromGroupRequest {
                group_name: group,
                conversation_ids: ids,
                expected_revision: None,
                ..Default::default()
            };
            let r = gc.delete_conversations_from_group(request).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::Rename { old, new } => {
            let request = RenameConversationGroupRequest {
                old_name: old,
                new_name: new,
                expected_revision: None,
                ..Default::default()
            };
            (BTreeSet::new(), gc.rename_conversation_group(request).await?.into_inner().revision)
        }
        Op::DeleteGroup { name } => {
            let request =
                DeleteConversationGroupRequest { group_name: name, expected_revision: None, ..Default::default() };
            (BTreeSet::new(), gc.delete_conversation_group(request).await?.into_inner().revision)
        }
        Op::Upsert { items } => {
            let conversations = items
                .into_iter()
                .map(|(id, unread)| ConversationUpdate {
                    conversation_id: id,
                    unread_count: Some(unread),
                    ..Default::default()
                })
                .collect();
            let r = cc.upsert_conversations(UpsertConversationsRequest { conversations }).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::DeleteConvs { ids } => {
            let r = cc.delete_conversations(DeleteConversationsRequest { conversation_ids: ids }).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::SetRule { group, include } => {
            let request = SetConversationGroupRuleRequest {
                group_name: group,
                rule: include.map(|include_ids| GroupRule { include_ids, ..Default::default() }),
                ..Default::default()
            };
            (BTreeSet::new(), gc.set_conversation_group_rule(request).await?.into_inner().revision)
        }
        Op::MarkRead { group } => {
            let request = MarkConversationGroupReadRequest { group_name: group, ..Default::default() };
            let r = gc.mark_conversation_group_read(request).await?.into_inner();
            (set(r.changed_conversation_ids), r.revision)
        }
        Op::Mute { group, mute } => {
            let recv_opt = if mute { RecvOpt::NotReceive } else { RecvOpt::Receive };
            let request =
                SetConversationGroupMuteRequest { group_name: group, recv_opt: recv_opt as i32, ..Default::default() };
            let r = gc.set_conversation_group_mute(request).await?.into_inner();
            (set(r.changed_conversation_ids), r.revision)
        }
        Op::Move { from, to, ids } => {
            let request = MoveConversationsRequest {
                conversation_ids: ids,
                from_group_name: from,
                to: vec![GroupSelector { group_name: to, group_id: String::new() }],
                ..Default::default()
            };
            let r = gc.move_conversations(request).await?.into_inner();
            (set(r.moved_conversation_ids), r.revision)
        }
        Op::Update { group, look, paths } => {
            let request = UpdateConversationGroupRequest {
                group_name: group,
                look: Some(GroupLook { icon: look.0, color: look.1, collapsed: look.2, custom_data: look.3 }),
                update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
                ..Default::default()
            };
            (BTreeSet::new(), gc.update_conversation_group(request).await?.into_inner().revision)
        }
        Op::Sort { group, manual } => {
            let mode = if manual { GroupSortMode::Manual } else { GroupSortMode::Recent };
            let request =
                SetConversationGroupSortModeRequest { group_name: group, sort_mode: mode as i32, ..Default::default() };
            (BTreeSet::new(), gc.set_conversation_group_sort_mode(request).await?.into_inner().revision)
        }
        Op::MoveIn { group, ids } => {
            let request = MoveConversationsInGroupRequest {
                group_name: group,
                conversation_ids: ids,
                placement: Some(move_conversations_in_group_request::Placement::ToStart(true)),
                ..Default::default()
            };
            let r = gc.move_conversations_in_group(request).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::Pin { group, ids, pin: true } => {
            let request =
                PinConversationsInGroupRequest { group_name: group, conversation_ids: ids, ..Default::default() };
            let r = gc.pin_conversations_in_group(request).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
        Op::Pin { group, ids, pin: false } => {
            let request =
                UnpinConversationsInGroupRequest { group_name: group, conversation_ids: ids, ..Default::default() };
            let r = gc.unpin_conversations_in_group(request).await?.into_inner();
            (set(r.success_conversation_ids), r.revision)
        }
    })
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

struct Run {
    data_dir: std::path::PathBuf,
    logs: std::path::PathBuf,
    users: Vec<String>,
    user_tokens: Vec<String>,
    admin_token: String,
    /// One long-lived watcher per user, and one of all users.
    user_follows: Vec<Follow>,
    all_follow: Follow,
}

/// Everything checked after a restart. Returns the global revision.
async fn verify(run: &Run, server: &ServerProcess, writers: &mut [Writer], cycle: usize) -> u64 {
    let channel = server.try_channel().await.expect("connect after restart");
    let mut admin = group_client(channel.clone(), &run.admin_token);
    let fail = |what: String| -> ! {
        panic!("after restart {cycle}: {what}\nserver log tail:\n{}", server.log_tail(15));
    };

    // The global log: contiguous from 1 to the current revision.
    let (global, current) = read_log(&mut admin, 1, true).await.unwrap_or_else(|s| fail(format!("global log: {s:?}")));
    let revisions: Vec<u64> = global.iter().map(|b| b.revision).collect();
    if revisions != (1..=current).collect::<Vec<u64>>() {
        let gaps: Vec<u64> = (1..=current).filter(|r| !revisions.contains(r)).take(10).collect();
        fail(format!(
            "the global log has {} batches but the revision is {current}; missing e.g. {gaps:?}",
            revisions.len()
        ));
    }
    let replayed_all = replay(&global).unwrap_or_else(|e| fail(format!("global log: {e}")));

    let mut applied = 0;
    let mut unknown = 0;
    for (u, user) in run.users.iter().enumerate() {
        let mut gc = group_client(channel.clone(), &run.user_tokens[u]);
        let (view, problems) = read_user(&mut gc).await.unwrap_or_else(|s| fail(format!("reading {user}: {s:?}")));
        if !problems.is_empty() {
            fail(format!("{user}'s state is inconsistent: {problems:#?}"));
        }
        // Acknowledged and in-flight operations.
        let mut max_acked = 0;
        for w in writers.iter_mut().filter(|w| &w.user == user) {
            unknown += u64::from(w.pending.is_some());
            match w.resolve(&view) {
                Ok(Some(true)) => applied += 1,
                Ok(_) => {}
                Err(e) => fail(e),
            }
            max_acked = max_acked.max(w.acked_revision);
        }
        // Revisions.
        let (log, _) = read_log(&mut gc, 1, false).await.unwrap_or_else(|s| fail(format!("{user}'s log: {s:?}")));
        let last = log.last().map_or(0, |b| b.revision);
        if view.revision != last || view.revision < max_acked {
            fail(format!(
                "{user}: revision {} must be that of the user's last logged change ({last}) and at least the last \
                 acknowledged ({max_acked})",
                view.revision
            ));
        }
        let from_global: Vec<&EventBatch> =
            global.iter().filter(|b| b.events.first().is_some_and(|e| &e.user_id == user)).collect();
        if from_global != log.iter().collect::<Vec<_>>() {
            fail(format!("{user}: the user's log differs from the user's batches of the global log"));
        }
        // Replays and the snapshot rebuild the stored groups.
        let replayed = replay(&log).unwrap_or_else(|e| fail(format!("{user}'s log: {e}")));
        let membership = view.membership();
        if replayed.get(user).cloned().unwrap_or_default() != membership {
            fail(format!(
                "{user}: replaying the log from revision 1 gives {:?}, the stored groups are {membership:?}",
                replayed.get(user)
            ));
        }
        if replayed_all.get(user).cloned().unwrap_or_default() != membership {
            fail(format!("{user}: replaying the global log does not rebuild the stored groups"));
        }
        let snapshot = read_snapshot(&mut gc).await.unwrap_or_else(|s| fail(format!("{user}'s snapshot: {s:?}")));
        let from_snapshot: Groups =
            snapshot.groups.iter().map(|g| (g.name.clone(), g.conversation_ids.iter().cloned().collect())).collect();
        if from_snapshot != membership || snapshot.revision < view.revision {
            fail(format!("{user}: snapshot {snapshot:?} does not match the stored groups {membership:?}"));
        }
    }

    // Nothing acknowledged or watched before the kill is above the
    // revision the server restarted with.
    let max_acked = writers.iter().map(|w| w.acked_revision).max().unwrap_or(0);
    let max_seen = run.user_follows.iter().chain([&run.all_follow]).map(|f| f.lock().unwrap().seen).max().unwrap_or(0);
    if current < max_acked || current < max_seen {
        fail(format!("restarted at revision {current}, but {max_acked} was acknowledged and {max_seen} watched"));
    }
    let max_noop = writers.iter().map(|w| w.noop_revision).max().unwrap_or(0);
    if current < max_noop {
        fail(format!(
            "restarted at revision {current}, but an answer that changed nothing had reported revision {max_noop} \
             before the kill: the crash took back a revision a client was given (see \
             answers_report_only_durable_revisions)"
        ));
    }
    for w in writers.iter_mut() {
        w.floor = w.floor.max(current);
    }

    // Watchers resume after the last revision they saw, with no gap.
    for (u, follow_state) in run.user_follows.iter().enumerate() {
        tokio::spawn(follow(group_client(channel.clone(), &run.user_tokens[u]), follow_state.clone(), false));
    }
    tokio::spawn(follow(admin.clone(), run.all_follow.clone(), true));
    for (u, user) in run.users.iter().enumerate() {
        let state = &run.user_follows[u];
        wait_seen(state, current, Duration::from_secs(30)).await.unwrap_or_else(|e| fail(format!("{user}: {e}")));
        let mut gc = group_client(channel.clone(), &run.user_tokens[u]);
        let (log, _) = read_log(&mut gc, 1, false).await.unwrap_or_else(|s| fail(format!("{user}'s log: {s:?}")));
        let f = state.lock().unwrap();
        if !f.problems.is_empty() {
            fail(format!("{user}'s watcher: {:?}", f.problems));
        }
        if f.batches != log {
            let got: Vec<u64> = f.batches.iter().map(|b| b.revision).collect();
            let want: Vec<u64> = log.iter().map(|b| b.revision).collect();
            fail(format!(
                "{user}'s resumed watcher received revisions {got:?}, the stored log has {want:?} (or the contents \
                 differ)"
            ));
        }
    }
    wait_seen(&run.all_follow, current, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| fail(format!("all users: {e}")));
    {
        let f = run.all_follow.lock().unwrap();
        if !f.problems.is_empty() {
            fail(format!("all-users watcher: {:?}", f.problems));
        }
        if f.batches != global {
            let got: Vec<u64> = f.batches.iter().map(|b| b.revision).collect();
            fail(format!("the resumed all-users watcher received {got:?}, the global log is 1..={current}"));
        }
    }
    eprintln!(
        "restart {cycle}: revision {current}, {} events; {unknown} writes were in flight at the kill, {applied} of \
         them turned out applied; every check passed",
        global.len()
    );
    current
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let seed = seed_from_env("CONVGROUPS_CRASH_SEED");
    let cycles = env_u64("CONVGROUPS_CRASH_CYCLES", 4) as usize;
    let users = env_u64("CONVGROUPS_CRASH_USERS", 3) as usize;
    let per_user = env_u64("CONVGROUPS_CRASH_WRITERS_PER_USER", 2).max(1) as usize;
    let max_delay = env_u64("CONVGROUPS_CRASH_MAX_DELAY_MS", 1500).max(60);
    eprintln!("crash test: {BIN}, {cycles} kills, {users} users x {per_user} writers, kills within {max_delay} ms");
    let started = Instant::now();

    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("data");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let user_names: Vec<String> = (0..users).map(|u| format!("user{u}")).collect();
    let run = Run {
        user_tokens: user_names.iter().map(|u| mint_token(&data_dir, u, false)).collect(),
        admin_token: mint_token(&data_dir, "crash-admin", true),
        user_follows: user_names.iter().map(|_| Follow::default()).collect(),
        all_follow: Follow::default(),
        users: user_names,
        data_dir,
        logs,
    };
    let mut rng = Rng::new(seed);
    let max_groups = (convgroups::config::DEFAULT_MAX_GROUPS / per_user).max(1);
    let mut writers: Vec<Writer> = (0..users * per_user)
        .map(|index| Writer {
            index,
            user: run.users[index / per_user].clone(),
            token: run.user_tokens[index / per_user].clone(),
            rng: Rng::derive(seed, index as u64),
            model: Model::default(),
            max_groups,
            next_name: 0,
            floor: 0,
            acked_revision: 0,
            noop_revision: 0,
            acked: 0,
            pending: None,
            failure: None,
            problems: Vec::new(),
        })
        .collect();

    let mut server = start(&run, 0).await;
    for (u, state) in run.user_follows.iter().enumerate() {
        let channel = server.try_channel().await.expect("connect");
        tokio::spawn(follow(group_client(channel, &run.user_tokens[u]), state.clone(), false));
    }
    let channel = server.try_channel().await.expect("connect");
    tokio::spawn(follow(group_client(channel, &run.admin_token), run.all_follow.clone(), true));

    let mut total_acked = 0;
    for cycle in 1..=cycles {
        // Writers until the kill.
        let mut tasks = Vec::new();
        for writer in writers.drain(..) {
            let channel = server.try_channel().await.expect("connect");
            tasks.push(tokio::spawn(writer.run(channel)));
        }
        let delay = Duration::from_millis(rng.range(50, max_delay));
        tokio::time::sleep(delay).await;
        let killed_at = Instant::now();
        server.kill9();
        for task in tasks {
            let writer = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("a writer did not notice the kill within 60 s")
                .expect("writer task panicked");
            writers.push(writer);
        }
        writers.sort_by_key(|w| w.index);
        for w in &writers {
            assert!(w.problems.is_empty(), "cycle {cycle}, writer {}: wrong answers:\n{:#?}", w.index, w.problems);
            let (at, status) = w.failure.as_ref().expect("writers stop only on a failed call");
            assert!(
                *at >= killed_at && is_transport_failure(status),
                "cycle {cycle}, writer {}: a call failed {} the kill with {:?} {:?}: {}",
                w.index,
                if *at >= killed_at { "after" } else { "before" },
                status.code(),
                reason(status),
                status.message()
            );
        }
        total_acked = writers.iter().map(|w| w.acked).sum::<u64>();
        eprintln!("cycle {cycle}: killed after {delay:?}; {total_acked} operations acknowledged so far");

        server = start(&run, cycle).await;
        verify(&run, &server, &mut writers, cycle).await;
    }

    // A last graceful stop must work on the crash-tested directory.
    let status = server.terminate(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM after the last restart: {status:?}; log:\n{}",
        log_tail(&run.logs.join(format!("server-{cycles}.log")), 15)
    );
    eprintln!(
        "crash test passed: {cycles} kills, {total_acked} operations acknowledged, {:?} (seed {seed})",
        started.elapsed()
    );
}

async fn start(run: &Run, cycle: usize) -> ServerProcess {
    ServerProcess::start_healthy(&run.data_dir, &run.logs.join(format!("server-{cycle}.log")), &[]).await
}

/// A response never reports a revision that a crash could take back. A
/// mutation that changes nothing (here: adding a conversation already in
/// the group, ALREADY_IN_GROUP) answers with the caller's current revision;
/// while another change of the same caller is committed but not yet
/// flushed, that revision is not durable, so the answer must wait for the
/// flush, as reads do. Otherwise a client that watches from the revision it
/// was given is refused (REVISION_IN_FUTURE), and after a crash at that
/// moment the revision it saw is taken back and handed to a different
/// change. Checked from outside: right after a no-op answer with revision
/// R, a watch from R + 1 must be accepted (R is at most the current durable
/// revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_report_only_durable_revisions() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("data");
    let token = mint_token(&data_dir, "prober", false);
    let server = ServerProcess::start_healthy(&data_dir, &tmp.path().join("server.log"), &[]).await;
    let mut gc = group_client(server.try_channel().await.expect("connect"), &token);
    let create = CreateConversationGroupRequest {
        group_name: "G".into(),
        conversation_ids: vec!["C2Cfixed".into()],
        expected_revision: None,
        ..Default::default()
    };
    gc.create_conversation_group(create).await.expect("create G");

    // Two writers keep changing the same user's group.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut changers = Vec::new();
    for k in 0..2 {
        let mut gc = group_client(server.try_channel().await.expect("connect"), &token);
        let stop = stop.clone();
        changers.push(tokio::spawn(async move {
            let id = format!("C2Cflip{k}");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ids = vec![id.clone()];
                gc.add_conversations_to_group(AddConversationsToGroupRequest {
                    group_name: "G".into(),
                    conversation_ids: ids.clone(),
                    expected_revision: None,
                    ..Default::default()
                })
                .await
                .expect("add");
                gc.delete_conversations_from_group(DeleteConversationsFromGroupRequest {
                    group_name: "G".into(),
                    conversation_ids: ids,
                    expected_revision: None,
                    ..Default::default()
                })
                .await
                .expect("remove");
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(8);
    let mut probes = 0;
    let mut violation = None;
    // The watches are opened and dropped on their own connection, renewed
    // every 500: the h2 client closes a connection after 1,024 streams it
    // cancelled itself (its `too_many_internal_resets` guard), which a
    // release build reaches within the 8 s.
    let mut watcher = group_client(server.try_channel().await.expect("connect"), &token);
    while Instant::now() < deadline && violation.is_none() {
        probes += 1;
        if probes % 500 == 0 {
            watcher = group_client(server.try_channel().await.expect("connect"), &token);
        }
        let noop = AddConversationsToGroupRequest {
            group_name: "G".into(),
            conversation_ids: vec!["C2Cfixed".into()],
            expected_revision: None,
            ..Default::default()
        };
        let answer = gc.add_conversations_to_group(noop).await.expect("no-op add").into_inner();
        assert!(answer.success_conversation_ids.is_empty(), "C2Cfixed was already in G: {answer:?}");
        let revision = answer.revision;
        match watcher.watch_group_events(watch_request(revision + 1, false)).await {
            Ok(stream) => drop(stream),
            Err(status) => violation = Some((revision, status)),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in changers {
        task.await.expect("changer");
    }
    if let Some((revision, status)) = violation {
        panic!(
            "after {probes} probes: a no-op AddConversationsToGroup answered revision {revision}, and a watch from \
             {} right after was refused with {:?} {:?}: {:?}. The answer reported a revision that was not durable \
             yet (a crash at that moment takes it back and reuses it for another change).",
            revision + 1,
            status.code(),
            reason(&status),
            status.message()
        );
    }
    eprintln!("{probes} no-op answers, each followed by an accepted watch from the revision after it");
}
