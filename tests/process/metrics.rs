//! Metrics: a Prometheus scrape over raw HTTP/1.1 shows RPCs, watchers,
//! events and storage.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::http::*;
use crate::support::inproc::*;
use crate::support::process::*;
use crate::support::watch::{read_to_bookmark, watch_from};
use crate::support::PROMPT;

/// Scrapes until `ready` holds (bounded); returns the last scrape.
async fn scrape_until(addr: std::net::SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PROMPT;
    loop {
        let scraped = tokio::task::spawn_blocking(move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok().map(|_| http_get(addr, "/metrics"))
        })
        .await
        .unwrap();
        if let Some((status, text)) = scraped {
            assert_eq!(status, 200, "GET /metrics: {text}");
            if ready(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "metrics never showed {what}:\n{text}");
        } else {
            assert!(Instant::now() < deadline, "the metrics endpoint {addr} never accepted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_shows_rpcs_watchers_events_and_storage() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let server = Launch::new(dir.path(), "metrics.log")
        .args(["--metrics-listen", &metrics.to_string(), "--compact-interval", "100ms"])
        .start();
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    create(&mut gc, "Work", &["C2Cboss"]).await.unwrap();
    expect_err(create(&mut gc, "Work", &["C2Cboss"]).await);
    group_list(&mut gc).await;
    // A watch from revision 1 catches up from the log, then stays open.
    let mut stream = gc.watch_group_events(watch_from(1)).await.unwrap().into_inner();
    read_to_bookmark(&mut stream).await;

    let text = scrape_until(metrics, "watchers=1 and the storage size", |t| {
        sample(t, "convgroups_watchers", &[]) == Some(1.0)
            && sample(t, "convgroups_storage_size_bytes", &[]).is_some_and(|v| v > 0.0)
    })
    .await;
    let create_ok = ["method=\"CreateConversationGroup\"", "code=\"Ok\""];
    assert_eq!(sample(&text, "convgroups_rpc_requests_total", &create_ok), Some(2.0), "{text}");
    let create_dup = ["method=\"CreateConversationGroup\"", "code=\"AlreadyExists\""];
    assert_eq!(sample(&text, "convgroups_rpc_requests_total", &create_dup), Some(1.0), "{text}");
    let list_ok = ["method=\"GetConversationGroupList\"", "code=\"Ok\""];
    assert_eq!(sample(&text, "convgroups_rpc_requests_total", &list_ok), Some(1.0), "{text}");
    assert!(text.contains("# TYPE convgroups_rpc_requests_total counter"), "{text}");
    assert!(text.contains("# TYPE convgroups_rpc_duration_seconds histogram"), "{text}");
    let create = "method=\"CreateConversationGroup\"";
    assert_eq!(sample(&text, "convgroups_rpc_duration_seconds_count", &[create]), Some(3.0), "{text}");
    assert_eq!(sample(&text, "convgroups_rpc_duration_seconds_bucket", &[create, "le=\"+Inf\""]), Some(3.0), "{text}");
    assert!(sample(&text, "convgroups_rpc_duration_seconds_bucket", &[create, "le=\"0.001\""]).is_some(), "{text}");
    assert!(sample(&text, "convgroups_events_published_total", &[]).is_some_and(|v| v >= 2.0), "{text}");
    assert!(sample(&text, "convgroups_flush_duration_seconds_count", &[]).is_some_and(|v| v >= 2.0), "{text}");
    assert!(sample(&text, "convgroups_flush_duration_seconds_bucket", &["le=\"+Inf\""]).is_some(), "{text}");
    assert_eq!(sample(&text, "convgroups_watchers_catching_up", &[]), Some(0.0), "catch-up finished:\n{text}");

    drop(stream);
    scrape_until(metrics, "watchers back to 0", |t| sample(t, "convgroups_watchers", &[]) == Some(0.0)).await;
    server.stop().await;
}

/// A watcher that falls behind its live ring (`--watch-user-ring 1`, on a
/// connection whose 1 KiB flow-control window holds little of its backlog)
/// counts in convgroups_watch_lagged_total, the server warns about it once
/// (not once per event), and the watcher still gets every batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_its_ring_is_counted_and_warned_about_once() {
    use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;

    use crate::support::watch::{read_through_from, revisions};

    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let server = Launch::new(dir.path(), "lagged.log")
        .args(["--metrics-listen", &metrics.to_string(), "--watch-user-ring", "1"])
        .start();
    let mut gc = server.group_client("alice").await;
    let setup = create(&mut gc, "g", &["C2Cseed"]).await.unwrap().revision;
    scrape_until(metrics, "the lag counter, at 0", |t| sample(t, "convgroups_watch_lagged_total", &[]) == Some(0.0))
        .await;

    let channel = endpoint(&server.uri()).initial_stream_window_size(Some(1024)).connect().await.unwrap();
    let bearer = server.bearer("alice");
    let mut slow =
        ConversationGroupServiceClient::with_interceptor(channel, Headers::new(&[("authorization", &bearer)]));
    let mut stream = slow.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    let start = read_to_bookmark(&mut stream).await;
    assert!(start >= setup);
    // Batches of 100 events (a few KB each) while the watcher does not
    // read: far more than its ring, its stream's buffer and the window hold.
    let ids: Vec<String> = (0..100).map(|i| format!("C2Cconversation-number-{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut written = Vec::new();
    for round in 0..60 {
        let revision = if round % 2 == 0 {
            add(&mut gc, "g", &ids).await.unwrap().revision
        } else {
            remove(&mut gc, "g", &ids).await.unwrap().revision
        };
        written.push(revision);
    }
    // Reading now, the stream's task finds it lagged and reads the log.
    let batches = read_through_from(&mut stream, *written.last().unwrap(), start).await;
    assert_eq!(revisions(&batches), written, "every batch, in order, after the lag");
    let text = scrape_until(metrics, "a lagged watcher", |t| {
        sample(t, "convgroups_watch_lagged_total", &[]).is_some_and(|v| v >= 1.0)
    })
    .await;
    let lagged = sample(&text, "convgroups_watch_lagged_total", &[]).unwrap();
    server.wait_for_log("fell behind their live ring").await;
    let warnings = server.log().matches("fell behind their live ring").count();
    assert_eq!(warnings, 1, "one warning per 10 s however many lagged ({lagged}):\n{}", server.log());
    drop(stream);
    server.stop().await;
}
