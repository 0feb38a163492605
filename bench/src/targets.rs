//! The three servers under test and their clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::conversation_service_client::ConversationServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::etcd::kv_client::KvClient;
use crate::etcd::watch_client::WatchClient;
use crate::procs::{free_addr, start, Proc};

/// Adds the admin token and the acting user (convgroups) or nothing (anchor).
#[derive(Clone)]
pub struct Auth {
    bearer: Option<MetadataValue<Ascii>>,
    user: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(bearer) = &self.bearer {
            request.metadata_mut().insert("authorization", bearer.clone());
        }
        if let Some(user) = &self.user {
            request.metadata_mut().insert(convgroups::auth::USER_HEADER, user.clone());
        }
        Ok(request)
    }
}

pub type GroupClient = ConversationGroupServiceClient<InterceptedService<Channel, Auth>>;
pub type ConvClient = ConversationServiceClient<InterceptedService<Channel, Auth>>;

/// Connections to one server, shared round-robin by the load tasks.
#[derive(Clone)]
pub struct Pool {
    channels: Vec<Channel>,
    bearer: Option<MetadataValue<Ascii>>,
}

pub async fn connect(addr: SocketAddr, connections: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        channels.push(endpoint.connect().await.unwrap_or_else(|e| panic!("connect {addr}: {e}")));
    }
    channels
}

impl Pool {
    pub async fn new(addr: SocketAddr, connections: usize, token: Option<&str>) -> Self {
        let bearer = token.map(|t| format!("Bearer {t}").parse().expect("ASCII token"));
        Self { channels: connect(addr, connections).await, bearer }
    }

    /// Connections to several servers, interleaved (the first to each, then
    /// the second to each, ...), so that task or watcher i talks to server
    /// i % servers.
    pub async fn spread(addrs: &[SocketAddr], per_server: usize, token: Option<&str>) -> Self {
        let bearer = token.map(|t| format!("Bearer {t}").parse().expect("ASCII token"));
        let mut channels = Vec::new();
        for _ in 0..per_server {
            for addr in addrs {
                channels.extend(connect(*addr, 1).await);
            }
        }
        Self { channels, bearer }
    }

    fn auth(&self, user: Option<&str>) -> Auth {
        Auth { bearer: self.bearer.clone(), user: user.map(|u| u.parse().expect("ASCII user")) }
    }

    pub fn groups(&self, i: usize, user: Option<&str>) -> GroupClient {
        let channel = self.channels[i % self.channels.len()].clone();
        ConversationGroupServiceClient::with_interceptor(channel, self.auth(user))
    }

    pub fn convs(&self, i: usize, user: Option<&str>) -> ConvClient {
        let channel = self.channels[i % self.channels.len()].clone();
        ConversationServiceClient::with_interceptor(channel, self.auth(user))
    }
}

/// etcd connections.
#[derive(Clone)]
pub struct EtcdPool {
    channels: Vec<Channel>,
}

impl EtcdPool {
    pub async fn new(addr: SocketAddr, connections: usize) -> Self {
        Self { channels: connect(addr, connections).await }
    }

    pub fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channels[i % self.channels.len()].clone())
    }

    pub fn watch(&self, i: usize) -> WatchClient<Channel> {
        WatchClient::new(self.channels[i % self.channels.len()].clone())
    }
}

/// Where the binaries are and where servers keep their data.
pub struct Env {
    pub server_bin: PathBuf,
    pub bench_bin: PathBuf,
    pub etcd_bin: PathBuf,
    pub work: tempfile::TempDir,
}

impl Env {
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("data dir");
        dir
    }

    /// A fresh convgroups server and an admin token for it.
    pub fn convgroups(&self, tag: &str) -> (Proc, String) {
        let dir = self.dir(&format!("convgroups-{tag}"));
        let out = std::process::Command::new(&self.server_bin)
            .args(["token", "--user", "bench-admin", "--admin", "--ttl", "2h", "--create-secret", "--data-dir"])
            .arg(&dir)
            .output()
            .expect("convgroups token");
        assert!(out.status.success(), "convgroups token: {}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).expect("token").trim().to_string();
        let addr = free_addr();
        let args: Vec<String> = [
            "serve",
            "--listen",
            &addr.to_string(),
            "--data-dir",
            &dir.display().to_string(),
            "--log-level",
            "warn",
            // The benchmark measures speed, not the product limits.
            "--max-conversations-per-group",
            "100000000",
            "--max-watchers",
            "1000000",
            "--max-watchers-per-user",
            "1000000",
            "--max-in-flight",
            "1000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        (start("convgroups", &self.server_bin, &args, addr, &self.work.path().join(format!("{tag}.log"))), token)
    }

    /// A fresh empty tonic server (this binary, `anchor` mode).
    pub fn anchor(&self, tag: &str) -> Proc {
        let addr = free_addr();
        let args = vec!["anchor".to_string(), "--listen".into(), addr.to_string()];
        start("empty tonic", &self.bench_bin, &args, addr, &self.work.path().join(format!("anchor-{tag}.log")))
    }

    /// A fresh single-member etcd on loopback.
    pub fn etcd(&self, tag: &str) -> Proc {
        let (client, peer) = (free_addr(), free_addr());
        let initial = format!("bench=http://{peer}");
        self.etcd_member(&format!("etcd-{tag}"), "bench", client, peer, &initial, &[])
    }

    /// One etcd member `name` of the cluster `initial_cluster`, with its data
    /// in a fresh directory `tag` and `extra` flags.
    pub fn etcd_member(
        &self,
        tag: &str,
        name: &str,
        client: SocketAddr,
        peer: SocketAddr,
        initial_cluster: &str,
        extra: &[&str],
    ) -> Proc {
        let dir = self.dir(tag);
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &dir.display().to_string(),
            "--listen-client-urls",
            &format!("http://{client}"),
            "--advertise-client-urls",
            &format!("http://{client}"),
            "--listen-peer-urls",
            &format!("http://{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://{peer}"),
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            "new",
            "--logger",
            "zap",
            "--log-level",
            "error",
            "--quota-backend-bytes",
            &(8u64 << 30).to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        start("etcd", &self.etcd_bin, &args, client, &self.work.path().join(format!("{tag}.log")))
    }
}

pub fn find_etcd(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    for candidate in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("etcd not found: install Debian's etcd-server (scripts/bench.sh does) or pass --etcd-bin");
}
