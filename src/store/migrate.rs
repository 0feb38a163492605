//! The sled layouts and the conversions between them.
//!
//! Up to convgroups 0.x of 2026-11-22 (commit 80a93b1) sled kept one tree
//! per table (`meta`, `users`, `convs`, `members`, `order`, `events`,
//! `user_events`), and every mutation wrote seven keys across seven trees in
//! one transaction. Now one tree (`store`) holds every table behind a
//! one-byte tag, and the last revision and the per-user event index are
//! derived (see [`super::keys`]), so a mutation writes only the keys its
//! meaning needs, in one write.
//!
//! * **Upgrade on start**: a database of the per-table layout is converted
//!   when it is opened. The per-table trees stay until the converted tree,
//!   with its format marker, is durable, and are dropped only then; a crash
//!   at any point leaves either the old trees (converted again from the
//!   start) or a marked tree (the leftovers are dropped).
//! * **Backups** keep the per-table form (one tree per table, as before), so
//!   backups made by earlier versions, by this one and by the etcd backend
//!   restore into either backend.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::backup::Entry;

/// A tree of the per-table form: its name and entries.
type Tree = (Vec<u8>, Vec<Entry>);
use super::embedded::Trees;
use super::encoding::{decode, BatchRecord, UserRecord};
use super::keys;
use super::state::Table;
use crate::domain::UserId;
use crate::error::Error;

/// The tables in the per-table form (backups, the old layout), with their
/// tree names.
pub(super) const TABLE_TREES: [(Table, &[u8]); 7] = [
    (Table::Meta, b"meta"),
    (Table::Users, b"users"),
    (Table::Convs, b"convs"),
    (Table::Members, b"members"),
    (Table::Order, b"order"),
    (Table::Events, b"events"),
    (Table::UserEvents, b"user_events"),
];

/// sled's own default tree: in every database, never used by convgroups.
pub(super) const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

/// Entries per sled write while converting: bounds the memory of one write.
const CONVERT_CHUNK: usize = 10_000;

pub(super) fn table_of(tree: &[u8]) -> Result<Table, Error> {
    TABLE_TREES
        .iter()
        .find(|(_, name)| *name == tree)
        .map(|(table, _)| *table)
        .ok_or_else(|| super::encoding::corrupt(&format!("unknown tree {:?}", String::from_utf8_lossy(tree))))
}

/// Whether `db` holds a tree of the per-table layout.
pub(super) fn per_table_trees(db: &sled::Db) -> Vec<&'static [u8]> {
    let names = db.tree_names();
    TABLE_TREES.iter().map(|(_, name)| *name).filter(|name| names.iter().any(|n| n == name)).collect()
}

/// The layout version recorded in the one tree (None: not marked yet).
fn format_of(kv: &sled::Tree) -> Result<Option<u64>, Error> {
    match kv.get(keys::sled_key(Table::Meta, keys::META_FORMAT))? {
        Some(bytes) => Ok(Some(keys::decode_u64(&bytes).ok_or_else(|| super::encoding::corrupt("format"))?)),
        None => Ok(None),
    }
}

/// Brings an opened database to the current layout: marks a new one,
/// converts one of the per-table layout, drops what a converted one left.
pub(super) fn upgrade(trees: &Trees, dir: &Path) -> Result<(), Error> {
    let old = per_table_trees(&trees.db);
    match format_of(&trees.kv)? {
        Some(keys::FORMAT) => {}
        Some(other) => {
            return Err(Error::InvalidSetting {
                setting: crate::config::Setting::DataDir,
                message: format!(
                    "the database in {} has storage layout {other}, written by a newer convgroups; this one \
                     reads layout {} (run the newer version, or restore a backup made with it)",
                    dir.display(),
                    keys::FORMAT
                ),
            })
        }
        None => {
            if !old.is_empty() {
                tracing::info!(dir = %dir.display(), "converting the database to the one-tree storage layout");
                // Whatever an interrupted conversion left goes first.
                trees.kv.clear()?;
                let mut import = Import::new(&trees.kv);
                for name in &old {
                    let table = table_of(name)?;
                    for entry in trees.db.open_tree(name)?.iter() {
                        let (key, value) = entry?;
                        import.entry(table, &key, &value)?;
                    }
                }
                import.finish()?;
            }
            trees.kv.insert(keys::sled_key(Table::Meta, keys::META_FORMAT), &keys::FORMAT.to_be_bytes())?;
            trees.make_durable()?;
        }
    }
    if !old.is_empty() {
        for name in &old {
            trees.db.drop_tree(name)?;
        }
        trees.make_durable()?;
        tracing::info!(dir = %dir.display(), "database converted to the one-tree storage layout");
    }
    Ok(())
}

/// Writes entries of the per-table form into the one tree. Event batches
/// must come in revision order (as every tree and backup holds them): each
/// gets the `previous` link of its user from the batches before it.
pub(super) struct Import<'a> {
    kv: &'a sled::Tree,
    pending_writes: sled::Batch,
    pending: usize,
    /// Per user (by name): the revision and `seq` of its newest batch so
    /// far.
    last_of_user: HashMap<String, (u64, u64)>,
    last_event: u64,
}

impl<'a> Import<'a> {
    pub(super) fn new(kv: &'a sled::Tree) -> Self {
        Self { kv, pending_writes: sled::Batch::default(), pending: 0, last_of_user: HashMap::new(), last_event: 0 }
    }

    pub(super) fn entry(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Error> {
        match table {
            // Derived: walked along the batches' `previous` links instead.
            Table::UserEvents => return Ok(()),
            Table::Events => {
                let revision = keys::decode_u64(key).ok_or_else(|| super::encoding::corrupt("event key"))?;
                if revision <= self.last_event {
                    return Err(super::encoding::corrupt(&format!("event {revision} out of order")));
                }
                self.last_event = revision;
                let mut record: BatchRecord = decode(value, "event batch")?;
                let (previous, seq) = self.last_of_user.get(&record.user).copied().unwrap_or((0, 0));
                record.previous = previous;
                record.seq = seq + 1;
                self.last_of_user.insert(record.user.clone(), (revision, record.seq));
                self.pending_writes.insert(keys::sled_key(table, key), record.encode_to_vec());
            }
            _ => self.pending_writes.insert(keys::sled_key(table, key), value),
        }
        self.pending += 1;
        if self.pending == CONVERT_CHUNK {
            self.kv.apply_batch(std::mem::take(&mut self.pending_writes))?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Writes what is left, then gives each user record the `seq` of its
    /// user's newest batch.
    pub(super) fn finish(self) -> Result<(), Error> {
        self.kv.apply_batch(self.pending_writes)?;
        let mut records = sled::Batch::default();
        for (user, (_, seq)) in &self.last_of_user {
            let user = UserId::parse(user).map_err(|e| super::encoding::corrupt(&format!("event user {e}")))?;
            let key = keys::sled_key(Table::Users, &keys::user_prefix(&user));
            if let Some(bytes) = self.kv.get(&key)? {
                let mut record: UserRecord = decode(&bytes, "user record")?;
                record.events = *seq;
                records.insert(key, record.encode_to_vec());
            }
        }
        Ok(self.kv.apply_batch(records)?)
    }
}

/// The per-table form of a database, for a backup: trees in table order,
/// entries in key order. A database not yet converted is read as it is;
/// `user_events` is rebuilt from the batches.
pub(super) fn export(db: &sled::Db) -> Result<Vec<Tree>, Error> {
    let converted =
        db.tree_names().iter().any(|n| n == keys::SLED_TREE) && format_of(&db.open_tree(keys::SLED_TREE)?)?.is_some();
    if !converted {
        let mut trees = Vec::new();
        for name in db.tree_names() {
            if name == SLED_DEFAULT_TREE || name == keys::SLED_TREE {
                continue;
            }
            let mut entries = Vec::new();
            for entry in db.open_tree(&name)?.iter() {
                let (key, value) = entry?;
                entries.push((key.to_vec(), value.to_vec()));
            }
            trees.push((name.to_vec(), entries));
        }
        return Ok(trees);
    }
    let kv = db.open_tree(keys::SLED_TREE)?;
    let mut tables: Vec<Vec<Entry>> = vec![Vec::new(); TABLE_TREES.len()];
    let mut user_events = Vec::new();
    let mut newest = 0;
    for entry in kv.iter() {
        let (key, value) = entry?;
        let (&tag, rest) = key.split_first().ok_or_else(|| super::encoding::corrupt("empty key"))?;
        let index = TABLE_TREES
            .iter()
            .position(|(table, _)| keys::sled_tag(*table) == tag)
            .ok_or_else(|| super::encoding::corrupt(&format!("key tag {tag}")))?;
        match TABLE_TREES[index].0 {
            Table::Meta if rest == keys::META_FORMAT => continue,
            Table::Meta if rest == keys::META_REVISION => {
                newest = newest.max(keys::decode_u64(&value).ok_or_else(|| super::encoding::corrupt("revision"))?);
                continue;
            }
            Table::Meta if rest == super::log::GLOBAL_FLOOR => {
                newest = newest.max(keys::decode_u64(&value).ok_or_else(|| super::encoding::corrupt("floor"))?);
            }
            Table::Events => {
                let revision = keys::decode_u64(rest).ok_or_else(|| super::encoding::corrupt("event key"))?;
                let mut record: BatchRecord = decode(&value, "event batch")?;
                let user = UserId::parse(&record.user)
                    .map_err(|e| super::encoding::corrupt(&format!("event {revision}: user {e}")))?;
                user_events.push((keys::user_event_key(&user, revision), Vec::new()));
                newest = newest.max(revision);
                // The links are this layout's; a backup carries none.
                record.previous = 0;
                record.seq = 0;
                tables[index].push((rest.to_vec(), record.encode_to_vec()));
                continue;
            }
            _ => {}
        }
        tables[index].push((rest.to_vec(), value.to_vec()));
    }
    user_events.sort();
    let user_events_index = TABLE_TREES.iter().position(|(t, _)| *t == Table::UserEvents).expect("listed");
    tables[user_events_index] = user_events;
    // The revision as the per-table layout kept it.
    let meta = &mut tables[0];
    meta.push((keys::META_REVISION.to_vec(), newest.to_be_bytes().to_vec()));
    meta.sort();
    Ok(TABLE_TREES.iter().zip(tables).map(|((_, name), entries)| (name.to_vec(), entries)).collect())
}

#[cfg(test)]
mod tests {
    //! What a mutation writes in the one-tree layout, on a real sled
    //! database in a temporary directory.

    use crate::domain::GroupRef;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::config::Limits;
    use crate::domain::{ItemResults, UserId};
    use crate::hub::Hub;
    use crate::store::{Scope, Store};

    fn contents(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let Store::Sled(sled) = store else { unreachable!("opened as sled") };
        let trees = sled.inner.trees().expect("open");
        trees.kv.iter().map(|e| e.expect("entry")).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    fn items(ids: &[&str]) -> (Vec<crate::domain::Item<()>>, ItemResults) {
        ItemResults::classify::<()>(ids.iter().map(|id| (id.to_string(), Ok(()))).collect())
    }

    /// Keys written (added or changed) between two contents, by tag.
    fn written(before: &BTreeMap<Vec<u8>, Vec<u8>>, after: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<char> {
        after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| char::from(k[0])).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn adding_a_new_conversation_to_a_group_writes_five_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(
            dir.path(),
            Limits::default(),
            Hub::new(&crate::config::WatchSettings::default()),
            Duration::from_secs(1),
        )
        .expect("open the store");
        let alice = UserId::parse("alice").expect("user");
        let (list, result) = items(&["C2Cbob"]);
        store
            .create_group(&alice, "g".into(), list, crate::domain::SortMode::default(), None, result, None)
            .await
            .expect("create");
        let before = contents(&store);

        let (list, result) = items(&["C2Ccarol"]);
        let outcome = store.add_to_group(&alice, GroupRef::Name("g".into()), list, result, None).await.expect("add");
        assert_eq!(outcome.revision, 2);
        let after = contents(&store);
        // The conversation, its event batch, its member and listing keys,
        // the user record; no revision key, no per-user index.
        assert_eq!(written(&before, &after), ['c', 'e', 'm', 'o', 'u']);
        assert_eq!(after.len() - before.len(), 4, "only the user record is rewritten");

        // The user's log is still found, from the links.
        let Store::Sled(sled) = &store else { unreachable!() };
        let log = sled.read_log(Scope::User(alice.clone()), 1, 2, 10).await.expect("log");
        assert_eq!(log.iter().map(|b| b.revision).collect::<Vec<_>>(), [1, 2]);
        let log = sled.read_log(Scope::User(alice), 2, 2, 10).await.expect("log");
        assert_eq!(log.iter().map(|b| b.revision).collect::<Vec<_>>(), [2]);
    }
}
