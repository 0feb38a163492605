//! `convgroups-bench`: measures convgroups on loopback against two anchors
//! in the same run — an empty tonic server (the limit for any tonic
//! service) and etcd (a trusted durable gRPC store with watch) — and prints
//! every figure with its ratio to them, and the project's targets.
//!
//! Run it with `scripts/bench.sh` (builds in release, installs etcd).
//! Every server it starts listens on 127.0.0.1 only and is stopped by pid
//! when the benchmark ends; every phase is bounded in time and count.

mod anchor;
mod cluster;
mod fanout;
mod load;
mod procs;
mod stats;
mod targets;

/// The etcd API subset (see proto/etcd.proto).
pub mod etcd {
    #![allow(clippy::all)]
    tonic::include_proto!("etcdserverpb");
}

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use convgroups::pb;

use fanout::{FanoutResult, Shape};
use load::{closed_loop, Measured};
use targets::{Env, EtcdPool, Pool};

#[derive(Parser, Debug)]
#[command(about = "Benchmark convgroups against an empty tonic server and etcd, on loopback")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Seconds per load phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Conversations of the listing user (the target is about 100,000).
    #[arg(long, default_value_t = 100_000)]
    listing_size: usize,
    /// Watchers of the large fan-out (the target is about 10,000).
    #[arg(long, default_value_t = 10_000)]
    max_watchers: usize,
    /// The convgroups binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The etcd binary (default: /usr/bin/etcd).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// Also write the report (markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit with status 1 when any target of the run is missed (the report
    /// is printed either way).
    #[arg(long)]
    check: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the empty tonic anchor (started by the benchmark itself).
    Anchor {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Only the cluster phase: 3 replicas over a 3-member etcd cluster next to
    /// raw etcd transactions of the same shape, and fan-out over the replicas.
    Cluster,
    /// Only the fan-out phases and their targets.
    Fanout,
    /// Only the unary phases (read, durable mutation, listing) and their
    /// targets.
    Unary,
    /// One load phase against a running convgroups server (for profiling:
    /// run it while `perf record -p <server pid>` watches).
    Load {
        #[arg(long)]
        addr: SocketAddr,
        /// An admin token of that server (`convgroups token --admin`).
        #[arg(long)]
        token: String,
        /// read (GetConversationGroupList), write (AddConversationsToGroup)
        /// or list (a page of 100 of GetConversationList, of a user with
        /// 100,000 conversations).
        #[arg(long)]
        kind: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Server pid, for its CPU time.
        #[arg(long, default_value_t = 0)]
        pid: u32,
    },
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1024.0 * 1024.0))
}

/// A table row of a load phase.
fn load_row(report: &mut String, what: &str, m: &Measured, peak_rss: u64) {
    let _ = writeln!(
        report,
        "| {what} | {:.0} | {} | {} | {} | {:.1} | {} | {} |",
        m.calls_per_sec(),
        ms(m.latency.quantile(0.5)),
        ms(m.latency.quantile(0.99)),
        ms(m.latency.quantile(0.999)),
        m.cpu_us_per_call(),
        mib(peak_rss),
        m.errors
    );
    if let Some(e) = &m.first_error {
        eprintln!("  {what}: {} errors, first: {e}", m.errors);
    }
}

fn fan_row(report: &mut String, what: &str, r: &FanoutResult) {
    let _ = writeln!(
        report,
        "| {what} | {} | {} | {} | {} | {} | {:.0} | {} | {} |",
        r.events,
        r.deliveries,
        ms(r.latency.quantile(0.5)),
        ms(r.latency.quantile(0.99)),
        ms(r.latency.max()),
        r.deliveries_per_sec,
        r.missed,
        mib(r.peak_rss)
    );
}

/// Targets this run missed, for `--check`.
static MISSED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A target line: the figure, the bound, and whether it is met.
fn target(report: &mut String, what: &str, value: f64, bound: f64, at_least: bool) {
    let met = if at_least { value >= bound } else { value <= bound };
    let relation = if at_least { "≥" } else { "≤" };
    let _ = writeln!(report, "| {what} | {value:.2} | {relation} {bound} | {} |", if met { "met" } else { "NOT met" });
    if !met {
        MISSED.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{what}: {value:.2}, bound {relation} {bound}"));
    }
}

/// Prints the report, writes it to `--out`, and with `--check` exits 1 when
/// a target was missed.
fn finish(args: &Args, report: &str) {
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, report).expect("write the report");
    }
    let missed = MISSED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if args.check && !missed.is_empty() {
        eprintln!("convgroups-bench --check: {} target(s) missed:", missed.len());
        for line in &missed {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match args.command {
        Some(Command::Anchor { listen }) => {
            runtime.block_on(anchor::serve(listen));
            return;
        }
        Some(Command::Load { addr, ref token, ref kind, concurrency, seconds, pid }) => {
            let report = runtime.block_on(one_load(addr, token, kind, concurrency, Duration::from_secs(seconds), pid));
            println!("{report}");
            return;
        }
        Some(Command::Fanout) => {
            let report = runtime.block_on(async {
                let env = environment(&args);
                let mut report = String::from("## convgroups benchmark: fan-out phases\n");
                let fans = fanout_phases(&env, &args, Duration::from_secs(args.seconds), &mut report).await;
                let _ = writeln!(report, "\n| target | value | bound | |\n|---|---|---|---|");
                fanout_targets(&mut report, &args, &fans);
                report
            });
            finish(&args, &report);
            return;
        }
        Some(Command::Unary) => {
            let report = runtime.block_on(async {
                let env = environment(&args);
                let mut report = String::from("## convgroups benchmark: unary phases\n");
                let unary = unary_phases(&env, &args, Duration::from_secs(args.seconds), &mut report).await;
                let _ = writeln!(report, "\n| target | value | bound | |\n|---|---|---|---|");
                unary_targets(&mut report, &unary);
                report
            });
            finish(&args, &report);
            return;
        }
        Some(Command::Cluster) => {
            let report = runtime.block_on(async {
                let env = environment(&args);
                let mut report = String::from("## convgroups benchmark: cluster phase\n");
                cluster::run(&env, Duration::from_secs(args.seconds), &mut report).await;
                report
            });
            finish(&args, &report);
            return;
        }
        None => {}
    }
    let report = runtime.block_on(run(&args));
    finish(&args, &report);
}

/// The binaries and a fresh work directory.
fn environment(args: &Args) -> Env {
    let bench_bin = std::env::current_exe().expect("current exe");
    let server_bin = args.server_bin.clone().unwrap_or_else(|| bench_bin.parent().expect("exe dir").join("convgroups"));
    assert!(server_bin.exists(), "{} not found: build it first (scripts/bench.sh does)", server_bin.display());
    Env {
        server_bin,
        bench_bin,
        etcd_bin: targets::find_etcd(args.etcd_bin.as_deref()),
        work: tempfile::tempdir().expect("work dir"),
    }
}

async fn run(args: &Args) -> String {
    let env = environment(args);
    let secs = Duration::from_secs(args.seconds);
    let mut report = String::new();
    let _ = writeln!(report, "## convgroups benchmark\n");
    let _ = writeln!(
        report,
        "{} cores, {}, phases of {} s; client and servers share the machine.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        etcd_version(&env),
        args.seconds
    );

    let unary = unary_phases(&env, args, secs, &mut report).await;
    let fans = fanout_phases(&env, args, secs, &mut report).await;

    // ---- the targets ----------------------------------------------------
    let _ = writeln!(report, "\n### Targets (ratios from this run)\n");
    let _ = writeln!(report, "| target | value | bound | |");
    let _ = writeln!(report, "|---|---|---|---|");
    unary_targets(&mut report, &unary);
    fanout_targets(&mut report, args, &fans);
    cluster::run(&env, secs, &mut report).await;
    report
}

/// What the unary phases measured: per concurrency, (c, convgroups, empty,
/// etcd) reads and (c, convgroups, etcd) durable writes; and the listing.
struct Unary {
    reads: Vec<(usize, Measured, Measured, Measured)>,
    writes: Vec<(usize, Measured, Measured)>,
    listing: Measured,
}

/// The unary phases: one server of each kind.
async fn unary_phases(env: &Env, args: &Args, secs: Duration, report: &mut String) -> Unary {
    // ---- unary phases: one server of each kind ------------------------
    let (cg, token) = env.convgroups("unary");
    let empty = env.anchor("unary");
    let etcd = env.etcd("unary");
    let cg_pool = Pool::new(cg.addr, 8, Some(&token)).await;
    let empty_pool = Pool::new(empty.addr, 8, None).await;
    let etcd_pool = EtcdPool::new(etcd.addr, 8).await;
    setup_reader(&cg_pool).await;
    etcd_pool
        .kv(0)
        .put(etcd::PutRequest { key: b"bench/read".to_vec(), value: vec![b'x'; 64], ..Default::default() })
        .await
        .expect("etcd put");

    let _ = writeln!(report, "### Unary calls\n");
    let _ = writeln!(
        report,
        "| call | calls/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/call | server peak RSS MiB | errors |"
    );
    let _ = writeln!(report, "|---|---|---|---|---|---|---|---|");
    let mut reads = Vec::new();
    for c in [1usize, 64] {
        let read = read_phase(&cg_pool, cg.pid(), c, secs, Some("reader")).await;
        load_row(
            report,
            &format!("convgroups GetConversationGroupList (20 groups), c={c}"),
            &read,
            stats::peak_rss(cg.pid()),
        );
        let echo = read_phase(&empty_pool, empty.pid(), c, secs, None).await;
        load_row(report, &format!("empty tonic unary, c={c}"), &echo, stats::peak_rss(empty.pid()));
        let pool = etcd_pool.clone();
        let range = closed_loop(etcd.pid(), c, secs, u64::MAX, move |task, _| {
            let mut kv = pool.kv(task);
            async move {
                let request =
                    etcd::RangeRequest { key: b"bench/read".to_vec(), serializable: true, ..Default::default() };
                kv.range(request).await.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .await;
        load_row(report, &format!("etcd Range (serializable), c={c}"), &range, stats::peak_rss(etcd.pid()));
        reads.push((c, read, echo, range));
    }

    let mut writes = Vec::new();
    for c in [1usize, 64] {
        setup_writers(&cg_pool, c).await;
        let add = write_phase(&cg_pool, cg.pid(), c, secs, "bench").await;
        load_row(
            report,
            &format!("convgroups AddConversationsToGroup (durable), c={c}"),
            &add,
            stats::peak_rss(cg.pid()),
        );
        let pool = etcd_pool.clone();
        let put = closed_loop(etcd.pid(), c, secs, u64::MAX, move |task, seq| {
            let mut kv = pool.kv(task);
            async move {
                let request = etcd::PutRequest {
                    key: format!("bench/w{c}/{task}/{seq}").into_bytes(),
                    value: vec![b'v'; 32],
                    ..Default::default()
                };
                kv.put(request).await.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .await;
        load_row(report, &format!("etcd Put (durable), c={c}"), &put, stats::peak_rss(etcd.pid()));
        writes.push((c, add, put));
    }

    let started = std::time::Instant::now();
    setup_lister(&cg_pool, args.listing_size).await;
    eprintln!(
        "listing user with {} conversations set up in {:.1} s",
        args.listing_size,
        started.elapsed().as_secs_f64()
    );
    let listing = listing_phase(&cg_pool, cg.pid(), 1, secs).await;
    load_row(
        report,
        &format!("convgroups GetConversationList page of 100 of {}, c=1", args.listing_size),
        &listing,
        stats::peak_rss(cg.pid()),
    );
    drop((cg, empty, etcd));
    Unary { reads, writes, listing }
}

/// The unary lines of the targets table.
fn unary_targets(report: &mut String, unary: &Unary) {
    let (_, read64, echo64, _) = &unary.reads[1];
    target(report, "read c=64: calls/s ÷ empty tonic", read64.calls_per_sec() / echo64.calls_per_sec(), 0.7, true);
    target(
        report,
        "read c=64: server CPU/call ÷ empty tonic",
        read64.cpu_us_per_call() / echo64.cpu_us_per_call(),
        1.5,
        false,
    );
    let (_, add64, put64) = &unary.writes[1];
    target(
        report,
        "durable mutation c=64: calls/s ÷ etcd Put",
        add64.calls_per_sec() / put64.calls_per_sec(),
        1.0,
        true,
    );
    let (_, add1, put1) = &unary.writes[0];
    let p50 = |m: &Measured| m.latency.quantile(0.5).as_secs_f64();
    target(report, "durable mutation c=1: p50 ÷ etcd Put p50", p50(add1) / p50(put1), 1.2, false);
    let (_, read1, _, _) = &unary.reads[0];
    target(report, "listing page of 100: p50 ÷ read p50 (c=1)", p50(&unary.listing) / p50(read1), 2.0, false);
}

/// The fan-out phases: fresh servers per shape, so peak RSS is the shape's.
async fn fanout_phases(
    env: &Env,
    args: &Args,
    secs: Duration,
    report: &mut String,
) -> Vec<(FanoutResult, FanoutResult, FanoutResult)> {
    let _ = writeln!(report, "\n### Fan-out (delivery latency from the mutation's start to each watcher)\n");
    let _ = writeln!(
        report,
        "| shape | events | deliveries | p50 ms | p99 ms | max ms | deliveries/s | missed | server peak RSS MiB |"
    );
    let _ = writeln!(report, "|---|---|---|---|---|---|---|---|---|");
    let large = format!("{} watchers, max rate", args.max_watchers);
    let shapes = [
        ("1000 watchers, 100 events/s", Shape { watchers: 1000, rate: Some(100), writers: 1, duration: secs }),
        ("1000 watchers, max rate", Shape { watchers: 1000, rate: None, writers: 4, duration: secs }),
        (large.as_str(), Shape { watchers: args.max_watchers, rate: None, writers: 4, duration: secs }),
    ];
    let mut fans = Vec::new();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let connections = (shape.watchers / 1000).max(4);
        let (cg, token) = env.convgroups(&format!("fan{i}"));
        let pool = Pool::new(cg.addr, connections, Some(&token)).await;
        create_group(&pool, "fan", "f").await;
        let ours = fanout::grpc(cg.pid(), &pool, Some("fan"), "f", *shape).await;
        drop((pool, cg));
        fan_row(report, &format!("convgroups, {name}"), &ours);
        let empty = env.anchor(&format!("fan{i}"));
        let pool = Pool::new(empty.addr, connections, None).await;
        let theirs = fanout::grpc(empty.pid(), &pool, None, "f", *shape).await;
        drop((pool, empty));
        fan_row(report, &format!("empty tonic fan-out, {name}"), &theirs);
        let etcd = env.etcd(&format!("fan{i}"));
        let pool = EtcdPool::new(etcd.addr, connections).await;
        let watch = fanout::etcd(etcd.pid(), &pool, *shape).await;
        drop((pool, etcd));
        fan_row(report, &format!("etcd Watch, {name}"), &watch);
        fans.push((ours, theirs, watch));
    }

    fans
}

/// The fan-out lines of the targets table.
fn fanout_targets(report: &mut String, args: &Args, fans: &[(FanoutResult, FanoutResult, FanoutResult)]) {
    let p99 = |r: &FanoutResult| r.latency.quantile(0.99).as_secs_f64();
    target(report, "fan-out 1000 @ 100/s: p99 ÷ empty fan-out p99", p99(&fans[0].0) / p99(&fans[0].1), 1.5, false);
    target(
        report,
        &format!("fan-out {} @ max: deliveries/s ÷ empty fan-out", args.max_watchers),
        fans[2].0.deliveries_per_sec / fans[2].1.deliveries_per_sec,
        0.7,
        true,
    );
    target(report, &format!("fan-out {} @ max: missed events", args.max_watchers), fans[2].0.missed as f64, 0.0, false);
    target(
        report,
        &format!("fan-out {} @ max: server peak RSS MB", args.max_watchers),
        fans[2].0.peak_rss as f64 / 1e6,
        160.0,
        false,
    );
}

async fn one_load(addr: SocketAddr, token: &str, kind: &str, c: usize, secs: Duration, pid: u32) -> String {
    let pool = Pool::new(addr, 8, Some(token)).await;
    let mut report = String::from(
        "| call | calls/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/call | server peak RSS MiB | errors |\n",
    );
    let measured = match kind {
        "read" => {
            setup_reader(&pool).await;
            read_phase(&pool, pid, c, secs, Some("reader")).await
        }
        "write" => {
            setup_writers(&pool, c).await;
            write_phase(&pool, pid, c, secs, "load").await
        }
        "list" => {
            setup_lister(&pool, 100_000).await;
            listing_phase(&pool, pid, c, secs).await
        }
        other => panic!("--kind {other}: expected read, write or list"),
    };
    load_row(&mut report, &format!("{kind}, c={c}"), &measured, stats::peak_rss(pid));
    report
}

/// The first page of 100 of the listing user's GetConversationList, in a
/// closed loop.
async fn listing_phase(pool: &Pool, pid: u32, c: usize, secs: Duration) -> Measured {
    let pool = pool.clone();
    closed_loop(pid, c, secs, u64::MAX, move |task, _| {
        let mut client = pool.groups(task, Some("lister"));
        async move {
            let request = pb::GetConversationListRequest {
                filter: None,
                page_size: 100,
                page_token: String::new(),
                min_revision: None,
            };
            let r = client.get_conversation_list(request).await.map_err(|e| e.to_string())?;
            if r.into_inner().conversations.len() == 100 {
                Ok(())
            } else {
                Err("expected a page of 100".into())
            }
        }
    })
    .await
}

/// GetConversationGroupList in a closed loop; with `user` (convgroups) each
/// answer must hold 20 groups, without (the empty server) anything goes.
async fn read_phase(pool: &Pool, pid: u32, c: usize, secs: Duration, user: Option<&'static str>) -> Measured {
    read_phase_at(pool, pid, c, secs, user, None).await
}

/// [`read_phase`] passing `min_revision` (the revision the client has seen)
/// instead of asking for a linearizable read.
async fn read_phase_at(
    pool: &Pool,
    pid: u32,
    c: usize,
    secs: Duration,
    user: Option<&'static str>,
    min_revision: Option<u64>,
) -> Measured {
    let pool = pool.clone();
    closed_loop(pid, c, secs, u64::MAX, move |task, _| {
        let mut client = pool.groups(task, user);
        async move {
            let r = client.get_conversation_group_list(pb::GetConversationGroupListRequest { min_revision }).await;
            let groups = r.map_err(|e| e.to_string())?.into_inner().groups.len();
            if user.is_none() || groups == 20 {
                Ok(())
            } else {
                Err(format!("expected 20 groups, got {groups}"))
            }
        }
    })
    .await
}

/// AddConversationsToGroup of one new id per call, each task as its own
/// user `writer<task>` (see `setup_writers`); `tag` keeps ids of phases apart.
async fn write_phase(pool: &Pool, pid: u32, c: usize, secs: Duration, tag: &'static str) -> Measured {
    let pool = pool.clone();
    closed_loop(pid, c, secs, u64::MAX, move |task, seq| {
        let mut client = pool.groups(task, Some(&format!("writer{task}")));
        async move {
            let request = pb::AddConversationsToGroupRequest {
                group_name: "g".into(),
                conversation_ids: vec![format!("C2C{tag}c{c}s{seq}")],
                expected_revision: None,
                ..Default::default()
            };
            let r = client.add_conversations_to_group(request).await.map_err(|e| e.to_string())?;
            if r.into_inner().success_conversation_ids.len() == 1 {
                Ok(())
            } else {
                Err("item failed".into())
            }
        }
    })
    .await
}

fn etcd_version(env: &Env) -> String {
    std::process::Command::new(&env.etcd_bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "etcd (version unknown)".into())
}

async fn create_group(pool: &Pool, user: &str, name: &str) {
    let request = pb::CreateConversationGroupRequest {
        group_name: name.into(),
        conversation_ids: vec!["C2Cseed".into()],
        expected_revision: None,
        ..Default::default()
    };
    pool.groups(0, Some(user)).create_conversation_group(request).await.expect("create group");
}

/// The read user: 20 groups of one conversation each.
async fn setup_reader(pool: &Pool) {
    for i in 0..20 {
        create_group(pool, "reader", &format!("group{i}")).await;
    }
}

/// One group `g` per writer user.
async fn setup_writers(pool: &Pool, count: usize) {
    for task in 0..count {
        let user = format!("writer{task}");
        let list = pool
            .groups(0, Some(&user))
            .get_conversation_group_list(pb::GetConversationGroupListRequest::default())
            .await;
        if list.expect("list").into_inner().group_names.is_empty() {
            create_group(pool, &user, "g").await;
        }
    }
}

/// The listing user: `count` registered conversations with distinct order
/// keys, written 100 per call by 8 concurrent tasks.
async fn setup_lister(pool: &Pool, count: usize) {
    let batches: Vec<usize> = (0..count.div_ceil(100)).collect();
    let mut tasks = Vec::new();
    for chunk in batches.chunks(batches.len().div_ceil(8).max(1)) {
        let (pool, chunk) = (pool.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut client = pool.convs(chunk[0], Some("lister"));
            for b in chunk {
                let conversations = (b * 100..((b + 1) * 100).min(count))
                    .map(|i| pb::ConversationUpdate {
                        conversation_id: format!("C2Cl{i:06}"),
                        order_key: Some(i as u64),
                        unread_count: Some((i % 7) as u32),
                        ..Default::default()
                    })
                    .collect();
                client.upsert_conversations(pb::UpsertConversationsRequest { conversations }).await.expect("upsert");
            }
        }));
    }
    for t in tasks {
        t.await.expect("setup task");
    }
}
