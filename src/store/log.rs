//! The embedded backend's event log as watchers read it: replay from a
//! revision, floors left by compaction, consistent snapshots; and the
//! background trimming itself.
//!
//! Trimming keeps an event while it is younger than `retain_for` or among the
//! newest `retain_events_per_user` events of its user. It records how far it
//! went (a per-user floor and a global floor) *before* deleting anything, so
//! a reader that finds an event missing always also finds a floor that
//! explains it, and fails with REVISION_COMPACTED rather than skipping it.

use std::collections::{HashMap, VecDeque};

use super::embedded::{load_user, SledRead, SledStore, Trees};
use super::encoding::{decode, BatchLink, BatchRecord};
use super::keys;
use super::state::Table;
use super::{Compaction, Scope, Snapshot};
use crate::domain::{now_ms, EventBatch, UserId};
use crate::error::Error;

/// Meta key of the global floor: every trimmed revision is <= it.
pub(super) const GLOBAL_FLOOR: &[u8] = b"floor";

fn user_floor_key(user: &UserId) -> Vec<u8> {
    let mut key = b"floor/".to_vec();
    key.extend_from_slice(&keys::user_prefix(user));
    key
}

fn read_u64(trees: &Trees, key: &[u8]) -> Result<u64, Error> {
    match trees.kv.get(keys::sled_key(Table::Meta, key))? {
        Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| super::encoding::corrupt("floor")),
        None => Ok(0),
    }
}

fn floor(trees: &Trees, scope: &Scope) -> Result<u64, Error> {
    match scope {
        Scope::User(user) => read_u64(trees, &user_floor_key(user)),
        Scope::AllUsers => read_u64(trees, GLOBAL_FLOOR),
    }
}

fn event_key(revision: u64) -> Vec<u8> {
    keys::sled_key(Table::Events, &keys::event_key(revision))
}

/// The batch a user's log goes back to from the batch at `revision`, whose
/// link is `previous` (None: the first). Checked to go back, so damaged
/// data cannot loop.
fn previous(revision: u64, previous: u64) -> Result<Option<u64>, Error> {
    match previous {
        0 => Ok(None),
        p if p < revision => Ok(Some(p)),
        _ => Err(super::encoding::corrupt(&format!("event {revision}: previous revision {previous}"))),
    }
}

/// The first `limit` of a user's batches with revision in `from..=through`,
/// oldest first: walked back from the user record's revision along each
/// batch's `previous` link, until `from` or a trimmed batch (the floor
/// check of the caller reports a trimmed one it needed). The walk reads the
/// user's batches from `from` to the newest but decodes only their links;
/// the oldest `limit` are kept as stored and decoded at the end.
fn user_log(trees: &Trees, user: &UserId, from: u64, through: u64, limit: usize) -> Result<Vec<EventBatch>, Error> {
    let mut kept: VecDeque<(u64, sled::IVec)> = VecDeque::new();
    let mut next = Some(load_user(&SledRead(trees), user)?.revision).filter(|r| *r > 0);
    while let Some(revision) = next.filter(|r| *r >= from) {
        let Some(bytes) = trees.kv.get(event_key(revision))? else { break };
        next = previous(revision, decode::<BatchLink>(&bytes, "event batch")?.previous)?;
        if revision <= through {
            kept.push_back((revision, bytes));
            if kept.len() > limit {
                kept.pop_front();
            }
        }
    }
    kept.into_iter()
        .rev()
        .map(|(revision, bytes)| decode::<BatchRecord>(&bytes, "event batch")?.into_batch(revision))
        .collect()
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
                    for entry in trees.kv.range(event_key(from)..=event_key(through)) {
                        let (key, value) = entry?;
                        let revision =
                            keys::decode_u64(&key[1..]).ok_or_else(|| super::encoding::corrupt("event key"))?;
                        batches.push(decode::<BatchRecord>(&value, "event batch")?.into_batch(revision)?);
                        if batches.len() == limit {
                            break;
                        }
                    }
                }
                Scope::User(user) => {
                    batches = user_log(&trees, user, from, through, limit)?;
                }
            }
            super::check_floor(floor(&trees, &scope)?, from, inner.durable.borrow().revision)?;
            Ok(batches)
        })
        .await
    }

    /// The user's groups and members at one revision. Read on the writer
    /// thread between commit groups, so no mutation is half-visible, then made
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
            // Per user: the `seq` of its newest event (its record's count).
            let mut newest_seq: HashMap<String, u64> = HashMap::new();
            let mut doomed: Vec<(u64, UserId)> = Vec::new();
            for entry in trees.kv.scan_prefix([keys::sled_tag(Table::Events)]) {
                let (key, value) = entry?;
                let revision = keys::decode_u64(&key[1..]).ok_or_else(|| super::encoding::corrupt("event key"))?;
                let record: BatchRecord = decode(&value, "event batch")?;
                if record.time_ms >= cutoff || revision > durable {
                    // The log is in commit order, so later events are younger.
                    break;
                }
                let user =
                    UserId::parse(&record.user).map_err(|e| super::encoding::corrupt(&format!("event user {e}")))?;
                let newest = match newest_seq.get(&record.user) {
                    Some(newest) => *newest,
                    None => {
                        let newest = load_user(&SledRead(&trees), &user)?.events;
                        newest_seq.insert(record.user.clone(), newest);
                        newest
                    }
                };
                // Kept while among the user's newest `retain_events_per_user`.
                if newest.saturating_sub(record.seq) >= retain_events_per_user {
                    doomed.push((revision, user));
                }
            }
            if doomed.is_empty() {
                return Ok(Compaction::default());
            }
            // Floors first (see the module docs), then the deletions: two
            // writes, in this order.
            let mut floors = sled::Batch::default();
            let mut user_floors: HashMap<Vec<u8>, u64> = HashMap::new();
            for (revision, user) in &doomed {
                user_floors.insert(user_floor_key(user), *revision);
            }
            for (key, revision) in &user_floors {
                floors.insert(keys::sled_key(Table::Meta, key), &revision.to_be_bytes());
            }
            let global = doomed.iter().map(|(r, _)| *r).max().unwrap_or(0);
            floors.insert(keys::sled_key(Table::Meta, GLOBAL_FLOOR), &global.to_be_bytes());
            let mut events = sled::Batch::default();
            for (revision, _) in &doomed {
                events.remove(event_key(*revision));
            }
            let written = trees
                .kv
                .apply_batch(floors)
                .and_then(|()| trees.kv.apply_batch(events))
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
