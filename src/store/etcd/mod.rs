//! The etcd backend: any number of stateless replicas over one etcd 3.4+
//! cluster, with the contract's revision and watch guarantees.
//!
//! * **Revisions** are etcd's: a mutation is one etcd transaction, and the
//!   transaction's revision is the mutation's. They increase across the
//!   whole deployment but are not consecutive (other writes, such as the
//!   replicas' heartbeats and trimming, take revisions too).
//! * **Atomicity and conflicts**: a mutation reads the user's record (and
//!   its `mod_revision` M), plans with the shared rules against a snapshot
//!   of the cluster at that read's revision, and commits every write, the
//!   user's record and its event batch in one transaction that compares the
//!   record's `mod_revision` with M. Every change of a user writes that
//!   record, so the compare fails exactly when another replica changed the
//!   user in between; the mutation is then planned again on the new state
//!   (where `expected_revision` is checked again).
//! * **The user's revision** is the record's `mod_revision`.
//! * **Event log**: each batch is stored under `log/<user>/<M>` (M: the
//!   user's revision before it), so a user's batches sort in revision order
//!   and the batch's revision is its key's `create_revision`.
//! * **Change feed**: each replica follows one etcd watch on the log and on
//!   the replicas' heartbeats ([`feed`]) and hands every committed batch to
//!   its hub in revision order, so 10,000 watchers cost etcd one watch.
//! * **Lost answers**: a transaction whose answer was lost may have
//!   committed. Each attempt carries a random nonce in its batch; the
//!   replica looks for its own nonce under `log/<user>/<M>` before it plans
//!   again, so an attempt is answered once and applied at most once. If that
//!   cannot be settled in time the call fails with `outcome: unknown`.
//!
//! Key layout under `--etcd-prefix` P (binary parts as in [`super::keys`]):
//!
//! | key                         | value                                  |
//! |-----------------------------|----------------------------------------|
//! | `P t<table>/<sled key>`     | the same records as the sled tables    |
//! | `P w/e/<user><M u64>`       | event batch (BatchRecord)              |
//! | `P w/h/<replica id>`        | heartbeat: write time, ms (u64)        |
//! | `P m/floor`, `P m/floor/<user>` | trimming floors (u64)              |

mod cache;
pub(crate) mod client;
mod feed;
mod reads;
mod transfer;

pub(super) use transfer::{export, import};

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use tokio::runtime::Handle;
use tokio::sync::watch;

use self::client::{Client, TxnFailed};
use super::encoding::{decode, BatchRecord, UserRecord};
use super::keys;
use super::plan::{Plan, Planned};
use super::rules::Rule;
use super::state::{StateRead, Table, Visit};
use super::{Compaction, Durable, RevisionWatch, Scope, Snapshot};
use crate::config::{Limits, StorageSettings};
use crate::domain::{now_ms, ConversationFilter, ConversationPage, EventBatch, GroupList, ListPosition, UserId};
use crate::error::Error;
use crate::hub::Hub;
use crate::pb::etcd::{
    compare, range_request, request_op, Compare, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};

/// Keys read per request when scanning a range.
const SCAN_PAGE: i64 = 256;

/// The etcd key layout of one deployment (see the module docs).
#[derive(Debug, Clone)]
struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    fn with(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    fn table_prefix(&self, table: Table) -> Vec<u8> {
        self.with(&[b"t", &[b'0' + table as u8], b"/"])
    }

    fn table(&self, table: Table, key: &[u8]) -> Vec<u8> {
        let mut full = self.table_prefix(table);
        full.extend_from_slice(key);
        full
    }

    fn user(&self, user: &UserId) -> Vec<u8> {
        self.table(Table::Users, &keys::user_prefix(user))
    }

    /// Everything the change feed follows: the log and the heartbeats.
    fn feed(&self) -> Vec<u8> {
        self.with(&[b"w/"])
    }

    fn log(&self) -> Vec<u8> {
        self.with(&[b"w/e/"])
    }

    fn user_log(&self, user: &UserId) -> Vec<u8> {
        self.with(&[b"w/e/", &keys::user_prefix(user)])
    }

    fn log_entry(&self, user: &UserId, previous: u64) -> Vec<u8> {
        self.with(&[b"w/e/", &keys::user_prefix(user), &previous.to_be_bytes()])
    }

    fn heartbeats(&self) -> Vec<u8> {
        self.with(&[b"w/h/"])
    }

    fn floor(&self, scope: &Scope) -> Vec<u8> {
        match scope {
            Scope::AllUsers => self.with(&[b"m/floor"]),
            Scope::User(user) => self.with(&[b"m/floor/", &keys::user_prefix(user)]),
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's range_end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the keyspace.
    vec![0]
}

fn range_of(prefix: &[u8]) -> RangeRequest {
    RangeRequest { key: prefix.to_vec(), range_end: prefix_end(prefix), ..Default::default() }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(PutRequest { key, value, ..Default::default() })) }
}

fn delete(key: Vec<u8>, range_end: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key,
            range_end,
            ..Default::default()
        })),
    }
}

/// `key`'s mod_revision equals `revision` (0: the key does not exist).
fn unchanged_since(key: Vec<u8>, revision: u64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Mod as i32,
        key,
        target_union: Some(compare::TargetUnion::ModRevision(revision as i64)),
        ..Default::default()
    }
}

fn decode_u64(kv: Option<&KeyValue>) -> Result<u64, Error> {
    match kv {
        None => Ok(0),
        Some(kv) => keys::decode_u64(&kv.value).ok_or_else(|| super::encoding::corrupt("etcd u64 value")),
    }
}

/// The user's record as etcd holds it, with its revision (the key's
/// mod_revision; 0 for a user with no change yet).
fn user_record(kv: Option<&KeyValue>) -> Result<UserRecord, Error> {
    let Some(kv) = kv else { return Ok(UserRecord::default()) };
    let mut record: UserRecord = decode(&kv.value, "user record")?;
    record.revision = kv.mod_revision as u64;
    Ok(record)
}

fn batch_of(kv: &KeyValue) -> Result<EventBatch, Error> {
    decode::<BatchRecord>(&kv.value, "event batch")?.into_batch(kv.create_revision as u64)
}

pub(super) struct Inner {
    client: Arc<Client>,
    /// Coalesces concurrent reads of users' records (see [`reads`]).
    reads: reads::Reads,
    /// Users' records for reads with `min_revision` (see [`cache`]).
    cache: cache::RecordCache,
    keys: Keys,
    limits: Limits,
    hub: Hub,
    durable: watch::Sender<Durable>,
    /// The runtime, for the blocking threads that plan mutations and walk
    /// listings: the shared planning code is synchronous, and its reads
    /// reach etcd through `block_on`.
    runtime: Handle,
    settings: StorageSettings,
    /// Mutations of one user on this replica take turns (by a stripe of the
    /// user's hash): concurrent ones would only make each other's etcd
    /// compare fail and re-plan. Replicas still race each other, which the
    /// compare settles.
    turns: Vec<tokio::sync::Mutex<()>>,
}

/// Stripes of [`Inner::turns`]: enough that unrelated users rarely wait for
/// each other, few enough to cost nothing.
const TURN_STRIPES: usize = 256;

/// A cheap-clone handle on the etcd backend of this replica.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
    /// Stops the feed and the heartbeat when the last handle goes.
    _stop: Arc<feed::StopOnDrop>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("revision", &self.current_revision()).finish()
    }
}

/// Reads of the cluster as of one revision: every read of a plan or a
/// listing sees the same state.
struct EtcdRead<'a> {
    inner: &'a Inner,
    revision: u64,
}

impl StateRead for EtcdRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let request = RangeRequest {
            key: self.inner.keys.table(table, key),
            revision: self.revision as i64,
            ..Default::default()
        };
        let response = self.inner.runtime.block_on(self.inner.client.range(request))?;
        Ok(response.kvs.into_iter().next().map(|kv| kv.value))
    }

    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<(), Error> {
        let table_prefix = self.inner.keys.table_prefix(table);
        let full_prefix = self.inner.keys.table(table, prefix);
        let mut start = match after {
            // The smallest key greater than `after`.
            Some(after) => [self.inner.keys.table(table, after), vec![0]].concat(),
            None => full_prefix.clone(),
        };
        let end = prefix_end(&full_prefix);
        loop {
            let request = RangeRequest {
                key: start.clone(),
                range_end: end.clone(),
                limit: SCAN_PAGE,
                revision: self.revision as i64,
                ..Default::default()
            };
            let response = self.inner.runtime.block_on(self.inner.client.range(request))?;
            let Some(last) = response.kvs.last() else { return Ok(()) };
            start = [last.key.clone(), vec![0]].concat();
            for kv in &response.kvs {
                if !visit(&kv.key[table_prefix.len()..], &kv.value)? {
                    return Ok(());
                }
            }
            if !response.more {
                return Ok(());
            }
        }
    }
}

/// One answered attempt of a mutation whose transaction outcome was lost.
struct Unsettled<R> {
    /// The user's revision it was planned on (its log key).
    previous: u64,
    nonce: u64,
    answer: R,
}

impl EtcdStore {
    /// The etcd client and the key prefix, for the webhook records and the
    /// per-endpoint sender leases (`store::webhooks`), which live beside
    /// the groups under the same prefix but outside the change feed.
    pub(in crate::store) fn raw(&self) -> (Arc<Client>, Vec<u8>) {
        (self.inner.client.clone(), self.inner.keys.prefix.clone())
    }

    /// The checks of [`open`](Self::open) that need no cluster: the
    /// endpoints are there and well formed.
    pub fn check_settings(settings: &StorageSettings) -> Result<(), Error> {
        client::endpoints(settings).map(|_| ())
    }

    /// Connects to the cluster (fails if no member answers within
    /// `--etcd-retry-for`), then starts the change feed and the heartbeat
    /// from the cluster's current revision.
    pub async fn open(settings: &StorageSettings, limits: Limits, hub: Hub) -> Result<Self, Error> {
        let client = Arc::new(Client::new(settings)?);
        let keys = Keys { prefix: settings.etcd_prefix.as_bytes().to_vec() };
        let start = client
            .range(RangeRequest { count_only: true, ..range_of(&keys.feed()) })
            .await
            .map_err(|e| Error::InvalidSetting {
                setting: crate::config::Setting::EtcdEndpoints,
                message: format!("cannot reach the etcd cluster at {}: {e}", settings.etcd_endpoints.join(",")),
            })?
            .header
            .map_or(0, |h| h.revision as u64);
        let (durable, _) = watch::channel(Durable::at(start));
        hub.advance(start);
        let inner = Arc::new(Inner {
            reads: reads::Reads::start(client.clone()),
            cache: cache::RecordCache::new(settings.etcd_read_cache_users),
            client,
            keys,
            limits,
            hub,
            durable,
            runtime: Handle::current(),
            settings: settings.clone(),
            turns: (0..TURN_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        });
        let stop = feed::start(&inner, start);
        Ok(Self { inner, _stop: Arc::new(stop) })
    }

    pub fn revision_watch(&self) -> RevisionWatch {
        RevisionWatch(self.inner.durable.subscribe())
    }

    /// The revision up to which this replica's change feed has handed
    /// every batch to the hub.
    pub fn current_revision(&self) -> u64 {
        self.inner.durable.borrow().revision
    }

    /// The cluster's revision now (a linearizable read).
    pub async fn latest_revision(&self) -> Result<u64, Error> {
        let response = self
            .inner
            .client
            .range(RangeRequest { count_only: true, ..range_of(&self.inner.keys.heartbeats()) })
            .await?;
        Ok(response.header.map_or(0, |h| h.revision as u64).max(self.current_revision()))
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Reads the user's record now: the record and the cluster revision of
    /// the read.
    /// Fails with REVISION_IN_FUTURE when `min_revision` is beyond the
    /// cluster's revision of the read. The record is kept for later reads
    /// with `min_revision`.
    async fn read_user(&self, user: &UserId, min_revision: Option<u64>) -> Result<(UserRecord, u64), Error> {
        let ticket = self.inner.cache.start(user);
        let read = self.inner.reads.get(self.inner.keys.user(user)).await;
        let read = read.and_then(|(kv, revision)| Ok((user_record(kv.as_ref())?, revision)));
        if let Some(ticket) = ticket {
            self.inner.cache.finish(ticket, read.as_ref().ok().map(|(record, revision)| (record, *revision)));
        }
        let (record, revision) = read?;
        match min_revision {
            Some(min) if min > revision => Err(Error::MinRevisionInFuture { min, current: revision }),
            _ => Ok((record, revision)),
        }
    }

    /// The user's record as this replica's memory has it, when that is
    /// current as of `min_revision` or later (see [`cache`]).
    fn cached_user(&self, user: &UserId, min_revision: u64) -> Option<Arc<UserRecord>> {
        let feed = *self.inner.durable.borrow();
        if feed.failing || feed.revision < min_revision {
            return None;
        }
        let record = self.inner.cache.get(user);
        crate::metrics::etcd_read_cache(record.is_some());
        record
    }

    /// Runs blocking work that reads etcd through `block_on`.
    async fn blocking<A: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<A, Error> + Send + 'static,
    ) -> Result<A, Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| Error::Internal(format!("etcd task: {e}")))?
    }

    pub(in crate::store) async fn mutate<R: Send + 'static>(
        &self,
        user: &UserId,
        rule: impl Rule<R>,
    ) -> Result<(R, u64), Error> {
        if self.inner.durable.borrow().failing {
            return Err(Error::Storage(
                "this replica has lost its connection to etcd; mutations are refused until it is back".into(),
            ));
        }
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            user.hash(&mut hasher);
            hasher.finish() as usize % TURN_STRIPES
        };
        let turn = self.inner.turns[stripe].lock().await;
        let user = user.clone();
        let (answer, revision) = self.blocking(move |inner| mutate_blocking(inner, &user, &rule)).await?;
        drop(turn);
        // Answered without waiting for this replica's change feed to bring
        // the batch back: a stream opened after the answer starts at the
        // cluster's revision (`watch::open`), a read with `min_revision`
        // asks etcd while the feed is behind, and open streams get the batch
        // from the feed moments later, in order.
        Ok((answer, revision))
    }

    pub async fn group_list(&self, user: &UserId, min_revision: Option<u64>) -> Result<GroupList, Error> {
        if let Some(record) = min_revision.and_then(|min| self.cached_user(user, min)) {
            return Ok(super::query::group_list(&record));
        }
        let (record, _) = self.read_user(user, min_revision).await?;
        Ok(super::query::group_list(&record))
    }

    pub async fn list_conversations(
        &self,
        user: &UserId,
        filter: ConversationFilter,
        page_size: usize,
        after: Option<ListPosition>,
        min_revision: Option<u64>,
    ) -> Result<ConversationPage, Error> {
        let (record, revision) = self.read_user(user, min_revision).await?;
        let user = user.clone();
        self.blocking(move |inner| {
            let state = EtcdRead { inner, revision };
            super::query::list_page(&state, &user, &record, &filter, page_size, after.as_ref())
        })
        .await
    }

    pub async fn unread_count(
        &self,
        user: &UserId,
        filter: ConversationFilter,
        min_revision: Option<u64>,
    ) -> Result<(u64, u64), Error> {
        let (record, revision) = self.read_user(user, min_revision).await?;
        let user = user.clone();
        self.blocking(move |inner| super::query::unread_count(&EtcdRead { inner, revision }, &user, &record, &filter))
            .await
    }

    pub async fn floor(&self, scope: Scope) -> Result<u64, Error> {
        let response =
            self.inner.client.range(RangeRequest { key: self.inner.keys.floor(&scope), ..Default::default() }).await?;
        decode_u64(response.kvs.first())
    }

    pub async fn read_log(
        &self,
        scope: Scope,
        from: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<EventBatch>, Error> {
        read_log(&self.inner, scope, from, through, limit).await
    }

    /// The user's groups and members as of one cluster revision.
    pub async fn snapshot(&self, user: &UserId) -> Result<Snapshot, Error> {
        let (record, revision) = self.read_user(user, None).await?;
        let user = user.clone();
        self.blocking(move |inner| super::query::snapshot(&EtcdRead { inner, revision }, &user, &record, revision))
            .await
    }

    /// One trimming pass over the event log (every replica runs them; the
    /// floors' compare makes concurrent passes safe).
    pub async fn compact(&self, retain_for_ms: i64, retain_events_per_user: u64) -> Result<Compaction, Error> {
        compact(&self.inner, retain_for_ms, retain_events_per_user).await
    }
}

/// Plans and commits one mutation (see the module docs), on a blocking
/// thread.
fn mutate_blocking<R>(inner: &Inner, user: &UserId, rule: &impl Rule<R>) -> Result<(R, u64), Error> {
    let deadline = Instant::now() + inner.client.retry_for;
    let user_key = inner.keys.user(user);
    let mut unsettled: Vec<Unsettled<R>> = Vec::new();
    let mut conflicts = 0u32;
    let lost = |unsettled: &[Unsettled<R>], detail: String| {
        if unsettled.is_empty() {
            Error::Storage(detail)
        } else {
            Error::StorageOutcomeUnknown(detail)
        }
    };
    loop {
        let read =
            inner.runtime.block_on(inner.client.range(RangeRequest { key: user_key.clone(), ..Default::default() }));
        let response = match read {
            Ok(response) => response,
            Err(e) => return Err(lost(&unsettled, e.to_string())),
        };
        let at = response.header.as_ref().map_or(0, |h| h.revision as u64);
        let record = user_record(response.kvs.first())?;
        let previous = record.revision;

        // Did an attempt whose answer was lost commit after all? Its batch
        // is the one planned on its `previous`, if it carries its nonce.
        if !unsettled.is_empty() {
            let mut settled = None;
            for (i, attempt) in unsettled.iter().enumerate() {
                let key = inner.keys.log_entry(user, attempt.previous);
                let found = inner.runtime.block_on(inner.client.range(RangeRequest { key, ..Default::default() }));
                let found = match found {
                    Ok(found) => found,
                    Err(e) => return Err(lost(&unsettled, e.to_string())),
                };
                if let Some(kv) = found.kvs.first() {
                    if decode::<BatchRecord>(&kv.value, "event batch")?.nonce == attempt.nonce {
                        settled = Some((i, kv.create_revision as u64));
                        break;
                    }
                }
            }
            if let Some((i, revision)) = settled {
                return Ok((unsettled.swap_remove(i).answer, revision));
            }
            // An attempt planned on an older revision can no longer commit:
            // the user's record has moved on, and its compare fails.
            unsettled.retain(|attempt| attempt.previous == previous);
        }

        let state = EtcdRead { inner, revision: at };
        let mut plan = Plan::new(&state, user, record, inner.limits.max_conversations_per_group);
        let answer = rule(&mut plan, &inner.limits)?;
        let Some(planned) = plan.finish() else {
            if unsettled.is_empty() {
                return Ok((answer, previous));
            }
            // Unreachable in practice (the same rule on the same state plans
            // the same change), but a lost attempt may still commit.
            return Err(Error::StorageOutcomeUnknown("a lost attempt may still commit".into()));
        };
        let nonce = rand::random::<u64>() | 1;
        let request = commit_request(inner, user, previous, nonce, planned);
        let operations = request.success.len();
        match inner.runtime.block_on(inner.client.txn_once(request)) {
            Ok(response) if response.succeeded => {
                return Ok((answer, response.header.map_or(0, |h| h.revision as u64)));
            }
            // Another replica changed the user since the read: plan again,
            // after a short random pause so that racing replicas spread out.
            Ok(_) => {
                conflicts += 1;
                let ceiling = 1u64 << conflicts.min(6);
                std::thread::sleep(std::time::Duration::from_millis(rand::random::<u64>() % ceiling));
            }
            Err(TxnFailed::Refused(detail)) if unsettled.is_empty() => {
                return Err(Error::Internal(format!(
                    "{detail} ({operations} operations; etcd must run with --max-txn-ops and --max-request-bytes \
                     large enough for the largest mutation: docs/cluster.md, etcd settings)"
                )));
            }
            Err(TxnFailed::Refused(detail)) => return Err(Error::StorageOutcomeUnknown(detail)),
            Err(TxnFailed::Unknown(detail)) => {
                tracing::warn!(user = %user, error = %detail, "etcd transaction outcome unknown; settling it");
                unsettled.push(Unsettled { previous, nonce, answer });
            }
        }
        if Instant::now() >= deadline {
            return Err(lost(
                &unsettled,
                format!(
                    "etcd: the mutation did not commit within the retry time of {:?}: {conflicts} times another \
                     replica changed the user first",
                    inner.client.retry_for
                ),
            ));
        }
    }
}

/// The transaction that commits `planned`: every write, the user's record
/// and the event batch, if the user's record is still at `previous`.
fn commit_request(inner: &Inner, user: &UserId, previous: u64, nonce: u64, planned: Planned) -> TxnRequest {
    // The revision is not known before the commit: etcd readers take it
    // from the keys' revisions, so 0 is stored.
    let (writes, user_record, batch) = planned.at(0, now_ms());
    let mut stored = BatchRecord::from_batch(&batch);
    stored.nonce = nonce;
    let mut success = Vec::with_capacity(writes.len() + 2);
    for (table, key, value) in writes.iter() {
        let key = inner.keys.table(table, key);
        success.push(match value {
            Some(value) => put(key, value.clone()),
            None => delete(key, Vec::new()),
        });
    }
    success.push(put(inner.keys.user(user), user_record));
    success.push(put(inner.keys.log_entry(user, previous), stored.encode_to_vec()));
    TxnRequest { compare: vec![unchanged_since(inner.keys.user(user), previous)], success, failure: Vec::new() }
}

async fn read_log(
    inner: &Inner,
    scope: Scope,
    from: u64,
    through: u64,
    limit: usize,
) -> Result<Vec<EventBatch>, Error> {
    let mut batches = Vec::new();
    if from > through {
        return Ok(batches);
    }
    let prefix = match &scope {
        Scope::User(user) => inner.keys.user_log(user),
        Scope::AllUsers => inner.keys.log(),
    };
    // etcd filters by create revision after reading the whole range, then
    // sorts and cuts: a user's log is small (--retain-events-per-user); the
    // all-users catch-up reads the retained log of every user, which is
    // why it is only a fallback (the change feed is the normal path).
    let request = RangeRequest {
        limit: limit as i64,
        min_create_revision: from as i64,
        max_create_revision: through as i64,
        sort_order: range_request::SortOrder::Ascend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..range_of(&prefix)
    };
    let response = inner.client.range(request).await?;
    for kv in &response.kvs {
        batches.push(batch_of(kv)?);
    }
    let floor_response =
        inner.client.range(RangeRequest { key: inner.keys.floor(&scope), ..Default::default() }).await?;
    super::check_floor(decode_u64(floor_response.kvs.first())?, from, inner.durable.borrow().revision)?;
    Ok(batches)
}

/// Deletions per trimming transaction (one range delete and one floor per
/// user): well inside etcd's default of 128 operations per transaction.
const TRIM_USERS_PER_TXN: usize = 50;

async fn compact(inner: &Inner, retain_for_ms: i64, retain_events_per_user: u64) -> Result<Compaction, Error> {
    let cutoff = now_ms().saturating_sub(retain_for_ms);
    let durable = inner.durable.borrow().revision;
    // The whole log, in key order: user by user, each in revision order.
    let mut entries: Vec<KeyValue> = Vec::new();
    let prefix = inner.keys.log();
    let end = prefix_end(&prefix);
    let mut start = prefix.clone();
    loop {
        let request =
            RangeRequest { key: start.clone(), range_end: end.clone(), limit: SCAN_PAGE * 16, ..Default::default() };
        let response = inner.client.range(request).await?;
        let more = response.more;
        if let Some(last) = response.kvs.last() {
            start = [last.key.clone(), vec![0]].concat();
        }
        entries.extend(response.kvs);
        if !more {
            break;
        }
    }
    // Per user: the entries to trim, a run at the start of its log.
    struct Trim {
        user: UserId,
        first_key: Vec<u8>,
        keep_key: Vec<u8>,
        floor: u64,
        count: u64,
    }
    let mut trims: Vec<Trim> = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let record: BatchRecord = decode(&entries[i].value, "event batch")?;
        let user = UserId::parse(&record.user).map_err(|e| super::encoding::corrupt(&format!("event user {e}")))?;
        let user_prefix = inner.keys.user_log(&user);
        let mut j = i;
        while j < entries.len() && entries[j].key.starts_with(&user_prefix) {
            j += 1;
        }
        let user_entries = &entries[i..j];
        let keep_newest = (retain_events_per_user as usize).min(user_entries.len());
        let candidates = &user_entries[..user_entries.len() - keep_newest];
        let mut n = 0;
        for kv in candidates {
            let record: BatchRecord = decode(&kv.value, "event batch")?;
            if record.time_ms >= cutoff || kv.create_revision as u64 > durable {
                break;
            }
            n += 1;
        }
        if n > 0 {
            trims.push(Trim {
                user,
                first_key: user_entries[0].key.clone(),
                // Up to the last trimmed entry, not to the end of the
                // user's log when every scanned entry goes: a batch the
                // user wrote after the scan would be deleted with them,
                // under a floor that does not cover it (a watcher or
                // webhook would miss it without being told).
                keep_key: user_entries
                    .get(n)
                    .map_or_else(|| [user_entries[n - 1].key.clone(), vec![0]].concat(), |kv| kv.key.clone()),
                floor: user_entries[n - 1].create_revision as u64,
                count: n as u64,
            });
        }
        i = j;
    }
    if trims.is_empty() {
        return Ok(Compaction::default());
    }
    let mut trimmed = 0;
    for chunk in trims.chunks(TRIM_USERS_PER_TXN) {
        // Floors and deletions in one transaction, so a reader that finds an
        // event gone also finds the floor that explains it; the compare on
        // the global floor keeps a concurrent pass of another replica from
        // lowering it.
        let global_key = inner.keys.floor(&Scope::AllUsers);
        let global = inner.client.range(RangeRequest { key: global_key.clone(), ..Default::default() }).await?;
        let global_kv = global.kvs.first();
        let global_floor = decode_u64(global_kv)?;
        let global_mod = global_kv.map_or(0, |kv| kv.mod_revision as u64);
        let mut success = Vec::new();
        let mut new_global = global_floor;
        for trim in chunk {
            success.push(delete(trim.first_key.clone(), trim.keep_key.clone()));
            success.push(put(inner.keys.floor(&Scope::User(trim.user.clone())), trim.floor.to_be_bytes().to_vec()));
            new_global = new_global.max(trim.floor);
        }
        success.push(put(global_key.clone(), new_global.to_be_bytes().to_vec()));
        let request = TxnRequest { compare: vec![unchanged_since(global_key, global_mod)], success, failure: vec![] };
        if inner.client.txn_idempotent(request).await?.succeeded {
            trimmed += chunk.iter().map(|t| t.count).sum::<u64>();
        }
    }
    Ok(Compaction { trimmed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_cover_exactly_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn a_users_log_keys_sort_by_revision_and_do_not_nest() {
        let keys = Keys { prefix: b"/p/".to_vec() };
        let alice = UserId::parse("alice").unwrap();
        let alicia = UserId::parse("alicia").unwrap();
        assert!(keys.log_entry(&alice, 9) < keys.log_entry(&alice, 300));
        assert!(!keys.log_entry(&alicia, 1).starts_with(&keys.user_log(&alice)));
        assert!(keys.log_entry(&alice, 1).starts_with(&keys.feed()));
        assert!(keys.heartbeats().starts_with(&keys.feed()));
    }
}
