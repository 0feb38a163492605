//! Encoded GetConversationGroupList answers and first pages of
//! GetConversationList, per user, reused while the user's record has not
//! changed.
//!
//! The answer is a function of the user's record alone, and every change of
//! the record gives it a new revision (sled: the change's revision; etcd:
//! the key's mod_revision), so an answer kept with the revision it was made
//! at is the answer for any later read at that same revision. On sled the
//! record's stored bytes are compared too ([`RecordStamp`]): a read that
//! finds the same bytes as the cached answer was made from answers from the
//! cache without decoding anything. Nothing here can be stale: a hit needs
//! the record read now, or its revision, to match.
//!
//! Bounded by `--group-list-cache-users`: when full it is emptied (answers
//! are cheap to make again; a cache of recent users would cost more per
//! call than it saves).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use prost::bytes::Bytes;

use crate::domain::{ConversationFilter, UserId};
use crate::store::RecordStamp;

struct Entry {
    revision: u64,
    /// The record's stored bytes the answer was made from, where known.
    stamp: Option<RecordStamp>,
    answer: Bytes,
}

/// The caches of encoded read answers a group service keeps.
#[derive(Debug)]
pub struct ReadCaches {
    pub group_lists: GroupListCache,
    pub first_pages: FirstPageCache,
}

impl ReadCaches {
    /// Room for `group_list_users` group lists (`--group-list-cache-users`)
    /// and `first_page_users` first pages (`--first-page-cache-users`).
    pub fn new(group_list_users: usize, first_page_users: usize) -> Self {
        Self { group_lists: GroupListCache::new(group_list_users), first_pages: FirstPageCache::new(first_page_users) }
    }
}

pub struct GroupListCache {
    /// Most users kept; 0 turns the cache off.
    capacity: usize,
    entries: Mutex<HashMap<UserId, Entry>>,
}

impl std::fmt::Debug for GroupListCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupListCache").field("capacity", &self.capacity).finish()
    }
}

impl GroupListCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Entry>> {
        // A cache: whatever a panicking holder left is still consistent.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer made from exactly the record `stamp` is.
    pub fn by_stamp(&self, user: &UserId, stamp: &RecordStamp) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.lock();
        let entry = entries.get(user)?;
        (entry.stamp.as_ref() == Some(stamp)).then(|| entry.answer.clone())
    }

    /// The answer made from the user's record at `revision`.
    pub fn by_revision(&self, user: &UserId, revision: u64) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.lock();
        let entry = entries.get(user)?;
        (entry.revision == revision).then(|| entry.answer.clone())
    }

    /// Keeps `answer`, made from the user's record at `revision` (whose
    /// stored bytes are `stamp`, when known), unless a newer one is kept.
    pub fn keep(&self, user: &UserId, revision: u64, stamp: Option<RecordStamp>, answer: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(user) {
            if entry.revision < revision || (entry.revision == revision && stamp.is_some()) {
                *entry = Entry { revision, stamp, answer };
            }
            return;
        }
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(user.clone(), Entry { revision, stamp, answer });
    }
}

/// The encoded first page of GetConversationList per user (sled only: it
/// needs the stamp), for the last filter and page size the user asked for.
///
/// A page is a function of the user's record and conversation records, and
/// a mutation that changes any of them writes the record too (with a new
/// revision, the head of the user's log): a page kept with the record's
/// stored bytes is the page for any read that finds the same bytes. Only
/// first pages (no page token) are kept: they are what an app asks for on
/// every start and refresh, from each of a user's devices.
///
/// Bounded by `--first-page-cache-users` as [`GroupListCache`] is.
pub struct FirstPageCache {
    capacity: usize,
    entries: Mutex<HashMap<UserId, PageEntry>>,
}

struct PageEntry {
    stamp: RecordStamp,
    filter: ConversationFilter,
    page_size: usize,
    answer: Bytes,
}

impl std::fmt::Debug for FirstPageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstPageCache").field("capacity", &self.capacity).finish()
    }
}

impl FirstPageCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, PageEntry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The first page of (`filter`, `page_size`) made from exactly the
    /// record `stamp` is.
    pub fn get(
        &self,
        user: &UserId,
        stamp: &RecordStamp,
        filter: &ConversationFilter,
        page_size: usize,
    ) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.lock();
        let entry = entries.get(user)?;
        (entry.stamp == *stamp && entry.page_size == page_size && entry.filter == *filter).then(|| entry.answer.clone())
    }

    /// Keeps `answer`, the first page made from the record `stamp` is; it
    /// replaces the user's previous one.
    pub fn keep(&self, user: &UserId, stamp: RecordStamp, filter: ConversationFilter, page_size: usize, answer: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(user) {
            entries.clear();
        }
        entries.insert(user.clone(), PageEntry { stamp, filter, page_size, answer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn an_answer_is_found_only_for_its_revision_or_its_stamp() {
        let cache = GroupListCache::new(10);
        let stamp = RecordStamp::of(b"record at 3");
        cache.keep(&user("a"), 3, Some(stamp.clone()), Bytes::from_static(b"three"));
        assert_eq!(cache.by_revision(&user("a"), 3), Some(Bytes::from_static(b"three")));
        assert_eq!(cache.by_stamp(&user("a"), &stamp), Some(Bytes::from_static(b"three")));
        assert_eq!(cache.by_revision(&user("a"), 4), None);
        assert_eq!(cache.by_stamp(&user("a"), &RecordStamp::of(b"record at 4")), None);
        assert_eq!(cache.by_revision(&user("b"), 3), None);
        // An older answer arriving late does not replace a newer one.
        cache.keep(&user("a"), 2, None, Bytes::from_static(b"two"));
        assert_eq!(cache.by_revision(&user("a"), 3), Some(Bytes::from_static(b"three")));
        cache.keep(&user("a"), 4, None, Bytes::from_static(b"four"));
        assert_eq!(cache.by_revision(&user("a"), 4), Some(Bytes::from_static(b"four")));
        assert_eq!(cache.by_stamp(&user("a"), &stamp), None);
    }

    #[test]
    fn a_first_page_is_found_only_for_its_stamp_filter_and_size() {
        let cache = FirstPageCache::new(10);
        let (stamp, other) = (RecordStamp::of(b"at 3"), RecordStamp::of(b"at 4"));
        let unread = ConversationFilter { has_unread_count: Some(true), ..Default::default() };
        cache.keep(&user("a"), stamp.clone(), unread.clone(), 100, Bytes::from_static(b"page"));
        assert_eq!(cache.get(&user("a"), &stamp, &unread, 100), Some(Bytes::from_static(b"page")));
        assert_eq!(cache.get(&user("a"), &other, &unread, 100), None, "another record");
        assert_eq!(cache.get(&user("a"), &stamp, &ConversationFilter::default(), 100), None, "another filter");
        assert_eq!(cache.get(&user("a"), &stamp, &unread, 99), None, "another page size");
        assert_eq!(cache.get(&user("b"), &stamp, &unread, 100), None, "another user");
        cache.keep(&user("a"), other.clone(), unread.clone(), 100, Bytes::from_static(b"newer"));
        assert_eq!(cache.get(&user("a"), &stamp, &unread, 100), None, "replaced");
        let off = FirstPageCache::new(0);
        off.keep(&user("a"), stamp.clone(), unread.clone(), 100, Bytes::from_static(b"x"));
        assert_eq!(off.get(&user("a"), &stamp, &unread, 100), None);
    }

    #[test]
    fn a_full_cache_starts_again_and_capacity_zero_keeps_nothing() {
        let cache = GroupListCache::new(2);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            cache.keep(&user(name), i as u64, None, Bytes::from_static(b"x"));
        }
        assert_eq!(cache.by_revision(&user("a"), 0), None);
        assert!(cache.by_revision(&user("c"), 2).is_some());
        let off = GroupListCache::new(0);
        off.keep(&user("a"), 1, None, Bytes::from_static(b"x"));
        assert_eq!(off.by_revision(&user("a"), 1), None);
    }
}
