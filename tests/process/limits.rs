//! Server limits: request size, load shedding, streams per connection,
//! keepalive.
//!
//! Not covered: `--unary-timeout` (no way to make a handler reliably slower
//! than a deadline from outside the process).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use convgroups::pb::*;
use prost::Message;
use tonic::Code;

use crate::support::client::*;
use crate::support::inproc::*;
use crate::support::process::*;
use crate::support::watch::{read_to_bookmark, watch_from};
use crate::support::PROMPT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_requests_get_resource_exhausted_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "oversize.log").args(["--max-request-bytes", "1024"]).start();
    let mut gc = server.group_client("alice").await;
    let ids = c2c_ids("a-rather-long-peer-id-to-fill-the-request-", 40);
    let size = CreateConversationGroupRequest {
        group_name: "Big".into(),
        conversation_ids: ids.clone(),
        expected_revision: None,
        sort_mode: None,
    }
    .encoded_len();
    assert!(size > 1024);
    let status = expect_err(create_owned(&mut gc, "Big", ids, None).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("1024"), "the message should name the limit: {:?}", status.message());
    assert!(
        status.message().contains(&size.to_string()),
        "the message should name the size {size}: {:?}",
        status.message()
    );

    // Same connection, a request under the limit.
    create(&mut gc, "Small", &["C2Cx"]).await.expect("small request after an oversize one");
    assert_eq!(group_names(&mut gc).await, ["Small"]);
    server.stop().await;
}

/// --max-in-flight 1 under a burst: every call either succeeds or is shed
/// at once with RESOURCE_EXHAUSTED / OVERLOADED; the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_beyond_max_in_flight_is_shed_with_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "shed.log").args(["--max-in-flight", "1"]).start();
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let mut gc = client_on(channel.clone(), &server.bearer(&format!("user{i}")));
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                create(&mut gc, "G", &["C2Cx"]).await.map(|_| ())
            } else {
                gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await.map(|_| ())
            }
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => ok += 1,
            Err(status) => {
                let info = assert_status(&status, Code::ResourceExhausted, "OVERLOADED", None);
                assert_eq!(info.metadata.get("max_in_flight").map(String::as_str), Some("1"));
                assert!(status.message().contains("max_in_flight"), "{status:?}");
                shed += 1;
            }
        }
    }
    eprintln!("max-in-flight 1: {ok} ok, {shed} shed");
    assert!(ok >= 1, "at least one call gets through");
    let mut gc = server.group_client("after").await;
    create(&mut gc, "After", &["C2Cx"]).await.expect("serving after the burst");
    server.stop().await;
}

/// --http2-max-concurrent-streams 2: a third call on a connection holding
/// two open watch streams waits; another connection is unaffected; closing
/// one stream lets the call through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_per_connection_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "streams.log").args(["--http2-max-concurrent-streams", "2"]).start();
    let channel = server.channel().await;
    let mut gc = client_on(channel.clone(), &server.bearer("alice"));
    let mut first = gc.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    read_to_bookmark(&mut first).await;
    let mut second = gc.watch_group_events(watch_from(0)).await.unwrap().into_inner();
    read_to_bookmark(&mut second).await;

    let mut third = gc.clone();
    let mut blocked = tokio::spawn(async move { group_list(&mut third).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut blocked).await.is_err(),
        "a third stream ran on a connection limited to 2"
    );
    let mut other = server.group_client("alice").await;
    group_list(&mut other).await;
    drop(first);
    tokio::time::timeout(PROMPT, blocked).await.expect("call runs once a stream closes").unwrap();
    drop(second);
    server.stop().await;
}

/// HTTP/2 keepalive: a peer that completes the handshake but never answers
/// PINGs is pinged and then disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_keepalive_drops_peers_that_do_not_answer_pings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "keepalive.log")
        .args(["--http2-keepalive-interval", "300ms", "--http2-keepalive-timeout", "300ms"])
        .start();
    let addr = server.addr();
    let (pinged, closed) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // empty SETTINGS
        let started = Instant::now();
        let (mut buf, mut pinged, mut closed) = (Vec::new(), None, None);
        while started.elapsed() < PROMPT && closed.is_none() {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => closed = Some(started.elapsed()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => closed = Some(started.elapsed()),
            }
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                if kind == 4 && flags & 1 == 0 {
                    let _ = s.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]); // SETTINGS ack
                }
                if kind == 6 && flags & 1 == 0 && pinged.is_none() {
                    pinged = Some(started.elapsed()); // never answered
                }
                buf.drain(..9 + len);
            }
        }
        (pinged, closed)
    })
    .await
    .unwrap();
    let pinged = pinged.expect("the server never sent a keepalive PING");
    let closed = closed.expect("the server kept a connection whose PINGs went unanswered");
    assert!(closed > pinged, "closed at {closed:?}, pinged at {pinged:?}");
    server.stop().await;
}
