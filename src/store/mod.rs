//! Storage: one boundary, two backends.
//!
//! The service layer, the hub and the watch streams talk to [`Store`] and do
//! not know which backend runs. What the backends share is written once:
//! the key layout ([`keys`]), the stored values ([`encoding`]), planning a
//! mutation ([`plan`]) by the rules of groups ([`rules`]), and answering
//! reads ([`query`]), all against the [`state::StateRead`] boundary. What
//! differs is where the revision comes from, how a planned mutation is
//! committed atomically with its event batch, and how committed batches
//! reach the [`Hub`]:
//!
//! * [`embedded`] (the default): sled in a local directory. One writer
//!   thread numbers mutations and applies those waiting together as one
//!   commit group (one atomic sled write on one tree); a group
//!   commit flush makes them durable before anyone is answered.
//! * [`etcd`]: stateless replicas over an etcd cluster. The revision is
//!   etcd's transaction revision; a mutation is one etcd transaction guarded
//!   by the user's record; each replica follows one etcd watch (its change
//!   feed) that hands every committed batch to its hub.

mod backup;
mod durability;
mod embedded;
mod encoding;
pub mod etcd;
mod keys;
mod log;
mod migrate;
mod plan;
mod query;
mod rules;
mod state;
mod webhooks;
pub use webhooks::WebhookRecord;
mod writer;

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Backend, Config, Limits};
use crate::domain::{
    ConversationFilter, ConversationId, ConversationPage, ConversationPatch, GroupList, GroupRef, GroupRule, GroupView,
    Item, ItemOutcomes, ItemResults, ListPosition, LookUpdate, Placement, SortMode, UserId,
};
use crate::error::Error;
use crate::hub::Hub;
use embedded::SledStore;
use etcd::EtcdStore;
use rules::Rule;

pub use backup::{backup, restore, BackupSummary, Restored};

/// Writes a backup of the etcd deployment under `settings.etcd_prefix` to
/// `out`, in the format of [`backup`] (with the replicas' generated auth
/// `secret`, if there is one).
pub async fn backup_etcd(
    settings: &crate::config::StorageSettings,
    secret: Option<Vec<u8>>,
    out: &Path,
) -> Result<BackupSummary, Error> {
    let contents = etcd::export(settings, secret).await?;
    backup::write(out, &contents)
}

/// Restores a backup of either backend into an empty etcd prefix (see
/// `store::etcd::transfer`: the event log starts afresh); returns the
/// backup's auth secret with the summary, for the caller to write.
pub async fn restore_etcd(input: &Path, settings: &crate::config::StorageSettings) -> Result<Restored, Error> {
    let contents = backup::read(input)?;
    let entries = etcd::import(settings, &contents).await?;
    Ok(Restored { summary: BackupSummary { trees: 4, entries }, secret: contents.secret })
}
pub use rules::CreatedGroup;

/// Answer of MoveConversations: per target in request order, the group
/// after the move and what happened there; and the items' outcome
/// (succeeded: the conversations that left `from`).
#[derive(Debug, Clone)]
pub struct MovedOutcome {
    pub targets: Vec<(GroupView, ItemOutcomes)>,
    pub outcome: ItemOutcomes,
}

/// sled reads are always current: `min_revision` only has to be a revision
/// the server has reached.
fn check_min_revision(store: &SledStore, min_revision: Option<u64>) -> Result<(), Error> {
    match (min_revision, store.current_revision()) {
        (Some(min), current) if min > current => Err(Error::MinRevisionInFuture { min, current }),
        _ => Ok(()),
    }
}

pub use crate::domain::Scope;

/// A user's record exactly as stored, in one generation of the open
/// database (hook for the service's caches of encoded answers,
/// `service::read_cache`): equal stamps, equal group lists and pages.
/// Holding one holds sled's own copy of the value, not a new one.
///
/// The generation changes at every storage failure and reopen: a reopen
/// rebuilds the state from disk and may bring back a record's earlier bytes
/// while conversation records read before it (which a page holds, and the
/// record does not) were lost with the failed write.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordStamp(sled::IVec, u64);

impl RecordStamp {
    #[cfg(test)]
    pub fn of(bytes: &[u8]) -> Self {
        Self(sled::IVec::from(bytes), 0)
    }
}

/// The caller's groups with their members, at one revision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: u64,
    /// In display order.
    pub groups: Vec<SnapshotGroup>,
}

/// One group of a [`Snapshot`].
#[derive(Debug, Clone)]
pub struct SnapshotGroup {
    /// The group as a group list shows it (its counts are the stored ones).
    pub group: crate::domain::GroupView,
    /// Every member, ordered by conversation id.
    pub conversation_ids: Vec<String>,
}

/// The rule of every log read, on both backends: a read from `from` fails
/// with REVISION_COMPACTED when trimming has reached it (`floor >= from`),
/// so a reader never silently skips an event. `current` is the latest
/// durable revision, for the error's details.
fn check_floor(floor: u64, from: u64, current: u64) -> Result<(), Error> {
    if floor >= from {
        return Err(Error::RevisionCompacted { start: from, oldest: floor + 1, current });
    }
    Ok(())
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    pub trimmed: u64,
}

/// Progress and health of the storage, shared between the backend and
/// whoever follows it (health, watchers, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Every revision up to this one is durable and has been handed to the
    /// hub (sled: flushed; etcd: seen on the change feed).
    revision: u64,
    /// Bumped on every failed flush and on every reopen (sled), or on every
    /// loss of the change feed (etcd), so waiters can tell their commit may
    /// be gone.
    failures: u64,
    /// Storage cannot take writes right now: mutations are refused and
    /// health is NOT_SERVING until it recovers by itself.
    failing: bool,
}

impl Durable {
    fn at(revision: u64) -> Self {
        Self { revision, failures: 0, failing: false }
    }
}

/// Reads the last durable revision; holds no database resources.
#[derive(Clone, Debug)]
pub struct RevisionWatch(watch::Receiver<Durable>);

impl RevisionWatch {
    pub fn current(&self) -> u64 {
        self.0.borrow().revision
    }

    /// Resolves when the durable revision (or storage's health) changes;
    /// false once the store is gone.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }

    /// Resolves once storage is failing (`true`: mutations are refused) or
    /// healthy again (`false`).
    pub async fn storage_failing(&mut self, failing: bool) {
        let _ = self.0.wait_for(|d| d.failing == failing).await;
    }
}

/// A cheap-clone handle on the storage, whichever backend runs it.
#[derive(Clone, Debug)]
pub enum Store {
    Sled(SledStore),
    Etcd(EtcdStore),
}

/// Calls the same method on whichever backend runs.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sled($store) => $call,
            Store::Etcd($store) => $call,
        }
    };
}

impl Store {
    /// Opens the embedded backend (sled in `dir`) and starts its flusher.
    /// Must be called inside a tokio runtime. `retry` is how often recovery
    /// probes the data directory while storage is failing
    /// (`--storage-retry-interval`).
    pub fn open(dir: &Path, limits: Limits, hub: Hub, retry: Duration) -> Result<Self, Error> {
        Ok(Self::Sled(SledStore::open(dir, limits, hub, retry)?))
    }

    /// Checks the storage settings as [`open_configured`](Self::open_configured)
    /// would, without opening anything: etcd endpoints present and well
    /// formed (`convgroups check-config`).
    pub fn check_settings(config: &Config) -> Result<(), Error> {
        match config.storage.backend {
            Backend::Sled => Ok(()),
            Backend::Etcd => EtcdStore::check_settings(&config.storage),
        }
    }

    /// Opens the backend the configuration names.
    pub async fn open_configured(config: &Config, hub: Hub) -> Result<Self, Error> {
        match config.storage.backend {
            Backend::Sled => {
                Self::open(&config.data_dir, config.limits.clone(), hub, config.server.storage_retry_interval)
            }
            Backend::Etcd => Ok(Self::Etcd(EtcdStore::open(&config.storage, config.limits.clone(), hub).await?)),
        }
    }

    /// A handle that reads the durable revision without keeping the
    /// database open.
    pub fn revision_watch(&self) -> RevisionWatch {
        dispatch!(self, s => s.revision_watch())
    }

    /// The last durable revision this server has handed to its watchers.
    pub fn current_revision(&self) -> u64 {
        dispatch!(self, s => s.current_revision())
    }

    /// The newest revision of the whole deployment: on sled the same as
    /// [`current_revision`](Self::current_revision); on etcd the cluster's,
    /// which may be ahead of this replica's change feed for a moment.
    pub async fn latest_revision(&self) -> Result<u64, Error> {
        match self {
            Store::Sled(s) => Ok(s.current_revision()),
            Store::Etcd(s) => s.latest_revision().await,
        }
    }

    pub fn limits(&self) -> &Limits {
        dispatch!(self, s => s.limits())
    }

    /// Whether new watch streams must be refused for now: an etcd replica
    /// cut off from etcd can promise a new stream nothing (its change feed
    /// is down). sled keeps serving watchers from its log while writes fail.
    pub fn refuses_watches(&self) -> bool {
        match self {
            Store::Sled(_) => false,
            Store::Etcd(s) => s.revision_watch().0.borrow().failing,
        }
    }

    /// Bytes the database takes on disk (None where the backend does not
    /// keep it: etcd reports its own).
    pub async fn size_on_disk(&self) -> Result<Option<u64>, Error> {
        match self {
            Store::Sled(s) => s.size_on_disk().await.map(Some),
            Store::Etcd(_) => Ok(None),
        }
    }

    /// Makes everything durable; called on shutdown.
    pub async fn flush(&self) -> Result<(), Error> {
        match self {
            Store::Sled(s) => s.flush().await,
            // Every acknowledged etcd write is already on a majority's disk.
            Store::Etcd(_) => Ok(()),
        }
    }

    /// Runs one mutation of `user` by `rule`; returns its answer with the
    /// user's revision after it, once the change is durable.
    async fn mutate<R: Send + 'static>(&self, user: &UserId, rule: impl Rule<R>) -> Result<(R, u64), Error> {
        dispatch!(self, s => s.mutate(user, rule).await)
    }

    // The parts of CreateConversationGroup, each validated at the
    // boundary; a struct of them would only be unpacked again here.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_group(
        &self,
        user: &UserId,
        name: String,
        items: Vec<Item<()>>,
        sort_mode: SortMode,
        rule: Option<GroupRule>,
        result: ItemResults,
        expected_revision: Option<u64>,
    ) -> Result<CreatedGroup, Error> {
        let ((group, result), revision) =
            self.mutate(user, rules::create_group(name, items, sort_mode, rule, result, expected_revision)).await?;
        Ok(CreatedGroup { group, outcome: result.finish(revision) })
    }

    /// Sets, changes or (None) clears a group's rule.
    pub async fn set_group_rule(
        &self,
        user: &UserId,
        group: GroupRef,
        rule: Option<GroupRule>,
        expected_revision: Option<u64>,
    ) -> Result<(GroupView, u64), Error> {
        self.mutate(user, rules::set_group_rule(group, rule, expected_revision)).await
    }

    pub async fn delete_group(
        &self,
        user: &UserId,
        group: GroupRef,
        expected_revision: Option<u64>,
    ) -> Result<u64, Error> {
        let ((), revision) = self.mutate(user, rules::delete_group(group, expected_revision)).await?;
        Ok(revision)
    }

    pub async fn rename_group(
        &self,
        user: &UserId,
        group: GroupRef,
        new_name: String,
        expected_revision: Option<u64>,
    ) -> Result<(GroupView, u64), Error> {
        self.mutate(user, rules::rename_group(group, new_name, expected_revision)).await
    }

    /// Sets how a group looks (UpdateConversationGroup); the revision is
    /// kept when nothing changed.
    pub async fn update_group(
        &self,
        user: &UserId,
        group: GroupRef,
        update: LookUpdate,
        expected_revision: Option<u64>,
    ) -> Result<(GroupView, u64), Error> {
        self.mutate(user, rules::update_group(group, update, expected_revision)).await
    }

    pub async fn reorder_groups(
        &self,
        user: &UserId,
        field: &'static str,
        groups: Vec<GroupRef>,
        expected_revision: Option<u64>,
    ) -> Result<(Vec<GroupView>, u64), Error> {
        self.mutate(user, rules::reorder_groups(field, groups, expected_revision)).await
    }

    pub async fn add_to_group(
        &self,
        user: &UserId,
        group: GroupRef,
        items: Vec<Item<()>>,
        result: ItemResults,
        expected_revision: Option<u64>,
    ) -> Result<ItemOutcomes, Error> {
        let (result, revision) =
            self.mutate(user, rules::add_to_group(group, items, result, expected_revision)).await?;
        Ok(result.finish(revision))
    }

    pub async fn remove_from_group(
        &self,
        user: &UserId,
        group: GroupRef,
        items: Vec<Item<()>>,
        result: ItemResults,
        expected_revision: Option<u64>,
    ) -> Result<ItemOutcomes, Error> {
        let (result, revision) =
            self.mutate(user, rules::remove_from_group(group, items, result, expected_revision)).await?;
        Ok(result.finish(revision))
    }

    pub async fn upsert_conversations(
        &self,
        user: &UserId,
        items: Vec<Item<ConversationPatch>>,
        result: ItemResults,
    ) -> Result<ItemOutcomes, Error> {
        let (result, revision) = self.mutate(user, rules::upsert_conversations(items, result)).await?;
        Ok(result.finish(revision))
    }

    pub async fn delete_conversations(
        &self,
        user: &UserId,
        items: Vec<Item<()>>,
        result: ItemResults,
    ) -> Result<ItemOutcomes, Error> {
        let (result, revision) = self.mutate(user, rules::delete_conversations(items, result)).await?;
        Ok(result.finish(revision))
    }

    /// MarkConversationGroupRead: the members changed and the revision.
    pub async fn mark_group_read(
        &self,
        user: &UserId,
        group: GroupRef,
        expected_revision: Option<u64>,
    ) -> Result<(Vec<crate::domain::ConversationId>, u64), Error> {
        self.mutate(user, rules::mark_group_read(group, expected_revision)).await
    }

    /// SetConversationGroupMute: the members changed, the group after, and
    /// the revision.
    pub async fn set_group_mute(
        &self,
        user: &UserId,
        group: GroupRef,
        recv_opt: crate::domain::RecvOpt,
        apply_to_new_members: bool,
        expected_revision: Option<u64>,
    ) -> Result<(Vec<crate::domain::ConversationId>, GroupView, u64), Error> {
        let ((changed, group), revision) =
            self.mutate(user, rules::set_group_mute(group, recv_opt, apply_to_new_members, expected_revision)).await?;
        Ok((changed, group, revision))
    }

    /// MoveConversations: per target (the group after, its outcome), the
    /// outcome of the items (succeeded: moved out of `from`), all at the
    /// one revision.
    pub async fn move_conversations(
        &self,
        user: &UserId,
        from: Option<GroupRef>,
        to: Vec<GroupRef>,
        items: Vec<Item<()>>,
        result: ItemResults,
        expected_revision: Option<u64>,
    ) -> Result<MovedOutcome, Error> {
        let (moved, revision) =
            self.mutate(user, rules::move_conversations(from, to, items, result, expected_revision)).await?;
        Ok(MovedOutcome {
            targets: moved.targets.into_iter().map(|t| (t.group, t.result.finish(revision))).collect(),
            outcome: moved.result.finish(revision),
        })
    }

    /// Sets a group's sort mode; returns the group after.
    pub async fn set_sort_mode(
        &self,
        user: &UserId,
        group: GroupRef,
        mode: SortMode,
        expected_revision: Option<u64>,
    ) -> Result<(GroupView, u64), Error> {
        self.mutate(user, rules::set_sort_mode(group, mode, expected_revision)).await
    }

    /// Moves members of a MANUAL group (MoveConversationsInGroup).
    pub async fn move_in_group(
        &self,
        user: &UserId,
        group: GroupRef,
        items: Vec<Item<()>>,
        placement: Placement,
        result: ItemResults,
        expected_revision: Option<u64>,
    ) -> Result<ItemOutcomes, Error> {
        let (result, revision) =
            self.mutate(user, rules::move_in_group(group, items, placement, result, expected_revision)).await?;
        Ok(result.finish(revision))
    }

    /// Pins (`pin`) or unpins members of a group in it; returns the
    /// outcomes and the group's pins after.
    pub async fn pin_in_group(
        &self,
        user: &UserId,
        group: GroupRef,
        items: Vec<Item<()>>,
        pin: bool,
        result: ItemResults,
        expected_revision: Option<u64>,
    ) -> Result<(ItemOutcomes, Vec<ConversationId>), Error> {
        let ((result, pinned), revision) = if pin {
            self.mutate(user, rules::pin_in_group(group, items, result, expected_revision)).await?
        } else {
            self.mutate(user, rules::unpin_in_group(group, items, result, expected_revision)).await?
        };
        Ok((result.finish(revision), pinned))
    }

    /// The stamp of the user's stored record, when reading it is one local
    /// get (sled, not reopening); None otherwise (etcd: a read is a round
    /// trip). For `service::read_cache`.
    pub fn user_record_stamp(&self, user: &UserId) -> Option<Result<RecordStamp, Error>> {
        match self {
            Store::Sled(s) => {
                // Read before the record: a failure or reopen after this
                // read changes the next stamp, so no answer made across one
                // is kept or reused.
                let generation = s.generation();
                s.user_record_raw(user).map(|raw| {
                    raw.map(|raw| RecordStamp(raw.unwrap_or_else(|| sled::IVec::from(&[] as &[u8])), generation))
                })
            }
            Store::Etcd(_) => None,
        }
    }

    /// The user's groups. With `min_revision`, at a revision at least that
    /// one (an etcd replica may answer from memory); without, linearizable.
    pub async fn group_list(&self, user: &UserId, min_revision: Option<u64>) -> Result<GroupList, Error> {
        match self {
            Store::Sled(s) => {
                check_min_revision(s, min_revision)?;
                s.group_list(user).await
            }
            Store::Etcd(s) => s.group_list(user, min_revision).await,
        }
    }

    pub async fn list_conversations(
        &self,
        user: &UserId,
        filter: ConversationFilter,
        page_size: usize,
        after: Option<ListPosition>,
        min_revision: Option<u64>,
    ) -> Result<ConversationPage, Error> {
        match self {
            Store::Sled(s) => {
                check_min_revision(s, min_revision)?;
                s.list_conversations(user, filter, page_size, after).await
            }
            Store::Etcd(s) => s.list_conversations(user, filter, page_size, after, min_revision).await,
        }
    }

    /// Sum of unread counts of matching conversations that receive, with the
    /// user's revision.
    pub async fn unread_count(
        &self,
        user: &UserId,
        filter: ConversationFilter,
        min_revision: Option<u64>,
    ) -> Result<(u64, u64), Error> {
        match self {
            Store::Sled(s) => {
                check_min_revision(s, min_revision)?;
                s.unread_count(user, filter).await
            }
            Store::Etcd(s) => s.unread_count(user, filter, min_revision).await,
        }
    }

    /// The revision before which a watcher of `scope` cannot resume: events
    /// at or below it may have been trimmed.
    pub async fn floor(&self, scope: Scope) -> Result<u64, Error> {
        dispatch!(self, s => s.floor(scope).await)
    }

    /// Up to `limit` durable batches of `scope` with revision in
    /// `from..=through`, in order. Fails with REVISION_COMPACTED if trimming
    /// has reached `from`, so a reader never silently skips an event.
    pub async fn read_log(
        &self,
        scope: Scope,
        from: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<crate::domain::EventBatch>, Error> {
        dispatch!(self, s => s.read_log(scope, from, through, limit).await)
    }

    /// The user's groups and members at one durable revision.
    pub async fn snapshot(&self, user: &UserId) -> Result<Snapshot, Error> {
        dispatch!(self, s => s.snapshot(user).await)
    }

    /// One trimming pass of the event log (see `--retain-for`).
    pub async fn compact(&self, retain_for_ms: i64, retain_events_per_user: u64) -> Result<Compaction, Error> {
        dispatch!(self, s => s.compact(retain_for_ms, retain_events_per_user).await)
    }
}
