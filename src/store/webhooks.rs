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

use std::sync::Arc;

use super::etcd::client::Client;
use super::Store;
use crate::error::Error;
use crate::pb::etcd::{request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

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

fn sled_error(e: sled::Error) -> Error {
    Error::Storage(format!("webhook records: {e}"))
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("webhook records: {e}")))?
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
                let mut success: Vec<RequestOp> = puts
                    .into_iter()
                    .map(|(k, value)| RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: etcd_key(&prefix, &k),
                            value,
                            ..Default::default()
                        })),
                    })
                    .collect();
                success.extend(deletes.into_iter().map(|k| RequestOp {
                    request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                        key: etcd_key(&prefix, &k),
                        ..Default::default()
                    })),
                }));
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
