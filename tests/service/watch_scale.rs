//! Shutdown with 10,000 open watch streams: the server ends every stream
//! with SHUTTING_DOWN and its resume revision, and `run` returns (storage
//! flushed) within a few seconds.

use std::time::{Duration, Instant};

use crate::support::inproc::*;
use crate::support::watch::*;
use convgroups::pb::WatchGroupEventsRequest;
use tonic::Code;
use tonic_types::StatusExt;

/// Streams opened; spread over several connections as real clients would.
const STREAMS: usize = 10_000;
const CONNECTIONS: usize = 10;
/// Streams being opened at one time.
const OPEN_AT_ONCE: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_ten_thousand_open_streams_is_prompt() {
    let server = TestServer::start_with(|config| {
        config.watch.max_watchers_per_user = STREAMS;
    })
    .await;
    let mut gc = server.group_client("alice");
    create(&mut gc, "G", &["C2Cx"]).await.unwrap();
    let revision = revision(&mut gc).await;

    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(connect(&server, None).await);
    }
    // Opened OPEN_AT_ONCE at a time: each open's own deadline (PROMPT) then
    // bounds one open, not its wait behind thousands of others on a busy
    // 2-core machine running a debug build.
    let mut streams = Vec::with_capacity(STREAMS);
    for first in (0..STREAMS).step_by(OPEN_AT_ONCE) {
        let mut opens = Vec::with_capacity(OPEN_AT_ONCE);
        for i in first..(first + OPEN_AT_ONCE).min(STREAMS) {
            let mut client = user_client_on(&server, channels[i % CONNECTIONS].clone(), "alice");
            opens.push(tokio::spawn(async move {
                let mut stream = open_ok(&mut client, WatchGroupEventsRequest::default()).await;
                let bookmark = expect_bookmark(&mut stream).await;
                (stream, bookmark)
            }));
        }
        for open in opens {
            let (stream, bookmark) = open.await.expect("open task");
            assert_eq!(bookmark, revision);
            streams.push(stream);
        }
    }
    assert_eq!(server.stats.watchers(), STREAMS);

    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| tokio::spawn(async move { read_to_status(&mut stream).await.1 }))
        .collect();
    let started = Instant::now();
    server.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown with {STREAMS} streams took {took:?}");

    for reader in readers {
        let status = reader.await.expect("reader task");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "SHUTTING_DOWN");
        assert_eq!(info.metadata["resume_revision"], (revision + 1).to_string());
    }
    eprintln!("shutdown with {STREAMS} open streams took {took:?}");
}
