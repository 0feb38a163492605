//! The cluster phase: three convgroups replicas over a 3-member etcd
//! cluster (data on disk: durability is what is measured), next to raw etcd
//! transactions of the same shape in the same run.
//!
//! The raw shape is what one AddConversationsToGroup of one new id sends to
//! etcd (src/store/etcd): a linearizable Range of the user's record, a Range
//! of the conversation at that revision, and one Txn comparing the record's
//! mod_revision and putting five keys — the user's record, the conversation,
//! its member key, its listing-index key and the event batch — with the key
//! and value sizes measured on real data (21+24, 27+3, 31+0, 36+0 and 30+67
//! bytes). The raw read is one linearizable Range of the user's record.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use convgroups::pb;
use convgroups::pb::etcd as api;
use convgroups::pb::etcd::kv_client::KvClient;
use tonic::transport::Channel;

use crate::fanout::{self, Shape};
use crate::load::{closed_loop, Measured};
use crate::procs::{free_addr, start, Proc};
use crate::targets::{connect, Env, Pool};

/// Starts three etcd members on loopback, data under `env`'s work dir,
/// with the limits the etcd backend needs (docs/cluster.md).
fn etcd_cluster(env: &Env) -> Vec<Proc> {
    let ports: Vec<(SocketAddr, SocketAddr)> = (0..3).map(|_| (free_addr(), free_addr())).collect();
    let initial = ports.iter().enumerate().map(|(i, (_, p))| format!("m{i}=http://{p}")).collect::<Vec<_>>().join(",");
    let limits = ["--max-txn-ops", "8192", "--max-request-bytes", "33554432"];
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            env.etcd_member(&format!("cluster-etcd-{i}"), &format!("m{i}"), *client, *peer, &initial, &limits)
        })
        .collect()
}

/// Three replicas over `endpoints`, sharing the secret in `secret`.
fn replicas(env: &Env, endpoints: &str, secret: &Path) -> Vec<Proc> {
    (0..3)
        .map(|i| {
            let addr = free_addr();
            let dir = env.dir(&format!("cluster-replica-{i}"));
            let args: Vec<String> = [
                "serve",
                "--backend",
                "etcd",
                "--etcd-endpoints",
                endpoints,
                "--auth-secret-file",
                &secret.display().to_string(),
                "--listen",
                &addr.to_string(),
                "--data-dir",
                &dir.display().to_string(),
                "--log-level",
                "warn",
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
            let log = env.work.path().join(format!("cluster-replica-{i}.log"));
            start("convgroups replica", &env.server_bin, &args, addr, &log)
        })
        .collect()
}

/// etcd connections spread over the members: task i uses member i % 3.
async fn etcd_clients(members: &[Proc], per_member: usize) -> Vec<KvClient<Channel>> {
    let mut clients = Vec::new();
    for _ in 0..per_member {
        for member in members {
            for channel in connect(member.addr, 1).await {
                clients.push(KvClient::new(channel));
            }
        }
    }
    clients
}

fn put(key: Vec<u8>, value: Vec<u8>) -> api::RequestOp {
    api::RequestOp {
        request: Some(api::request_op::Request::RequestPut(api::PutRequest { key, value, ..Default::default() })),
    }
}

/// The raw etcd sequence of one mutation by task `task`.
async fn raw_mutation(mut kv: KvClient<Channel>, task: usize, seq: u64) -> Result<(), String> {
    let user = format!("bench/t1/{task:012}").into_bytes();
    let read =
        kv.range(api::RangeRequest { key: user.clone(), ..Default::default() }).await.map_err(|e| e.to_string())?;
    let read = read.into_inner();
    let revision = read.header.map_or(0, |h| h.revision);
    let mod_revision = read.kvs.first().map_or(0, |kv| kv.mod_revision);
    let conv = format!("bench/t2/{task:06}c{seq:010}").into_bytes();
    kv.range(api::RangeRequest { key: conv.clone(), revision, ..Default::default() })
        .await
        .map_err(|e| e.to_string())?;
    let success = vec![
        put(user.clone(), vec![b'u'; 24]),
        put(conv, vec![b'c'; 3]),
        put(format!("bench/t3/{task:06}m{seq:014}").into_bytes(), Vec::new()),
        put(format!("bench/t4/{task:06}o{seq:019}").into_bytes(), Vec::new()),
        put(format!("bench/we/{task:06}{seq:014}").into_bytes(), vec![b'e'; 67]),
    ];
    let compare = api::Compare {
        result: api::compare::CompareResult::Equal as i32,
        target: api::compare::CompareTarget::Mod as i32,
        key: user,
        target_union: Some(api::compare::TargetUnion::ModRevision(mod_revision)),
        ..Default::default()
    };
    let txn = kv
        .txn(api::TxnRequest { compare: vec![compare], success, failure: Vec::new() })
        .await
        .map_err(|e| e.to_string())?;
    if txn.into_inner().succeeded {
        Ok(())
    } else {
        Err("compare failed".into())
    }
}

fn row(report: &mut String, what: &str, m: &Measured) {
    let _ = writeln!(
        report,
        "| {what} | {:.0} | {:.3} | {:.3} | {} |",
        m.calls_per_sec(),
        m.latency.quantile(0.5).as_secs_f64() * 1e3,
        m.latency.quantile(0.99).as_secs_f64() * 1e3,
        m.errors
    );
    if let Some(e) = &m.first_error {
        eprintln!("  {what}: {} errors, first: {e}", m.errors);
    }
}

/// Runs the cluster phase and appends its tables to `report`.
pub async fn run(env: &Env, secs: Duration, report: &mut String) {
    let members = etcd_cluster(env);
    let endpoints = members.iter().map(|m| m.addr.to_string()).collect::<Vec<_>>().join(",");
    let secret = env.work.path().join("cluster-secret");
    std::fs::write(&secret, format!("{:032x}{:032x}", rand_u128(), rand_u128())).expect("secret");
    let token = {
        let out = std::process::Command::new(&env.server_bin)
            .args(["token", "--user", "bench-admin", "--admin", "--ttl", "2h", "--auth-secret-file"])
            .arg(&secret)
            .output()
            .expect("convgroups token");
        String::from_utf8(out.stdout).expect("token").trim().to_string()
    };
    let replicas = replicas(env, &endpoints, &secret);
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let pool = Pool::spread(&addrs, 8, Some(&token)).await;
    let raw = etcd_clients(&members, 8).await;

    let _ = writeln!(report, "\n### Cluster: 3 replicas over a 3-member etcd cluster\n");
    let _ = writeln!(report, "| call | calls/s | p50 ms | p99 ms | errors |");
    let _ = writeln!(report, "|---|---|---|---|---|");
    crate::setup_reader(&pool).await;
    // The raw read's key holds a value the size of the reader's record (20
    // groups), so both reads move the same bytes.
    raw[0]
        .clone()
        .txn(api::TxnRequest { success: vec![put(b"bench/t1/reader".to_vec(), vec![b'r'; 420])], ..Default::default() })
        .await
        .expect("raw etcd put");
    let mut ratios = Vec::new();
    for c in [1usize, 64] {
        let ours = crate::read_phase(&pool, replicas[0].pid(), c, secs, Some("reader")).await;
        row(report, &format!("convgroups read, c={c}"), &ours);
        let raw = raw.clone();
        let theirs = closed_loop(members[0].pid(), c, secs, u64::MAX, move |task, _| {
            let mut kv = raw[task % raw.len()].clone();
            async move {
                kv.range(api::RangeRequest { key: b"bench/t1/reader".to_vec(), ..Default::default() })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        row(report, &format!("raw etcd read (1 linearizable Range), c={c}"), &theirs);
        ratios.push((format!("read c={c}"), ours.calls_per_sec() / theirs.calls_per_sec()));
        // The same read passing the revision the client has seen: replicas
        // answer it from memory, issuing nothing to etcd.
        let seen = pool
            .groups(0, Some("reader"))
            .get_conversation_group_list(pb::GetConversationGroupListRequest::default())
            .await
            .expect("reader's revision")
            .into_inner()
            .revision;
        let session = crate::read_phase_at(&pool, replicas[0].pid(), c, secs, Some("reader"), Some(seen)).await;
        row(report, &format!("convgroups read with min_revision, c={c}"), &session);
        ratios.push((
            format!("read with min_revision c={c} (vs the linearizable Range)"),
            session.calls_per_sec() / theirs.calls_per_sec(),
        ));
    }
    for c in [1usize, 64] {
        crate::setup_writers(&pool, c).await;
        let ours = crate::write_phase(&pool, replicas[0].pid(), c, secs, "cluster").await;
        row(report, &format!("convgroups durable mutation, c={c}"), &ours);
        let raw = raw.clone();
        let theirs = closed_loop(members[0].pid(), c, secs, u64::MAX, move |task, seq| {
            let kv = raw[task % raw.len()].clone();
            raw_mutation(kv, task, seq)
        })
        .await;
        row(report, &format!("raw etcd mutation shape (2 Range + 1 Txn of 5 puts), c={c}"), &theirs);
        ratios.push((format!("durable mutation c={c}"), ours.calls_per_sec() / theirs.calls_per_sec()));
    }

    let _ = writeln!(report, "\n| ratio (convgroups ÷ raw etcd, calls/s) | value | target | |");
    let _ = writeln!(report, "|---|---|---|---|");
    for (what, ratio) in &ratios {
        crate::target(report, what, *ratio, 0.8, true);
    }

    // One change on replica 0 to 1,000 watchers spread over the three.
    crate::create_group(&pool, "fan", "f").await;
    let shape = Shape { watchers: 1000, rate: Some(100), writers: 1, duration: secs };
    let fan = fanout::grpc(replicas[0].pid(), &pool, Some("fan"), "f", shape).await;
    let _ = writeln!(
        report,
        "\nFan-out, 1,000 watchers over 3 replicas, 100 changes/s written on replica 0: {} deliveries, p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms, {} missed.",
        fan.deliveries,
        fan.latency.quantile(0.5).as_secs_f64() * 1e3,
        fan.latency.quantile(0.99).as_secs_f64() * 1e3,
        fan.latency.max().as_secs_f64() * 1e3,
        fan.missed
    );
    drop((pool, replicas, members));
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    (h.finish() as u128) << 64 | std::collections::hash_map::RandomState::new().build_hasher().finish() as u128
}
