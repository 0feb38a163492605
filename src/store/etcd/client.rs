//! A small etcd client over the vendored API: one lazily connected channel
//! per member, one current member, and a rule for when to try the next.
//!
//! Why not one load-balanced channel: a stopped (SIGSTOP) or partitioned
//! member still accepts TCP connections and then never answers, which a
//! balancer does not notice. Here every request has its own timeout
//! (`--etcd-request-timeout`), and a request that fails or times out moves
//! the replica on to the next member, for up to `--etcd-retry-for`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::config::StorageSettings;
use crate::error::Error;
use crate::pb::etcd::kv_client::KvClient;
use crate::pb::etcd::lease_client::LeaseClient;
use crate::pb::etcd::watch_client::WatchClient;
use crate::pb::etcd::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};

/// Largest response the replica accepts from etcd: a page of the event log
/// or of a user's conversations stays far below it; etcd's own request
/// limit (1.5 MiB by default) bounds what can be written.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Pause after every member has failed once in a row, so a cluster that is
/// down is not hammered.
const ROUND_PAUSE: Duration = Duration::from_millis(100);

struct Member {
    endpoint: String,
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
}

pub struct Client {
    members: Vec<Member>,
    current: AtomicUsize,
    pub request_timeout: Duration,
    pub retry_for: Duration,
}

/// Why a transaction attempt did not give an answer.
#[derive(Debug)]
pub enum TxnFailed {
    /// etcd refused it (too many operations, too large): it was not applied.
    Refused(String),
    /// The answer was lost: it may have been applied.
    Unknown(String),
}

/// The members of `--etcd-endpoints`, each with its unconnected endpoint:
/// refused when there are none or one is not host:port. Connects nothing
/// (`convgroups check-config` calls it too).
pub(crate) fn endpoints(settings: &StorageSettings) -> Result<Vec<(String, Endpoint)>, Error> {
    let invalid = |message: String| Error::InvalidSetting { setting: crate::config::Setting::EtcdEndpoints, message };
    if settings.etcd_endpoints.is_empty() {
        return Err(invalid("the etcd backend needs at least one endpoint (host:port, comma-separated)".into()));
    }
    settings
        .etcd_endpoints
        .iter()
        .map(|endpoint| {
            let endpoint = endpoint.trim();
            let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
            let channel =
                Endpoint::from_shared(url).map_err(|e| invalid(format!("{endpoint:?} is not host:port: {e}")))?;
            Ok((endpoint.to_string(), channel))
        })
        .collect()
}

impl Client {
    /// Channels to every member of `--etcd-endpoints`; nothing is connected
    /// until the first request.
    pub fn new(settings: &StorageSettings) -> Result<Self, Error> {
        let mut members = Vec::new();
        for (endpoint, channel) in endpoints(settings)? {
            let channel = channel
                .connect_timeout(settings.etcd_request_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(settings.etcd_request_timeout)
                .keep_alive_while_idle(true)
                .connect_lazy();
            members.push(Member {
                endpoint,
                kv: KvClient::new(channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES),
                watch: WatchClient::new(channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES),
                lease: LeaseClient::new(channel),
            });
        }
        Ok(Self {
            members,
            current: AtomicUsize::new(0),
            request_timeout: settings.etcd_request_timeout,
            retry_for: settings.etcd_retry_for,
        })
    }

    /// The member requests go to now, and its watch client.
    pub fn watch_client(&self) -> (usize, WatchClient<Channel>, &str) {
        let i = self.current.load(Ordering::Acquire) % self.members.len();
        (i, self.members[i].watch.clone(), &self.members[i].endpoint)
    }

    /// Moves on from member `failed` (unless another request already did).
    pub fn next_member(&self, failed: usize) {
        let next = (failed + 1) % self.members.len();
        let _ = self.current.compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Runs an idempotent request on the current member, moving on to the
    /// next member after a failure or a timeout, until one answers or
    /// `retry_for` has passed.
    async fn retrying<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, Error>
    where
        F: Fn(KvClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.retrying_on(op, |member| member.kv.clone(), call).await
    }

    /// [`retrying`](Self::retrying) on the service `client` picks of a
    /// member (KV or Lease): the one retry loop of the client.
    async fn retrying_on<C, T, F, Fut>(
        &self,
        op: &'static str,
        client: impl Fn(&Member) -> C,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.retry_for;
        let mut failures_in_a_row = 0;
        loop {
            let i = self.current.load(Ordering::Acquire) % self.members.len();
            let member = &self.members[i];
            let started = Instant::now();
            let outcome = tokio::time::timeout(self.request_timeout, call(client(member))).await;
            crate::metrics::etcd_request(op, matches!(outcome, Ok(Ok(_))), started.elapsed());
            let error = match outcome {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if !retryable(&status) => {
                    return Err(Error::Internal(format!("etcd {op} at {}: {status}", member.endpoint)))
                }
                Ok(Err(status)) => format!("{}: {}", member.endpoint, status.message()),
                Err(_) => format!("{}: no answer within {:?}", member.endpoint, self.request_timeout),
            };
            self.next_member(i);
            failures_in_a_row += 1;
            if Instant::now() >= deadline {
                return Err(Error::Storage(format!(
                    "etcd {op}: no member answered within the retry time of {:?}; last: {error}",
                    self.retry_for
                )));
            }
            if failures_in_a_row % self.members.len() == 0 {
                tokio::time::sleep(ROUND_PAUSE).await;
            }
        }
    }

    /// A lease of `ttl` seconds (the webhook senders' claims). A lease
    /// granted twice after a lost answer only expires unused.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, Error> {
        self.retrying_on(
            "lease_grant",
            |member| member.lease.clone(),
            |mut lease| async move { lease.lease_grant(crate::pb::etcd::LeaseGrantRequest { ttl, id: 0 }).await },
        )
        .await
        .map(|r| r.id)
    }

    /// Renews lease `id` once: its remaining TTL, 0 when it has expired.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, Error> {
        self.retrying_on(
            "lease_keep_alive",
            |member| member.lease.clone(),
            |mut lease| async move {
                let request = crate::pb::etcd::LeaseKeepAliveRequest { id };
                let mut answers = lease.lease_keep_alive(tokio_stream::once(request)).await?.into_inner();
                match answers.message().await? {
                    Some(answer) => Ok(tonic::Response::new(answer)),
                    None => Err(tonic::Status::unavailable("lease keep-alive stream ended without an answer")),
                }
            },
        )
        .await
        .map(|r| r.ttl)
    }

    /// Ends lease `id` now (its keys go with it).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), Error> {
        self.retrying_on(
            "lease_revoke",
            |member| member.lease.clone(),
            |mut lease| async move { lease.lease_revoke(crate::pb::etcd::LeaseRevokeRequest { id }).await },
        )
        .await
        .map(|_| ())
    }

    /// A read (linearizable unless the request says otherwise).
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Error> {
        self.retrying("range", |mut kv| {
            let request = request.clone();
            async move { kv.range(request).await }
        })
        .await
    }

    /// A transaction that may be sent again after a lost answer: its
    /// compares make a second application impossible, or applying it twice
    /// does no harm.
    pub async fn txn_idempotent(&self, request: TxnRequest) -> Result<TxnResponse, Error> {
        self.retrying("txn", |mut kv| {
            let request = request.clone();
            async move { kv.txn(request).await }
        })
        .await
    }

    /// One attempt at a transaction on the current member. A failure means
    /// the outcome is unknown: the transaction may have been applied.
    pub async fn txn_once(&self, request: TxnRequest) -> Result<TxnResponse, TxnFailed> {
        let i = self.current.load(Ordering::Acquire) % self.members.len();
        let member = &self.members[i];
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.request_timeout, member.kv.clone().txn(request)).await;
        crate::metrics::etcd_request("txn", matches!(outcome, Ok(Ok(_))), started.elapsed());
        match outcome {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if !retryable(&status) => Err(TxnFailed::Refused(format!(
                "etcd refused the transaction at {}: {}",
                member.endpoint,
                status.message()
            ))),
            Ok(Err(status)) => {
                self.next_member(i);
                Err(TxnFailed::Unknown(format!("{}: {}", member.endpoint, status.message())))
            }
            Err(_) => {
                self.next_member(i);
                Err(TxnFailed::Unknown(format!("{}: no answer within {:?}", member.endpoint, self.request_timeout)))
            }
        }
    }
}

/// Whether another member (or a later try) may succeed: transport
/// failures, timeouts, and etcd's own "no leader / leader changed /
/// request timed out", which all come as UNAVAILABLE (or, for a dropped
/// connection, UNKNOWN or CANCELLED).
fn retryable(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded)
}
