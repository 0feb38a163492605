//! The embedded backend: sled in a local directory.
//!
//! * Writes: one writer thread ([`super::writer`]) plans every mutation
//!   ([`Plan`]) and applies the mutations waiting in its queue, each with
//!   its event batch, as one commit group: one `apply_batch` on the one
//!   tree of the key layout ([`super::keys`]); revisions follow commit order
//!   without a lock.
//! * Durability (group commit): once its commit group is applied, a
//!   mutation waits until a flush covers its revision. One background
//!   flusher runs one flush at a time for everything committed so far, so
//!   concurrent mutations share a flush. Only then are its event batches
//!   handed to the [`Hub`] (in revision order),
//!   so a watcher never sees a change that a crash could take back.
//! * Storage faults: a failed flush puts the store in a failing state
//!   (mutations refused at once, health NOT_SERVING) until
//!   [`super::durability`] has reopened the database, once the data
//!   directory takes writes again.

use std::collections::VecDeque;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use tokio::sync::{watch, Notify};

use super::encoding::{decode, UserRecord};
use super::keys;
use super::rules::Rule;
use super::state::{StateRead, Table, Visit, WriteSet};
use super::writer::{self, Job};
use super::{durability, Durable, RevisionWatch};
use crate::config::Limits;
use crate::domain::{ConversationFilter, ConversationPage, EventBatch, GroupList, ListPosition, UserId};
use crate::error::Error;
use crate::hub::Hub;

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::Storage(err.to_string())
    }
}

/// The open database: the one sled tree of the key layout (see
/// [`super::keys`]).
pub(crate) struct Trees {
    pub(super) db: sled::Db,
    /// sled's log file, fdatasynced after every flush (see `make_durable`).
    pub(super) log_file: std::fs::File,
    /// Every table, each key behind its table's tag ([`keys::sled_key`]).
    pub(super) kv: sled::Tree,
}

impl Trees {
    /// Opens (or creates) the database in `dir`, converting a database of
    /// the per-table layout first (see [`super::migrate`]); returns it with
    /// its last committed revision.
    pub(super) fn open(dir: &Path) -> Result<(Self, u64), Error> {
        let db = open_db(dir).map_err(|e| Error::InvalidSetting {
            setting: crate::config::Setting::DataDir,
            message: if is_lock_held(&e) {
                format!(
                    "cannot open the database in {}: it is locked, so another convgroups server (or backup) \
                     is using it; stop that one or pick another data directory",
                    dir.display()
                )
            } else {
                format!("cannot open the database in {}: {e}", dir.display())
            },
        })?;
        let trees = Trees { kv: db.open_tree(keys::SLED_TREE)?, log_file: durable_files(dir)?, db };
        super::migrate::upgrade(&trees, dir)?;
        let revision = trees.last_revision()?;
        Ok((trees, revision))
    }

    /// The last committed revision, derived rather than stored with every
    /// mutation: the newest event's, unless trimming or a reopen left a
    /// higher one in meta (the global floor, `meta/revision`).
    fn last_revision(&self) -> Result<u64, Error> {
        let newest_event = match self.kv.scan_prefix([keys::sled_tag(Table::Events)]).next_back().transpose()? {
            Some((key, _)) => keys::decode_u64(&key[1..]).ok_or_else(|| super::encoding::corrupt("event key"))?,
            None => 0,
        };
        let meta = |key: &[u8]| -> Result<u64, Error> {
            match self.kv.get(keys::sled_key(Table::Meta, key))? {
                Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| super::encoding::corrupt("meta value")),
                None => Ok(0),
            }
        };
        Ok(newest_event.max(meta(super::log::GLOBAL_FLOOR)?).max(meta(keys::META_REVISION)?))
    }

    /// Flushes sled, then fdatasyncs its log file: on Linux sled's flush
    /// only calls sync_file_range, which does not make a growing file's
    /// size and block allocation durable, so without this an acknowledged
    /// write could be lost on power loss (found by the storage-fault tests).
    pub(super) fn make_durable(&self) -> Result<(), Error> {
        self.db.flush()?;
        self.log_file.sync_data().map_err(|e| Error::Storage(format!("fdatasync of the database log: {e}")))
    }
}

/// How long opening waits while sled's file lock is still held by a database
/// of this process that was just dropped (sled's last background writes of
/// it finishing): after a reopen, or a server restarted in-process.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether sled failed because another process holds the database's file
/// lock. sled says so only in the text of an io::Error of kind Other
/// ("could not acquire lock on ...: Os { .. WouldBlock .. }").
fn is_lock_held(error: &sled::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

/// Opens the sled database in `dir` (the one place that does: the server,
/// backup and restore), waiting [`LOCK_WAIT`] for a lock of this process to
/// be released.
pub(super) fn open_db(dir: &Path) -> Result<sled::Db, sled::Error> {
    let started = std::time::Instant::now();
    loop {
        // Durability comes from our own flush before every answer, not from
        // sled's timer.
        match sled::Config::new().path(dir.join("db")).flush_every_ms(None).open() {
            // sled reports a held lock only as the text of an io::Error of
            // kind Other; anything else fails at once.
            Err(e) if started.elapsed() < LOCK_WAIT && is_lock_held(&e) => {
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

pub(super) struct Inner {
    /// None only while a reopen after a storage failure could not open it.
    pub(super) db: RwLock<Option<Trees>>,
    pub(super) dir: PathBuf,
    pub(super) limits: Limits,
    pub(super) hub: Hub,
    /// Feeds the writer thread, the one place mutations are planned and
    /// applied.
    pub(super) jobs: std::sync::mpsc::Sender<Job>,
    /// Last committed (applied, maybe not yet flushed) revision.
    pub(super) committed: AtomicU64,
    /// Committed batches not yet published, in revision order.
    pub(super) unpublished: Mutex<VecDeque<Arc<EventBatch>>>,
    pub(super) durable: watch::Sender<Durable>,
    /// Wakes the flusher: a mutation waits for durability, or the store is
    /// gone.
    pub(super) flush_wanted: Arc<Notify>,
}

impl Inner {
    /// The open database, for one piece of blocking work.
    pub(super) fn trees(&self) -> Result<Open<'_>, Error> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(closed());
        }
        Ok(Open(guard))
    }

    /// The open database if it can be had without waiting (None while a
    /// reopen holds it, or when it is closed): for reads done inline on an
    /// async worker, which must not block.
    pub(super) fn try_trees(&self) -> Option<Open<'_>> {
        let guard = self.db.try_read().ok()?;
        guard.is_some().then(|| Open(guard))
    }
}

/// Why there is no database to read: a reopen after a failure did not work.
pub(super) fn closed() -> Error {
    Error::Storage("the database is closed after a storage failure; it is reopened once storage works again".into())
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the flusher notice the store is gone and end.
        self.flush_wanted.notify_one();
    }
}

/// A cheap-clone handle on the database.
#[derive(Clone)]
pub struct SledStore {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("committed", &self.inner.committed.load(Ordering::Relaxed)).finish()
    }
}

impl SledStore {
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
    pub(super) async fn blocking<R: Send + 'static>(
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
    pub(super) async fn mutate<R: Send + 'static>(
        &self,
        user: &UserId,
        build: impl Rule<R>,
    ) -> Result<(R, u64), Error> {
        if self.inner.durable.borrow().failing {
            // Planned now, the change could never be made durable; refusing
            // it before it touches the database keeps the failed state small.
            return Err(Error::Storage("storage is failing; mutations are refused until it recovers".into()));
        }
        let user = user.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: writer::MutationJob =
            Box::new(move |group: &mut writer::CommitGroup<'_>| match group.plan(&user, build) {
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

    /// Runs `read` on the writer thread between commit groups, where no
    /// mutation is half-applied; it gets the last committed revision.
    pub(super) async fn exclusive<R: Send + 'static>(
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
    pub(super) async fn wait_durable(&self, revision: u64) -> Result<(), Error> {
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

/// Applies a write set as one `sled::Batch` on the one tree: atomic (sled
/// recovers all of it or none of it), and cheaper than a transaction
/// across trees. sled applies it in key order, so a reader that sees a
/// user's new record (tag `u`) also sees its event batch (tag `e`).
pub(super) fn apply(trees: &Trees, writes: &WriteSet) -> Result<(), Error> {
    let mut ops = sled::Batch::default();
    for (table, key, value) in writes.iter() {
        let key = keys::sled_key(table, key);
        match value {
            Some(value) => ops.insert(key, value.as_slice()),
            None => ops.remove(key),
        }
    }
    Ok(trees.kv.apply_batch(ops)?)
}

/// The largest page of an unfiltered GetConversationList read on the async
/// worker itself (see [`SledStore::list_conversations`]): 100 records take
/// ~150 µs, within what a worker may spend between awaits.
const INLINE_PAGE_SIZE: usize = 100;

/// How many times a read of many values (a page, an unread total) is tried
/// beside the writer before it is done on the writer thread between commit
/// groups, where nothing can land in the middle of it.
const CONSISTENT_READ_ATTEMPTS: usize = 3;

/// Runs `read` (a read of many of `user`'s values) and keeps its answer only
/// if no commit of the user landed during it.
///
/// Reads run beside the writer thread, so a commit group applied in the
/// middle of a page would mix two revisions in one answer: some
/// conversations as before it, some as after, under the older revision
/// (and the newer data perhaps not yet durable). sled applies a batch
/// atomically with respect to each get, and every commit that changes a
/// user's data rewrites the user's record; so an answer read between two
/// equal gets of that record saw no commit of the user in between and is
/// the state at the record's revision. `read` gets the record decoded from
/// the first get. None: one landed, read again.
fn unchanged_around<T>(
    trees: &Trees,
    user: &UserId,
    read: impl FnOnce(&UserRecord) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    let key = keys::sled_key(Table::Users, &keys::user_prefix(user));
    let before = trees.kv.get(&key)?;
    let record = match &before {
        Some(bytes) => decode::<UserRecord>(bytes, "user record")?,
        None => UserRecord::default(),
    };
    let answer = read(&record)?;
    let after = trees.kv.get(&key)?;
    Ok((before == after).then_some(answer))
}

/// [`unchanged_around`] up to [`CONSISTENT_READ_ATTEMPTS`] times.
fn consistent<T>(
    trees: &Trees,
    user: &UserId,
    read: impl Fn(&UserRecord) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    for _ in 0..CONSISTENT_READ_ATTEMPTS {
        if let Some(answer) = unchanged_around(trees, user, &read)? {
            return Ok(Some(answer));
        }
    }
    Ok(None)
}

/// Reads of committed state straight from the tree.
pub(super) struct SledRead<'a>(pub &'a Trees);

impl StateRead for SledRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.0.kv.get(keys::sled_key(table, key))?.map(|v| v.to_vec()))
    }

    fn with_value(&self, table: Table, key: &[u8], read: &mut Visit<'_>) -> Result<bool, Error> {
        // sled hands out its cached value: read it there, without a copy.
        match self.0.kv.get(keys::sled_key(table, key))? {
            Some(value) => read(key, &value),
            None => Ok(false),
        }
    }

    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), Error> {
        let prefix = keys::sled_key(table, prefix);
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(keys::sled_key(table, after)),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        for entry in self.0.kv.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)) {
            let (key, value) = entry?;
            // The tag is the backend's: callers see the table's own keys.
            if !key.starts_with(&prefix) || !visit(&key[1..], &value)? {
                break;
            }
        }
        Ok(())
    }
}

/// What a plan on the writer thread reads: the stored tree as changed by
/// the mutations already planned in the same commit group (not yet applied
/// to sled).
pub(super) struct View<'a> {
    pub trees: &'a Trees,
    pub pending: &'a WriteSet,
}

impl StateRead for View<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(pending) = self.pending.ops[table as usize].get(key) {
            return Ok(pending.clone());
        }
        SledRead(self.trees).get(table, key)
    }

    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), Error> {
        // Merges the stored entries with the pending writes; plans scan only
        // small ranges (one group's members), so collecting them is cheap.
        let mut entries = std::collections::BTreeMap::new();
        SledRead(self.trees).scan(table, prefix, after, &mut |k, v| {
            entries.insert(k.to_vec(), v.to_vec());
            Ok(true)
        })?;
        for (key, value) in self.pending.ops[table as usize].range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|after| key.as_slice() <= after) {
                continue;
            }
            match value {
                Some(value) => entries.insert(key.clone(), value.clone()),
                None => entries.remove(key),
            };
        }
        for (key, value) in &entries {
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }
}

/// The user's record as `state` holds it (the default for a new user).
pub(super) fn load_user(state: &dyn StateRead, user: &UserId) -> Result<UserRecord, Error> {
    let mut record = UserRecord::default();
    state.with_value(Table::Users, &keys::user_prefix(user), &mut |_, bytes| {
        record = decode(bytes, "user record")?;
        Ok(true)
    })?;
    Ok(record)
}

impl SledStore {
    /// Reads run beside the writer, so one may see a change that is
    /// committed but not yet flushed. Before answering, wait for that flush:
    /// a client must never be shown a revision that a crash could take
    /// back (it would watch from it). Free when nothing is in flight.
    async fn settled<A>(&self, answer: A, revision: u64) -> Result<A, Error> {
        if revision > self.current_revision() {
            self.wait_durable(revision).await?;
        }
        Ok(answer)
    }

    pub async fn group_list(&self, user: &UserId) -> Result<GroupList, Error> {
        // One get of one small value, almost always from sled's cache: done
        // inline, because handing it to a blocking thread costs several
        // times what the read does (this is the hottest call).
        let inline = self.inner.try_trees().map(|trees| load_user(&SledRead(&trees), user));
        let record = match inline {
            Some(record) => record?,
            // A reopen after a storage failure is under way: wait for it on
            // a blocking thread, not here.
            None => {
                let user = user.clone();
                self.blocking(move |inner| load_user(&SledRead(&*inner.trees()?), &user)).await?
            }
        };
        let list = super::query::group_list(&record);
        let revision = list.revision;
        self.settled(list, revision).await
    }

    /// Hook for `Store::user_record_stamp`: the user's record as stored,
    /// read inline from sled's cache; None while a reopen is under way.
    /// Changes at every storage failure and every reopen (see
    /// [`super::RecordStamp`]).
    pub(super) fn generation(&self) -> u64 {
        self.inner.durable.borrow().failures
    }

    pub(super) fn user_record_raw(&self, user: &UserId) -> Option<Result<Option<sled::IVec>, Error>> {
        self.inner.try_trees().map(|trees| Ok(trees.kv.get(keys::sled_key(Table::Users, &keys::user_prefix(user)))?))
    }

    pub async fn list_conversations(
        &self,
        user: &UserId,
        filter: ConversationFilter,
        page_size: usize,
        after: Option<ListPosition>,
    ) -> Result<ConversationPage, Error> {
        let read = move |trees: &Trees,
                         user_id: &UserId,
                         user: &UserRecord,
                         filter: &ConversationFilter,
                         after: Option<&ListPosition>| {
            super::query::list_page(&SledRead(trees), user_id, user, filter, page_size, after)
        };
        // An unfiltered page reads exactly page_size + 1 index entries and
        // records, nearly always from sled's cache (~1.5 µs each): a small
        // one is read inline, as the group list is, because the hand-off to
        // a blocking thread and back costs about as much as the read. A
        // filter may scan far past the page before it fills, and a big page
        // is big work: those go to a blocking thread.
        if page_size <= INLINE_PAGE_SIZE && filter == ConversationFilter::default() {
            // One try on the worker (the retries, if a commit lands in the
            // middle, go to a blocking thread); the database guard is not
            // held across the await below.
            let inline = match self.inner.try_trees() {
                Some(trees) => {
                    unchanged_around(&trees, user, |record| read(&trees, user, record, &filter, after.as_ref()))?
                }
                None => None,
            };
            if let Some(page) = inline {
                let revision = page.revision;
                return self.settled(page, revision).await;
            }
        }
        let page = self
            .consistent_read(user, move |trees, user, record| read(trees, user, record, &filter, after.as_ref()))
            .await?;
        let revision = page.revision;
        self.settled(page, revision).await
    }

    /// A read of many of `user`'s values on a blocking thread, whole at one
    /// revision: tried beside the writer, and if commits of the user keep
    /// landing in the middle of it, done on the writer thread between
    /// commit groups (a hot user's reads wait for a commit group then, but
    /// never answer a mix).
    async fn consistent_read<T: Send + 'static>(
        &self,
        user: &UserId,
        read: impl Fn(&Trees, &UserId, &UserRecord) -> Result<T, Error> + Clone + Send + 'static,
    ) -> Result<T, Error> {
        let (user_id, beside) = (user.clone(), read.clone());
        let answer = self
            .blocking(move |inner| {
                let trees = inner.trees()?;
                consistent(&trees, &user_id, |record| beside(&trees, &user_id, record))
            })
            .await?;
        match answer {
            Some(answer) => Ok(answer),
            None => {
                let user_id = user.clone();
                self.exclusive(move |inner, _| {
                    let trees = inner.trees()?;
                    read(&trees, &user_id, &load_user(&SledRead(&trees), &user_id)?)
                })
                .await
            }
        }
    }

    pub async fn unread_count(&self, user: &UserId, filter: ConversationFilter) -> Result<(u64, u64), Error> {
        let answer = self
            .consistent_read(user, move |trees, user_id, user| {
                super::query::unread_count(&SledRead(trees), user_id, user, &filter)
            })
            .await?;
        self.settled(answer, answer.1).await
    }
}
