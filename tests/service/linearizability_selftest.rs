//! Self-test of the linearizability checker in `tests/linearizability/`.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::linearizability::{check, check_exhaustive, check_windowed, History, Op, Ret};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const START: u64 = 100;

fn add(c: &str) -> Op {
    Op::Add { conversation: c.to_string() }
}

fn set(members: &[&str]) -> BTreeSet<String> {
    members.iter().map(|m| m.to_string()).collect()
}

fn listed(members: &[&str], revision: u64) -> Ret {
    Ret::Listed { members: set(members), revision }
}

fn verdict(history: &History) -> Result<usize, String> {
    let windowed = check(history, START, BTreeSet::new());
    let reference = check_exhaustive(history, START, BTreeSet::new());
    assert_eq!(windowed.is_ok(), reference.is_ok(), "check: {windowed:?}\nexhaustive: {reference:?}");
    if let Err(why) = &windowed {
        println!("{why}");
    }
    windowed
}

#[test]
fn a_correct_concurrent_history_passes() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    let b = h.invoke(1, add("b"));
    let l = h.invoke(2, Op::List);
    h.ok(b, Ret::Added { revision: 101 });
    h.ok(l, listed(&["b"], 101)); // overlaps both adds: may see b only
    let l2 = h.invoke(2, Op::List);
    h.ok(a, Ret::Added { revision: 103 }); // revisions may skip
    h.ok(l2, listed(&["a", "b"], 103));
    let a2 = h.invoke(1, add("a"));
    h.ok(a2, Ret::AlreadyIn { revision: 103 });
    let l3 = h.invoke(0, Op::List);
    h.ok(l3, listed(&["a", "b"], 103));
    assert_eq!(verdict(&h), Ok(6));
}

#[test]
fn a_stale_read_fails() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.ok(a, Ret::Added { revision: 101 });
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&[], 100));
    let why = verdict(&h).unwrap_err();
    assert!(why.contains("revision 100 is below 101"), "{why}");
}

#[test]
fn a_stale_read_at_the_right_revision_fails() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.ok(a, Ret::Added { revision: 101 });
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&[], 101));
    let why = verdict(&h).unwrap_err();
    assert!(why.contains(&format!("#{l} client 1")), "{why}");
}

#[test]
fn a_lost_acknowledged_write_fails() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.ok(a, Ret::Added { revision: 101 });
    let b = h.invoke(1, add("b"));
    h.ok(b, Ret::Added { revision: 102 });
    let l = h.invoke(2, Op::List);
    h.ok(l, listed(&["b"], 102));
    let why = verdict(&h).unwrap_err();
    assert!(why.contains("missing [\"a\"]") || why.contains("+[\"b\"]"), "{why}");
}

#[test]
fn two_adds_with_the_same_revision_fail() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    let b = h.invoke(1, add("b"));
    h.ok(a, Ret::Added { revision: 101 });
    h.ok(b, Ret::Added { revision: 101 });
    let why = verdict(&h).unwrap_err();
    assert!(why.contains("same revision 101"), "{why}");
}

#[test]
fn an_unknown_add_that_later_shows_up_passes() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.unknown(a);
    let b = h.invoke(0, add("b")); // the same client moves on
    h.ok(b, Ret::Added { revision: 102 });
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a", "b"], 102));
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a", "b"], 102));
    assert_eq!(verdict(&h), Ok(4));
}

#[test]
fn an_unknown_add_that_takes_effect_after_later_ops_passes() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.unknown(a);
    let b = h.invoke(0, add("b"));
    h.ok(b, Ret::Added { revision: 101 });
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["b"], 101));
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a", "b"], 104));
    let a2 = h.invoke(2, add("a"));
    h.ok(a2, Ret::AlreadyIn { revision: 104 });
    assert_eq!(verdict(&h), Ok(5));
}

#[test]
fn an_unknown_add_that_never_shows_up_passes() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.unknown(a);
    let b = h.invoke(0, add("b"));
    h.ok(b, Ret::Added { revision: 101 });
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["b"], 101));
    let pending = h.invoke(2, add("c")); // never resolved: unknown too
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["b"], 101));
    let _ = pending;
    assert!(verdict(&h).is_ok());
}

#[test]
fn a_failed_add_that_shows_up_fails() {
    let h = History::new();
    let a = h.invoke(0, add("a"));
    h.failed(a);
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a"], 101));
    assert!(verdict(&h).is_err());
}

#[test]
fn a_read_that_sees_an_add_before_its_invocation_fails() {
    // Same revision as the add answers later: caught by real-time order.
    let h = History::new();
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a"], 101));
    let a = h.invoke(0, add("a"));
    h.ok(a, Ret::Added { revision: 101 });
    let why = verdict(&h).unwrap_err();
    assert!(why.contains("not above 101"), "{why}");

    // An unexplained member at the starting revision: caught by stateright.
    let h = History::new();
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a"], 100));
    let a = h.invoke(0, add("a"));
    h.ok(a, Ret::Added { revision: 101 });
    assert!(verdict(&h).is_err());

    // The add is still unknown when the read returns, but was invoked after it.
    let h = History::new();
    let l = h.invoke(1, Op::List);
    h.ok(l, listed(&["a"], 101));
    let a = h.invoke(0, add("a"));
    h.unknown(a);
    assert!(verdict(&h).is_err());
}

/// Records a history produced by a real sequential execution of the group
/// with random overlaps: each client invokes, the op takes effect at a random
/// later moment (its linearization point), and it returns later still. Some
/// adds end with an unknown outcome (applied, applied after the client gave
/// up, or never applied), a few fail before taking effect. With `corrupt`, an
/// answer is sometimes altered, so the history may not be linearizable.
fn generate(seed: u64, clients: usize, completed: usize, pool: usize, corrupt: f64) -> History {
    enum Phase {
        Idle,
        Invoked(usize, Op),
        Applied(usize, Ret),
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let h = History::new();
    let mut members: BTreeSet<String> = BTreeSet::new();
    let mut revision = START;
    let mut apply = |op: &Op, rng: &mut StdRng| match op {
        Op::List => Ret::Listed { members: members.clone(), revision },
        Op::Add { conversation } if members.contains(conversation) => Ret::AlreadyIn { revision },
        Op::Add { conversation } => {
            revision += rng.random_range(1..=3);
            members.insert(conversation.clone());
            Ret::Added { revision }
        }
    };
    let mut phases: Vec<Phase> = (0..clients).map(|_| Phase::Idle).collect();
    let mut limbo: Vec<Op> = Vec::new();
    let mut done = 0;
    while done < completed {
        if !limbo.is_empty() && rng.random_bool(0.02) {
            let op = limbo.swap_remove(rng.random_range(0..limbo.len()));
            apply(&op, &mut rng);
        }
        let c = rng.random_range(0..clients);
        phases[c] = match std::mem::replace(&mut phases[c], Phase::Idle) {
            Phase::Idle => {
                let op = if rng.random_bool(0.45) {
                    Op::List
                } else {
                    Op::Add { conversation: format!("conv-{}", rng.random_range(0..pool)) }
                };
                Phase::Invoked(h.invoke(c, op.clone()), op)
            }
            Phase::Invoked(call, op) if matches!(op, Op::Add { .. }) && rng.random_bool(0.01) => {
                h.unknown(call);
                if rng.random_bool(0.5) {
                    limbo.push(op);
                }
                Phase::Idle
            }
            Phase::Invoked(call, _) if rng.random_bool(0.005) => {
                h.failed(call);
                Phase::Idle
            }
            Phase::Invoked(call, op) => Phase::Applied(call, apply(&op, &mut rng)),
            Phase::Applied(call, _) if rng.random_bool(0.01) => {
                h.unknown(call);
                Phase::Idle
            }
            Phase::Applied(call, ret) => {
                let ret = if rng.random_bool(corrupt) { corrupted(ret, &mut rng) } else { ret };
                h.ok(call, ret);
                done += 1;
                Phase::Idle
            }
        };
    }
    for phase in phases {
        match phase {
            Phase::Idle | Phase::Invoked(..) => {}
            Phase::Applied(call, ret) => h.ok(call, ret),
        }
    }
    h
}

fn corrupted(ret: Ret, rng: &mut StdRng) -> Ret {
    match ret {
        Ret::Added { revision } if rng.random_bool(0.5) => Ret::AlreadyIn { revision },
        Ret::Added { revision } => Ret::Added { revision: revision - 1 },
        Ret::AlreadyIn { revision } => Ret::AlreadyIn { revision: revision + 1 },
        Ret::Listed { mut members, revision } => {
            if let Some(first) = members.iter().next().cloned().filter(|_| rng.random_bool(0.5)) {
                members.remove(&first);
            } else {
                members.insert("conv-0".to_string());
            }
            Ret::Listed { members, revision }
        }
    }
}

#[test]
fn windowed_and_pruned_checking_agrees_with_stateright_on_the_whole_history() {
    let (mut passed, mut failed) = (0, 0);
    for seed in 0..400 {
        let corrupt = if seed % 2 == 0 { 0.0 } else { 0.08 };
        let h = generate(seed, 3, 9, 4, corrupt);
        let reference = check_exhaustive(&h, START, BTreeSet::new()).is_ok();
        for min_window in [1, 4, usize::MAX] {
            let windowed = check_windowed(&h, START, BTreeSet::new(), min_window);
            assert_eq!(windowed.is_ok(), reference, "seed {seed}, min window {min_window}: {windowed:?}");
        }
        if corrupt == 0.0 {
            assert!(reference, "seed {seed}: a generated linearizable history was rejected");
        }
        if reference {
            passed += 1
        } else {
            failed += 1
        }
    }
    println!("{passed} linearizable, {failed} not");
    assert!(failed > 20, "the corrupted histories should exercise failures");
}

#[test]
fn a_2000_op_random_linearizable_history_passes() {
    for (pool, label) in [(2_000, "mostly new conversations"), (300, "many repeats")] {
        let h = generate(7, 12, 2_000, pool, 0.0);
        let (acknowledged, unknown, failed) = h.counts();
        let started = Instant::now();
        let checked = check(&h, START, BTreeSet::new());
        let elapsed = started.elapsed();
        println!(
            "{label}: {acknowledged} acknowledged, {unknown} unknown, {failed} failed; \
             checked {checked:?} in {elapsed:?}"
        );
        assert!(checked.is_ok(), "{checked:?}");
        let started = Instant::now();
        let checked = check_windowed(&h, START, BTreeSet::new(), 1);
        println!("  smallest windows: {checked:?} in {:?}", started.elapsed());
        assert!(checked.is_ok());
    }
}

#[test]
fn a_2000_op_history_with_one_lost_write_fails_quickly() {
    let h = generate_with_loss(11);
    let started = Instant::now();
    let verdict = check(&h, START, BTreeSet::new());
    println!("lost write found in {:?}: {verdict:?}", started.elapsed());
    assert!(verdict.is_err());
}

/// Like `generate` without unknowns, but every List after the 500th op
/// leaves out the conversation of the 100th acknowledged add.
fn generate_with_loss(seed: u64) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let h = History::new();
    let mut members: BTreeSet<String> = BTreeSet::new();
    let mut revision = START;
    let mut pending: Vec<Option<(usize, Op)>> = vec![None; 12];
    let mut lost: Option<String> = None;
    let (mut adds, mut done) = (0, 0);
    while done < 2_000 {
        let c = rng.random_range(0..12);
        match pending[c].take() {
            None => {
                let op = if rng.random_bool(0.45) {
                    Op::List
                } else {
                    Op::Add { conversation: format!("conv-{}", rng.random_range(0..2_000)) }
                };
                pending[c] = Some((h.invoke(c, op.clone()), op));
            }
            Some((call, op)) => {
                let ret = match op {
                    Op::List => {
                        let mut seen = members.clone();
                        if done > 500 {
                            if let Some(lost) = &lost {
                                seen.remove(lost);
                            }
                        }
                        Ret::Listed { members: seen, revision }
                    }
                    Op::Add { conversation } if members.contains(&conversation) => Ret::AlreadyIn { revision },
                    Op::Add { conversation } => {
                        revision += 1;
                        adds += 1;
                        if adds == 100 {
                            lost = Some(conversation.clone());
                        }
                        members.insert(conversation);
                        Ret::Added { revision }
                    }
                };
                h.ok(call, ret);
                done += 1;
            }
        }
    }
    h
}
