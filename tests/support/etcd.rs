//! A real etcd cluster for integration tests: `n` members of the system's
//! `etcd` (Debian's etcd-server 3.4) as child processes on loopback, with the
//! faults the etcd backend must survive as plain signals: kill -9, SIGSTOP /
//! SIGCONT, and a restart on the same data directory.
//!
//! Part of the one harness (`support::etcd`). Every member is a child of the test
//! process and is SIGKILLed and reaped by its pid when the [`EtcdCluster`] is
//! dropped (also when the test panics); nothing is ever killed by name, so
//! tests running side by side, the cluster of `scripts/test.sh` and a
//! person's `scripts/cluster.sh` are never touched.
//!
//! Contract tests that should run against an already-running cluster read
//! its endpoints with [`shared_endpoints`].
//!
//! Limitation: a test process that is itself SIGKILLed (not a panic) cannot
//! run `Drop`, so its members outlive it; they are ordinary processes
//! that `kill` by pid ends, and their data is in a `convgroups-etcd-*` dir.
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The variable that names an already-running cluster (`host:port,...`);
/// `scripts/test.sh` sets it when it runs the contract tests on etcd.
pub const SHARED_ENDPOINTS_VAR: &str = "CONVGROUPS_TEST_ETCD_ENDPOINTS";

/// Where the members' data directories go (a directory, default `/dev/shm`
/// if there is one, else the system temp dir).
pub const DIR_VAR: &str = "CONVGROUPS_TEST_ETCD_DIR";

/// How long the cluster may take to become healthy, to elect a leader or to
/// answer a request. Generous: a member restarted after kill -9 replays its
/// WAL, and the machine these run on may have two cores that are busy
/// compiling.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a waiting loop looks again.
const POLL: Duration = Duration::from_millis(100);

/// Flags every member gets, besides its name, URLs and data directory.
///
/// * `--heartbeat-interval 100 --election-timeout 1000` (etcd's defaults):
///   etcd's tuning guide wants the election timeout at least ten heartbeats,
///   and both well above the worst delay a member may see. On loopback the
///   round trip is nothing, but on a loaded 2-core machine a member can go
///   unscheduled (or wait on an fsync) for several hundred milliseconds;
///   with 50/500 that causes spurious leader changes in tests that inject no
///   fault at all, and "leader changed" errors make those tests flaky. The
///   price is that a new leader takes 1-2 s after a kill instead of 0.5-1 s.
/// * `--max-txn-ops 8192 --max-request-bytes 33554432`: what one convgroups
///   mutation may need on the etcd backend (docs/cluster.md); the same as
///   `scripts/etcd.sh`, so that tests see the deployment's limits.
/// * `--logger zap --log-level warn`: the structured logger (3.4's default
///   `capnslog` is deprecated), and warnings as well as errors, because a
///   member's log tail is all there is to diagnose a cluster that did not
///   become healthy ("failed to reach the peer", "address already in use").
const MEMBER_FLAGS: &[&str] = &[
    "--heartbeat-interval",
    "100",
    "--election-timeout",
    "1000",
    "--max-txn-ops",
    "8192",
    "--max-request-bytes",
    "33554432",
    "--logger",
    "zap",
    "--log-level",
    "warn",
];

/// Ports that well-known loopback clusters of this repository use
/// (`scripts/cluster.sh` and the default of `scripts/test.sh`); never picked,
/// so that a test cluster cannot take them while those are down.
const RESERVED_PORTS: &[u16] =
    &[2379, 2380, 22379, 22380, 32379, 32380, 23790, 23791, 23792, 23793, 23794, 23795, 42379, 42380, 42381];

/// The endpoints of an already-running cluster from
/// `CONVGROUPS_TEST_ETCD_ENDPOINTS` (comma-separated `host:port`), if set and
/// not empty. Contract tests use it to run against the cluster that
/// `scripts/etcd.sh` started instead of starting their own.
pub fn shared_endpoints() -> Option<String> {
    let value = std::env::var(SHARED_ENDPOINTS_VAR).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// `None` while killed.
    child: Option<Child>,
    /// SIGSTOPped: the process and its sockets exist, but it answers nothing.
    stopped: bool,
}

impl Member {
    fn client_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Running and not stopped: the member can answer.
    fn answers(&self) -> bool {
        self.child.is_some() && !self.stopped
    }
}

/// A real etcd cluster of `n` members on loopback; see the module docs.
pub struct EtcdCluster {
    members: Vec<Member>,
    /// `m0=http://127.0.0.1:P0,...`, the same on every (re)start.
    initial_cluster: String,
    /// Unique per cluster, so that members of two test clusters can never
    /// join each other even if a port were reused.
    token: String,
    dir: TempDir,
}

/// Why a start failed.
enum StartError {
    /// A member could not bind one of its ports (taken between picking and
    /// binding): worth a retry on other ports.
    PortTaken(String),
    Other(String),
}

impl EtcdCluster {
    /// Starts `n` members (`m0` .. `m{n-1}`) as a new cluster and waits
    /// (up to [`DEADLINE`]) until every member reports healthy. Blocking; fine
    /// to call from a `#[test]` or before a runtime starts.
    ///
    /// Panics with the members' log tails if the cluster does not become
    /// healthy, or if `etcd` is not installed. A member that loses its port
    /// to another process between the pick and its bind makes the whole
    /// start retry on fresh ports (three attempts).
    pub fn start(n: usize) -> Self {
        assert!(n > 0, "an etcd cluster needs at least one member");
        let mut last = String::new();
        for _attempt in 0..3 {
            let cluster = Self::launch_new(n);
            match cluster.wait_healthy_until(Instant::now() + DEADLINE) {
                Ok(()) => return cluster,
                Err(StartError::PortTaken(why)) => last = why, // dropped: killed and reaped
                Err(StartError::Other(why)) => panic!("{why}"),
            }
        }
        panic!("etcd could not bind its ports in three attempts; last:\n{last}")
    }

    fn launch_new(n: usize) -> Self {
        let dir = scratch_dir();
        let ports = free_ports(2 * n);
        let token = format!("convgroups-test-{:016x}", rand::random::<u64>());
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: dir.path().join(format!("m{i}")),
                log_path: dir.path().join(format!("m{i}.log")),
                child: None,
                stopped: false,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self { members, initial_cluster, token, dir };
        for i in 0..n {
            cluster.launch(i, "new");
        }
        cluster
    }

    /// Spawns member `i`; `state` is `new` for the first start and
    /// `existing` for a restart on its data directory (etcd then ignores the
    /// initial cluster and reads its membership from the WAL).
    fn launch(&mut self, i: usize, state: &str) {
        let initial_cluster = self.initial_cluster.clone();
        let token = self.token.clone();
        let member = &mut self.members[i];
        assert!(member.child.is_none(), "member {i} is already running");
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let log = File::options().create(true).append(true).open(&member.log_path).expect("open the member's log");
        let log_err = log.try_clone().expect("clone the log handle");
        let mut command = Command::new("etcd");
        // etcd reads every flag from ETCD_<FLAG> too and refuses to start
        // when one is also given on the command line; a developer's
        // environment must not change or break the test cluster.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster, "--initial-cluster-state", state])
            .args(["--initial-cluster-token", &token])
            .args(MEMBER_FLAGS)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run etcd ({e}); install etcd 3.4+ (apt-get install etcd-server etcd-client)")
            });
        member.child = Some(child);
        member.stopped = false;
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `127.0.0.1:PORT` (no scheme) of every member's client URL, in member
    /// order, killed or stopped members included.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_endpoint).collect()
    }

    /// [`endpoints`](Self::endpoints) joined with commas, the form of
    /// `--etcd-endpoints` and of `CONVGROUPS_TEST_ETCD_ENDPOINTS`.
    pub fn endpoints_csv(&self) -> String {
        self.endpoints().join(",")
    }

    /// `127.0.0.1:PORT` of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].client_endpoint()
    }

    /// The pid of member `i`, if it runs (stopped counts as running).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Whether member `i` runs (it may be stopped).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Whether member `i` is SIGSTOPped.
    pub fn is_stopped(&self, i: usize) -> bool {
        self.members[i].stopped
    }

    /// The directory that holds every member's data directory and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits (up to [`DEADLINE`]) until every member that runs and is not
    /// stopped answers `GET /health` with `"health":"true"`, which in etcd
    /// 3.4 means it knows a leader, has no alarm and served a linearizable
    /// read through raft. Panics with the members' log tails otherwise, or
    /// at once if a member process has exited.
    pub fn wait_healthy(&self) {
        match self.wait_healthy_until(Instant::now() + DEADLINE) {
            Ok(()) => {}
            Err(StartError::PortTaken(why) | StartError::Other(why)) => panic!("{why}"),
        }
    }

    fn wait_healthy_until(&self, deadline: Instant) -> Result<(), StartError> {
        loop {
            if let Some((i, exited)) = self.exited_member() {
                let why = format!("etcd member m{i} exited ({exited}):\n{}", self.logs());
                let log = std::fs::read_to_string(&self.members[i].log_path).unwrap_or_default();
                return Err(if log.contains("address already in use") {
                    StartError::PortTaken(why)
                } else {
                    StartError::Other(why)
                });
            }
            let unhealthy: Vec<String> = self
                .members
                .iter()
                .filter(|m| m.answers())
                .filter(|m| !member_healthy(m.client_port))
                .map(|m| m.name.clone())
                .collect();
            if unhealthy.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(format!(
                    "etcd members {unhealthy:?} not healthy within {DEADLINE:?}:\n{}",
                    self.logs()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// A member whose process has ended although it was not killed here (a
    /// zombie child, seen in /proc without reaping it, so `&self` suffices).
    fn exited_member(&self) -> Option<(usize, String)> {
        self.members.iter().enumerate().find_map(|(i, m)| {
            let pid = m.child.as_ref()?.id();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The state follows the command name in parentheses.
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
            (state == "Z" || state == "X").then(|| (i, format!("pid {pid}")))
        })
    }

    /// The last lines of every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log_path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                format!("--- {} ({})\n{}", m.name, m.log_path.display(), tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The index of the current leader, waiting (up to [`DEADLINE`]) for
    /// one. A leader counts only when a majority of all members names it and
    /// it names itself: a member that was just resumed from SIGSTOP, or cut
    /// off, may still believe in an old leader for a moment.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + DEADLINE;
        let quorum = self.members.len() / 2 + 1;
        loop {
            // member index -> (its id, the leader id it reports)
            let mut views: HashMap<usize, (u64, u64)> = HashMap::new();
            for (i, member) in self.members.iter().enumerate().filter(|(_, m)| m.answers()) {
                let Ok(json) = self.etcdctl_on(&member.client_endpoint(), &["endpoint", "status", "-w", "json"]) else {
                    continue;
                };
                let status: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                let status = &status[0]["Status"];
                if let (Some(id), Some(leader)) = (status["header"]["member_id"].as_u64(), status["leader"].as_u64()) {
                    if leader != 0 {
                        views.insert(i, (id, leader));
                    }
                }
            }
            for (&i, &(id, leader)) in &views {
                let backers = views.values().filter(|(_, l)| *l == id).count();
                if leader == id && backers >= quorum {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no etcd leader within {DEADLINE:?} (views {views:?}):\n{}",
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs member `i` and reaps it. Does nothing if it is not running.
    /// A stopped member is killed too (SIGKILL needs no SIGCONT).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[i].stopped = false;
    }

    /// Starts killed member `i` again on its data directory and ports
    /// (`--initial-cluster-state existing`). Does not wait: call
    /// [`wait_healthy`](Self::wait_healthy) when the test needs it to serve.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} still runs: kill it before restarting it");
        self.launch(i, "existing");
    }

    /// SIGSTOPs member `i`: it keeps its sockets, so clients connect and
    /// then hear nothing, the way a hung or partitioned member behaves.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, "STOP");
        self.members[i].stopped = true;
    }

    /// SIGCONTs member `i` after [`stop`](Self::stop).
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "CONT");
        self.members[i].stopped = false;
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.pid(i).unwrap_or_else(|| panic!("member {i} is not running"));
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill(1)");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILLs every member (a power cut of the whole cluster).
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Restarts every member that is not running, then waits until all are
    /// healthy.
    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.launch(i, "existing");
            }
        }
        self.wait_healthy();
    }

    /// Runs `etcdctl` (API v3) against every member that answers, retrying
    /// until [`DEADLINE`] (a leader change makes a request fail for a
    /// moment); returns its stdout. Panics with the last error.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let endpoints = self.answering();
            let result = if endpoints.is_empty() {
                Err("no member answers".to_string())
            } else {
                self.etcdctl_on(&endpoints, args)
            };
            match result {
                Ok(out) => return out,
                Err(e) if Instant::now() >= deadline => {
                    panic!("etcdctl {args:?} kept failing for {DEADLINE:?}: {e}\n{}", self.logs())
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// One `etcdctl` run against member `i` alone, not retried: stdout, or
    /// stderr on failure. With `--consistency=s` a `get` shows what that
    /// member itself has applied (e.g. whether a restarted member caught up).
    pub fn etcdctl_at(&self, i: usize, args: &[&str]) -> Result<String, String> {
        self.etcdctl_on(&self.members[i].client_endpoint(), args)
    }

    /// One `etcdctl` run against `endpoints`: stdout, or stderr on failure.
    fn etcdctl_on(&self, endpoints: &str, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new("etcdctl");
        // As for etcd: ETCDCTL_ENDPOINTS and friends must not interfere.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCDCTL_") {
                command.env_remove(key);
            }
        }
        let output = command
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints, "--dial-timeout", "2s", "--command-timeout", "5s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run etcdctl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Endpoints of the members that answer, comma-separated.
    fn answering(&self) -> String {
        self.members.iter().filter(|m| m.answers()).map(Member::client_endpoint).collect::<Vec<_>>().join(",")
    }

    /// Writes `key` = `value` through etcdctl and returns the revision of
    /// the write. Retried on failure like [`etcdctl`](Self::etcdctl), so
    /// after a fault the value may have been written twice (same value,
    /// two revisions).
    pub fn put(&self, key: &str, value: &str) -> u64 {
        // `--` so that a key or value starting with '-' is not a flag.
        let json = self.etcdctl(&["put", "-w", "json", "--", key, value]);
        header_revision(&json)
    }

    /// The value of `key` (a linearizable read), or `None` if it is absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let json = self.etcdctl(&["get", "-w", "json", "--", key]);
        let response: serde_json::Value = serde_json::from_str(&json).expect("etcdctl get -w json");
        let encoded = response["kvs"][0]["value"].as_str()?;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
            .expect("etcdctl prints values in base64");
        Some(String::from_utf8(bytes).expect("a UTF-8 value"))
    }

    /// The cluster's current revision (the header of a linearizable read).
    pub fn revision(&self) -> u64 {
        header_revision(&self.etcdctl(&["get", "-w", "json", "--", "/convgroups-test/revision-probe"]))
    }

    /// Compacts etcd's history up to its current revision and waits for the
    /// compaction to be applied (`--physical`), the way
    /// `--auto-compaction-*` would on a schedule. Returns that revision;
    /// watches and reads from older revisions fail with "compacted" after.
    pub fn compact_to_latest(&self) -> u64 {
        let revision = self.revision();
        self.etcdctl(&["compact", &revision.to_string(), "--physical"]);
        revision
    }

    /// Member `i`'s Prometheus metrics (`GET /metrics` on its client port),
    /// e.g. `etcd_debugging_mvcc_watcher_total` to count open watches.
    pub fn metrics(&self, i: usize) -> String {
        let (status, body) =
            http_get(self.members[i].client_port, "/metrics").unwrap_or_else(|e| panic!("GET /metrics on m{i}: {e}"));
        assert_eq!(status, 200, "GET /metrics on m{i}");
        body
    }
}

impl Drop for EtcdCluster {
    /// SIGKILLs and reaps every member this cluster started (a SIGSTOPped
    /// one too), before the data directory is removed. On a panic the log
    /// tails go to stderr, which the test harness shows with the failure.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("etcd logs at the panic:\n{}", self.logs());
        }
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `header.revision` of etcdctl's JSON output.
fn header_revision(json: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("etcdctl JSON ({e}): {json}"));
    value["header"]["revision"].as_u64().unwrap_or_else(|| panic!("no header.revision in {json}"))
}

/// Whether the member on `port` answers `GET /health` with health true.
fn member_healthy(port: u16) -> bool {
    match http_get(port, "/health") {
        Ok((200, body)) => {
            serde_json::from_str::<serde_json::Value>(&body).map(|v| v["health"] == "true").unwrap_or(false)
        }
        _ => false,
    }
}

/// A bounded HTTP/1.0 GET on 127.0.0.1:`port` (the client port serves HTTP
/// next to gRPC): status and body. No HTTP crate is needed for this.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no end of the HTTP header")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    Ok((status, body.to_string()))
}

/// A fresh directory for one cluster: under `CONVGROUPS_TEST_ETCD_DIR` if
/// set, else on tmpfs (`/dev/shm`) if there is one, else in the temp dir.
/// tmpfs because etcd fsyncs every write and these tests are about
/// behaviour, not disks; a kill -9 keeps what reached the page cache, so
/// durability across a killed process is still real. Each member takes
/// about 65 MB there (its preallocated WAL segment).
fn scratch_dir() -> TempDir {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("convgroups-etcd-");
        b
    };
    if let Some(parent) = std::env::var_os(DIR_VAR) {
        return builder().tempdir_in(&parent).unwrap_or_else(|e| panic!("temp dir in {parent:?} ({DIR_VAR}): {e}"));
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = builder().tempdir_in(shm) {
            return dir;
        }
    }
    builder().tempdir().expect("a temp dir")
}

/// `count` distinct free loopback ports.
///
/// They are picked below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), not with a bind to port 0:
/// a killed member's ports must stay free until it restarts, and an
/// ephemeral port can be handed to any outgoing connection meanwhile (every
/// etcdctl run and gRPC client makes some), which would make the restart
/// fail. Each port is checked with a bind, and every listener is held until
/// all are picked so that no port is picked twice. Falls back to port 0
/// when the range leaves too little room below it.
fn free_ports(count: usize) -> Vec<u16> {
    const LOWEST: u16 = 15000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(0);
    let mut held: Vec<TcpListener> = Vec::new();
    let mut picked: Vec<u16> = Vec::new();
    if ephemeral_low > LOWEST + 1000 {
        let mut tries = 0;
        while held.len() < count && tries < 10_000 {
            tries += 1;
            let port = rand::random_range(LOWEST..ephemeral_low);
            if RESERVED_PORTS.contains(&port) || picked.contains(&port) {
                continue;
            }
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(listener);
                picked.push(port);
            }
        }
    }
    while held.len() < count {
        held.push(TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"));
    }
    held.iter().map(|l| l.local_addr().expect("local address").port()).collect()
}
