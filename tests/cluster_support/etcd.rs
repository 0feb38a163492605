//! A real etcd cluster for tests: `n` members of Debian's `etcd` on free
//! loopback ports, data on tmpfs when there is one, each member a child
//! process killed and reaped by pid (never by name) when the cluster is
//! dropped. Faults are signals: kill -9, SIGSTOP/SIGCONT, restart on the
//! same data directory.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a cluster may take to become healthy (a restart after kill -9
/// replays its WAL; two busy cores).
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// etcd's limits raised to what one convgroups mutation may need (see
/// docs/cluster.md), and timings for a loaded 2-core machine: heartbeats
/// every 100 ms and elections after 1 s keep leader changes quick without
/// spurious elections when the machine is busy.
const MEMBER_FLAGS: &[&str] = &[
    "--max-txn-ops",
    "8192",
    "--max-request-bytes",
    "33554432",
    "--heartbeat-interval",
    "100",
    "--election-timeout",
    "1000",
    "--logger",
    "zap",
    "--log-level",
    "warn",
];

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
    /// SIGSTOPped: running, but answers nothing.
    stopped: bool,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A temporary directory on tmpfs if the machine has one: etcd fsyncs every
/// write, and the tests are about behaviour, not disks.
fn scratch_dir() -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("convgroups-etcd-").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one is healthy.
    pub fn start(n: usize) -> Self {
        let dir = scratch_dir();
        let token = format!("convgroups-test-{:08x}", rand::random::<u32>());
        let mut members = Vec::new();
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}")),
                child: None,
                stopped: false,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self { members, initial_cluster, dir };
        for i in 0..n {
            cluster.launch(i, "new", &token);
        }
        cluster.wait_healthy();
        cluster
    }

    fn launch(&mut self, i: usize, state: &str, token: &str) {
        let initial_cluster = self.initial_cluster.clone();
        let log_path = self.dir.path().join(format!("m{i}.log"));
        let member = &mut self.members[i];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let log = File::options().create(true).append(true).open(&log_path).expect("member log");
        let child = Command::new("etcd")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster, "--initial-cluster-state", state])
            .args(["--initial-cluster-token", token])
            .args(MEMBER_FLAGS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd (is Debian's etcd-server installed? scripts/test.sh installs it)");
        member.child = Some(child);
    }

    /// `host:port` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect()
    }

    pub fn endpoints_csv(&self) -> String {
        self.endpoints().join(",")
    }

    fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Option<String> {
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints, "--command-timeout", "3s", "--dial-timeout", "2s"])
            .args(args)
            .output()
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Waits (bounded) until every member that answers reports healthy.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            if self.etcdctl(&self.answering(), &["endpoint", "health"]).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy within {HEALTHY_WITHIN:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tail of every member's log, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("m{i}.log"))).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(10).collect();
                format!("--- m{i}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The index of the current leader (waits, bounded, for one).
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            for (i, member) in self.members.iter().enumerate() {
                if member.child.is_none() || member.stopped {
                    continue;
                }
                let endpoint = format!("127.0.0.1:{}", member.client_port);
                if let Some(json) = self.etcdctl(&endpoint, &["endpoint", "status", "-w", "json"]) {
                    let status: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                    let first = &status[0]["Status"];
                    if first["leader"].as_u64().is_some() && first["leader"] == first["header"]["member_id"] {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no etcd leader within {HEALTHY_WITHIN:?}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.members[i].child.as_ref().expect("member is running").id();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill(1)");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// kill -9 of member `i` (waits for it to be gone).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[i].stopped = false;
    }

    /// Starts a killed member again on its data directory.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is still running");
        self.launch(i, "existing", "unused-for-existing-members");
    }

    /// SIGSTOP: the member keeps its sockets open and answers nothing.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, "STOP");
        self.members[i].stopped = true;
    }

    /// SIGCONT after [`stop`](Self::stop).
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "CONT");
        self.members[i].stopped = false;
    }

    /// Endpoints of the members that answer (running, not stopped).
    fn answering(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.child.is_some() && !m.stopped)
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            self.restart(i);
        }
        self.wait_healthy();
    }

    /// Compacts etcd's history up to its current revision (what
    /// `--auto-compaction-*` does on a schedule).
    pub fn compact_to_latest(&self) {
        let endpoints = self.answering();
        let json = self.etcdctl(&endpoints, &["endpoint", "status", "-w", "json"]).expect("endpoint status");
        let status: serde_json::Value = serde_json::from_str(&json).expect("status json");
        let revision = status
            .as_array()
            .expect("status array")
            .iter()
            .filter_map(|s| s["Status"]["header"]["revision"].as_u64())
            .max()
            .expect("a revision");
        self.etcdctl(&endpoints, &["compact", &revision.to_string(), "--physical"])
            .unwrap_or_else(|| panic!("etcdctl compact {revision} failed"));
    }

    /// Watches open on every running member together, from etcd's own
    /// metrics (`etcd_debugging_mvcc_watcher_total`).
    pub fn watchers_total(&self) -> u64 {
        let mut total = 0.0;
        for member in self.members.iter().filter(|m| m.child.is_some() && !m.stopped) {
            let (status, body) = crate::ops_support::http_get(
                format!("127.0.0.1:{}", member.client_port).parse().expect("address"),
                "/metrics",
            );
            assert_eq!(status, 200, "etcd /metrics");
            total += crate::ops_support::sample(&body, "etcd_debugging_mvcc_watcher_total", &[])
                .expect("etcd_debugging_mvcc_watcher_total in etcd's metrics");
        }
        total as u64
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                // SIGKILL ends a stopped (SIGSTOP) member too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
