//! Reads. None takes the write lock: each answer is built from committed
//! values (a single get for the group list, the hottest call).

use std::ops::Bound;

use super::codec::{decode, ConversationRecord, UserRecord};
use super::keys;
use super::ops::group_view;
use super::plan::position;
use super::{Store, Trees};
use crate::domain::{
    ConversationFilter, ConversationId, ConversationPage, ConversationView, GroupList, ListPosition, UserId,
};
use crate::error::Error;

/// The members of a group, in key order.
pub(super) fn members(trees: &Trees, user: &UserId, group_id: u32) -> Result<Vec<ConversationId>, Error> {
    let prefix = keys::group_members_prefix(user, group_id);
    let mut ids = Vec::new();
    for entry in trees.members.scan_prefix(&prefix) {
        let (key, _) = entry?;
        let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| super::codec::corrupt("member key"))?;
        ids.push(ConversationId::from_canonical(id.to_string()));
    }
    Ok(ids)
}

pub(super) fn load_user(trees: &Trees, user: &UserId) -> Result<UserRecord, Error> {
    match trees.users.get(keys::user_prefix(user))? {
        Some(bytes) => decode(&bytes, "user record"),
        None => Ok(UserRecord::default()),
    }
}

fn load_conv(trees: &Trees, user: &UserId, id: &ConversationId) -> Result<Option<ConversationRecord>, Error> {
    match trees.convs.get(keys::conv_key(user, id))? {
        Some(bytes) => Ok(Some(decode(&bytes, "conversation record")?)),
        None => Ok(None),
    }
}

fn view(user: &UserRecord, id: ConversationId, record: &ConversationRecord) -> ConversationView {
    ConversationView { group_names: user.names_of(&record.group_ids), data: record.data(), id }
}

/// The group a filter names, as (id), or None for "no group filter" and
/// Some(None) for "conversations in no group".
fn filter_group(user: &UserRecord, filter: &ConversationFilter) -> Result<Option<Option<u32>>, Error> {
    match filter.group_name.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(name) => match user.group_index(name) {
            Some(index) => Ok(Some(Some(user.groups[index].id))),
            None => Err(Error::GroupNotFound { field: "filter.group_name", name: name.to_string() }),
        },
    }
}

/// Walks the conversations a filter selects, in listing order, starting
/// after `after`, and hands each match to `visit` until it returns false.
///
/// With explicit ids or a group, the candidates are few (bounded by the
/// request or the group size) and are sorted in memory; otherwise the
/// user's listing index is scanned in order, so a page costs what it reads.
fn walk(
    trees: &Trees,
    user_id: &UserId,
    user: &UserRecord,
    filter: &ConversationFilter,
    after: Option<&ListPosition>,
    mut visit: impl FnMut(ConversationId, ConversationRecord) -> bool,
) -> Result<(), Error> {
    let group = filter_group(user, filter)?;
    let candidates: Option<Vec<ConversationId>> = if !filter.conversation_ids.is_empty() {
        Some(filter.conversation_ids.clone())
    } else if let Some(Some(group_id)) = group {
        Some(members(trees, user_id, group_id)?)
    } else {
        None
    };
    let accepts = |id: &ConversationId, record: &ConversationRecord| {
        let in_group = match group {
            Some(Some(group_id)) => record.group_ids.contains(&group_id),
            _ => true,
        };
        in_group && filter.matches(id, &record.data(), !record.group_ids.is_empty())
    };

    if let Some(ids) = candidates {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = load_conv(trees, user_id, &id)? {
                if accepts(&id, &record) {
                    found.push((ListPosition::of(&id, &record.data()), id, record));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (position, id, record) in found {
            if after.is_some_and(|after| position <= *after) {
                continue;
            }
            if !visit(id, record) {
                break;
            }
        }
        return Ok(());
    }

    let prefix = keys::user_prefix(user_id);
    let start = match after {
        Some(after) => Bound::Excluded(keys::order_key(user_id, after)),
        None => Bound::Included(prefix.clone()),
    };
    for entry in trees.order.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
        let (key, _) = entry?;
        if !key.starts_with(&prefix) {
            break;
        }
        let indexed = keys::order_position(prefix.len(), &key).ok_or_else(|| super::codec::corrupt("order key"))?;
        let id = ConversationId::from_canonical(indexed.id.clone());
        // The index and the records are written in one transaction, but this
        // read is not: a record changed since the index entry was read is
        // skipped here and appears at its new position.
        let Some(record) = load_conv(trees, user_id, &id)? else { continue };
        if position(&id, &record) != indexed {
            continue;
        }
        if accepts(&id, &record) && !visit(id, record) {
            break;
        }
    }
    Ok(())
}

impl Store {
    /// Reads run without the write lock, so one may see a change that is
    /// committed but not yet flushed. Before answering, wait for that flush:
    /// a client must never be shown a revision that a crash could take
    /// back (it would watch from it). Free when nothing is in flight.
    async fn settled<T>(&self, answer: T, revision: u64) -> Result<T, Error> {
        if revision > self.current_revision() {
            self.wait_durable(revision).await?;
        }
        Ok(answer)
    }

    pub async fn group_list(&self, user: &UserId) -> Result<GroupList, Error> {
        // One get of one small value, almost always from sled's cache: done
        // inline, because handing it to a blocking thread costs several
        // times what the read does (this is the hottest call).
        let inline = self.inner.try_trees().map(|trees| load_user(&trees, user));
        let record = match inline {
            Some(record) => record?,
            // A reopen after a storage failure is under way: wait for it on
            // a blocking thread, not here.
            None => {
                let user = user.clone();
                self.blocking(move |inner| load_user(&*inner.trees()?, &user)).await?
            }
        };
        let list = GroupList { groups: record.groups.iter().map(group_view).collect(), revision: record.revision };
        let revision = list.revision;
        self.settled(list, revision).await
    }

    pub async fn list_conversations(
        &self,
        user: &UserId,
        filter: ConversationFilter,
        page_size: usize,
        after: Option<ListPosition>,
    ) -> Result<ConversationPage, Error> {
        let user_id = user.clone();
        let page = self
            .blocking(move |inner| {
                let trees = inner.trees()?;
                let user = load_user(&trees, &user_id)?;
                let mut page = Vec::with_capacity(page_size.min(1024));
                let mut more = false;
                walk(&trees, &user_id, &user, &filter, after.as_ref(), |id, record| {
                    if page.len() == page_size {
                        more = true;
                        return false;
                    }
                    page.push(view(&user, id, &record));
                    true
                })?;
                let next_after = if more { page.last().map(|v| ListPosition::of(&v.id, &v.data)) } else { None };
                Ok(ConversationPage { conversations: page, next_after, revision: user.revision })
            })
            .await?;
        let revision = page.revision;
        self.settled(page, revision).await
    }

    /// Sum of unread counts of matching conversations that receive. The
    /// common questions (everything; one group) are answered from counters.
    pub async fn unread_count(&self, user: &UserId, filter: ConversationFilter) -> Result<(u64, u64), Error> {
        let user_id = user.clone();
        let (total, revision) = self
            .blocking(move |inner| {
                let trees = inner.trees()?;
                let user = load_user(&trees, &user_id)?;
                let only_group = ConversationFilter { group_name: filter.group_name.clone(), ..Default::default() };
                if filter == ConversationFilter::default() {
                    return Ok((user.total_unread, user.revision));
                }
                if filter == only_group {
                    if let Some(Some(group_id)) = filter_group(&user, &filter)? {
                        let group = user.groups.iter().find(|g| g.id == group_id).expect("found by filter_group");
                        return Ok((group.unread_count, user.revision));
                    }
                }
                let mut total = 0u64;
                walk(&trees, &user_id, &user, &filter, None, |_, record| {
                    total += record.counted_unread();
                    true
                })?;
                Ok((total, user.revision))
            })
            .await?;
        self.settled((total, revision), revision).await
    }
}
