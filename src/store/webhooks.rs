//! Durable records of the webhook senders (`crate::webhook`): endpoint
//! configurations and delivery cursors, as opaque values under string keys,
//! on whichever backend runs.
//!
//! * sled: their own tree, `webhooks`, flushed (and the log fdatasynced)
//!   before a write returns, like every acknowledged mutation.
//! * etcd: keys under `<prefix>hooks/`, outside the change feed (`w/`), so
//!   a cursor write wakes no watcher. A write is acknowledged once a
//!   majority has it.
//!
//! They are not part of the revision log: a cursor is where delivery is in
//! that log, not a change of anyone's groups.
//!
//! A record that more than one process may change (an endpoint's
//! configuration, edited through any replica) is changed by read, modify
//! and [`webhook_write_if`](Store::webhook_write_if): the write commits
//! only while the record is still as it was read (etcd: its mod_revision;
//! sled: its bytes, in a transaction), so two edits cannot overwrite each
//! other unseen.

use std::sync::Arc;

use super::etcd::client::Client;
use super::Store;
use crate::error::Error;
use crate::pb::etcd::{
    compare, request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

const SLED_TREE: &str = "webhooks";
const ETCD_PART: &[u8] = b"hooks/";

fn etcd_key(prefix: &[u8], key: &str) -> Vec<u8> {
    let mut full = prefix.to_vec();
    full.extend_from_slice(ETCD_PART);
    full.extend_from_slice(key.as_bytes());
    full
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn etcd_ops(prefix: &[u8], puts: Vec<(String, Vec<u8>)>, deletes: Vec<String>) -> Vec<RequestOp> {
    let mut ops: Vec<RequestOp> = puts
        .into_iter()
        .map(|(k, value)| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: etcd_key(prefix, &k),
                value,
                ..Default::default()
            })),
        })
        .collect();
    ops.extend(deletes.into_iter().map(|k| RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: etcd_key(prefix, &k),
            ..Default::default()
        })),
    }));
    ops
}

fn sled_error(e: sled::Error) -> Error {
    Error::Storage(format!("webhook records: {e}"))
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("webhook records: {e}")))?
}

/// A record as it was read, with what a conditional write compares.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    key: String,
    pub value: Option<Vec<u8>>,
    /// etcd: the key's mod_revision when read (0: absent). sled compares
    /// the bytes themselves.
    mod_revision: i64,
}

impl Store {
    /// The value under `key`, if any.
    pub async fn webhook_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Store::Sled(s) => {
                let (inner, key) = (s.inner.clone(), key.to_string());
                blocking(move || {
                    let trees = inner.trees()?;
                    let tree = trees.db.open_tree(SLED_TREE).map_err(sled_error)?;
                    Ok(tree.get(key.as_bytes()).map_err(sled_error)?.map(|v| v.to_vec()))
                })
                .await
            }
            Store::Etcd(s) => {
                let (client, prefix) = s.raw();
                let request = RangeRequest { key: etcd_key(&prefix, key), ..Default::default() };
                Ok(client.range(request).await?.kvs.into_iter().next().map(|kv| kv.value))
            }
        }
    }

    /// The record under `key` as it is now, for [`webhook_write_if`](Self::webhook_write_if).
    pub async fn webhook_read(&self, key: &str) -> Result<WebhookRecord, Error> {
        match self {
            Store::Sled(_) => {
                Ok(WebhookRecord { key: key.to_string(), value: self.webhook_get(key).await?, mod_revision: 0 })
            }
            Store::Etcd(s) => {
                let (client, prefix) = s.raw();
                let request = RangeRequest { key: etcd_key(&prefix, key), ..Default::default() };
                let kv = client.range(request).await?.kvs.into_iter().next();
                Ok(WebhookRecord {
                    key: key.to_string(),
                    mod_revision: kv.as_ref().map_or(0, |kv| kv.mod_revision),
                    value: kv.map(|kv| kv.value),
                })
            }
        }
    }

    /// Writes `puts` and removes `deletes` together, durably, only while
    /// the record `read` is still as it was read; false (nothing written)
    /// when it changed in between.
    ///
    /// On etcd the transaction may be sent again after a lost answer; the
    /// second one then fails its compare and the caller reads and applies
    /// its change again, which must therefore be harmless to repeat.
    pub async fn webhook_write_if(
        &self,
        read: &WebhookRecord,
        puts: Vec<(String, Vec<u8>)>,
        deletes: Vec<String>,
    ) -> Result<bool, Error> {
        match self {
            Store::Sled(s) => {
                let (inner, read) = (s.inner.clone(), read.clone());
                blocking(move || {
                    use sled::transaction::{ConflictableTransactionError, TransactionError};
                    let trees = inner.trees()?;
                    let tree = trees.db.open_tree(SLED_TREE).map_err(sled_error)?;
                    // A sled transaction: the compare and the writes are one
                    // step for every other writer of the tree.
                    let outcome = tree.transaction(|tx| {
                        let now = tx.get(read.key.as_bytes())?;
                        if now.as_deref() != read.value.as_deref() {
                            return Ok(false);
                        }
                        for (k, v) in &puts {
                            tx.insert(k.as_bytes(), v.as_slice())?;
                        }
                        for k in &deletes {
                            tx.remove(k.as_bytes())?;
                        }
                        Ok::<_, ConflictableTransactionError<()>>(true)
                    });
                    let written = match outcome {
                        Ok(written) => written,
                        Err(TransactionError::Storage(e)) => return Err(sled_error(e)),
                        Err(TransactionError::Abort(())) => false,
                    };
                    if written {
                        trees.make_durable()?;
                    }
                    Ok(written)
                })
                .await
            }
            Store::Etcd(s) => {
                let (client, prefix) = s.raw();
                let compare = vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Mod as i32,
                    key: etcd_key(&prefix, &read.key),
                    target_union: Some(compare::TargetUnion::ModRevision(read.mod_revision)),
                    ..Default::default()
                }];
                let success = etcd_ops(&prefix, puts, deletes);
                let response = client.txn_idempotent(TxnRequest { compare, success, failure: Vec::new() }).await?;
                Ok(response.succeeded)
            }
        }
    }

    /// [`webhook_scan`](Self::webhook_scan), with the revision it read at
    /// (etcd; 0 on sled) for [`webhook_write_unless_created`](Self::webhook_write_unless_created).
    pub async fn webhook_scan_at(&self, prefix: &str) -> Result<(Vec<(String, Vec<u8>)>, i64), Error> {
        match self {
            Store::Sled(_) => Ok((self.webhook_scan(prefix).await?, 0)),
            Store::Etcd(s) => {
                let text = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
                let (client, base) = s.raw();
                let key = etcd_key(&base, prefix);
                let strip = base.len() + ETCD_PART.len();
                let request = RangeRequest { range_end: prefix_end(&key), key, ..Default::default() };
                // Bounded by --webhook-max-endpoints records per prefix.
                let response = client.range(request).await?;
                let at = response.header.as_ref().map_or(0, |h| h.revision);
                Ok((response.kvs.into_iter().map(|kv| (text(&kv.key[strip..]), kv.value)).collect(), at))
            }
        }
    }

    /// Writes `puts` only while no record under `prefix` was created after
    /// revision `at` of [`webhook_scan_at`](Self::webhook_scan_at); false
    /// (nothing written) when one was: what the scan counted is out of
    /// date. On etcd one transaction compares every key under the prefix
    /// (create_revision <= `at`); on sled there is one process, whose
    /// callers take turns (`Admin::turn`), so nobody else can create one.
    pub async fn webhook_write_unless_created(
        &self,
        prefix: &str,
        at: i64,
        puts: Vec<(String, Vec<u8>)>,
    ) -> Result<bool, Error> {
        match self {
            Store::Sled(_) => self.webhook_write(puts, Vec::new()).await.map(|()| true),
            Store::Etcd(s) => {
                let (client, base) = s.raw();
                let key = etcd_key(&base, prefix);
                let compare = vec![Compare {
                    result: compare::CompareResult::Less as i32,
                    target: compare::CompareTarget::Create as i32,
                    range_end: prefix_end(&key),
                    key,
                    target_union: Some(compare::TargetUnion::CreateRevision(at + 1)),
                }];
                let success = etcd_ops(&base, puts, Vec::new());
                // Sent again after a lost answer, it fails its compare (its
                // own record is newer) and the caller counts again.
                let response = client.txn_idempotent(TxnRequest { compare, success, failure: Vec::new() }).await?;
                Ok(response.succeeded)
            }
        }
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub async fn webhook_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let text = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        match self {
            Store::Sled(s) => {
                let (inner, prefix) = (s.inner.clone(), prefix.to_string());
                blocking(move || {
                    let trees = inner.trees()?;
                    let tree = trees.db.open_tree(SLED_TREE).map_err(sled_error)?;
                    tree.scan_prefix(prefix.as_bytes())
                        .map(|kv| kv.map(|(k, v)| (text(&k), v.to_vec())).map_err(sled_error))
                        .collect()
                })
                .await
            }
            Store::Etcd(s) => {
                let (client, base) = s.raw();
                let key = etcd_key(&base, prefix);
                let strip = base.len() + ETCD_PART.len();
                let request = RangeRequest { range_end: prefix_end(&key), key, ..Default::default() };
                // Bounded by --webhook-max-endpoints records per prefix.
                let response = client.range(request).await?;
                Ok(response.kvs.into_iter().map(|kv| (text(&kv.key[strip..]), kv.value)).collect())
            }
        }
    }

    /// Writes `puts` and removes `deletes` together, durably.
    pub async fn webhook_write(&self, puts: Vec<(String, Vec<u8>)>, deletes: Vec<String>) -> Result<(), Error> {
        match self {
            Store::Sled(s) => {
                let inner = s.inner.clone();
                blocking(move || {
                    let trees = inner.trees()?;
                    let tree = trees.db.open_tree(SLED_TREE).map_err(sled_error)?;
                    let mut batch = sled::Batch::default();
                    for (k, v) in puts {
                        batch.insert(k.as_bytes(), v);
                    }
                    for k in deletes {
                        batch.remove(k.as_bytes());
                    }
                    tree.apply_batch(batch).map_err(sled_error)?;
                    trees.make_durable()
                })
                .await
            }
            Store::Etcd(s) => {
                let (client, prefix) = s.raw();
                let success = etcd_ops(&prefix, puts, deletes);
                // Writing the same values twice does no harm.
                client.txn_idempotent(TxnRequest { success, ..Default::default() }).await?;
                Ok(())
            }
        }
    }

    /// The etcd client and the full key of a webhook record, for the
    /// sender leases (None on sled: one process, one sender).
    pub(crate) fn webhook_etcd(&self, key: &str) -> Option<(Arc<Client>, Vec<u8>)> {
        match self {
            Store::Sled(_) => None,
            Store::Etcd(s) => {
                let (client, prefix) = s.raw();
                Some((client, etcd_key(&prefix, key)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The conditional write on a real sled database in a temporary
    //! directory (the etcd side: tests/webhooks.rs, two replicas).
    use std::time::Duration;

    use crate::config::Limits;
    use crate::hub::Hub;
    use crate::store::Store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_over_a_stale_read_is_refused_on_sled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(
            dir.path(),
            Limits::default(),
            Hub::new(&crate::config::WatchSettings::default()),
            Duration::from_secs(1),
        )
        .expect("open the store");
        let put = |v: &str| vec![("e/x".to_string(), v.as_bytes().to_vec())];

        let absent = store.webhook_read("e/x").await.unwrap();
        assert!(store.webhook_write_if(&absent, put("a"), Vec::new()).await.unwrap());
        // Read twice, as two edits would; the first to write wins.
        let first = store.webhook_read("e/x").await.unwrap();
        let second = store.webhook_read("e/x").await.unwrap();
        assert!(store.webhook_write_if(&first, put("b"), Vec::new()).await.unwrap());
        assert!(!store.webhook_write_if(&second, put("c"), Vec::new()).await.unwrap());
        assert!(!store.webhook_write_if(&absent, put("d"), Vec::new()).await.unwrap());
        assert_eq!(store.webhook_get("e/x").await.unwrap().as_deref(), Some(&b"b"[..]));
        // Deleted in between: an edit read before cannot bring it back.
        let before_delete = store.webhook_read("e/x").await.unwrap();
        store.webhook_write(Vec::new(), vec!["e/x".into()]).await.unwrap();
        assert!(!store.webhook_write_if(&before_delete, put("e"), Vec::new()).await.unwrap());
        assert_eq!(store.webhook_get("e/x").await.unwrap(), None);
    }
}
