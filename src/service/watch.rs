//! `WatchGroupEvents`: one task per stream.
//!
//! The order of work is what makes the guarantees (contract §4): subscribe to
//! the live feed first, then read history from the stored log, then follow
//! the live feed, dropping every batch at or below the last revision already
//! covered. A watcher that falls behind its live ring (`Lagged`) is neither
//! dropped nor allowed to skip: it reads the missed revisions from the log
//! and carries on. Writers never wait for any of this.
//!
//! Messages go to the stream already encoded: a live batch's message is
//! made once and shared by every watcher that wants the same events of it
//! (`hub::Delivery`), bookmarks once per revision (`Hub::bookmark`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prost::bytes::Bytes;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::convert;
use crate::auth::Caller;
use crate::config::Limits;
use crate::domain::{EventBatch, EventKind, EventType, GroupId};
use crate::error::Error;
use crate::hub::{Delivery, Hub, Subscription};
use crate::pb;
use crate::pb::watch_group_events_response::Kind;
use crate::store::{Scope, Store};
use crate::wire::WatchFrame;

/// Messages buffered between a stream's task and its HTTP/2 stream. Small:
/// a client that does not read holds up only its own task, which then
/// falls behind its ring and later catches up from the log.
pub const STREAM_BUFFER: usize = 16;
/// Batches read from the log per step of a catch-up.
const LOG_CHUNK: usize = 256;
/// How long a stream may take to accept its final SHUTTING_DOWN status.
const SHUTDOWN_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// What a stream's task hands its HTTP/2 stream: an encoded
/// `WatchGroupEventsResponse`, or the final status. Kept small (the status
/// boxed), because every stream's channel holds a block of these from the
/// start: at 10,000 streams an unboxed `Status` costs tens of megabytes.
pub type Item = Result<Bytes, Box<tonic::Status>>;

/// A validated watch request.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub scope: Scope,
    pub start_revision: u64,
    pub send_snapshot: bool,
    pub event_types: HashSet<EventType>,
    pub group_names: HashSet<String>,
    pub group_ids: HashSet<GroupId>,
}

impl WatchSpec {
    pub fn parse(req: pb::WatchGroupEventsRequest, caller: &Caller, limits: &Limits) -> Result<Self, Error> {
        if req.all_users && !caller.admin {
            return Err(Error::PermissionDenied {
                message: "all_users: only an admin token may watch every user".into(),
            });
        }
        if req.all_users && req.send_snapshot {
            return Err(Error::InvalidArgument {
                field: "send_snapshot",
                message: "cannot be combined with all_users (a snapshot is of one user's groups)".into(),
            });
        }
        let mut event_types = HashSet::new();
        for (i, value) in req.event_types.iter().enumerate() {
            let kind = convert::event_type(*value).ok_or_else(|| Error::InvalidArgument {
                field: "event_types",
                message: format!("[{i}] {value} is not a GroupEventType other than UNSPECIFIED"),
            })?;
            event_types.insert(kind);
        }
        // Kept for the life of the stream: bounded by what a filter can
        // usefully hold, not only by the request size.
        if req.group_names.len() > limits.max_groups {
            return Err(Error::InvalidArgument {
                field: "group_names",
                message: format!(
                    "{} names, more than the {} allowed (max_groups: no user has more groups)",
                    req.group_names.len(),
                    limits.max_groups
                ),
            });
        }
        if req.group_ids.len() > limits.max_groups {
            return Err(Error::InvalidArgument {
                field: "group_ids",
                message: format!(
                    "{} ids, more than the {} allowed (max_groups: no user has more groups)",
                    req.group_ids.len(),
                    limits.max_groups
                ),
            });
        }
        let group_ids = req.group_ids.iter().map(|id| convert::group_id("group_ids", id)).collect::<Result<_, _>>()?;
        Ok(Self {
            scope: if req.all_users { Scope::AllUsers } else { Scope::User(caller.user()?.clone()) },
            start_revision: req.start_revision,
            send_snapshot: req.send_snapshot,
            event_types,
            group_names: req.group_names.into_iter().collect(),
            group_ids,
        })
    }

    fn wants(&self, event: &EventKind) -> bool {
        if !self.event_types.is_empty() && !self.event_types.contains(&event.event_type()) {
            return false;
        }
        // Events about no particular group (reorder, conversation changes)
        // always pass the group filter.
        if self.group_names.is_empty() && self.group_ids.is_empty() {
            return true;
        }
        let groups = event.group_names();
        groups.is_empty()
            || groups.iter().any(|g| self.group_names.contains(*g))
            || event.group_id().is_some_and(|id| self.group_ids.contains(&id))
    }

    /// Indexes of the events of `batch` this watcher asked for; None when
    /// it takes them all.
    fn kept(&self, batch: &EventBatch) -> Option<Vec<u32>> {
        if self.event_types.is_empty() && self.group_names.is_empty() && self.group_ids.is_empty() {
            return None;
        }
        let kept: Vec<u32> =
            (0..batch.events.len() as u32).filter(|&i| self.wants(&batch.events[i as usize])).collect();
        (kept.len() < batch.events.len()).then_some(kept)
    }

    /// The message of the part of a live batch this watcher asked for,
    /// shared with every watcher that asks for the same part; None when
    /// nothing is left.
    fn shared_message(&self, delivery: &Delivery) -> Option<Bytes> {
        match self.kept(&delivery.batch) {
            None => Some(delivery.whole(|batch| events_message(batch, None))),
            Some(kept) if kept.is_empty() => None,
            Some(kept) => Some(delivery.part(&kept, |batch, kept| events_message(batch, Some(kept)))),
        }
    }

    /// The message of the part of a batch read from the log this watcher
    /// asked for; None when nothing is left.
    fn own_message(&self, batch: &EventBatch) -> Option<Bytes> {
        match self.kept(batch) {
            None => Some(events_message(batch, None)),
            Some(kept) if kept.is_empty() => None,
            Some(kept) => Some(events_message(batch, Some(&kept))),
        }
    }
}

/// The encoded `WatchGroupEventsResponse` of `batch`, or of the events at
/// `kept` (indexes, in order) only.
fn events_message(batch: &EventBatch, kept: Option<&[u32]>) -> Bytes {
    let events = match kept {
        None => convert::event_batch(batch),
        Some(kept) => {
            let events: Vec<EventKind> = kept.iter().map(|&i| batch.events[i as usize].clone()).collect();
            convert::event_batch(&EventBatch {
                revision: batch.revision,
                user: batch.user.clone(),
                time_ms: batch.time_ms,
                group_names: batch.group_names.clone(),
                group_ids: batch.group_ids.clone(),
                events,
            })
        }
    };
    encode(Kind::Events(events))
}

fn encode(kind: Kind) -> Bytes {
    WatchFrame::encode_once(&pb::WatchGroupEventsResponse { kind: Some(kind) })
}

/// A stream that may start: its subscription to the hub, and the
/// deployment's revision when it opened.
pub struct Opened {
    pub subscription: Subscription,
    /// The latest revision of the deployment when the stream opened (on etcd
    /// a linearizable read: it covers every mutation acknowledged before,
    /// on any replica, even if this replica's change feed has not brought it
    /// yet). A stream "from now" starts after it.
    pub now: u64,
}

/// Checks the start revision against the log and subscribes; errors here
/// are the call's status, before any message.
pub async fn open(store: &Store, hub: &Hub, spec: &WatchSpec) -> Result<Opened, Error> {
    if store.refuses_watches() {
        return Err(Error::Storage("this replica has lost its connection to etcd; watch on another replica".into()));
    }
    // Subscribe before reading anything, so no batch can fall between the
    // history and the live feed.
    let subscription = hub.subscribe(spec.scope.clone())?;
    // The deployment's revision: on etcd a revision another replica
    // returned may be ahead of this replica's feed, and is not in the future
    // for that.
    let now = store.latest_revision().await?;
    if spec.start_revision > 0 {
        let floor = store.floor(spec.scope.clone()).await?;
        if spec.start_revision > now + 1 {
            return Err(Error::RevisionInFuture { start: spec.start_revision, oldest: floor + 1, current: now });
        }
        if spec.start_revision <= floor {
            return Err(Error::RevisionCompacted { start: spec.start_revision, oldest: floor + 1, current: now });
        }
    }
    Ok(Opened { subscription, now })
}

/// Why a stream's task stopped early.
enum Stop {
    /// The client went away.
    Gone,
    /// The server is shutting down.
    Shutdown,
    /// The server lost its storage (see `Hub::interrupt`).
    StorageLost,
    /// A status to end the stream with.
    Fail(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fail(e)
    }
}

pub struct Watcher {
    store: Store,
    hub: Hub,
    spec: WatchSpec,
    subscription: Subscription,
    /// See [`Opened::now`].
    opened_at: u64,
    bookmark_interval: Duration,
    tx: mpsc::Sender<Item>,
    /// Changes when the server loses its storage (see `Hub::interrupt`).
    interruptions: tokio::sync::watch::Receiver<u64>,
    /// Every revision up to this one has been sent or bookmarked.
    progress: u64,
    idle_deadline: Instant,
}

impl Watcher {
    pub fn new(
        store: Store,
        hub: Hub,
        spec: WatchSpec,
        opened: Opened,
        bookmark_interval: Duration,
        tx: mpsc::Sender<Item>,
    ) -> Self {
        let interruptions = hub.interruptions();
        Self {
            store,
            hub,
            spec,
            subscription: opened.subscription,
            opened_at: opened.now,
            bookmark_interval,
            tx,
            interruptions,
            progress: 0,
            idle_deadline: Instant::now() + bookmark_interval,
        }
    }

    pub async fn run(mut self) {
        let closed = self.hub.closed();
        tokio::pin!(closed);
        let mut interruptions = self.interruptions.clone();
        let outcome = tokio::select! {
            biased;
            _ = &mut closed => Stop::Shutdown,
            _ = interruptions.changed() => Stop::StorageLost,
            stop = self.serve() => stop,
        };
        match outcome {
            Stop::Gone => {}
            Stop::Shutdown => {
                let status = Error::ShuttingDown { resume_revision: self.progress + 1 }.into();
                let _ = tokio::time::timeout(SHUTDOWN_SEND_TIMEOUT, self.tx.send(Err(Box::new(status)))).await;
            }
            Stop::StorageLost => {
                let status = Error::StorageLost { resume_revision: self.progress + 1 }.into();
                let _ = self.tx.send(Err(Box::new(status))).await;
            }
            Stop::Fail(error) => {
                // A stream that storage failed under can be resumed: say
                // from where.
                let error = match error {
                    Error::Storage(detail) => {
                        tracing::warn!(error = %detail, "watch stream ended by a storage failure");
                        Error::StorageLost { resume_revision: self.progress + 1 }
                    }
                    other => other,
                };
                let _ = self.tx.send(Err(Box::new(error.into()))).await;
            }
        }
    }

    async fn serve(&mut self) -> Stop {
        match self.serve_inner().await {
            Ok(()) => Stop::Gone,
            Err(stop) => stop,
        }
    }

    async fn serve_inner(&mut self) -> Result<(), Stop> {
        if self.spec.start_revision == 0 {
            if self.spec.send_snapshot {
                let Scope::User(user) = &self.spec.scope else { unreachable!("rejected by WatchSpec::parse") };
                let snapshot = self.store.snapshot(user).await?;
                let groups = snapshot
                    .groups
                    .into_iter()
                    .map(|snapshot| {
                        // The group as GetConversationGroupList shows it,
                        // so the two can never describe a group apart.
                        let group = convert::group(snapshot.group);
                        pb::SnapshotGroup {
                            name: group.name,
                            group_id: group.group_id,
                            conversation_ids: snapshot.conversation_ids,
                            icon: group.icon,
                            color: group.color,
                            collapsed: group.collapsed,
                            custom_data: group.custom_data,
                            sort_mode: group.sort_mode,
                            pinned_conversation_ids: group.pinned_conversation_ids,
                            new_member_recv_opt: group.new_member_recv_opt,
                            rule: group.rule,
                        }
                    })
                    .collect();
                self.send(encode(Kind::Snapshot(pb::Snapshot { revision: snapshot.revision, groups }))).await?;
                self.progress = snapshot.revision;
            } else {
                // Not this replica's feed revision: a mutation acknowledged
                // before the stream opened (on etcd, perhaps still on its way
                // through the feed) is history, not a live event.
                self.progress = self.opened_at;
            }
        } else {
            self.progress = self.spec.start_revision - 1;
            self.catch_up().await?;
        }
        self.send_bookmark().await?;

        // The idle timer and the client-gone signal live across the loop:
        // made afresh for every message, each would register with (and
        // leave) the runtime's timer wheel or the channel's waiters once per
        // delivery, which at thousands of streams is much of the work. The
        // timer is moved only when it fires: `send` just moves the deadline.
        let idle = tokio::time::sleep_until(self.idle_deadline);
        tokio::pin!(idle);
        let tx = self.tx.clone();
        let gone = tx.closed();
        tokio::pin!(gone);
        loop {
            tokio::select! {
                received = self.subscription.rx.recv() => match received {
                    Ok(delivery) => self.deliver(&delivery).await?,
                    Err(RecvError::Lagged(missed)) => {
                        self.hub.lagged(missed);
                        self.catch_up().await?
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = &mut idle => {
                    if Instant::now() >= self.idle_deadline {
                        self.bookmark().await?;
                    }
                    idle.as_mut().reset(self.idle_deadline);
                }
                _ = &mut gone => return Err(Stop::Gone),
            }
        }
    }

    /// Sends one batch unless it was already covered.
    async fn deliver(&mut self, delivery: &Arc<Delivery>) -> Result<(), Stop> {
        let revision = delivery.batch.revision;
        if revision <= self.progress {
            return Ok(());
        }
        if let Some(message) = self.spec.shared_message(delivery) {
            self.send(message).await?;
        }
        self.progress = revision;
        Ok(())
    }

    /// Reads everything after `progress` that is durable from the log.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        crate::metrics::catching_up(1.0);
        let result = self.catch_up_inner().await;
        crate::metrics::catching_up(-1.0);
        result
    }

    async fn catch_up_inner(&mut self) -> Result<(), Stop> {
        loop {
            // At least the deployment's revision when the stream opened: on
            // etcd this replica's feed may not have brought a batch that
            // another replica (or this one: a mutation is answered when etcd
            // commits it) acknowledged before the stream opened, and a replay
            // must include it before its first bookmark. etcd's stored log
            // holds it already (it is written in the mutation's own
            // transaction). On sled the two are the same revision.
            let durable = self.store.current_revision().max(self.opened_at);
            let batches = self.store.read_log(self.spec.scope.clone(), self.progress + 1, durable, LOG_CHUNK).await?;
            let complete = batches.len() < LOG_CHUNK;
            for batch in batches {
                if let Some(message) = self.spec.own_message(&batch) {
                    self.send(message).await?;
                }
                self.progress = batch.revision;
            }
            if complete {
                self.progress = self.progress.max(durable);
                return Ok(());
            }
        }
    }

    /// An idle stream's bookmark: first take in everything already published
    /// (so the bookmark never runs ahead of a batch still in the ring), then
    /// report how far that is.
    async fn bookmark(&mut self) -> Result<(), Stop> {
        let published = self.hub.published();
        loop {
            match self.subscription.rx.try_recv() {
                Ok(delivery) => self.deliver(&delivery).await?,
                Err(TryRecvError::Lagged(missed)) => {
                    self.hub.lagged(missed);
                    self.catch_up().await?
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
        self.progress = self.progress.max(published);
        self.send_bookmark().await
    }

    /// A bookmark at `progress`, its message shared with every stream that
    /// bookmarks the same revision.
    async fn send_bookmark(&mut self) -> Result<(), Stop> {
        let message = self.hub.bookmark(self.progress, |revision| encode(Kind::Bookmark(pb::Bookmark { revision })));
        self.send(message).await
    }

    /// Sends one encoded `WatchGroupEventsResponse`.
    async fn send(&mut self, message: Bytes) -> Result<(), Stop> {
        self.idle_deadline = Instant::now() + self.bookmark_interval;
        self.tx.send(Ok(message)).await.map_err(|_| Stop::Gone)
    }
}
