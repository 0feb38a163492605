//! The rules of conversation groups, in plain Rust: validated ids and names,
//! the data model, per-item outcomes and events, and the rules of every
//! mutation ([`rules`]) over a state-access trait that each storage backend
//! implements. No protobuf, no storage.

mod events;
mod ids;
mod items;
mod model;
pub mod order;
pub mod rules;

pub use events::{AdditionReason, EventBatch, EventKind, EventType, RemovalReason, Scope};
pub use ids::{check_group_name, ConversationId, ConversationKind, GroupId, GroupRef, UserId, MAX_ID_BYTES};
pub use items::{Item, ItemError, ItemResults};
pub use model::{
    ConversationData, ConversationFilter, ConversationPage, ConversationPatch, ConversationView, GroupColor, GroupList,
    GroupLook, GroupRank, GroupRule, GroupView, ItemCode, ItemFailure, ItemOutcomes, LastMessage, ListPosition,
    LookField, LookUpdate, Placement, RecvOpt, SortMode, TimeMs,
};

/// Where an FNV-1a 64 hash starts (its offset basis).
pub const FNV1A_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64 of `bytes`, continuing from `hash`: small and stable across
/// builds and platforms, for checks that are written down (page-token
/// fingerprints, the backup checksum). Not a defence against tampering.
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Now, in the domain's clock unit.
pub fn now_ms() -> TimeMs {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as TimeMs).unwrap_or(0)
}
