//! Shared helpers of the reliability tests (tests/crash.rs,
//! tests/storage_faults.rs, tests/soak.rs): the real `convgroups` binary as a
//! child process (start, wait until it serves, SIGKILL, SIGTERM, RSS and CPU
//! from /proc), tokens minted by `convgroups token`, clients, a seeded RNG,
//! a reader that collects everything a user can observe and checks it for
//! internal consistency, watch-stream readers, and a replay of the event log
//! into group state.
//!
//! Include with `mod reliability_support;`. Self-contained: it does not use
//! tests/common (the in-process harness), because these tests need a server
//! they can kill.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::conversation_service_client::ConversationServiceClient;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::watch_group_events_response::Kind;
use convgroups::pb::*;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// The server binary cargo built for this test run (debug under `cargo
/// test`, release under `cargo test --release`).
pub const BIN: &str = env!("CARGO_BIN_EXE_convgroups");

/// How long a starting server may take to serve (debug build, busy CI).
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Per-call deadline of the clients, so a test never hangs on one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/// The seed of a randomised test: `$var` if set (decimal or 0x-hex), else
/// one derived from the clock. Printed, so a failure can be replayed.
pub fn seed_from_env(var: &str) -> u64 {
    let parsed = std::env::var(var).ok().and_then(|s| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    });
    let seed = parsed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        nanos.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    eprintln!("seed: {var}={seed} (set {var} to replay this run)");
    seed
}

#[path = "../seeded/mod.rs"]
mod seeded;
// Not every test binary that includes this module draws random numbers.
#[allow(unused_imports)]
pub use seeded::Rng;

// ---------------------------------------------------------------------------
// Environment knobs
// ---------------------------------------------------------------------------

/// `$var` parsed as a number, else `default`.
pub fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------
// The server as a child process
// ---------------------------------------------------------------------------

/// A free loopback port (bound, then released; a small race we accept).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

/// A command for the binary with no `CONVGROUPS_*` or `RUST_LOG` from the
/// test's environment, so only the flags given here apply.
fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("CONVGROUPS_") || key == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// `convgroups token --user <user> [--admin] --data-dir <dir>`: a token
/// signed with the secret of that data directory (created if missing).
pub fn mint_token(data_dir: &Path, user: &str, admin: bool) -> String {
    let mut cmd = command();
    cmd.args(["token", "--user", user, "--ttl", "48h", "--create-secret", "--data-dir"]).arg(data_dir);
    if admin {
        cmd.arg("--admin");
    }
    let out = cmd.output().expect("run convgroups token");
    assert!(
        out.status.success(),
        "convgroups token --user {user} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("token is UTF-8").trim().to_string()
}

/// A `convgroups serve` child. Killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pid: u32,
}

impl ServerProcess {
    /// Starts `serve` on a free loopback port over `data_dir` (stderr to
    /// `log_path`) and waits until health reports SERVING; panics with the
    /// end of the log if it does not.
    pub async fn start(data_dir: &Path, log_path: &Path, extra: &[&str]) -> Self {
        match Self::try_start(data_dir, log_path, extra).await {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Like [`Self::start`], with failure (exit or no SERVING in time) as an
    /// error that includes the end of the log.
    pub async fn try_start(data_dir: &Path, log_path: &Path, extra: &[&str]) -> Result<Self, String> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = File::create(log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let mut cmd = command();
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            // Overridable by a --log-level flag in `extra`.
            .env("CONVGROUPS_LOG_LEVEL", "info")
            .env("NO_COLOR", "1")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let metrics_addr = extra
            .iter()
            .position(|a| *a == "--metrics-listen")
            .and_then(|i| extra.get(i + 1))
            .map(|a| a.parse().expect("--metrics-listen address"));
        let child = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
        let pid = child.id();
        let mut server = Self {
            child: Some(child),
            addr,
            metrics_addr,
            data_dir: data_dir.to_path_buf(),
            log_path: log_path.to_path_buf(),
            pid,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = server.exited() {
                return Err(format!(
                    "convgroups serve exited with {status} before serving; log:\n{}",
                    server.log_tail(40)
                ));
            }
            if server.serving().await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "convgroups serve did not report SERVING within {START_DEADLINE:?}; log:\n{}",
                    server.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// True if the standard health service answers SERVING.
    /// The overall health status, if health answers at all.
    pub async fn health_status(&self) -> Option<i32> {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr)).ok()?;
        let channel = endpoint.connect_timeout(Duration::from_secs(1)).connect().await.ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let answer = tokio::time::timeout(Duration::from_secs(2), health.check(request)).await.ok()?.ok()?;
        Some(answer.get_ref().status)
    }

    pub async fn serving(&self) -> bool {
        let Ok(endpoint) = Endpoint::from_shared(format!("http://{}", self.addr)) else { return false };
        let Ok(channel) = endpoint.connect_timeout(Duration::from_secs(1)).connect().await else { return false };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let answer = tokio::time::timeout(Duration::from_secs(2), health.check(request)).await;
        matches!(answer, Ok(Ok(r)) if r.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL (what `kill -9` sends; `Child::kill` is SIGKILL on Unix) and
    /// reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown) and wait up to `timeout` for the exit;
    /// None if it did not exit in time (it is then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill9();
        None
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// A channel to the server (one HTTP/2 connection).
    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
    }

    /// A channel that connects on first use (never fails to build).
    pub fn lazy_channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .connect_lazy()
    }

    /// Resident set size in KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `lines` lines of a log file, without terminal colour codes.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    strip_ansi(&all[all.len().saturating_sub(lines)..].join("\n"))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process (clock ticks assumed 100 Hz, as on Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// One Prometheus gauge or counter value (no labels) from
/// `http://<addr>/metrics`, over a plain HTTP/1.0 request.
pub fn scrape_metric(addr: SocketAddr, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == name).then(|| parts.next()?.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self(MetadataValue::try_from(format!("Bearer {token}")).expect("ASCII token"))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type GroupClient = ConversationGroupServiceClient<InterceptedService<Channel, Bearer>>;
pub type ConvClient = ConversationServiceClient<InterceptedService<Channel, Bearer>>;

pub fn group_client(channel: Channel, token: &str) -> GroupClient {
    ConversationGroupServiceClient::with_interceptor(channel, Bearer::new(token))
}

pub fn conv_client(channel: Channel, token: &str) -> ConvClient {
    ConversationServiceClient::with_interceptor(channel, Bearer::new(token))
}

/// True if `status` was produced by the convgroups server itself (it
/// carries the service's ErrorInfo), not by the transport.
pub fn from_server(status: &Status) -> bool {
    use tonic_types::StatusExt;
    status.get_details_error_info().is_some_and(|info| info.domain == "convgroups")
}

/// The ErrorInfo reason of a status ("" when there is none).
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Observed state
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// `conversation_count` of GetConversationGroupList.
    pub count: u32,
    /// `unread_count` of GetConversationGroupList.
    pub unread: u64,
    /// GetConversationList with `filter.group_name` = name.
    pub members: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvView {
    pub registered: bool,
    pub unread: u32,
    /// `conversation_group_list`.
    pub groups: Vec<String>,
}

/// Everything the read RPCs say about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub revision: u64,
    /// Display order.
    pub groups: Vec<GroupView>,
    /// The unfiltered listing.
    pub convs: BTreeMap<String, ConvView>,
}

impl UserView {
    /// (name, members) in display order: what a replay of the log rebuilds.
    pub fn membership(&self) -> Vec<(String, BTreeSet<String>)> {
        self.groups.iter().map(|g| (g.name.clone(), g.members.clone())).collect()
    }
}

/// Every conversation matching `filter`, over all pages.
pub async fn list_all(gc: &mut GroupClient, filter: Option<ConversationFilter>) -> Result<Vec<Conversation>, Status> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = gc
            .get_conversation_list(GetConversationListRequest {
                filter: filter.clone(),
                page_size: 1000,
                page_token: token.clone(),
                min_revision: None,
            })
            .await?
            .into_inner();
        all.extend(page.conversations);
        if page.is_finished {
            return Ok(all);
        }
        token = page.next_page_token;
    }
}

/// Reads the user's groups, every group's members and every conversation,
/// and checks that they agree with each other: names and counts of the
/// group list, members per group, `conversation_group_list` of every
/// conversation, unread sums, the no-group filter. Returns the view and the
/// disagreements found (empty when consistent). The caller must make sure no
/// mutation of this user runs meanwhile.
pub async fn read_user(gc: &mut GroupClient) -> Result<(UserView, Vec<String>), Status> {
    let mut problems = Vec::new();
    let list = gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await?.into_inner();
    let listed_names: Vec<String> = list.groups.iter().map(|g| g.name.clone()).collect();
    if list.group_names != listed_names {
        problems.push(format!("group_names {:?} != names of groups[] {listed_names:?}", list.group_names));
    }
    let all = list_all(gc, None).await?;
    let mut convs = BTreeMap::new();
    for c in &all {
        let view =
            ConvView { registered: c.registered, unread: c.unread_count, groups: c.conversation_group_list.clone() };
        if convs.insert(c.conversation_id.clone(), view).is_some() {
            problems.push(format!("{} listed twice", c.conversation_id));
        }
    }
    let counted = |c: &Conversation| {
        if c.recv_opt == RecvOpt::Receive as i32 {
            u64::from(c.unread_count)
        } else {
            0
        }
    };
    let mut groups = Vec::new();
    for g in &list.groups {
        let filter = ConversationFilter { group_name: Some(g.name.clone()), ..Default::default() };
        let listed = list_all(gc, Some(filter)).await?;
        let members: BTreeSet<String> = listed.iter().map(|c| c.conversation_id.clone()).collect();
        if members.len() != listed.len() {
            problems.push(format!("group {:?}: a member is listed twice", g.name));
        }
        if members.len() != g.conversation_count as usize {
            problems.push(format!(
                "group {:?}: conversation_count {} but {} members listed",
                g.name,
                g.conversation_count,
                members.len()
            ));
        }
        let unread: u64 = listed.iter().map(counted).sum();
        if unread != g.unread_count {
            problems.push(format!("group {:?}: unread_count {} but members sum to {unread}", g.name, g.unread_count));
        }
        for id in &members {
            if !convs.contains_key(id) {
                problems.push(format!("group {:?}: member {id} is missing from the unfiltered listing", g.name));
            }
        }
        groups.push(GroupView { name: g.name.clone(), count: g.conversation_count, unread: g.unread_count, members });
    }
    for (id, conv) in &convs {
        let expected: Vec<String> = groups.iter().filter(|g| g.members.contains(id)).map(|g| g.name.clone()).collect();
        if conv.groups != expected {
            problems.push(format!(
                "{id}: conversation_group_list {:?}, but the group listings put it in {expected:?}",
                conv.groups
            ));
        }
        if !conv.registered && conv.groups.is_empty() {
            problems.push(format!("{id}: listed although neither registered nor grouped"));
        }
    }
    let ungrouped_filter = ConversationFilter { group_name: Some(String::new()), ..Default::default() };
    let ungrouped: BTreeSet<String> =
        list_all(gc, Some(ungrouped_filter)).await?.into_iter().map(|c| c.conversation_id).collect();
    let expected: BTreeSet<String> =
        convs.iter().filter(|(_, c)| c.groups.is_empty()).map(|(id, _)| id.clone()).collect();
    if ungrouped != expected {
        problems.push(format!("filter group_name \"\" lists {ungrouped:?}, expected {expected:?}"));
    }
    Ok((UserView { revision: list.revision, groups, convs }, problems))
}

// ---------------------------------------------------------------------------
// Watching and replaying
// ---------------------------------------------------------------------------

pub fn watch_request(start_revision: u64, all_users: bool) -> WatchGroupEventsRequest {
    WatchGroupEventsRequest { start_revision, all_users, ..Default::default() }
}

/// The stored log from `start` on, as a fresh watcher replays it: every
/// batch before the first bookmark. Bounded by `CALL_TIMEOUT`.
pub async fn read_log(gc: &mut GroupClient, start: u64, all_users: bool) -> Result<(Vec<EventBatch>, u64), Status> {
    let work = async {
        let mut stream = gc.watch_group_events(watch_request(start, all_users)).await?.into_inner();
        let mut batches = Vec::new();
        loop {
            match stream.message().await? {
                Some(WatchGroupEventsResponse { kind: Some(Kind::Events(batch)) }) => batches.push(batch),
                Some(WatchGroupEventsResponse { kind: Some(Kind::Bookmark(b)) }) => return Ok((batches, b.revision)),
                Some(other) => return Err(Status::internal(format!("unexpected watch message {other:?}"))),
                None => return Err(Status::internal("watch stream ended before its first bookmark")),
            }
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("reading the log took too long")))
}

/// The snapshot a `send_snapshot` watcher starts with.
pub async fn read_snapshot(gc: &mut GroupClient) -> Result<Snapshot, Status> {
    let request = WatchGroupEventsRequest { send_snapshot: true, ..Default::default() };
    let work = async {
        let mut stream = gc.watch_group_events(request).await?.into_inner();
        match stream.message().await? {
            Some(WatchGroupEventsResponse { kind: Some(Kind::Snapshot(s)) }) => Ok(s),
            other => Err(Status::internal(format!("expected a snapshot first, got {other:?}"))),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, work).await.unwrap_or_else(|_| Err(Status::deadline_exceeded("snapshot")))
}

/// Groups of one user rebuilt from events: (name, members) in order.
pub type Groups = Vec<(String, BTreeSet<String>)>;

/// Replays batches (of one user or of all users) into each user's groups,
/// checking each batch on the way: events carry the batch's revision and
/// user, revisions increase, and `group_names` is the list after the batch.
/// Conversations leave groups only through ConversationsDeletedFromGroup
/// (that is what the contract's events say), so a missing removal event
/// shows up as a difference from the stored state.
pub fn replay(batches: &[EventBatch]) -> Result<BTreeMap<String, Groups>, String> {
    let mut users: BTreeMap<String, Groups> = BTreeMap::new();
    let mut last = 0;
    for batch in batches {
        if batch.revision <= last {
            return Err(format!("batch {} after batch {last}: revisions must increase", batch.revision));
        }
        last = batch.revision;
        let Some(first) = batch.events.first() else { return Err(format!("batch {} has no events", batch.revision)) };
        let user = first.user_id.clone();
        let groups = users.entry(user.clone()).or_default();
        for event in &batch.events {
            if event.revision != batch.revision || event.user_id != user {
                return Err(format!(
                    "batch {} of {user}: event with revision {} of user {}",
                    batch.revision, event.revision, event.user_id
                ));
            }
            let index = |groups: &Groups, name: &str| groups.iter().position(|(n, _)| n == name);
            let missing = |name: &str| format!("batch {}: event about unknown group {name:?}", batch.revision);
            match event.kind.as_ref() {
                Some(Ev::GroupCreated(e)) => {
                    if index(groups, &e.group_name).is_some() {
                        return Err(format!("batch {}: created {:?} twice", batch.revision, e.group_name));
                    }
                    groups.push((e.group_name.clone(), e.conversation_ids.iter().cloned().collect()));
                }
                Some(Ev::GroupDeleted(e)) => {
                    let i = index(groups, &e.group_name).ok_or_else(|| missing(&e.group_name))?;
                    groups.remove(i);
                }
                Some(Ev::GroupRenamed(e)) => {
                    let i = index(groups, &e.old_name).ok_or_else(|| missing(&e.old_name))?;
                    groups[i].0 = e.new_name.clone();
                }
                Some(Ev::GroupsReordered(e)) => {
                    let mut reordered = Vec::new();
                    for name in &e.group_names {
                        let i = index(groups, name).ok_or_else(|| missing(name))?;
                        reordered.push(groups[i].clone());
                    }
                    *groups = reordered;
                }
                Some(Ev::ConversationsAddedToGroup(e)) => {
                    let i = index(groups, &e.group_name).ok_or_else(|| missing(&e.group_name))?;
                    groups[i].1.extend(e.conversation_ids.iter().cloned());
                }
                Some(Ev::ConversationsDeletedFromGroup(e)) => {
                    let i = index(groups, &e.group_name).ok_or_else(|| missing(&e.group_name))?;
                    for id in &e.conversation_ids {
                        groups[i].1.remove(id);
                    }
                }
                Some(Ev::ConversationsChanged(_)) | Some(Ev::ConversationsDeleted(_)) => {}
                None => return Err(format!("batch {}: event without a kind", batch.revision)),
            }
        }
        let names: Vec<String> = groups.iter().map(|(n, _)| n.clone()).collect();
        for event in &batch.events {
            if event.group_names != names {
                return Err(format!(
                    "batch {} of {user}: group_names {:?}, but after the batch the groups are {names:?}",
                    batch.revision, event.group_names
                ));
            }
        }
    }
    Ok(users)
}

/// What a long-lived watcher has received so far; it survives the stream
/// (and the server), so the watcher can resume from `seen + 1`.
#[derive(Debug, Default)]
pub struct Followed {
    pub batches: Vec<EventBatch>,
    /// Everything up to this revision was received (batch or bookmark).
    pub seen: u64,
    /// Order violations seen on the stream.
    pub problems: Vec<String>,
    /// How the last stream ended.
    pub ended: Option<String>,
    /// Streams opened.
    pub streams: u64,
}

pub type Follow = Arc<Mutex<Followed>>;

/// Opens a watch from `seen + 1` (so the first stream replays from 1) and
/// records every message into `follow` until the stream ends. Returns the
/// status the stream ended with (Ok if it ended cleanly).
pub async fn follow(mut gc: GroupClient, follow: Follow, all_users: bool) -> Result<(), Status> {
    let start = {
        let mut f = follow.lock().unwrap();
        f.streams += 1;
        f.seen + 1
    };
    let result = async {
        let mut stream = gc.watch_group_events(watch_request(start, all_users)).await?.into_inner();
        while let Some(message) = stream.message().await? {
            let mut f = follow.lock().unwrap();
            match message.kind {
                Some(Kind::Events(batch)) => {
                    if batch.revision <= f.seen {
                        let problem = format!("batch {} after revision {} was covered", batch.revision, f.seen);
                        f.problems.push(problem);
                    }
                    f.seen = f.seen.max(batch.revision);
                    f.batches.push(batch);
                }
                Some(Kind::Bookmark(b)) => {
                    if b.revision < f.seen {
                        let problem = format!("bookmark {} after revision {} was covered", b.revision, f.seen);
                        f.problems.push(problem);
                    }
                    f.seen = f.seen.max(b.revision);
                }
                other => f.problems.push(format!("unexpected message {other:?}")),
            }
        }
        Ok::<(), Status>(())
    }
    .await;
    follow.lock().unwrap().ended = Some(match &result {
        Ok(()) => "ended".to_string(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    });
    result
}

/// Waits (bounded) until `follow` has seen `revision`.
pub async fn wait_seen(follow: &Follow, revision: u64, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let seen = follow.lock().unwrap().seen;
        if seen >= revision {
            return Ok(());
        }
        if Instant::now() > deadline {
            let f = follow.lock().unwrap();
            return Err(format!(
                "watcher saw up to revision {seen} within {within:?}, expected {revision}; its stream: {:?}",
                f.ended
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Codes a call may end with when the server dies under it (transport,
/// not the service).
pub fn is_transport_failure(status: &Status) -> bool {
    !from_server(status)
        && matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal)
}
