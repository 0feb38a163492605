//! Self-test of the etcd test harness in `tests/support/etcd.rs`: the faults
//! the etcd backend's tests inject must do what they say on a real
//! 3-member cluster, or those tests prove nothing.

use std::time::{Duration, Instant};

use crate::support::etcd::EtcdCluster;

/// Whether a process with this pid still exists (a zombie counts).
fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits until member `i` has applied `key` = `value` itself (a
/// serializable read on that member alone).
fn wait_member_has(cluster: &EtcdCluster, i: usize, key: &str, value: &str) {
    let deadline = Instant::now() + crate::support::etcd::DEADLINE;
    loop {
        let out = cluster.etcdctl_at(i, &["get", "--consistency=s", "--print-value-only", "--", key]);
        if matches!(&out, Ok(text) if text.trim_end() == value) {
            return;
        }
        assert!(Instant::now() < deadline, "m{i} never applied {key}={value} (last: {out:?}):\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn faults_on_a_three_member_cluster() {
    let mut cluster = EtcdCluster::start(3);
    assert_eq!(cluster.len(), 3);
    let endpoints = cluster.endpoints();
    assert_eq!(endpoints.len(), 3);
    assert!(endpoints.iter().all(|e| e.starts_with("127.0.0.1:") && !e.contains("//")), "{endpoints:?}");
    assert_eq!(cluster.endpoints_csv(), endpoints.join(","));

    // Writes and reads, including a key and value that look like flags.
    let first = cluster.put("/selftest/a", "1");
    let second = cluster.put("--selftest-b", "-v");
    assert!(second > first, "revisions increase: {first} then {second}");
    assert_eq!(cluster.get("/selftest/a").as_deref(), Some("1"));
    assert_eq!(cluster.get("--selftest-b").as_deref(), Some("-v"));
    assert_eq!(cluster.get("/selftest/absent"), None);

    // kill -9 of the leader: the other two elect a new one and keep serving.
    let old_leader = cluster.leader();
    let started = Instant::now();
    cluster.kill(old_leader);
    assert!(!cluster.is_running(old_leader));
    let new_leader = cluster.leader();
    eprintln!("new leader m{new_leader} {:?} after killing m{old_leader}", started.elapsed());
    assert_ne!(new_leader, old_leader);
    cluster.put("/selftest/after-leader-kill", "2");
    assert_eq!(cluster.get("/selftest/after-leader-kill").as_deref(), Some("2"));

    // The killed member restarts on its data directory and catches up.
    cluster.restart(old_leader);
    cluster.wait_healthy();
    wait_member_has(&cluster, old_leader, "/selftest/after-leader-kill", "2");

    // SIGSTOP of a follower: it answers nothing, the other two still commit;
    // after SIGCONT it catches up.
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    cluster.stop(follower);
    assert!(cluster.is_stopped(follower));
    let stalled = cluster.etcdctl_at(follower, &["get", "--consistency=s", "/selftest/a"]);
    assert!(stalled.is_err(), "a stopped member answered: {stalled:?}");
    cluster.put("/selftest/while-stopped", "3");
    assert_eq!(cluster.get("/selftest/while-stopped").as_deref(), Some("3"));
    cluster.resume(follower);
    cluster.wait_healthy();
    wait_member_has(&cluster, follower, "/selftest/while-stopped", "3");

    // A SIGSTOPped leader is replaced, too.
    let leader = cluster.leader();
    cluster.stop(leader);
    let replacement = cluster.leader();
    assert_ne!(replacement, leader);
    cluster.put("/selftest/leader-stopped", "4");
    cluster.resume(leader);
    cluster.wait_healthy();

    // Everything written survives kill -9 of all three members at once.
    let before = cluster.revision();
    cluster.kill_all();
    assert!((0..3).all(|i| !cluster.is_running(i)));
    cluster.restart_all();
    for (key, value) in [
        ("/selftest/a", "1"),
        ("--selftest-b", "-v"),
        ("/selftest/after-leader-kill", "2"),
        ("/selftest/while-stopped", "3"),
        ("/selftest/leader-stopped", "4"),
    ] {
        assert_eq!(cluster.get(key).as_deref(), Some(value), "{key} after kill -9 of every member");
    }
    assert!(cluster.revision() >= before, "the revision went back");

    // Compaction: reads of older revisions fail afterwards.
    let compacted = cluster.compact_to_latest();
    assert!(compacted >= before);
    let old = cluster.etcdctl_at(cluster.leader(), &["get", "--rev", &first.to_string(), "/selftest/a"]);
    assert!(matches!(&old, Err(e) if e.contains("compacted")), "read below the compaction: {old:?}");
    assert!(cluster.metrics(0).contains("etcd_server_has_leader"));
}

#[test]
fn drop_kills_and_reaps_every_member_even_a_stopped_one() {
    let mut cluster = EtcdCluster::start(3);
    cluster.stop(1);
    let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).expect("running")).collect();
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    for pid in pids {
        assert!(!process_exists(pid), "etcd pid {pid} outlived its cluster");
    }
    assert!(!dir.exists(), "the data directory {} outlived its cluster", dir.display());
}

#[test]
fn shared_endpoints_reads_the_variable() {
    // Only reads: setting variables would race with other tests.
    match std::env::var(crate::support::etcd::SHARED_ENDPOINTS_VAR) {
        Ok(v) if !v.trim().is_empty() => {
            assert_eq!(crate::support::etcd::shared_endpoints(), Some(v.trim().to_string()))
        }
        _ => assert_eq!(crate::support::etcd::shared_endpoints(), None),
    }
}
