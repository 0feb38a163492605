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
    GroupRank, ListPosition, SortMode, UserId,
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

/// The members of a group with their manual ranks (a member key's value),
/// read in the same scan as the members themselves.
pub(super) fn members_with_ranks(
    state: &dyn StateRead,
    user: &UserId,
    group_id: u32,
) -> Result<Vec<(ConversationId, u64)>, Error> {
    let prefix = keys::group_members_prefix(user, group_id);
    let mut members = Vec::new();
    state.scan(Table::Members, &prefix, None, &mut |key, value| {
        let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| super::encoding::corrupt("member key"))?;
        members.push((ConversationId::from_canonical(id.to_string()), super::encoding::decode_rank(value)?));
        Ok(true)
    })?;
    Ok(members)
}

/// Walks the conversations a filter selects, in listing order, starting
/// after `after`, and hands each match (its data and group ids, decoded
/// once, and its group rank in a listing of one group) to `visit` until it
/// returns false.
///
/// With a group, the candidates are its members (bounded by the group
/// size), read with their manual ranks in one scan and sorted in memory in
/// the group's order: its pins, then its sort mode. With explicit ids
/// alone, the candidates are those ids. Otherwise the user's listing index
/// is scanned in order, so a page costs what it reads.
fn walk(
    state: &dyn StateRead,
    user_id: &UserId,
    user: &UserRecord,
    filter: &ConversationFilter,
    after: Option<&ListPosition>,
    mut visit: impl FnMut(ConversationId, ConversationData, Vec<u32>, Option<GroupRank>) -> bool,
) -> Result<(), Error> {
    let group = filter_group(user, filter)?;
    let accepts = |id: &ConversationId, data: &ConversationData, group_ids: &[u32]| {
        let in_group = match group {
            Some(Some(group_id)) => group_ids.contains(&group_id),
            _ => true,
        };
        in_group && filter.matches(id, data, !group_ids.is_empty())
    };

    if let Some(Some(group_id)) = group {
        let record = user.groups.iter().find(|g| g.id == group_id).expect("found by filter_group");
        let (mode, epoch) = (record.sort_mode(), record.order_epoch());
        // A token of another order (the mode changed since it was issued,
        // or the manual order was renumbered) has no place in this one:
        // refused rather than guessed at.
        if let Some(after) = after {
            if !after.group.as_ref().is_some_and(|rank| rank.fits(mode, epoch)) {
                return Err(Error::InvalidPageToken);
            }
        }
        let mut found = Vec::new();
        for (id, rank) in members_with_ranks(state, user_id, group_id)? {
            if !filter.conversation_ids.is_empty() && !filter.conversation_ids.contains(&id) {
                continue;
            }
            let Some(record_conv) = load_conv(state, user_id, &id)? else { continue };
            let (data, group_ids) = record_conv.into_data();
            if !accepts(&id, &data, &group_ids) {
                continue;
            }
            let group_rank = match record.pinned.iter().position(|pin| pin == id.as_str()) {
                Some(index) => GroupRank::Pinned(index as u32),
                None => match mode {
                    SortMode::Recent => GroupRank::Recent,
                    SortMode::Manual => GroupRank::Manual { epoch, rank },
                    SortMode::Alphabetical => GroupRank::Alphabetical(data.show_name.clone()),
                },
            };
            found.push((ListPosition::in_group(&id, &data, group_rank.clone()), id, data, group_ids, group_rank));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (position, id, data, group_ids, group_rank) in found {
            if after.is_some_and(|after| position <= *after) {
                continue;
            }
            if !visit(id, data, group_ids, Some(group_rank)) {
                break;
            }
        }
        return Ok(());
    }

    if !filter.conversation_ids.is_empty() {
        let mut found = Vec::with_capacity(filter.conversation_ids.len());
        for id in &filter.conversation_ids {
            if let Some(record) = load_conv(state, user_id, id)? {
                let (data, group_ids) = record.into_data();
                if accepts(id, &data, &group_ids) {
                    found.push((ListPosition::of(id, &data), id.clone(), data, group_ids));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (position, id, data, group_ids) in found {
            if after.is_some_and(|after| position <= *after) {
                continue;
            }
            if !visit(id, data, group_ids, None) {
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
        Ok(!accepts(&id, &data, &group_ids) || visit(id, data, group_ids, None))
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
    let mut last_rank = None;
    walk(state, user_id, user, filter, after, |id, data, group_ids, group_rank| {
        if page.len() == page_size {
            more = true;
            return false;
        }
        page.push(view(user, id, data, &group_ids));
        last_rank = group_rank;
        true
    })?;
    let next_after = match (more, page.last()) {
        (true, Some(last)) => Some(match last_rank {
            Some(rank) => ListPosition::in_group(&last.id, &last.data, rank),
            None => ListPosition::of(&last.id, &last.data),
        }),
        _ => None,
    };
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
    walk(state, user_id, user, filter, None, |_, data, _, _| {
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
            group: super::rules::group_view(group),
            conversation_ids: members.into_iter().map(|id| id.as_str().to_string()).collect(),
        });
    }
    Ok(Snapshot { revision, groups })
}
