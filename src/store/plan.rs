//! A mutation in the making. Under the store's write lock a mutation reads
//! the current state, changes copies of it here, and the plan becomes one
//! sled transaction: every effect and the event batch are stored together or
//! not at all.
//!
//! Every change of a conversation goes through [`Plan::modify_conv`], which
//! keeps the derived data in step with it: member keys, the listing index,
//! and the per-group and per-user counters in the user record. That is what
//! lets reads be single gets and makes limits checkable mid-request.

use std::collections::{BTreeMap, HashMap};

use super::codec::{decode, BatchRecord, ConversationRecord, UserRecord};
use super::keys;
use super::Trees;

use crate::domain::{ConversationId, EventBatch, EventKind, ListPosition, UserId};
use crate::error::Error;

/// Index of each tree in a [`WriteSet`] and in the transaction.
#[derive(Clone, Copy)]
pub enum T {
    Meta = 0,
    Users = 1,
    Convs = 2,
    Members = 3,
    Order = 4,
    Events = 5,
    UserEvents = 6,
}
pub const TREE_COUNT: usize = 7;

/// The writes of one mutation (or of a batch of them), per tree; a later
/// write to a key replaces an earlier one. `None` removes the key.
#[derive(Default)]
pub struct WriteSet {
    pub ops: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; TREE_COUNT],
}

impl WriteSet {
    pub fn put(&mut self, tree: T, key: Vec<u8>, value: Vec<u8>) {
        self.ops[tree as usize].insert(key, Some(value));
    }

    pub fn remove(&mut self, tree: T, key: Vec<u8>) {
        self.ops[tree as usize].insert(key, None);
    }

    /// Adds `later`'s writes on top of these.
    pub fn merge(&mut self, later: WriteSet) {
        for (mine, theirs) in self.ops.iter_mut().zip(later.ops) {
            mine.extend(theirs);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.iter().all(|ops| ops.is_empty())
    }
}

struct CachedConv {
    /// As stored before this mutation (None: absent).
    original: Option<ConversationRecord>,
    /// As this mutation leaves it.
    current: ConversationRecord,
}

/// What a plan reads: the stored trees as changed by the mutations already
/// planned in the same write batch (not yet applied to sled).
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub trees: &'a Trees,
    pub pending: &'a WriteSet,
}

impl View<'_> {
    fn tree(&self, tree: T) -> &sled::Tree {
        match tree {
            T::Meta => &self.trees.meta,
            T::Users => &self.trees.users,
            T::Convs => &self.trees.convs,
            T::Members => &self.trees.members,
            T::Order => &self.trees.order,
            T::Events => &self.trees.events,
            T::UserEvents => &self.trees.user_events,
        }
    }

    pub fn get(&self, tree: T, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(pending) = self.pending.ops[tree as usize].get(key) {
            return Ok(pending.clone());
        }
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Keys under `prefix`, in order.
    pub fn keys_with_prefix(&self, tree: T, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut keys = std::collections::BTreeSet::new();
        for entry in self.tree(tree).scan_prefix(prefix) {
            keys.insert(entry?.0.to_vec());
        }
        for (key, value) in self.pending.ops[tree as usize].range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }
}

pub struct Plan<'a> {
    view: View<'a>,
    pub user_id: UserId,
    pub user: UserRecord,
    convs: HashMap<ConversationId, CachedConv>,
    pub events: Vec<EventKind>,
    pub writes: WriteSet,
}

/// A conversation record exists while it is registered or grouped.
fn exists(record: &ConversationRecord) -> bool {
    record.registered || !record.group_ids.is_empty()
}

/// Where a stored conversation sits in the listing (without decoding its
/// data into the domain type).
pub(super) fn position(id: &ConversationId, record: &ConversationRecord) -> ListPosition {
    ListPosition {
        unpinned: u8::from(!record.is_pinned),
        inverted_order_key: u64::MAX - record.order_key,
        id: id.as_str().to_string(),
    }
}

impl<'a> Plan<'a> {
    pub fn new(view: View<'a>, user_id: &UserId) -> Result<Self, Error> {
        let user = match view.get(T::Users, &keys::user_prefix(user_id))? {
            Some(bytes) => decode::<UserRecord>(&bytes, "user record")?,
            None => UserRecord::default(),
        };
        Ok(Self {
            view,
            user_id: user_id.clone(),
            user,
            convs: HashMap::new(),
            events: Vec::new(),
            writes: WriteSet::default(),
        })
    }

    /// Fails with REVISION_MISMATCH unless `expected` is unset or equals the
    /// user's current revision.
    pub fn check_revision(&self, expected: Option<u64>) -> Result<(), Error> {
        match expected {
            Some(expected) if expected != self.user.revision => {
                Err(Error::RevisionMismatch { expected, current: self.user.revision })
            }
            _ => Ok(()),
        }
    }

    /// The conversation as this plan currently sees it (None: absent).
    pub fn conv(&mut self, id: &ConversationId) -> Result<Option<&ConversationRecord>, Error> {
        self.load(id)?;
        let cached = &self.convs[id];
        Ok(exists(&cached.current).then_some(&cached.current))
    }

    fn load(&mut self, id: &ConversationId) -> Result<(), Error> {
        if !self.convs.contains_key(id) {
            let original = match self.view.get(T::Convs, &keys::conv_key(&self.user_id, id))? {
                Some(bytes) => Some(decode::<ConversationRecord>(&bytes, "conversation record")?),
                None => None,
            };
            let current = original.clone().unwrap_or_default();
            self.convs.insert(id.clone(), CachedConv { original, current });
        }
        Ok(())
    }

    /// Changes one conversation and keeps every derived value in step.
    pub fn modify_conv(
        &mut self,
        id: &ConversationId,
        change: impl FnOnce(&mut ConversationRecord),
    ) -> Result<(), Error> {
        self.load(id)?;
        let cached = self.convs.get_mut(id).expect("loaded above");
        let before = cached.current.clone();
        change(&mut cached.current);
        let after = &cached.current;

        let (was, is) = (exists(&before), exists(after));
        let old_unread = if was { before.counted_unread() } else { 0 };
        let new_unread = if is { after.counted_unread() } else { 0 };
        for group in self.user.groups.iter_mut() {
            let in_before = was && before.group_ids.contains(&group.id);
            let in_after = is && after.group_ids.contains(&group.id);
            if in_before {
                group.unread_count -= old_unread;
            }
            if in_after {
                group.unread_count += new_unread;
            }
            match (in_before, in_after) {
                (false, true) => {
                    group.conversation_count += 1;
                    self.writes.put(T::Members, keys::member_key(&self.user_id, group.id, id), Vec::new());
                }
                (true, false) => {
                    group.conversation_count -= 1;
                    self.writes.remove(T::Members, keys::member_key(&self.user_id, group.id, id));
                }
                _ => {}
            }
        }
        self.user.total_unread = self.user.total_unread - old_unread + new_unread;
        let old_pinned = u32::from(was && before.is_pinned);
        let new_pinned = u32::from(is && after.is_pinned);
        self.user.pinned_count = self.user.pinned_count - old_pinned + new_pinned;
        Ok(())
    }

    /// Turns the plan into writes and an event batch at `revision`, or None
    /// when nothing changed (no event: the revision is kept).
    pub fn finish(mut self, revision: u64, time_ms: i64) -> Option<(WriteSet, EventBatch)> {
        if self.events.is_empty() {
            return None;
        }
        let user_key = keys::user_prefix(&self.user_id);
        for (id, cached) in std::mem::take(&mut self.convs) {
            let key = keys::conv_key(&self.user_id, &id);
            let original = cached.original.filter(exists);
            let current = Some(cached.current).filter(exists);
            if original == current {
                continue;
            }
            let old_pos = original.as_ref().map(|r| position(&id, r));
            let new_pos = current.as_ref().map(|r| position(&id, r));
            if old_pos != new_pos {
                if let Some(pos) = &old_pos {
                    self.writes.remove(T::Order, keys::order_key(&self.user_id, pos));
                }
                if let Some(pos) = &new_pos {
                    self.writes.put(T::Order, keys::order_key(&self.user_id, pos), Vec::new());
                }
            }
            match current {
                Some(record) => self.writes.put(T::Convs, key, prost::Message::encode_to_vec(&record)),
                None => self.writes.remove(T::Convs, key),
            }
        }
        self.user.revision = revision;
        self.writes.put(T::Users, user_key, prost::Message::encode_to_vec(&self.user));
        let batch = EventBatch {
            revision,
            user: self.user_id.clone(),
            time_ms,
            group_names: self.user.group_names(),
            events: std::mem::take(&mut self.events),
        };
        self.writes.put(
            T::Events,
            keys::event_key(revision).to_vec(),
            prost::Message::encode_to_vec(&BatchRecord::from_batch(&batch)),
        );
        self.writes.put(T::UserEvents, keys::user_event_key(&self.user_id, revision), Vec::new());
        self.writes.put(T::Meta, keys::META_REVISION.to_vec(), revision.to_be_bytes().to_vec());
        Some((self.writes, batch))
    }
}

impl Plan<'_> {
    /// Ids of the members of a group as of the start of this mutation (a
    /// mutation that reads them touches the group's members once, after).
    pub fn stored_members(&self, group_id: u32) -> Result<Vec<ConversationId>, Error> {
        let prefix = keys::group_members_prefix(&self.user_id, group_id);
        self.view
            .keys_with_prefix(T::Members, &prefix)?
            .into_iter()
            .map(|key| {
                let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| super::codec::corrupt("member key"))?;
                Ok(ConversationId::from_canonical(id.to_string()))
            })
            .collect()
    }
}
