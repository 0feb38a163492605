//! Watch streams: opening and reading them with bounded waits (panicking
//! readers for the contract tests, error-returning ones and long-lived
//! followers for servers that may die), a seeded RNG so random schedules
//! reproduce, the one replayer of events into group state ([`Model`], which
//! checks every batch for internal consistency on the way), and the state
//! the read RPCs report, to compare the model with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::watch_group_events_response::Kind;
use convgroups::pb::*;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;

use super::inproc::*;
use super::process::CALL_TIMEOUT;
pub use super::PROMPT;

/// A server-streaming WatchGroupEvents response.
pub type WatchStream = Streaming<WatchGroupEventsResponse>;

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/// The seed of the randomised tests: `WATCH_SEED` if set, else a fixed
/// value, so a failure reproduces with the seed it prints.
pub fn seed() -> u64 {
    let seed = std::env::var("WATCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0de_2024);
    eprintln!("WATCH_SEED={seed}");
    seed
}

pub use super::seeded::Rng;

// ---------------------------------------------------------------------------
// Opening and reading streams
// ---------------------------------------------------------------------------

/// A request from `start_revision` with no filter.
pub fn from(start_revision: u64) -> WatchGroupEventsRequest {
    WatchGroupEventsRequest { start_revision, ..Default::default() }
}

/// A request for every user's events (admin only).
pub fn all_users_from(start_revision: u64) -> WatchGroupEventsRequest {
    WatchGroupEventsRequest { start_revision, all_users: true, ..Default::default() }
}

/// Opens a watch; the error is the call's status (nothing was streamed).
pub async fn open(gc: &mut GroupClient, request: WatchGroupEventsRequest) -> Result<WatchStream, Status> {
    match tokio::time::timeout(PROMPT, gc.watch_group_events(request)).await {
        Ok(result) => result.map(|r| r.into_inner()),
        Err(_) => panic!("WatchGroupEvents did not answer within {PROMPT:?}"),
    }
}

#[track_caller]
pub fn open_ok_result(result: Result<WatchStream, Status>) -> WatchStream {
    result.unwrap_or_else(|status| panic!("WatchGroupEvents failed: {status:?}"))
}

pub async fn open_ok(gc: &mut GroupClient, request: WatchGroupEventsRequest) -> WatchStream {
    open_ok_result(open(gc, request).await)
}

/// One streamed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Events(EventBatch),
    Snapshot(Snapshot),
    Bookmark(u64),
}

impl Msg {
    pub fn revision(&self) -> u64 {
        match self {
            Msg::Events(b) => b.revision,
            Msg::Snapshot(s) => s.revision,
            Msg::Bookmark(r) => *r,
        }
    }
}

pub fn to_msg(response: WatchGroupEventsResponse) -> Msg {
    match response.kind.expect("WatchGroupEventsResponse without a kind") {
        Kind::Events(batch) => Msg::Events(batch),
        Kind::Snapshot(snapshot) => Msg::Snapshot(snapshot),
        Kind::Bookmark(bookmark) => Msg::Bookmark(bookmark.revision),
    }
}

/// The next message, the end of the stream (None) or its status; panics
/// if nothing arrives within `PROMPT`.
pub async fn next(stream: &mut WatchStream) -> Result<Option<Msg>, Status> {
    match tokio::time::timeout(PROMPT, stream.message()).await {
        Ok(result) => result.map(|m| m.map(to_msg)),
        Err(_) => panic!("no message on the watch stream within {PROMPT:?}"),
    }
}

/// The next message, which must exist.
pub async fn next_msg(stream: &mut WatchStream) -> Msg {
    match next(stream).await {
        Ok(Some(msg)) => msg,
        Ok(None) => panic!("the watch stream ended unexpectedly"),
        Err(status) => panic!("the watch stream failed: {status:?}"),
    }
}

pub async fn expect_bookmark(stream: &mut WatchStream) -> u64 {
    match next_msg(stream).await {
        Msg::Bookmark(revision) => revision,
        other => panic!("expected a Bookmark, got {other:?}"),
    }
}

pub async fn expect_batch(stream: &mut WatchStream) -> EventBatch {
    match next_msg(stream).await {
        Msg::Events(batch) => batch,
        other => panic!("expected an EventBatch, got {other:?}"),
    }
}

/// Reads until everything up to `revision` is covered (a batch or a
/// bookmark at or beyond it) and returns the batches, checking on the way
/// that revisions only go up: batches strictly, each after every earlier
/// bookmark; bookmarks never below the last batch.
pub async fn read_through(stream: &mut WatchStream, revision: u64) -> Vec<EventBatch> {
    read_through_from(stream, revision, 0).await
}

/// [`read_through`] for a stream whose coverage starts at `covered`.
pub async fn read_through_from(stream: &mut WatchStream, revision: u64, covered: u64) -> Vec<EventBatch> {
    read_until(stream, covered, |covered, _| covered >= revision).await
}

/// Reads until `count` batches have arrived (with the checks of
/// [`read_through`]), for a stream whose coverage starts at `covered`: for
/// readers that start before the revisions they wait for are known.
pub async fn read_batches_from(stream: &mut WatchStream, count: usize, covered: u64) -> Vec<EventBatch> {
    read_until(stream, covered, |_, batches| batches.len() >= count).await
}

async fn read_until(
    stream: &mut WatchStream,
    mut covered: u64,
    done: impl Fn(u64, &[EventBatch]) -> bool,
) -> Vec<EventBatch> {
    let mut batches: Vec<EventBatch> = Vec::new();
    while !done(covered, &batches) {
        match next_msg(stream).await {
            Msg::Events(batch) => {
                assert!(
                    batch.revision > covered,
                    "batch {} arrived after revision {covered} was already covered",
                    batch.revision
                );
                check_batch_shape(&batch, None);
                covered = batch.revision;
                batches.push(batch);
            }
            Msg::Bookmark(b) => {
                let last = batches.last().map_or(0, |b| b.revision);
                assert!(b >= last, "bookmark {b} is below the last batch {last}");
                covered = covered.max(b);
            }
            Msg::Snapshot(s) => panic!("unexpected snapshot mid-stream: {s:?}"),
        }
    }
    batches
}

/// A request from `start_revision` (the name the operability tests use).
pub fn watch_from(start_revision: u64) -> WatchGroupEventsRequest {
    WatchGroupEventsRequest { start_revision, ..Default::default() }
}

/// The next message of a watch stream, bounded.
pub async fn next_watch(
    stream: &mut tonic::Streaming<WatchGroupEventsResponse>,
) -> Result<Option<Kind>, tonic::Status> {
    tokio::time::timeout(PROMPT, stream.message())
        .await
        .expect("no watch message within the deadline")
        .map(|m| m.map(|m| m.kind.expect("message kind")))
}

/// Reads a watch stream until its bookmark; returns the bookmark revision.
pub async fn read_to_bookmark(stream: &mut tonic::Streaming<WatchGroupEventsResponse>) -> u64 {
    loop {
        match next_watch(stream).await.expect("watch message").expect("open stream") {
            Kind::Bookmark(b) => return b.revision,
            Kind::Events(_) | Kind::Snapshot(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Revisions on either backend
// ---------------------------------------------------------------------------
//
// On sled only the test's own writes take revisions (consecutive, from 1).
// On etcd (`common::on_etcd()`) a revision is an etcd transaction's: every
// replica's heartbeat and the data of other tests in the same cluster take
// revisions too, so the server's current revision may be past the last
// write of the test, and revisions are not consecutive. Tests take
// revisions from the responses of their own mutations and check them with
// these helpers.

/// Checks a revision the server reports as its current one (a bookmark at
/// the start of a stream, `current_revision` metadata, a snapshot's
/// revision) against the last write the test made: never below it; on
/// sled, where nothing else moves the revision, exactly it.
#[track_caller]
pub fn assert_current(what: &str, reported: u64, last_write: u64) {
    assert!(reported >= last_write, "{what} {reported} is below the last acknowledged write {last_write}");
    if !on_etcd() {
        // sled: only this test's writes take revisions.
        assert_eq!(reported, last_write, "{what}: the current revision is the last write");
    }
}

/// Checks a bookmark that reports the server's current revision (at the
/// start of a stream, or after its replay): see [`assert_current`], and it
/// never claims a revision the server has not reached (the server's durable
/// revision catches up with it at once; polled because on etcd the feed
/// publishes a revision a moment before it records it as durable).
pub async fn assert_bookmark_now(server: &TestServer, bookmark: u64, last_write: u64) {
    assert_current("bookmark", bookmark, last_write);
    let stats = server.stats.clone();
    let what = format!("bookmark {bookmark} is a revision the server has reached");
    eventually(&what, || stats.revision() >= bookmark).await;
}

/// The revision the server has published to its watchers, once it has
/// caught up with `last_write`, checked with [`assert_current`]. An etcd
/// replica answers a mutation when etcd commits it; its change feed hands
/// the batch to the hub moments later.
pub async fn published_revision(server: &TestServer, last_write: u64) -> u64 {
    let stats = server.stats.clone();
    let what = format!("the server publishes the acknowledged write {last_write}");
    eventually(&what, || stats.revision() >= last_write).await;
    let revision = server.stats.revision();
    assert_current("the server's revision", revision, last_write);
    revision
}

/// Asserts that revisions strictly increase (the acknowledged mutations of
/// one client, made one after the other, or a stream's batches).
#[track_caller]
pub fn assert_increasing(revisions: &[u64], what: &str) {
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{what}: revisions not strictly increasing: {revisions:?}");
}

/// Reads messages until the stream ends with a status (returned with the
/// messages before it); panics if it ends without one.
pub async fn read_to_status(stream: &mut WatchStream) -> (Vec<Msg>, Status) {
    let mut messages = Vec::new();
    loop {
        match next(stream).await {
            Ok(Some(msg)) => messages.push(msg),
            Ok(None) => panic!("stream ended without a status after {messages:?}"),
            Err(status) => return (messages, status),
        }
    }
}

/// Internal consistency of one batch: events, each carrying the batch's
/// revision, one user (`user` if given), one group list and a time.
#[track_caller]
pub fn check_batch_shape(batch: &EventBatch, user: Option<&str>) {
    assert!(!batch.events.is_empty(), "empty batch at revision {}", batch.revision);
    let first = &batch.events[0];
    if let Some(user) = user {
        assert_eq!(first.user_id, user, "batch {} is about another user: {batch:?}", batch.revision);
    }
    for event in &batch.events {
        assert_eq!(event.revision, batch.revision, "event revision differs from its batch's: {batch:?}");
        assert_eq!(event.user_id, first.user_id, "one batch, several users: {batch:?}");
        assert_eq!(event.group_names, first.group_names, "one batch, several group lists: {batch:?}");
        assert!(event.time.is_some(), "event without a time: {event:?}");
        assert!(event.kind.is_some(), "event without a kind: {event:?}");
    }
}

/// The revisions of some batches, in order.
pub fn revisions(batches: &[EventBatch]) -> Vec<u64> {
    batches.iter().map(|b| b.revision).collect()
}

/// The user a batch is about.
pub fn user_of(batch: &EventBatch) -> &str {
    &batch.events[0].user_id
}

/// The payload kinds of a batch, in order, with group ids cleared: these
/// comparisons are by name (the ids in events are checked by
/// `contract::group_ids` and by the model test, which predicts them).
pub fn kinds(batch: &EventBatch) -> Vec<Ev> {
    batch.events.iter().map(|e| without_group_id(e.kind.clone().expect("kind"))).collect()
}

/// An event payload with its `group_id` cleared.
pub fn without_group_id(mut ev: Ev) -> Ev {
    match &mut ev {
        Ev::GroupCreated(e) => e.group_id.clear(),
        Ev::GroupDeleted(e) => e.group_id.clear(),
        Ev::GroupRenamed(e) => e.group_id.clear(),
        Ev::ConversationsAddedToGroup(e) => e.group_id.clear(),
        Ev::ConversationsDeletedFromGroup(e) => e.group_id.clear(),
        Ev::GroupMuteChanged(e) => e.group_id.clear(),
        Ev::GroupUpdated(e) => e.group_id.clear(),
        Ev::GroupRuleChanged(e) => e.group_id.clear(),
        Ev::GroupOrderChanged(e) => e.group_id.clear(),
        Ev::GroupPinsChanged(e) => e.group_id.clear(),
        _ => {}
    }
    ev
}

/// ErrorInfo metadata value `key` of a status, parsed as a revision.
#[track_caller]
pub fn meta_u64(status: &Status, key: &str) -> u64 {
    let info = status.get_details_error_info().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    let value = info.metadata.get(key).unwrap_or_else(|| panic!("ErrorInfo of {status:?} has no metadata {key:?}"));
    value.parse().unwrap_or_else(|_| panic!("metadata {key}={value:?} is not a number"))
}

/// Checks an OUT_OF_RANGE watch refusal and returns its
/// (oldest_revision, current_revision) metadata.
#[track_caller]
pub fn out_of_range(status: &Status, reason: &str) -> (u64, u64) {
    assert_status(status, Code::OutOfRange, reason, None);
    (meta_u64(status, "oldest_revision"), meta_u64(status, "current_revision"))
}

/// A fresh reference read: the batches `request` replays (typically from
/// revision 1), through `through`.
pub async fn full_log(gc: &mut GroupClient, request: WatchGroupEventsRequest, through: u64) -> Vec<EventBatch> {
    assert!(request.start_revision > 0, "a reference read replays from a revision");
    let covered = request.start_revision - 1;
    let mut stream = open_ok(gc, request).await;
    read_through_from(&mut stream, through, covered).await
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// A new HTTP/2 connection to the server (not the harness's shared one),
/// optionally with a small per-stream flow-control window.
pub async fn connect(server: &TestServer, stream_window: Option<u32>) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{}", server.addr)).expect("endpoint");
    let endpoint = endpoint.initial_stream_window_size(stream_window);
    tokio::time::timeout(PROMPT, endpoint.connect())
        .await
        .expect("connect within PROMPT")
        .expect("connect to the test server")
}

/// A group client for `user` on `channel`.
pub fn user_client_on(server: &TestServer, channel: Channel, user: &str) -> GroupClient {
    let bearer = format!("Bearer {}", server.token(user, false));
    ConversationGroupServiceClient::with_interceptor(channel, Headers::new(&[("authorization", &bearer)]))
}

/// An admin group client on `channel` (acting for `acting_for` if given).
pub fn admin_client_on(server: &TestServer, channel: Channel, acting_for: Option<&str>) -> GroupClient {
    let bearer = format!("Bearer {}", server.token("admin-backend", true));
    let headers = match acting_for {
        Some(user) => Headers::new(&[("authorization", &bearer), (convgroups::auth::USER_HEADER, user)]),
        None => Headers::new(&[("authorization", &bearer)]),
    };
    ConversationGroupServiceClient::with_interceptor(channel, headers)
}

/// Polls `condition` every 20 ms until it holds; panics after `PROMPT`.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PROMPT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not true within {PROMPT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the server has no open watch stream and no user ring left.
pub async fn no_watchers_left(server: &TestServer) {
    let stats = server.stats.clone();
    eventually("all watchers and user channels released", || stats.watchers() == 0 && stats.user_channels() == 0).await;
}

// ---------------------------------------------------------------------------
// Readers for a server that may die under them: errors, not panics
// ---------------------------------------------------------------------------

pub fn watch_request(start_revision: u64, all_users: bool) -> WatchGroupEventsRequest {
    WatchGroupEventsRequest { start_revision, all_users, ..Default::default() }
}

/// The stored log from `start` on, as a fresh watcher replays it: every
/// batch before the first bookmark. Bounded by `CALL_TIMEOUT`.
pub async fn read_log(gc: &mut GroupClient, start: u64, all_users: bool) -> Result<(Vec<EventBatch>, u64), Status> {
    let work = async {
        let mut stream = gc.watch_group_events(watch_request(start, all_users)).await?.into_inner();
        let mut batches = Vec::new();
        loop {
            match stream.message().await? {
                Some(WatchGroupEventsResponse { kind: Some(Kind::Events(batch)) }) => batches.push(batch),
                Some(WatchGroupEventsResponse { kind: Some(Kind::Bookmark(b)) }) => return Ok((batches, b.revision)),
                Some(other) => return Err(Status::internal(format!("unexpected watch message {other:?}"))),
                None => return Err(Status::internal("watch stream ended before its first bookmark")),
            }
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("reading the log took too long")))
}

/// The snapshot a `send_snapshot` watcher starts with.
pub async fn read_snapshot(gc: &mut GroupClient) -> Result<Snapshot, Status> {
    let request = WatchGroupEventsRequest { send_snapshot: true, ..Default::default() };
    let work = async {
        let mut stream = gc.watch_group_events(request).await?.into_inner();
        match stream.message().await? {
            Some(WatchGroupEventsResponse { kind: Some(Kind::Snapshot(s)) }) => Ok(s),
            other => Err(Status::internal(format!("expected a snapshot first, got {other:?}"))),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, work).await.unwrap_or_else(|_| Err(Status::deadline_exceeded("snapshot")))
}

/// Groups of one user rebuilt from events: (name, members) in order.
pub type Groups = Vec<(String, BTreeSet<String>)>;

/// Replays batches (of one user or of all users) into each user's groups,
/// one [`Model`] per user, checking each batch on the way (see
/// [`Model::apply`]) and that revisions increase across all of them. The
/// batches must be a user's whole history (read from revision 1).
/// Conversations leave groups only through ConversationsDeletedFromGroup
/// (that is what the contract's events say), so a missing removal event
/// shows up as a difference from the stored state.
pub fn replay(batches: &[EventBatch]) -> Result<BTreeMap<String, Groups>, String> {
    let mut users: BTreeMap<String, Model> = BTreeMap::new();
    let mut last = 0;
    for batch in batches {
        if batch.revision <= last {
            return Err(format!("batch {} after batch {last}: revisions must increase", batch.revision));
        }
        last = batch.revision;
        let Some(first) = batch.events.first() else { return Err(format!("batch {} has no events", batch.revision)) };
        users.entry(first.user_id.clone()).or_insert_with(Model::empty).apply(batch)?;
    }
    Ok(users.into_iter().map(|(user, model)| (user, model.groups)).collect())
}

/// What a long-lived watcher has received so far; it survives the stream
/// (and the server), so the watcher can resume from `seen + 1`.
#[derive(Debug, Default)]
pub struct Followed {
    pub batches: Vec<EventBatch>,
    /// Everything up to this revision was received (batch or bookmark).
    pub seen: u64,
    /// Order violations seen on the stream.
    pub problems: Vec<String>,
    /// How the last stream ended.
    pub ended: Option<String>,
    /// Streams opened.
    pub streams: u64,
}

pub type Follow = Arc<Mutex<Followed>>;

/// Opens a watch from `seen + 1` (so the first stream replays from 1) and
/// records every message into `follow` until the stream ends. Returns the
/// status the stream ended with (Ok if it ended cleanly).
pub async fn follow(mut gc: GroupClient, follow: Follow, all_users: bool) -> Result<(), Status> {
    let start = {
        let mut f = follow.lock().unwrap();
        f.streams += 1;
        f.seen + 1
    };
    let result = async {
        let mut stream = gc.watch_group_events(watch_request(start, all_users)).await?.into_inner();
        while let Some(message) = stream.message().await? {
            let mut f = follow.lock().unwrap();
            match message.kind {
                Some(Kind::Events(batch)) => {
                    if batch.revision <= f.seen {
                        let problem = format!("batch {} after revision {} was covered", batch.revision, f.seen);
                        f.problems.push(problem);
                    }
                    f.seen = f.seen.max(batch.revision);
                    f.batches.push(batch);
                }
                Some(Kind::Bookmark(b)) => {
                    if b.revision < f.seen {
                        let problem = format!("bookmark {} after revision {} was covered", b.revision, f.seen);
                        f.problems.push(problem);
                    }
                    f.seen = f.seen.max(b.revision);
                }
                other => f.problems.push(format!("unexpected message {other:?}")),
            }
        }
        Ok::<(), Status>(())
    }
    .await;
    follow.lock().unwrap().ended = Some(match &result {
        Ok(()) => "ended".to_string(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    });
    result
}

/// Waits (bounded) until `follow` has seen `revision`.
pub async fn wait_seen(follow: &Follow, revision: u64, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let seen = follow.lock().unwrap().seen;
        if seen >= revision {
            return Ok(());
        }
        if Instant::now() > deadline {
            let f = follow.lock().unwrap();
            return Err(format!(
                "watcher saw up to revision {seen} within {within:?}, expected {revision}; its stream: {:?}",
                f.ended
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Replaying events into state
// ---------------------------------------------------------------------------

/// One user's groups as the event stream describes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// (name, members) in display order.
    pub groups: Vec<(String, BTreeSet<String>)>,
    /// Conversations registered through UpsertConversations and not
    /// deleted since.
    pub registered: BTreeSet<String>,
    /// Built from the very first event (not from a snapshot): every
    /// conversation is known, so deletions of unknown ones are errors.
    pub complete: bool,
    /// The last revision applied (or of the snapshot).
    pub revision: u64,
}

impl Model {
    /// A model of a user with no history, to replay from revision 1.
    pub fn empty() -> Self {
        Self { complete: true, ..Self::default() }
    }

    /// A model starting at a snapshot (registry membership unknown).
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        Self {
            groups: snapshot
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.conversation_ids.iter().cloned().collect()))
                .collect(),
            registered: BTreeSet::new(),
            complete: false,
            revision: snapshot.revision,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.groups.iter().map(|(n, _)| n.clone()).collect()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|(n, _)| n == name)
    }

    fn find(&self, name: &str, revision: u64) -> Result<usize, String> {
        self.index(name).ok_or_else(|| format!("revision {revision}: event about unknown group {name:?}"))
    }

    /// Every conversation the user has: registered or grouped.
    pub fn conversations(&self) -> BTreeSet<String> {
        let mut all = self.registered.clone();
        for (_, members) in &self.groups {
            all.extend(members.iter().cloned());
        }
        all
    }

    /// Applies one batch, insisting that it makes sense as the next change:
    /// no group created twice, no member added twice or removed while
    /// absent, no event that changes nothing, every event's `group_names`
    /// equal to the list after the whole batch.
    pub fn apply(&mut self, batch: &EventBatch) -> Result<(), String> {
        let rev = batch.revision;
        if rev <= self.revision {
            return Err(format!("batch {rev} is not after revision {}", self.revision));
        }
        if batch.events.is_empty() {
            return Err(format!("batch {rev} has no events"));
        }
        let first = &batch.events[0];
        let deleted: Option<BTreeSet<String>> = batch.events.iter().find_map(|e| match &e.kind {
            Some(Ev::ConversationsDeleted(d)) => Some(d.conversation_ids.iter().cloned().collect()),
            _ => None,
        });
        for event in &batch.events {
            if event.revision != rev || event.user_id != first.user_id || event.group_names != first.group_names {
                return Err(format!("batch {rev} is not uniform: {batch:?}"));
            }
            if event.time.is_none() {
                return Err(format!("batch {rev}: event without time"));
            }
            match event.kind.as_ref().ok_or_else(|| format!("batch {rev}: event without kind"))? {
                Ev::GroupCreated(c) => {
                    if self.index(&c.group_name).is_some() {
                        return Err(format!("revision {rev}: group {:?} created twice", c.group_name));
                    }
                    let members: BTreeSet<String> = c.conversation_ids.iter().cloned().collect();
                    if members.len() != c.conversation_ids.len() {
                        return Err(format!("revision {rev}: duplicate ids in {c:?}"));
                    }
                    self.groups.push((c.group_name.clone(), members));
                }
                Ev::GroupDeleted(d) => {
                    let i = self.find(&d.group_name, rev)?;
                    self.groups.remove(i);
                }
                Ev::GroupRenamed(r) => {
                    let i = self.find(&r.old_name, rev)?;
                    if r.old_name == r.new_name || self.index(&r.new_name).is_some() {
                        return Err(format!("revision {rev}: impossible rename {r:?} of {:?}", self.names()));
                    }
                    self.groups[i].0 = r.new_name.clone();
                }
                Ev::GroupsReordered(r) => {
                    let mut wanted = r.group_names.clone();
                    wanted.sort();
                    let mut have = self.names();
                    have.sort();
                    if wanted != have {
                        return Err(format!("revision {rev}: reorder {r:?} is not a permutation of {have:?}"));
                    }
                    if r.group_names == self.names() {
                        return Err(format!("revision {rev}: reorder that changes nothing was recorded"));
                    }
                    let mut groups = Vec::new();
                    for name in &r.group_names {
                        let i = self.find(name, rev)?;
                        groups.push(self.groups[i].clone());
                    }
                    self.groups = groups;
                }
                Ev::ConversationsAddedToGroup(a) => {
                    let i = self.find(&a.group_name, rev)?;
                    if a.conversation_ids.is_empty() {
                        return Err(format!("revision {rev}: empty add {a:?}"));
                    }
                    for id in &a.conversation_ids {
                        if !self.groups[i].1.insert(id.clone()) {
                            return Err(format!("revision {rev}: {id} added to {:?} twice", a.group_name));
                        }
                    }
                }
                Ev::ConversationsDeletedFromGroup(d) => {
                    let i = self.find(&d.group_name, rev)?;
                    if d.conversation_ids.is_empty() {
                        return Err(format!("revision {rev}: empty removal {d:?}"));
                    }
                    let expected_reason = match &deleted {
                        // A smart group's rule stopped matching: a removal
                        // of its own, beside whatever caused it.
                        _ if d.reason == RemovalReason::Rule as i32 => RemovalReason::Rule,
                        Some(ids) => {
                            if !d.conversation_ids.iter().all(|id| ids.contains(id)) {
                                return Err(format!("revision {rev}: removal {d:?} of ids not deleted {ids:?}"));
                            }
                            RemovalReason::ConversationDeleted
                        }
                        // MoveConversations (its additions, if any, are in
                        // the same batch: a conversation already in the
                        // target is only removed).
                        None if d.reason == RemovalReason::Moved as i32 => RemovalReason::Moved,
                        None => RemovalReason::UserRequest,
                    };
                    if d.reason != expected_reason as i32 {
                        return Err(format!("revision {rev}: removal {d:?} should have reason {expected_reason:?}"));
                    }
                    for id in &d.conversation_ids {
                        if !self.groups[i].1.remove(id) {
                            return Err(format!("revision {rev}: {id} removed from {:?} but not in it", d.group_name));
                        }
                    }
                }
                Ev::GroupRuleChanged(r) => {
                    self.find(&r.group_name, rev)?;
                }
                // How a group looks is not part of the model (members and
                // order are); the event must still be about a group it has
                // and say what changed.
                Ev::GroupUpdated(u) => {
                    self.find(&u.group_name, rev)?;
                    if u.changed_paths.is_empty() || u.look.is_none() {
                        return Err(format!("revision {rev}: GroupUpdated that changes nothing: {u:?}"));
                    }
                }
                Ev::GroupOrderChanged(o) => {
                    let i = self.find(&o.group_name, rev)?;
                    if let Some(id) = o.conversation_ids.iter().find(|id| !self.groups[i].1.contains(*id)) {
                        return Err(format!("revision {rev}: {id} moved in {:?} but not in it", o.group_name));
                    }
                }
                Ev::GroupPinsChanged(p) => {
                    let i = self.find(&p.group_name, rev)?;
                    if let Some(id) = p.pinned_conversation_ids.iter().find(|id| !self.groups[i].1.contains(*id)) {
                        return Err(format!("revision {rev}: {id} pinned in {:?} but not in it", p.group_name));
                    }
                }
                Ev::ConversationsChanged(c) => {
                    if c.conversation_ids.is_empty() {
                        return Err(format!("revision {rev}: empty ConversationsChanged"));
                    }
                    self.registered.extend(c.conversation_ids.iter().cloned());
                }
                Ev::GroupMuteChanged(m) => {
                    self.find(&m.group_name, rev)?;
                }
                Ev::ConversationsDeleted(d) => {
                    if d.conversation_ids.is_empty() {
                        return Err(format!("revision {rev}: empty ConversationsDeleted"));
                    }
                    // Checked against the state before this batch's group
                    // removals: the conversation existed (registered or grouped).
                    for id in &d.conversation_ids {
                        let grouped_before = batch.events.iter().any(|e| match &e.kind {
                            Some(Ev::ConversationsDeletedFromGroup(r)) => r.conversation_ids.contains(id),
                            _ => false,
                        });
                        let known = self.registered.remove(id)
                            || grouped_before
                            || self.groups.iter().any(|(_, m)| m.contains(id));
                        if self.complete && !known {
                            return Err(format!("revision {rev}: deleted conversation {id} never existed"));
                        }
                    }
                }
            }
        }
        if let Some(ids) = &deleted {
            for (name, members) in &self.groups {
                if let Some(id) = members.intersection(ids).next() {
                    return Err(format!(
                        "revision {rev}: deleted {id} is still in group {name:?} (removal event missing)"
                    ));
                }
            }
        }
        if first.group_names != self.names() {
            return Err(format!(
                "revision {rev}: group_names {:?} but the group list after the batch is {:?}",
                first.group_names,
                self.names()
            ));
        }
        self.revision = rev;
        Ok(())
    }

    /// Applies every batch; panics with the first inconsistency.
    #[track_caller]
    pub fn apply_all(&mut self, batches: &[EventBatch]) {
        for batch in batches {
            if let Err(e) = self.apply(batch) {
                panic!("inconsistent event stream: {e}");
            }
        }
    }

    /// The model of a user's full history.
    #[track_caller]
    pub fn replay(batches: &[EventBatch]) -> Self {
        let mut model = Self::empty();
        model.apply_all(batches);
        model
    }
}

/// What the read RPCs say about the caller: groups in display order with
/// their members (GetConversationGroupList + GetConversationList filtered
/// by each group), and every listed conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub groups: Vec<(String, BTreeSet<String>)>,
    pub conversations: BTreeSet<String>,
}

pub async fn observe(gc: &mut GroupClient) -> Observed {
    let list = group_list(gc).await;
    let names: Vec<String> = list.groups.iter().map(|g| g.name.clone()).collect();
    assert_eq!(list.group_names, names, "group_names and groups disagree");
    let mut groups = Vec::new();
    for group in &list.groups {
        let members: BTreeSet<String> =
            list_ids(gc, ConversationFilter { group_name: Some(group.name.clone()), ..filter() })
                .await
                .into_iter()
                .collect();
        assert_eq!(group.conversation_count as usize, members.len(), "conversation_count of {:?}", group.name);
        groups.push((group.name.clone(), members));
    }
    let conversations = ids_of(&list_all(gc, None).await).into_iter().collect();
    Observed { groups, conversations }
}

/// Asserts that the replayed model matches what the read RPCs say.
#[track_caller]
pub fn assert_model_matches(model: &Model, observed: &Observed, context: &str) {
    assert_eq!(model.groups, observed.groups, "{context}: groups (order and members) replayed from events vs listed");
    if model.complete {
        assert_eq!(
            model.conversations(),
            observed.conversations,
            "{context}: conversations replayed from events vs GetConversationList"
        );
    }
}
