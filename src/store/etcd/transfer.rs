//! Backup and restore on the etcd backend, in the format of
//! [`super::super::backup`]: a deployment's keys are mapped to the sled
//! layout, so a backup of either backend restores into either.
//!
//! * **Export** reads every key under the prefix at one revision: the state
//!   tables as they are (the user's record gets its revision, which etcd
//!   keeps as the key's `mod_revision`), the event log keyed by revision as
//!   sled keeps it, the trimming floors, and `meta/revision` = the revision
//!   of the read. Restored into sled, that is the same deployment, revisions
//!   and event log included.
//! * **Import** writes the state tables into an empty prefix. etcd numbers
//!   revisions itself, so the event log of the backup cannot keep its
//!   revisions and is not imported: the floors are set to the revision
//!   before the users' records are written, so a watch from any earlier
//!   revision is REVISION_COMPACTED (clients list again, as after any
//!   trimming), and a watch from a revision listed after the restore works.

use std::collections::BTreeMap;

use prost::Message;

use super::{batch_of, prefix_end, put, range_of, Keys, SCAN_PAGE};
use crate::config::StorageSettings;
use crate::error::Error;
use crate::pb::etcd::{KeyValue, RangeRequest, TxnRequest};
use crate::store::backup::{Contents, Entry};
use crate::store::encoding::{decode, BatchRecord, UserRecord};
use crate::store::etcd::client::Client;
use crate::store::keys;
use crate::store::state::Table;

/// Puts per restore transaction: below etcd's default `--max-txn-ops`
/// (128), so a restore works on any cluster.
const PUTS_PER_TXN: usize = 100;

/// The sled tree of each table.
fn tree_name(table: Table) -> &'static [u8] {
    match table {
        Table::Meta => b"meta",
        Table::Users => b"users",
        Table::Convs => b"convs",
        Table::Members => b"members",
        Table::Order => b"order",
        Table::Events => b"events",
        Table::UserEvents => b"user_events",
    }
}

/// Every key under the prefix, read at one revision; returns them with it.
async fn read_all(client: &Client, keys: &Keys) -> Result<(Vec<KeyValue>, u64), Error> {
    let end = prefix_end(&keys.prefix);
    let mut start = keys.prefix.clone();
    let mut revision = 0;
    let mut all = Vec::new();
    loop {
        let request = RangeRequest {
            key: start.clone(),
            range_end: end.clone(),
            limit: SCAN_PAGE * 16,
            revision: revision as i64,
            ..Default::default()
        };
        let response = client.range(request).await?;
        if revision == 0 {
            revision = response.header.as_ref().map_or(0, |h| h.revision as u64);
        }
        if let Some(last) = response.kvs.last() {
            start = [last.key.clone(), vec![0]].concat();
        }
        let more = response.more;
        all.extend(response.kvs);
        if !more {
            return Ok((all, revision));
        }
    }
}

/// The deployment under `--etcd-prefix` in the backup format.
pub(in crate::store) async fn export(settings: &StorageSettings, secret: Option<Vec<u8>>) -> Result<Contents, Error> {
    let client = Client::new(settings)?;
    let keys = Keys { prefix: settings.etcd_prefix.as_bytes().to_vec() };
    let (all, revision) = read_all(&client, &keys).await?;
    let mut trees: BTreeMap<&'static [u8], Vec<Entry>> = BTreeMap::new();
    let log = keys.log();
    let floors = keys.with(&[b"m/floor"]);
    for kv in all {
        if let Some(table) = Table::ALL.into_iter().find(|t| kv.key.starts_with(&keys.table_prefix(*t))) {
            let key = kv.key[keys.table_prefix(table).len()..].to_vec();
            let value = if table == Table::Users {
                let mut record: UserRecord = decode(&kv.value, "user record")?;
                record.revision = kv.mod_revision as u64;
                record.encode_to_vec()
            } else {
                kv.value
            };
            trees.entry(tree_name(table)).or_default().push((key, value));
        } else if kv.key.starts_with(&log) {
            let batch = batch_of(&kv)?;
            let stored = BatchRecord::from_batch(&batch).encode_to_vec();
            trees.entry(tree_name(Table::Events)).or_default().push((keys::event_key(batch.revision).to_vec(), stored));
            trees
                .entry(tree_name(Table::UserEvents))
                .or_default()
                .push((keys::user_event_key(&batch.user, batch.revision), Vec::new()));
        } else if let Some(rest) = kv.key.strip_prefix(floors.as_slice()) {
            // `m/floor` → meta `floor`; `m/floor/<user>` → meta `floor/<user>`.
            trees.entry(tree_name(Table::Meta)).or_default().push(([b"floor", rest].concat(), kv.value));
        }
    }
    trees
        .entry(tree_name(Table::Meta))
        .or_default()
        .push((keys::META_REVISION.to_vec(), revision.to_be_bytes().to_vec()));
    let mut contents = Contents { trees: Vec::new(), secret };
    for (name, mut entries) in trees {
        entries.sort();
        contents.trees.push((name.to_vec(), entries));
    }
    Ok(contents)
}

async fn put_all(client: &Client, puts: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64, Error> {
    let mut revision = 0;
    for chunk in puts.chunks(PUTS_PER_TXN) {
        let success = chunk.iter().map(|(k, v)| put(k.clone(), v.clone())).collect();
        let response = client.txn_idempotent(TxnRequest { success, ..Default::default() }).await?;
        revision = response.header.map_or(revision, |h| h.revision as u64);
    }
    Ok(revision)
}

/// Writes a backup's state into an empty `--etcd-prefix` (see the module
/// docs for why the event log starts afresh). Returns the entries written.
pub(in crate::store) async fn import(settings: &StorageSettings, contents: &Contents) -> Result<usize, Error> {
    let client = Client::new(settings)?;
    let keys = Keys { prefix: settings.etcd_prefix.as_bytes().to_vec() };
    let existing = client.range(RangeRequest { count_only: true, ..range_of(&keys.prefix) }).await?;
    if existing.count > 0 {
        return Err(Error::InvalidSetting {
            setting: crate::config::Setting::EtcdPrefix,
            message: format!(
                "the prefix {:?} already holds {} keys; restore into an empty prefix",
                settings.etcd_prefix, existing.count
            ),
        });
    }
    let tree = |table: Table| contents.trees.iter().find(|(name, _)| name == tree_name(table)).map(|(_, e)| e);
    let mut state = Vec::new();
    for table in [Table::Convs, Table::Members, Table::Order] {
        for (key, value) in tree(table).into_iter().flatten() {
            state.push((keys.table(table, key), value.clone()));
        }
    }
    let mut written = state.len();
    let before_users = put_all(&client, state).await?;
    // The floors, then the users' records (whose revisions are above them).
    let users = tree(Table::Users).cloned().unwrap_or_default();
    let floor = before_users.to_be_bytes().to_vec();
    let mut floors = vec![(keys.with(&[b"m/floor"]), floor.clone())];
    for (user_key, _) in &users {
        floors.push((keys.with(&[b"m/floor/", user_key]), floor.clone()));
    }
    put_all(&client, floors).await?;
    let mut records = Vec::new();
    for (user_key, value) in users {
        let mut record: UserRecord = decode(&value, "user record")?;
        // etcd keeps the revision as the key's mod_revision.
        record.revision = 0;
        records.push((keys.table(Table::Users, &user_key), record.encode_to_vec()));
    }
    written += records.len();
    put_all(&client, records).await?;
    Ok(written)
}
