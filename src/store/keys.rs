//! Key layout. Every per-user key starts with the user's prefix
//! (`[len][user bytes]`), so one user's data is a contiguous range that no
//! request of another user ever touches, and prefix scans stay within it.
//! Integers are big-endian so byte order is numeric order.
//!
//! The logical layout: the tables ([`super::state::Table`]) that the shared code
//! reads and writes, and the form of a backup (one tree per table):
//!
//! | table         | key                                        | value             |
//! |---------------|--------------------------------------------|-------------------|
//! | `meta`        | `revision`, `floor`, `floor/` ‖ user       | u64               |
//! | `users`       | user                                       | UserRecord        |
//! | `convs`       | user ‖ conversation id                     | ConversationRecord|
//! | `members`     | user ‖ group id u32 ‖ conversation id      | manual rank u64   |
//! | `order`       | user ‖ unpinned u8 ‖ !order_key u64 ‖ id   | (empty)           |
//! | `events`      | revision u64                               | BatchRecord       |
//! | `user_events` | user ‖ revision u64                        | (empty)           |
//!
//! On sled all of it lives in one tree ([`SLED_TREE`]), each key behind a
//! one-byte tag of its table ([`sled_key`]), so a mutation is one
//! `apply_batch` of the keys its meaning needs: the user record, the
//! conversations it changes with their member and listing keys, and its
//! event batch. Two tables are not stored there but derived: the last
//! revision is the newest event's key (or the floors, or `meta/revision`,
//! written only when a reopen or a migration sets it), and a user's events
//! are found by walking back from the user record's revision along each
//! batch's `previous` revision of the same user ([`super::encoding::BatchRecord`]).
//!
//! A member key's value is the member's rank in the group's manual order
//! ([`crate::domain::order`]; empty in keys written before ranks existed,
//! read as 0), so a listing of one group reads its members and their order
//! in one scan.

use crate::domain::{ConversationId, ListPosition, UserId};

pub const META_REVISION: &[u8] = b"revision";

/// The one sled tree of the current layout.
pub const SLED_TREE: &[u8] = b"store";
/// Meta key of the sled layout's version, written when the tree is made.
pub const META_FORMAT: &[u8] = b"format";
/// The layout version this build writes: 2 is the one tree of tagged keys
/// (1, never written as such, was one sled tree per table).
pub const FORMAT: u64 = 2;

/// The one-byte tag of a table in the sled tree. `user_events` has none: it
/// is derived, never stored.
pub fn sled_tag(table: super::state::Table) -> u8 {
    use super::state::Table;
    match table {
        Table::Meta => b'f',
        Table::Users => b'u',
        Table::Convs => b'c',
        Table::Members => b'm',
        Table::Order => b'o',
        Table::Events => b'e',
        Table::UserEvents => b'x',
    }
}

/// The sled key of a table's key: its tag, then the key.
pub fn sled_key(table: super::state::Table, key: &[u8]) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(1 + key.len());
    tagged.push(sled_tag(table));
    tagged.extend_from_slice(key);
    tagged
}

/// `[len][bytes]`: the length byte keeps `alice` from being a prefix of
/// `alicia`'s keys. User ids are at most 128 bytes, so one byte suffices.
pub fn user_prefix(user: &UserId) -> Vec<u8> {
    let bytes = user.as_str().as_bytes();
    let mut key = Vec::with_capacity(1 + bytes.len() + 64);
    key.push(bytes.len() as u8);
    key.extend_from_slice(bytes);
    key
}

pub fn conv_key(user: &UserId, id: &ConversationId) -> Vec<u8> {
    let mut key = user_prefix(user);
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

pub fn group_members_prefix(user: &UserId, group_id: u32) -> Vec<u8> {
    let mut key = user_prefix(user);
    key.extend_from_slice(&group_id.to_be_bytes());
    key
}

pub fn member_key(user: &UserId, group_id: u32, id: &ConversationId) -> Vec<u8> {
    let mut key = group_members_prefix(user, group_id);
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

pub fn order_key(user: &UserId, position: &ListPosition) -> Vec<u8> {
    let mut key = user_prefix(user);
    key.push(position.unpinned);
    key.extend_from_slice(&position.inverted_order_key.to_be_bytes());
    key.extend_from_slice(position.id.as_bytes());
    key
}

/// Decodes the position part of an `order` key (after the user prefix).
pub fn order_position(prefix_len: usize, key: &[u8]) -> Option<ListPosition> {
    let rest = key.get(prefix_len..)?;
    let (&unpinned, rest) = rest.split_first()?;
    let inverted: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    let id = std::str::from_utf8(rest.get(8..)?).ok()?.to_string();
    Some(ListPosition { group: None, unpinned, inverted_order_key: u64::from_be_bytes(inverted), id })
}

pub fn event_key(revision: u64) -> [u8; 8] {
    revision.to_be_bytes()
}

pub fn user_event_key(user: &UserId, revision: u64) -> Vec<u8> {
    let mut key = user_prefix(user);
    key.extend_from_slice(&revision.to_be_bytes());
    key
}

pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_prefixes_do_not_nest() {
        let a = user_prefix(&UserId::parse("alice").unwrap());
        let b = user_prefix(&UserId::parse("alicia").unwrap());
        assert!(!b.starts_with(&a));
    }

    #[test]
    fn order_keys_sort_in_listing_order() {
        let user = UserId::parse("u").unwrap();
        let pos = |unpinned, key: u64, id: &str| ListPosition {
            group: None,
            unpinned,
            inverted_order_key: u64::MAX - key,
            id: id.into(),
        };
        let keys = [pos(0, 1, "C2Cz"), pos(1, 9, "C2Cb"), pos(1, 9, "C2Cc"), pos(1, 2, "C2Ca")];
        let encoded: Vec<_> = keys.iter().map(|p| order_key(&user, p)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        let prefix = user_prefix(&user).len();
        assert_eq!(order_position(prefix, &encoded[1]).unwrap(), keys[1]);
    }
}
