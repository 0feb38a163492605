//! The replica's change feed: one etcd watch on the event log and the
//! replicas' heartbeats, from which every committed batch reaches the hub in
//! revision order, whichever replica made it.
//!
//! * **Progress.** The feed's revision is the last revision it has seen on
//!   the watch: a batch, or a heartbeat (every replica writes its own every
//!   `--etcd-heartbeat-interval`, so an idle deployment still moves on and
//!   bookmarks stay fresh). etcd delivers a watch in revision order, so
//!   everything up to that revision has been handed to the hub. Progress
//!   notifications are not used: etcd 3.4 before 3.4.25 could send one ahead
//!   of events still owed to the watcher (etcd issue #15220).
//! * **Liveness.** A stream that brings nothing for two heartbeats plus one
//!   request timeout is stalled (a stopped member keeps the connection open
//!   and says nothing): the feed moves on to the next member and resumes
//!   from its revision + 1, so watchers see a delay and nothing else.
//! * **Losing etcd.** When no member has been reachable for one request
//!   timeout more, the store is failing: health NOT_SERVING, mutations
//!   refused, and every watch stream of this replica ends with
//!   STORAGE_UNAVAILABLE and its `resume_revision`. Once a member answers
//!   again the feed resumes where it stopped and the store is healthy again,
//!   with no restart.
//! * **etcd compacted its history** past the feed's revision while it was
//!   away: the missed batches are read from the stored event log; if that
//!   too was trimmed, every stream is ended so that no watcher skips a
//!   batch silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::{batch_of, put, range_of, read_log, Inner};
use crate::domain::now_ms;
use crate::error::Error;
use crate::pb::etcd::{
    watch_create_request, watch_request, RangeRequest, TxnRequest, WatchCreateRequest, WatchRequest,
};
use crate::store::Scope;

/// Pause before a reconnect after a failed one.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Batches read per step when the feed fills a gap from the stored log.
const RECOVERY_CHUNK: usize = 1024;

/// Ends the replica's background tasks when the last handle on the store
/// goes.
pub(super) struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Starts the heartbeat and the feed from revision `start`.
pub(super) fn start(inner: &Arc<Inner>, start: u64) -> StopOnDrop {
    let (stop, stopped) = watch::channel(false);
    let replica = format!("{:016x}", rand::random::<u64>());
    let own_key = inner.keys.with(&[b"w/h/", replica.as_bytes()]);
    tokio::spawn(heartbeat(inner.clone(), own_key.clone(), stopped.clone()));
    tokio::spawn(follow(inner.clone(), own_key, start, stopped));
    StopOnDrop(stop)
}

/// Runs `work` until the store's last handle is dropped.
async fn until_stopped<F: std::future::Future>(stopped: &mut watch::Receiver<bool>, work: F) -> Option<F::Output> {
    tokio::select! {
        _ = stopped.wait_for(|stop| *stop) => None,
        output = work => Some(output),
    }
}

async fn heartbeat(inner: Arc<Inner>, key: Vec<u8>, mut stopped: watch::Receiver<bool>) {
    let interval = inner.settings.etcd_heartbeat_interval;
    loop {
        let request = TxnRequest {
            success: vec![put(key.clone(), (now_ms() as u64).to_be_bytes().to_vec())],
            ..Default::default()
        };
        match until_stopped(&mut stopped, inner.client.txn_idempotent(request)).await {
            None => return,
            Some(Err(e)) => tracing::debug!(error = %e, "etcd heartbeat failed"),
            Some(Ok(_)) => {}
        }
        if until_stopped(&mut stopped, tokio::time::sleep(interval)).await.is_none() {
            return;
        }
    }
}

struct Follower {
    inner: Arc<Inner>,
    own_key: Vec<u8>,
    /// Every batch up to this revision has been handed to the hub.
    progress: u64,
    /// Since when no member has answered (None: connected).
    down_since: Option<Instant>,
}

async fn follow(inner: Arc<Inner>, own_key: Vec<u8>, start: u64, mut stopped: watch::Receiver<bool>) {
    let mut follower = Follower { inner, own_key, progress: start, down_since: None };
    loop {
        let Some(outcome) = until_stopped(&mut stopped, follower.follow_once()).await else { return };
        if let Err(reason) = outcome {
            tracing::debug!(%reason, revision = follower.progress, "etcd change feed lost; reconnecting");
            follower.lost(&reason);
        }
        crate::metrics::feed_reconnected();
        if until_stopped(&mut stopped, tokio::time::sleep(RECONNECT_PAUSE)).await.is_none() {
            return;
        }
    }
}

impl Follower {
    /// The stream failed or stalled: after a request timeout with no member
    /// answering, the store is failing and open streams end.
    fn lost(&mut self, reason: &str) {
        let since = *self.down_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.inner.client.request_timeout || self.inner.durable.borrow().failing {
            return;
        }
        tracing::error!(
            %reason,
            revision = self.progress,
            "lost the etcd cluster: health is NOT_SERVING, mutations are refused and watch streams end until a \
             member answers again"
        );
        self.inner.durable.send_modify(|d| {
            d.failing = true;
            d.failures += 1;
        });
        self.inner.hub.interrupt();
    }

    /// A member answered: healthy again if it was not.
    fn connected(&mut self) {
        if self.down_since.take().is_some() && self.inner.durable.borrow().failing {
            tracing::info!(revision = self.progress, "the etcd cluster is back: serving again");
        }
        self.inner.durable.send_if_modified(|d| {
            let changed = d.failing;
            d.failing = false;
            changed
        });
    }

    /// Follows one watch stream until it fails, stalls or has to be
    /// restarted.
    async fn follow_once(&mut self) -> Result<(), String> {
        let inner = self.inner.clone();
        let client = &inner.client;
        let (member, mut watch, endpoint) = client.watch_client();
        let endpoint = endpoint.to_string();
        let range = range_of(&self.inner.keys.feed());
        let create = WatchCreateRequest {
            key: range.key,
            range_end: range.range_end,
            start_revision: self.progress as i64 + 1,
            // Trimming deletes old batches: nothing for the feed.
            filters: vec![watch_create_request::FilterType::Nodelete as i32],
            ..Default::default()
        };
        // Kept open for the life of the stream: etcd reads further requests
        // from it.
        let (requests, rx) = mpsc::channel(1);
        let _ = requests
            .send(WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) })
            .await;
        let opened = tokio::time::timeout(client.request_timeout, watch.watch(ReceiverStream::new(rx))).await;
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                client.next_member(member);
                return Err(format!("{endpoint}: {}", status.message()));
            }
            Err(_) => {
                client.next_member(member);
                return Err(format!("{endpoint}: no answer within {:?}", client.request_timeout));
            }
        };
        let stall = self.inner.settings.etcd_heartbeat_interval * 2 + client.request_timeout;
        let log = self.inner.keys.log();
        loop {
            let message = match tokio::time::timeout(stall, stream.message()).await {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => {
                    client.next_member(member);
                    return Err(format!("{endpoint}: the watch stream ended"));
                }
                Ok(Err(status)) => {
                    client.next_member(member);
                    return Err(format!("{endpoint}: {}", status.message()));
                }
                Err(_) => {
                    client.next_member(member);
                    return Err(format!("{endpoint}: nothing on the watch for {stall:?}"));
                }
            };
            if message.canceled {
                if message.compact_revision > 0 {
                    self.connected();
                    return self.fill_from_log().await.map_err(|e| e.to_string());
                }
                return Err(format!("{endpoint}: watch canceled: {}", message.cancel_reason));
            }
            for event in message.events {
                let Some(kv) = event.kv else { continue };
                let revision = kv.mod_revision as u64;
                if revision <= self.progress {
                    continue;
                }
                if kv.key.starts_with(&log) {
                    match batch_of(&kv) {
                        Ok(batch) => {
                            self.inner.cache.changed(&batch.user, batch.revision);
                            self.inner.hub.publish(Arc::new(batch));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, revision, "skipping an unreadable event batch");
                            // Whose change it was is unknown: no kept record
                            // can be vouched for.
                            self.inner.cache.clear();
                        }
                    }
                } else if kv.key == self.own_key {
                    if let Some(written) = super::keys::decode_u64(&kv.value) {
                        let lag = (now_ms() as u64).saturating_sub(written);
                        crate::metrics::feed_lag(Duration::from_millis(lag));
                    }
                }
                self.progress = revision;
            }
            self.connected();
            self.advance();
        }
    }

    /// Everything up to `progress` is in the hub: tell the waiters.
    fn advance(&self) {
        let progress = self.progress;
        self.inner.hub.advance(progress);
        self.inner.durable.send_if_modified(|d| {
            let changed = d.revision < progress;
            d.revision = d.revision.max(progress);
            changed
        });
    }

    /// etcd no longer has the history after `progress`: read the batches
    /// from the stored log up to the cluster's revision now, or end every
    /// stream if the log was trimmed there too.
    async fn fill_from_log(&mut self) -> Result<(), Error> {
        let latest = self
            .inner
            .client
            .range(RangeRequest { count_only: true, ..range_of(&self.inner.keys.feed()) })
            .await?
            .header
            .map_or(0, |h| h.revision as u64);
        tracing::warn!(revision = self.progress, latest, "etcd compacted past the change feed; reading the stored log");
        loop {
            match read_log(&self.inner, Scope::AllUsers, self.progress + 1, latest, RECOVERY_CHUNK).await {
                Ok(batches) => {
                    let complete = batches.len() < RECOVERY_CHUNK;
                    for batch in batches {
                        self.progress = batch.revision;
                        self.inner.cache.changed(&batch.user, batch.revision);
                        self.inner.hub.publish(Arc::new(batch));
                    }
                    if complete {
                        break;
                    }
                }
                Err(Error::RevisionCompacted { .. }) => {
                    tracing::error!(
                        revision = self.progress,
                        latest,
                        "the stored log was trimmed past the change feed too: ending every watch stream"
                    );
                    self.inner.cache.clear();
                    self.inner.hub.interrupt();
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        self.progress = self.progress.max(latest);
        self.advance();
        Ok(())
    }
}
