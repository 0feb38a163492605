//! The writer thread: the one place mutations are planned and applied.
//!
//! It takes every job waiting in its queue (up to [`MAX_COMMIT_GROUP`]),
//! plans each mutation in turn against the stored state plus the writes of
//! the mutations planned before it in the same commit group, and applies the
//! whole group's write set as one sled `apply_batch`. Each mutation keeps
//! its own revision and event batch; they are only stored together, so
//! under load one write (and later one flush) serves many mutations. A
//! commit group is all or nothing, and no caller is answered before it is
//! applied — and, in `Store::mutate`, before a flush covers it — so an
//! acknowledged mutation is never half there.
//!
//! One thread also orders revisions by construction: no lock is needed, and
//! an async worker never blocks on one.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Weak};

use super::embedded::{apply, load_user, Inner, Open, View};
use super::encoding::BatchRecord;
use super::keys;
use super::plan::Plan;
use super::state::{Table, WriteSet};
use crate::config::Limits;
use crate::domain::{now_ms, EventBatch, UserId};
use crate::error::Error;

/// Mutations taken into one commit group at most. Bounds the latency a large
/// group adds to its first member, and the memory of the pending writes.
pub const MAX_COMMIT_GROUP: usize = 256;

/// Called once the commit group holding the mutation is applied (or failed).
pub type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;
/// Plans one mutation into the commit group; `None` when it failed (and has
/// already answered) or needs no answer after the apply.
pub type MutationJob = Box<dyn FnOnce(&mut CommitGroup<'_>) -> Option<Reply> + Send>;
/// Runs with no commit group in progress, given the last committed revision.
pub type ExclusiveJob = Box<dyn FnOnce(&Inner, u64) + Send>;
/// Told the revision to continue from once the database has been reopened.
pub type ReopenReply = Box<dyn FnOnce(Result<u64, Error>) + Send>;

pub enum Job {
    Mutation(MutationJob),
    Exclusive(ExclusiveJob),
    /// Close the database and open it again (see `durability`): between
    /// commit groups, so no plan holds it.
    Reopen(ReopenReply),
}

/// Mutations planned together, committed as one write (group commit).
pub struct CommitGroup<'a> {
    /// The database, held for the whole group (None: closed after a failed
    /// reopen; every mutation then fails).
    trees: Option<Open<'a>>,
    limits: &'a Limits,
    /// Revision of the last mutation planned (committed or in this group).
    last: u64,
    pending: WriteSet,
    /// The event batch of each mutation planned, in revision order.
    batches: Vec<EventBatch>,
}

impl CommitGroup<'_> {
    /// Plans one mutation of `user`. Returns the answer and the user's
    /// revision after it (unchanged if the mutation changed nothing).
    pub fn plan<R>(
        &mut self,
        user: &UserId,
        build: impl FnOnce(&mut Plan<'_>, &Limits) -> Result<R, Error>,
    ) -> Result<(R, u64), Error> {
        let trees = self.trees.as_deref().ok_or_else(super::embedded::closed)?;
        let view = View { trees, pending: &self.pending };
        let mut plan = Plan::new(&view, user, load_user(&view, user)?, self.limits.max_conversations_per_group);
        let answer = build(&mut plan, self.limits)?;
        let unchanged = plan.user.revision;
        match plan.finish() {
            None => Ok((answer, unchanged)),
            Some(mut planned) => {
                let revision = self.last + 1;
                // The user's batch before this one: the link a user's log is
                // walked back along (see `keys`).
                let previous = planned.user.revision;
                planned.user.events += 1;
                let seq = planned.user.events;
                let (mut writes, user_record, batch) = planned.at(revision, now_ms());
                // What only this backend stores: the user record with its
                // revision, and the event batch keyed by revision. The last
                // revision and the per-user index are derived from these.
                writes.put(Table::Users, keys::user_prefix(user), user_record);
                let mut stored = BatchRecord::from_batch(&batch);
                stored.previous = previous;
                stored.seq = seq;
                writes.put(Table::Events, keys::event_key(revision).to_vec(), prost::Message::encode_to_vec(&stored));
                self.last = revision;
                self.pending.merge(writes);
                self.batches.push(batch);
                Ok((answer, revision))
            }
        }
    }
}

/// The thread's loop; ends when the store is dropped.
pub fn run(inner: Weak<Inner>, queue: Receiver<Job>, mut last: u64) {
    while let Ok(first) = queue.recv() {
        let Some(inner) = inner.upgrade() else { return };
        let mut jobs = vec![first];
        while jobs.len() < MAX_COMMIT_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(jobs.len());
        let mut group = new_group(&inner, last);
        for job in jobs {
            match job {
                Job::Mutation(job) => replies.extend(job(&mut group)),
                Job::Exclusive(job) => {
                    last = commit(&inner, group, std::mem::take(&mut replies));
                    job(&inner, last);
                    group = new_group(&inner, last);
                }
                Job::Reopen(reply) => {
                    commit(&inner, group, std::mem::take(&mut replies));
                    let reopened = super::durability::reopen(&inner);
                    // Revisions of event batches lost with the old database are
                    // reused: none was ever acknowledged or published.
                    last = inner.committed.load(Ordering::Acquire);
                    reply(reopened);
                    group = new_group(&inner, last);
                }
            }
        }
        last = commit(&inner, group, replies);
        drop(inner);
    }
}

fn new_group(inner: &Inner, last: u64) -> CommitGroup<'_> {
    let trees = inner.trees().ok();
    CommitGroup { trees, limits: &inner.limits, last, pending: WriteSet::default(), batches: Vec::new() }
}

/// Applies a commit group and answers its callers; returns the last
/// committed revision (unchanged if the group failed: its revisions are
/// reused).
fn commit(inner: &Inner, group: CommitGroup<'_>, replies: Vec<Reply>) -> u64 {
    let committed = inner.committed.load(Ordering::Acquire);
    let CommitGroup { last, pending, batches, trees, .. } = group;
    let outcome = match trees {
        _ if pending.is_empty() => Ok(()),
        Some(trees) => apply(&trees, &pending),
        None => Err(super::embedded::closed()),
    };
    let last = match &outcome {
        Ok(()) => {
            if let Some(newest) = batches.last() {
                inner.committed.store(newest.revision, Ordering::Release);
                match inner.unpublished.lock() {
                    Ok(mut queue) => queue.extend(batches.into_iter().map(Arc::new)),
                    Err(_) => tracing::error!("publish queue poisoned; watchers will catch up from the log"),
                }
            }
            last
        }
        Err(e) => {
            tracing::error!(error = %e, "applying a commit group failed; nothing of it was stored");
            inner.storage_failed("applying a commit group", e);
            committed
        }
    };
    for reply in replies {
        reply(match &outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::Storage(e.to_string())),
        });
    }
    last
}
