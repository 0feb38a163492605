//! The embedded backend's event log as watchers read it: replay from a
//! revision, floors left by compaction, consistent snapshots; and the
//! background trimming itself.
//!
//! Trimming keeps an event while it is younger than `retain_for` or among the
//! newest `retain_events_per_user` events of its user. It records how far it
//! went (a per-user floor and a global floor) *before* deleting anything, so
//! a reader that finds an event missing always also finds a floor that
//! explains it, and fails with REVISION_COMPACTED rather than skipping it.

use std::collections::HashMap;

use super::codec::{decode, BatchRecord};
use super::embedded::{load_user, SledRead, SledStore, Trees};
use super::keys;
use super::{Compaction, Scope, Snapshot};
use crate::domain::{now_ms, EventBatch, UserId};
use crate::error::Error;

/// Meta key of the global floor: every trimmed revision is <= it.
const GLOBAL_FLOOR: &[u8] = b"floor";

fn user_floor_key(user: &UserId) -> Vec<u8> {
    let mut key = b"floor/".to_vec();
    key.extend_from_slice(&keys::user_prefix(user));
    key
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> Result<u64, Error> {
    match tree.get(key)? {
        Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| super::codec::corrupt("floor")),
        None => Ok(0),
    }
}

fn floor(trees: &Trees, scope: &Scope) -> Result<u64, Error> {
    match scope {
        Scope::User(user) => read_u64(&trees.meta, &user_floor_key(user)),
        Scope::AllUsers => read_u64(&trees.meta, GLOBAL_FLOOR),
    }
}

fn read_batch(trees: &Trees, revision: u64) -> Result<Option<EventBatch>, Error> {
    match trees.events.get(keys::event_key(revision))? {
        Some(bytes) => Ok(Some(decode::<BatchRecord>(&bytes, "event batch")?.into_batch(revision)?)),
        None => Ok(None),
    }
}

impl SledStore {
    /// The revision before which a watcher of `scope` cannot resume: events
    /// at or below it may have been trimmed.
    pub async fn floor(&self, scope: Scope) -> Result<u64, Error> {
        self.blocking(move |inner| floor(&*inner.trees()?, &scope)).await
    }

    /// Up to `limit` durable batches of `scope` with revision in
    /// `from..=through`, in order. Fails with REVISION_COMPACTED if trimming
    /// has reached `from`, so a reader never silently skips an event.
    pub async fn read_log(
        &self,
        scope: Scope,
        from: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<EventBatch>, Error> {
        self.blocking(move |inner| {
            let trees = inner.trees()?;
            let mut batches = Vec::new();
            if from > through {
                return Ok(batches);
            }
            match &scope {
                Scope::AllUsers => {
                    for entry in trees.events.range(keys::event_key(from)..=keys::event_key(through)) {
                        let (key, value) = entry?;
                        let revision = keys::decode_u64(&key).ok_or_else(|| super::codec::corrupt("event key"))?;
                        batches.push(decode::<BatchRecord>(&value, "event batch")?.into_batch(revision)?);
                        if batches.len() == limit {
                            break;
                        }
                    }
                }
                Scope::User(user) => {
                    let start = keys::user_event_key(user, from);
                    let end = keys::user_event_key(user, through);
                    let prefix_len = keys::user_prefix(user).len();
                    for entry in trees.user_events.range(start..=end) {
                        let (key, _) = entry?;
                        let revision = keys::decode_u64(&key[prefix_len..])
                            .ok_or_else(|| super::codec::corrupt("user event key"))?;
                        // Missing: trimmed since the index entry was read;
                        // the floor check below reports it.
                        if let Some(batch) = read_batch(&trees, revision)? {
                            batches.push(batch);
                        }
                        if batches.len() == limit {
                            break;
                        }
                    }
                }
            }
            let floor = floor(&trees, &scope)?;
            if floor >= from {
                return Err(Error::RevisionCompacted {
                    start: from,
                    oldest: floor + 1,
                    current: inner.durable.borrow().revision,
                });
            }
            Ok(batches)
        })
        .await
    }

    /// The user's groups and members at one revision. Read on the writer
    /// thread between batches, so no mutation is half-visible, then made
    /// durable before it is returned, so a snapshot never shows what a crash
    /// could take back.
    pub async fn snapshot(&self, user: &UserId) -> Result<Snapshot, Error> {
        let user = user.clone();
        let snapshot = self
            .exclusive(move |inner, last| {
                let trees = inner.trees()?;
                let state = SledRead(&trees);
                let record = load_user(&state, &user)?;
                super::query::snapshot(&state, &user, &record, last)
            })
            .await?;
        self.wait_durable(snapshot.revision).await?;
        Ok(snapshot)
    }

    /// One trimming pass. Runs beside the writer thread, not through it: it
    /// only deletes old events, which no mutation writes.
    pub async fn compact(&self, retain_for_ms: i64, retain_events_per_user: u64) -> Result<Compaction, Error> {
        self.blocking(move |inner| {
            let trees = inner.trees()?;
            let cutoff = now_ms().saturating_sub(retain_for_ms);
            let durable = inner.durable.borrow().revision;
            // Per user: the revision of its Nth newest event (None: fewer).
            let mut keep_from: HashMap<Vec<u8>, Option<u64>> = HashMap::new();
            let mut doomed: Vec<(u64, UserId)> = Vec::new();
            for entry in trees.events.iter() {
                let (key, value) = entry?;
                let revision = keys::decode_u64(&key).ok_or_else(|| super::codec::corrupt("event key"))?;
                let record: BatchRecord = decode(&value, "event batch")?;
                if record.time_ms >= cutoff || revision > durable {
                    // The log is in commit order, so later events are younger.
                    break;
                }
                let user =
                    UserId::parse(&record.user).map_err(|e| super::codec::corrupt(&format!("event user {e}")))?;
                let prefix = keys::user_prefix(&user);
                let threshold = match keep_from.get(&prefix) {
                    Some(t) => *t,
                    None => {
                        let nth = if retain_events_per_user == 0 {
                            Some(u64::MAX)
                        } else {
                            trees
                                .user_events
                                .scan_prefix(&prefix)
                                .rev()
                                .nth(retain_events_per_user as usize - 1)
                                .transpose()?
                                .and_then(|(k, _)| keys::decode_u64(&k[prefix.len()..]))
                        };
                        keep_from.insert(prefix.clone(), nth);
                        nth
                    }
                };
                if threshold.is_some_and(|keep| revision < keep) {
                    doomed.push((revision, user));
                }
            }
            if doomed.is_empty() {
                return Ok(Compaction::default());
            }
            // Floors first (see the module docs), then the deletions.
            let mut floors = sled::Batch::default();
            let mut user_floors: HashMap<Vec<u8>, u64> = HashMap::new();
            for (revision, user) in &doomed {
                user_floors.insert(user_floor_key(user), *revision);
            }
            for (key, revision) in &user_floors {
                floors.insert(key.as_slice(), &revision.to_be_bytes());
            }
            let global = doomed.iter().map(|(r, _)| *r).max().unwrap_or(0);
            floors.insert(GLOBAL_FLOOR, &global.to_be_bytes());
            let mut events = sled::Batch::default();
            let mut user_events = sled::Batch::default();
            for (revision, user) in &doomed {
                events.remove(&keys::event_key(*revision));
                user_events.remove(keys::user_event_key(user, *revision));
            }
            let written = trees
                .meta
                .apply_batch(floors)
                .and_then(|()| trees.events.apply_batch(events))
                .and_then(|()| trees.user_events.apply_batch(user_events))
                .and_then(|()| trees.db.flush().map(|_| ()));
            if let Err(e) = written {
                // The same failure a mutation's flush would hit: recover.
                let error = Error::from(e);
                inner.storage_failed("compacting the event log", &error);
                return Err(error);
            }
            Ok(Compaction { trimmed: doomed.len() as u64 })
        })
        .await
    }
}
