//! Prometheus metrics, through the `metrics` facade. Recording is a no-op
//! until [`install`] sets up the exporter (`--metrics-listen`), so the hot
//! paths pay almost nothing when metrics are off.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `convgroups_rpc_requests_total` | counter | method, code |
//! | `convgroups_rpc_duration_seconds` | histogram | method |
//! | `convgroups_watchers` | gauge | |
//! | `convgroups_watchers_catching_up` | gauge | |
//! | `convgroups_watch_lagged_total` | counter | |
//! | `convgroups_events_published_total` | counter | |
//! | `convgroups_flush_duration_seconds` | histogram | |
//! | `convgroups_storage_size_bytes` | gauge | |
//! | `convgroups_revision` | gauge | |
//! | `convgroups_storage_failing` | gauge (0 or 1) | |
//! | `convgroups_storage_reopens_total` | counter | |
//! | `convgroups_build_info` | gauge (always 1) | version, commit, build_date |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::error::Error;

/// Latency buckets (seconds): from a cached read (~50 µs) to a slow flush.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Set once [`install`] succeeded. The per-call metrics build their labels
/// (strings) before the facade sees them, which costs allocations even
/// with no exporter: they check this first.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Starts the Prometheus endpoint on `addr` (`GET /metrics`, or any path).
/// Must run inside the tokio runtime. Only one per process.
///
/// Every metric gets its `# HELP` line, and the series without labels start
/// at 0 (the revision at `revision`): dashboards and alerts need them from
/// start-up, not from the first watcher or event.
pub fn install(addr: SocketAddr, revision: u64) -> Result<(), Error> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| b.install())
        .map_err(|e| Error::InvalidSetting {
            setting: crate::config::Setting::Flag("--metrics-listen"),
            message: format!("{addr}: {e}"),
        })?;
    describe();
    INSTALLED.store(true, Ordering::Release);
    metrics::gauge!("convgroups_watchers").set(0.0);
    metrics::gauge!("convgroups_watchers_catching_up").set(0.0);
    metrics::gauge!("convgroups_revision").set(revision as f64);
    metrics::gauge!("convgroups_storage_failing").set(0.0);
    metrics::counter!("convgroups_events_published_total").absolute(0);
    metrics::counter!("convgroups_watch_lagged_total").absolute(0);
    metrics::counter!("convgroups_storage_reopens_total").absolute(0);
    metrics::gauge!(
        "convgroups_build_info",
        "version" => crate::version::VERSION,
        "commit" => crate::version::COMMIT,
        "build_date" => crate::version::BUILD_DATE
    )
    .set(1.0);
    Ok(())
}

/// The `# HELP` text of every metric.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("convgroups_rpc_requests_total", "RPCs answered, by method and gRPC code (refused calls too).");
    describe_histogram!("convgroups_rpc_duration_seconds", Unit::Seconds, "Time to answer an RPC, by method.");
    describe_gauge!("convgroups_watchers", "Open WatchGroupEvents streams.");
    describe_gauge!(
        "convgroups_watchers_catching_up",
        "Watch streams reading history from the event log instead of following live events."
    );
    describe_counter!("convgroups_events_published_total", "Event batches published to watchers.");
    describe_counter!(
        "convgroups_watch_lagged_total",
        "Times a watch stream fell behind its live ring (--watch-user-ring, --watch-all-users-ring) and read from the event log."
    );
    describe_histogram!("convgroups_flush_duration_seconds", Unit::Seconds, "Time of one storage flush (fsync).");
    describe_gauge!("convgroups_storage_size_bytes", Unit::Bytes, "Size of the database on disk.");
    describe_gauge!("convgroups_revision", "The last published revision.");
    describe_gauge!("convgroups_storage_failing", "1 while storage is failing and mutations are refused, else 0.");
    describe_counter!("convgroups_storage_reopens_total", "Reopens of the database after a storage failure.");
    describe_gauge!(
        "convgroups_build_info",
        "Always 1; its labels say what is running: version, git commit and build date (as `convgroups --version`)."
    );
    describe_histogram!(
        "convgroups_etcd_request_duration_seconds",
        Unit::Seconds,
        "Time of one etcd request, by op and outcome (etcd backend)."
    );
    describe_gauge!(
        "convgroups_etcd_feed_lag_seconds",
        Unit::Seconds,
        "How far behind the change feed was when it last caught up with this replica's heartbeat (etcd backend)."
    );
    describe_counter!("convgroups_webhook_deliveries_total", "Webhook batches acknowledged with a 2xx, by endpoint.");
    describe_counter!(
        "convgroups_webhook_failures_total",
        "Failed webhook attempts, by endpoint and reason (dns, refused_address, connect, timeout, redirect, status, protocol)."
    );
    describe_counter!("convgroups_webhook_retries_total", "Webhook attempts that retried a failed batch, by endpoint.");
    describe_gauge!("convgroups_webhook_lag_revisions", "Revisions after an endpoint's cursor, by endpoint.");
    describe_histogram!(
        "convgroups_webhook_delivery_delay_seconds",
        Unit::Seconds,
        "From a batch's commit to its acknowledgement by the endpoint."
    );
    describe_counter!(
        "convgroups_webhook_gap_revisions_total",
        "Revisions an endpoint never got because they were trimmed first (see GetWebhook gaps), by endpoint."
    );
    describe_counter!("convgroups_etcd_feed_reconnects_total", "Reconnects of the etcd change feed (etcd backend).");
    describe_counter!(
        "convgroups_etcd_read_cache_total",
        "Reads with min_revision answered from the replica's memory (hit) or from etcd (miss) (etcd backend)."
    );
}

pub fn rpc(method: &str, code: tonic::Code, elapsed: Duration) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    let method = method.to_string();
    metrics::counter!("convgroups_rpc_requests_total", "method" => method.clone(), "code" => format!("{code:?}"))
        .increment(1);
    metrics::histogram!("convgroups_rpc_duration_seconds", "method" => method).record(elapsed.as_secs_f64());
}

pub fn watchers(open: usize) {
    metrics::gauge!("convgroups_watchers").set(open as f64);
}

pub fn catching_up(delta: f64) {
    metrics::gauge!("convgroups_watchers_catching_up").increment(delta);
}

pub fn watch_lagged() {
    metrics::counter!("convgroups_watch_lagged_total").increment(1);
}

pub fn published(revision: u64) {
    metrics::counter!("convgroups_events_published_total").increment(1);
    metrics::gauge!("convgroups_revision").set(revision as f64);
}

pub fn flushed(elapsed: Duration) {
    metrics::histogram!("convgroups_flush_duration_seconds").record(elapsed.as_secs_f64());
}

pub fn storage_size(bytes: u64) {
    metrics::gauge!("convgroups_storage_size_bytes").set(bytes as f64);
}

/// 1 while storage is failing (mutations refused, health NOT_SERVING).
pub fn storage_failing(failing: bool) {
    metrics::gauge!("convgroups_storage_failing").set(if failing { 1.0 } else { 0.0 });
}

/// The database was reopened after a storage failure.
pub fn storage_reopened() {
    metrics::counter!("convgroups_storage_reopens_total").increment(1);
}

/// One request to etcd (etcd backend): `op` is range, txn or put.
pub fn etcd_request(op: &'static str, ok: bool, elapsed: Duration) {
    metrics::histogram!("convgroups_etcd_request_duration_seconds", "op" => op, "ok" => if ok { "true" } else { "false" })
        .record(elapsed.as_secs_f64());
}

/// How far behind the cluster the change feed was when it last caught up
/// with this replica's own heartbeat: the time from the heartbeat's write to
/// its arrival on the feed.
pub fn feed_lag(lag: Duration) {
    metrics::gauge!("convgroups_etcd_feed_lag_seconds").set(lag.as_secs_f64());
}

/// A read with `min_revision` on an etcd replica was answered from its
/// memory (hit) or had to ask etcd (miss).
pub fn etcd_read_cache(hit: bool) {
    metrics::counter!("convgroups_etcd_read_cache_total", "result" => if hit { "hit" } else { "miss" }).increment(1);
}

/// The change feed reconnected (to the same or another etcd member).
pub fn feed_reconnected() {
    metrics::counter!("convgroups_etcd_feed_reconnects_total").increment(1);
}

pub fn webhook_delivered(endpoint: &str, delay_ms: i64) {
    metrics::counter!("convgroups_webhook_deliveries_total", "endpoint" => endpoint.to_string()).increment(1);
    metrics::histogram!("convgroups_webhook_delivery_delay_seconds").record(delay_ms.max(0) as f64 / 1000.0);
}

pub fn webhook_failed(endpoint: &str, reason: &'static str) {
    metrics::counter!("convgroups_webhook_failures_total", "endpoint" => endpoint.to_string(), "reason" => reason)
        .increment(1);
}

pub fn webhook_retry(endpoint: &str) {
    metrics::counter!("convgroups_webhook_retries_total", "endpoint" => endpoint.to_string()).increment(1);
}

pub fn webhook_lag(endpoint: &str, revisions: u64) {
    metrics::gauge!("convgroups_webhook_lag_revisions", "endpoint" => endpoint.to_string()).set(revisions as f64);
}

pub fn webhook_gap(endpoint: &str, revisions: u64) {
    metrics::counter!("convgroups_webhook_gap_revisions_total", "endpoint" => endpoint.to_string())
        .increment(revisions);
}

/// An edit of a webhook endpoint's configuration found it changed by
/// another edit since it read it, and was applied again.
pub fn webhook_edit_conflict() {
    metrics::counter!("convgroups_webhook_edit_conflicts_total").increment(1);
}
