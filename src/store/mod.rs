//! Storage: the only module that knows sled.
//!
//! * Key layout: [`keys`]; stored values: [`codec`].
//! * Writes: one writer thread ([`writer`]) plans every mutation
//!   ([`plan::Plan`]) and applies the mutations waiting in its queue, each
//!   with its event batch and revision, in one multi-tree sled transaction;
//!   revisions follow commit order without a lock.
//! * Durability (group commit): after its transaction a mutation waits until
//!   a flush covers its revision. One background flusher runs one flush at a
//!   time for everything committed so far, so concurrent mutations share a
//!   flush. Only then are batches handed to the [`Hub`] (in revision order),
//!   so a watcher never sees a change that a crash could take back.
//! * Storage faults: a failed flush puts the store in a failing state
//!   (mutations refused at once, health NOT_SERVING) until
//!   [`durability`] has reopened the database, once the data directory
//!   takes writes again.

mod backup;
mod codec;
mod durability;
mod keys;
mod log;
mod ops;
mod plan;
mod query;
mod writer;

use std::collections::VecDeque;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::{watch, Notify};

use crate::config::Limits;
use crate::domain::{EventBatch, UserId};
use crate::error::Error;
use crate::hub::Hub;
use plan::{Plan, WriteSet, TREE_COUNT};
use writer::Job;

pub use backup::{backup, restore, BackupSummary};
pub use log::{Compaction, Scope, Snapshot};
pub use ops::CreatedGroup;

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::Storage(err.to_string())
    }
}

/// The open database: the sled trees of the key layout.
pub(crate) struct Trees {
    db: sled::Db,
    /// sled's log file, fdatasynced after every flush (see `make_durable`).
    log_file: std::fs::File,
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

    /// Opens (or creates) the database in `dir`; returns it with its last
    /// committed revision.
    fn open(dir: &Path) -> Result<(Self, u64), Error> {
        let db = open_when_unlocked(dir).map_err(|e| Error::InvalidSetting {
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
            log_file: durable_files(dir)?,
            db,
        };
        let revision = match trees.meta.get(keys::META_REVISION)? {
            Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| codec::corrupt("meta revision"))?,
            None => 0,
        };
        Ok((trees, revision))
    }

    /// Flushes sled, then fdatasyncs its log file: on Linux sled's flush
    /// only calls sync_file_range, which does not make a growing file's
    /// size and block allocation durable, so without this an acknowledged
    /// write could be lost on power loss (found by the storage-fault tests).
    fn make_durable(&self) -> Result<(), Error> {
        self.db.flush()?;
        self.log_file.sync_data().map_err(|e| Error::Storage(format!("fdatasync of the database log: {e}")))
    }
}

/// How long opening waits while sled's file lock is still held by a database
/// of this process that was just dropped (sled's last background writes of
/// it finishing): after a reopen, or a server restarted in-process.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn open_when_unlocked(dir: &Path) -> Result<sled::Db, sled::Error> {
    let started = std::time::Instant::now();
    loop {
        // Durability comes from our own flush before every answer, not from
        // sled's timer.
        match sled::Config::new().path(dir.join("db")).flush_every_ms(None).open() {
            // sled reports a held lock only as the text of an io::Error of
            // kind Other; anything else fails at once.
            Err(e) if started.elapsed() < LOCK_WAIT && e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// The database while it is open: a read lock on [`Inner::db`]. Hold it only
/// for one piece of blocking work, never across an await, and never take a
/// second one while holding it (a waiting reopen would deadlock the two).
pub(crate) struct Open<'a>(RwLockReadGuard<'a, Option<Trees>>);

impl Deref for Open<'_> {
    type Target = Trees;

    fn deref(&self) -> &Trees {
        self.0.as_ref().expect("an Open is only made of an open database")
    }
}

/// Durability progress, shared between mutations and the flusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Durable {
    /// Every revision up to this one is on disk.
    revision: u64,
    /// Bumped on every failed flush and on every reopen, so waiters can
    /// tell their commit may be gone.
    failures: u64,
    /// A flush failed and the database has not been reopened since:
    /// mutations are refused and health is NOT_SERVING.
    failing: bool,
}

struct Inner {
    /// None only while a reopen after a storage failure could not open it.
    db: RwLock<Option<Trees>>,
    dir: PathBuf,
    limits: Limits,
    hub: Hub,
    /// Feeds the writer thread, the one place mutations are planned and
    /// applied.
    jobs: std::sync::mpsc::Sender<Job>,
    /// Last committed (applied, maybe not yet flushed) revision.
    committed: AtomicU64,
    /// Committed batches not yet published, in revision order.
    unpublished: Mutex<VecDeque<Arc<EventBatch>>>,
    durable: watch::Sender<Durable>,
    /// Wakes the flusher: a mutation waits for durability, or the store is
    /// gone.
    flush_wanted: Arc<Notify>,
}

impl Inner {
    /// The open database, for one piece of blocking work.
    fn trees(&self) -> Result<Open<'_>, Error> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(closed());
        }
        Ok(Open(guard))
    }

    /// The open database if it can be had without waiting (None while a
    /// reopen holds it, or when it is closed): for reads done inline on an
    /// async worker, which must not block.
    fn try_trees(&self) -> Option<Open<'_>> {
        let guard = self.db.try_read().ok()?;
        guard.is_some().then(|| Open(guard))
    }
}

/// Why there is no database to read: a reopen after a failure did not work.
fn closed() -> Error {
    Error::Storage("the database is closed after a storage failure; it is reopened once storage works again".into())
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

    /// Resolves once storage is failing (`true`: a flush failed, mutations
    /// are refused) or healthy again (`false`: the database was reopened).
    pub async fn storage_failing(&mut self, failing: bool) {
        let _ = self.0.wait_for(|d| d.failing == failing).await;
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
    /// be called inside a tokio runtime. Fails (after `LOCK_WAIT`) if
    /// another process holds the directory.
    /// `retry` is how often recovery probes the data directory while
    /// storage is failing (`--storage-retry-interval`).
    pub fn open(dir: &Path, limits: Limits, hub: Hub, retry: std::time::Duration) -> Result<Self, Error> {
        let (trees, revision) = Trees::open(dir)?;
        let (durable, _) = watch::channel(Durable { revision, failures: 0, failing: false });
        let (jobs, queue) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            db: RwLock::new(Some(trees)),
            dir: dir.to_path_buf(),
            limits,
            hub,
            jobs,
            committed: AtomicU64::new(revision),
            unpublished: Mutex::new(VecDeque::new()),
            durable,
            flush_wanted: Arc::new(Notify::new()),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("convgroups-writer".into())
            .spawn(move || writer::run(weak, queue, revision))
            .map_err(|e| Error::Internal(format!("starting the writer thread: {e}")))?;
        tokio::spawn(durability::flusher(Arc::downgrade(&inner), inner.flush_wanted.clone(), retry));
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
        self.blocking(|inner| Ok(inner.trees()?.db.size_on_disk()?)).await
    }

    /// Flushes everything to disk; called on shutdown.
    pub async fn flush(&self) -> Result<(), Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.trees()?.db.flush().map(|_| ()).map_err(Error::from))
            .await
            .map_err(|e| Error::Internal(format!("flush task: {e}")))?
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

    /// Runs one mutation for `user` on the writer thread: `build` plans it
    /// and returns its answer; if the plan recorded events they are committed
    /// at the next revision and the call returns once that is durable. The
    /// answer comes with the user's revision after the call.
    async fn mutate<R: Send + 'static>(
        &self,
        user: &UserId,
        build: impl FnOnce(&mut Plan<'_>, &Limits) -> Result<R, Error> + Send + 'static,
    ) -> Result<(R, u64), Error> {
        if self.inner.durable.borrow().failing {
            // Planned now, the change could never be made durable; refusing
            // it before it touches the database keeps the failed state small.
            return Err(Error::Storage("storage is failing; mutations are refused until it recovers".into()));
        }
        let user = user.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: writer::MutationJob = Box::new(move |batch: &mut writer::Batch<'_>| match batch.plan(&user, build) {
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
            Ok((answer, revision)) => Some(Box::new(move |applied: Result<(), Error>| {
                let _ = tx.send(applied.map(|()| (answer, revision)));
            }) as writer::Reply),
        });
        self.send_job(Job::Mutation(job))?;
        let (answer, revision) =
            rx.await.map_err(|_| Error::Storage("the writer stopped before answering".into()))??;
        // A change waits for the flush that covers it. So does a mutation
        // that changed nothing: it answers with the user's revision, which
        // may belong to a change of another call still being flushed, and a
        // client must never be given a revision a crash could take back.
        if revision > self.current_revision() {
            self.wait_durable(revision).await.map_err(|e| match e {
                Error::Storage(detail) => Error::StorageOutcomeUnknown(detail),
                other => other,
            })?;
        }
        Ok((answer, revision))
    }

    /// Runs `read` on the writer thread between write batches, where no
    /// mutation is half-applied; it gets the last committed revision.
    async fn exclusive<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Inner, u64) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_job(Job::Exclusive(Box::new(move |inner, last| {
            let _ = tx.send(read(inner, last));
        })))?;
        rx.await.map_err(|_| Error::Storage("the writer stopped before answering".into()))?
    }

    fn send_job(&self, job: Job) -> Result<(), Error> {
        self.inner.jobs.send(job).map_err(|_| Error::Storage("the writer thread has stopped".into()))
    }

    /// Waits until a flush covers `revision`.
    async fn wait_durable(&self, revision: u64) -> Result<(), Error> {
        let mut rx = self.inner.durable.subscribe();
        let failures_before = rx.borrow().failures;
        self.inner.flush_wanted.notify_one();
        // While storage is failing nothing new becomes durable: fail at once
        // rather than wait for a recovery that may take hours.
        let state = rx
            .wait_for(|d| d.revision >= revision || d.failures != failures_before || d.failing)
            .await
            .map_err(|_| Error::Storage("storage closed before the change was flushed".into()))?;
        if state.revision >= revision {
            Ok(())
        } else {
            Err(Error::Storage(format!("flushing revision {revision} to disk failed")))
        }
    }
}

/// Opens sled's log file (to fdatasync it after flushes) and fsyncs the
/// directories, so the files themselves survive a power loss.
fn durable_files(dir: &Path) -> Result<std::fs::File, Error> {
    let storage = |e: std::io::Error| Error::Storage(format!("syncing {}: {e}", dir.display()));
    for d in [dir.join("db"), dir.to_path_buf()] {
        std::fs::File::open(&d).and_then(|f| f.sync_all()).map_err(storage)?;
    }
    std::fs::File::open(dir.join("db").join("db")).map_err(storage)
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
