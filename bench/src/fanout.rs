//! Fan-out: W watchers, one writer stream of mutations; each event carries
//! the time its mutation started, so every watcher measures delivery
//! latency from the mutation's start to its own receipt.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convgroups::pb;
use tokio_stream::StreamExt;

use crate::etcd;
use crate::stats::{peak_rss, Histogram};
use crate::targets::{EtcdPool, Pool};

/// One fan-out configuration.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub watchers: usize,
    /// Events per second, or None for as fast as `writers` closed loops go.
    pub rate: Option<u32>,
    pub writers: usize,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct FanoutResult {
    pub events: u64,
    pub deliveries: u64,
    pub missed: u64,
    pub latency: Histogram,
    pub deliveries_per_sec: f64,
    pub peak_rss: u64,
}

/// How long watchers may take to drain after the last write.
const DRAIN: Duration = Duration::from_secs(30);

/// Nanoseconds since the run's base instant: the clock every event carries.
fn stamp(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

fn latency_of(base: Instant, sent: u64) -> Duration {
    Duration::from_nanos(stamp(base).saturating_sub(sent))
}

/// The sending time encoded in a conversation id `C2Ct<nanos>w<writer>`.
fn sent_at(id: &str) -> Option<u64> {
    id.strip_prefix("C2Ct")?.split('w').next()?.parse().ok()
}

struct Shared {
    base: Instant,
    ready: AtomicUsize,
    /// Events the writer got acknowledged; u64::MAX while writing.
    expected: AtomicU64,
}

async fn wait_ready(shared: &Shared, watchers: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::Acquire) < watchers {
        assert!(Instant::now() < deadline, "watchers did not all start within 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Paces a writer: at a fixed rate, or not at all.
async fn pace(shape: &Shape, started: Instant, n: u64) {
    if let Some(rate) = shape.rate {
        let per_writer = f64::from(rate) / shape.writers as f64;
        let due = started + Duration::from_secs_f64(n as f64 / per_writer);
        tokio::time::sleep_until(due.into()).await;
    }
}

async fn collect(
    pid: u32,
    shape: Shape,
    watchers: Vec<tokio::task::JoinHandle<(u64, Histogram)>>,
    events: u64,
    started: Instant,
) -> FanoutResult {
    let mut latency = Histogram::default();
    let mut deliveries = 0;
    for w in watchers {
        let (got, h) = w.await.expect("watcher task");
        deliveries += got;
        latency.merge(&h);
    }
    let elapsed = started.elapsed();
    FanoutResult {
        events,
        deliveries,
        missed: (events * shape.watchers as u64).saturating_sub(deliveries),
        latency,
        deliveries_per_sec: deliveries as f64 / elapsed.as_secs_f64(),
        peak_rss: peak_rss(pid),
    }
}

/// Runs a watcher loop over any stream of "sent stamps per message".
async fn watch_loop<S>(mut stream: S, shared: Arc<Shared>) -> (u64, Histogram)
where
    S: tokio_stream::Stream<Item = Vec<u64>> + Unpin,
{
    let mut latency = Histogram::default();
    let mut got = 0u64;
    shared.ready.fetch_add(1, Ordering::AcqRel);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let expected = shared.expected.load(Ordering::Acquire);
        if got >= expected {
            break;
        }
        if expected != u64::MAX && drain_deadline.is_none() {
            drain_deadline = Some(tokio::time::Instant::now() + DRAIN);
        }
        let next = match drain_deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            // While writing, wake up now and then to notice the end.
            None => match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                Ok(next) => next,
                Err(_) => continue,
            },
        };
        let Some(stamps) = next else { break };
        for sent in stamps {
            latency.record(latency_of(shared.base, sent));
            got += 1;
        }
    }
    (got, latency)
}

/// Fan-out through convgroups or the anchor (same API).
pub async fn grpc(pid: u32, pool: &Pool, user: Option<&str>, group: &str, shape: Shape) -> FanoutResult {
    let shared =
        Arc::new(Shared { base: Instant::now(), ready: AtomicUsize::new(0), expected: AtomicU64::new(u64::MAX) });
    let mut watchers = Vec::with_capacity(shape.watchers);
    for i in 0..shape.watchers {
        let mut client = pool.groups(i, user);
        let shared = shared.clone();
        watchers.push(tokio::spawn(async move {
            let request = pb::WatchGroupEventsRequest::default();
            let mut stream = client.watch_group_events(request).await.expect("watch").into_inner();
            // The first message (a bookmark) says the stream is live.
            let _ = stream.next().await;
            let stamps = stream.map(|m| match m.ok().and_then(|m| m.kind) {
                Some(pb::watch_group_events_response::Kind::Events(batch)) => batch
                    .events
                    .iter()
                    .filter_map(|e| match &e.kind {
                        Some(pb::group_event::Kind::ConversationsAddedToGroup(a)) => Some(a),
                        _ => None,
                    })
                    .flat_map(|a| a.conversation_ids.iter().filter_map(|id| sent_at(id)))
                    .collect(),
                _ => Vec::new(),
            });
            watch_loop(Box::pin(stamps), shared).await
        }));
    }
    wait_ready(&shared, shape.watchers).await;
    let started = Instant::now();
    let deadline = started + shape.duration;
    let mut writers = Vec::new();
    for w in 0..shape.writers {
        let mut client = pool.groups(w, user);
        let (shared, group) = (shared.clone(), group.to_string());
        writers.push(tokio::spawn(async move {
            let mut acked = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                pace(&shape, started, n).await;
                n += 1;
                let id = format!("C2Ct{}w{w}", stamp(shared.base));
                let request = pb::AddConversationsToGroupRequest {
                    group_name: group.clone(),
                    conversation_ids: vec![id],
                    expected_revision: None,
                    ..Default::default()
                };
                if let Ok(r) = client.add_conversations_to_group(request).await {
                    acked += r.into_inner().success_conversation_ids.len() as u64;
                }
            }
            acked
        }));
    }
    let mut events = 0;
    for w in writers {
        events += w.await.expect("writer");
    }
    shared.expected.store(events, Ordering::Release);
    collect(pid, shape, watchers, events, started).await
}

/// Fan-out through etcd: Watch on a prefix, Put with the stamp as value.
pub async fn etcd(pid: u32, pool: &EtcdPool, shape: Shape) -> FanoutResult {
    let shared =
        Arc::new(Shared { base: Instant::now(), ready: AtomicUsize::new(0), expected: AtomicU64::new(u64::MAX) });
    let prefix = b"fan/".to_vec();
    let range_end = b"fan0".to_vec(); // '/' + 1: every key under fan/
    let mut watchers = Vec::with_capacity(shape.watchers);
    for i in 0..shape.watchers {
        let mut client = pool.watch(i);
        let (shared, key, range_end) = (shared.clone(), prefix.clone(), range_end.clone());
        watchers.push(tokio::spawn(async move {
            let create = etcd::WatchRequest {
                request_union: Some(etcd::watch_request::RequestUnion::CreateRequest(etcd::WatchCreateRequest {
                    key,
                    range_end,
                    ..Default::default()
                })),
            };
            // Keep the request stream open: closing it would end the watch.
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(create).await.expect("watch request");
            let mut stream =
                client.watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await.expect("watch").into_inner();
            // The first response confirms the watch was created.
            let _ = stream.next().await;
            let stamps = stream.map(|m| {
                m.map(|r| {
                    r.events
                        .iter()
                        .filter_map(|e| e.kv.as_ref())
                        .filter_map(|kv| std::str::from_utf8(&kv.value).ok()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
            });
            let result = watch_loop(Box::pin(stamps), shared).await;
            drop(tx);
            result
        }));
    }
    wait_ready(&shared, shape.watchers).await;
    let started = Instant::now();
    let deadline = started + shape.duration;
    let mut writers = Vec::new();
    for w in 0..shape.writers {
        let mut client = pool.kv(w);
        let shared = shared.clone();
        writers.push(tokio::spawn(async move {
            let (mut acked, mut n) = (0u64, 0u64);
            while Instant::now() < deadline {
                pace(&shape, started, n).await;
                let request = etcd::PutRequest {
                    key: format!("fan/{w}/{n}").into_bytes(),
                    value: stamp(shared.base).to_string().into_bytes(),
                    ..Default::default()
                };
                n += 1;
                if client.put(request).await.is_ok() {
                    acked += 1;
                }
            }
            acked
        }));
    }
    let mut events = 0;
    for w in writers {
        events += w.await.expect("writer");
    }
    shared.expected.store(events, Ordering::Release);
    collect(pid, shape, watchers, events, started).await
}
