//! Soak (issue item 7): thousands of watch streams open and close against
//! a server child process under a steady write load, over loopback only.
//! Afterwards the server's open-watcher gauge (Prometheus
//! `convgroups_watchers`, scraped from `--metrics-listen`) is back to zero,
//! its resident memory (VmRSS) after warm-up stays flat within a bound, and
//! its open file descriptors are back where they were. Prints a table of
//! figures for docs/performance.md.
//!
//! Small by default so it runs in CI as a real check (debug build, well
//! under 30 s). `scripts/soak.sh` runs a long one against the release
//! binary. Knobs (environment):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CONVGROUPS_SOAK_WATCHERS` | 3000 | watch streams opened (and closed) in all |
//! | `CONVGROUPS_SOAK_CONCURRENCY` | 200 | streams open at once, at most |
//! | `CONVGROUPS_SOAK_USERS` | 30 | users the streams and writes spread over |
//! | `CONVGROUPS_SOAK_WRITERS` | 4 | concurrent writers |
//! | `CONVGROUPS_SOAK_MAX_SECS` | 120 | hard bound: stop opening streams after it |
//! | `CONVGROUPS_SOAK_RSS_SLACK_MIB` | 48 | allowed RSS growth after warm-up |
//! | `CONVGROUPS_SOAK_WARMUP_WRITES` | 0 | writes (alone) before the first stream |
//! | `CONVGROUPS_SOAK_SEED` | clock | seed of the random schedule |

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convgroups::pb::watch_group_events_response::Kind;
use convgroups::pb::*;
use support::reliability::*;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

/// Shared client connections, and how many streams each carries before it
/// is replaced (see where they are used).
const POOL_CONNECTIONS: usize = 8;
const POOL_CONNECTION_STREAMS: u64 = 500;
/// New client connections per second, at most (see where it is used).
const OWN_CONNECTIONS_PER_SEC: f64 = 300.0;

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    closed: AtomicU64,
    failed: AtomicU64,
    events: AtomicU64,
    bookmarks: AtomicU64,
    snapshots: AtomicU64,
    /// Streams refused with REVISION_COMPACTED (start before retention).
    compacted: AtomicU64,
    writes: AtomicU64,
    /// Highest revision acknowledged to a writer.
    revision: AtomicU64,
    /// Own connections opened by watchers (the rest share a pool).
    connections: AtomicU64,
    /// Replacements of pool connections.
    pool_connections: AtomicU64,
}

fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// One writer: groups and members of random users, until `stop`.
async fn writer(channel: Channel, tokens: Arc<Vec<String>>, mut rng: Rng, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    let mut clients: Vec<GroupClient> = tokens.iter().map(|t| group_client(channel.clone(), t)).collect();
    while !stop.load(Ordering::Relaxed) {
        let u = rng.below(clients.len() as u64) as usize;
        let gc = &mut clients[u];
        let group = format!("g{}", rng.below(5));
        let ids: Vec<String> = (0..rng.range(1, 8)).map(|_| format!("C2Cpeer{}", rng.below(60))).collect();
        // (revision, whether the write changed something)
        let answer = match rng.below(3) {
            0 => gc
                .create_conversation_group(CreateConversationGroupRequest {
                    group_name: group,
                    conversation_ids: ids,
                    expected_revision: None,
                    sort_mode: None,
                })
                .await
                .map(|r| (r.into_inner().revision, true)),
            1 => gc
                .add_conversations_to_group(AddConversationsToGroupRequest {
                    group_name: group,
                    conversation_ids: ids,
                    expected_revision: None,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
                .map(|r| (r.revision, !r.success_conversation_ids.is_empty())),
            _ => gc
                .delete_conversations_from_group(DeleteConversationsFromGroupRequest {
                    group_name: group,
                    conversation_ids: ids,
                    expected_revision: None,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
                .map(|r| (r.revision, !r.success_conversation_ids.is_empty())),
        };
        match answer {
            Ok((revision, changed)) => {
                c.writes.fetch_add(1, Ordering::Relaxed);
                // Only the revisions of changes: a no-op answer may report
                // a revision that is not durable yet (see
                // tests/crash.rs, answers_report_only_durable_revisions).
                if changed {
                    c.revision.fetch_max(revision, Ordering::Relaxed);
                }
            }
            // Expected refusals of random operations: group exists / does
            // not exist yet.
            Err(status) if matches!(reason(&status).as_str(), "GROUP_ALREADY_EXISTS" | "GROUP_NOT_FOUND") => {}
            Err(status) => panic!("write failed: {status:?}"),
        }
    }
}

/// One watch stream: opens, reads for a while (checking order), drops.
async fn watcher(gc: &mut GroupClient, rng: &mut Rng, c: &Counters, all_users: bool) -> Result<(), String> {
    let current = c.revision.load(Ordering::Relaxed);
    let mode = rng.below(10);
    let request = match mode {
        _ if all_users => WatchGroupEventsRequest { all_users: true, ..Default::default() },
        0..=1 if current > 0 => WatchGroupEventsRequest {
            start_revision: current.saturating_sub(rng.below(30)).max(1),
            ..Default::default()
        },
        2 => WatchGroupEventsRequest { send_snapshot: true, ..Default::default() },
        _ => WatchGroupEventsRequest::default(),
    };
    let mut stream = match gc.watch_group_events(request).await {
        Ok(response) => response.into_inner(),
        // Trimmed by the (short) retention meanwhile: a valid answer.
        Err(status) if reason(&status) == "REVISION_COMPACTED" => {
            c.compacted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Err(status) => return Err(format!("open: {status:?}")),
    };
    c.opened.fetch_add(1, Ordering::Relaxed);
    let lifetime = Duration::from_millis(rng.range(0, 400));
    let deadline = tokio::time::Instant::now() + lifetime;
    let mut last = 0u64;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        let message = match next {
            Err(_) => break, // lifetime over: disconnect mid-stream
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return Err("stream ended by the server".into()),
            Ok(Err(s)) => return Err(format!("stream failed: {s:?}")),
        };
        match message.kind {
            Some(Kind::Events(batch)) => {
                if batch.revision <= last {
                    return Err(format!("batch {} after revision {last}", batch.revision));
                }
                last = batch.revision;
                c.events.fetch_add(1, Ordering::Relaxed);
            }
            Some(Kind::Bookmark(b)) => {
                if b.revision < last {
                    return Err(format!("bookmark {} after revision {last}", b.revision));
                }
                last = b.revision;
                c.bookmarks.fetch_add(1, Ordering::Relaxed);
            }
            Some(Kind::Snapshot(s)) => {
                last = s.revision;
                c.snapshots.fetch_add(1, Ordering::Relaxed);
            }
            None => return Err("empty message".into()),
        }
    }
    drop(stream);
    c.closed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_watchers_come_and_go_under_writes_without_leaks() {
    let total = env_u64("CONVGROUPS_SOAK_WATCHERS", 3000);
    let concurrency = env_u64("CONVGROUPS_SOAK_CONCURRENCY", 200).max(1);
    let users = env_u64("CONVGROUPS_SOAK_USERS", 30).max(1);
    let writers = env_u64("CONVGROUPS_SOAK_WRITERS", 4);
    let max_secs = env_u64("CONVGROUPS_SOAK_MAX_SECS", 120);
    let slack_mib = env_u64("CONVGROUPS_SOAK_RSS_SLACK_MIB", 48);
    let warmup_writes = env_u64("CONVGROUPS_SOAK_WARMUP_WRITES", 0);
    let seed = seed_from_env("CONVGROUPS_SOAK_SEED");
    eprintln!(
        "soak: {BIN}; {total} watch streams, {concurrency} at once, {users} users, {writers} writers, at most {max_secs} s"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("data");
    let tokens: Arc<Vec<String>> =
        Arc::new((0..users).map(|u| mint_token(&data_dir, &format!("soak{u}"), false)).collect());
    let admin = mint_token(&data_dir, "soak-admin", true);
    let metrics = format!("127.0.0.1:{}", free_port());
    let per_user = (concurrency + 100).to_string();
    let server = ServerProcess::start_healthy(
        &data_dir,
        &tmp.path().join("server.log"),
        &[
            "--metrics-listen",
            &metrics,
            "--max-watchers-per-user",
            &per_user,
            "--bookmark-interval",
            "200ms",
            // A bounded event log, so a long soak's data stays bounded and
            // RSS growth would mean a leak, not more data.
            "--retain-for",
            "3s",
            "--retain-events-per-user",
            "20",
            "--compact-interval",
            "1s",
            "--log-level",
            "warn",
        ],
    )
    .await;
    let metrics_addr = server.metrics_addr.expect("metrics address");
    let pid = server.pid();
    let gauge = move || scrape_metric(metrics_addr, "convgroups_watchers").unwrap_or(0.0);

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let rss_start = server.rss_kib().expect("VmRSS");

    // Write load.
    let mut writer_tasks = Vec::new();
    for w in 0..writers {
        let channel = server.try_channel().await.expect("connect");
        let task = writer(channel, tokens.clone(), Rng::derive(seed, 1000 + w), stop.clone(), counters.clone());
        writer_tasks.push(tokio::spawn(task));
    }

    // Sampler: peak RSS and peak open watchers.
    let peak_rss = Arc::new(AtomicU64::new(0));
    let peak_watchers = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak_rss, peak_watchers, stop, c) =
            (peak_rss.clone(), peak_watchers.clone(), stop.clone(), counters.clone());
        tokio::spawn(async move {
            // (seconds, RSS KiB, writes so far, streams opened so far)
            let mut series = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss_kib(pid) {
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                    let (writes, opened) = (c.writes.load(Ordering::Relaxed), c.opened.load(Ordering::Relaxed));
                    series.push((started.elapsed().as_secs_f64(), rss, writes, opened));
                }
                let open = tokio::task::spawn_blocking(gauge).await.unwrap_or(0.0);
                peak_watchers.fetch_max(open as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            series
        })
    };

    // Write-only warm-up: sled's memory grows with the first tens of
    // thousands of writes (its cache and page table fill up, then level
    // off), which is not what this test is about. Bounded by a third of the
    // time limit.
    let warmup_deadline = Instant::now() + Duration::from_secs(max_secs / 3);
    while counters.writes.load(Ordering::Relaxed) < warmup_writes && Instant::now() < warmup_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warmup_done = (started.elapsed(), counters.writes.load(Ordering::Relaxed), server.rss_kib().unwrap_or(0));
    let watch_started = Instant::now();
    let watch_secs = max_secs.saturating_sub(warmup_done.0.as_secs()).max(1);

    // Watchers: `total` streams, `concurrency` at a time, over a pool of
    // shared connections, every fourth on a connection of its own. A pool
    // connection is replaced after POOL_CONNECTION_STREAMS streams: the
    // client's HTTP/2 library tears down a connection on which it had to
    // reset too many streams (GOAWAY ENHANCE_YOUR_CALM
    // "too_many_internal_resets", 1024 in h2 0.4), which a long soak of
    // cancelled streams reaches.
    let mut pool: Vec<(Channel, u64)> = Vec::new();
    for _ in 0..POOL_CONNECTIONS {
        pool.push((server.try_channel().await.expect("connect"), 0));
    }
    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let mut rng = Rng::new(seed);
    let mut tasks = Vec::new();
    let (mut rss_warm, mut rss_mid, mut fds_warm) = (None, None, None);
    let mut spawned = 0;
    while spawned < total {
        if watch_started.elapsed() > Duration::from_secs(watch_secs) {
            eprintln!("soak: time bound reached after {spawned} streams");
            break;
        }
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        spawned += 1;
        // Warm-up: the first tenth of the streams or of the time bound,
        // whichever ends first; its end is the baseline.
        let progress = (spawned as f64 / total as f64).max(watch_started.elapsed().as_secs_f64() / watch_secs as f64);
        if rss_warm.is_none() && progress >= 0.1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            rss_warm = server.rss_kib();
            fds_warm = fd_count(pid);
        }
        if rss_mid.is_none() && progress >= 0.5 {
            rss_mid = server.rss_kib();
        }
        let all_users = rng.percent(5);
        let user = rng.below(users) as usize;
        let token = if all_users { admin.clone() } else { tokens[user].clone() };
        // A quarter of the streams on a connection of their own, but at most
        // OWN_CONNECTIONS_PER_SEC: each closed connection holds a loopback
        // port in TIME_WAIT for a minute, and there are only ~28k of them.
        let own_budget = (started.elapsed().as_secs_f64() * OWN_CONNECTIONS_PER_SEC) as u64 + 50;
        let own_connection = rng.percent(25) && counters.connections.load(Ordering::Relaxed) < own_budget;
        let channel = if own_connection {
            counters.connections.fetch_add(1, Ordering::Relaxed);
            server.lazy_channel()
        } else {
            let slot = &mut pool[rng.below(POOL_CONNECTIONS as u64) as usize];
            if slot.1 >= POOL_CONNECTION_STREAMS {
                *slot = (server.lazy_channel(), 0);
                counters.pool_connections.fetch_add(1, Ordering::Relaxed);
            }
            slot.1 += 1;
            slot.0.clone()
        };
        let mut task_rng = Rng::derive(seed, spawned);
        let c = counters.clone();
        tasks.push(tokio::spawn(async move {
            let mut gc = group_client(channel, &token);
            let result = watcher(&mut gc, &mut task_rng, &c, all_users).await;
            if result.is_err() {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
            result
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.expect("watcher task panicked") {
            failures.push(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in writer_tasks {
        task.await.expect("writer panicked");
    }
    let series = sampler.await.expect("sampler");
    drop(pool);
    let elapsed = started.elapsed();

    // Open watchers back to zero (bounded wait: the server notices each
    // disconnect on its own schedule).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut open = gauge();
    while open != 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = tokio::task::spawn_blocking(gauge).await.unwrap_or(-1.0);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_end = server.rss_kib().expect("VmRSS");
    let fds_end = fd_count(pid).unwrap_or(0);
    let rss_warm = rss_warm.unwrap_or(rss_start);
    let rss_mid = rss_mid.unwrap_or(rss_warm);
    let fds_warm = fds_warm.unwrap_or(fds_end);
    let c = &counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    println!("\nsoak figures ({} build, seed {seed})", if cfg!(debug_assertions) { "debug" } else { "release" });
    println!("| figure | value |\n|---|---|");
    println!("| duration | {:.1} s |", elapsed.as_secs_f64());
    println!(
        "| write-only warm-up | {:.1} s, {} writes, RSS {} |",
        warmup_done.0.as_secs_f64(),
        warmup_done.1,
        mib(warmup_done.2)
    );
    println!("| watch streams opened / closed by the client | {} / {} |", load(&c.opened), load(&c.closed));
    println!("| streams failed | {} |", load(&c.failed));
    println!("| streams refused as compacted (start before retention) | {} |", load(&c.compacted));
    println!("| streams open at once (server gauge, peak) | {} |", load(&peak_watchers));
    println!(
        "| client connections: own / shared (replaced every {POOL_CONNECTION_STREAMS} streams) | {} / {} |",
        load(&c.connections),
        POOL_CONNECTIONS as u64 + load(&c.pool_connections)
    );
    println!("| writes acknowledged | {} ({:.0}/s) |", load(&c.writes), load(&c.writes) as f64 / elapsed.as_secs_f64());
    println!(
        "| batches / bookmarks / snapshots received | {} / {} / {} |",
        load(&c.events),
        load(&c.bookmarks),
        load(&c.snapshots)
    );
    println!("| open watchers at the end (convgroups_watchers) | {open} |");
    println!(
        "| server RSS: start / after warm-up / middle / end / peak | {} / {} / {} / {} / {} |",
        mib(rss_start),
        mib(rss_warm),
        mib(rss_mid),
        mib(rss_end),
        mib(load(&peak_rss).max(rss_end))
    );
    println!("| server open fds: after warm-up / end | {fds_warm} / {fds_end} |");
    let points: Vec<String> = (1..=10)
        .filter_map(|i| series.get((series.len() * i / 10).saturating_sub(1)))
        .map(|(t, rss, writes, opened)| {
            format!("{t:.0} s: {:.0} MiB ({opened} streams, {writes} writes)", *rss as f64 / 1024.0)
        })
        .collect();
    println!("| server RSS over time | {} |", points.join("; "));

    assert!(
        failures.is_empty(),
        "{} watch streams failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(open, 0.0, "open watchers (convgroups_watchers) must return to zero after every stream closed");
    assert!(load(&peak_watchers) > 0, "the watcher gauge never rose: is the metrics endpoint up?");
    assert_eq!(load(&c.opened), load(&c.closed), "every opened stream was closed by the client");
    let bound = rss_warm + slack_mib * 1024;
    assert!(
        rss_end <= bound,
        "server RSS grew from {} after warm-up to {} at the end (bound {}): a leak?",
        mib(rss_warm),
        mib(rss_end),
        mib(bound)
    );
    assert!(
        fds_end <= fds_warm + 8,
        "server open file descriptors grew from {fds_warm} after warm-up to {fds_end}: leaked connections?"
    );
}
