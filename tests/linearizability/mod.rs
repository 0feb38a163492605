#![allow(dead_code)]
//! An independent linearizability checker for recorded convgroups histories,
//! built on stateright's [`LinearizabilityTester`] (the way Jepsen checks
//! etcd with Knossos/Porcupine).
//!
//! * [`GroupModel`] is the sequential specification of ONE user's group "G":
//!   the set of conversation ids in it and the user's revision. It implements
//!   stateright's [`SequentialSpec`]; validity is a predicate
//!   ([`SequentialSpec::is_valid_step`]) because etcd revisions increase but
//!   are not predictable.
//! * [`History`] records calls from any number of client threads (it is
//!   `Clone + Send + Sync`): [`History::invoke`] before the request is sent,
//!   then exactly one of [`History::ok`], [`History::unknown`] or
//!   [`History::failed`] once the client knows how it ended.
//! * [`check`] asks stateright for a serialization of the recorded history.
//!
//! # Performance: how the history is cut (measured in
//! `tests/linearizability_selftest.rs`)
//!
//! stateright's tester is a plain depth-first search without memoisation, and
//! it clones the remaining history and the model at every step: fed a whole
//! 2,000-op history it is quadratic at best and exponential at worst. So
//! [`check`] uses the well-known revision optimisation:
//!
//! 1. Every state change bumps the revision, so the group's state is a function
//!    of the revision, and in any linearization the revisions answered by the
//!    ops never decrease. Cheap *necessary* conditions are checked first, each
//!    reporting the two or so ops involved: no op answers a revision below the
//!    starting one; no two adds are acknowledged with the same revision; two
//!    Lists at the same revision agree; and if `a` returned before `b` was
//!    invoked then `rev(a) <= rev(b)` (`<` if `b` is an add) — acknowledged
//!    revisions give a partial order consistent with real time.
//! 2. Given those, the history is cut into windows at revisions whose state is
//!    exactly known: a List's revision (its members are the state) or an
//!    acknowledged add's revision when no unknown-outcome add of a conversation
//!    outside the computed set could have taken effect before it returned.
//!    Each window (completed ops with revisions in `(previous cut, cut]`, plus
//!    the unknown-outcome adds that may still take effect in it, at their real
//!    invocation times) is checked by stateright from the exact cut state.
//!    Step 1's real-time check is exactly what makes the concatenation of the
//!    windows' linearizations a linearization of the whole history.
//! 3. Inside a window the model is given the sorted revisions of the window's
//!    completed ops, and `is_valid_step` refuses a step that would strand an
//!    op of a lower revision (such a branch can never complete, because
//!    revisions never go back). This prunes dead branches only; verdicts are
//!    unchanged (the self-test compares against [`check_exhaustive`], which
//!    feeds the whole history unpruned into one tester).
//!
//! An unknown-outcome add whose effect nothing in the history could reveal is
//! left out (no List contains its conversation, no completed add names it, and
//! every AlreadyIn answers an acknowledged add's revision): it cannot change
//! any verdict. Such adds would otherwise prevent cuts.
//! Unknown-outcome Lists are left out too (a read constrains nothing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// An operation on the user's group "G".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// AddToGroup with one conversation id.
    Add { conversation: String },
    /// ListGroup (members and the revision they are at).
    List,
}

/// What an operation answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// The conversation was added; the change has this revision.
    Added { revision: u64 },
    /// The conversation was already in the group: a no-op, answering the
    /// current revision.
    AlreadyIn { revision: u64 },
    /// The group's members at `revision`.
    Listed { members: BTreeSet<String>, revision: u64 },
}

impl Ret {
    pub fn revision(&self) -> u64 {
        match self {
            Ret::Added { revision } | Ret::AlreadyIn { revision } | Ret::Listed { revision, .. } => *revision,
        }
    }

    fn answers(&self, op: &Op) -> bool {
        matches!(
            (op, self),
            (Op::Add { .. }, Ret::Added { .. } | Ret::AlreadyIn { .. }) | (Op::List, Ret::Listed { .. })
        )
    }
}

/// The sequential specification of one user's group "G".
///
/// `exact == false` means an add nobody saw answer (an unknown-outcome add
/// that stateright chose to apply) moved the revision to some value
/// `>= revision`; the next op that answers a revision pins it again.
#[derive(Clone, Debug)]
pub struct GroupModel {
    members: Arc<BTreeSet<String>>,
    revision: u64,
    exact: bool,
}

impl GroupModel {
    /// The group as it is when recording starts.
    pub fn new(revision: u64, members: BTreeSet<String>) -> Self {
        Self { members: Arc::new(members), revision, exact: true }
    }

    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }

    /// The revision, or its lower bound after an unseen add.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn revision_matches(&self, revision: u64) -> bool {
        if self.exact {
            revision == self.revision
        } else {
            revision >= self.revision
        }
    }
}

impl SequentialSpec for GroupModel {
    type Op = Op;
    type Ret = Ret;

    /// Applies `op` deterministically. stateright calls this only for ops whose
    /// answer was never seen (unknown outcome), so an add that takes effect
    /// answers the smallest revision it could have had (`revision + 1`) and
    /// leaves the exact revision open (`>= revision + 1`) for the next
    /// observed answer to pin.
    fn invoke(&mut self, op: &Op) -> Ret {
        match op {
            Op::List => Ret::Listed { members: (*self.members).clone(), revision: self.revision },
            Op::Add { conversation } if self.members.contains(conversation) => {
                Ret::AlreadyIn { revision: self.revision }
            }
            Op::Add { conversation } => {
                Arc::make_mut(&mut self.members).insert(conversation.clone());
                self.revision += 1;
                self.exact = false;
                Ret::Added { revision: self.revision }
            }
        }
    }

    fn is_valid_step(&mut self, op: &Op, ret: &Ret) -> bool {
        let valid = match (op, ret) {
            // A new revision, above the current one (inexact: above its lower
            // bound, which some actual revision in between allows).
            (Op::Add { conversation }, Ret::Added { revision }) => {
                !self.members.contains(conversation) && *revision > self.revision
            }
            (Op::Add { conversation }, Ret::AlreadyIn { revision }) => {
                self.members.contains(conversation) && self.revision_matches(*revision)
            }
            (Op::List, Ret::Listed { members, revision }) => {
                self.revision_matches(*revision) && *members == *self.members
            }
            _ => false,
        };
        if valid {
            if let (Op::Add { conversation }, Ret::Added { .. }) = (op, ret) {
                Arc::make_mut(&mut self.members).insert(conversation.clone());
            }
            self.revision = ret.revision();
            self.exact = true;
        }
        valid
    }
}

/// An op as [`check`] feeds it to stateright: cheap to clone (the tester
/// clones the remaining history at every step of its search), and with its
/// rank in invocation order.
#[derive(Clone, Debug)]
struct Step {
    rank: usize,
    op: Arc<Op>,
}

/// An answer as [`check`] feeds it to stateright (compared by value).
#[derive(Clone, Debug, PartialEq)]
struct Answer(Arc<Ret>);

/// [`GroupModel`] plus search pruning (module docs, point 3). Every refusal
/// below is of a step after which no linearization can exist, or of an order
/// of equivalent steps when another order is also tried, so verdicts are
/// those of [`GroupModel`]:
/// * an op answering revision `v` is placed only once every op answering a
///   lower revision has been (revisions never go back);
/// * an unseen add may take effect only once every op answering a revision
///   up to the current one has been placed (otherwise the branch is dead),
///   and only if it changes the state (else it is the same as never);
/// * reads (List, AlreadyIn) answering the same revision see the same state
///   and commute, so they are placed in invocation order, an order that
///   respects real time among them (a read is refused unless it is the next
///   one in (revision, invocation) order; without this, one read placed too
///   early makes stateright try every subset of the later ones).
#[derive(Clone, Debug)]
struct Pruned {
    model: GroupModel,
    /// Sorted revisions answered by the completed ops being checked.
    revisions: Arc<[u64]>,
    /// Sorted (revision, rank) of the completed reads being checked.
    reads: Arc<[(u64, usize)]>,
    placed: usize,
    reads_placed: usize,
    last: Option<u64>,
    dead: bool,
}

impl Pruned {
    fn new(model: GroupModel, mut completed_revisions: Vec<u64>, mut reads: Vec<(u64, usize)>) -> Self {
        completed_revisions.sort_unstable();
        reads.sort_unstable();
        Self {
            model,
            revisions: completed_revisions.into(),
            reads: reads.into(),
            placed: 0,
            reads_placed: 0,
            last: None,
            dead: false,
        }
    }

    fn below(&self, revision: u64) -> usize {
        self.revisions.partition_point(|&r| r < revision)
    }
}

impl SequentialSpec for Pruned {
    type Op = Step;
    type Ret = Answer;

    fn invoke(&mut self, step: &Step) -> Answer {
        let changes = matches!(&*step.op, Op::Add { conversation } if !self.model.members.contains(conversation));
        let ret = self.model.invoke(&step.op);
        // An unseen add that changes nothing may as well never have happened
        // (that branch is tried too): refusing it avoids doubling the search.
        if !changes || self.placed != self.below(self.model.revision) {
            self.dead = true;
        }
        Answer(Arc::new(ret))
    }

    fn is_valid_step(&mut self, step: &Step, answer: &Answer) -> bool {
        let revision = answer.0.revision();
        let read = !matches!(*answer.0, Ret::Added { .. });
        let in_order = self.last == Some(revision) || self.placed == self.below(revision);
        let read_in_order = !read || self.reads.get(self.reads_placed) == Some(&(revision, step.rank));
        if self.dead || !in_order || !read_in_order || !self.model.is_valid_step(&step.op, &answer.0) {
            return false;
        }
        self.placed += 1;
        self.last = Some(revision);
        if read {
            self.reads_placed += 1;
        }
        true
    }
}

/// Identifies a recorded call.
pub type CallId = usize;

/// A recorded history of calls. Cheap to clone; every clone records into the
/// same history. Event order is the order in which the recorder is called,
/// so call [`History::invoke`] right before sending the request and the
/// outcome right after the answer arrives: a recorded "A returned before B
/// was invoked" then really happened in that order.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Recorder>>,
}

#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
    clock: u64,
    clients: HashMap<usize, Client>,
    next_slot: usize,
}

/// A logical client (a test's `thread` number) and the stateright thread id
/// ("slot") its calls are currently recorded under.
struct Client {
    slot: usize,
    pending: Option<CallId>,
}

#[derive(Clone, Debug)]
struct Call {
    client: usize,
    slot: usize,
    op: Op,
    invoked: u64,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
enum Outcome {
    Pending,
    Ok { ret: Ret, returned: u64 },
    Unknown,
    Failed,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that client `thread` is about to send `op`.
    ///
    /// Panics if the thread's previous call is still pending: a client thread
    /// runs one call at a time (resolve the previous one first).
    pub fn invoke(&self, thread: usize, op: Op) -> CallId {
        let mut guard = self.lock();
        let rec = &mut *guard;
        let next_slot = &mut rec.next_slot;
        let client = rec.clients.entry(thread).or_insert_with(|| {
            *next_slot += 1;
            Client { slot: *next_slot - 1, pending: None }
        });
        if let Some(previous) = client.pending {
            let previous = rec.calls[previous].op.clone();
            drop(guard);
            panic!("client thread {thread} invoked {op:?} while its {previous:?} is still pending");
        }
        rec.clock += 1;
        let id = rec.calls.len();
        client.pending = Some(id);
        rec.calls.push(Call { client: thread, slot: client.slot, op, invoked: rec.clock, outcome: Outcome::Pending });
        id
    }

    fn resolve(&self, call: CallId, outcome: Outcome) {
        let mut rec = self.lock();
        let rec = &mut *rec;
        let entry = &mut rec.calls[call];
        assert!(matches!(entry.outcome, Outcome::Pending), "call #{call} ({:?}) resolved twice", entry.op);
        if let Outcome::Ok { ret, .. } = &outcome {
            assert!(ret.answers(&entry.op), "call #{call}: {:?} cannot answer {:?}", ret, entry.op);
        }
        let client = rec.clients.get_mut(&entry.client).expect("client of a recorded call");
        client.pending = None;
        if matches!(outcome, Outcome::Unknown) {
            // The call stays pending forever in the history (it may take effect
            // at any later point, or never), but the real client thread moves
            // on to its next call. stateright's tester allows one in-flight op
            // per thread id, so the client continues under a fresh id; real
            // time is still respected because the tester orders ops by
            // "returned before invoked" across all thread ids.
            client.slot = rec.next_slot;
            rec.next_slot += 1;
        }
        entry.outcome = outcome;
    }

    /// Records the answer of `call`.
    pub fn ok(&self, call: CallId, ret: Ret) {
        let returned = {
            let mut rec = self.lock();
            rec.clock += 1;
            rec.clock
        };
        self.resolve(call, Outcome::Ok { ret, returned });
    }

    /// Records that the client cannot know whether `call` took effect
    /// (timeout, dropped connection, UNAVAILABLE with `outcome: unknown`...).
    pub fn unknown(&self, call: CallId) {
        self.resolve(call, Outcome::Unknown);
    }

    /// Records that `call` is known not to have taken effect; it is dropped.
    pub fn failed(&self, call: CallId) {
        self.resolve(call, Outcome::Failed);
    }

    /// Number of calls recorded (any outcome).
    pub fn len(&self) -> usize {
        self.lock().calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (acknowledged, unknown or still pending, failed) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let rec = self.lock();
        let mut counts = (0, 0, 0);
        for call in &rec.calls {
            match call.outcome {
                Outcome::Ok { .. } => counts.0 += 1,
                Outcome::Unknown | Outcome::Pending => counts.1 += 1,
                Outcome::Failed => counts.2 += 1,
            }
        }
        counts
    }

    /// The calls that can matter: failed calls and Lists without an answer are
    /// dropped; a call still pending at check time counts as unknown.
    fn snapshot(&self) -> Vec<Rec> {
        self.lock()
            .calls
            .iter()
            .enumerate()
            .filter_map(|(id, call)| {
                let ret = match &call.outcome {
                    Outcome::Ok { ret, returned } => Some((Arc::new(ret.clone()), *returned)),
                    Outcome::Failed => return None,
                    Outcome::Unknown | Outcome::Pending if call.op == Op::List => return None,
                    Outcome::Unknown | Outcome::Pending => None,
                };
                let op = Arc::new(call.op.clone());
                Some(Rec { call: id, client: call.client, slot: call.slot, op, invoked: call.invoked, ret })
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
struct Rec {
    call: CallId,
    client: usize,
    slot: usize,
    op: Arc<Op>,
    invoked: u64,
    /// The answer and when it arrived; `None`: outcome unknown.
    ret: Option<(Arc<Ret>, u64)>,
}

impl Rec {
    fn revision(&self) -> Option<u64> {
        self.ret.as_ref().map(|(ret, _)| ret.revision())
    }

    fn returned(&self) -> Option<u64> {
        self.ret.as_ref().map(|(_, t)| *t)
    }

    fn answer(&self) -> Option<&Ret> {
        self.ret.as_ref().map(|(ret, _)| &**ret)
    }

    fn is_added(&self) -> bool {
        matches!(self.answer(), Some(Ret::Added { .. }))
    }

    fn conversation(&self) -> Option<&str> {
        match &*self.op {
            Op::Add { conversation } => Some(conversation),
            Op::List => None,
        }
    }

    fn listed(&self) -> Option<&BTreeSet<String>> {
        match self.answer() {
            Some(Ret::Listed { members, .. }) => Some(members),
            _ => None,
        }
    }

    /// stateright thread id: unknown-outcome ops sort after the others, so the
    /// depth-first search tries completed ops first and applies an unseen add
    /// only when it has to.
    fn thread(&self) -> (bool, usize) {
        (self.ret.is_none(), self.slot)
    }

    /// One line, with a List's members as a difference against `base`.
    fn describe(&self, base: &BTreeSet<String>) -> String {
        let when = match self.returned() {
            Some(t) => format!("@{}..@{}", self.invoked, t),
            None => format!("@{}..", self.invoked),
        };
        let op = match &*self.op {
            Op::Add { conversation } => format!("Add {conversation:?}"),
            Op::List => "List".to_string(),
        };
        let ret = match self.answer() {
            None => "outcome unknown".to_string(),
            Some(Ret::Listed { members, revision }) => {
                format!("Listed rev {revision}, {} members{}", members.len(), diff(members, base))
            }
            Some(Ret::Added { revision }) => format!("Added rev {revision}"),
            Some(Ret::AlreadyIn { revision }) => format!("AlreadyIn rev {revision}"),
        };
        format!("#{} client {} {when}: {op} -> {ret}", self.call, self.client)
    }
}

fn diff(members: &BTreeSet<String>, base: &BTreeSet<String>) -> String {
    fn some(set: Vec<&String>) -> String {
        let shown: Vec<&str> = set.iter().take(8).map(|s| s.as_str()).collect();
        let more = if set.len() > 8 { format!(" +{} more", set.len() - 8) } else { String::new() };
        format!("{shown:?}{more}")
    }
    let extra: Vec<&String> = members.difference(base).collect();
    let missing: Vec<&String> = base.difference(members).collect();
    match (extra.is_empty(), missing.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" (+{})", some(extra)),
        (true, false) => format!(" (missing {})", some(missing)),
        (false, false) => format!(" (+{}, missing {})", some(extra), some(missing)),
    }
}

/// How many completed ops a window holds at least before it is cut (when a
/// cut is possible). Small windows are cheaper for stateright (it clones the
/// remaining history at every step); the self-test measures the default.
pub const DEFAULT_MIN_WINDOW_OPS: usize = 16;

/// Checks that `history` is linearizable with respect to [`GroupModel`]
/// starting from (`initial_revision`, `initial_members`).
///
/// Ok: how many ops were checked (acknowledged ops plus unknown-outcome adds
/// that matter). Err: why not, with the few ops involved.
pub fn check(history: &History, initial_revision: u64, initial_members: BTreeSet<String>) -> Result<usize, String> {
    check_windowed(history, initial_revision, initial_members, DEFAULT_MIN_WINDOW_OPS)
}

/// [`check`] with a chosen minimum window size (1: cut wherever possible).
pub fn check_windowed(
    history: &History,
    initial_revision: u64,
    initial_members: BTreeSet<String>,
    min_window_ops: usize,
) -> Result<usize, String> {
    let recs = history.snapshot();
    precheck(&recs, initial_revision, &initial_members)?;
    let relevant = relevant_unknowns(&recs);
    let checked = recs.iter().filter(|r| r.ret.is_some()).count() + relevant.len();
    let windows = windows(&recs, &relevant, initial_revision, initial_members, min_window_ops.max(1));
    with_big_stack(|| {
        for window in &windows {
            let events = events(&recs, &window.ops);
            let ok = linearizable(&recs, window.start_revision, &window.start_members, &events);
            if !ok {
                return Err(explain(&recs, window, &events));
            }
        }
        Ok(checked)
    })
}

/// The reference path: the whole history, unpruned, in one stateright tester
/// (every unknown-outcome add included). Exponential: for small histories
/// only (the self-test compares it with [`check`]).
pub fn check_exhaustive(
    history: &History,
    initial_revision: u64,
    initial_members: BTreeSet<String>,
) -> Result<usize, String> {
    let recs = history.snapshot();
    let all: Vec<usize> = (0..recs.len()).collect();
    let events = events(&recs, &all);
    if with_big_stack(|| linearizable_reference(&recs, initial_revision, initial_members, &events)) {
        Ok(recs.len())
    } else {
        Err(format!("stateright found no linearization of the {} ops", recs.len()))
    }
}

fn with_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    // stateright's search recurses once per op placed.
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("linearizability".into())
            .stack_size(256 << 20)
            .spawn_scoped(scope, f)
            .expect("spawn the checker thread");
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The necessary conditions of the module docs, point 1.
fn precheck(recs: &[Rec], initial_revision: u64, initial: &BTreeSet<String>) -> Result<(), String> {
    let completed = || recs.iter().filter(|r| r.ret.is_some());
    for rec in completed() {
        let revision = rec.revision().unwrap_or_default();
        if revision < initial_revision || (rec.is_added() && revision == initial_revision) {
            return Err(format!(
                "not linearizable: an op answered revision {revision}, but recording started at revision \
                 {initial_revision}:\n  {}",
                rec.describe(initial)
            ));
        }
    }
    let mut added: HashMap<u64, &Rec> = HashMap::new();
    for rec in completed().filter(|r| r.is_added()) {
        let revision = rec.revision().unwrap_or_default();
        if let Some(other) = added.insert(revision, rec) {
            return Err(format!(
                "not linearizable: two adds were acknowledged with the same revision {revision}:\n  {}\n  {}",
                other.describe(initial),
                rec.describe(initial)
            ));
        }
    }
    // Real time against revisions: sweep the events in order, remembering the
    // highest revision answered so far; each op invoked later must answer at
    // least that (more, if it is an add).
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, rec) in recs.iter().enumerate() {
        if let Some(returned) = rec.returned() {
            events.push((rec.invoked, false, i));
            events.push((returned, true, i));
        }
    }
    events.sort_unstable();
    let mut highest: Option<usize> = None;
    for (_, is_return, i) in events {
        let rec = &recs[i];
        let revision = rec.revision().unwrap_or_default();
        if is_return {
            if highest.is_none_or(|h| recs[h].revision() < Some(revision)) {
                highest = Some(i);
            }
            continue;
        }
        let Some(h) = highest else { continue };
        let before = recs[h].revision().unwrap_or_default();
        if revision < before || (rec.is_added() && revision == before) {
            let relation = if revision < before { "below" } else { "not above" };
            return Err(format!(
                "not linearizable: the first op returned before the second was invoked, so the second takes effect \
                 later, yet its revision {revision} is {relation} {before}:\n  {}\n  {}",
                recs[h].describe(initial),
                rec.describe(recs[h].listed().unwrap_or(initial))
            ));
        }
    }
    let mut lists: HashMap<u64, &Rec> = HashMap::new();
    for rec in completed() {
        let Some(members) = rec.listed() else { continue };
        let revision = rec.revision().unwrap_or_default();
        if let Some(other) = lists.insert(revision, rec) {
            if other.listed() != Some(members) {
                return Err(format!(
                    "not linearizable: two Lists at revision {revision} disagree (the group has one state per \
                     revision):\n  {}\n  {}",
                    other.describe(initial),
                    rec.describe(other.listed().unwrap_or(initial))
                ));
            }
        }
    }
    Ok(())
}

/// The unknown-outcome adds that can matter. One that took effect is seen by
/// a List after it (the List contains its conversation), by a completed add of
/// the same conversation, or by an AlreadyIn answering the revision it made
/// (one no acknowledged add made). If none of that is in the history, the
/// add changes no verdict and is left out.
fn relevant_unknowns(recs: &[Rec]) -> Vec<usize> {
    let completed = || recs.iter().filter(|r| r.ret.is_some());
    let added: BTreeSet<u64> = completed().filter(|r| r.is_added()).filter_map(Rec::revision).collect();
    let unexplained_no_op =
        completed().any(|r| matches!(r.answer(), Some(Ret::AlreadyIn { revision }) if !added.contains(revision)));
    let named: BTreeSet<&str> = completed().filter_map(Rec::conversation).collect();
    let lists: Vec<&BTreeSet<String>> = recs.iter().filter_map(Rec::listed).collect();
    (0..recs.len())
        .filter(|&i| recs[i].ret.is_none())
        .filter(|&i| {
            let c = recs[i].conversation().unwrap_or_default();
            unexplained_no_op || named.contains(c) || lists.iter().any(|members| members.contains(c))
        })
        .collect()
}

struct Window {
    start_revision: u64,
    start_members: Arc<BTreeSet<String>>,
    /// Indices into the records: completed ops, then unknown-outcome adds.
    ops: Vec<usize>,
}

/// The cuts of the module docs, point 2.
fn windows(
    recs: &[Rec],
    unknowns: &[usize],
    initial_revision: u64,
    initial_members: BTreeSet<String>,
    min_ops: usize,
) -> Vec<Window> {
    let mut by_revision: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, rec) in recs.iter().enumerate() {
        if let Some(revision) = rec.revision() {
            by_revision.entry(revision).or_default().push(i);
        }
    }
    let mut windows = Vec::new();
    let mut start_revision = initial_revision;
    let mut start_members = Arc::new(initial_members);
    let mut members = (*start_members).clone();
    let mut ops: Vec<usize> = Vec::new();
    let close = |ops: Vec<usize>, start_revision: u64, start_members: &Arc<BTreeSet<String>>| {
        let last_return = ops.iter().filter_map(|&i| recs[i].returned()).max().unwrap_or_default();
        // The unseen adds that may take effect in this window and could be
        // seen in it (the argument of `relevant_unknowns`, per window).
        let added: BTreeSet<u64> =
            ops.iter().filter(|&&i| recs[i].is_added()).filter_map(|&i| recs[i].revision()).collect();
        let unexplained_no_op = ops
            .iter()
            .any(|&i| matches!(recs[i].answer(), Some(Ret::AlreadyIn { revision }) if !added.contains(revision)));
        let seen = |c: &str| {
            ops.iter().any(|&i| recs[i].conversation() == Some(c) || recs[i].listed().is_some_and(|m| m.contains(c)))
        };
        let unseen: Vec<usize> = unknowns
            .iter()
            .copied()
            .filter(|&u| {
                let c = recs[u].conversation().unwrap_or_default();
                recs[u].invoked < last_return && !start_members.contains(c) && (unexplained_no_op || seen(c))
            })
            .collect();
        let mut ops = ops;
        ops.extend(unseen);
        Window { start_revision, start_members: start_members.clone(), ops }
    };
    for (&revision, at) in &by_revision {
        ops.extend(at);
        let add = at.iter().map(|&i| &recs[i]).find(|r| r.is_added());
        if let Some(conversation) = add.and_then(Rec::conversation) {
            members.insert(conversation.to_string());
        }
        if ops.len() < min_ops {
            continue;
        }
        let end = if let Some(listed) = at.iter().find_map(|&i| recs[i].listed()) {
            Some(listed.clone())
        } else if let Some(add) = add {
            let returned = add.returned().unwrap_or_default();
            let settled = unknowns
                .iter()
                .all(|&u| recs[u].invoked > returned || members.contains(recs[u].conversation().unwrap_or_default()));
            settled.then(|| members.clone())
        } else {
            None
        };
        if let Some(end) = end {
            windows.push(close(std::mem::take(&mut ops), start_revision, &start_members));
            start_revision = revision;
            members = end.clone();
            start_members = Arc::new(end);
        }
    }
    if !ops.is_empty() {
        windows.push(close(ops, start_revision, &start_members));
    }
    windows
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Invoke(usize),
    Return(usize),
}

/// The invocations and returns of `ops`, in recorded (real-time) order.
fn events(recs: &[Rec], ops: &[usize]) -> Vec<Event> {
    let mut events: Vec<(u64, Event)> = Vec::with_capacity(2 * ops.len());
    for &i in ops {
        events.push((recs[i].invoked, Event::Invoke(i)));
        if let Some(returned) = recs[i].returned() {
            events.push((returned, Event::Return(i)));
        }
    }
    events.sort_unstable_by_key(|(t, _)| *t);
    events.into_iter().map(|(_, e)| e).collect()
}

/// Feeds `events` into stateright's tester (with the pruned model) and asks
/// it for a serialization. Ops invoked but not returned within `events` are
/// in flight: stateright may apply them at any point after their invocation,
/// or never.
fn linearizable(recs: &[Rec], start_revision: u64, start_members: &Arc<BTreeSet<String>>, events: &[Event]) -> bool {
    let (mut revisions, mut reads) = (Vec::new(), Vec::new());
    for event in events {
        if let Event::Return(i) = *event {
            let revision = recs[i].revision().unwrap_or_default();
            revisions.push(revision);
            if !recs[i].is_added() {
                reads.push((revision, i));
            }
        }
    }
    let model = GroupModel { members: start_members.clone(), revision: start_revision, exact: true };
    let mut tester = LinearizabilityTester::new(Pruned::new(model, revisions, reads));
    for event in events {
        let fed = match *event {
            Event::Invoke(i) => {
                let step = Step { rank: i, op: recs[i].op.clone() };
                tester.on_invoke(recs[i].thread(), step).map(drop)
            }
            Event::Return(i) => {
                let (ret, _) = recs[i].ret.clone().expect("a return event has an answer");
                tester.on_return(recs[i].thread(), Answer(ret)).map(drop)
            }
        };
        if let Err(e) = fed {
            panic!("the recorder fed stateright an ill-formed history: {e}");
        }
    }
    tester.serialized_history().is_some()
}

/// The same with the plain [`GroupModel`] and the public types, no pruning.
fn linearizable_reference(
    recs: &[Rec],
    start_revision: u64,
    start_members: BTreeSet<String>,
    events: &[Event],
) -> bool {
    let mut tester = LinearizabilityTester::new(GroupModel::new(start_revision, start_members));
    for event in events {
        let fed = match *event {
            Event::Invoke(i) => tester.on_invoke(recs[i].thread(), (*recs[i].op).clone()).map(drop),
            Event::Return(i) => {
                let ret = recs[i].answer().expect("a return event has an answer").clone();
                tester.on_return(recs[i].thread(), ret).map(drop)
            }
        };
        if let Err(e) = fed {
            panic!("the recorder fed stateright an ill-formed history: {e}");
        }
    }
    tester.serialized_history().is_some()
}

/// Finds the shortest prefix of the failing window that stateright cannot
/// linearize (linearizability is prefix-closed, so a binary search works)
/// and shows the return that breaks it with the window's ops so far.
fn explain(recs: &[Rec], window: &Window, events: &[Event]) -> String {
    let (mut good, mut bad) = (0, events.len());
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if linearizable(recs, window.start_revision, &window.start_members, &events[..mid]) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    let base = &*window.start_members;
    let culprit = match events[bad - 1] {
        Event::Return(i) | Event::Invoke(i) => &recs[i],
    };
    let mut shown: Vec<usize> = events[..bad]
        .iter()
        .filter_map(|e| match e {
            Event::Invoke(i) => Some(*i),
            Event::Return(_) => None,
        })
        .collect();
    shown.sort_unstable_by_key(|&i| recs[i].invoked);
    let skipped = shown.len().saturating_sub(24);
    let mut out = format!(
        "not linearizable: stateright finds no linearization once this op returns:\n  {}\n\
         starting from revision {} with {} members (all ops up to that revision check out); \
         ops of this stretch up to that return{}:\n",
        culprit.describe(base),
        window.start_revision,
        base.len(),
        if skipped > 0 { format!(" (first {skipped} omitted)") } else { String::new() },
    );
    for &i in &shown[skipped..] {
        out.push_str("  ");
        out.push_str(&recs[i].describe(base));
        out.push('\n');
    }
    out
}
