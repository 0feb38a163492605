//! The manual order of a group, as ranks: each member has a `u64` rank and
//! the order is rank ascending, then id. Ranks start in the middle of the
//! range ([`FIRST`]) and leave gaps ([`STEP`]): a member that joins takes
//! the last rank plus a step, a move to either end takes the rank a step
//! beyond it (room for 2^31 of each), and a move between two members
//! takes ranks between theirs, rewriting only the moved members. Only when
//! a gap is too small (after some 30 moves into the very same spot) is the
//! whole group renumbered (one write per member, bounded by
//! `max_conversations_per_group`); that bumps the group's order epoch, so a
//! page token of the old ranks is refused instead of misread. Members
//! stored before ranks existed have rank 0 (ties broken by id); the first
//! move among them renumbers.

use super::{ConversationId, Placement};

/// The distance between ranks handed out by appends, moves to the ends and
/// renumbering.
pub const STEP: u64 = 1 << 32;

/// The rank of the first member, in the middle so that moves to the start
/// have as much room as appends.
pub const FIRST: u64 = 1 << 63;

/// The rank of a member that joins after `last` (the group's highest rank
/// so far; 0 before any). Saturates: after 2^31 appends without a
/// renumbering, ties fall back to the id.
pub fn append_rank(last: u64) -> u64 {
    if last == 0 {
        FIRST
    } else {
        last.saturating_add(STEP)
    }
}

/// New ranks of a move: the members whose rank changes, and whether that
/// is a renumbering of the whole group (every other rank changed too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranks {
    pub changes: Vec<(ConversationId, u64)>,
    pub renumbered: bool,
}

/// Where the anchor of a move is missing from `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorNotFound;

/// New ranks for a move of `moving` (members of `order`, distinct, in their
/// new order) to `placement`, whose anchor (a member not in `moving`) is
/// checked here. `order` is the current manual order, `(id, rank)` sorted by
/// rank then id. Returns the members whose rank changes, with the new
/// ranks: only the moved ones while the gap has room, otherwise every
/// member.
pub fn move_ranks(
    order: &[(ConversationId, u64)],
    moving: &[ConversationId],
    placement: &Placement,
) -> Result<Ranks, AnchorNotFound> {
    let rest: Vec<&(ConversationId, u64)> = order.iter().filter(|(id, _)| !moving.contains(id)).collect();
    // The gap is between rest[at - 1] and rest[at].
    let at = match placement {
        Placement::Start => 0,
        Placement::End => rest.len(),
        Placement::Before(anchor) => rest.iter().position(|(id, _)| id == anchor).ok_or(AnchorNotFound)?,
        Placement::After(anchor) => rest.iter().position(|(id, _)| id == anchor).ok_or(AnchorNotFound)? + 1,
    };
    let k = moving.len() as u64;
    let low = if at == 0 { None } else { Some(rest[at - 1].1) };
    let high = rest.get(at).map(|(_, rank)| *rank);
    let (lo, hi) = (low.unwrap_or(0), high.unwrap_or(u64::MAX));
    // Strictly between lo and hi: hi - lo - 1 free values. A rank of 0 is
    // kept free below the first member so that "to the start" has room.
    if hi > lo && hi - lo > k {
        let room = hi - lo;
        let step = (room / (k + 1)).clamp(1, STEP);
        let ranks: Vec<u64> = match (low, high) {
            // At the end: right after the last, a step apart, as appends.
            (_, None) => (1..=k).map(|i| lo + step * i).collect(),
            // At the start: right before the first.
            (None, Some(hi)) => (1..=k).map(|i| hi - step * (k + 1 - i)).collect(),
            // Between two: spread evenly.
            (Some(lo), Some(_)) => {
                let step = room / (k + 1);
                (1..=k).map(|i| lo + step * i).collect()
            }
        };
        return Ok(Ranks { changes: moving.iter().cloned().zip(ranks).collect(), renumbered: false });
    }
    let mut ids: Vec<&ConversationId> = rest.iter().map(|(id, _)| id).collect();
    ids.splice(at..at, moving.iter());
    let changes = ids.into_iter().enumerate().map(|(i, id)| (id.clone(), FIRST + STEP * i as u64)).collect();
    Ok(Ranks { changes, renumbered: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ConversationId {
        ConversationId::parse(&format!("C2C{s}")).unwrap()
    }

    /// Applies the changes and returns the order of ids.
    fn apply(order: &[(ConversationId, u64)], changes: &[(ConversationId, u64)]) -> Vec<String> {
        let mut all: Vec<(ConversationId, u64)> = order
            .iter()
            .map(|(i, r)| (i.clone(), changes.iter().find(|(c, _)| c == i).map_or(*r, |(_, r)| *r)))
            .collect();
        all.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        all.into_iter().map(|(i, _)| i.as_str()[3..].to_string()).collect()
    }

    #[test]
    fn moves_place_ids_in_request_order_and_renumber_only_when_needed() {
        let order: Vec<_> =
            ["a", "b", "c", "d"].iter().enumerate().map(|(i, s)| (id(s), FIRST + STEP * i as u64)).collect();
        let mv = |ids: &[&str], p: Placement| {
            let moving: Vec<_> = ids.iter().map(|s| id(s)).collect();
            let ranks = move_ranks(&order, &moving, &p).unwrap();
            assert!(!ranks.renumbered);
            (apply(&order, &ranks.changes), ranks.changes.len())
        };
        assert_eq!(mv(&["d", "c"], Placement::Start), (vec!["d".into(), "c".into(), "a".into(), "b".into()], 2));
        assert_eq!(mv(&["a"], Placement::End), (vec!["b".into(), "c".into(), "d".into(), "a".into()], 1));
        assert_eq!(mv(&["d"], Placement::Before(id("b"))), (vec!["a".into(), "d".into(), "b".into(), "c".into()], 1));
        assert_eq!(
            mv(&["a", "b"], Placement::After(id("c"))),
            (vec!["c".into(), "a".into(), "b".into(), "d".into()], 2)
        );
        assert_eq!(move_ranks(&order, &[id("a")], &Placement::After(id("a"))), Err(AnchorNotFound));
        assert_eq!(move_ranks(&order, &[id("a")], &Placement::Before(id("zz"))), Err(AnchorNotFound));
        // Ties (ranks stored before ranks existed) renumber the group.
        let legacy: Vec<_> = ["a", "b", "c"].iter().map(|s| (id(s), 0)).collect();
        let ranks = move_ranks(&legacy, &[id("c")], &Placement::Before(id("b"))).unwrap();
        assert_eq!(apply(&legacy, &ranks.changes), ["a", "c", "b"]);
        assert!(ranks.renumbered);
        assert_eq!(ranks.changes.len(), 3);
    }

    #[test]
    fn repeated_moves_into_one_gap_stay_correct_through_renumbering() {
        let mut order: Vec<_> = ["a", "b"].iter().enumerate().map(|(i, s)| (id(s), FIRST + STEP * i as u64)).collect();
        let mut expect = vec!["a".to_string(), "b".to_string()];
        let mut renumbered = 0;
        for n in 0..80 {
            let new = id(&format!("n{n}"));
            order.push((new.clone(), append_rank(order.iter().map(|(_, r)| *r).max().unwrap())));
            // Always right after "a": the gap halves each time.
            let ranks = move_ranks(&order, std::slice::from_ref(&new), &Placement::After(id("a"))).unwrap();
            renumbered += usize::from(ranks.renumbered);
            for (cid, rank) in ranks.changes {
                order.iter_mut().find(|(i, _)| *i == cid).unwrap().1 = rank;
            }
            order.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            expect.insert(1, format!("n{n}"));
            assert_eq!(apply(&order, &[]), expect, "after move {n}");
        }
        // Some 32 moves into one spot fit a gap of 2^32; 80 need a few
        // renumberings, and no more.
        assert!((1..=3).contains(&renumbered), "{renumbered} renumberings");
    }

    #[test]
    fn moves_to_either_end_never_renumber() {
        let mut order = vec![(id("a"), FIRST), (id("b"), FIRST + STEP)];
        for n in 0..1000 {
            let which = if n % 2 == 0 { Placement::Start } else { Placement::End };
            let moving = order[if n % 2 == 0 { order.len() - 1 } else { 0 }].0.clone();
            let ranks = move_ranks(&order, std::slice::from_ref(&moving), &which).unwrap();
            assert!(!ranks.renumbered, "move {n}");
            for (cid, rank) in ranks.changes {
                order.iter_mut().find(|(i, _)| *i == cid).unwrap().1 = rank;
            }
            order.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        }
    }
}
