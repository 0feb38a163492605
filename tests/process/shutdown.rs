//! Graceful shutdown: order, resume revision, durability, the second
//! signal.
//!
//! A graceful stop waits until the process handles SIGTERM (SigCgt in
//! /proc/<pid>/status, so Linux only): the server installs its handler only
//! after it accepts connections (`sigterm_right_after_start_up_is_graceful`).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use convgroups::pb::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::client::*;
use crate::support::http::*;
use crate::support::inproc::*;
use crate::support::process::*;
use crate::support::watch::{next_watch, read_to_bookmark, watch_from};
use crate::support::PROMPT;

/// SIGTERM with an open watch stream and a health watcher: health goes
/// NOT_SERVING, the stream ends with UNAVAILABLE / SHUTTING_DOWN and the
/// revision to resume from, the process exits 0 promptly, the log says
/// "shutting down" before "stopped", and acknowledged writes survive a
/// restart on the same directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_in_order_and_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch::new(dir.path(), "shutdown.log").args(["--log-format", "json"]);
    let mut server = launch.clone().start();
    let mut gc = server.group_client("alice").await;
    create(&mut gc, "Family", &["C2Cmum"]).await.unwrap();
    let last = create(&mut gc, "Work", &["C2Cboss"]).await.unwrap().revision;
    let mut watch = gc.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    assert_eq!(read_to_bookmark(&mut watch).await, last);
    let mut health = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(PROMPT, health.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let signalled = Instant::now();
    server.sigterm();
    // Health: NOT_SERVING (or the stream/connection ends).
    let seen = tokio::time::timeout(PROMPT, health.message()).await.expect("health watch after SIGTERM");
    if let Ok(Some(update)) = &seen {
        assert_eq!(update.status, ServingStatus::NotServing as i32, "{update:?}");
    }
    drop(health);
    // The watch ends with SHUTTING_DOWN and where to resume.
    let status = loop {
        match next_watch(&mut watch).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("watch ended without a status"),
            Err(status) => break status,
        }
    };
    let info = assert_status(&status, Code::Unavailable, "SHUTTING_DOWN", None);
    assert_eq!(info.metadata.get("resume_revision"), Some(&(last + 1).to_string()), "{status:?}");
    let exit = server.exited_within(Duration::from_secs(8)).await;
    let log = server.log();
    let exit = exit.unwrap_or_else(|| panic!("still running {:?} after SIGTERM; log:\n{log}", signalled.elapsed()));
    assert!(exit.success(), "exit status {exit}; log:\n{log}");
    let lines = json_lines(&log);
    assert!(line_index(&lines, "shutting down", &log) < line_index(&lines, "stopped", &log), "{log}");
    assert!(!log.contains("still running after the shutdown grace"), "drain hit the grace period:\n{log}");

    let server = launch.again("restart.log").start();
    let mut gc = server.group_client("alice").await;
    let list = group_list(&mut gc).await;
    assert_eq!(list.group_names, ["Family", "Work"]);
    assert_eq!(list.revision, last);
    server.stop().await;
}

/// A client watching health (as gRPC client-side health checking does)
/// must not hold the drain up until --shutdown-grace: streams are ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_health_watch_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Launch::new(dir.path(), "healthwatch.log").args(["--shutdown-grace", "8s"]).start();
    let mut health = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(PROMPT, health.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let signalled = Instant::now();
    server.sigterm();
    let update = tokio::time::timeout(PROMPT, health.message()).await.expect("health update");
    assert!(matches!(&update, Ok(Some(u)) if u.status == ServingStatus::NotServing as i32), "{update:?}");
    // The client keeps watching, as real clients do.
    let exit = server.exited_within(Duration::from_secs(5)).await;
    let log = server.log();
    let waited = signalled.elapsed();
    drop(health);
    let exit = exit.unwrap_or_else(|| {
        panic!(
            "still running {waited:?} after SIGTERM with only a health watch open (--shutdown-grace 8s); log:\n{log}"
        )
    });
    assert!(exit.success(), "{exit}; log:\n{log}");
}

/// A watch whose client never reads keeps the drain waiting (here up to
/// --shutdown-grace 30s); new connections are refused meanwhile; a second
/// SIGTERM ends it at once, still with exit 0 and storage flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_cuts_the_drain_short() {
    let dir = tempfile::tempdir().unwrap();
    let launch =
        Launch::new(dir.path(), "force.log").args(["--shutdown-grace", "30s", "--max-ids-per-request", "1000"]);
    let mut server = launch.clone().start();
    let mut gc = server.group_client("alice").await;
    // A snapshot of ~120 KB, far more than the reader's 64 KiB window.
    let ids = c2c_ids(&"p".repeat(110), 1000);
    create_owned(&mut gc, "Big", ids, None).await.expect("big group");
    let lazy = endpoint(&format!("http://{}", server.addr()))
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .unwrap();
    let mut lazy_client = client_on(lazy, &server.bearer("alice"));
    let request = WatchGroupEventsRequest { send_snapshot: true, ..Default::default() };
    let _never_read = lazy_client.watch_group_events(request).await.expect("watch opened").into_inner();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let first_signal = Instant::now();
    server.sigterm();
    server.wait_for_log("shutting down").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(server.child.try_wait().is_none(), "the drain did not wait for the unread stream; log:\n{}", server.log());
    let refused = TcpStream::connect_timeout(&server.addr(), Duration::from_secs(2));
    assert!(refused.is_err(), "a new connection was accepted while shutting down");

    server.sigterm();
    let exit = server.exited_within(Duration::from_secs(10)).await;
    let log = server.log();
    let exit = exit.unwrap_or_else(|| panic!("second SIGTERM did not end the drain; log:\n{log}"));
    assert!(exit.success(), "exit status {exit} after the second signal; log:\n{log}");
    assert!(first_signal.elapsed() < Duration::from_secs(10), "took {:?}", first_signal.elapsed());
    assert!(log.contains("second signal"), "{log}");
    assert!(log.contains("stopped"), "storage flush/stop line missing:\n{log}");

    let server = launch.again("force-restart.log").start();
    let mut gc = server.group_client("alice").await;
    let big = group(&mut gc, "Big").await.expect("the acknowledged group survives");
    assert_eq!(big.conversation_count, 1000);
    server.stop().await;
}

/// SIGTERM as soon as the port accepts connections (a pod stopped right
/// after it started) is still a graceful stop: exit 0 after "stopped", not
/// death by the signal's default action before storage is flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_up_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(dir.path(), "early.log");
    launch.wait_serving = false;
    let mut server = launch.start();
    // Not server.sigterm(), which waits until the handler is installed.
    signal(server.pid(), "TERM");
    let exit = server.exited_within(PROMPT).await.expect("exit after SIGTERM");
    let log = server.log();
    assert!(exit.success(), "SIGTERM right after start-up: exit status {exit} (expected 0); log:\n{log}");
    assert!(log.contains("stopped"), "{log}");
}
