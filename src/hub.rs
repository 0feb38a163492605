//! Live fan-out of committed event batches to watchers.
//!
//! The store publishes each batch once it is durable, in revision order.
//! Publishing never waits for a watcher: each user has a bounded broadcast
//! ring (`--watch-user-ring`; `all_users` watchers share one,
//! `--watch-all-users-ring`), and a watcher that falls behind its ring
//! learns so (`Lagged`) and catches up from the stored log instead of
//! slowing anyone down; the hub counts those ([`Hub::lagged`]).
//!
//! Each batch travels as a [`Delivery`]: the batch and its encodings, made
//! once by the first watcher that needs each and shared by every other
//! (see `crate::wire`), so a batch sent to N watchers is encoded once per
//! filter shape, not N times.
//!
//! A [`Subscription`] counts against the watcher limits while it lives; when
//! the last watcher of a user goes, so does that user's ring.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prost::bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::config::WatchSettings;
use crate::domain::{EventBatch, Scope, UserId};
use crate::error::Error;

/// A lagging watcher is logged at most once per this long, with how many
/// lagged since the last line: a burst of writes can make thousands lag at
/// once, and one line each would bury the log (the metric counts them all).
pub const LAG_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A published batch with the encodings watchers made of it.
pub struct Delivery {
    pub batch: Arc<EventBatch>,
    /// The whole batch as a watch message.
    whole: OnceLock<Bytes>,
    /// Parts of it (watchers with filters): the indexes of the events kept,
    /// and their message. Few watchers filter, and few shapes per batch.
    parts: Mutex<Vec<(Box<[u32]>, Bytes)>>,
}

impl Delivery {
    fn new(batch: Arc<EventBatch>) -> Self {
        Self { batch, whole: OnceLock::new(), parts: Mutex::new(Vec::new()) }
    }

    /// The whole batch's message: made by `encode` the first time, shared
    /// afterwards.
    pub fn whole(&self, encode: impl FnOnce(&EventBatch) -> Bytes) -> Bytes {
        self.whole.get_or_init(|| encode(&self.batch)).clone()
    }

    /// The message of the events at `kept` (indexes into `batch.events`, in
    /// order): made by `encode` the first time this selection is asked for.
    pub fn part(&self, kept: &[u32], encode: impl FnOnce(&EventBatch, &[u32]) -> Bytes) -> Bytes {
        let mut parts = self.parts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, bytes)) = parts.iter().find(|(k, _)| **k == *kept) {
            return bytes.clone();
        }
        let bytes = encode(&self.batch, kept);
        parts.push((kept.into(), bytes.clone()));
        bytes
    }
}

struct UserChannel {
    tx: broadcast::Sender<Arc<Delivery>>,
    watchers: usize,
}

struct Inner {
    users: Mutex<HashMap<UserId, UserChannel>>,
    all: broadcast::Sender<Arc<Delivery>>,
    /// The latest bookmark message made, shared by every stream that sends
    /// one at that revision (idle streams all bookmark the same revision).
    bookmark: Mutex<Option<(u64, Bytes)>>,
    /// Highest revision handed to the rings: every batch up to it is in a
    /// ring or already received. Bookmarks are based on it.
    published: AtomicU64,
    watchers: AtomicUsize,
    max_watchers: usize,
    max_watchers_per_user: usize,
    /// Capacity of each user's ring (`--watch-user-ring`).
    user_ring: usize,
    /// Watchers that lagged, for the rate-limited warning.
    lagged: Mutex<LagWarnings>,
    closing: watch::Sender<bool>,
    /// Bumped when the server lost its storage (the etcd backend's change
    /// feed): every open stream ends with its resume revision.
    interruptions: watch::Sender<u64>,
}

/// A cheap-clone handle on the fan-out.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("watchers", &self.watchers()).finish()
    }
}

impl Hub {
    /// A hub with the watcher limits and ring sizes of `settings`.
    pub fn new(settings: &WatchSettings) -> Self {
        let (all, _) = broadcast::channel(settings.watch_all_users_ring);
        let (closing, _) = watch::channel(false);
        let (interruptions, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                users: Mutex::new(HashMap::new()),
                all,
                bookmark: Mutex::new(None),
                published: AtomicU64::new(0),
                watchers: AtomicUsize::new(0),
                max_watchers: settings.max_watchers,
                max_watchers_per_user: settings.max_watchers_per_user,
                user_ring: settings.watch_user_ring,
                lagged: Mutex::new(LagWarnings::default()),
                closing,
                interruptions,
            }),
        }
    }

    /// Hands a durable batch to the live watchers of its user and of all
    /// users; never blocks.
    pub fn publish(&self, batch: Arc<EventBatch>) {
        let revision = batch.revision;
        let delivery = Arc::new(Delivery::new(batch));
        if let Ok(users) = self.inner.users.lock() {
            if let Some(channel) = users.get(&delivery.batch.user) {
                // A send fails only when nobody listens: nothing to do.
                let _ = channel.tx.send(delivery.clone());
            }
        }
        let _ = self.inner.all.send(delivery);
        self.inner.published.store(revision, Ordering::Release);
        crate::metrics::published(revision);
    }

    /// Every batch up to `revision` has been published (a change feed that
    /// saw revisions with no batch of ours moves bookmarks on with this).
    pub fn advance(&self, revision: u64) {
        self.inner.published.fetch_max(revision, Ordering::AcqRel);
    }

    /// Ends every open stream with its resume revision: the server can no
    /// longer promise them every batch.
    pub fn interrupt(&self) {
        self.inner.interruptions.send_modify(|n| *n += 1);
    }

    /// Changes when [`interrupt`](Self::interrupt) is called.
    pub fn interruptions(&self) -> watch::Receiver<u64> {
        self.inner.interruptions.subscribe()
    }

    /// The highest revision published so far.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Acquire)
    }

    /// Starts the live feed before history is read (so nothing falls between
    /// the two). Fails with TOO_MANY_WATCHERS beyond the limits.
    pub fn subscribe(&self, scope: Scope) -> Result<Subscription, Error> {
        let mut users = self.inner.users.lock().map_err(|_| Error::Internal("hub lock poisoned".into()))?;
        if self.inner.watchers.load(Ordering::Acquire) >= self.inner.max_watchers {
            return Err(Error::TooManyWatchers {
                message: format!("the server has {} open watch streams (max_watchers)", self.inner.max_watchers),
            });
        }
        let rx = match &scope {
            Scope::AllUsers => self.inner.all.subscribe(),
            Scope::User(user) => {
                if users.get(user).is_some_and(|c| c.watchers >= self.inner.max_watchers_per_user) {
                    return Err(Error::TooManyWatchers {
                        message: format!(
                            "user {user} has {} open watch streams (max_watchers_per_user)",
                            self.inner.max_watchers_per_user
                        ),
                    });
                }
                let channel = users
                    .entry(user.clone())
                    .or_insert_with(|| UserChannel { tx: broadcast::channel(self.inner.user_ring).0, watchers: 0 });
                channel.watchers += 1;
                channel.tx.subscribe()
            }
        };
        let open = self.inner.watchers.fetch_add(1, Ordering::AcqRel) + 1;
        crate::metrics::watchers(open);
        Ok(Subscription { rx, scope, hub: self.inner.clone() })
    }

    /// The bookmark message at `revision`: made by `encode` unless it is
    /// the one made last.
    pub fn bookmark(&self, revision: u64, encode: impl FnOnce(u64) -> Bytes) -> Bytes {
        let mut last = self.inner.bookmark.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*last {
            Some((at, bytes)) if *at == revision => bytes.clone(),
            _ => {
                let bytes = encode(revision);
                *last = Some((revision, bytes.clone()));
                bytes
            }
        }
    }

    /// A watcher fell behind its ring by `missed` batches (and reads them
    /// from the log): counted in `convgroups_watch_lagged_total`, and logged
    /// at most once per [`LAG_WARNING_INTERVAL`].
    pub fn lagged(&self, missed: u64) {
        crate::metrics::watch_lagged();
        let mut warnings = self.inner.lagged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(lagged) = warnings.record(Instant::now()) {
            tracing::warn!(
                lagged,
                missed,
                "watchers fell behind their live ring (--watch-user-ring, --watch-all-users-ring) and read from \
                 the event log instead; counted since the last such line"
            );
        }
    }

    /// Open watch streams right now.
    pub fn watchers(&self) -> usize {
        self.inner.watchers.load(Ordering::Acquire)
    }

    /// Users with a live ring right now (one per user with watchers).
    pub fn user_channels(&self) -> usize {
        self.inner.users.lock().map(|u| u.len()).unwrap_or(0)
    }

    /// Tells every stream to end (server shutdown).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`close`](Self::close) has been called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }
}

/// Counts lagging watchers between warnings.
#[derive(Debug, Default)]
struct LagWarnings {
    /// When the last warning was logged.
    last: Option<Instant>,
    /// Lagged watchers since then (not yet logged).
    since: u64,
}

impl LagWarnings {
    /// Records one lagging watcher at `now`; gives the count to log when a
    /// warning is due (the first ever, or [`LAG_WARNING_INTERVAL`] after the
    /// last).
    fn record(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|last| now.duration_since(last) < LAG_WARNING_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// A live feed; frees its place (and its user's ring, if last) on drop.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<Delivery>>,
    scope: Scope,
    hub: Arc<Inner>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let open = self.hub.watchers.fetch_sub(1, Ordering::AcqRel) - 1;
        crate::metrics::watchers(open);
        if let Scope::User(user) = &self.scope {
            if let Ok(mut users) = self.hub.users.lock() {
                if let Some(channel) = users.get_mut(user) {
                    channel.watchers -= 1;
                    if channel.watchers == 0 {
                        users.remove(user);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(revision: u64, user: &str) -> Arc<EventBatch> {
        Arc::new(EventBatch {
            revision,
            user: UserId::parse(user).unwrap(),
            time_ms: 0,
            group_names: vec![],
            group_ids: vec![],
            events: vec![],
        })
    }

    #[test]
    fn watchers_see_their_user_only_and_rings_go_with_the_last_watcher() {
        let hub = Hub::new(&WatchSettings::default());
        let mut alice = hub.subscribe(Scope::User(UserId::parse("alice").unwrap())).unwrap();
        let mut all = hub.subscribe(Scope::AllUsers).unwrap();
        hub.publish(batch(1, "bob"));
        hub.publish(batch(2, "alice"));
        assert_eq!(alice.rx.try_recv().unwrap().batch.revision, 2);
        assert_eq!(all.rx.try_recv().unwrap().batch.revision, 1);
        assert_eq!(all.rx.try_recv().unwrap().batch.revision, 2);
        assert_eq!((hub.watchers(), hub.user_channels()), (2, 1));
        drop(alice);
        drop(all);
        assert_eq!((hub.watchers(), hub.user_channels()), (0, 0));
    }

    #[test]
    fn limits_refuse_extra_watchers() {
        let hub = Hub::new(&WatchSettings { max_watchers: 3, max_watchers_per_user: 2, ..WatchSettings::default() });
        let user = || Scope::User(UserId::parse("u").unwrap());
        let _a = hub.subscribe(user()).unwrap();
        let _b = hub.subscribe(user()).unwrap();
        assert!(matches!(hub.subscribe(user()), Err(Error::TooManyWatchers { .. })));
        let _c = hub.subscribe(Scope::AllUsers).unwrap();
        assert!(matches!(hub.subscribe(Scope::AllUsers), Err(Error::TooManyWatchers { .. })));
    }

    /// Every watcher of a batch gets the one encoding the first made; a
    /// selection of events is encoded once per selection.
    #[test]
    fn a_delivery_is_encoded_once_per_shape() {
        let hub = Hub::new(&WatchSettings::default());
        let mut a = hub.subscribe(Scope::AllUsers).unwrap();
        let mut b = hub.subscribe(Scope::AllUsers).unwrap();
        hub.publish(batch(1, "u"));
        let (a, b) = (a.rx.try_recv().unwrap(), b.rx.try_recv().unwrap());
        let encodings = AtomicUsize::new(0);
        let encode = |_: &EventBatch| {
            encodings.fetch_add(1, Ordering::Relaxed);
            Bytes::from_static(b"whole")
        };
        assert_eq!(a.whole(encode), b.whole(encode));
        let part = |_: &EventBatch, kept: &[u32]| {
            encodings.fetch_add(1, Ordering::Relaxed);
            Bytes::from(format!("{kept:?}"))
        };
        assert_eq!(a.part(&[0, 2], part), b.part(&[0, 2], part));
        assert_eq!(b.part(&[1], part), Bytes::from_static(b"[1]"));
        assert_eq!(encodings.load(Ordering::Relaxed), 3);
        let bookmarks = AtomicUsize::new(0);
        let bookmark = |revision: u64| {
            bookmarks.fetch_add(1, Ordering::Relaxed);
            Bytes::from(revision.to_string())
        };
        assert_eq!(hub.bookmark(5, bookmark), hub.bookmark(5, bookmark));
        assert_eq!(hub.bookmark(6, bookmark), Bytes::from_static(b"6"));
        assert_eq!(bookmarks.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn publishing_never_waits_for_a_slow_watcher() {
        let hub = Hub::new(&WatchSettings::default());
        let mut slow = hub.subscribe(Scope::AllUsers).unwrap();
        for revision in 1..=(crate::config::DEFAULT_WATCH_ALL_USERS_RING as u64 + 10) {
            hub.publish(batch(revision, "u"));
        }
        assert!(matches!(slow.rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(10))));
    }

    /// The rings are the sizes the settings say.
    #[test]
    fn rings_are_the_configured_sizes() {
        let settings = WatchSettings { watch_user_ring: 2, watch_all_users_ring: 4, ..WatchSettings::default() };
        let hub = Hub::new(&settings);
        let mut alice = hub.subscribe(Scope::User(UserId::parse("alice").unwrap())).unwrap();
        let mut all = hub.subscribe(Scope::AllUsers).unwrap();
        for revision in 1..=5 {
            hub.publish(batch(revision, "alice"));
        }
        assert!(matches!(alice.rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(3))));
        assert!(matches!(all.rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(1))));
    }

    /// The first lagging watcher is logged at once; the next ones only once
    /// the interval has passed, all counted in that one line.
    #[test]
    fn lag_warnings_are_rate_limited() {
        let mut warnings = LagWarnings::default();
        let start = Instant::now();
        assert_eq!(warnings.record(start), Some(1));
        for i in 1..=4 {
            assert_eq!(warnings.record(start + Duration::from_secs(i)), None);
        }
        assert_eq!(warnings.record(start + LAG_WARNING_INTERVAL), Some(5));
        assert_eq!(warnings.record(start + LAG_WARNING_INTERVAL + Duration::from_secs(1)), None);
        assert_eq!(warnings.record(start + 3 * LAG_WARNING_INTERVAL), Some(2));
    }
}
