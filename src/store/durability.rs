//! Making commits durable (the group-commit flusher), and coming back from a
//! storage failure without a restart.
//!
//! Once a write to its log fails (a full disk, a read-only filesystem, an
//! I/O error), sled 0.34 keeps a sticky error in its open database and
//! refuses every later write, even after the cause is gone; and after a
//! failed fsync the kernel may have dropped the dirty pages, so what sled
//! holds in memory can no longer be trusted to match the disk. Recovery
//! therefore never retries the flush: it waits until the data directory
//! takes a probe write again, then closes the database and opens it anew,
//! which rebuilds the state from exactly what is on disk (sled's recovery
//! keeps each `apply_batch`, so each commit group, whole or not at all) —
//! the same state a restart would give.
//!
//! While storage is failing ([`super::Durable::failing`]), mutations are
//! refused before they are planned, reads that would need an unflushed
//! revision fail at once, and other reads keep working from the old
//! database — unless a lookup meets a node that earlier writes overfilled:
//! sled completes the split during the read, a log write that fails too, so
//! that read is refused as well until the reopen. Committed event batches
//! that were never made durable were answered with an error and never
//! published; after the reopen those that reached the disk are published
//! (in order), the rest are dropped and their revisions reused.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::embedded::{Inner, Trees};
use super::keys;
use super::state::Table;
use super::writer::Job;
use crate::error::Error;

/// Bytes the probe writes (and fsyncs, and deletes) before a reopen is
/// tried: two of sled's 512 KiB log segments, about what the reopen and
/// the first writes after it need.
pub const PROBE_BYTES: usize = 1 << 20;

/// Name of the probe file in the data directory; it exists only during a
/// probe.
const PROBE_FILE: &str = ".convgroups-space-probe";

/// A failure this soon after a recovery counts as flapping (see
/// [`recovery_wait`]).
const FLAPPING_WITHIN: Duration = Duration::from_secs(60);

/// The most a flapping disk stretches the wait, as a multiple of
/// `--storage-retry-interval`.
const MAX_BACKOFF: u32 = 64;

/// The wait between recovery attempts for a failure `since_recovery` after
/// the previous recovery (None: the first failure). Normally `retry`; but a
/// disk that fails again soon after each recovery (one that passes the
/// probe yet fills up at once) doubles the wait each time, up to
/// [`MAX_BACKOFF`] × `retry`, so the database is not reopened in a loop.
fn recovery_wait(retry: Duration, previous: Duration, since_recovery: Option<Duration>) -> Duration {
    match since_recovery {
        Some(since) if since < FLAPPING_WITHIN => (previous * 2).clamp(retry, retry * MAX_BACKOFF),
        _ => retry,
    }
}

/// The group-commit loop: flush whatever is committed, then mark it durable
/// and publish it; once storage is failing (a flush here, or a write
/// elsewhere, failed), recover. Ends when the store is dropped.
///
/// `retry` is the wait between recovery attempts: each costs one probe
/// write, so an idle failing server stays idle.
pub async fn flusher(inner: Weak<Inner>, wanted: Arc<Notify>, retry: Duration) {
    let mut wait = retry;
    let mut recovered_at: Option<std::time::Instant> = None;
    loop {
        let notified = wanted.notified();
        let Some(strong) = inner.upgrade() else { return };
        if strong.durable.borrow().failing {
            drop(strong);
            wait = recovery_wait(retry, wait, recovered_at.map(|t| t.elapsed()));
            if !recover(&inner, wait).await {
                return;
            }
            recovered_at = Some(std::time::Instant::now());
            continue;
        }
        let target = strong.committed.load(Ordering::Acquire);
        if target <= strong.durable.borrow().revision {
            // Don't keep the store alive while idle.
            drop(strong);
            notified.await;
            continue;
        }
        let flushing = strong.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || flushing.trees()?.make_durable()).await;
        match result {
            Ok(Ok(())) => {
                crate::metrics::flushed(started.elapsed());
                strong.durable.send_modify(|d| d.revision = target);
                publish_durable(&strong, target);
            }
            Ok(Err(e)) => strong.storage_failed("flushing", &e),
            Err(e) => strong.storage_failed("flushing", &Error::Internal(format!("flush task: {e}"))),
        }
    }
}

impl Inner {
    /// A write to the database failed: from now on mutations are refused
    /// and health is NOT_SERVING until [`recover`] has reopened it.
    /// Idempotent; wakes the flusher, which does the recovery.
    pub(super) fn storage_failed(&self, doing: &str, error: &Error) {
        let mut newly = false;
        self.durable.send_modify(|d| {
            d.failures += 1;
            newly = !d.failing;
            d.failing = true;
        });
        if newly {
            tracing::error!(
                error = %error,
                data_dir = %self.dir.display(),
                "{doing} failed: mutations are refused and health is NOT_SERVING until the data directory \
                 takes writes again"
            );
        }
        self.flush_wanted.notify_one();
    }
}

/// Waits until the data directory takes writes, then has the writer thread
/// reopen the database. Returns false if the store was dropped meanwhile.
async fn recover(inner: &Weak<Inner>, retry: Duration) -> bool {
    let mut attempts = 0u64;
    loop {
        tokio::time::sleep(retry).await;
        let Some(strong) = inner.upgrade() else { return false };
        attempts += 1;
        let dir = strong.dir.clone();
        let probed = tokio::task::spawn_blocking(move || probe(&dir))
            .await
            .unwrap_or_else(|e| Err(Error::Internal(format!("probe task: {e}"))));
        let reopened = match probed {
            Ok(()) => request_reopen(&strong).await,
            Err(e) => Err(e),
        };
        match reopened {
            Ok(revision) => {
                tracing::warn!(
                    revision,
                    attempts,
                    "storage works again: database reopened from disk; mutations are accepted and health is SERVING"
                );
                return true;
            }
            // Logged on the 1st, 2nd, 4th, 8th... attempt: a failing server
            // must not flood its log.
            Err(e) if attempts.is_power_of_two() => {
                tracing::error!(error = %e, attempts, "storage still failing; retrying");
            }
            Err(_) => {}
        }
    }
}

/// Sends the reopen to the writer thread and waits for it.
async fn request_reopen(inner: &Inner) -> Result<u64, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    inner
        .jobs
        .send(Job::Reopen(Box::new(move |result| {
            let _ = tx.send(result);
        })))
        .map_err(|_| Error::Storage("the writer thread has stopped".into()))?;
    rx.await.map_err(|_| Error::Storage("the writer stopped before reopening".into()))?
}

/// Writes, fsyncs and deletes [`PROBE_BYTES`] in `dir`: does the data
/// directory take writes again?
fn probe(dir: &Path) -> Result<(), Error> {
    use std::io::Write;
    let path = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written.and(removed).map_err(|e| Error::Storage(format!("probe write in {}: {e}", dir.display())))
}

/// On the writer thread, between commit groups: closes the database and opens it
/// again from disk, then checks that a write reaches the disk. Sets the
/// committed revision to continue from (also when the check fails: the
/// reopened database serves reads either way) and drops the unpublished
/// batches that did not survive. Once writes work, marks storage healthy
/// and publishes the survivors — here, before the writer takes its next
/// job, so no commit on the new database is judged by the old state — and
/// returns the revision.
pub fn reopen(inner: &Inner) -> Result<u64, Error> {
    // Waits for the readers to finish; new ones wait for the reopen.
    let mut slot = inner.db.write().unwrap_or_else(PoisonError::into_inner);
    // The old database must be gone before sled can lock the files again.
    // Its sticky error keeps it from writing anything on the way out.
    drop(slot.take());
    let (trees, recovered) = Trees::open(&inner.dir)?;
    let durable = inner.durable.borrow().revision;
    if recovered < durable {
        // The disk lost writes that a flush and an fdatasync had reported
        // done: nothing here can bring them back, but revisions must never
        // go back (watchers and clients hold them).
        tracing::error!(recovered, durable, "the reopened database is behind what was flushed: the disk lost writes");
    }
    let revision = recovered.max(durable);
    inner.committed.store(revision, Ordering::Release);
    if let Ok(mut queue) = inner.unpublished.lock() {
        queue.retain(|batch| batch.revision <= revision);
    }
    // Also keeps the revision, so revisions never go back even if the disk
    // lost the newest events (the revision is otherwise derived from them).
    let checked = trees
        .kv
        .insert(keys::sled_key(Table::Meta, keys::META_REVISION), &revision.to_be_bytes())
        .map_err(Error::from)
        .and_then(|_| trees.make_durable());
    *slot = Some(trees);
    drop(slot);
    checked?;
    inner.durable.send_modify(|d| {
        d.revision = revision;
        // Wakes anyone still waiting on a commit the old database lost.
        d.failures += 1;
        d.failing = false;
    });
    publish_durable(inner, revision);
    crate::metrics::storage_reopened();
    Ok(revision)
}

/// Hands the durable batches to the hub, in revision order.
pub fn publish_durable(inner: &Inner, durable: u64) {
    let Ok(mut queue) = inner.unpublished.lock() else { return };
    while queue.front().is_some_and(|b| b.revision <= durable) {
        if let Some(batch) = queue.pop_front() {
            inner.hub.publish(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The recovery path on a real sled database in a temporary directory.
    //! A genuine full or read-only disk needs root and a small filesystem:
    //! that is `tests/storage_faults.rs`. Here the failure is reported the
    //! way a failed write reports it, and everything after (refusals, the
    //! probe, the reopen, health) runs for real.

    use super::*;
    use crate::config::Limits;
    use crate::domain::{GroupList, ItemResults, UserId};
    use crate::hub::Hub;
    use crate::store::Store;

    fn sled(store: &Store) -> &crate::store::embedded::SledStore {
        match store {
            Store::Sled(sled) => sled,
            Store::Etcd(_) => unreachable!("opened as sled"),
        }
    }

    fn open(dir: &Path, retry: Duration) -> Store {
        Store::open(dir, Limits::default(), Hub::new(&crate::config::WatchSettings::default()), retry)
            .expect("open the store")
    }

    async fn create(store: &Store, user: &UserId, name: &str) -> Result<u64, Error> {
        let (items, result) = ItemResults::classify::<()>(vec![(format!("C2C{name}"), Ok(()))]);
        Ok(store
            .create_group(user, name.into(), items, crate::domain::SortMode::default(), None, result, None)
            .await?
            .outcome
            .revision)
    }

    fn names(list: &GroupList) -> Vec<&str> {
        list.groups.iter().map(|g| g.name.as_str()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopen_rebuilds_the_state_from_disk_and_revisions_continue() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), Duration::from_millis(10));
        let alice = UserId::parse("alice").expect("user");
        for name in ["A", "B", "C"] {
            create(&store, &alice, name).await.expect("create");
        }
        let before = store.group_list(&alice, None).await.expect("read");

        let revision = request_reopen(&sled(&store).inner).await.expect("reopen");
        assert_eq!(revision, before.revision, "a reopen keeps the revision");
        assert_eq!(store.current_revision(), revision);
        assert_eq!(store.group_list(&alice, None).await.expect("read after the reopen"), before);

        let next = create(&store, &alice, "D").await.expect("create after the reopen");
        assert_eq!(next, revision + 1, "revisions continue after a reopen");
        drop(store);
        let restarted = open(dir.path(), Duration::from_millis(10));
        let list = restarted.group_list(&alice, None).await.expect("read after a restart");
        assert_eq!((names(&list), list.revision), (vec!["A", "B", "C", "D"], next));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_storage_refuses_mutations_until_the_flusher_reopens_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        // The first recovery attempt comes a second after the failure: time
        // enough to see the refusal first.
        let store = open(dir.path(), Duration::from_secs(1));
        let alice = UserId::parse("alice").expect("user");
        let first = create(&store, &alice, "A").await.expect("create");
        let stamp = store.user_record_stamp(&alice).expect("sled").expect("stamp");
        let mut health = store.revision_watch();

        sled(&store).inner.storage_failed("a test", &Error::Storage("injected".into()));
        // Health sees it, mutations are refused (not applied), reads of
        // durable state keep working.
        tokio::time::timeout(Duration::from_secs(5), health.storage_failing(true)).await.expect("failing");
        match create(&store, &alice, "B").await {
            Err(Error::Storage(message)) => assert!(message.contains("failing"), "{message}"),
            other => panic!("a mutation while storage is failing: {other:?}"),
        }
        // The directory takes writes, so the flusher's probe passes and it
        // reopens the database by itself.
        tokio::time::timeout(Duration::from_secs(5), health.storage_failing(false)).await.expect("recovered");
        let list = store.group_list(&alice, None).await.expect("read");
        assert_eq!((names(&list), list.revision), (vec!["A"], first), "the refused create left nothing");
        // Alice's record is as it was, but answers cached before the failure
        // must not be reused after the reopen (see RecordStamp).
        assert!(store.user_record_stamp(&alice).expect("sled").expect("stamp") != stamp, "a reopen changes stamps");
        assert_eq!(create(&store, &alice, "B").await.expect("create after recovery"), first + 1);
        assert!(!dir.path().join(PROBE_FILE).exists(), "the probe file is removed");
    }

    #[test]
    fn a_disk_that_fails_again_soon_after_each_recovery_is_retried_less_often() {
        let retry = Duration::from_millis(500);
        let soon = Some(Duration::from_secs(5));
        // A first failure, or one long after the last recovery: the setting.
        assert_eq!(recovery_wait(retry, retry, None), retry);
        assert_eq!(recovery_wait(retry, retry * 8, Some(FLAPPING_WITHIN)), retry);
        // Failing again soon after each recovery: doubling, then capped.
        let mut wait = retry;
        let mut waits = Vec::new();
        for _ in 0..8 {
            wait = recovery_wait(retry, wait, soon);
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000]);
    }

    #[test]
    fn the_probe_names_a_directory_that_takes_no_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        probe(dir.path()).expect("a writable directory");
        assert!(!dir.path().join(PROBE_FILE).exists(), "the probe file is removed");
        let missing = dir.path().join("missing");
        let error = probe(&missing).expect_err("a missing directory").to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }
}
