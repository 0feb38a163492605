//! Identifiers and names as validated newtypes. Parsing happens once, at the
//! boundary; code that holds one of these knows it is well-formed.

use std::fmt;
use std::sync::Arc;

/// Longest user id and conversation peer id, in bytes (contract §3, §4).
pub const MAX_ID_BYTES: usize = 128;

/// Printable ASCII without space: the alphabet of user ids and peer ids.
fn is_id_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

fn check_id(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > MAX_ID_BYTES {
        return Err(format!("is {} bytes, more than the {MAX_ID_BYTES} allowed", raw.len()));
    }
    if let Some(pos) = raw.bytes().position(|b| !is_id_byte(b)) {
        return Err(format!("byte {pos} is not printable ASCII without space"));
    }
    Ok(())
}

/// A user id: 1..=128 bytes of printable ASCII without spaces.
///
/// Shared, not owned: every call clones its caller's id several times
/// (the verified-token cache, the caller, the log line, the store), and a
/// clone is a reference count instead of an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_id(raw)?;
        Ok(Self(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two kinds of conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKind {
    C2c,
    Group,
}

/// A conversation id in canonical form (`C2C<userID>` / `GROUP<groupID>`).
/// Ordering is by the canonical string, which is the listing's tie-breaker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(String);

impl ConversationId {
    /// Accepts the canonical forms and the native SDK forms `c2c_<id>` /
    /// `group_<id>`, which are normalised. The prefixes are case-sensitive,
    /// as in the SDKs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (canonical_prefix, peer) = if let Some(peer) = raw.strip_prefix("C2C") {
            ("C2C", peer)
        } else if let Some(peer) = raw.strip_prefix("GROUP") {
            ("GROUP", peer)
        } else if let Some(peer) = raw.strip_prefix("c2c_") {
            ("C2C", peer)
        } else if let Some(peer) = raw.strip_prefix("group_") {
            ("GROUP", peer)
        } else {
            return Err("must start with C2C, GROUP, c2c_ or group_".into());
        };
        check_id(peer).map_err(|e| format!("the id after the {canonical_prefix} prefix {e}"))?;
        Ok(Self(format!("{canonical_prefix}{peer}")))
    }

    /// Rebuilds an id that was stored in canonical form.
    pub(crate) fn from_canonical(canonical: String) -> Self {
        Self(canonical)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> ConversationKind {
        if self.0.starts_with("C2C") {
            ConversationKind::C2c
        } else {
            ConversationKind::Group
        }
    }

    /// The peer user id (C2C) or chat group id (GROUP).
    pub fn peer(&self) -> &str {
        match self.kind() {
            ConversationKind::C2c => &self.0[3..],
            ConversationKind::Group => &self.0[5..],
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A group's server-assigned id: stable for the group's life (a rename
/// keeps it) and never reused for the same user (a deleted name created
/// again gets a new one). Clients see it as an opaque string, `g<n>`
/// ([`GroupId::parse`] accepts exactly what [`fmt::Display`] writes, so
/// every id has one spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

impl GroupId {
    /// The id a client sent, or an error saying what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix('g').ok_or_else(|| format!("{text:?} is not a group id (ids look like g12)"))?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        match digits.parse::<u32>() {
            Ok(n) if canonical => Ok(Self(n)),
            _ => Err(format!("{text:?} is not a group id (ids look like g12)")),
        }
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// How a request names one group: by name or by id (exactly one of the
/// two; the service layer checks that). `name_field` and `id_field` are the
/// request's field names, for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Name(String),
    Id(GroupId),
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Name(name) => write!(f, "{name:?}"),
            GroupRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Checks a group name against the contract: 1..=`max_bytes` bytes of UTF-8
/// (the wire already guarantees UTF-8), no control characters. Names are
/// compared byte for byte, so nothing is normalised.
pub fn check_group_name(name: &str, max_bytes: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; a group name needs 1 or more bytes".into());
    }
    if name.len() > max_bytes {
        return Err(format!("is {} bytes, more than the {max_bytes} allowed (max_group_name_bytes)", name.len()));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character U+{:04X}", c as u32));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_ids_normalise_to_canonical() {
        assert_eq!(ConversationId::parse("c2c_alice").unwrap().as_str(), "C2Calice");
        assert_eq!(ConversationId::parse("group_team").unwrap().as_str(), "GROUPteam");
        assert_eq!(ConversationId::parse("GROUPteam").unwrap().peer(), "team");
        assert_eq!(ConversationId::parse("C2Cx").unwrap().kind(), ConversationKind::C2c);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in ["", "C2C", "GROUP", "c2c_", "alice", "C2Ca b", "C2C\u{e9}", "Group_x"] {
            assert!(ConversationId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("C2C{}", "a".repeat(MAX_ID_BYTES + 1));
        assert!(ConversationId::parse(&long).is_err());
        let max = format!("C2C{}", "a".repeat(MAX_ID_BYTES));
        assert!(ConversationId::parse(&max).is_ok());
    }

    #[test]
    fn group_names_count_bytes_not_chars() {
        assert!(check_group_name(&"é".repeat(16), 32).is_ok());
        assert!(check_group_name(&format!("{}a", "é".repeat(16)), 32).is_err());
        assert!(check_group_name("a\u{7}b", 32).is_err());
        assert!(check_group_name("", 32).is_err());
    }

    #[test]
    fn group_ids_have_one_spelling() {
        assert_eq!(GroupId::parse("g0"), Ok(GroupId(0)));
        assert_eq!(GroupId::parse("g4294967295"), Ok(GroupId(u32::MAX)));
        assert_eq!(GroupId(17).to_string(), "g17");
        for bad in ["", "g", "17", "g017", "g+1", "g-1", "G1", "g4294967296", "g1 ", "g1a"] {
            assert!(GroupId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn user_ids_are_printable_ascii() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("al ice").is_err());
        assert!(UserId::parse(&"a".repeat(129)).is_err());
    }
}
