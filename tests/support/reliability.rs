//! What the reliability runs (tests/crash.rs, tests/storage_faults.rs,
//! tests/soak.rs) observe of a server they kill: a reader that collects
//! everything a user can observe and checks it for internal consistency,
//! and how a status came about. The server itself is
//! [`super::process::Server`]; the watchers and the replay are in
//! [`super::watch`].

use std::collections::{BTreeMap, BTreeSet};

use convgroups::pb::*;
use tonic::{Code, Status};

use super::inproc::list_all_paged;

// What the reliability runs use of the rest of the harness, under the names
// they have always used.
pub use super::client::{conv_client, group_client, ConvClient, GroupClient, Headers};
pub use super::http::scrape_metric;
pub use super::process::{
    cpu_time, free_port, log_tail, mint_token, rss_kib, Server as ServerProcess, BIN, CALL_TIMEOUT, START_DEADLINE,
};
pub use super::seeded::Rng;
pub use super::watch::{follow, read_log, read_snapshot, replay, wait_seen, watch_request, Follow, Followed, Groups};

// ---------------------------------------------------------------------------
// Seeded randomness and environment knobs
// ---------------------------------------------------------------------------

/// The seed of a randomised test: `$var` if set (decimal or 0x-hex), else
/// one derived from the clock. Printed, so a failure can be replayed.
pub fn seed_from_env(var: &str) -> u64 {
    let parsed = std::env::var(var).ok().and_then(|s| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    });
    let seed = parsed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        nanos.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    eprintln!("seed: {var}={seed} (set {var} to replay this run)");
    seed
}

/// `$var` parsed as a number, else `default`.
pub fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------
// Statuses
// ---------------------------------------------------------------------------

/// True if `status` was produced by the convgroups server itself (it
/// carries the service's ErrorInfo), not by the transport.
pub fn from_server(status: &Status) -> bool {
    use tonic_types::StatusExt;
    status.get_details_error_info().is_some_and(|info| info.domain == "convgroups")
}

/// The ErrorInfo reason of a status ("" when there is none).
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

/// Codes a call may end with when the server dies under it (transport,
/// not the service).
pub fn is_transport_failure(status: &Status) -> bool {
    !from_server(status)
        && matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal)
}

// ---------------------------------------------------------------------------
// Observed state
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// `conversation_count` of GetConversationGroupList.
    pub count: u32,
    /// `unread_count` of GetConversationGroupList.
    pub unread: u64,
    /// GetConversationList with `filter.group_name` = name.
    pub members: BTreeSet<String>,
    /// How the group looks: (icon, color, collapsed, custom_data).
    pub look: Look,
    /// The same listing in its order (the group's pins, then its sort mode).
    pub order: Vec<String>,
    /// `sort_mode` and `pinned_conversation_ids` of the group list.
    pub sort_mode: i32,
    pub pinned: Vec<String>,
}

/// A group's look as GetConversationGroupList shows it: (icon, color,
/// collapsed, custom_data).
pub type Look = (String, i32, bool, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvView {
    pub registered: bool,
    pub unread: u32,
    /// `conversation_group_list`.
    pub groups: Vec<String>,
}

/// Everything the read RPCs say about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub revision: u64,
    /// Display order.
    pub groups: Vec<GroupView>,
    /// The unfiltered listing.
    pub convs: BTreeMap<String, ConvView>,
}

impl UserView {
    /// (name, members) in display order: what a replay of the log rebuilds.
    pub fn membership(&self) -> Vec<(String, BTreeSet<String>)> {
        self.groups.iter().map(|g| (g.name.clone(), g.members.clone())).collect()
    }
}

/// Every conversation matching `filter`, over all pages.
pub async fn list_all(gc: &mut GroupClient, filter: Option<ConversationFilter>) -> Result<Vec<Conversation>, Status> {
    list_all_paged(gc, filter, 1000).await
}

/// Reads the user's groups, every group's members and every conversation,
/// and checks that they agree with each other: names and counts of the
/// group list, members per group, `conversation_group_list` of every
/// conversation, unread sums, the no-group filter. Returns the view and the
/// disagreements found (empty when consistent). The caller must make sure no
/// mutation of this user runs meanwhile.
pub async fn read_user(gc: &mut GroupClient) -> Result<(UserView, Vec<String>), Status> {
    let mut problems = Vec::new();
    let list = gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await?.into_inner();
    let listed_names: Vec<String> = list.groups.iter().map(|g| g.name.clone()).collect();
    if list.group_names != listed_names {
        problems.push(format!("group_names {:?} != names of groups[] {listed_names:?}", list.group_names));
    }
    let all = list_all(gc, None).await?;
    let mut convs = BTreeMap::new();
    for c in &all {
        let view =
            ConvView { registered: c.registered, unread: c.unread_count, groups: c.conversation_group_list.clone() };
        if convs.insert(c.conversation_id.clone(), view).is_some() {
            problems.push(format!("{} listed twice", c.conversation_id));
        }
    }
    let counted = |c: &Conversation| {
        if c.recv_opt == RecvOpt::Receive as i32 {
            u64::from(c.unread_count)
        } else {
            0
        }
    };
    let mut groups = Vec::new();
    for g in &list.groups {
        let filter = ConversationFilter { group_name: Some(g.name.clone()), ..Default::default() };
        let listed = list_all(gc, Some(filter)).await?;
        let members: BTreeSet<String> = listed.iter().map(|c| c.conversation_id.clone()).collect();
        if members.len() != listed.len() {
            problems.push(format!("group {:?}: a member is listed twice", g.name));
        }
        if members.len() != g.conversation_count as usize {
            problems.push(format!(
                "group {:?}: conversation_count {} but {} members listed",
                g.name,
                g.conversation_count,
                members.len()
            ));
        }
        let unread: u64 = listed.iter().map(counted).sum();
        if unread != g.unread_count {
            problems.push(format!("group {:?}: unread_count {} but members sum to {unread}", g.name, g.unread_count));
        }
        for id in &members {
            if !convs.contains_key(id) {
                problems.push(format!("group {:?}: member {id} is missing from the unfiltered listing", g.name));
            }
        }
        if !listed
            .iter()
            .map(|c| &c.conversation_id)
            .take(g.pinned_conversation_ids.len())
            .eq(g.pinned_conversation_ids.iter())
        {
            problems.push(format!("group {:?}: its pins {:?} are not listed first", g.name, g.pinned_conversation_ids));
        }
        groups.push(GroupView {
            name: g.name.clone(),
            count: g.conversation_count,
            unread: g.unread_count,
            members,
            look: (g.icon.clone(), g.color, g.collapsed, g.custom_data.clone()),
            order: listed.iter().map(|c| c.conversation_id.clone()).collect(),
            sort_mode: g.sort_mode,
            pinned: g.pinned_conversation_ids.clone(),
        });
    }
    for (id, conv) in &convs {
        let expected: Vec<String> = groups.iter().filter(|g| g.members.contains(id)).map(|g| g.name.clone()).collect();
        if conv.groups != expected {
            problems.push(format!(
                "{id}: conversation_group_list {:?}, but the group listings put it in {expected:?}",
                conv.groups
            ));
        }
        if !conv.registered && conv.groups.is_empty() {
            problems.push(format!("{id}: listed although neither registered nor grouped"));
        }
    }
    let ungrouped_filter = ConversationFilter { group_name: Some(String::new()), ..Default::default() };
    let ungrouped: BTreeSet<String> =
        list_all(gc, Some(ungrouped_filter)).await?.into_iter().map(|c| c.conversation_id).collect();
    let expected: BTreeSet<String> =
        convs.iter().filter(|(_, c)| c.groups.is_empty()).map(|(id, _)| id.clone()).collect();
    if ungrouped != expected {
        problems.push(format!("filter group_name \"\" lists {ungrouped:?}, expected {expected:?}"));
    }
    Ok((UserView { revision: list.revision, groups, convs }, problems))
}
