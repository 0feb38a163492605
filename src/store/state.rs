//! The storage boundary as the shared code sees it: a key-value state in a
//! few named tables ([`Table`]), read through [`StateRead`] and changed through a
//! [`WriteSet`]. Planning a mutation ([`super::plan`], [`super::rules`]) and
//! answering reads ([`super::query`]) are written once against it; each
//! backend supplies the reads (its one sled tree, or an etcd snapshot at
//! one revision) and applies a write set atomically in its own way.
//!
//! What a backend adds on top is only what differs between them: where the
//! revision comes from, how the write set and its event batch are committed
//! together, and how committed batches reach the hub.

use std::collections::BTreeMap;

use crate::error::Error;

/// The tables of the key layout (see [`super::keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Meta = 0,
    Users = 1,
    Convs = 2,
    Members = 3,
    Order = 4,
    Events = 5,
    UserEvents = 6,
}
pub const TABLE_COUNT: usize = 7;

impl Table {
    /// Every table, in index order.
    pub const ALL: [Table; TABLE_COUNT] =
        [Table::Meta, Table::Users, Table::Convs, Table::Members, Table::Order, Table::Events, Table::UserEvents];
}

/// Writes of one mutation (or of a commit group of them), per table; a later write
/// to a key replaces an earlier one. `None` removes the key.
#[derive(Default, Debug)]
pub struct WriteSet {
    pub ops: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; TABLE_COUNT],
}

impl WriteSet {
    pub fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.ops[table as usize].insert(key, Some(value));
    }

    pub fn remove(&mut self, table: Table, key: Vec<u8>) {
        self.ops[table as usize].insert(key, None);
    }

    /// Adds `later`'s writes on top of these.
    pub fn merge(&mut self, later: WriteSet) {
        for (mine, theirs) in self.ops.iter_mut().zip(later.ops) {
            mine.extend(theirs);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.iter().all(|ops| ops.is_empty())
    }

    /// Every write, table by table, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Table, &Vec<u8>, &Option<Vec<u8>>)> {
        Table::ALL.into_iter().flat_map(move |t| self.ops[t as usize].iter().map(move |(k, v)| (t, k, v)))
    }

    /// Number of keys written or removed.
    pub fn len(&self) -> usize {
        self.ops.iter().map(|ops| ops.len()).sum()
    }
}

/// Called for each entry of a scan with its key and value; returns whether
/// to go on.
pub type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool, Error> + 'v;

/// Reads of committed state. etcd: every read of one `StateRead` sees the
/// same revision. sled: every read sees whole commit groups (sled applies
/// one `apply_batch` atomically to readers), but two reads may fall on
/// either side of a commit; what needs one state reads on the writer thread
/// (plans, snapshots), and a listing re-checks its index (`query::walk`).
/// Blocking: callers run on a blocking thread, never on an async worker.
pub trait StateRead {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;

    /// Hands `key` and its value to `read`, if there is one, without copying
    /// the value where the backend can (a listing decodes each record where
    /// it lies). Returns what `read` returned, or false when absent.
    fn with_value(&self, table: Table, key: &[u8], read: &mut Visit<'_>) -> Result<bool, Error> {
        match self.get(table, key)? {
            Some(value) => read(key, &value),
            None => Ok(false),
        }
    }

    /// Entries whose key starts with `prefix` and is greater than `after`
    /// (when given), in key order, until `visit` returns false.
    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), Error>;

    /// Keys under `prefix`, in order.
    fn keys_with_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut keys = Vec::new();
        self.scan(table, prefix, None, &mut |key, _| {
            keys.push(key.to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }
}
