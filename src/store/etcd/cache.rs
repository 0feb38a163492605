//! Users' records as this replica last read them, for reads that pass
//! `min_revision`: such a read may be answered from here, with no round trip
//! to etcd, when the change feed has reached `min_revision`.
//!
//! Why an entry is current: every change of a user is one batch in the event
//! log, and the change feed removes the user's entry when it sees the batch,
//! before it reports its revision as reached. So while an entry is here, the
//! user has not changed between the revision it was read at and the feed's
//! revision; a read served from it sees the user as of the feed's revision,
//! which is at least `min_revision`.
//!
//! The one race: a record read at revision R may arrive after the feed has
//! already removed the user for a change at a revision above R (the read was
//! slow). Reads in progress are therefore registered, and the feed notes the
//! highest change it saw for each; a record older than that is not kept.
//!
//! When the feed loses batches (etcd and the stored log were both trimmed
//! past it) everything is dropped. While the replica is cut off from etcd
//! nothing is answered from here (the feed cannot vouch for anything).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::UserId;
use crate::store::encoding::UserRecord;

pub struct RecordCache {
    /// Most users kept; 0 turns the cache off.
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    records: HashMap<UserId, Arc<UserRecord>>,
    /// Reads of a user's record on their way: how many, and the highest
    /// revision of a change of that user the feed saw meanwhile.
    reading: HashMap<UserId, Reading>,
}

struct Reading {
    count: usize,
    changed: u64,
}

/// A registered read of one user's record; hand its answer to
/// [`RecordCache::finish`].
pub struct Ticket {
    user: UserId,
}

impl RecordCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, state: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a cache: whatever a panicking holder left is still
        // consistent enough (at worst an entry too few).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record of `user` if it is kept.
    pub fn get(&self, user: &UserId) -> Option<Arc<UserRecord>> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().records.get(user).cloned()
    }

    /// Registers a read of `user`'s record that is about to start.
    pub fn start(&self, user: &UserId) -> Option<Ticket> {
        if self.capacity == 0 {
            return None;
        }
        let mut state = self.lock();
        state.reading.entry(user.clone()).or_insert(Reading { count: 0, changed: 0 }).count += 1;
        Some(Ticket { user: user.clone() })
    }

    /// The read of `ticket` ended: keep `record`, read at cluster revision
    /// `revision`, unless the user changed after it meanwhile (or the read
    /// failed: `None`).
    pub fn finish(&self, ticket: Ticket, answer: Option<(&UserRecord, u64)>) {
        let mut state = self.lock();
        let Some(reading) = state.reading.get_mut(&ticket.user) else { return };
        reading.count -= 1;
        let changed = reading.changed;
        if reading.count == 0 {
            state.reading.remove(&ticket.user);
        }
        let Some((record, revision)) = answer else { return };
        if changed > revision {
            return;
        }
        if state.records.len() >= self.capacity && !state.records.contains_key(&ticket.user) {
            // Any entry will do: an evicted user costs one etcd read later.
            if let Some(victim) = state.records.keys().next().cloned() {
                state.records.remove(&victim);
            }
        }
        state.records.insert(ticket.user, Arc::new(record.clone()));
    }

    /// The feed saw a change of `user` at `revision`.
    pub fn changed(&self, user: &UserId, revision: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self.lock();
        state.records.remove(user);
        if let Some(reading) = state.reading.get_mut(user) {
            reading.changed = reading.changed.max(revision);
        }
    }

    /// The feed lost batches: nothing here can be vouched for.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.records.clear();
        for reading in state.reading.values_mut() {
            reading.changed = u64::MAX;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn record(revision: u64) -> UserRecord {
        UserRecord { revision, ..Default::default() }
    }

    #[test]
    fn a_change_removes_the_user_and_a_read_older_than_a_change_is_not_kept() {
        let cache = RecordCache::new(10);
        let ann = user("ann");
        let ticket = cache.start(&ann).unwrap();
        cache.finish(ticket, Some((&record(5), 7)));
        assert_eq!(cache.get(&ann).unwrap().revision, 5);
        cache.changed(&ann, 8);
        assert!(cache.get(&ann).is_none());

        // A read at 9 whose answer arrives after the feed saw a change at 10.
        let slow = cache.start(&ann).unwrap();
        cache.changed(&ann, 10);
        cache.finish(slow, Some((&record(8), 9)));
        assert!(cache.get(&ann).is_none(), "a record older than a change seen meanwhile was kept");

        // A change the read already includes does not stop it.
        let read = cache.start(&ann).unwrap();
        cache.changed(&ann, 10);
        cache.finish(read, Some((&record(10), 11)));
        assert_eq!(cache.get(&ann).unwrap().revision, 10);
    }

    #[test]
    fn clear_drops_records_and_reads_in_progress_and_capacity_bounds_the_size() {
        let cache = RecordCache::new(2);
        let (ann, ben, cai) = (user("ann"), user("ben"), user("cai"));
        for u in [&ann, &ben, &cai] {
            let t = cache.start(u).unwrap();
            cache.finish(t, Some((&record(1), 1)));
        }
        assert_eq!(cache.len(), 2);
        let reading = cache.start(&ann).unwrap();
        cache.clear();
        assert_eq!(cache.len(), 0);
        cache.finish(reading, Some((&record(1), 100)));
        assert!(cache.get(&ann).is_none(), "a read in progress when the feed lost batches was kept");

        let off = RecordCache::new(0);
        assert!(off.start(&ann).is_none() && off.get(&ann).is_none());
    }
}
