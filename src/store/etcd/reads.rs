//! Reads of users' records, coalesced: the reads that arrive while one is
//! on its way to etcd go together in the next request, one read-only
//! transaction of several Ranges. etcd answers a read-only transaction with
//! one linearizable read (a ReadIndex, no raft proposal), so under load many
//! calls share one round trip; a lone read is a plain Range, as before.
//! Every read in a request was asked for before the request was sent, so each
//! still sees every write acknowledged before it was asked for.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::client::Client;
use crate::error::Error;
use crate::pb::etcd::{request_op, response_op, KeyValue, RangeRequest, RequestOp, TxnRequest};

/// Reads in one transaction at most: below etcd's default `--max-txn-ops`
/// (128), so coalescing works on any cluster.
const MAX_READS_PER_TXN: usize = 64;

/// Coalesced requests on their way to etcd at once. While they are, new reads wait and
/// go together in the next one; more in flight would send each read alone.
const IN_FLIGHT: usize = 2;

/// The value of one key (None: absent) and the cluster revision it was read at.
pub type Read = Result<(Option<KeyValue>, u64), Error>;

type Waiter = (Vec<u8>, oneshot::Sender<Read>);

#[derive(Clone)]
pub struct Reads {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl Reads {
    /// Starts the coalescing task; it ends when the last handle goes.
    pub fn start(client: Arc<Client>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx));
        Self { tx }
    }

    /// Reads `key` (linearizable).
    pub async fn get(&self, key: Vec<u8>) -> Read {
        let (reply, answer) = oneshot::channel();
        self.tx.send((key, reply)).map_err(|_| Error::Internal("the etcd read coalescer has stopped".into()))?;
        answer.await.map_err(|_| Error::Internal("the etcd read coalescer dropped a read".into()))?
    }
}

async fn run(client: Arc<Client>, mut rx: mpsc::UnboundedReceiver<Waiter>) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let mut waiters = vec![first];
        while waiters.len() < MAX_READS_PER_TXN {
            match rx.try_recv() {
                Ok(waiter) => waiters.push(waiter),
                Err(_) => break,
            }
        }
        let client = client.clone();
        tokio::spawn(async move {
            answer(&client, waiters).await;
            drop(permit);
        });
    }
}

async fn answer(client: &Client, waiters: Vec<Waiter>) {
    if waiters.len() == 1 {
        let (key, reply) = waiters.into_iter().next().expect("one");
        let read = client
            .range(RangeRequest { key, ..Default::default() })
            .await
            .map(|response| (response.kvs.into_iter().next(), response.header.map_or(0, |h| h.revision as u64)));
        let _ = reply.send(read);
        return;
    }
    let success = waiters
        .iter()
        .map(|(key, _)| RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest { key: key.clone(), ..Default::default() })),
        })
        .collect();
    match client.txn_idempotent(TxnRequest { success, ..Default::default() }).await {
        Ok(response) => {
            let revision = response.header.map_or(0, |h| h.revision as u64);
            let mut results = response.responses.into_iter();
            for (_, reply) in waiters {
                let kv = match results.next().and_then(|r| r.response) {
                    Some(response_op::Response::ResponseRange(range)) => Ok(range.kvs.into_iter().next()),
                    _ => Err(Error::Internal("etcd answered a read-only transaction without its ranges".into())),
                };
                let _ = reply.send(kv.map(|kv| (kv, revision)));
            }
        }
        Err(e) => {
            for (_, reply) in waiters {
                let _ = reply.send(Err(match &e {
                    Error::Storage(detail) => Error::Storage(detail.clone()),
                    other => Error::Internal(other.to_string()),
                }));
            }
        }
    }
}
