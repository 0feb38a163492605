//! Storage: the only module that knows sled.
//!
//! * Key layout: [`keys`]; stored values: [`codec`].
//! * Writes: one global write lock orders mutations, so revisions are
//!   assigned in commit order and the per-user state a mutation reads cannot
//!   change under it. A mutation plans its effects ([`plan::Plan`]) and
//!   applies them in one multi-tree sled transaction together with its event
//!   batch. The lock is held only for that in-memory work, never across a
//!   disk flush.
//! * Durability (group commit): after its transaction a mutation waits until
//!   a flush covers its revision. One background flusher runs one flush at a
//!   time for everything committed so far, so concurrent mutations share a
//!   flush. Only then are batches handed to the [`Hub`] (in revision order),
//!   so a watcher never sees a change that a crash could take back.

mod backup;
mod codec;
mod keys;
mod log;
mod ops;
mod plan;
mod query;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::{watch, Notify};

use crate::config::Limits;
use crate::domain::{now_ms, EventBatch, UserId};
use crate::error::Error;
use crate::hub::Hub;
use plan::{Plan, WriteSet, TREE_COUNT};

pub use backup::{backup, restore, BackupSummary};
pub use log::{Compaction, Scope, Snapshot};
pub use ops::CreatedGroup;

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::Storage(err.to_string())
    }
}

/// The sled trees of the key layout.
pub(crate) struct Trees {
    db: sled::Db,
    meta: sled::Tree,
    users: sled::Tree,
    convs: sled::Tree,
    members: sled::Tree,
    order: sled::Tree,
    events: sled::Tree,
    user_events: sled::Tree,
}

impl Trees {
    /// In the order of [`plan::T`].
    fn all(&self) -> [&sled::Tree; TREE_COUNT] {
        [&self.meta, &self.users, &self.convs, &self.members, &self.order, &self.events, &self.user_events]
    }
}

/// Durability progress, shared between mutations and the flusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Durable {
    /// Every revision up to this one is on disk.
    revision: u64,
    /// Bumped on every failed flush, so waiters can tell a failure happened
    /// after they committed.
    failures: u64,
}

struct Inner {
    trees: Trees,
    limits: Limits,
    hub: Hub,
    /// Held while a mutation plans and applies; guards the last revision.
    write_lock: Mutex<u64>,
    /// Last committed (applied, maybe not yet flushed) revision.
    committed: AtomicU64,
    /// Committed batches not yet published, in revision order.
    unpublished: Mutex<VecDeque<Arc<EventBatch>>>,
    durable: watch::Sender<Durable>,
    /// Wakes the flusher: a mutation waits for durability, or the store is
    /// gone.
    flush_wanted: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the flusher notice the store is gone and end.
        self.flush_wanted.notify_one();
    }
}

/// Reads the last durable revision; holds no database resources.
#[derive(Clone, Debug)]
pub struct RevisionWatch(watch::Receiver<Durable>);

impl RevisionWatch {
    pub fn current(&self) -> u64 {
        self.0.borrow().revision
    }
}

/// A cheap-clone handle on the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("committed", &self.inner.committed.load(Ordering::Relaxed)).finish()
    }
}

impl Store {
    /// Opens (or creates) the database in `dir` and starts the flusher. Must
    /// be called inside a tokio runtime. Fails if another process holds the
    /// directory.
    pub fn open(dir: &Path, limits: Limits, hub: Hub) -> Result<Self, Error> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            // Durability comes from our own flush before every answer, not
            // from sled's timer.
            .flush_every_ms(None)
            .open()
            .map_err(|e| Error::InvalidSetting {
                setting: "--data-dir",
                message: format!(
                    "cannot open the database in {} (is another convgroups server using it?): {e}",
                    dir.display()
                ),
            })?;
        let tree = |name: &str| db.open_tree(name);
        let trees = Trees {
            meta: tree("meta")?,
            users: tree("users")?,
            convs: tree("convs")?,
            members: tree("members")?,
            order: tree("order")?,
            events: tree("events")?,
            user_events: tree("user_events")?,
            db,
        };
        let revision = match trees.meta.get(keys::META_REVISION)? {
            Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| codec::corrupt("meta revision"))?,
            None => 0,
        };
        let (durable, _) = watch::channel(Durable { revision, failures: 0 });
        let inner = Arc::new(Inner {
            trees,
            limits,
            hub,
            write_lock: Mutex::new(revision),
            committed: AtomicU64::new(revision),
            unpublished: Mutex::new(VecDeque::new()),
            durable,
            flush_wanted: Arc::new(Notify::new()),
        });
        tokio::spawn(flusher(Arc::downgrade(&inner), inner.flush_wanted.clone()));
        Ok(Self { inner })
    }

    /// A handle that reads the durable revision without keeping the
    /// database open.
    pub fn revision_watch(&self) -> RevisionWatch {
        RevisionWatch(self.inner.durable.subscribe())
    }

    /// The last durable revision of the whole server.
    pub fn current_revision(&self) -> u64 {
        self.inner.durable.borrow().revision
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Bytes the database takes on disk.
    pub async fn size_on_disk(&self) -> Result<u64, Error> {
        self.blocking(|inner| Ok(inner.trees.db.size_on_disk()?)).await
    }

    /// Flushes everything to disk; called on shutdown.
    pub async fn flush(&self) -> Result<(), Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.trees.db.flush().map(|_| ()))
            .await
            .map_err(|e| Error::Internal(format!("flush task: {e}")))??;
        Ok(())
    }

    /// Runs blocking sled work off the async workers.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| Error::Internal(format!("storage task: {e}")))?
    }

    /// Runs one mutation for `user`: `build` plans it under the write lock
    /// and returns its answer; if the plan recorded events they are committed
    /// at the next revision and the call returns once that is durable. The
    /// answer gets the user's revision after the call.
    async fn mutate<R: Send + 'static>(
        &self,
        user: &UserId,
        build: impl FnOnce(&mut Plan<'_>, &Limits) -> Result<R, Error> + Send + 'static,
    ) -> Result<(R, u64), Error> {
        let user = user.clone();
        let (answer, revision, committed) = self
            .blocking(move |inner| {
                let mut last = inner.write_lock.lock().map_err(|_| Error::Internal("write lock poisoned".into()))?;
                let mut plan = Plan::new(&inner.trees, &user)?;
                let answer = build(&mut plan, &inner.limits)?;
                let unchanged_revision = plan.user.revision;
                let Some((writes, batch)) = plan.finish(*last + 1, now_ms()) else {
                    return Ok((answer, unchanged_revision, false));
                };
                apply(&inner.trees, &writes)?;
                *last = batch.revision;
                inner.committed.store(batch.revision, Ordering::Release);
                let revision = batch.revision;
                inner
                    .unpublished
                    .lock()
                    .map_err(|_| Error::Internal("publish queue poisoned".into()))?
                    .push_back(Arc::new(batch));
                Ok((answer, revision, true))
            })
            .await?;
        if committed {
            self.wait_durable(revision).await?;
        }
        Ok((answer, revision))
    }

    /// Waits until a flush covers `revision`.
    async fn wait_durable(&self, revision: u64) -> Result<(), Error> {
        let mut rx = self.inner.durable.subscribe();
        let failures_before = rx.borrow().failures;
        self.inner.flush_wanted.notify_one();
        let state = rx
            .wait_for(|d| d.revision >= revision || d.failures != failures_before)
            .await
            .map_err(|_| Error::Storage("storage closed before the change was flushed".into()))?;
        if state.revision >= revision {
            Ok(())
        } else {
            Err(Error::Storage(format!("flushing revision {revision} to disk failed")))
        }
    }
}

/// Applies a write set in one sled transaction across every tree.
fn apply(trees: &Trees, writes: &WriteSet) -> Result<(), Error> {
    let all = trees.all();
    let result: Result<(), TransactionError<()>> = all[..].transaction(|views| {
        for (view, ops) in views.iter().zip(writes.ops.iter()) {
            for (key, value) in ops {
                match value {
                    Some(value) => view.insert(key.as_slice(), value.as_slice())?,
                    None => view.remove(key.as_slice())?,
                };
            }
        }
        Ok::<(), ConflictableTransactionError<()>>(())
    });
    result.map_err(|e| match e {
        TransactionError::Storage(e) => Error::from(e),
        TransactionError::Abort(()) => Error::Internal("transaction aborted".into()),
    })
}

/// The group-commit loop: flush whatever is committed, then mark it durable
/// and publish it. Ends when the store is dropped.
async fn flusher(inner: std::sync::Weak<Inner>, wanted: Arc<Notify>) {
    loop {
        let notified = wanted.notified();
        let Some(strong) = inner.upgrade() else { return };
        let target = strong.committed.load(Ordering::Acquire);
        if target <= strong.durable.borrow().revision {
            // Don't keep the store alive while idle.
            drop(strong);
            notified.await;
            continue;
        }
        let flushing = strong.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || flushing.trees.db.flush()).await;
        match result {
            Ok(Ok(_)) => {
                crate::metrics::flushed(started.elapsed());
                strong.durable.send_modify(|d| d.revision = target);
                publish_durable(&strong, target);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "flush failed");
                strong.durable.send_modify(|d| d.failures += 1);
            }
            Err(e) => {
                tracing::error!(error = %e, "flush task failed");
                strong.durable.send_modify(|d| d.failures += 1);
            }
        }
    }
}

fn publish_durable(inner: &Inner, durable: u64) {
    let Ok(mut queue) = inner.unpublished.lock() else { return };
    while queue.front().is_some_and(|b| b.revision <= durable) {
        if let Some(batch) = queue.pop_front() {
            inner.hub.publish(batch);
        }
    }
}
