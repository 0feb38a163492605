//! Reads, written once against [`StateRead`]. The group list is a single
//! get (the hottest call), so it is always of one state. Listings read
//! several keys: on etcd all at one revision; on sled each read sees whole
//! commit groups but a commit may fall between two of them, which the walk
//! below tolerates (an index entry whose record has moved since is skipped,
//! so no conversation is shown at a position it no longer has).

use super::encoding::{decode, ConversationRecord, UserRecord};
use super::keys;
use super::rules::group_view;
use super::state::{StateRead, Table};
use super::Snapshot;
use crate::domain::{
    ConversationData, ConversationFilter, ConversationId, ConversationPage, ConversationView, GroupId, GroupList,
    ListPosition, UserId,
};
use crate::error::Error;

/// The members of a group, in key order.
pub(super) fn members(state: &dyn StateRead, user: &UserId, group_id: u32) -> Result<Vec<ConversationId>, Error> {
    let prefix = keys::group_members_prefix(user, group_id);
    let mut ids = Vec::new();
    for key in state.keys_with_prefix(Table::Members, &prefix)? {
        let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| super::encoding::corrupt("member key"))?;
        ids.push(ConversationId::from_canonical(id.to_string()));
    }
    Ok(ids)
}

/// Decodes a stored conversation where the backend holds it (no copy of the
/// stored bytes first).
fn load_conv(state: &dyn StateRead, user: &UserId, id: &ConversationId) -> Result<Option<ConversationRecord>, Error> {
    let mut record = None;
    state.with_value(Table::Convs, &keys::conv_key(user, id), &mut |_, bytes| {
        record = Some(decode(bytes, "conversation record")?);
        Ok(true)
    })?;
    Ok(record)
}

/// A listed conversation: its data (moved out of the decoded record, no
/// second copy) with the names of its groups.
fn view(user: &UserRecord, id: ConversationId, data: ConversationData, group_ids: &[u32]) -> ConversationView {
    let groups = user.groups.iter().filter(|g| group_ids.contains(&g.id));
    let (group_names, group_ids) = groups.map(|g| (g.name.clone(), GroupId(g.id))).unzip();
    ConversationView { group_names, group_ids, data, id }
}

/// The group a filter names, as (id), or None for "no group filter" and
/// Some(None) for "conversations in no group".
fn filter_group(user: &UserRecord, filter: &ConversationFilter) -> Result<Option<Option<u32>>, Error> {
    if let Some(id) = filter.group_id {
        return match user.groups.iter().find(|g| g.id == id.0) {
            Some(group) => Ok(Some(Some(group.id))),
            None => Err(Error::GroupIdNotFound { field: "filter.group_id", id }),
        };
    }
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
/// after `after`, and hands each match (its data and group ids, decoded
/// once) to `visit` until it returns false.
///
/// With explicit ids or a group, the candidates are few (bounded by the
/// request or the group size) and are sorted in memory; otherwise the
/// user's listing index is scanned in order, so a page costs what it reads.
fn walk(
    state: &dyn StateRead,
    user_id: &UserId,
    user: &UserRecord,
    filter: &ConversationFilter,
    after: Option<&ListPosition>,
    mut visit: impl FnMut(ConversationId, ConversationData, Vec<u32>) -> bool,
) -> Result<(), Error> {
    let group = filter_group(user, filter)?;
    let candidates: Option<Vec<ConversationId>> = if !filter.conversation_ids.is_empty() {
        Some(filter.conversation_ids.clone())
    } else if let Some(Some(group_id)) = group {
        Some(members(state, user_id, group_id)?)
    } else {
        None
    };
    let accepts = |id: &ConversationId, data: &ConversationData, group_ids: &[u32]| {
        let in_group = match group {
            Some(Some(group_id)) => group_ids.contains(&group_id),
            _ => true,
        };
        in_group && filter.matches(id, data, !group_ids.is_empty())
    };

    if let Some(ids) = candidates {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = load_conv(state, user_id, &id)? {
                let (data, group_ids) = record.into_data();
                if accepts(&id, &data, &group_ids) {
                    found.push((ListPosition::of(&id, &data), id, data, group_ids));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (position, id, data, group_ids) in found {
            if after.is_some_and(|after| position <= *after) {
                continue;
            }
            if !visit(id, data, group_ids) {
                break;
            }
        }
        return Ok(());
    }

    let prefix = keys::user_prefix(user_id);
    let after_key = after.map(|after| keys::order_key(user_id, after));
    state.scan(Table::Order, &prefix, after_key.as_deref(), &mut |key, _| {
        let Some(indexed) = keys::order_position(prefix.len(), key) else {
            return Err(super::encoding::corrupt("order key"));
        };
        let (unpinned, inverted_order_key) = (indexed.unpinned, indexed.inverted_order_key);
        let id = ConversationId::from_canonical(indexed.id);
        let Some(record) = load_conv(state, user_id, &id)? else { return Ok(true) };
        // The index and the records are written in one atomic write, but on
        // sled two reads may straddle a commit: a record changed since its
        // index entry was read is skipped here (it appears at its new
        // position if that is still ahead of the scan).
        if ListPosition::rank(record.is_pinned, record.order_key) != (unpinned, inverted_order_key) {
            return Ok(true);
        }
        let (data, group_ids) = record.into_data();
        Ok(!accepts(&id, &data, &group_ids) || visit(id, data, group_ids))
    })
}

/// The group list of `user` (GetConversationGroupList).
pub(super) fn group_list(record: &UserRecord) -> GroupList {
    GroupList { groups: record.groups.iter().map(group_view).collect(), revision: record.revision }
}

/// One page of GetConversationList.
pub(super) fn list_page(
    state: &dyn StateRead,
    user_id: &UserId,
    user: &UserRecord,
    filter: &ConversationFilter,
    page_size: usize,
    after: Option<&ListPosition>,
) -> Result<ConversationPage, Error> {
    let mut page = Vec::with_capacity(page_size.min(1024));
    let mut more = false;
    walk(state, user_id, user, filter, after, |id, data, group_ids| {
        if page.len() == page_size {
            more = true;
            return false;
        }
        page.push(view(user, id, data, &group_ids));
        true
    })?;
    let next_after = if more { page.last().map(|v| ListPosition::of(&v.id, &v.data)) } else { None };
    Ok(ConversationPage { conversations: page, next_after, revision: user.revision })
}

/// Sum of unread counts of matching conversations that receive, with the
/// user's revision. The common questions (everything; one group) are
/// answered from counters.
pub(super) fn unread_count(
    state: &dyn StateRead,
    user_id: &UserId,
    user: &UserRecord,
    filter: &ConversationFilter,
) -> Result<(u64, u64), Error> {
    let only_group =
        ConversationFilter { group_name: filter.group_name.clone(), group_id: filter.group_id, ..Default::default() };
    if *filter == ConversationFilter::default() {
        return Ok((user.total_unread, user.revision));
    }
    if *filter == only_group {
        if let Some(Some(group_id)) = filter_group(user, filter)? {
            let group = user.groups.iter().find(|g| g.id == group_id).expect("found by filter_group");
            return Ok((group.unread_count, user.revision));
        }
    }
    let mut total = 0u64;
    walk(state, user_id, user, filter, None, |_, data, _| {
        total += data.counted_unread();
        true
    })?;
    Ok((total, user.revision))
}

/// The user's groups with their members, as `state` holds them.
pub(super) fn snapshot(
    state: &dyn StateRead,
    user: &UserId,
    record: &UserRecord,
    revision: u64,
) -> Result<Snapshot, Error> {
    let mut groups = Vec::with_capacity(record.groups.len());
    for group in &record.groups {
        let members = members(state, user, group.id)?;
        groups.push(super::SnapshotGroup {
            id: GroupId(group.id),
            name: group.name.clone(),
            conversation_ids: members.into_iter().map(|id| id.as_str().to_string()).collect(),
            look: group.look(),
        });
    }
    Ok(Snapshot { revision, groups })
}
