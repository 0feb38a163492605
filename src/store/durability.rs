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
//! keeps whole transactions only) — the same state a restart would give.
//!
//! While storage is failing ([`super::Durable::failing`]), mutations are
//! refused before they are planned, reads that would need an unflushed
//! revision fail at once, and other reads keep working from the old
//! database. Committed batches that were never made durable were answered
//! with an error and never published; after the reopen those that reached
//! the disk are published (in order), the rest are dropped and their
//! revisions reused.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::writer::Job;
use super::{keys, Inner, Trees};
use crate::error::Error;

/// Bytes the probe writes (and fsyncs, and deletes) before a reopen is
/// tried: two of sled's 512 KiB log segments, about what the reopen and
/// the first writes after it need.
pub const PROBE_BYTES: usize = 1 << 20;

/// Name of the probe file in the data directory; it exists only during a
/// probe.
const PROBE_FILE: &str = ".convgroups-space-probe";

/// The group-commit loop: flush whatever is committed, then mark it durable
/// and publish it; once storage is failing (a flush here, or a write
/// elsewhere, failed), recover. Ends when the store is dropped.
///
/// `retry` is the wait between recovery attempts: each costs one probe
/// write, so an idle failing server stays idle.
pub async fn flusher(inner: Weak<Inner>, wanted: Arc<Notify>, retry: Duration) {
    loop {
        let notified = wanted.notified();
        let Some(strong) = inner.upgrade() else { return };
        if strong.durable.borrow().failing {
            drop(strong);
            if !recover(&inner, retry).await {
                return;
            }
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

/// On the writer thread, between batches: closes the database and opens it
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
    let checked = trees
        .meta
        .insert(keys::META_REVISION, &revision.to_be_bytes())
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
