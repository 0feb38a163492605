//! Model-based tests: random sequences of every operation, for two users
//! (each also reached through an admin token acting for them), against a
//! small in-memory reference model written from the contract
//! (`shared/spec/convgroups-v1.md`) and the proto comments, not from the
//! server code.
//!
//! After every step the service's answer (status code, ErrorInfo reason and
//! field, success ids, per-item codes, response revision, group views) must
//! be one the model allows, and then every user's observable state (group
//! list with counts, unread totals and revision; the complete conversation
//! listing, walked page by page) and the event each user's watch stream
//! received must equal the model's.
//!
//! Small limits make every boundary frequent: 3 groups, 6-byte names, 4
//! conversations per group, 4 ids per request, 1 pin, 3 bytes of
//! custom_data, 8-byte text fields, 2 marks, pages of 3 (at most 4), 4-byte
//! group icons and 3 bytes of group custom_data.
//!
//! Runs 32 cases of up to 40 steps by default; `PROPTEST_CASES=500 cargo
//! test --test service model` runs longer. Where the contract leaves an order of
//! checks open (two errors at once, two per-item codes at once) the model
//! accepts either answer; see `ErrSpec` lists below.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::support::inproc::*;
use convgroups::config::Config;
use convgroups::pb::group_event::Kind as Ev;
use convgroups::pb::watch_group_events_response::Kind as WatchKind;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::{self, ConversationFilter, ConversationUpdate};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const MAX_GROUPS: usize = 3;
const MAX_NAME: usize = 6;
const MAX_PER_GROUP: usize = 4;
const MAX_IDS: usize = 4;
const MAX_PINNED: usize = 1;
const MAX_CUSTOM: usize = 3;
const MAX_TEXT: usize = 8;
const MAX_MARKS: usize = 2;
const DEFAULT_PAGE: usize = 3;
const MAX_PAGE: usize = 4;
const MAX_RULE_IDS: usize = 3;
const MAX_ICON: usize = 4;
const MAX_GROUP_CUSTOM: usize = 3;
const MAX_GROUP_PINS: usize = 2;

const USERS: usize = 2;
const DEFAULT_CASES: u32 = 32;
const MAX_STEPS: usize = 40;

/// How long a watch stream may take to deliver the batch of an
/// acknowledged mutation.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn configure(c: &mut Config) {
    c.limits.max_groups = MAX_GROUPS;
    c.limits.max_group_name_bytes = MAX_NAME;
    c.limits.max_conversations_per_group = MAX_PER_GROUP;
    c.limits.max_ids_per_request = MAX_IDS;
    c.limits.max_pinned = MAX_PINNED;
    c.limits.max_custom_data_bytes = MAX_CUSTOM;
    c.limits.max_text_field_bytes = MAX_TEXT;
    c.limits.max_marks = MAX_MARKS;
    c.limits.default_page_size = DEFAULT_PAGE;
    c.limits.max_page_size = MAX_PAGE;
    c.limits.max_rule_ids = MAX_RULE_IDS;
    c.limits.max_group_icon_bytes = MAX_ICON;
    c.limits.max_group_custom_data_bytes = MAX_GROUP_CUSTOM;
    c.limits.max_pinned_per_group = MAX_GROUP_PINS;
    // No idle bookmarks: the streams must carry exactly the model's batches.
    c.watch.bookmark_interval = Duration::from_secs(3600);
}

// ---------------------------------------------------------------------------
// Pools the operations draw from
// ---------------------------------------------------------------------------

/// Conversation ids: the first `VALID_IDS` are valid (canonical, native
/// aliases of canonical ones, the 128-byte maximum), the rest malformed.
fn id_pool() -> Vec<String> {
    let mut pool: Vec<String> = ["C2Ca", "c2c_a", "C2Cb", "c2c_b", "C2Cc", "GROUPg", "group_g", "GROUPh", "GROUP~"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    pool.push(format!("C2C{}", "m".repeat(128)));
    assert_eq!(pool.len(), VALID_IDS);
    pool.extend(["C2C", "x", "c2c_", "Group_x", "C2Ca b", "C2C\u{e9}", ""].iter().map(|s| s.to_string()));
    pool.push(format!("group_{}", "n".repeat(129)));
    assert_eq!(pool.len(), ID_POOL);
    assert!(pool.iter().enumerate().all(|(i, id)| canonical(id).is_some() == (i < VALID_IDS)));
    pool
}
const VALID_IDS: usize = 10;
const ID_POOL: usize = 18;

/// Group names: the first `VALID_NAMES` are valid (ASCII, multi-byte, at
/// the byte limit, with a space, a decomposed twin of a precomposed one:
/// names compare byte for byte), the rest not (too long, empty, C0 and C1
/// controls).
fn name_pool() -> Vec<String> {
    let pool = [
        "A",
        "B",
        "C",
        "D",
        "E",
        "\u{e9}\u{e8}",
        "abcdef",
        "a b",
        "e\u{301}\u{e8}",
        "abcdefg",
        "",
        "a\u{7}",
        "x\u{85}",
        "\u{e9}\u{e8}\u{ea}\u{eb}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>();
    assert_eq!(pool.len(), NAME_POOL);
    assert!(pool.iter().enumerate().all(|(i, n)| name_ok(n) == (i < VALID_NAMES)), "the pool's valid names come first");
    pool
}
const VALID_NAMES: usize = 9;
const NAME_POOL: usize = 14;

/// Text field values: empty, short, UTF-8, exactly at and over the limit.
const TEXTS: [&str; 5] = ["", "x", "Zo\u{eb}", "12345678", "123456789"];

/// Group icons: none, one- to four-byte ones (at the limit), over the
/// limit, and with a control character.
const ICONS: [&str; 6] = ["", "*", "\u{2605}", "\u{1f69a}", "abcde", "a\tb"];

/// update_mask paths: the four fields, the wildcard, and two that name
/// no field.
const PATHS: [&str; 7] = ["icon", "color", "collapsed", "custom_data", "*", "name", "look.icon"];

const TIMES: [Option<(i64, i32)>; 4] = [None, Some((0, 0)), Some((1_700_000_000, 123_000_000)), Some((-5, 0))];

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Who {
    user: usize,
    /// Call through an admin token with `x-convgroups-user`.
    admin: bool,
}

/// A group name: one the user has now (by position), or one from the pool.
#[derive(Clone, Copy, Debug)]
enum NameSel {
    Existing(usize),
    Pool(usize),
}

#[derive(Clone, Copy, Debug)]
enum Rev {
    Unset,
    Right,
    Prev,
    Next,
    Zero,
    Max,
}

#[derive(Clone, Debug)]
enum Perm {
    Shuffle(u64),
    Same,
    DropOne(usize),
    DupOne(usize),
    Unknown(usize),
    Empty,
}

#[derive(Clone, Debug)]
struct Upd {
    id: usize,
    show_name: Option<usize>,
    face_url: Option<usize>,
    unread: Option<u32>,
    pinned: Option<bool>,
    order_key: Option<u64>,
    recv_opt: Option<i32>,
    marks: Option<Vec<u64>>,
    /// add_marks, remove_marks.
    mark_edits: (Vec<u64>, Vec<u64>),
    custom: Option<Vec<u8>>,
    at: Option<bool>,
    last: Option<(usize, usize, usize)>,
}

#[derive(Clone, Debug)]
struct Filt {
    kind: Option<i32>,
    group: Option<Option<NameSel>>,
    mark: Option<u64>,
    unread: Option<bool>,
    at: Option<bool>,
    ids: Vec<usize>,
}

/// A smart group's rule: criteria, and ids (pool indexes) to include and
/// exclude.
#[derive(Clone, Debug)]
struct RuleGen {
    kind: Option<i32>,
    mark: Option<u64>,
    unread: Option<bool>,
    muted: Option<bool>,
    ungrouped: Option<bool>,
    at: Option<bool>,
    include: Vec<usize>,
    exclude: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        who: Who,
        name: usize,
        ids: Vec<usize>,
        rule: Option<RuleGen>,
        rev: Rev,
    },
    SetRule {
        who: Who,
        name: NameSel,
        rule: Option<RuleGen>,
        rev: Rev,
    },
    Delete {
        who: Who,
        name: NameSel,
        rev: Rev,
    },
    Rename {
        who: Who,
        old: NameSel,
        new: NameSel,
        rev: Rev,
    },
    Reorder {
        who: Who,
        perm: Perm,
        rev: Rev,
    },
    Add {
        who: Who,
        name: NameSel,
        ids: Vec<usize>,
        rev: Rev,
    },
    Remove {
        who: Who,
        name: NameSel,
        ids: Vec<usize>,
        rev: Rev,
    },
    Upsert {
        who: Who,
        items: Vec<Upd>,
    },
    DeleteConvs {
        who: Who,
        ids: Vec<usize>,
    },
    List {
        who: Who,
        filter: Filt,
        page_size: u32,
    },
    Unread {
        who: Who,
        filter: Filt,
    },
    MarkRead {
        who: Who,
        name: NameSel,
        rev: Rev,
    },
    /// `opt` 0..=6: 0 (UNSPECIFIED) and 6 (unknown) are refused.
    Mute {
        who: Who,
        name: NameSel,
        opt: i32,
        new_members: bool,
        rev: Rev,
    },
    Move {
        who: Who,
        from: Option<NameSel>,
        to: Vec<NameSel>,
        ids: Vec<usize>,
        rev: Rev,
    },
    /// UpdateConversationGroup, by name or (`by_id`, existing groups
    /// only) by id.
    Update {
        who: Who,
        name: NameSel,
        by_id: bool,
        look: LookSel,
        paths: Vec<usize>,
        rev: Rev,
    },
    /// SetConversationGroupSortMode; `mode` may be UNSPECIFIED or unknown.
    SetMode {
        who: Who,
        name: NameSel,
        mode: i32,
        rev: Rev,
    },
    /// MoveConversationsInGroup: `place` 0 before, 1 after (the anchor from
    /// the id pool), 2 start, 3 end, 4 none.
    MoveIn {
        who: Who,
        name: NameSel,
        ids: Vec<usize>,
        place: (u8, usize),
        rev: Rev,
    },
    /// PinConversationsInGroup (`pin`) or UnpinConversationsInGroup.
    Pin {
        who: Who,
        name: NameSel,
        ids: Vec<usize>,
        pin: bool,
        rev: Rev,
    },
}

impl Op {
    /// The same move with another `expected_revision`.
    fn clone_with_rev(self, rev: Rev) -> Op {
        match self {
            Op::Move { who, from, to, ids, .. } => Op::Move { who, from, to, ids, rev },
            other => other,
        }
    }
}

/// A GroupLook drawn from the pools: icon index, colour value (8 and -1
/// are not colours), collapsed, custom data.
#[derive(Clone, Debug)]
struct LookSel {
    icon: usize,
    color: i32,
    collapsed: bool,
    custom: Vec<u8>,
}

fn look_sel() -> impl Strategy<Value = LookSel> {
    (
        0..ICONS.len(),
        prop_oneof![8 => 0..=7i32, 1 => Just(8), 1 => Just(-1)],
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..=MAX_GROUP_CUSTOM + 1),
    )
        .prop_map(|(icon, color, collapsed, custom)| LookSel { icon, color, collapsed, custom })
}

/// Mostly one or two known paths; sometimes none, the wildcard, or an
/// unknown one.
fn paths() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(Vec::new()),
        12 => prop::collection::vec(0..4usize, 1..=3),
        2 => prop::collection::vec(0..PATHS.len(), 1..=3),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    (prop::bool::weighted(0.3), prop::bool::weighted(0.25))
        .prop_map(|(other, admin)| Who { user: usize::from(other), admin })
}

fn name_sel() -> impl Strategy<Value = NameSel> {
    prop_oneof![6 => (0..MAX_GROUPS).prop_map(NameSel::Existing), 2 => pool_name().prop_map(NameSel::Pool)]
}

/// Mostly valid names, sometimes invalid ones.
fn pool_name() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0..VALID_NAMES, 1 => VALID_NAMES..NAME_POOL]
}

fn rev() -> impl Strategy<Value = Rev> {
    prop_oneof![
        12 => Just(Rev::Unset),
        4 => Just(Rev::Right),
        1 => Just(Rev::Prev),
        1 => Just(Rev::Next),
        1 => Just(Rev::Zero),
        1 => Just(Rev::Max),
    ]
}

/// Mostly valid ids, sometimes malformed ones.
fn id() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..VALID_IDS, 1 => VALID_IDS..ID_POOL]
}

/// 0..=MAX_IDS+2 ids: empty and too-long lists are both hit.
fn ids() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(Vec::new()),
        14 => prop::collection::vec(id(), 1..=MAX_IDS),
        1 => prop::collection::vec(id(), MAX_IDS + 1..=MAX_IDS + 2),
    ]
}

fn perm() -> impl Strategy<Value = Perm> {
    prop_oneof![
        4 => any::<u64>().prop_map(Perm::Shuffle),
        1 => Just(Perm::Same),
        1 => (0..MAX_GROUPS).prop_map(Perm::DropOne),
        1 => (0..MAX_GROUPS).prop_map(Perm::DupOne),
        1 => (0..NAME_POOL).prop_map(Perm::Unknown),
        1 => Just(Perm::Empty),
    ]
}

fn upd() -> impl Strategy<Value = Upd> {
    let text = || prop::option::weighted(0.3, 0..TEXTS.len());
    let recv = prop::option::weighted(0.4, prop_oneof![6 => 1..=5i32, 1 => Just(0), 1 => Just(99), 1 => Just(-1)]);
    let marks = prop::option::weighted(0.3, prop::collection::vec(1..=3u64, 0..=MAX_MARKS + 1));
    let custom = prop::option::weighted(0.3, prop::collection::vec(any::<u8>(), 0..=MAX_CUSTOM + 1));
    let edit = || prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(1..=3u64, 1..=MAX_MARKS + 1)];
    (
        (
            id(),
            text(),
            text(),
            prop::option::weighted(0.5, 0..4u32),
            prop::option::weighted(0.4, prop::bool::weighted(0.7)),
        ),
        (prop::option::weighted(0.5, 0..4u64), recv, marks, custom, prop::option::weighted(0.3, any::<bool>())),
        prop::option::weighted(0.2, (0..TEXTS.len(), 0..TEXTS.len(), 0..TIMES.len())),
        (edit(), edit()),
    )
        .prop_map(
            |(
                (id, show_name, face_url, unread, pinned),
                (order_key, recv_opt, marks, custom, at),
                last,
                mark_edits,
            )| Upd {
                id,
                show_name,
                face_url,
                unread,
                pinned,
                order_key,
                recv_opt,
                marks,
                mark_edits,
                custom,
                at,
                last,
            },
        )
}

/// Mostly rules that select something, sometimes ones that select nothing,
/// name a malformed id or hold too many ids.
fn rule_gen() -> impl Strategy<Value = RuleGen> {
    let flag = || prop::option::weighted(0.25, any::<bool>());
    let kind = prop::option::weighted(0.2, prop_oneof![4 => 1..=2i32, 1 => Just(0)]);
    let list = || prop_oneof![4 => Just(Vec::new()), 2 => prop::collection::vec(id(), 1..=2)];
    ((kind, prop::option::weighted(0.2, 0..=3u64), flag(), flag()), (flag(), flag(), list(), list())).prop_map(
        |((kind, mark, unread, muted), (ungrouped, at, include, exclude))| RuleGen {
            kind,
            mark,
            unread,
            muted,
            ungrouped,
            at,
            include,
            exclude,
        },
    )
}

fn filt() -> impl Strategy<Value = Filt> {
    let kind = prop::option::weighted(0.3, prop_oneof![4 => 1..=2i32, 1 => Just(0), 1 => Just(42)]);
    let group = prop::option::weighted(0.4, prop::option::weighted(0.8, name_sel()));
    let ids = prop_oneof![
        6 => Just(Vec::new()),
        3 => prop::collection::vec(id(), 1..=MAX_IDS),
        1 => prop::collection::vec(id(), MAX_IDS + 1..=MAX_IDS + 1),
    ];
    (
        kind,
        group,
        prop::option::weighted(0.3, 0..=3u64),
        prop::option::weighted(0.3, any::<bool>()),
        prop::option::weighted(0.3, any::<bool>()),
        ids,
    )
        .prop_map(|(kind, group, mark, unread, at, ids)| Filt { kind, group, mark, unread, at, ids })
}

fn upds() -> impl Strategy<Value = Vec<Upd>> {
    prop_oneof![
        1 => Just(Vec::new()),
        14 => prop::collection::vec(upd(), 1..=MAX_IDS),
        1 => prop::collection::vec(upd(), MAX_IDS + 1..=MAX_IDS + 1),
    ]
}

/// A create that succeeds unless the state says otherwise: cases start
/// with a few groups so that the group operations have something to act on.
fn seed_create() -> impl Strategy<Value = Op> {
    (who(), 0..VALID_NAMES, prop::collection::vec(0..VALID_IDS, 1..=MAX_IDS)).prop_map(|(who, name, ids)| Op::Create {
        who,
        name,
        ids,
        rule: None,
        rev: Rev::Unset,
    })
}

/// A case: a few seeding creates, then random operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (prop::collection::vec(seed_create(), 0..=4), prop::collection::vec(op(), 1..=MAX_STEPS)).prop_map(
        |(mut seed, ops)| {
            seed.extend(ops);
            seed
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let page_size = prop_oneof![Just(0u32), Just(1), Just(2), Just(5), Just(u32::MAX)];
    prop_oneof![
        6 => (who(), pool_name(), ids(), prop::option::weighted(0.25, rule_gen()), rev())
            .prop_map(|(who, name, ids, rule, rev)| Op::Create { who, name, ids, rule, rev }),
        3 => (who(), name_sel(), prop::option::weighted(0.8, rule_gen()), rev())
            .prop_map(|(who, name, rule, rev)| Op::SetRule { who, name, rule, rev }),
        2 => (who(), name_sel(), rev()).prop_map(|(who, name, rev)| Op::Delete { who, name, rev }),
        3 => (who(), name_sel(), prop_oneof![1 => name_sel(), 2 => pool_name().prop_map(NameSel::Pool)], rev())
            .prop_map(|(who, old, new, rev)| Op::Rename { who, old, new, rev }),
        2 => (who(), perm(), rev()).prop_map(|(who, perm, rev)| Op::Reorder { who, perm, rev }),
        6 => (who(), name_sel(), ids(), rev()).prop_map(|(who, name, ids, rev)| Op::Add { who, name, ids, rev }),
        3 => (who(), name_sel(), ids(), rev())
            .prop_map(|(who, name, ids, rev)| Op::Remove { who, name, ids, rev }),
        6 => (who(), upds()).prop_map(|(who, items)| Op::Upsert { who, items }),
        2 => (who(), ids()).prop_map(|(who, ids)| Op::DeleteConvs { who, ids }),
        2 => (who(), filt(), page_size)
            .prop_map(|(who, filter, page_size)| Op::List { who, filter, page_size }),
        1 => (who(), filt()).prop_map(|(who, filter)| Op::Unread { who, filter }),
        2 => (who(), name_sel(), rev()).prop_map(|(who, name, rev)| Op::MarkRead { who, name, rev }),
        3 => (who(), name_sel(), prop_oneof![1 => Just(0), 10 => 1..=5i32, 1 => Just(6)], any::<bool>(), rev())
            .prop_map(|(who, name, opt, new_members, rev)| Op::Mute { who, name, opt, new_members, rev }),
        4 => (
            who(),
            prop_oneof![1 => Just(None), 3 => name_sel().prop_map(Some)],
            prop_oneof![
                1 => prop::collection::vec(name_sel(), 0..=MAX_GROUPS + 1),
                4 => prop::collection::vec(name_sel(), 1..=2)
            ],
            ids(),
            rev()
        )
            .prop_map(|(who, from, to, ids, rev)| Op::Move { who, from, to, ids, rev }),
        4 => (who(), name_sel(), prop::bool::weighted(0.3), look_sel(), paths(), rev())
            .prop_map(|(who, name, by_id, look, paths, rev)| Op::Update { who, name, by_id, look, paths, rev }),
        2 => (who(), name_sel(), prop_oneof![6 => 1..=3i32, 1 => Just(0), 1 => Just(9)], rev())
            .prop_map(|(who, name, mode, rev)| Op::SetMode { who, name, mode, rev }),
        4 => (who(), name_sel(), ids(), (prop_oneof![4 => 0..2u8, 3 => 2..4u8, 1 => Just(4)], id()), rev())
            .prop_map(|(who, name, ids, place, rev)| Op::MoveIn { who, name, ids, place, rev }),
        3 => (who(), name_sel(), ids(), prop::bool::weighted(0.7), rev())
            .prop_map(|(who, name, ids, pin, rev)| Op::Pin { who, name, ids, pin, rev }),
    ]
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// One acceptable error: code, ErrorInfo reason, and a field the message
/// must name ("" when the contract names none).
#[derive(Clone, Copy, Debug, PartialEq)]
struct ErrSpec {
    code: Code,
    reason: &'static str,
    field: &'static str,
}

const fn err(code: Code, reason: &'static str, field: &'static str) -> ErrSpec {
    ErrSpec { code, reason, field }
}

fn bad_name(field: &'static str) -> ErrSpec {
    err(Code::InvalidArgument, "INVALID_GROUP_NAME", field)
}
fn not_found(field: &'static str) -> ErrSpec {
    err(Code::NotFound, "GROUP_NOT_FOUND", field)
}
fn exists(field: &'static str) -> ErrSpec {
    err(Code::AlreadyExists, "GROUP_ALREADY_EXISTS", field)
}
fn bad_list(field: &'static str) -> ErrSpec {
    err(Code::InvalidArgument, "INVALID_CONVERSATION_LIST", field)
}
const MISMATCH: ErrSpec = err(Code::Aborted, "REVISION_MISMATCH", "expected_revision");
const LIMIT: ErrSpec = err(Code::ResourceExhausted, "GROUP_LIMIT_EXCEEDED", "");
const ORDER: ErrSpec = err(Code::FailedPrecondition, "GROUP_ORDER_MISMATCH", "group_names");
const BAD_RULE: ErrSpec = err(Code::InvalidArgument, "INVALID_RULE", "rule");

/// A rule as the server stores and echoes it (ids canonical, each once),
/// or None when the server must refuse it with INVALID_RULE.
fn normal_rule(r: &pb::GroupRule) -> Option<pb::GroupRule> {
    if r.r#type.is_some_and(|t| t != 1 && t != 2) || r.include_ids.len() + r.exclude_ids.len() > MAX_RULE_IDS {
        return None;
    }
    let list = |raw: &[String]| -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for id in raw {
            let id = canonical(id)?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Some(out)
    };
    let rule = pb::GroupRule { include_ids: list(&r.include_ids)?, exclude_ids: list(&r.exclude_ids)?, ..r.clone() };
    (has_criteria(&rule) || !rule.include_ids.is_empty()).then_some(rule)
}

fn has_criteria(r: &pb::GroupRule) -> bool {
    r.r#type.is_some()
        || r.mark_type.is_some()
        || r.has_unread_count.is_some()
        || r.muted.is_some()
        || r.ungrouped.is_some()
        || r.has_group_at_info.is_some()
}

/// GroupRule's documented meaning, for a conversation with this data.
fn rule_matches(r: &pb::GroupRule, id: &str, d: &Data, explicitly_grouped: bool) -> bool {
    if r.exclude_ids.iter().any(|x| x == id) {
        return false;
    }
    if r.include_ids.iter().any(|x| x == id) {
        return true;
    }
    if !has_criteria(r) {
        return false;
    }
    let kind_ok = match r.r#type {
        Some(1) => id.starts_with("C2C"),
        Some(2) => id.starts_with("GROUP"),
        _ => true,
    };
    let mark_ok = match r.mark_type {
        Some(0) => d.marks.is_empty(),
        Some(m) => d.marks.contains(&m),
        None => true,
    };
    let is = |want: Option<bool>, value: bool| want.is_none_or(|w| w == value);
    kind_ok
        && mark_ok
        && is(r.has_unread_count, d.unread > 0)
        && is(r.muted, d.recv_opt != pb::RecvOpt::Receive as i32)
        && is(r.ungrouped, !explicitly_grouped)
        && is(r.has_group_at_info, d.at)
}

/// `tencent_code` metadata the contract's error table gives each reason.
fn tencent(reason: &str) -> Option<&'static str> {
    match reason {
        "GROUP_LIMIT_EXCEEDED" => Some("51010"),
        "INVALID_GROUP_NAME" => Some("51011"),
        "GROUP_NOT_FOUND" => Some("51009"),
        "INVALID_CONVERSATION_LIST" => Some("51006"),
        _ => None,
    }
}

/// Contract §4: `C2C<id>`, `GROUP<id>`, `c2c_<id>`, `group_<id>` with an id
/// of 1..=128 bytes of printable ASCII; native forms normalise.
fn canonical(raw: &str) -> Option<String> {
    let (prefix, peer) = if let Some(p) = raw.strip_prefix("C2C") {
        ("C2C", p)
    } else if let Some(p) = raw.strip_prefix("GROUP") {
        ("GROUP", p)
    } else if let Some(p) = raw.strip_prefix("c2c_") {
        ("C2C", p)
    } else if let Some(p) = raw.strip_prefix("group_") {
        ("GROUP", p)
    } else {
        return None;
    };
    let ok = (1..=128).contains(&peer.len()) && peer.bytes().all(|b| (0x21..=0x7e).contains(&b));
    ok.then(|| format!("{prefix}{peer}"))
}

/// Contract §4: 1..=max bytes of UTF-8, no control characters.
fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control)
}

/// Registry data of one registered conversation.
#[derive(Clone, Debug, PartialEq)]
struct Data {
    show_name: String,
    face_url: String,
    unread: u32,
    pinned: bool,
    order_key: u64,
    recv_opt: i32,
    marks: Vec<u64>,
    custom: Vec<u8>,
    at: bool,
    last: Option<pb::LastMessage>,
}

impl Default for Data {
    fn default() -> Self {
        Self {
            show_name: String::new(),
            face_url: String::new(),
            unread: 0,
            pinned: false,
            order_key: 0,
            recv_opt: pb::RecvOpt::Receive as i32,
            marks: Vec::new(),
            custom: Vec::new(),
            at: false,
            last: None,
        }
    }
}

impl Data {
    fn counted_unread(&self) -> u64 {
        if self.recv_opt == pb::RecvOpt::Receive as i32 {
            u64::from(self.unread)
        } else {
            0
        }
    }

    fn apply(&mut self, u: &ConversationUpdate) {
        if let Some(v) = &u.show_name {
            self.show_name = v.clone();
        }
        if let Some(v) = &u.face_url {
            self.face_url = v.clone();
        }
        if let Some(v) = u.unread_count {
            self.unread = v;
        }
        if let Some(v) = u.is_pinned {
            self.pinned = v;
        }
        if let Some(v) = u.order_key {
            self.order_key = v;
        }
        if let Some(v) = u.recv_opt {
            self.recv_opt = v;
        }
        if let Some(v) = &u.mark_list {
            self.marks = v.values.clone();
        }
        self.marks.retain(|m| !u.remove_marks.contains(m));
        for m in &u.add_marks {
            if !self.marks.contains(m) {
                self.marks.push(*m);
            }
        }
        if let Some(v) = &u.custom_data {
            self.custom = v.clone();
        }
        if let Some(v) = u.has_group_at_info {
            self.at = v;
        }
        if let Some(v) = &u.last_message {
            self.last = Some(v.clone());
        }
    }
}

/// The per-item codes an update's value may fail with (empty: valid).
fn value_codes(u: &ConversationUpdate) -> Vec<R> {
    let mut codes = Vec::new();
    if u.custom_data.as_ref().is_some_and(|d| d.len() > MAX_CUSTOM) {
        codes.push(R::CustomDataTooLarge);
    }
    let long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > MAX_TEXT);
    let invalid = u.recv_opt.is_some_and(|v| !(1..=5).contains(&v))
        || u.mark_list.as_ref().is_some_and(|m| m.values.len() > MAX_MARKS)
        || (u.mark_list.is_some() && !(u.add_marks.is_empty() && u.remove_marks.is_empty()))
        || u.add_marks.len() > MAX_MARKS
        || u.remove_marks.len() > MAX_MARKS
        || u.add_marks.iter().any(|m| u.remove_marks.contains(m))
        || long(&u.show_name)
        || long(&u.face_url)
        || u.last_message.as_ref().is_some_and(|m| m.sender.len() > MAX_TEXT || m.text.len() > MAX_TEXT);
    if invalid {
        codes.push(R::InvalidField);
    }
    codes
}

#[derive(Clone, Debug)]
struct GroupM {
    /// The server's id scheme: `g<n>`, numbered per user from 0 and never
    /// reused (predicted here so that every answer and event is checked).
    id: String,
    name: String,
    /// Every member, explicit or by the rule.
    members: BTreeSet<String>,
    /// The members that are there by the rule only.
    by_rule: BTreeSet<String>,
    rule: Option<pb::GroupRule>,
    /// As the Create response reported it; must never change afterwards.
    create_time: Option<Timestamp>,
    /// The receive option new members get (SetConversationGroupMute).
    new_opt: Option<i32>,
    look: pb::GroupLook,
    /// GroupSortMode (RECENT unless set).
    mode: i32,
    /// The members in manual order: joining appends, moves rearrange.
    manual: Vec<String>,
    /// The group's own pins, in listing order.
    pins: Vec<String>,
}

impl GroupM {
    /// Joining appends to the manual order (explicitly or by the rule).
    fn join(&mut self, id: &str) {
        self.members.insert(id.to_string());
        self.manual.push(id.to_string());
    }
    /// Leaving drops the member's place and pin (whether it was there
    /// explicitly or by the rule).
    fn leave(&mut self, id: &str) -> bool {
        self.manual.retain(|m| m != id);
        self.pins.retain(|m| m != id);
        self.by_rule.remove(id);
        self.members.remove(id)
    }
}

#[derive(Clone, Debug, Default)]
struct UserM {
    id: String,
    rev: u64,
    next_group_id: u32,
    groups: Vec<GroupM>,
    registry: BTreeMap<String, Data>,
    /// update_time last seen per conversation; forgotten when the data
    /// changes, else it must stay the same.
    update_times: HashMap<String, Timestamp>,
    /// Each group's members by rule as of the last commit (by group id):
    /// what the next commit's RULE events are the difference from.
    rule_seen: BTreeMap<String, BTreeSet<String>>,
}

impl UserM {
    fn group(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }
    fn names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }
    fn in_any_group(&self, id: &str) -> bool {
        self.groups.iter().any(|g| g.members.contains(id))
    }
    fn explicitly_grouped(&self, id: &str) -> bool {
        self.groups.iter().any(|g| g.members.contains(id) && !g.by_rule.contains(id))
    }
    /// GroupRule's contract for one changed conversation: each smart group
    /// (display order) takes it while its rule matches and it has room,
    /// and lets it go when the rule stops matching; explicit memberships
    /// stay. Only conversations a mutation touches are settled.
    fn settle(&mut self, id: &str) {
        let grouped = self.explicitly_grouped(id);
        let exists = self.registry.contains_key(id) || grouped;
        let data = self.data(id);
        for g in self.groups.iter_mut() {
            let by_rule = g.by_rule.contains(id);
            if g.members.contains(id) && !by_rule {
                continue;
            }
            let want = exists
                && g.rule.as_ref().is_some_and(|r| rule_matches(r, id, &data, grouped))
                && (by_rule || g.members.len() < MAX_PER_GROUP);
            if want && !by_rule {
                g.join(id);
                g.by_rule.insert(id.to_string());
            } else if !want && by_rule {
                g.leave(id);
            }
        }
    }
    /// Settles every conversation the user has, in id order (a rule was
    /// set or changed).
    fn settle_all(&mut self) {
        let mut ids: BTreeSet<String> = self.registry.keys().cloned().collect();
        for g in &self.groups {
            ids.extend(g.members.iter().cloned());
        }
        for id in ids {
            self.settle(&id);
        }
    }
    fn exists(&self, id: &str) -> bool {
        self.registry.contains_key(id) || self.in_any_group(id)
    }
    fn data(&self, id: &str) -> Data {
        self.registry.get(id).cloned().unwrap_or_default()
    }
    /// A group's members in the group's order (its pins, then its mode).
    fn group_order(&self, g: &GroupM) -> Vec<String> {
        let rest: Vec<String> = match pb::GroupSortMode::try_from(g.mode) {
            Ok(pb::GroupSortMode::Manual) => g.manual.clone(),
            Ok(pb::GroupSortMode::Alphabetical) => {
                let mut ids: Vec<String> = g.members.iter().cloned().collect();
                ids.sort_by_key(|id| (self.data(id).show_name.into_bytes(), id.clone()));
                ids
            }
            _ => self.listing().into_iter().filter(|id| g.members.contains(id)).collect(),
        };
        g.pins.iter().cloned().chain(rest.into_iter().filter(|id| !g.pins.contains(id))).collect()
    }
    fn group_unread(&self, g: &GroupM) -> u64 {
        g.members.iter().map(|id| self.data(id).counted_unread()).sum()
    }
    /// Gives a conversation a receive option as the server's group-wide
    /// actions do (an upsert of `recv_opt`: it becomes registered); notes
    /// it in `changed` (once) when its data changed.
    fn set_recv_opt(&mut self, id: &str, opt: i32, changed: &mut Vec<String>) {
        let before = self.registry.get(id).cloned();
        let mut data = before.clone().unwrap_or_default();
        data.recv_opt = opt;
        if before.as_ref() != Some(&data) {
            self.registry.insert(id.to_string(), data);
            self.update_times.remove(id);
            self.settle(id);
            if !changed.iter().any(|c| c == id) {
                changed.push(id.to_string());
            }
        }
    }
    fn pinned(&self) -> usize {
        self.registry.values().filter(|d| d.pinned).count()
    }
    /// Every conversation in scope, in listing order (pinned first, then
    /// order_key descending, then id ascending).
    fn listing(&self) -> Vec<String> {
        let mut ids: BTreeSet<String> = self.registry.keys().cloned().collect();
        for g in &self.groups {
            ids.extend(g.members.iter().cloned());
        }
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort_by_key(|id| {
            let d = self.data(id);
            (!d.pinned, std::cmp::Reverse(d.order_key), id.clone())
        });
        ids
    }
    fn conversation(&self, id: &str) -> pb::Conversation {
        let d = self.data(id);
        let (kind, user_id, group_id) = if let Some(peer) = id.strip_prefix("C2C") {
            (pb::ConversationType::C2c, peer.to_string(), String::new())
        } else {
            (pb::ConversationType::Group, String::new(), id["GROUP".len()..].to_string())
        };
        pb::Conversation {
            conversation_id: id.to_string(),
            r#type: kind as i32,
            user_id,
            group_id,
            show_name: d.show_name,
            face_url: d.face_url,
            unread_count: d.unread,
            is_pinned: d.pinned,
            order_key: d.order_key,
            recv_opt: d.recv_opt,
            mark_list: d.marks,
            custom_data: d.custom,
            has_group_at_info: d.at,
            last_message: d.last,
            conversation_group_list: self
                .groups
                .iter()
                .filter(|g| g.members.contains(id))
                .map(|g| g.name.clone())
                .collect(),
            conversation_group_ids: self
                .groups
                .iter()
                .filter(|g| g.members.contains(id))
                .map(|g| g.id.clone())
                .collect(),
            update_time: None,
            registered: self.registry.contains_key(id),
        }
    }
}

/// What a mutation should answer: the revision in the response and the
/// events of its batch (none: the revision is kept, nothing is streamed).
#[derive(Debug)]
struct Mutation {
    revision: u64,
    events: Vec<Ev>,
}

#[derive(Debug)]
struct BatchExp {
    success: Vec<String>,
    /// (id as sent, acceptable codes), in request order.
    failed: Vec<(String, Vec<R>)>,
    m: Mutation,
}

/// Expected per-item failures: (id as sent, acceptable codes).
type Failures = Vec<(String, Vec<R>)>;

#[derive(Debug)]
struct MoveExp {
    moved: Vec<String>,
    failed: Vec<(String, Vec<R>)>,
    /// Per target: name, id, added ids, failures.
    targets: Vec<(String, String, Vec<String>, Failures)>,
    m: Mutation,
}

#[derive(Debug)]
struct GroupExp {
    id: String,
    rule: Option<pb::GroupRule>,
    name: String,
    count: u32,
    unread: u64,
    /// Known create_time (rename), or None (create: recorded from the answer).
    create_time: Option<Timestamp>,
    look: pb::GroupLook,
    mode: i32,
    pins: Vec<String>,
}

impl GroupExp {
    fn of(user: &UserM, g: &GroupM) -> Self {
        GroupExp {
            id: g.id.clone(),
            rule: g.rule.clone(),
            name: g.name.clone(),
            count: g.members.len() as u32,
            unread: user.group_unread(g),
            create_time: g.create_time,
            look: g.look.clone(),
            mode: g.mode,
            pins: g.pins.clone(),
        }
    }
}

type ModelResult<T> = Result<T, Vec<ErrSpec>>;

struct Model {
    global: u64,
    users: Vec<UserM>,
}

/// Per item of an id list: canonical id, or INVALID / DUPLICATE.
fn classify(raw: &[String]) -> Vec<Result<String, R>> {
    let mut seen = BTreeSet::new();
    raw.iter()
        .map(|r| match canonical(r) {
            None => Err(R::InvalidConversationId),
            Some(id) if !seen.insert(id.clone()) => Err(R::DuplicateInRequest),
            Some(id) => Ok(id),
        })
        .collect()
}

fn list_size_ok(len: usize) -> bool {
    (1..=MAX_IDS).contains(&len)
}

impl Model {
    fn commit(&mut self, u: usize, events: Vec<Ev>) -> Mutation {
        self.commit_with(u, events, &BTreeSet::new())
    }

    /// Commits the events of a mutation followed by its RULE events: the
    /// change of each group's members by rule since the last commit, except
    /// for conversations the mutation deleted (`deleted`: their removal is
    /// CONVERSATION_DELETED).
    fn commit_with(&mut self, u: usize, mut events: Vec<Ev>, deleted: &BTreeSet<String>) -> Mutation {
        let user = &mut self.users[u];
        for g in &user.groups {
            let before = user.rule_seen.get(&g.id).cloned().unwrap_or_default();
            let joined: Vec<String> = g.by_rule.difference(&before).cloned().collect();
            let left: Vec<String> =
                before.difference(&g.by_rule).filter(|id| !deleted.contains(*id)).cloned().collect();
            if !joined.is_empty() {
                events.push(Ev::ConversationsAddedToGroup(pb::ConversationsAddedToGroup {
                    group_name: g.name.clone(),
                    conversation_ids: joined,
                    group_id: g.id.clone(),
                    reason: pb::AdditionReason::Rule as i32,
                }));
            }
            if !left.is_empty() {
                events.push(Ev::ConversationsDeletedFromGroup(pb::ConversationsDeletedFromGroup {
                    group_name: g.name.clone(),
                    conversation_ids: left,
                    reason: pb::RemovalReason::Rule as i32,
                    group_id: g.id.clone(),
                }));
            }
        }
        user.rule_seen = user.groups.iter().map(|g| (g.id.clone(), g.by_rule.clone())).collect();
        if events.is_empty() {
            return Mutation { revision: self.users[u].rev, events };
        }
        self.global += 1;
        self.users[u].rev = self.global;
        Mutation { revision: self.global, events }
    }

    fn wrong_rev(&self, u: usize, expected: Option<u64>) -> bool {
        expected.is_some_and(|e| e != self.users[u].rev)
    }

    fn create(
        &mut self,
        u: usize,
        name: &str,
        ids: &[String],
        rule: Option<&pb::GroupRule>,
        exp: Option<u64>,
    ) -> ModelResult<(GroupExp, BatchExp)> {
        let mut errs = Vec::new();
        if !name_ok(name) {
            errs.push(bad_name("group_name"));
        }
        let rule = match rule.map(normal_rule) {
            Some(None) => {
                errs.push(BAD_RULE);
                None
            }
            Some(Some(rule)) => Some(rule),
            None => None,
        };
        // A smart group may start empty.
        if (rule.is_none() || !ids.is_empty()) && !list_size_ok(ids.len()) {
            errs.push(bad_list("conversation_ids"));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        if self.wrong_rev(u, exp) {
            return Err(vec![MISMATCH]);
        }
        let user = &self.users[u];
        if user.group(name).is_some() {
            errs.push(exists("group_name"));
        }
        if user.groups.len() >= MAX_GROUPS {
            errs.push(LIMIT);
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let id = format!("g{}", self.users[u].next_group_id);
        self.users[u].next_group_id += 1;
        let user = &mut self.users[u];
        user.groups.push(GroupM {
            id: id.clone(),
            name: name.to_string(),
            members: BTreeSet::new(),
            by_rule: BTreeSet::new(),
            rule: None,
            create_time: None,
            new_opt: None,
            look: pb::GroupLook::default(),
            mode: pb::GroupSortMode::Recent as i32,
            manual: Vec::new(),
            pins: Vec::new(),
        });
        let last = user.groups.len() - 1;
        let (mut success, mut failed) = (Vec::new(), Vec::new());
        for (raw, c) in ids.iter().zip(classify(ids)) {
            match c {
                Err(code) => failed.push((raw.clone(), vec![code])),
                Ok(_) if user.groups[last].members.len() >= MAX_PER_GROUP => {
                    failed.push((raw.clone(), vec![R::GroupFull]))
                }
                Ok(cid) => {
                    user.groups[last].join(&cid);
                    user.settle(&cid);
                    success.push(cid);
                }
            }
        }
        let mut events = vec![Ev::GroupCreated(pb::GroupCreated {
            group_name: name.to_string(),
            conversation_ids: success.clone(),
            group_id: id.clone(),
        })];
        if let Some(rule) = &rule {
            events.push(Ev::GroupRuleChanged(pb::GroupRuleChanged {
                group_name: name.to_string(),
                group_id: id.clone(),
                rule: Some(rule.clone()),
            }));
            user.groups[last].rule = Some(rule.clone());
            user.settle_all();
        }
        let group = &user.groups[last];
        let g = GroupExp {
            id,
            rule,
            name: name.to_string(),
            count: group.members.len() as u32,
            unread: user.group_unread(group),
            create_time: None,
            look: group.look.clone(),
            mode: group.mode,
            pins: group.pins.clone(),
        };
        let m = self.commit(u, events);
        Ok((g, BatchExp { success, failed, m }))
    }

    fn delete_group(&mut self, u: usize, name: &str, exp: Option<u64>) -> ModelResult<Mutation> {
        let user = &self.users[u];
        let index = user.group(name);
        let invalid = index.is_none() && !name_ok(name);
        if self.wrong_rev(u, exp) {
            // A looked-up name is validated against the state (a name that
            // names a group is always accepted), so either check may come first.
            let mut errs = vec![MISMATCH];
            if invalid {
                errs.push(bad_name("group_name"));
            }
            return Err(errs);
        }
        let Some(index) = index else {
            return Err(vec![if invalid { bad_name("group_name") } else { not_found("group_name") }]);
        };
        let group = self.users[u].groups.remove(index);
        // Its former members are settled (an `ungrouped` rule may take them).
        for id in &group.members {
            self.users[u].settle(id);
        }
        Ok(self
            .commit(u, vec![Ev::GroupDeleted(pb::GroupDeleted { group_name: name.to_string(), group_id: group.id })]))
    }

    fn set_rule(
        &mut self,
        u: usize,
        name: &str,
        rule: Option<&pb::GroupRule>,
        exp: Option<u64>,
    ) -> ModelResult<(GroupExp, Mutation)> {
        let rule = match rule.map(normal_rule) {
            Some(None) => return Err(vec![BAD_RULE]),
            Some(Some(rule)) => Some(rule),
            None => None,
        };
        let user = &self.users[u];
        let index = user.group(name);
        let invalid = index.is_none() && !name_ok(name);
        if self.wrong_rev(u, exp) {
            let mut errs = vec![MISMATCH];
            if invalid {
                errs.push(bad_name("group_name"));
            }
            return Err(errs);
        }
        let Some(index) = index else {
            return Err(vec![if invalid { bad_name("group_name") } else { not_found("group_name") }]);
        };
        let user = &mut self.users[u];
        let mut events = Vec::new();
        if user.groups[index].rule != rule {
            let g = &mut user.groups[index];
            events.push(Ev::GroupRuleChanged(pb::GroupRuleChanged {
                group_name: g.name.clone(),
                group_id: g.id.clone(),
                rule: rule.clone(),
            }));
            g.rule = rule;
            user.settle_all();
        }
        let g = &user.groups[index];
        let view = GroupExp {
            id: g.id.clone(),
            rule: g.rule.clone(),
            name: g.name.clone(),
            count: g.members.len() as u32,
            unread: user.group_unread(g),
            create_time: g.create_time,
            look: g.look.clone(),
            mode: g.mode,
            pins: g.pins.clone(),
        };
        Ok((view, self.commit(u, events)))
    }

    fn rename(&mut self, u: usize, old: &str, new: &str, exp: Option<u64>) -> ModelResult<(GroupExp, Mutation)> {
        if !name_ok(new) {
            return Err(vec![bad_name("new_name")]);
        }
        let user = &self.users[u];
        let index = user.group(old);
        let invalid = index.is_none() && !name_ok(old);
        if self.wrong_rev(u, exp) {
            let mut errs = vec![MISMATCH];
            if invalid {
                errs.push(bad_name("old_name"));
            }
            return Err(errs);
        }
        let taken = old != new && user.group(new).is_some();
        let Some(index) = index else {
            let mut errs = vec![if invalid { bad_name("old_name") } else { not_found("old_name") }];
            if taken {
                errs.push(exists("new_name"));
            }
            return Err(errs);
        };
        if taken {
            return Err(vec![exists("new_name")]);
        }
        let user = &mut self.users[u];
        user.groups[index].name = new.to_string();
        let view = GroupExp::of(user, &user.groups[index]);
        let events = if old == new {
            vec![]
        } else {
            vec![Ev::GroupRenamed(pb::GroupRenamed {
                old_name: old.to_string(),
                new_name: new.to_string(),
                group_id: view.id.clone(),
            })]
        };
        Ok((view, self.commit(u, events)))
    }

    /// UpdateConversationGroup (the proto's comments): the mask, then the
    /// values it names, are request validation; then the group is found as
    /// for a delete; only values that differ are changed and reported.
    fn update(
        &mut self,
        u: usize,
        group: Result<&str, &str>,
        look: &pb::GroupLook,
        paths: &[String],
        exp: Option<u64>,
    ) -> ModelResult<(GroupExp, Mutation)> {
        const FIELDS: [&str; 4] = ["icon", "color", "collapsed", "custom_data"];
        if paths.is_empty() || paths.iter().any(|p| p != "*" && !FIELDS.contains(&p.as_str())) {
            return Err(vec![err(Code::InvalidArgument, "INVALID_UPDATE_MASK", "update_mask")]);
        }
        let named = |f: &str| paths.iter().any(|p| p == f || p == "*");
        let mut errs = Vec::new();
        if named("icon") && (look.icon.len() > MAX_ICON || look.icon.chars().any(char::is_control)) {
            errs.push(err(Code::InvalidArgument, "INVALID_GROUP_ICON", "look.icon"));
        }
        if named("color") && !(0..=7).contains(&look.color) {
            errs.push(err(Code::InvalidArgument, "INVALID_ARGUMENT", "look.color"));
        }
        if named("custom_data") && look.custom_data.len() > MAX_GROUP_CUSTOM {
            errs.push(err(Code::InvalidArgument, "GROUP_CUSTOM_DATA_TOO_LARGE", "look.custom_data"));
        }
        let user = &self.users[u];
        let (index, invalid, field) = match group {
            Ok(name) => (user.group(name), user.group(name).is_none() && !name_ok(name), "group_name"),
            Err(id) => (user.groups.iter().position(|g| g.id == id), false, "group_id"),
        };
        if !errs.is_empty() {
            if invalid {
                errs.push(bad_name("group_name"));
            }
            return Err(errs);
        }
        if self.wrong_rev(u, exp) {
            let mut errs = vec![MISMATCH];
            if invalid {
                errs.push(bad_name("group_name"));
            }
            return Err(errs);
        }
        let Some(index) = index else {
            return Err(vec![if invalid { bad_name(field) } else { not_found(field) }]);
        };
        let user = &mut self.users[u];
        let g = &mut user.groups[index];
        let mut changed = Vec::new();
        for f in FIELDS.into_iter().filter(|f| named(f)) {
            let differs = match f {
                "icon" => g.look.icon != look.icon,
                "color" => g.look.color != look.color,
                "collapsed" => g.look.collapsed != look.collapsed,
                _ => g.look.custom_data != look.custom_data,
            };
            if differs {
                match f {
                    "icon" => g.look.icon = look.icon.clone(),
                    "color" => g.look.color = look.color,
                    "collapsed" => g.look.collapsed = look.collapsed,
                    _ => g.look.custom_data = look.custom_data.clone(),
                }
                changed.push(f.to_string());
            }
        }
        let g = &user.groups[index];
        let view = GroupExp {
            id: g.id.clone(),
            rule: g.rule.clone(),
            name: g.name.clone(),
            count: g.members.len() as u32,
            unread: user.group_unread(g),
            create_time: g.create_time,
            look: g.look.clone(),
            mode: g.mode,
            pins: g.pins.clone(),
        };
        let events = if changed.is_empty() {
            vec![]
        } else {
            vec![Ev::GroupUpdated(pb::GroupUpdated {
                group_name: view.name.clone(),
                group_id: view.id.clone(),
                changed_paths: changed,
                look: Some(view.look.clone()),
            })]
        };
        Ok((view, self.commit(u, events)))
    }

    fn reorder(&mut self, u: usize, names: &[String], exp: Option<u64>) -> ModelResult<(Vec<String>, Mutation)> {
        if self.wrong_rev(u, exp) {
            return Err(vec![MISMATCH]);
        }
        let current = self.users[u].names();
        let mut a = names.to_vec();
        let mut b = current.clone();
        a.sort();
        b.sort();
        if a != b {
            return Err(vec![ORDER]);
        }
        if names == current {
            return Ok((names.to_vec(), self.commit(u, vec![])));
        }
        let user = &mut self.users[u];
        let mut groups = std::mem::take(&mut user.groups);
        user.groups = names
            .iter()
            .map(|n| {
                let i = groups.iter().position(|g| &g.name == n).expect("a permutation");
                groups.remove(i)
            })
            .collect();
        let ev = Ev::GroupsReordered(pb::GroupsReordered { group_names: names.to_vec() });
        Ok((names.to_vec(), self.commit(u, vec![ev])))
    }

    /// Checks shared by Add and Remove; the group's index on success.
    fn membership_checks(&self, u: usize, name: &str, ids: &[String], exp: Option<u64>) -> ModelResult<usize> {
        let index = self.users[u].group(name);
        let invalid = index.is_none() && !name_ok(name);
        let mut errs = Vec::new();
        if !list_size_ok(ids.len()) {
            errs.push(bad_list("conversation_ids"));
        } else if self.wrong_rev(u, exp) {
            errs.push(MISMATCH);
        }
        if !errs.is_empty() {
            if invalid {
                errs.push(bad_name("group_name"));
            }
            return Err(errs);
        }
        index.ok_or_else(|| vec![if invalid { bad_name("group_name") } else { not_found("group_name") }])
    }

    fn add(&mut self, u: usize, name: &str, ids: &[String], exp: Option<u64>) -> ModelResult<BatchExp> {
        let index = self.membership_checks(u, name, ids, exp)?;
        let user = &mut self.users[u];
        let (mut success, mut failed) = (Vec::new(), Vec::new());
        let mut changed = Vec::new();
        for (raw, c) in ids.iter().zip(classify(ids)) {
            match c {
                Err(code) => failed.push((raw.clone(), vec![code])),
                Ok(id) => {
                    let group = &mut user.groups[index];
                    let (already, full) = (group.members.contains(&id), group.members.len() >= MAX_PER_GROUP);
                    match (already, full) {
                        (true, true) => failed.push((raw.clone(), vec![R::AlreadyInGroup, R::GroupFull])),
                        (true, false) => failed.push((raw.clone(), vec![R::AlreadyInGroup])),
                        (false, true) => failed.push((raw.clone(), vec![R::GroupFull])),
                        (false, false) => {
                            group.join(&id);
                            let new_opt = group.new_opt;
                            user.settle(&id);
                            // The group's option for new members, right
                            // after the join (as the server does).
                            if let Some(opt) = new_opt {
                                user.set_recv_opt(&id, opt, &mut changed);
                            }
                            success.push(id);
                        }
                    }
                }
            }
        }
        let group = &user.groups[index];
        let mut events = if success.is_empty() {
            vec![]
        } else {
            vec![Ev::ConversationsAddedToGroup(pb::ConversationsAddedToGroup {
                group_name: name.to_string(),
                conversation_ids: success.clone(),
                group_id: group.id.clone(),
                reason: pb::AdditionReason::UserRequest as i32,
            })]
        };
        if !changed.is_empty() {
            events.push(Ev::ConversationsChanged(pb::ConversationsChanged { conversation_ids: changed }));
        }
        let m = self.commit(u, events);
        Ok(BatchExp { success, failed, m })
    }

    /// The group a group-wide action names, after its checks (validation,
    /// revision, existence).
    fn action_group(&self, u: usize, name: &str, exp: Option<u64>, mut errs: Vec<ErrSpec>) -> ModelResult<usize> {
        let index = self.users[u].group(name);
        let invalid = index.is_none() && !name_ok(name);
        if invalid {
            errs.push(bad_name("group_name"));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        if self.wrong_rev(u, exp) {
            return Err(vec![MISMATCH]);
        }
        index.ok_or_else(|| vec![not_found("group_name")])
    }

    fn mark_read(&mut self, u: usize, name: &str, exp: Option<u64>) -> ModelResult<(Vec<String>, Mutation)> {
        let index = self.action_group(u, name, exp, Vec::new())?;
        let user = &mut self.users[u];
        let mut changed = Vec::new();
        for id in user.groups[index].members.clone() {
            if let Some(d) = user.registry.get_mut(&id) {
                if d.unread > 0 {
                    d.unread = 0;
                    user.update_times.remove(&id);
                    user.settle(&id);
                    changed.push(id);
                }
            }
        }
        let events = if changed.is_empty() {
            vec![]
        } else {
            vec![Ev::ConversationsChanged(pb::ConversationsChanged { conversation_ids: changed.clone() })]
        };
        Ok((changed, self.commit(u, events)))
    }

    fn mute(
        &mut self,
        u: usize,
        name: &str,
        opt: i32,
        new_members: bool,
        exp: Option<u64>,
    ) -> ModelResult<(Vec<String>, GroupExp, Mutation)> {
        let errs = if (1..=5).contains(&opt) {
            vec![]
        } else {
            vec![err(Code::InvalidArgument, "INVALID_ARGUMENT", "recv_opt")]
        };
        let index = self.action_group(u, name, exp, errs)?;
        let user = &mut self.users[u];
        let mut changed = Vec::new();
        for id in user.groups[index].members.clone() {
            user.set_recv_opt(&id, opt, &mut changed);
        }
        let mut events = Vec::new();
        let remembered = new_members.then_some(opt);
        let group = &mut user.groups[index];
        if group.new_opt != remembered {
            group.new_opt = remembered;
            events.push(Ev::GroupMuteChanged(pb::GroupMuteChanged {
                group_name: group.name.clone(),
                group_id: group.id.clone(),
                new_member_recv_opt: remembered,
            }));
        }
        if !changed.is_empty() {
            events.push(Ev::ConversationsChanged(pb::ConversationsChanged { conversation_ids: changed.clone() }));
        }
        let g = &user.groups[index];
        let view = GroupExp {
            id: g.id.clone(),
            rule: g.rule.clone(),
            name: g.name.clone(),
            count: g.members.len() as u32,
            unread: user.group_unread(g),
            create_time: g.create_time,
            look: g.look.clone(),
            mode: g.mode,
            pins: g.pins.clone(),
        };
        Ok((changed, view, self.commit(u, events)))
    }

    /// MoveConversations (see the proto): the moved ids, the top-level
    /// failures, per target (name, added ids, failures), the mutation.
    fn move_convs(
        &mut self,
        u: usize,
        from: Option<&str>,
        to: &[String],
        ids: &[String],
        exp: Option<u64>,
    ) -> ModelResult<MoveExp> {
        if !list_size_ok(ids.len()) {
            return Err(vec![bad_list("conversation_ids")]);
        }
        if to.is_empty() || to.len() > MAX_GROUPS {
            return Err(vec![err(Code::InvalidArgument, "INVALID_ARGUMENT", "to")]);
        }
        let user = &self.users[u];
        let named =
            from.map(|f| (f, "from_group_name")).into_iter().chain(to.iter().map(|t| (t.as_str(), "to.group_name")));
        for (name, field) in named {
            if user.group(name).is_none() && !name_ok(name) {
                return Err(vec![bad_name(field)]);
            }
        }
        if self.wrong_rev(u, exp) {
            return Err(vec![MISMATCH]);
        }
        let from_index = match from {
            Some(f) => Some(user.group(f).ok_or_else(|| vec![not_found("from_group_name")])?),
            None => None,
        };
        let mut targets = Vec::new();
        for t in to {
            let index = user.group(t).ok_or_else(|| vec![not_found("to.group_name")])?;
            if Some(index) == from_index || targets.contains(&index) {
                return Err(vec![err(Code::InvalidArgument, "INVALID_ARGUMENT", "to")]);
            }
            targets.push(index);
        }
        let user = &mut self.users[u];
        let (mut moved, mut failed) = (Vec::new(), Vec::new());
        let mut per: Vec<(Vec<String>, Failures)> = vec![(Vec::new(), Vec::new()); targets.len()];
        let mut changed = Vec::new();
        for (raw, c) in ids.iter().zip(classify(ids)) {
            let id = match c {
                Err(code) => {
                    failed.push((raw.clone(), vec![code]));
                    continue;
                }
                Ok(id) => id,
            };
            if let Some(f) = from_index {
                if !user.groups[f].members.contains(&id) {
                    failed.push((raw.clone(), vec![R::NotInGroup]));
                    continue;
                }
                if user.groups[f].by_rule.contains(&id) {
                    failed.push((raw.clone(), vec![R::InGroupByRule]));
                    continue;
                }
            }
            let full = |g: &GroupM| g.members.len() >= MAX_PER_GROUP;
            let blocked = targets.iter().any(|&t| !user.groups[t].members.contains(&id) && full(&user.groups[t]));
            if from_index.is_some() && blocked {
                for (slot, &t) in targets.iter().enumerate() {
                    let code = if user.groups[t].members.contains(&id) {
                        R::AlreadyInGroup
                    } else if full(&user.groups[t]) {
                        R::GroupFull
                    } else {
                        R::MoveNotApplied
                    };
                    per[slot].1.push((raw.clone(), vec![code]));
                }
                failed.push((raw.clone(), vec![R::GroupFull]));
                continue;
            }
            for (slot, &t) in targets.iter().enumerate() {
                if user.groups[t].members.contains(&id) {
                    per[slot].1.push((raw.clone(), vec![R::AlreadyInGroup]));
                } else if full(&user.groups[t]) {
                    per[slot].1.push((raw.clone(), vec![R::GroupFull]));
                } else {
                    user.groups[t].join(&id);
                    user.settle(&id);
                    per[slot].0.push(id.clone());
                    if let Some(opt) = user.groups[t].new_opt {
                        user.set_recv_opt(&id, opt, &mut changed);
                    }
                }
            }
            if let Some(f) = from_index {
                user.groups[f].members.remove(&id);
                user.settle(&id);
                if !user.groups[f].members.contains(&id) {
                    user.groups[f].leave(&id);
                }
                moved.push(id);
            }
        }
        let mut events = Vec::new();
        if let (Some(f), false) = (from_index, moved.is_empty()) {
            let g = &user.groups[f];
            events.push(Ev::ConversationsDeletedFromGroup(pb::ConversationsDeletedFromGroup {
                group_name: g.name.clone(),
                conversation_ids: moved.clone(),
                reason: pb::RemovalReason::Moved as i32,
                group_id: g.id.clone(),
            }));
        }
        for (slot, &t) in targets.iter().enumerate() {
            if !per[slot].0.is_empty() {
                let g = &user.groups[t];
                events.push(Ev::ConversationsAddedToGroup(pb::ConversationsAddedToGroup {
                    group_name: g.name.clone(),
                    conversation_ids: per[slot].0.clone(),
                    group_id: g.id.clone(),
                    reason: pb::AdditionReason::UserRequest as i32,
                }));
            }
        }
        if !changed.is_empty() {
            events.push(Ev::ConversationsChanged(pb::ConversationsChanged { conversation_ids: changed }));
        }
        let targets = targets
            .iter()
            .zip(per)
            .map(|(&t, (added, failed))| (user.groups[t].name.clone(), user.groups[t].id.clone(), added, failed))
            .collect();
        let m = self.commit(u, events);
        Ok(MoveExp { moved, failed, targets, m })
    }

    fn remove(&mut self, u: usize, name: &str, ids: &[String], exp: Option<u64>) -> ModelResult<BatchExp> {
        let index = self.membership_checks(u, name, ids, exp)?;
        let user = &mut self.users[u];
        let (mut success, mut failed) = (Vec::new(), Vec::new());
        for (raw, c) in ids.iter().zip(classify(ids)) {
            match c {
                Err(code) => failed.push((raw.clone(), vec![code])),
                Ok(id) if !user.groups[index].members.contains(&id) => failed.push((raw.clone(), vec![R::NotInGroup])),
                Ok(id) if user.groups[index].by_rule.contains(&id) => {
                    failed.push((raw.clone(), vec![R::InGroupByRule]))
                }
                Ok(id) => {
                    user.groups[index].members.remove(&id);
                    // It may match the group's rule and stay, by the rule,
                    // keeping its place and pin (its member key stays).
                    user.settle(&id);
                    if !user.groups[index].members.contains(&id) {
                        user.groups[index].leave(&id);
                    }
                    success.push(id);
                }
            }
        }
        let group = &user.groups[index];
        let events = if success.is_empty() {
            vec![]
        } else {
            vec![Ev::ConversationsDeletedFromGroup(pb::ConversationsDeletedFromGroup {
                group_name: name.to_string(),
                conversation_ids: success.clone(),
                reason: pb::RemovalReason::UserRequest as i32,
                group_id: group.id.clone(),
            })]
        };
        let m = self.commit(u, events);
        Ok(BatchExp { success, failed, m })
    }

    fn upsert(&mut self, u: usize, items: &[ConversationUpdate]) -> ModelResult<BatchExp> {
        if !list_size_ok(items.len()) {
            return Err(vec![bad_list("conversations")]);
        }
        let user = &mut self.users[u];
        let mut seen = BTreeSet::new();
        let (mut success, mut failed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        for item in items {
            let raw = item.conversation_id.clone();
            let id = canonical(&raw);
            let mut codes = Vec::new();
            match &id {
                None => codes.push(R::InvalidConversationId),
                Some(id) if !seen.insert(id.clone()) => codes.push(R::DuplicateInRequest),
                Some(_) => {}
            }
            // Which of two faults of one item is reported is not specified.
            if id.is_some() {
                codes.extend(value_codes(item));
            }
            if !codes.is_empty() {
                failed.push((raw, codes));
                continue;
            }
            let id = id.expect("checked above");
            let before = user.registry.get(&id).cloned();
            let mut data = before.clone().unwrap_or_default();
            data.apply(item);
            if before.as_ref() == Some(&data) {
                success.push(id);
                continue;
            }
            let marks_before = before.as_ref().map_or(0, |d| d.marks.len());
            if data.marks.len() > MAX_MARKS && data.marks.len() > marks_before {
                failed.push((raw, vec![R::InvalidField]));
                continue;
            }
            let was_pinned = before.as_ref().is_some_and(|d| d.pinned);
            if data.pinned && !was_pinned && user.pinned() >= MAX_PINNED {
                failed.push((raw, vec![R::PinLimitExceeded]));
                continue;
            }
            user.registry.insert(id.clone(), data);
            user.update_times.remove(&id);
            user.settle(&id);
            success.push(id.clone());
            changed.push(id);
        }
        let events = if changed.is_empty() {
            vec![]
        } else {
            vec![Ev::ConversationsChanged(pb::ConversationsChanged { conversation_ids: changed })]
        };
        let m = self.commit(u, events);
        Ok(BatchExp { success, failed, m })
    }

    fn delete_convs(&mut self, u: usize, ids: &[String]) -> ModelResult<BatchExp> {
        if !list_size_ok(ids.len()) {
            return Err(vec![bad_list("conversation_ids")]);
        }
        let user = &mut self.users[u];
        let (mut success, mut failed) = (Vec::new(), Vec::new());
        let mut removed: Vec<Vec<String>> = vec![Vec::new(); user.groups.len()];
        for (raw, c) in ids.iter().zip(classify(ids)) {
            match c {
                Err(code) => failed.push((raw.clone(), vec![code])),
                Ok(id) if !user.exists(&id) => failed.push((raw.clone(), vec![R::ConversationNotFound])),
                Ok(id) => {
                    for (g, out) in user.groups.iter_mut().zip(removed.iter_mut()) {
                        if g.leave(&id) {
                            out.push(id.clone());
                        }
                    }
                    user.registry.remove(&id);
                    user.update_times.remove(&id);
                    success.push(id);
                }
            }
        }
        let mut events: Vec<Ev> = user
            .groups
            .iter()
            .zip(removed)
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(g, ids)| {
                Ev::ConversationsDeletedFromGroup(pb::ConversationsDeletedFromGroup {
                    group_name: g.name.clone(),
                    conversation_ids: ids,
                    reason: pb::RemovalReason::ConversationDeleted as i32,
                    group_id: g.id.clone(),
                })
            })
            .collect();
        if !success.is_empty() {
            events.push(Ev::ConversationsDeleted(pb::ConversationsDeleted { conversation_ids: success.clone() }));
        }
        let deleted: BTreeSet<String> = success.iter().cloned().collect();
        let m = self.commit_with(u, events, &deleted);
        Ok(BatchExp { success, failed, m })
    }

    /// Looks up a group the way every mutation by name does (see
    /// `delete_group`): its index, or the errors allowed. `pre` are errors
    /// of the request itself, found before `expected_revision`.
    fn find(&self, u: usize, name: &str, exp: Option<u64>, pre: Vec<ErrSpec>) -> ModelResult<usize> {
        let index = self.users[u].group(name);
        let invalid = index.is_none() && !name_ok(name);
        let mut errs = pre;
        if errs.is_empty() && self.wrong_rev(u, exp) {
            errs.push(MISMATCH);
        }
        if !errs.is_empty() {
            if invalid {
                errs.push(bad_name("group_name"));
            }
            return Err(errs);
        }
        index.ok_or_else(|| vec![if invalid { bad_name("group_name") } else { not_found("group_name") }])
    }

    fn set_mode(&mut self, u: usize, name: &str, mode: i32, exp: Option<u64>) -> ModelResult<(GroupExp, Mutation)> {
        if !(1..=3).contains(&mode) {
            return Err(vec![err(Code::InvalidArgument, "INVALID_SORT_MODE", "sort_mode")]);
        }
        let index = self.find(u, name, exp, vec![])?;
        let user = &mut self.users[u];
        let g = &mut user.groups[index];
        let events = if g.mode == mode {
            vec![]
        } else {
            g.mode = mode;
            vec![Ev::GroupOrderChanged(pb::GroupOrderChanged {
                group_id: g.id.clone(),
                group_name: g.name.clone(),
                sort_mode: mode,
                conversation_ids: vec![],
                after_conversation_id: String::new(),
            })]
        };
        let view = GroupExp::of(user, &user.groups[index]);
        Ok((view, self.commit(u, events)))
    }

    /// `place`: the request's placement, Err(field) when it is invalid at the
    /// boundary.
    fn move_in(
        &mut self,
        u: usize,
        name: &str,
        ids: &[String],
        place: Result<(u8, Option<String>), &'static str>,
        exp: Option<u64>,
    ) -> ModelResult<BatchExp> {
        let mut pre = Vec::new();
        if !list_size_ok(ids.len()) {
            pre.push(bad_list("conversation_ids"));
        }
        if let Err(field) = place {
            if pre.is_empty() {
                pre.push(err(Code::InvalidArgument, "INVALID_PLACEMENT", field));
            }
        }
        let index = self.find(u, name, exp, pre)?;
        let (kind, anchor) = place.expect("checked above");
        let g = &self.users[u].groups[index];
        if g.mode != pb::GroupSortMode::Manual as i32 {
            return Err(vec![err(Code::FailedPrecondition, "SORT_MODE_NOT_MANUAL", "sort_mode")]);
        }
        let classified = classify(ids);
        if let Some(anchor) = &anchor {
            let field = if kind == 0 { "before_conversation_id" } else { "after_conversation_id" };
            let moved = classified.iter().any(|c| c.as_ref().ok() == Some(anchor));
            if !g.members.contains(anchor) || moved {
                return Err(vec![err(Code::InvalidArgument, "INVALID_PLACEMENT", field)]);
            }
        }
        let (mut success, mut failed) = (Vec::new(), Vec::new());
        for (raw, c) in ids.iter().zip(classified) {
            match c {
                Err(code) => failed.push((raw.clone(), vec![code])),
                Ok(id) if g.members.contains(&id) => success.push(id),
                Ok(_) => failed.push((raw.clone(), vec![R::NotInGroup])),
            }
        }
        let mut events = vec![];
        if !success.is_empty() {
            let mut order: Vec<String> = g.manual.iter().filter(|m| !success.contains(m)).cloned().collect();
            let at = match (kind, &anchor) {
                (0, Some(a)) => order.iter().position(|m| m == a).expect("a member"),
                (1, Some(a)) => order.iter().position(|m| m == a).expect("a member") + 1,
                (2, _) => 0,
                _ => order.len(),
            };
            order.splice(at..at, success.iter().cloned());
            if order != g.manual {
                events.push(Ev::GroupOrderChanged(pb::GroupOrderChanged {
                    group_id: g.id.clone(),
                    group_name: g.name.clone(),
                    sort_mode: g.mode,
                    conversation_ids: success.clone(),
                    after_conversation_id: at.checked_sub(1).map(|i| order[i].clone()).unwrap_or_default(),
                }));
                self.users[u].groups[index].manual = order;
            }
        }
        let m = self.commit(u, events);
        Ok(BatchExp { success, failed, m })
    }

    /// Pin (`pin`) or unpin in a group; the expected pins after.
    fn pin(
        &mut self,
        u: usize,
        name: &str,
        ids: &[String],
        pin: bool,
        exp: Option<u64>,
    ) -> ModelResult<(BatchExp, Vec<String>)> {
        let pre = if list_size_ok(ids.len()) { vec![] } else { vec![bad_list("conversation_ids")] };
        let index = self.find(u, name, exp, pre)?;
        let g = &mut self.users[u].groups[index];
        let (mut success, mut failed) = (Vec::new(), Vec::new());
        let before = g.pins.clone();
        if pin {
            let mut front: Vec<String> = Vec::new();
            let mut count = before.len();
            for (raw, c) in ids.iter().zip(classify(ids)) {
                match c {
                    Err(code) => failed.push((raw.clone(), vec![code])),
                    Ok(id) if !g.members.contains(&id) => failed.push((raw.clone(), vec![R::NotInGroup])),
                    Ok(id) if !before.contains(&id) && count >= MAX_GROUP_PINS => {
                        failed.push((raw.clone(), vec![R::GroupPinLimitExceeded]))
                    }
                    Ok(id) => {
                        if !before.contains(&id) {
                            count += 1;
                        }
                        front.push(id.clone());
                        success.push(id);
                    }
                }
            }
            let rest: Vec<String> = before.iter().filter(|p| !front.contains(p)).cloned().collect();
            front.extend(rest);
            g.pins = front;
        } else {
            for (raw, c) in ids.iter().zip(classify(ids)) {
                match c {
                    Err(code) => failed.push((raw.clone(), vec![code])),
                    Ok(id) if g.pins.contains(&id) => {
                        g.pins.retain(|p| *p != id);
                        success.push(id);
                    }
                    Ok(id) if g.members.contains(&id) => failed.push((raw.clone(), vec![R::NotPinnedInGroup])),
                    Ok(_) => failed.push((raw.clone(), vec![R::NotInGroup])),
                }
            }
        }
        let pins = g.pins.clone();
        let events = if pins == before {
            vec![]
        } else {
            vec![Ev::GroupPinsChanged(pb::GroupPinsChanged {
                group_id: g.id.clone(),
                group_name: g.name.clone(),
                pinned_conversation_ids: pins.clone(),
            })]
        };
        let m = self.commit(u, events);
        Ok((BatchExp { success, failed, m }, pins))
    }

    /// The conversations a filter selects, in listing order.
    fn select(&self, u: usize, f: &ConversationFilter) -> ModelResult<Vec<String>> {
        Self::select_in(&self.users[u], f)
    }

    fn select_in(user: &UserM, f: &ConversationFilter) -> ModelResult<Vec<String>> {
        let mut errs = Vec::new();
        if f.r#type.is_some_and(|t| t != 1 && t != 2) {
            errs.push(err(Code::InvalidArgument, "INVALID_ARGUMENT", "filter.type"));
        }
        if f.conversation_ids.len() > MAX_IDS {
            errs.push(bad_list("filter.conversation_ids"));
        }
        let wanted: Option<BTreeSet<String>> = if f.conversation_ids.is_empty() {
            None
        } else {
            let parsed: Vec<Option<String>> = f.conversation_ids.iter().map(|r| canonical(r)).collect();
            if parsed.iter().any(Option::is_none) {
                errs.push(err(Code::InvalidArgument, "INVALID_ARGUMENT", "filter.conversation_ids"));
            }
            Some(parsed.into_iter().flatten().collect())
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let group = match (f.group_name.as_deref(), f.group_id.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(vec![err(Code::InvalidArgument, "GROUP_NAME_AND_ID", "filter.group_name,filter.group_id")])
            }
            (_, Some(id)) => match user.groups.iter().find(|g| g.id == id) {
                Some(g) => Some(g),
                None => return Err(vec![not_found("filter.group_id")]),
            },
            (None | Some(""), None) => None,
            (Some(name), None) => match user.group(name) {
                Some(i) => Some(&user.groups[i]),
                None => return Err(vec![not_found("filter.group_name")]),
            },
        };
        // One group's listing is in that group's order.
        let order = match (f.group_name.as_deref(), group) {
            (Some(""), _) | (_, None) => user.listing(),
            (_, Some(g)) => user.group_order(g),
        };
        Ok(order
            .into_iter()
            .filter(|id| {
                let d = user.data(id);
                let kind_ok = match f.r#type {
                    Some(1) => id.starts_with("C2C"),
                    Some(2) => id.starts_with("GROUP"),
                    _ => true,
                };
                let group_ok = match (f.group_name.as_deref(), group) {
                    (Some(""), _) => !user.in_any_group(id),
                    (_, Some(g)) => g.members.contains(id),
                    _ => true,
                };
                let mark_ok = match f.mark_type {
                    None => true,
                    Some(0) => d.marks.is_empty(),
                    Some(m) => d.marks.contains(&m),
                };
                kind_ok
                    && group_ok
                    && mark_ok
                    && f.has_unread_count.is_none_or(|want| want == (d.unread > 0))
                    && f.has_group_at_info.is_none_or(|want| want == d.at)
                    && wanted.as_ref().is_none_or(|w| w.contains(id))
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------
// Running a case against the server
// ---------------------------------------------------------------------------

struct Clients {
    gc: GroupClient,
    cc: ConvClient,
    admin_gc: GroupClient,
    admin_cc: ConvClient,
    watch: tonic::Streaming<pb::WatchGroupEventsResponse>,
}

impl Clients {
    fn group(&mut self, who: Who) -> &mut GroupClient {
        if who.admin {
            &mut self.admin_gc
        } else {
            &mut self.gc
        }
    }
    fn conv(&mut self, who: Who) -> &mut ConvClient {
        if who.admin {
            &mut self.admin_cc
        } else {
            &mut self.cc
        }
    }
}

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// An error answer must be one the model allows.
fn check_status(status: &Status, allowed: &[ErrSpec]) -> Check {
    let info = status.get_details_error_info().ok_or_else(|| format!("no ErrorInfo in {status:?}"))?;
    ensure!(info.domain == "convgroups", "ErrorInfo.domain of {status:?}");
    let spec = allowed.iter().find(|s| s.code == status.code() && s.reason == info.reason).ok_or_else(|| {
        format!("got {:?}/{} ({:?}); the model allows {allowed:?}", status.code(), info.reason, status.message())
    })?;
    if !spec.field.is_empty() {
        ensure!(status.message().contains(spec.field), "message {:?} should name {:?}", status.message(), spec.field);
    }
    ensure!(
        info.metadata.get("tencent_code").map(String::as_str) == tencent(spec.reason),
        "tencent_code of {status:?}: {:?}",
        info.metadata
    );
    Ok(())
}

fn unexpected_ok<T: std::fmt::Debug>(answer: &T, allowed: &[ErrSpec]) -> String {
    format!("succeeded with {answer:?}; the model expects one of {allowed:?}")
}

/// Per-item failures: each actual failure matches one expected (same id as
/// sent, an acceptable code); order is not part of the contract.
fn check_failed(actual: &[pb::ConversationResult], expected: &[(String, Vec<R>)]) -> Check {
    ensure!(actual.len() == expected.len(), "failed items {actual:?}; the model expects {expected:?}");
    let mut used = vec![false; expected.len()];
    for item in actual {
        let code = R::try_from(item.code).map_err(|_| format!("unknown code in {item:?}"))?;
        let slot = expected
            .iter()
            .enumerate()
            .position(|(i, (id, codes))| !used[i] && *id == item.conversation_id && codes.contains(&code))
            .ok_or_else(|| format!("failed item {item:?} is not among the expected {expected:?}"))?;
        used[slot] = true;
        ensure!(!item.message.is_empty(), "failed item without a message: {item:?}");
        let tencent = match code {
            R::GroupFull => 51008,
            R::PinLimitExceeded => 51012,
            _ => 0,
        };
        ensure!(item.tencent_code == tencent, "tencent_code of {item:?}");
    }
    Ok(())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn check_batch(success: &[String], failed: &[pb::ConversationResult], revision: u64, exp: &BatchExp) -> Check {
    ensure!(
        sorted(success.to_vec()) == sorted(exp.success.clone()),
        "success ids {success:?}; the model expects {:?}",
        exp.success
    );
    check_failed(failed, &exp.failed)?;
    ensure!(revision == exp.m.revision, "response revision {revision}; the model expects {}", exp.m.revision);
    Ok(())
}

fn check_group_view(actual: Option<&pb::ConversationGroup>, exp: &GroupExp) -> Check {
    let g = actual.ok_or("no group in the response")?;
    ensure!(
        g.group_id == exp.id
            && g.rule == exp.rule
            && g.name == exp.name
            && g.conversation_count == exp.count
            && g.unread_count == exp.unread,
        "group {g:?}; the model expects {exp:?}"
    );
    ensure!(g.sort_mode == exp.mode && g.pinned_conversation_ids == exp.pins, "group {g:?}; the model expects {exp:?}");
    ensure!(g.create_time.is_some(), "group without create_time: {g:?}");
    let look = pb::GroupLook {
        icon: g.icon.clone(),
        color: g.color,
        collapsed: g.collapsed,
        custom_data: g.custom_data.clone(),
    };
    ensure!(look == exp.look, "group look {look:?}; the model expects {:?}", exp.look);
    if let Some(t) = exp.create_time {
        ensure!(g.create_time == Some(t), "create_time changed: {g:?}, was {t:?}");
    }
    Ok(())
}

/// Sorts the id lists inside events, and the events themselves, so two
/// batches compare without depending on orders the contract leaves open.
fn normalise(events: &[Ev]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            match &mut e {
                Ev::GroupCreated(x) => x.conversation_ids.sort(),
                Ev::ConversationsAddedToGroup(x) => x.conversation_ids.sort(),
                Ev::ConversationsDeletedFromGroup(x) => x.conversation_ids.sort(),
                Ev::ConversationsChanged(x) => x.conversation_ids.sort(),
                Ev::ConversationsDeleted(x) => x.conversation_ids.sort(),
                _ => {}
            }
            format!("{e:?}")
        })
        .collect();
    out.sort();
    out
}

/// The next message on a user's watch stream must be the batch of the
/// mutation the model just committed.
async fn check_event(clients: &mut Clients, user: &UserM, m: &Mutation) -> Check {
    if m.events.is_empty() {
        return Ok(());
    }
    let message = tokio::time::timeout(EVENT_TIMEOUT, clients.watch.message())
        .await
        .map_err(|_| format!("no event batch for revision {} within {EVENT_TIMEOUT:?}", m.revision))?
        .map_err(|s| format!("watch stream failed: {s:?}"))?
        .ok_or("watch stream ended")?;
    let Some(WatchKind::Events(batch)) = message.kind else {
        return Err(format!("expected the event batch of revision {}, got {message:?}", m.revision));
    };
    ensure!(batch.revision == m.revision, "batch revision {}; the model expects {}", batch.revision, m.revision);
    let kinds: Vec<Ev> = batch.events.iter().filter_map(|e| e.kind.clone()).collect();
    ensure!(kinds.len() == batch.events.len(), "event without a kind in {batch:?}");
    ensure!(normalise(&kinds) == normalise(&m.events), "events {kinds:?}; the model expects {:?}", m.events);
    if matches!(m.events.last(), Some(Ev::ConversationsDeleted(_))) {
        ensure!(
            matches!(kinds.last(), Some(Ev::ConversationsDeleted(_))),
            "ConversationsDeleted must come after the removals from groups: {kinds:?}"
        );
    }
    for e in &batch.events {
        ensure!(e.revision == m.revision, "event revision {} in batch {}", e.revision, m.revision);
        ensure!(e.user_id == user.id, "event of user {:?} on {:?}'s stream", e.user_id, user.id);
        ensure!(e.time.is_some(), "event without time: {e:?}");
        ensure!(
            e.group_names == user.names(),
            "event group_names {:?}; the model has {:?}",
            e.group_names,
            user.names()
        );
        let ids: Vec<String> = user.groups.iter().map(|g| g.id.clone()).collect();
        ensure!(e.group_ids == ids, "event group_ids {:?}; the model has {ids:?}", e.group_ids);
    }
    Ok(())
}

/// Everything the user can observe equals the model: the group list and the
/// complete listing (walked in pages of the server's maximum size).
/// A filter that changes with the step, so every filter field is checked
/// against every state the sequence reaches.
fn probe_filter(step: usize, user: &UserM) -> ConversationFilter {
    let f = ConversationFilter::default();
    match step % 9 {
        0 => ConversationFilter { mark_type: Some(0), ..f },
        1 => ConversationFilter { mark_type: Some(1), ..f },
        2 => ConversationFilter { group_name: Some(String::new()), ..f },
        3 => ConversationFilter { has_unread_count: Some(true), ..f },
        4 => ConversationFilter { r#type: Some(pb::ConversationType::Group as i32), ..f },
        5 => ConversationFilter { has_group_at_info: Some(true), has_unread_count: Some(false), ..f },
        6 => ConversationFilter { conversation_ids: vec!["c2c_a".into(), "GROUPg".into(), "C2Cb".into()], ..f },
        7 => match user.groups.last() {
            Some(g) => ConversationFilter { group_name: Some(g.name.clone()), ..f },
            None => ConversationFilter { mark_type: Some(2), ..f },
        },
        // The first group, by id (its name may have changed since).
        _ => match user.groups.first() {
            Some(g) => ConversationFilter { group_id: Some(g.id.clone()), ..f },
            None => ConversationFilter { mark_type: Some(3), ..f },
        },
    }
}

async fn check_state(clients: &mut Clients, user: &mut UserM, step: usize) -> Check {
    let list = clients
        .gc
        .get_conversation_group_list(pb::GetConversationGroupListRequest::default())
        .await
        .map_err(|s| format!("GetConversationGroupList: {s:?}"))?
        .into_inner();
    ensure!(list.revision == user.rev, "{}: revision {}; the model has {}", user.id, list.revision, user.rev);
    ensure!(
        list.group_names == user.names(),
        "{}: groups {:?}; the model has {:?}",
        user.id,
        list.group_names,
        user.names()
    );
    ensure!(
        list.groups.len() == user.groups.len(),
        "{}: {} group views for {} names",
        user.id,
        list.groups.len(),
        list.group_names.len()
    );
    for (g, m) in list.groups.iter().zip(&user.groups) {
        let exp = GroupExp::of(user, m);
        check_group_view(Some(g), &exp).map_err(|e| format!("{}: {e}", user.id))?;
        ensure!(
            g.new_member_recv_opt == m.new_opt,
            "{}: new_member_recv_opt of {g:?}; the model has {:?}",
            user.id,
            m.new_opt
        );
    }

    let listed = walk(&mut clients.gc, None, 1000, user.rev).await?;
    let expected: Vec<pb::Conversation> = user.listing().iter().map(|id| user.conversation(id)).collect();
    check_conversations(user, listed, &expected)?;

    let total = unread(&mut clients.gc, None).await.map_err(|s| format!("GetUnreadCount: {s:?}"))?;
    let want: u64 = user.listing().iter().map(|id| user.data(id).counted_unread()).sum();
    ensure!(total == want, "{}: total unread {total}; the model has {want}", user.id);

    let probe = probe_filter(step, user);
    let selected = Model::select_in(user, &probe).map_err(|e| format!("probe filter {probe:?}: {e:?}"))?;
    let listed = walk(&mut clients.gc, Some(probe.clone()), 2, user.rev).await?;
    let expected: Vec<pb::Conversation> = selected.iter().map(|id| user.conversation(id)).collect();
    check_conversations(user, listed, &expected).map_err(|e| format!("filter {probe:?}: {e}"))?;
    let count = unread(&mut clients.gc, Some(probe.clone())).await.map_err(|s| format!("GetUnreadCount: {s:?}"))?;
    let want: u64 = selected.iter().map(|id| user.data(id).counted_unread()).sum();
    ensure!(count == want, "{}: unread {count} for {probe:?}; the model has {want}", user.id);
    Ok(())
}

fn check_conversations(user: &mut UserM, listed: Vec<pb::Conversation>, expected: &[pb::Conversation]) -> Check {
    let ids: Vec<&str> = listed.iter().map(|c| c.conversation_id.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|c| c.conversation_id.as_str()).collect();
    ensure!(ids == want, "{}: listing {ids:?}; the model lists {want:?}", user.id);
    for (mut got, want) in listed.into_iter().zip(expected) {
        let update_time = got.update_time.take();
        ensure!(update_time.is_some() == want.registered, "{}: update_time {update_time:?} of {got:?}", user.id);
        if let Some(t) = update_time {
            let seen = user.update_times.entry(got.conversation_id.clone()).or_insert(t);
            ensure!(
                *seen == t,
                "{}: update_time of {} changed from {seen:?} to {t:?} without a change",
                user.id,
                got.conversation_id
            );
        }
        ensure!(got == *want, "{}: conversation {got:?}; the model has {want:?}", user.id);
    }
    Ok(())
}

/// Walks every page of a listing; each page must fit the page size and carry
/// the user's revision.
async fn walk(
    gc: &mut GroupClient,
    filter: Option<ConversationFilter>,
    page_size: u32,
    rev: u64,
) -> Result<Vec<pb::Conversation>, String> {
    let effective = match page_size as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page = list_page(gc, filter.clone(), page_size, &token)
            .await
            .map_err(|s| format!("GetConversationList: {s:?}"))?;
        ensure!(
            page.conversations.len() <= effective,
            "page of {} for page_size {page_size}",
            page.conversations.len()
        );
        ensure!(page.is_finished == page.next_page_token.is_empty(), "is_finished iff no next token: {page:?}");
        ensure!(page.revision == rev, "listing revision {}; the model has {rev}", page.revision);
        all.extend(page.conversations);
        if page.is_finished {
            return Ok(all);
        }
        token = page.next_page_token;
    }
    Err("paging did not finish".into())
}

struct Case {
    model: Model,
    clients: Vec<Clients>,
    ids: Vec<String>,
    names: Vec<String>,
}

impl Case {
    fn ids(&self, sel: &[usize]) -> Vec<String> {
        sel.iter().map(|&i| self.ids[i].clone()).collect()
    }

    fn name(&self, user: usize, sel: NameSel) -> String {
        let groups = &self.model.users[user].groups;
        match sel {
            NameSel::Existing(i) if !groups.is_empty() => groups[i % groups.len()].name.clone(),
            NameSel::Existing(i) | NameSel::Pool(i) => self.names[i % self.names.len()].clone(),
        }
    }

    fn rev(&self, user: usize, rev: Rev) -> Option<u64> {
        let right = self.model.users[user].rev;
        match rev {
            Rev::Unset => None,
            Rev::Right => Some(right),
            Rev::Prev => Some(right.checked_sub(1).unwrap_or(u64::MAX)),
            Rev::Next => Some(right + 1),
            Rev::Zero => Some(0),
            Rev::Max => Some(u64::MAX),
        }
    }

    fn perm(&self, user: usize, perm: &Perm) -> Vec<String> {
        let mut names = self.model.users[user].names();
        let n = names.len();
        match *perm {
            Perm::Shuffle(mut seed) => {
                for i in (1..n).rev() {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    names.swap(i, (seed >> 33) as usize % (i + 1));
                }
            }
            Perm::Same => {}
            Perm::DropOne(i) if n > 0 => {
                names.remove(i % n);
            }
            Perm::DupOne(i) if n > 0 => {
                let dup = names[i % n].clone();
                names[(i + 1) % n] = dup;
            }
            Perm::Unknown(i) => names.push(self.names[i % self.names.len()].clone()),
            Perm::Empty => names.clear(),
            Perm::DropOne(_) | Perm::DupOne(_) => names.push("A".into()),
        }
        names
    }

    fn update(&self, u: &Upd) -> ConversationUpdate {
        let text = |i: Option<usize>| i.map(|i| TEXTS[i].to_string());
        ConversationUpdate {
            conversation_id: self.ids[u.id].clone(),
            show_name: text(u.show_name),
            face_url: text(u.face_url),
            unread_count: u.unread,
            is_pinned: u.pinned,
            order_key: u.order_key,
            recv_opt: u.recv_opt,
            mark_list: u.marks.clone().map(|values| pb::MarkList { values }),
            add_marks: u.mark_edits.0.clone(),
            remove_marks: u.mark_edits.1.clone(),
            custom_data: u.custom.clone(),
            has_group_at_info: u.at,
            last_message: u.last.map(|(s, t, time)| pb::LastMessage {
                sender: TEXTS[s].to_string(),
                text: TEXTS[t].to_string(),
                time: TIMES[time].map(|(seconds, nanos)| Timestamp { seconds, nanos }),
            }),
        }
    }

    fn rule(&self, r: &RuleGen) -> pb::GroupRule {
        pb::GroupRule {
            r#type: r.kind,
            mark_type: r.mark,
            has_unread_count: r.unread,
            muted: r.muted,
            ungrouped: r.ungrouped,
            has_group_at_info: r.at,
            include_ids: self.ids(&r.include),
            exclude_ids: self.ids(&r.exclude),
        }
    }

    fn filter(&self, user: usize, f: &Filt) -> ConversationFilter {
        ConversationFilter {
            r#type: f.kind,
            group_name: f.group.map(|g| g.map(|sel| self.name(user, sel)).unwrap_or_default()),
            mark_type: f.mark,
            has_unread_count: f.unread,
            has_group_at_info: f.at,
            conversation_ids: self.ids(&f.ids),
            ..Default::default()
        }
    }

    /// Runs one operation; returns a description of the request for
    /// failure reports and the user it acted for.
    async fn step(&mut self, op: &Op) -> Result<(String, usize), String> {
        match op {
            Op::Create { who, name, ids, rule, rev } => {
                let req = pb::CreateConversationGroupRequest {
                    group_name: self.names[*name].clone(),
                    conversation_ids: self.ids(ids),
                    expected_revision: self.rev(who.user, *rev),
                    rule: rule.as_ref().map(|r| self.rule(r)),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).create_conversation_group(req.clone()).await;
                let exp = self.model.create(
                    who.user,
                    &req.group_name,
                    &req.conversation_ids,
                    req.rule.as_ref(),
                    req.expected_revision,
                );
                match (answer, exp) {
                    (Ok(r), Ok((g, b))) => {
                        let r = r.into_inner();
                        check_group_view(r.group.as_ref(), &g)?;
                        check_batch(&r.success_conversation_ids, &r.failed, r.revision, &b)?;
                        let user = &mut self.model.users[who.user];
                        user.groups.last_mut().expect("created").create_time = r.group.and_then(|g| g.create_time);
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::SetRule { who, name, rule, rev } => {
                let req = pb::SetConversationGroupRuleRequest {
                    group_name: self.name(who.user, *name),
                    rule: rule.as_ref().map(|r| self.rule(r)),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).set_conversation_group_rule(req.clone()).await;
                match (answer, self.model.set_rule(who.user, &req.group_name, req.rule.as_ref(), req.expected_revision))
                {
                    (Ok(r), Ok((g, m))) => {
                        let r = r.into_inner();
                        check_group_view(r.group.as_ref(), &g)?;
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Delete { who, name, rev } => {
                let req = pb::DeleteConversationGroupRequest {
                    group_name: self.name(who.user, *name),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).delete_conversation_group(req.clone()).await;
                match (answer, self.model.delete_group(who.user, &req.group_name, req.expected_revision)) {
                    (Ok(r), Ok(m)) => {
                        let r = r.into_inner();
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Update { who, name, by_id, look, paths, rev } => {
                let groups = &self.model.users[who.user].groups;
                let by_id = match name {
                    NameSel::Existing(i) if *by_id && !groups.is_empty() => Some(groups[i % groups.len()].id.clone()),
                    _ => None,
                };
                let req = pb::UpdateConversationGroupRequest {
                    group_name: if by_id.is_some() { String::new() } else { self.name(who.user, *name) },
                    group_id: by_id.clone().unwrap_or_default(),
                    look: Some(pb::GroupLook {
                        icon: ICONS[look.icon].to_string(),
                        color: look.color,
                        collapsed: look.collapsed,
                        custom_data: look.custom.clone(),
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: paths.iter().map(|&p| PATHS[p].to_string()).collect(),
                    }),
                    expected_revision: self.rev(who.user, *rev),
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).update_conversation_group(req.clone()).await;
                let group = match &by_id {
                    Some(id) => Err(id.as_str()),
                    None => Ok(req.group_name.as_str()),
                };
                let paths = &req.update_mask.as_ref().expect("set").paths;
                let exp =
                    self.model.update(who.user, group, req.look.as_ref().expect("set"), paths, req.expected_revision);
                match (answer, exp) {
                    (Ok(r), Ok((g, m))) => {
                        let r = r.into_inner();
                        check_group_view(r.group.as_ref(), &g)?;
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Rename { who, old, new, rev } => {
                let req = pb::RenameConversationGroupRequest {
                    old_name: self.name(who.user, *old),
                    new_name: self.name(who.user, *new),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).rename_conversation_group(req.clone()).await;
                match (answer, self.model.rename(who.user, &req.old_name, &req.new_name, req.expected_revision)) {
                    (Ok(r), Ok((g, m))) => {
                        let r = r.into_inner();
                        check_group_view(r.group.as_ref(), &g)?;
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Reorder { who, perm, rev } => {
                let req = pb::ReorderConversationGroupsRequest {
                    group_names: self.perm(who.user, perm),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).reorder_conversation_groups(req.clone()).await;
                match (answer, self.model.reorder(who.user, &req.group_names, req.expected_revision)) {
                    (Ok(r), Ok((names, m))) => {
                        let r = r.into_inner();
                        ensure!(r.group_names == names, "group_names {:?}; the model expects {names:?}", r.group_names);
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Add { who, name, ids, rev } => {
                let req = pb::AddConversationsToGroupRequest {
                    group_name: self.name(who.user, *name),
                    conversation_ids: self.ids(ids),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).add_conversations_to_group(req.clone()).await;
                let exp = self.model.add(who.user, &req.group_name, &req.conversation_ids, req.expected_revision);
                match (answer, exp) {
                    (Ok(r), Ok(b)) => {
                        let r = r.into_inner();
                        check_batch(&r.success_conversation_ids, &r.failed, r.revision, &b)?;
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Remove { who, name, ids, rev } => {
                let req = pb::DeleteConversationsFromGroupRequest {
                    group_name: self.name(who.user, *name),
                    conversation_ids: self.ids(ids),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).delete_conversations_from_group(req.clone()).await;
                let exp = self.model.remove(who.user, &req.group_name, &req.conversation_ids, req.expected_revision);
                match (answer, exp) {
                    (Ok(r), Ok(b)) => {
                        let r = r.into_inner();
                        check_batch(&r.success_conversation_ids, &r.failed, r.revision, &b)?;
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Upsert { who, items } => {
                let req =
                    pb::UpsertConversationsRequest { conversations: items.iter().map(|u| self.update(u)).collect() };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].conv(*who).upsert_conversations(req.clone()).await;
                match (answer, self.model.upsert(who.user, &req.conversations)) {
                    (Ok(r), Ok(b)) => {
                        let r = r.into_inner();
                        check_batch(&r.success_conversation_ids, &r.failed, r.revision, &b)?;
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::DeleteConvs { who, ids } => {
                let req = pb::DeleteConversationsRequest { conversation_ids: self.ids(ids) };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].conv(*who).delete_conversations(req.clone()).await;
                match (answer, self.model.delete_convs(who.user, &req.conversation_ids)) {
                    (Ok(r), Ok(b)) => {
                        let r = r.into_inner();
                        check_batch(&r.success_conversation_ids, &r.failed, r.revision, &b)?;
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::MarkRead { who, name, rev } => {
                let req = pb::MarkConversationGroupReadRequest {
                    group_name: self.name(who.user, *name),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).mark_conversation_group_read(req.clone()).await;
                match (answer, self.model.mark_read(who.user, &req.group_name, req.expected_revision)) {
                    (Ok(r), Ok((changed, m))) => {
                        let r = r.into_inner();
                        ensure!(r.changed_conversation_ids == changed, "changed {r:?}; the model expects {changed:?}");
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Mute { who, name, opt, new_members, rev } => {
                let req = pb::SetConversationGroupMuteRequest {
                    group_name: self.name(who.user, *name),
                    recv_opt: *opt,
                    apply_to_new_members: *new_members,
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).set_conversation_group_mute(req.clone()).await;
                let exp = self.model.mute(who.user, &req.group_name, *opt, *new_members, req.expected_revision);
                match (answer, exp) {
                    (Ok(r), Ok((changed, g, m))) => {
                        let r = r.into_inner();
                        ensure!(r.changed_conversation_ids == changed, "changed {r:?}; the model expects {changed:?}");
                        check_group_view(r.group.as_ref(), &g)?;
                        let remembered = new_members.then_some(*opt);
                        ensure!(
                            r.group.as_ref().is_some_and(|g| g.new_member_recv_opt == remembered),
                            "group {:?}; the model remembers {remembered:?}",
                            r.group
                        );
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Move { who, from, to, ids, rev } => {
                let req = pb::MoveConversationsRequest {
                    conversation_ids: self.ids(ids),
                    from_group_name: from.map(|f| self.name(who.user, f)).unwrap_or_default(),
                    to: to
                        .iter()
                        .map(|t| pb::GroupSelector { group_name: self.name(who.user, *t), group_id: String::new() })
                        .collect(),
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).move_conversations(req.clone()).await;
                // An empty name is no `from` at all (both fields empty).
                let from_name = Some(req.from_group_name.as_str()).filter(|f| !f.is_empty());
                let to_names: Vec<String> = req.to.iter().map(|t| t.group_name.clone()).collect();
                let exp =
                    self.model.move_convs(who.user, from_name, &to_names, &req.conversation_ids, req.expected_revision);
                match (answer, exp) {
                    (Ok(r), Ok(x)) => {
                        let r = r.into_inner();
                        ensure!(r.moved_conversation_ids == x.moved, "moved {r:?}; the model expects {x:?}");
                        check_failed(&r.failed, &x.failed)?;
                        ensure!(r.targets.len() == x.targets.len(), "targets {r:?}; the model expects {x:?}");
                        for (t, (name, id, added, failed)) in r.targets.iter().zip(&x.targets) {
                            ensure!(
                                t.group_name == *name && t.group_id == *id && t.added_conversation_ids == *added,
                                "target {t:?}; the model expects {name} {id} {added:?}"
                            );
                            check_failed(&t.failed, failed)?;
                        }
                        ensure!(
                            r.revision == x.m.revision,
                            "revision {}; the model expects {}",
                            r.revision,
                            x.m.revision
                        );
                        self.event(who.user, &x.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::List { who, filter, page_size } => {
                let f = self.filter(who.user, filter);
                let desc = format!("{who:?} GetConversationList {f:?} page_size {page_size}");
                let rev = self.model.users[who.user].rev;
                let answer = walk(self.clients[who.user].group(*who), Some(f.clone()), *page_size, rev).await;
                match (answer, self.model.select(who.user, &f)) {
                    (Ok(listed), Ok(ids)) => {
                        let user = &mut self.model.users[who.user];
                        let expected: Vec<pb::Conversation> = ids.iter().map(|id| user.conversation(id)).collect();
                        check_conversations(user, listed, &expected)?;
                    }
                    (Ok(listed), Err(e)) => return Err(unexpected_ok(&listed, &e)),
                    (Err(s), Err(e)) => {
                        // `walk` reports the status as text; redo the first call for the status itself.
                        let status = list_page(self.clients[who.user].group(*who), Some(f), *page_size, "")
                            .await
                            .err()
                            .ok_or_else(|| format!("the listing failed mid-walk: {s}"))?;
                        check_status(&status, &e)?;
                    }
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::SetMode { who, name, mode, rev } => {
                let req = pb::SetConversationGroupSortModeRequest {
                    group_name: self.name(who.user, *name),
                    sort_mode: *mode,
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).set_conversation_group_sort_mode(req.clone()).await;
                match (answer, self.model.set_mode(who.user, &req.group_name, *mode, req.expected_revision)) {
                    (Ok(r), Ok((g, m))) => {
                        let r = r.into_inner();
                        check_group_view(r.group.as_ref(), &g)?;
                        ensure!(r.revision == m.revision, "revision {}; the model expects {}", r.revision, m.revision);
                        self.event(who.user, &m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::MoveIn { who, name, ids, place, rev } => {
                use pb::move_conversations_in_group_request::Placement;
                let anchor = self.ids[place.1].clone();
                let (placement, model_place) = match place.0 {
                    0 => (
                        Some(Placement::BeforeConversationId(anchor.clone())),
                        canonical(&anchor).map(|a| (0, Some(a))).ok_or("before_conversation_id"),
                    ),
                    1 => (
                        Some(Placement::AfterConversationId(anchor.clone())),
                        canonical(&anchor).map(|a| (1, Some(a))).ok_or("after_conversation_id"),
                    ),
                    2 => (Some(Placement::ToStart(true)), Ok((2, None))),
                    3 => (Some(Placement::ToEnd(true)), Ok((3, None))),
                    _ => (None, Err("placement")),
                };
                let req = pb::MoveConversationsInGroupRequest {
                    group_name: self.name(who.user, *name),
                    conversation_ids: self.ids(ids),
                    placement,
                    expected_revision: self.rev(who.user, *rev),
                    ..Default::default()
                };
                let desc = format!("{who:?} {req:?}");
                let answer = self.clients[who.user].group(*who).move_conversations_in_group(req.clone()).await;
                let exp = self.model.move_in(
                    who.user,
                    &req.group_name,
                    &req.conversation_ids,
                    model_place,
                    req.expected_revision,
                );
                match (answer, exp) {
                    (Ok(r), Ok(b)) => {
                        let r = r.into_inner();
                        check_batch(&r.success_conversation_ids, &r.failed, r.revision, &b)?;
                        ensure!(
                            r.success_conversation_ids == b.success,
                            "moved {:?} in that order; the model expects {:?}",
                            r.success_conversation_ids,
                            b.success
                        );
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Pin { who, name, ids, pin, rev } => {
                let (group_name, conversation_ids, expected_revision) =
                    (self.name(who.user, *name), self.ids(ids), self.rev(who.user, *rev));
                let desc = format!("{who:?} pin={pin} {group_name:?} {conversation_ids:?} {expected_revision:?}");
                let gc = self.clients[who.user].group(*who);
                let answer = if *pin {
                    let req = pb::PinConversationsInGroupRequest {
                        group_name: group_name.clone(),
                        conversation_ids: conversation_ids.clone(),
                        expected_revision,
                        ..Default::default()
                    };
                    gc.pin_conversations_in_group(req).await.map(|r| {
                        let r = r.into_inner();
                        (r.success_conversation_ids, r.failed, r.revision, r.pinned_conversation_ids)
                    })
                } else {
                    let req = pb::UnpinConversationsInGroupRequest {
                        group_name: group_name.clone(),
                        conversation_ids: conversation_ids.clone(),
                        expected_revision,
                        ..Default::default()
                    };
                    gc.unpin_conversations_in_group(req).await.map(|r| {
                        let r = r.into_inner();
                        (r.success_conversation_ids, r.failed, r.revision, r.pinned_conversation_ids)
                    })
                };
                match (answer, self.model.pin(who.user, &group_name, &conversation_ids, *pin, expected_revision)) {
                    (Ok((success, failed, revision, pins)), Ok((b, want))) => {
                        check_batch(&success, &failed, revision, &b)?;
                        ensure!(pins == want, "pinned {pins:?}; the model expects {want:?}");
                        self.event(who.user, &b.m).await?;
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r, &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
            Op::Unread { who, filter } => {
                let f = self.filter(who.user, filter);
                let desc = format!("{who:?} GetUnreadCount {f:?}");
                let answer = self.clients[who.user]
                    .group(*who)
                    .get_unread_count(pb::GetUnreadCountRequest { filter: Some(f.clone()), min_revision: None })
                    .await;
                match (answer, self.model.select(who.user, &f)) {
                    (Ok(r), Ok(ids)) => {
                        let r = r.into_inner();
                        let user = &self.model.users[who.user];
                        let want: u64 = ids.iter().map(|id| user.data(id).counted_unread()).sum();
                        ensure!(r.unread_count == want, "unread_count {}; the model has {want}", r.unread_count);
                        ensure!(r.revision == user.rev, "revision {}; the model has {}", r.revision, user.rev);
                    }
                    (Ok(r), Err(e)) => return Err(unexpected_ok(&r.into_inner(), &e)),
                    (Err(s), Err(e)) => check_status(&s, &e)?,
                    (Err(s), Ok(exp)) => return Err(format!("failed with {s:?}; the model expects {exp:?}")),
                }
                Ok((desc, who.user))
            }
        }
    }

    async fn event(&mut self, user: usize, m: &Mutation) -> Check {
        check_event(&mut self.clients[user], &self.model.users[user], m).await
    }
}

async fn open_watch(
    gc: &mut GroupClient,
    revision: u64,
) -> Result<tonic::Streaming<pb::WatchGroupEventsResponse>, String> {
    let mut stream = gc
        .watch_group_events(pb::WatchGroupEventsRequest::default())
        .await
        .map_err(|s| format!("WatchGroupEvents: {s:?}"))?
        .into_inner();
    let first = stream.message().await.map_err(|s| format!("watch: {s:?}"))?.ok_or("watch ended at once")?;
    match first.kind {
        Some(WatchKind::Bookmark(b)) if b.revision == revision => Ok(stream),
        other => Err(format!("first watch message {other:?}; expected a bookmark at the current revision {revision}")),
    }
}

async fn run_case(s: &TestServer, case: u64, ops: &[Op]) -> Check {
    let global = s.stats.revision();
    let mut model = Model { global, users: Vec::new() };
    let mut clients = Vec::new();
    for u in 0..USERS {
        let id = format!("model{case}u{u}");
        let mut gc = s.group_client(&id);
        let watch = open_watch(&mut gc, global).await?;
        clients.push(Clients {
            gc,
            cc: s.conv_client(&id),
            admin_gc: s.admin_group_client(Some(&id)),
            admin_cc: s.admin_conv_client(Some(&id)),
            watch,
        });
        model.users.push(UserM { id, ..Default::default() });
    }
    let mut case = Case { model, clients, ids: id_pool(), names: name_pool() };
    for (i, op) in ops.iter().enumerate() {
        let (desc, acting) = case.step(op).await.map_err(|e| format!("step {i} {op:?}: {e}"))?;
        // The acting user's state in full; the others' revision (their
        // streams and the final check below catch any other change).
        for u in 0..USERS {
            let result = if u == acting {
                check_state(&mut case.clients[u], &mut case.model.users[u], i).await
            } else {
                let got = revision(&mut case.clients[u].gc).await;
                let want = case.model.users[u].rev;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{}: revision {got}; the model has {want}", case.model.users[u].id))
                }
            };
            result.map_err(|e| format!("after step {i} ({desc}): {e}"))?;
        }
    }
    for u in 0..USERS {
        check_state(&mut case.clients[u], &mut case.model.users[u], u).await.map_err(|e| format!("at the end: {e}"))?;
    }
    Ok(())
}

fn proptest_config() -> PropConfig {
    let mut config = PropConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    // Failures are reported with the shrunk sequence; regressions are kept
    // as named tests below rather than in a persistence file.
    config.failure_persistence = None;
    config.max_shrink_iters = 2000;
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Random operation sequences for two users agree with the model at every step.
#[test]
fn random_operation_sequences_agree_with_the_model() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start_with(configure));
    let case = Cell::new(0u64);
    let mut runner = TestRunner::new(proptest_config());
    let result = runner.run(&ops(), |ops| {
        case.set(case.get() + 1);
        rt.block_on(run_case(&server, case.get(), &ops)).map_err(TestCaseError::fail)
    });
    rt.block_on(server.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Runs a fixed sequence (a regression or a hand-written scenario).
fn run_fixed(ops: Vec<Op>) {
    let rt = runtime();
    let server = rt.block_on(TestServer::start_with(configure));
    let result = rt.block_on(run_case(&server, 0, &ops));
    rt.block_on(server.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}

const ALICE: Who = Who { user: 0, admin: false };
const ALICE_ADMIN: Who = Who { user: 0, admin: true };

/// The group-wide actions at their boundaries, deterministically: a move
/// into a full target (GROUP_FULL there, MOVE_NOT_APPLIED in the target
/// with room, the conversation left in `from`), the rest applied; a
/// remembered receive option given to conversations moved and added in;
/// adding to several groups; mark read; refusals (bad option, a target
/// named twice or equal to `from`, a bad name with a stale revision).
#[test]
fn group_actions_scenario_agrees_with_the_model() {
    let unread = |id, n| Upd {
        id,
        show_name: None,
        face_url: None,
        unread: Some(n),
        pinned: None,
        order_key: None,
        recv_opt: None,
        marks: None,
        mark_edits: (Vec::new(), Vec::new()),
        custom: None,
        at: Some(true),
        last: None,
    };
    let (a, b, c) = (NameSel::Existing(0), NameSel::Existing(1), NameSel::Existing(2));
    let mv = |from: Option<NameSel>, to: Vec<NameSel>, ids: Vec<usize>| Op::Move {
        who: ALICE,
        from,
        to,
        ids,
        rev: Rev::Unset,
    };
    let ops = vec![
        Op::Create { who: ALICE, name: 0, ids: vec![0, 2, 4], rule: None, rev: Rev::Unset },
        Op::Create { who: ALICE, name: 1, ids: vec![5, 7, 8, 9], rule: None, rev: Rev::Unset },
        Op::Create { who: ALICE, name: 2, ids: vec![7], rule: None, rev: Rev::Unset },
        Op::Upsert { who: ALICE, items: vec![unread(0, 2), unread(2, 3), unread(7, 1)] },
        Op::Mute { who: ALICE, name: c, opt: 2, new_members: true, rev: Rev::Right },
        mv(Some(a), vec![c], vec![0, 1, 10]),
        mv(Some(a), vec![b, c], vec![2, 4]),
        Op::Remove { who: ALICE, name: b, ids: vec![9], rev: Rev::Unset },
        mv(Some(a), vec![b, c], vec![2, 4]),
        mv(None, vec![a, b], vec![0, 4, 6]),
        Op::MarkRead { who: ALICE, name: a, rev: Rev::Right },
        Op::MarkRead { who: ALICE_ADMIN, name: c, rev: Rev::Unset },
        Op::MarkRead { who: ALICE, name: c, rev: Rev::Unset },
        Op::Mute { who: ALICE, name: a, opt: 0, new_members: false, rev: Rev::Unset },
        Op::Mute { who: ALICE, name: a, opt: 6, new_members: true, rev: Rev::Unset },
        mv(Some(a), vec![c, c], vec![4]),
        mv(Some(a), vec![a], vec![4]),
        mv(Some(b), vec![], vec![4]),
        mv(Some(a), vec![c], vec![4]).clone_with_rev(Rev::Prev),
        Op::MarkRead { who: ALICE, name: NameSel::Pool(9), rev: Rev::Next },
        Op::Mute { who: ALICE, name: c, opt: 1, new_members: false, rev: Rev::Unset },
        Op::Add { who: ALICE, name: c, ids: vec![9], rev: Rev::Unset },
        Op::Mute { who: ALICE, name: c, opt: 1, new_members: false, rev: Rev::Unset },
    ];
    run_fixed(ops);
}

/// Every boundary at least once, deterministically: the group limit, a full
/// group, the pin limit, a stale revision, a reorder, native ids, deletion
/// of grouped conversations.
#[test]
fn boundaries_scenario_agrees_with_the_model() {
    let pin = |id| Upd {
        id,
        show_name: None,
        face_url: None,
        unread: Some(2),
        pinned: Some(true),
        order_key: None,
        recv_opt: None,
        marks: None,
        mark_edits: (Vec::new(), Vec::new()),
        custom: None,
        at: None,
        last: None,
    };
    let look = || LookSel { icon: 3, color: 2, collapsed: true, custom: vec![1] };
    let ops = vec![
        Op::Create { who: ALICE, name: 0, ids: vec![0, 1, 2, 3], rule: None, rev: Rev::Right },
        Op::Add { who: ALICE, name: NameSel::Existing(0), ids: vec![4, 5, 6, 7], rev: Rev::Unset },
        Op::Create { who: ALICE_ADMIN, name: 1, ids: vec![8, 9], rule: None, rev: Rev::Zero },
        Op::Create { who: ALICE, name: 1, ids: vec![2], rule: None, rev: Rev::Unset },
        Op::Create { who: ALICE, name: 2, ids: vec![2], rule: None, rev: Rev::Unset },
        Op::Create { who: ALICE, name: 5, ids: vec![2], rule: None, rev: Rev::Unset },
        Op::Create { who: ALICE, name: 6, ids: vec![2], rule: None, rev: Rev::Unset },
        Op::Upsert { who: ALICE, items: vec![pin(0), pin(2), pin(4)] },
        Op::Reorder { who: ALICE, perm: Perm::Shuffle(7), rev: Rev::Right },
        Op::Rename { who: ALICE, old: NameSel::Existing(0), new: NameSel::Pool(7), rev: Rev::Prev },
        Op::Rename { who: ALICE, old: NameSel::Existing(0), new: NameSel::Pool(7), rev: Rev::Right },
        Op::Update {
            who: ALICE,
            name: NameSel::Existing(0),
            by_id: true,
            look: look(),
            paths: vec![4],
            rev: Rev::Right,
        },
        Op::Update {
            who: ALICE_ADMIN,
            name: NameSel::Existing(0),
            by_id: false,
            look: look(),
            paths: vec![0, 2],
            rev: Rev::Unset,
        },
        Op::Update {
            who: ALICE,
            name: NameSel::Existing(1),
            by_id: false,
            look: look(),
            paths: vec![1, 5],
            rev: Rev::Unset,
        },
        Op::Update {
            who: ALICE,
            name: NameSel::Existing(1),
            by_id: false,
            look: LookSel { icon: 4, color: 8, collapsed: false, custom: vec![0; 4] },
            paths: vec![0, 1, 3],
            rev: Rev::Unset,
        },
        Op::DeleteConvs { who: ALICE, ids: vec![1, 5, 0] },
        Op::Remove { who: ALICE, name: NameSel::Existing(1), ids: vec![2, 2, 9], rev: Rev::Unset },
        Op::List {
            who: ALICE,
            filter: Filt { kind: None, group: Some(None), mark: None, unread: None, at: None, ids: vec![] },
            page_size: 1,
        },
        Op::Unread {
            who: ALICE,
            filter: Filt { kind: Some(1), group: None, mark: Some(0), unread: Some(true), at: None, ids: vec![] },
        },
        Op::Delete { who: ALICE, name: NameSel::Existing(0), rev: Rev::Right },
        Op::Delete { who: ALICE, name: NameSel::Pool(9), rev: Rev::Next },
    ];
    run_fixed(ops);
}

/// Smart groups deterministically: a rule that selects by unread, one that
/// selects the ungrouped, includes and excludes, a rule member that cannot
/// be removed, filling to the group limit, changing and clearing a rule,
/// an invalid rule, and deletions.
#[test]
fn smart_groups_scenario_agrees_with_the_model() {
    let unread = |id, n| Upd {
        id,
        show_name: None,
        face_url: None,
        unread: Some(n),
        pinned: None,
        order_key: None,
        recv_opt: None,
        marks: None,
        mark_edits: (Vec::new(), Vec::new()),
        custom: None,
        at: None,
        last: None,
    };
    let rule = |unread: Option<bool>, ungrouped: Option<bool>, include: Vec<usize>, exclude: Vec<usize>| RuleGen {
        kind: None,
        mark: None,
        unread,
        muted: None,
        ungrouped,
        at: None,
        include,
        exclude,
    };
    let ops = vec![
        // C2Ca, C2Cb, C2Cc, GROUPg, GROUPh with unread counts 1, 1, 0, 2, 3.
        Op::Upsert { who: ALICE, items: vec![unread(0, 1), unread(2, 1), unread(4, 0), unread(5, 2)] },
        Op::Upsert { who: ALICE, items: vec![unread(7, 3)] },
        // Four unread, the group holds 4: all join.
        Op::Create {
            who: ALICE,
            name: 0,
            ids: vec![],
            rule: Some(rule(Some(true), None, vec![], vec![])),
            rev: Rev::Right,
        },
        Op::Create {
            who: ALICE,
            name: 1,
            ids: vec![4],
            rule: Some(rule(None, Some(true), vec![], vec![2])),
            rev: Rev::Unset,
        },
        Op::Remove { who: ALICE, name: NameSel::Existing(0), ids: vec![0, 4], rev: Rev::Unset },
        Op::Upsert { who: ALICE, items: vec![unread(0, 0), unread(4, 5)] },
        Op::Add { who: ALICE, name: NameSel::Existing(1), ids: vec![0, 7], rev: Rev::Unset },
        Op::SetRule {
            who: ALICE,
            name: NameSel::Existing(0),
            rule: Some(rule(Some(false), None, vec![9], vec![])),
            rev: Rev::Right,
        },
        Op::SetRule {
            who: ALICE,
            name: NameSel::Existing(0),
            rule: Some(rule(Some(false), None, vec![9], vec![])),
            rev: Rev::Unset,
        },
        Op::SetRule {
            who: ALICE,
            name: NameSel::Existing(1),
            rule: Some(rule(None, None, vec![], vec![])),
            rev: Rev::Unset,
        },
        Op::SetRule {
            who: ALICE,
            name: NameSel::Existing(1),
            rule: Some(rule(None, None, vec![12], vec![])),
            rev: Rev::Unset,
        },
        Op::DeleteConvs { who: ALICE, ids: vec![5, 9] },
        Op::Delete { who: ALICE, name: NameSel::Existing(1), rev: Rev::Unset },
        Op::SetRule { who: ALICE, name: NameSel::Existing(0), rule: None, rev: Rev::Unset },
        Op::List {
            who: ALICE,
            filter: Filt { kind: None, group: Some(None), mark: None, unread: None, at: None, ids: vec![] },
            page_size: 2,
        },
    ];
    run_fixed(ops);
}
