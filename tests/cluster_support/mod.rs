//! A deployment for the cluster tests: a real 3-member etcd cluster (see
//! `support::etcd`) and three `convgroups serve --backend etcd` replicas as
//! child processes sharing one token secret; and a workload of writers and
//! watchers on every replica whose recorded history the tests check.
//!
//! Every add and every read of the workload is also recorded, per user, in a
//! [`History`] that [`check`] hands to the independent linearizability
//! checker in `tests/linearizability` (stateright's `LinearizabilityTester`
//! over a sequential model of one user's group).
//!
//! [`groups`] is a second workload, of the group features with more moving
//! parts (smart groups, moves between groups, manual order, pins), and its
//! checks.
//!
//! Include with `mod support; mod linearizability; mod cluster_support;`.
#![allow(dead_code)]

pub mod groups;

pub use crate::support::etcd::EtcdCluster;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convgroups::auth::Secret;
use convgroups::domain::UserId;
use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::conversation_service_client::ConversationServiceClient;
use convgroups::pb::watch_group_events_response::Kind;
use convgroups::pb::*;
use tempfile::TempDir;
use tonic::Code;
use tonic_types::StatusExt;

use crate::linearizability::{self, History, Op, Ret};
use crate::support::client::{ConvClient, GroupClient, Headers};
use crate::support::http::http_get;
pub use crate::support::http::sample;
use crate::support::process::{self, Launch, Server};

/// Timeouts of the replicas: short, so that faults are noticed within the
/// test's patience, and long enough for two busy cores.
const REPLICA_FLAGS: &[&str] = &[
    "--etcd-request-timeout",
    "1s",
    "--etcd-retry-for",
    "4s",
    "--etcd-heartbeat-interval",
    "250ms",
    "--max-conversations-per-group",
    "100000",
    // The workload's readers list the whole group in one page, so that each
    // read is one atomic observation for the linearizability checker.
    "--max-page-size",
    "100000",
    "--bookmark-interval",
    "500ms",
];

/// How long a client call may take before the workload counts it as
/// failed with an unknown outcome.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(8);

pub struct Deployment {
    pub etcd: EtcdCluster,
    pub replicas: Vec<Option<Server>>,
    launches: Vec<Launch>,
    /// Each replica's Prometheus endpoint.
    metrics: Vec<std::net::SocketAddr>,
    secret: Secret,
    pub prefix: String,
    dir: TempDir,
}

impl Deployment {
    /// A 3-member cluster and three replicas over all of its members.
    pub fn start() -> Self {
        let etcd = EtcdCluster::start(3);
        let endpoints = etcd.endpoints_csv();
        Self::start_on(etcd, vec![endpoints.clone(), endpoints.clone(), endpoints])
    }

    /// Replicas over the given endpoint lists (one replica per list).
    pub fn start_on(etcd: EtcdCluster, endpoints: Vec<String>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_path = dir.path().join("secret");
        let secret_text = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        std::fs::write(&secret_path, &secret_text).expect("write the secret");
        let prefix = format!("/cluster-test-{:08x}/", rand::random::<u32>());
        let mut launches = Vec::new();
        let mut metrics = Vec::new();
        for (i, endpoints) in endpoints.iter().enumerate() {
            let replica_dir = dir.path().join(format!("replica{i}"));
            std::fs::create_dir_all(&replica_dir).expect("replica dir");
            let launch = Launch::new(&replica_dir, "replica.log")
                .args(["--backend", "etcd", "--etcd-endpoints", endpoints, "--etcd-prefix", &prefix])
                .args(["--auth-secret-file", secret_path.to_str().expect("utf-8 path")])
                .args(REPLICA_FLAGS.iter().copied());
            let metrics_addr = process::free_addr();
            metrics.push(metrics_addr);
            launches.push(launch.args(["--metrics-listen".to_string(), metrics_addr.to_string()]));
        }
        let replicas = launches.iter().map(|l| Some(l.clone().start())).collect();
        Self { etcd, replicas, launches, metrics, secret: Secret::from_bytes(secret_text.as_bytes()), prefix, dir }
    }

    /// The replica's Prometheus metrics, as text.
    pub fn metrics(&self, replica: usize) -> String {
        let (status, body) = http_get(self.metrics[replica], "/metrics");
        assert_eq!(status, 200, "metrics of replica {replica}: {body}");
        body
    }

    pub fn addr(&self, replica: usize) -> std::net::SocketAddr {
        self.launches[replica].addr
    }

    pub fn uri(&self, replica: usize) -> String {
        format!("http://{}", self.addr(replica))
    }

    pub fn bearer(&self, user: &str) -> String {
        let token = self.secret.issue(&UserId::parse(user).expect("user id"), false, Duration::from_secs(3600));
        format!("Bearer {token}")
    }

    /// A client of `user` on replica `replica`, over a lazy connection (so it
    /// can be made while the replica is down).
    pub fn client(&self, replica: usize, user: &str) -> GroupClient {
        let channel = process::endpoint(&self.uri(replica)).timeout(CALL_TIMEOUT).connect_lazy();
        ConversationGroupServiceClient::with_interceptor(
            channel,
            Headers::new(&[("authorization", &self.bearer(user))]),
        )
    }

    /// A registry (ConversationService) client of `user` on replica
    /// `replica`, over a lazy connection as [`Deployment::client`].
    pub fn conv_client(&self, replica: usize, user: &str) -> ConvClient {
        let channel = process::endpoint(&self.uri(replica)).timeout(CALL_TIMEOUT).connect_lazy();
        ConversationServiceClient::with_interceptor(channel, Headers::new(&[("authorization", &self.bearer(user))]))
    }

    /// kill -9 of a replica.
    pub fn kill_replica(&mut self, replica: usize) {
        if let Some(mut server) = self.replicas[replica].take() {
            server.child.kill();
        }
    }

    /// Starts a killed replica again, on the same port.
    pub fn restart_replica(&mut self, replica: usize) {
        let launch = self.launches[replica].clone();
        let again = Launch { log_path: launch.log_path.with_file_name("replica-again.log"), ..launch };
        self.replicas[replica] = Some(again.start());
    }

    /// The replica's health ("" service) as the gRPC health service says.
    pub async fn health(&self, replica: usize) -> Option<i32> {
        use tonic_health::pb::health_client::HealthClient;
        let channel = process::endpoint(&self.uri(replica)).timeout(Duration::from_secs(2)).connect_lazy();
        let mut client = HealthClient::new(channel);
        let reply = client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.ok()?;
        Some(reply.into_inner().status)
    }

    /// Waits (bounded) until `check` holds for the replica's health.
    pub async fn wait_health(&self, replica: usize, serving: bool, within: Duration) {
        let want = if serving { 1 } else { 2 };
        let deadline = Instant::now() + within;
        loop {
            if self.health(replica).await == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {replica} did not report {} within {within:?}",
                if serving { "SERVING" } else { "NOT_SERVING" }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self, replica: usize) -> String {
        self.replicas[replica].as_ref().map(|s| s.log()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Watches open on the running, answering members of `etcd` together, from
/// etcd's own metrics (`etcd_debugging_mvcc_watcher_total`).
pub fn etcd_watchers(etcd: &EtcdCluster) -> u64 {
    let mut total = 0.0;
    for i in 0..etcd.len() {
        if etcd.is_running(i) && !etcd.is_stopped(i) {
            total += sample(&etcd.metrics(i), "etcd_debugging_mvcc_watcher_total", &[])
                .expect("etcd_debugging_mvcc_watcher_total in etcd's metrics");
        }
    }
    total as u64
}

/// The `ErrorInfo` metadata value `key` of a status, if any.
pub fn info(status: &tonic::Status, key: &str) -> Option<String> {
    status.get_error_details().error_info().and_then(|i| i.metadata.get(key).cloned())
}

pub fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// How one call ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at this revision.
    Ok(u64),
    /// Refused before anything was applied (the server says so).
    NotApplied(String),
    /// Might have been applied: a timeout, a lost connection, or the server's
    /// `outcome: unknown`.
    Unknown(String),
}

pub fn classify(result: Result<u64, tonic::Status>) -> Outcome {
    match result {
        Ok(revision) => Outcome::Ok(revision),
        Err(status) => {
            let unknown = info(&status, "outcome").as_deref() == Some("unknown")
                || matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
                // A transport failure (the replica was killed mid-call) comes
                // as UNAVAILABLE without our ErrorInfo: it may have committed.
                || (status.code() == Code::Unavailable && reason(&status).is_empty());
            if unknown {
                Outcome::Unknown(format!("{status:?}"))
            } else {
                Outcome::NotApplied(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
}

/// One recorded add: which conversation, and how the call ended.
#[derive(Debug, Clone)]
pub struct Add {
    pub user: String,
    pub conversation: String,
    pub outcome: Outcome,
}

/// What one watcher received.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// (revision, conversation ids added) of every batch, in arrival order.
    pub batches: Vec<(u64, Vec<String>)>,
    /// How often the stream was resumed on another replica.
    pub resumes: usize,
    /// Statuses that ended a stream, for the failure message.
    pub endings: Vec<String>,
}

/// The workload: for every user, one writer per replica adding fresh
/// conversations to the user's group `G`, and one watcher per replica
/// following the user from `start`. A writer whose replica fails moves to
/// the next; a watcher whose stream ends resumes on the next replica from
/// its resume revision (or the revision after the last it saw).
pub struct Workload {
    stop: Arc<AtomicBool>,
    pub adds: Arc<Mutex<Vec<Add>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    watchers: Vec<(String, tokio::task::JoinHandle<Seen>)>,
    watch_stop: Arc<Mutex<HashMap<String, u64>>>,
    histories: HashMap<String, UserHistory>,
}

/// Every call the workload made for one user, from the state it started at.
#[derive(Clone)]
pub struct UserHistory {
    pub calls: History,
    pub initial_revision: u64,
    pub initial_members: BTreeSet<String>,
}

/// What a workload recorded, for [`check`].
pub struct Recorded {
    pub adds: Vec<Add>,
    pub seen: Vec<(String, Seen)>,
    pub histories: HashMap<String, UserHistory>,
}

/// The history thread numbers of a user's clients: writers first, then
/// readers (one of each per replica).
const READER_THREADS: usize = 100;

/// Pause between two reads of one reader: enough reads to constrain the
/// history, few enough that the checker stays quick.
const READ_PAUSE: Duration = Duration::from_millis(40);

pub const USERS: [&str; 3] = ["ann", "ben", "cai"];

/// Creates group `G` for every user (through replica 0) and returns the
/// highest revision.
pub async fn setup(deployment: &Deployment) -> u64 {
    let mut top = 0;
    for user in USERS {
        let mut client = deployment.client(0, user);
        let reply = client
            .create_conversation_group(CreateConversationGroupRequest {
                group_name: "G".into(),
                conversation_ids: vec!["C2Cseed".into()],
                expected_revision: None,
                ..Default::default()
            })
            .await
            .expect("create G");
        top = top.max(reply.into_inner().revision);
    }
    top
}

impl Workload {
    /// Starts the workload; each user's history starts from the state of
    /// group `G` as read through replica 0 now.
    pub async fn start(deployment: &Deployment, start: u64) -> Self {
        let replicas = deployment.launches.len();
        let stop = Arc::new(AtomicBool::new(false));
        let adds = Arc::new(Mutex::new(Vec::new()));
        let watch_stop = Arc::new(Mutex::new(HashMap::new()));
        let mut writers = Vec::new();
        let mut watchers = Vec::new();
        let mut histories = HashMap::new();
        for user in USERS {
            let (initial_members, initial_revision) = members(&mut deployment.client(0, user)).await;
            let history = UserHistory { calls: History::new(), initial_revision, initial_members };
            histories.insert(user.to_string(), history.clone());
            let clients: Vec<GroupClient> = (0..replicas).map(|r| deployment.client(r, user)).collect();
            for first in 0..replicas {
                let (stop, adds, mut clients) = (stop.clone(), adds.clone(), clients.clone());
                let (user, history) = (user.to_string(), history.calls.clone());
                writers.push(tokio::spawn(async move {
                    let mut at = first;
                    let mut n = 0;
                    while !stop.load(Ordering::Acquire) {
                        let conversation = format!("C2Cw{first}-{n}");
                        n += 1;
                        let call = history.invoke(first, Op::Add { conversation: conversation.clone() });
                        let request = clients[at].add_conversations_to_group(AddConversationsToGroupRequest {
                            group_name: "G".into(),
                            conversation_ids: vec![conversation.clone()],
                            expected_revision: None,
                            ..Default::default()
                        });
                        let reply = match tokio::time::timeout(CALL_TIMEOUT, request).await {
                            Ok(result) => result.map(|r| r.into_inner()),
                            Err(_) => Err(tonic::Status::deadline_exceeded("client timeout")),
                        };
                        let outcome = classify(reply.as_ref().map(|r| r.revision).map_err(Clone::clone));
                        match (&outcome, &reply) {
                            (Outcome::Ok(revision), Ok(reply)) => {
                                let added = reply.success_conversation_ids.contains(&conversation);
                                let revision = *revision;
                                history.ok(
                                    call,
                                    if added { Ret::Added { revision } } else { Ret::AlreadyIn { revision } },
                                );
                            }
                            (Outcome::NotApplied(_), _) => history.failed(call),
                            _ => history.unknown(call),
                        }
                        if !matches!(outcome, Outcome::Ok(_)) {
                            at = (at + 1) % clients.len();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        adds.lock().unwrap().push(Add { user: user.clone(), conversation, outcome });
                    }
                }));
            }
            for first in 0..replicas {
                let (stop, mut clients, history) = (stop.clone(), clients.clone(), history.calls.clone());
                writers.push(tokio::spawn(async move {
                    let mut at = first;
                    while !stop.load(Ordering::Acquire) {
                        let call = history.invoke(READER_THREADS + first, Op::List);
                        match tokio::time::timeout(CALL_TIMEOUT, list_once(&mut clients[at])).await {
                            Ok(Ok((members, revision))) => history.ok(call, Ret::Listed { members, revision }),
                            // A read that did not answer constrains nothing.
                            _ => {
                                history.failed(call);
                                at = (at + 1) % clients.len();
                            }
                        }
                        tokio::time::sleep(READ_PAUSE).await;
                    }
                }));
            }
            for first in 0..replicas {
                let clients = clients.clone();
                let watch_stop = watch_stop.clone();
                let user_name = user.to_string();
                watchers.push((
                    user.to_string(),
                    tokio::spawn(async move { follow(clients, first, start, user_name, watch_stop).await }),
                ));
            }
        }
        Self { stop, adds, writers, watchers, watch_stop, histories }
    }

    /// The history of `user`'s calls, for a test that makes more of them.
    pub fn history(&self, user: &str) -> History {
        self.histories[user].calls.clone()
    }

    /// Stops the writers and readers, reads every user's final revision
    /// through `replica`, then lets every watcher run until it has seen that
    /// revision, and returns the adds, what each watcher saw and the
    /// histories.
    pub async fn finish(self, deployment: &Deployment, replica: usize) -> Recorded {
        self.stop.store(true, Ordering::Release);
        for writer in self.writers {
            writer.await.expect("writer task");
        }
        let through = final_revisions(deployment, replica).await;
        *self.watch_stop.lock().unwrap() = through;
        let mut seen = Vec::new();
        for (user, watcher) in self.watchers {
            let result = tokio::time::timeout(Duration::from_secs(60), watcher)
                .await
                .unwrap_or_else(|_| panic!("a watcher of {user} did not reach its final revision within 60 s"));
            seen.push((user, result.expect("watcher task")));
        }
        let adds = self.adds.lock().unwrap().clone();
        Recorded { adds, seen, histories: self.histories }
    }
}

/// One watcher: follows `user` from `start` (see [`follow_batches`]) and
/// keeps, of each batch, its revision and the conversations it added.
async fn follow(
    clients: Vec<GroupClient>,
    first: usize,
    start: u64,
    user: String,
    stop_at: Arc<Mutex<HashMap<String, u64>>>,
) -> Seen {
    let watched = follow_batches(clients, first, start, user, stop_at).await;
    let batches = watched
        .batches
        .iter()
        .map(|batch| {
            let mut added = Vec::new();
            for event in &batch.events {
                if let Some(group_event::Kind::ConversationsAddedToGroup(a)) = &event.kind {
                    added.extend(a.conversation_ids.iter().cloned());
                }
            }
            (batch.revision, added)
        })
        .collect();
    Seen { batches, resumes: watched.resumes, endings: watched.endings }
}

/// What one watcher received, whole.
#[derive(Debug, Default, Clone)]
pub struct Watched {
    /// Every batch, in arrival order.
    pub batches: Vec<EventBatch>,
    /// How often the stream was resumed on another replica.
    pub resumes: usize,
    /// Statuses that ended a stream, for the failure message.
    pub endings: Vec<String>,
}

/// One watcher: follows `user` from `start`, resuming on the next replica
/// whenever a stream ends, until the test says through which revision.
pub async fn follow_batches(
    mut clients: Vec<GroupClient>,
    first: usize,
    start: u64,
    user: String,
    stop_at: Arc<Mutex<HashMap<String, u64>>>,
) -> Watched {
    let mut seen = Watched::default();
    let mut next = start;
    let mut at = first;
    let done = |next: u64| stop_at.lock().unwrap().get(&user).is_some_and(|through| next > *through);
    loop {
        if done(next) {
            return seen;
        }
        let request = WatchGroupEventsRequest { start_revision: next, ..Default::default() };
        let opened = tokio::time::timeout(CALL_TIMEOUT, clients[at].watch_group_events(request)).await;
        let mut stream = match opened {
            Ok(Ok(stream)) => stream.into_inner(),
            Ok(Err(status)) => {
                seen.endings.push(format!("open on {at}: {status:?}"));
                if let Some(resume) = info(&status, "resume_revision").and_then(|r| r.parse().ok()) {
                    next = resume;
                }
                at = (at + 1) % clients.len();
                seen.resumes += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => {
                at = (at + 1) % clients.len();
                seen.resumes += 1;
                continue;
            }
        };
        loop {
            if done(next) {
                return seen;
            }
            // Bookmarks come every 500 ms: a longer silence is a dead stream.
            let message = match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => break,
                Ok(Err(status)) => {
                    seen.endings.push(format!("stream on {at}: {status:?}"));
                    // The server's resume revision may be past `next`:
                    // it covered revisions with no batch for this watcher
                    // (a catch-up, heartbeats) without a bookmark yet. A
                    // real gap shows in `check`, which compares every
                    // watcher's batches with what is stored.
                    if let Some(resume) = info(&status, "resume_revision").and_then(|r| r.parse().ok()) {
                        next = resume;
                    }
                    break;
                }
                Err(_) => break,
            };
            match message.kind {
                Some(Kind::Events(batch)) => {
                    assert!(batch.revision >= next, "batch {} arrived after {} was covered", batch.revision, next - 1);
                    next = batch.revision + 1;
                    seen.batches.push(batch);
                }
                Some(Kind::Bookmark(b)) => next = next.max(b.revision + 1),
                Some(Kind::Snapshot(_)) | None => {}
            }
        }
        at = (at + 1) % clients.len();
        seen.resumes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every member of group `G` in one page: one atomic read.
async fn list_once(client: &mut GroupClient) -> Result<(BTreeSet<String>, u64), tonic::Status> {
    let reply = client
        .get_conversation_list(GetConversationListRequest {
            filter: Some(ConversationFilter { group_name: Some("G".into()), ..Default::default() }),
            page_size: 100_000,
            page_token: String::new(),
            min_revision: None,
        })
        .await?
        .into_inner();
    assert!(reply.is_finished, "group G did not fit in one page of 100,000");
    Ok((reply.conversations.into_iter().map(|c| c.conversation_id).collect(), reply.revision))
}

/// Every member of `user`'s group `G`, read through `client`.
pub async fn members(client: &mut GroupClient) -> (BTreeSet<String>, u64) {
    let mut ids = BTreeSet::new();
    let mut token = String::new();
    loop {
        let reply = client
            .get_conversation_list(GetConversationListRequest {
                filter: Some(ConversationFilter { group_name: Some("G".into()), ..Default::default() }),
                page_size: 1000,
                page_token: token.clone(),
                min_revision: None,
            })
            .await
            .expect("list G")
            .into_inner();
        ids.extend(reply.conversations.into_iter().map(|c| c.conversation_id));
        if reply.is_finished {
            return (ids, reply.revision);
        }
        token = reply.next_page_token;
    }
}

/// The checks every fault test ends with: every acknowledged add is stored,
/// nothing refused as not applied is, every watcher saw every stored add
/// exactly once, in strictly increasing revisions, with no gap; and every
/// user's history of adds and reads, on all replicas, is linearizable.
pub async fn check(deployment: &Deployment, replica: usize, recorded: &Recorded) {
    let (adds, seen) = (&recorded.adds, &recorded.seen);
    let mut stored: HashMap<String, BTreeSet<String>> = HashMap::new();
    for user in USERS {
        let (ids, _) = members(&mut deployment.client(replica, user)).await;
        stored.insert(user.to_string(), ids);
    }
    let (mut acked, mut refused, mut unknown) = (0, 0, 0);
    for add in adds {
        let present = stored[&add.user].contains(&add.conversation);
        match &add.outcome {
            Outcome::Ok(revision) => {
                acked += 1;
                assert!(present, "{} of {} was acknowledged at {revision} but is gone", add.conversation, add.user);
            }
            Outcome::NotApplied(why) => {
                refused += 1;
                assert!(
                    !present,
                    "{} of {} was refused as not applied ({why}) but is stored",
                    add.conversation, add.user
                );
            }
            Outcome::Unknown(_) => unknown += 1,
        }
    }
    assert!(acked > 0, "the workload acknowledged nothing");
    for (user, seen) in seen {
        let mut previous = 0;
        let mut received = BTreeSet::new();
        for (revision, added) in &seen.batches {
            assert!(
                *revision > previous,
                "watcher of {user}: revision {revision} after {previous} (endings: {:?})",
                seen.endings
            );
            previous = *revision;
            for id in added {
                assert!(received.insert(id.clone()), "watcher of {user}: {id} delivered twice");
            }
        }
        let expected: BTreeSet<String> = stored[user].iter().filter(|id| *id != "C2Cseed").cloned().collect();
        let missing: Vec<_> = expected.difference(&received).collect();
        assert!(
            missing.is_empty(),
            "watcher of {user} missed {} stored adds, e.g. {:?} (endings: {:?})",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>(),
            seen.endings
        );
        let phantom: Vec<_> = received.difference(&expected).collect();
        assert!(phantom.is_empty(), "watcher of {user} received adds that are not stored: {phantom:?}");
    }
    eprintln!("checked: {acked} acknowledged, {refused} refused, {unknown} unknown adds; {} watchers", seen.len());
    for (user, history) in &recorded.histories {
        let (answered, unknown, failed) = history.calls.counts();
        let lists = history.calls.len();
        let started = Instant::now();
        let verdict = tokio::task::block_in_place(|| {
            linearizability::check(&history.calls, history.initial_revision, history.initial_members.clone())
        });
        match verdict {
            Ok(checked) => eprintln!(
                "linearizable: {user}: {checked} ops checked ({answered} answered, {unknown} unknown, {failed} \
                 failed of {lists} calls) in {:?}",
                started.elapsed()
            ),
            Err(why) => panic!("the history of {user} is not linearizable: {why}"),
        }
    }
}

/// The highest revision of each user, read through `replica`.
pub async fn final_revisions(deployment: &Deployment, replica: usize) -> HashMap<String, u64> {
    let mut through = HashMap::new();
    for user in USERS {
        let (_, revision) = members(&mut deployment.client(replica, user)).await;
        through.insert(user.to_string(), revision);
    }
    through
}
