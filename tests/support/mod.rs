//! The one test harness of convgroups. Every test binary includes it
//! (`mod support;`, or `#[path = "../support/mod.rs"] mod support;` from a
//! grouped binary's `main.rs`) and uses only part of it:
//!
//! * [`inproc`]: a real server in the test process on 127.0.0.1:0 over a
//!   temporary data directory ([`inproc::TestServer`]), tokens, request
//!   helpers and error assertions.
//! * [`process`]: the real binary as a child process: the scrubbed
//!   [`process::command`], free ports, token minting, and one
//!   `convgroups serve` child ([`process::Server`]: start, SIGTERM, kill -9,
//!   killed on drop).
//! * [`client`]: the one client interceptor ([`client::Headers`]) and the
//!   client types.
//! * [`cli`]: the command-line client as a child (`Cli`, a running `watch`).
//! * [`watch`]: watch-stream readers with bounded waits, and the one event
//!   replayer ([`watch::Model`]) with the read-side view it is compared to.
//! * [`reliability`]: what the crash, storage-fault and soak runs observe:
//!   a consistency-checking read of a user's state and long-lived watchers.
//! * [`http`]: raw HTTP/1.1 (grpc-web, CORS, the metrics scrape),
//!   Prometheus lookups, and JSON log lines (serde_json).
//! * [`python`]: Python packages written by others (PyJWT,
//!   standardwebhooks), installed into .tools/ on first use.
//! * [`seeded`]: the seeded generator of the randomised tests.
//! * [`etcd`]: a real etcd cluster of child processes (kill -9, SIGSTOP,
//!   restart), or the endpoints of one already running.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod client;
pub mod etcd;
pub mod http;
pub mod inproc;
pub mod process;
pub mod python;
pub mod reliability;
pub mod seeded;
pub mod watch;

use std::time::Duration;

/// Upper bound for anything that should happen promptly (a call, a
/// message, a server start or stop, an exit after a signal). Generous:
/// debug builds on two busy cores.
pub const PROMPT: Duration = Duration::from_secs(30);
