//! The second workload of the cluster tests: the group features whose
//! commits have more moving parts than an add, run by writers on every
//! replica at once, and the checks that what they and the watchers saw
//! across a fault is what is stored.
//!
//! Every user has two plain groups `A` and `B`, a MANUAL group `M`, and
//! three smart groups: `S` (rule: unread messages), `K` (rule: mark
//! [`MARK`]) and `Q` (rule: muted). Each writer owns [`OWN`] conversations
//! of the user, each in exactly one of `A` and `B`, and in a loop:
//!
//! * upserts one of them with a new unread count and the mark set or
//!   cleared, so that it joins and leaves `S` and `K` by rule in the same
//!   commit;
//! * moves one of them from the group it is in to the other
//!   (MoveConversations: a removal and an addition in one batch);
//! * moves members of `M` in its manual order (MoveConversationsInGroup:
//!   rank rewrites in the members' keys);
//! * pins or unpins a member of `M`;
//! * now and then marks `S` read (MarkConversationGroupRead: every member
//!   leaves `S` by rule in the same commit);
//! * now and then mutes (or unmutes) `A` with `apply_to_new_members`
//!   (SetConversationGroupMute: every member of `A` gets the receive option
//!   and joins or leaves `Q` by rule in the same commit, and `A` remembers
//!   it for the conversations that move into it later).
//!
//! Every call's outcome is recorded (acknowledged at a revision, refused as
//! not applied, or unknown), and every user is followed from revision 1 by
//! a watcher on each replica that resumes on the next one from its last
//! revision whenever its stream ends. [`check`] then holds all of it against
//! the stored log and what a surviving replica reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::move_conversations_in_group_request::Placement;
use convgroups::pb::*;

use super::{classify, follow_batches, Deployment, Outcome, Watched, CALL_TIMEOUT, USERS};
use crate::support::client::{ConvClient, GroupClient};
use crate::support::inproc::{filter, group_list, list_all, list_ids};
use crate::support::seeded::Rng;
use crate::support::watch::{assert_model_matches, from, full_log, observe, seed, Model};

/// The plain groups the writers move their conversations between.
pub const PLAIN: [&str; 2] = ["A", "B"];
/// The MANUAL group whose order and pins the writers change.
pub const MANUAL: &str = "M";
/// The smart group of conversations with unread messages.
pub const UNREAD: &str = "S";
/// The smart group of conversations marked [`MARK`].
pub const MARKED: &str = "K";
/// The smart group of muted conversations (receive option not RECEIVE).
pub const MUTED: &str = "Q";
/// The receive options the writers set on `A` (and its future members).
const MUTE_OPTS: [RecvOpt; 3] = [RecvOpt::Receive, RecvOpt::NotReceive, RecvOpt::ReceiveNotNotify];
/// The mark value of `K`'s rule.
pub const MARK: u64 = 7;
/// Conversations each writer owns (moves and upserts).
pub const OWN: usize = 4;
/// Members of `M` (shared by the writers, never leave).
pub const MANUAL_MEMBERS: usize = 8;
/// Writers (and watchers) per user: one per replica.
const REPLICAS: usize = 3;

/// Conversation `k` of writer `writer`.
pub fn own(writer: usize, k: usize) -> String {
    format!("C2Cw{writer}x{k}")
}

/// Member `k` of `M`.
pub fn manual_member(k: usize) -> String {
    format!("C2Cm{k}")
}

/// Where conversation `k` of a writer starts: `A` or `B`.
fn start_group(k: usize) -> &'static str {
    PLAIN[k % 2]
}

fn other(group: &str) -> &'static str {
    if group == PLAIN[0] {
        PLAIN[1]
    } else {
        PLAIN[0]
    }
}

/// Creates every user's groups through replica 0; returns the highest
/// revision.
pub async fn setup(deployment: &Deployment) -> u64 {
    let mut top = 0;
    for user in USERS {
        let mut client = deployment.client(0, user);
        let mut requests = Vec::new();
        for group in PLAIN {
            let ids = (0..REPLICAS)
                .flat_map(|w| (0..OWN).filter(|k| start_group(*k) == group).map(move |k| own(w, k)))
                .collect();
            requests.push(CreateConversationGroupRequest {
                group_name: group.into(),
                conversation_ids: ids,
                ..Default::default()
            });
        }
        requests.push(CreateConversationGroupRequest {
            group_name: MANUAL.into(),
            conversation_ids: (0..MANUAL_MEMBERS).map(manual_member).collect(),
            sort_mode: Some(GroupSortMode::Manual as i32),
            ..Default::default()
        });
        requests.push(CreateConversationGroupRequest {
            group_name: UNREAD.into(),
            rule: Some(GroupRule { has_unread_count: Some(true), ..Default::default() }),
            ..Default::default()
        });
        requests.push(CreateConversationGroupRequest {
            group_name: MARKED.into(),
            rule: Some(GroupRule { mark_type: Some(MARK), ..Default::default() }),
            ..Default::default()
        });
        requests.push(CreateConversationGroupRequest {
            group_name: MUTED.into(),
            rule: Some(GroupRule { muted: Some(true), ..Default::default() }),
            ..Default::default()
        });
        for request in requests {
            let name = request.group_name.clone();
            let reply = client
                .create_conversation_group(request)
                .await
                .unwrap_or_else(|s| panic!("create {name} of {user}: {s:?}"))
                .into_inner();
            assert!(reply.failed.is_empty(), "create {name} of {user}: {:?}", reply.failed);
            top = top.max(reply.revision);
        }
    }
    top
}

/// One call of a writer.
#[derive(Debug, Clone)]
pub enum Op {
    /// UpsertConversations of one conversation: its unread count, and the
    /// mark [`MARK`] added (`marked`) or removed.
    Upsert { id: String, unread: u32, marked: bool },
    /// MoveConversations of one conversation between `A` and `B`.
    Move { id: String, from: String, to: String },
    /// MoveConversationsInGroup in `M`.
    Reorder { ids: Vec<String>, placement: Placement },
    /// PinConversationsInGroup (or, `pin` false, Unpin) in `M`.
    Pin { id: String, pin: bool },
    /// MarkConversationGroupRead of `S`.
    MarkRead,
    /// SetConversationGroupMute of `A` to `opt`, with
    /// `apply_to_new_members` (always: `A` then always remembers the
    /// option its members have, which is what [`check`] relies on).
    Mute { opt: RecvOpt },
}

/// One recorded call and how it ended.
#[derive(Debug, Clone)]
pub struct Call {
    pub user: String,
    pub writer: usize,
    pub op: Op,
    pub outcome: Outcome,
    /// A move acknowledged with its conversation in `moved_conversation_ids`.
    pub moved: bool,
}

/// Makes one call; Ok(revision, whether a move moved its conversation).
async fn run(gc: &mut GroupClient, cc: &mut ConvClient, op: &Op) -> Result<(u64, bool), tonic::Status> {
    match op {
        Op::Upsert { id, unread, marked } => {
            let mut update =
                ConversationUpdate { conversation_id: id.clone(), unread_count: Some(*unread), ..Default::default() };
            if *marked {
                update.add_marks = vec![MARK];
            } else {
                update.remove_marks = vec![MARK];
            }
            let reply = cc.upsert_conversations(UpsertConversationsRequest { conversations: vec![update] }).await?;
            let reply = reply.into_inner();
            assert!(reply.failed.is_empty(), "upsert of {id}: {:?}", reply.failed);
            Ok((reply.revision, false))
        }
        Op::Move { id, from, to } => {
            let request = MoveConversationsRequest {
                conversation_ids: vec![id.clone()],
                from_group_name: from.clone(),
                to: vec![GroupSelector { group_name: to.clone(), ..Default::default() }],
                ..Default::default()
            };
            let reply = gc.move_conversations(request).await?.into_inner();
            let moved = reply.moved_conversation_ids.contains(id);
            // Each conversation is in exactly one of A and B: one that did
            // not move was not in `from`, and nothing else can fail.
            let not_in_from = reply
                .failed
                .iter()
                .any(|f| f.conversation_id == *id && f.code == ConversationResultCode::NotInGroup as i32);
            assert!(moved != not_in_from, "move of {id} from {from} to {to}: {reply:?}");
            if moved {
                assert_eq!(reply.targets[0].added_conversation_ids, vec![id.clone()], "move of {id}: {reply:?}");
            }
            Ok((reply.revision, moved))
        }
        Op::Reorder { ids, placement } => {
            let request = MoveConversationsInGroupRequest {
                group_name: MANUAL.into(),
                conversation_ids: ids.clone(),
                placement: Some(placement.clone()),
                ..Default::default()
            };
            let reply = gc.move_conversations_in_group(request).await?.into_inner();
            assert!(reply.failed.is_empty(), "reorder of {ids:?}: {:?}", reply.failed);
            Ok((reply.revision, false))
        }
        Op::Pin { id, pin: true } => {
            let request = PinConversationsInGroupRequest {
                group_name: MANUAL.into(),
                conversation_ids: vec![id.clone()],
                ..Default::default()
            };
            Ok((gc.pin_conversations_in_group(request).await?.into_inner().revision, false))
        }
        Op::Pin { id, pin: false } => {
            let request = UnpinConversationsInGroupRequest {
                group_name: MANUAL.into(),
                conversation_ids: vec![id.clone()],
                ..Default::default()
            };
            Ok((gc.unpin_conversations_in_group(request).await?.into_inner().revision, false))
        }
        Op::MarkRead => {
            let request = MarkConversationGroupReadRequest { group_name: UNREAD.into(), ..Default::default() };
            Ok((gc.mark_conversation_group_read(request).await?.into_inner().revision, false))
        }
        Op::Mute { opt } => {
            let request = SetConversationGroupMuteRequest {
                group_name: PLAIN[0].into(),
                recv_opt: *opt as i32,
                apply_to_new_members: true,
                ..Default::default()
            };
            let reply = gc.set_conversation_group_mute(request).await?.into_inner();
            let remembered = reply.group.as_ref().and_then(|g| g.new_member_recv_opt);
            assert_eq!(remembered, Some(*opt as i32), "mute of A to {opt:?}: {reply:?}");
            Ok((reply.revision, false))
        }
    }
}

/// The next call of a writer that believes its conversations are in
/// `place` (None: unknown after a call with an unknown outcome).
fn choose(rng: &mut Rng, writer: usize, place: &[Option<&'static str>]) -> Op {
    let roll = rng.below(100);
    if roll < 35 {
        let k = rng.below(OWN as u64) as usize;
        Op::Upsert { id: own(writer, k), unread: *rng.pick(&[0u32, 0, 1, 4]), marked: rng.chance(1, 2) }
    } else if roll < 62 {
        let k = rng.below(OWN as u64) as usize;
        let from = place[k].unwrap_or_else(|| *rng.pick(&PLAIN));
        Op::Move { id: own(writer, k), from: from.into(), to: other(from).into() }
    } else if roll < 77 {
        let mut members: Vec<String> = (0..MANUAL_MEMBERS).map(manual_member).collect();
        rng.shuffle(&mut members);
        let count = rng.range(1, 2) as usize;
        let ids = members[..count].to_vec();
        let anchor = members[count].clone();
        let placement = match rng.below(4) {
            0 => Placement::ToStart(true),
            1 => Placement::ToEnd(true),
            2 => Placement::BeforeConversationId(anchor),
            _ => Placement::AfterConversationId(anchor),
        };
        Op::Reorder { ids, placement }
    } else if roll < 88 {
        Op::Pin { id: manual_member(rng.below(MANUAL_MEMBERS as u64) as usize), pin: rng.chance(1, 2) }
    } else if roll < 97 {
        Op::Mute { opt: *rng.pick(&MUTE_OPTS) }
    } else {
        Op::MarkRead
    }
}

/// The running workload: writers and watchers of every user.
pub struct GroupWorkload {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    watchers: Vec<(String, tokio::task::JoinHandle<Watched>)>,
    watch_stop: Arc<Mutex<HashMap<String, u64>>>,
}

/// What the workload recorded, for [`check`].
pub struct GroupRecorded {
    pub calls: Vec<Call>,
    /// Every watcher's batches, by user.
    pub seen: Vec<(String, Watched)>,
}

impl GroupWorkload {
    /// Starts writers on every replica and watchers from revision 1 (each
    /// user's whole history, [`setup`] included) on every replica.
    pub fn start(deployment: &Deployment) -> Self {
        let seed = seed();
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let watch_stop = Arc::new(Mutex::new(HashMap::new()));
        let (mut writers, mut watchers) = (Vec::new(), Vec::new());
        for (u, user) in USERS.iter().enumerate() {
            let clients: Vec<(GroupClient, ConvClient)> =
                (0..REPLICAS).map(|r| (deployment.client(r, user), deployment.conv_client(r, user))).collect();
            for writer in 0..REPLICAS {
                let (stop, calls, mut clients) = (stop.clone(), calls.clone(), clients.clone());
                let user = user.to_string();
                let mut rng = Rng::derive(seed, (u * REPLICAS + writer) as u64);
                writers.push(tokio::spawn(async move {
                    let mut at = writer;
                    let mut place: Vec<Option<&'static str>> = (0..OWN).map(|k| Some(start_group(k))).collect();
                    while !stop.load(Ordering::Acquire) {
                        let op = choose(&mut rng, writer, &place);
                        let (gc, cc) = &mut clients[at];
                        let result = match tokio::time::timeout(CALL_TIMEOUT, run(gc, cc, &op)).await {
                            Ok(result) => result,
                            Err(_) => Err(tonic::Status::deadline_exceeded("client timeout")),
                        };
                        let moved = matches!(result, Ok((_, true)));
                        let outcome = classify(result.map(|(revision, _)| revision));
                        if let Op::Move { id, to, .. } = &op {
                            let k = (0..OWN).find(|k| own(writer, *k) == *id).expect("own conversation");
                            match outcome {
                                // Moved, or was not in `from`: it is in `to`.
                                Outcome::Ok(_) => place[k] = PLAIN.iter().copied().find(|g| *g == to.as_str()),
                                Outcome::Unknown(_) => place[k] = None,
                                Outcome::NotApplied(_) => {}
                            }
                        }
                        if !matches!(outcome, Outcome::Ok(_)) {
                            at = (at + 1) % clients.len();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        calls.lock().unwrap().push(Call { user: user.clone(), writer, op, outcome, moved });
                    }
                }));
            }
            for first in 0..REPLICAS {
                let clients = clients.iter().map(|(gc, _)| gc.clone()).collect();
                let (watch_stop, user) = (watch_stop.clone(), user.to_string());
                watchers.push((user.clone(), tokio::spawn(follow_batches(clients, first, 1, user, watch_stop))));
            }
        }
        Self { stop, calls, writers, watchers, watch_stop }
    }

    /// A writer of `user` for the test's own calls, recorded with the
    /// workload's.
    pub fn extra_writer(&self, deployment: &Deployment, user: &str) -> ExtraWriter {
        ExtraWriter::new(deployment, user, self.calls.clone())
    }

    /// A writer of `user` whose calls nothing records: for calls after the
    /// workload's check.
    pub fn extra_writer_on(deployment: &Deployment, user: &str) -> ExtraWriter {
        ExtraWriter::new(deployment, user, Arc::default())
    }

    /// Stops the writers, reads every user's revision through `replica`,
    /// lets every watcher run until it has seen it, and returns the calls and
    /// what each watcher saw.
    pub async fn finish(self, deployment: &Deployment, replica: usize) -> GroupRecorded {
        self.stop.store(true, Ordering::Release);
        for writer in self.writers {
            writer.await.expect("writer task");
        }
        let mut through = HashMap::new();
        for user in USERS {
            through.insert(user.to_string(), current_revision(&mut deployment.client(replica, user)).await);
        }
        *self.watch_stop.lock().unwrap() = through;
        let mut seen = Vec::new();
        for (user, watcher) in self.watchers {
            let result = tokio::time::timeout(Duration::from_secs(60), watcher)
                .await
                .unwrap_or_else(|_| panic!("a watcher of {user} did not reach its final revision within 60 s"));
            seen.push((user, result.expect("watcher task")));
        }
        let calls = self.calls.lock().unwrap().clone();
        GroupRecorded { calls, seen }
    }
}

/// A writer of one user that a test drives itself (next to the workload's),
/// one call at a time on the replica it names; its calls are recorded with
/// the workload's, as writer [`EXTRA_WRITER`], and checked with them.
#[derive(Clone)]
pub struct ExtraWriter {
    user: String,
    clients: Vec<(GroupClient, ConvClient)>,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// The `writer` of the calls of an [`ExtraWriter`].
pub const EXTRA_WRITER: usize = 99;

impl ExtraWriter {
    fn new(deployment: &Deployment, user: &str, calls: Arc<Mutex<Vec<Call>>>) -> Self {
        let clients = (0..REPLICAS).map(|r| (deployment.client(r, user), deployment.conv_client(r, user))).collect();
        Self { user: user.to_string(), clients, calls }
    }

    /// Makes `op` through `replica`, records how it ended, and returns what
    /// the server answered.
    pub async fn call(&mut self, replica: usize, op: Op) -> Result<u64, tonic::Status> {
        let (gc, cc) = &mut self.clients[replica];
        let result = match tokio::time::timeout(CALL_TIMEOUT, run(gc, cc, &op)).await {
            Ok(result) => result,
            Err(_) => Err(tonic::Status::deadline_exceeded("client timeout")),
        };
        let moved = matches!(result, Ok((_, true)));
        let result = result.map(|(revision, _)| revision);
        let outcome = classify(result.clone());
        let call = Call { user: self.user.clone(), writer: EXTRA_WRITER, op, outcome, moved };
        self.calls.lock().unwrap().push(call);
        result
    }
}

/// The user's revision, read through `client`.
pub async fn current_revision(client: &mut GroupClient) -> u64 {
    client
        .get_conversation_group_list(GetConversationGroupListRequest::default())
        .await
        .expect("group list")
        .into_inner()
        .revision
}

/// A user's state folded from events: the [`Model`] (groups and members,
/// each batch checked for consistency), plus `M`'s manual order and pins.
#[derive(Debug, Clone)]
struct Folded {
    model: Model,
    /// `M`'s manual order (pinned members included, in their place).
    order: Vec<String>,
    /// `M`'s pinned members, in order.
    pins: Vec<String>,
    /// The receive option `A` gives conversations that join it
    /// (`new_member_recv_opt`), from its GroupMuteChanged events.
    remembered: Option<i32>,
    /// Each conversation's receive option, where the events say it was set
    /// (the rest are RECEIVE): a mute of `A` sets it on every member of
    /// `A`, a move into `A` sets `A`'s remembered option. Nothing else in
    /// the workload changes it.
    recv: BTreeMap<String, i32>,
    /// Counts of what the events did, to show the workload did it.
    rule_joins: usize,
    rule_leaves: usize,
    moves: usize,
    reorders: usize,
    pin_changes: usize,
    mutes: usize,
    /// Moves into `A` that gave the conversation `A`'s remembered option.
    mute_joins: usize,
}

impl Folded {
    fn new() -> Self {
        Self {
            model: Model::empty(),
            order: Vec::new(),
            pins: Vec::new(),
            remembered: None,
            recv: BTreeMap::new(),
            rule_joins: 0,
            rule_leaves: 0,
            moves: 0,
            reorders: 0,
            pin_changes: 0,
            mutes: 0,
            mute_joins: 0,
        }
    }

    /// The receive option of `id` by the events so far.
    fn recv_opt(&self, id: &str) -> i32 {
        self.recv.get(id).copied().unwrap_or(RecvOpt::Receive as i32)
    }

    fn members(&self, group: &str) -> Option<&BTreeSet<String>> {
        self.model.groups.iter().find(|(name, _)| name == group).map(|(_, members)| members)
    }

    /// Applies one batch, checking what the workload promises after every
    /// batch: a MOVED removal has its addition in the same batch, and each
    /// writer's conversation is in exactly one of `A` and `B`.
    fn apply(&mut self, batch: &EventBatch) -> Result<(), String> {
        let rev = batch.revision;
        self.model.apply(batch)?;
        for event in &batch.events {
            match &event.kind {
                Some(Ev::GroupCreated(c)) if c.group_name == MANUAL => self.order = c.conversation_ids.clone(),
                Some(Ev::GroupOrderChanged(o)) if o.group_name == MANUAL && !o.conversation_ids.is_empty() => {
                    self.reorders += 1;
                    self.order.retain(|id| !o.conversation_ids.contains(id));
                    let at = if o.after_conversation_id.is_empty() {
                        0
                    } else {
                        let anchor = self.order.iter().position(|id| *id == o.after_conversation_id);
                        anchor.ok_or_else(|| format!("revision {rev}: anchor of {o:?} not in {:?}", self.order))? + 1
                    };
                    self.order.splice(at..at, o.conversation_ids.iter().cloned());
                }
                Some(Ev::GroupPinsChanged(p)) if p.group_name == MANUAL => {
                    self.pin_changes += 1;
                    self.pins = p.pinned_conversation_ids.clone();
                }
                Some(Ev::ConversationsAddedToGroup(a)) if a.reason == AdditionReason::Rule as i32 => {
                    self.rule_joins += a.conversation_ids.len()
                }
                Some(Ev::ConversationsDeletedFromGroup(d)) if d.reason == RemovalReason::Rule as i32 => {
                    self.rule_leaves += d.conversation_ids.len()
                }
                Some(Ev::ConversationsDeletedFromGroup(d)) if d.reason == RemovalReason::Moved as i32 => {
                    if !PLAIN.contains(&d.group_name.as_str()) {
                        return Err(format!("revision {rev}: a move out of {:?}: {d:?}", d.group_name));
                    }
                    let target = other(&d.group_name);
                    for id in &d.conversation_ids {
                        self.moves += 1;
                        let added = batch.events.iter().any(|e| match &e.kind {
                            Some(Ev::ConversationsAddedToGroup(a)) => {
                                a.group_name == target && a.conversation_ids.contains(id)
                            }
                            _ => false,
                        });
                        if !added {
                            return Err(format!(
                                "revision {rev}: {id} moved out of {} without its addition to {target} in the same \
                                 batch: {batch:?}",
                                d.group_name
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        self.apply_mute(batch)?;
        if let (Some(a), Some(b)) = (self.members(PLAIN[0]), self.members(PLAIN[1])) {
            for writer in 0..REPLICAS {
                for k in 0..OWN {
                    let id = own(writer, k);
                    if a.contains(&id) == b.contains(&id) {
                        return Err(format!(
                            "revision {rev}: {id} is in {} of A and B (half a move?)",
                            if a.contains(&id) { "both" } else { "neither" }
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows the receive options through one batch. Every mute of the
    /// workload has `apply_to_new_members`, so from the first one on, `A`
    /// remembers the option all its members have: a mute that leaves the
    /// remembered option as it was changes no member either, and writes no
    /// batch. A batch with `A`'s GroupMuteChanged is therefore a mute, and
    /// gives its option to every member of `A`; an addition to `A` gives the
    /// conversation `A`'s remembered option, if any.
    fn apply_mute(&mut self, batch: &EventBatch) -> Result<(), String> {
        let rev = batch.revision;
        let muted = batch.events.iter().find_map(|e| match &e.kind {
            Some(Ev::GroupMuteChanged(m)) if m.group_name == PLAIN[0] => Some(m.clone()),
            _ => None,
        });
        if let Some(m) = muted {
            let opt = m
                .new_member_recv_opt
                .ok_or_else(|| format!("revision {rev}: A forgot its option, but every mute remembers: {m:?}"))?;
            self.mutes += 1;
            self.remembered = Some(opt);
            let members = self.members(PLAIN[0]).cloned().unwrap_or_default();
            for id in members {
                self.recv.insert(id, opt);
            }
            return Ok(());
        }
        let Some(opt) = self.remembered else { return Ok(()) };
        for event in &batch.events {
            if let Some(Ev::ConversationsAddedToGroup(a)) = &event.kind {
                if a.group_name == PLAIN[0] {
                    for id in &a.conversation_ids {
                        self.mute_joins += 1;
                        self.recv.insert(id.clone(), opt);
                    }
                }
            }
        }
        Ok(())
    }

    /// `M` as a listing filtered by it shows it: its pins, then the rest in
    /// manual order.
    fn manual_listing(&self) -> Vec<String> {
        let mut listing = self.pins.clone();
        listing.extend(self.order.iter().filter(|id| !self.pins.contains(id)).cloned());
        listing
    }
}

/// The checks of the group workload, through `replica` (a survivor), for
/// every user:
///
/// * every watcher's batches are the stored log's (a fresh replay from
///   revision 1 through the final revision) exactly: strictly increasing,
///   no gap, no duplicate, the same events;
/// * folding them (adds, removals with every reason, rule joins and
///   leaves, moves) gives every group's membership that GetConversationList
///   by group returns, and the conversations it lists;
/// * no move is half applied in any batch (its MOVED removal and its
///   addition are in one batch; each writer's conversation is in exactly one
///   of `A` and `B` after every batch); an acknowledged move is in the log
///   at its revision, and a conversation's last call that may have applied,
///   if acknowledged, says where it is now;
/// * `S` and `K` hold exactly the conversations their rules select by the
///   stored fields, and each conversation's mark is the one its last
///   acknowledged upsert set, when nothing later may have changed it;
/// * `M` lists its pins then its manual order as the events say, a
///   permutation of its members;
/// * every conversation's receive option is the one the events give it
///   (a mute of `A` sets it on `A`'s members; a move into `A` gives `A`'s
///   remembered option; everything else stays RECEIVE), `A` remembers what
///   its last GroupMuteChanged says, each acknowledged mute's option is
///   `A`'s at its revision and, with no mute of unknown outcome, the last
///   acknowledged is `A`'s now; `Q` holds exactly the muted conversations.
pub async fn check(deployment: &Deployment, replica: usize, recorded: &GroupRecorded) {
    let calls = &recorded.calls;
    let count = |f: &dyn Fn(&Call) -> bool| calls.iter().filter(|c| f(c)).count();
    let acked = count(&|c| matches!(c.outcome, Outcome::Ok(_)));
    let refused = count(&|c| matches!(c.outcome, Outcome::NotApplied(_)));
    let unknown = count(&|c| matches!(c.outcome, Outcome::Unknown(_)));
    let moved = count(&|c| c.moved);
    assert!(moved > 0, "the workload moved nothing");
    // What the events did, over every user: a short run under load may
    // leave one user without some kind, but not all of them.
    let mut done = Folded::new();
    for user in USERS {
        let mut gc = deployment.client(replica, user);
        let through = current_revision(&mut gc).await;
        let log = full_log(&mut gc, from(1), through).await;
        let mut folded = Folded::new();
        // A and B after each batch, for the acknowledged moves.
        let mut plain_at: BTreeMap<u64, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        // A's remembered receive option after each batch, for the
        // acknowledged mutes.
        let mut remembered_at: BTreeMap<u64, Option<i32>> = BTreeMap::new();
        for batch in &log {
            if let Err(why) = folded.apply(batch) {
                panic!("the stored log of {user}: {why}");
            }
            remembered_at.insert(batch.revision, folded.remembered);
            if let (Some(a), Some(b)) = (folded.members(PLAIN[0]), folded.members(PLAIN[1])) {
                plain_at.insert(batch.revision, (a.clone(), b.clone()));
            }
        }
        let observed = observe(&mut gc).await;
        assert_model_matches(&folded.model, &observed, &format!("{user}: the stored log"));
        for (_, seen) in recorded.seen.iter().filter(|(u, _)| u == user) {
            let revisions: Vec<u64> = seen.batches.iter().map(|b| b.revision).collect();
            let stored: Vec<u64> = log.iter().map(|b| b.revision).collect();
            assert_eq!(
                revisions, stored,
                "a watcher of {user}: its batches' revisions vs the stored log's (endings: {:?})",
                seen.endings
            );
            assert!(seen.batches == log, "a watcher of {user} received batches that differ from the stored log");
            let mut mine = Folded::new();
            for batch in &seen.batches {
                if let Err(why) = mine.apply(batch) {
                    panic!("a watcher of {user}: {why} (endings: {:?})", seen.endings);
                }
            }
            assert_model_matches(&mine.model, &observed, &format!("{user}: a watcher's events"));
        }

        // Moves.
        let group_of = |revision: u64, id: &str| {
            let (_, (a, b)) = plain_at.range(..=revision).next_back().expect("A and B exist at the revision");
            match (a.contains(id), b.contains(id)) {
                (true, false) => PLAIN[0],
                (false, true) => PLAIN[1],
                _ => unreachable!("checked while folding"),
            }
        };
        let now_a = folded.members(PLAIN[0]).expect("A").clone();
        for writer in 0..REPLICAS {
            for k in 0..OWN {
                let id = own(writer, k);
                let moves: Vec<&Call> = calls
                    .iter()
                    .filter(|c| c.user == user && matches!(&c.op, Op::Move { id: i, .. } if *i == id))
                    .collect();
                for call in &moves {
                    let (Outcome::Ok(revision), Op::Move { from, to, .. }) = (&call.outcome, &call.op) else {
                        continue;
                    };
                    assert_eq!(
                        group_of(*revision, &id),
                        to,
                        "{id} of {user}: a move from {from} acknowledged at {revision} (moved: {}) but the log has it \
                         elsewhere then",
                        call.moved
                    );
                    if call.moved {
                        let batch = log.iter().find(|b| b.revision == *revision);
                        let removal = batch.is_some_and(|b| {
                            b.events.iter().any(|e| {
                                matches!(&e.kind, Some(Ev::ConversationsDeletedFromGroup(d))
                                    if d.reason == RemovalReason::Moved as i32
                                        && d.group_name == *from
                                        && d.conversation_ids.contains(&id))
                            })
                        });
                        assert!(removal, "{id} of {user}: moved at {revision}, no MOVED removal in that batch");
                    }
                }
                // The writer's calls on `id` are one after another: the last
                // that may have applied says where it is, if acknowledged.
                let last = moves.iter().rev().find(|c| !matches!(c.outcome, Outcome::NotApplied(_)));
                if let Some(Call { outcome: Outcome::Ok(revision), op: Op::Move { to, .. }, .. }) = last {
                    let now = if now_a.contains(&id) { PLAIN[0] } else { PLAIN[1] };
                    assert_eq!(now, to, "{id} of {user}: its last call, acknowledged at {revision}, moved it to {to}");
                }
            }
        }

        // Smart groups: membership is the rules applied to stored fields.
        let conversations = list_all(&mut gc, None).await;
        let unread: BTreeSet<String> =
            conversations.iter().filter(|c| c.unread_count > 0).map(|c| c.conversation_id.clone()).collect();
        let marked: BTreeSet<String> =
            conversations.iter().filter(|c| c.mark_list.contains(&MARK)).map(|c| c.conversation_id.clone()).collect();
        let listed = |group: &str| observed.groups.iter().find(|(n, _)| n == group).expect("group").1.clone();
        assert_eq!(listed(UNREAD), unread, "{user}: S's members vs the conversations with unread messages");
        assert_eq!(listed(MARKED), marked, "{user}: K's members vs the conversations marked {MARK}");
        let muted: BTreeSet<String> = conversations
            .iter()
            .filter(|c| c.recv_opt != RecvOpt::Receive as i32)
            .map(|c| c.conversation_id.clone())
            .collect();
        assert_eq!(listed(MUTED), muted, "{user}: Q's members vs the muted conversations");
        for writer in 0..REPLICAS {
            for k in 0..OWN {
                let id = own(writer, k);
                let last = calls.iter().rev().find(|c| {
                    c.user == user
                        && !matches!(c.outcome, Outcome::NotApplied(_))
                        && matches!(&c.op, Op::Upsert { id: i, .. } if *i == id)
                });
                if let Some(Call { outcome: Outcome::Ok(revision), op: Op::Upsert { marked: mark, .. }, .. }) = last {
                    assert_eq!(
                        marked.contains(&id),
                        *mark,
                        "{id} of {user}: its last upsert, acknowledged at {revision}, set the mark to {mark}"
                    );
                }
            }
        }

        // Receive options: what the mutes of A and the moves into it say.
        let a_group = group_list(&mut gc).await.groups.into_iter().find(|g| g.name == PLAIN[0]).expect("A");
        assert_eq!(
            a_group.new_member_recv_opt, folded.remembered,
            "{user}: A's stored new_member_recv_opt vs its GroupMuteChanged events"
        );
        for conversation in &conversations {
            let id = &conversation.conversation_id;
            assert_eq!(
                conversation.recv_opt,
                folded.recv_opt(id),
                "{user}: {id}'s receive option vs the mutes of A and the moves into it (now in A: {})",
                now_a.contains(id)
            );
        }
        let mutes: Vec<&Call> = calls.iter().filter(|c| c.user == user && matches!(c.op, Op::Mute { .. })).collect();
        for call in &mutes {
            if let (Outcome::Ok(revision), Op::Mute { opt }) = (&call.outcome, &call.op) {
                let then = remembered_at.range(..=*revision).next_back().and_then(|(_, r)| *r);
                assert_eq!(
                    then,
                    Some(*opt as i32),
                    "{user}: a mute of A to {opt:?} acknowledged at {revision}, but the log has A remembering {then:?} \
                     then"
                );
            }
        }
        // With no mute of unknown outcome, the acknowledged one with the
        // highest revision is the last: A remembers its option now (a mute
        // refused as not applied must not have applied after it).
        if mutes.iter().all(|c| !matches!(c.outcome, Outcome::Unknown(_))) {
            let last = mutes
                .iter()
                .filter_map(|c| match (&c.outcome, &c.op) {
                    (Outcome::Ok(revision), Op::Mute { opt }) => Some((*revision, *opt as i32)),
                    _ => None,
                })
                .max_by_key(|(revision, _)| *revision);
            if let Some((revision, opt)) = last {
                assert_eq!(
                    a_group.new_member_recv_opt,
                    Some(opt),
                    "{user}: A's option vs its last mute, acknowledged at {revision}"
                );
            }
        }

        // M: pins, then the manual order; every member once.
        let listing = list_ids(&mut gc, ConversationFilter { group_name: Some(MANUAL.into()), ..filter() }).await;
        let mut sorted = listing.clone();
        sorted.sort();
        let mut members: Vec<String> = (0..MANUAL_MEMBERS).map(manual_member).collect();
        members.sort();
        assert_eq!(sorted, members, "{user}: M's listing is not a permutation of its members: {listing:?}");
        assert_eq!(listing, folded.manual_listing(), "{user}: M's listing vs its pins and manual order from events");

        done.rule_joins += folded.rule_joins;
        done.rule_leaves += folded.rule_leaves;
        done.reorders += folded.reorders;
        done.pin_changes += folded.pin_changes;
        done.mutes += folded.mutes;
        done.mute_joins += folded.mute_joins;
        eprintln!(
            "checked {user}: {} batches; {} rule joins, {} rule leaves, {} moves, {} reorders, {} pin changes, {} \
             mutes, {} joins of A given its option",
            log.len(),
            folded.rule_joins,
            folded.rule_leaves,
            folded.moves,
            folded.reorders,
            folded.pin_changes,
            folded.mutes,
            folded.mute_joins
        );
    }
    assert!(done.rule_joins > 0 && done.rule_leaves > 0, "no conversation joined and left a group by rule");
    assert!(done.reorders > 0 && done.pin_changes > 0, "no M was reordered and pinned");
    assert!(done.mutes > 0, "no user's A changed its receive option");
    assert!(done.mute_joins > 0, "no conversation moved into A once it remembered an option");
    eprintln!(
        "checked: {acked} acknowledged ({moved} moves), {refused} refused, {unknown} unknown calls; {} watchers",
        recorded.seen.len()
    );
}
