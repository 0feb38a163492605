//! One sender per endpoint across etcd replicas.
//!
//! Each replica holds one etcd lease (`--webhook-lease-ttl`), renewed every
//! third of its TTL. It claims an endpoint by creating the endpoint's lock
//! key `hooks/l/<id>` bound to that lease, in a transaction that succeeds
//! only while the key does not exist; so at most one replica holds each
//! endpoint. When a replica dies, its lease expires, etcd deletes its lock
//! keys, and the next scan of another replica claims them and resumes from
//! the stored cursor: nothing is lost, and at most the batch that was in
//! flight is delivered twice.
//!
//! Every cursor write of a sender is a transaction guarded by "the lock key
//! is still bound to my lease", so a replica that lost its lease without
//! noticing (paused, partitioned) cannot move a cursor back under the new
//! holder. A replica that has not renewed its lease for half its TTL stops
//! its senders before etcd could give the endpoint to another replica.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::pb::etcd::{compare, request_op, Compare, PutRequest, RequestOp, TxnRequest};
use crate::store::etcd::client::Client;
use crate::store::Store;

pub fn lock_key(id: &str) -> String {
    format!("l/{id}")
}

/// This replica's lease, kept alive by a background task until dropped.
pub struct ReplicaLease {
    client: Arc<Client>,
    id: i64,
    lost: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for ReplicaLease {
    fn drop(&mut self) {
        self.keeper.abort();
        self.lost.store(true, Ordering::Release);
        // Hands the endpoints over at once rather than after the TTL (best
        // effort: on a crash, the TTL does it).
        let (client, id) = (self.client.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { client.lease_revoke(id).await });
        }
    }
}

impl ReplicaLease {
    pub async fn grant(store: &Store, ttl: Duration) -> Result<Option<Self>, Error> {
        let Some((client, _)) = store.webhook_etcd("") else { return Ok(None) };
        let id = client.lease_grant(ttl.as_secs() as i64).await?;
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = tokio::spawn(keep_alive(client.clone(), id, ttl, lost.clone()));
        Ok(Some(Self { client, id, lost, keeper }))
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Claims endpoint `id` for this replica; None when another holds it.
    pub async fn claim(&self, store: &Store, endpoint: &str) -> Result<Option<Claim>, Error> {
        let (_, key) = store.webhook_etcd(&lock_key(endpoint)).expect("an etcd store");
        let (_, prefix_of_records) = store.webhook_etcd("").expect("an etcd store");
        let request = TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Create as i32,
                key: key.clone(),
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: Vec::new(),
                    lease: self.id,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        };
        // Sent again after a lost answer it fails its compare, and the key
        // already bound to our own lease is then recognised below.
        let response = self.client.txn_idempotent(request).await?;
        if !response.succeeded {
            let range = crate::pb::etcd::RangeRequest { key: key.clone(), ..Default::default() };
            let held = self.client.range(range).await?.kvs.into_iter().next();
            if held.is_none_or(|kv| kv.lease != self.id) {
                return Ok(None);
            }
        }
        Ok(Some(Claim {
            client: self.client.clone(),
            lock_key: key,
            records: prefix_of_records,
            lease: self.id,
            lease_lost: self.lost.clone(),
            lost: Arc::new(AtomicBool::new(false)),
        }))
    }
}

async fn keep_alive(client: Arc<Client>, id: i64, ttl: Duration, lost: Arc<AtomicBool>) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match client.lease_keep_alive(id).await {
            Ok(remaining) if remaining > 0 => renewed = Instant::now(),
            Ok(_) => {
                tracing::warn!("webhook lease expired; this replica's senders stop");
                lost.store(true, Ordering::Release);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "webhook lease keep-alive failed"),
        }
        if renewed.elapsed() > ttl / 2 {
            tracing::warn!("webhook lease not renewed for half its TTL; this replica's senders stop");
            lost.store(true, Ordering::Release);
            return;
        }
    }
}

/// A replica's hold on one endpoint.
#[derive(Clone)]
pub struct Claim {
    client: Arc<Client>,
    lock_key: Vec<u8>,
    /// The full key of record "" (the prefix of every webhook record).
    records: Vec<u8>,
    lease: i64,
    /// The replica's lease is gone: every claim with it.
    lease_lost: Arc<AtomicBool>,
    /// This endpoint's lock is no longer ours (a guarded write failed).
    lost: Arc<AtomicBool>,
}

impl Claim {
    pub fn lost(&self) -> bool {
        self.lease_lost.load(Ordering::Acquire) || self.lost.load(Ordering::Acquire)
    }

    /// Writes record `key` only while the endpoint's lock is still ours.
    pub async fn write_guarded(&self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        let mut full = self.records.clone();
        full.extend_from_slice(key.as_bytes());
        let request = TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Lease as i32,
                key: self.lock_key.clone(),
                target_union: Some(compare::TargetUnion::Lease(self.lease)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest { key: full, value, ..Default::default() })),
            }],
            failure: Vec::new(),
        };
        let response = self.client.txn_idempotent(request).await?;
        if !response.succeeded {
            self.lost.store(true, Ordering::Release);
            return Err(Error::Storage("this replica no longer holds the webhook endpoint".into()));
        }
        Ok(())
    }
}
