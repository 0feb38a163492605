//! Live fan-out of committed event batches to watchers.
//!
//! The store publishes each batch once it is durable, in revision order.
//! Publishing never waits for a watcher: each user has a bounded broadcast
//! ring (and `all_users` watchers share one), and a watcher that falls
//! behind its ring learns so (`Lagged`) and catches up from the stored log
//! instead of slowing anyone down.
//!
//! A [`Subscription`] counts against the watcher limits while it lives; when
//! the last watcher of a user goes, so does that user's ring.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use crate::domain::{EventBatch, Scope, UserId};
use crate::error::Error;

/// Batches a per-user ring holds before a slow watcher is told it lagged.
/// A user's mutations are rarely bursty; the log covers the rest.
pub const DEFAULT_USER_RING: usize = 256;
/// Batches the all-users ring holds (every user's changes pass through it).
pub const DEFAULT_ALL_USERS_RING: usize = 4096;

struct UserChannel {
    tx: broadcast::Sender<Arc<EventBatch>>,
    watchers: usize,
}

struct Inner {
    users: Mutex<HashMap<UserId, UserChannel>>,
    all: broadcast::Sender<Arc<EventBatch>>,
    /// Highest revision handed to the rings: every batch up to it is in a
    /// ring or already received. Bookmarks are based on it.
    published: AtomicU64,
    watchers: AtomicUsize,
    max_watchers: usize,
    max_watchers_per_user: usize,
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
    pub fn new(max_watchers: usize, max_watchers_per_user: usize) -> Self {
        let (all, _) = broadcast::channel(DEFAULT_ALL_USERS_RING);
        let (closing, _) = watch::channel(false);
        let (interruptions, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                users: Mutex::new(HashMap::new()),
                all,
                published: AtomicU64::new(0),
                watchers: AtomicUsize::new(0),
                max_watchers,
                max_watchers_per_user,
                closing,
                interruptions,
            }),
        }
    }

    /// Hands a durable batch to the live watchers of its user and of all
    /// users; never blocks.
    pub fn publish(&self, batch: Arc<EventBatch>) {
        let revision = batch.revision;
        if let Ok(users) = self.inner.users.lock() {
            if let Some(channel) = users.get(&batch.user) {
                // A send fails only when nobody listens: nothing to do.
                let _ = channel.tx.send(batch.clone());
            }
        }
        let _ = self.inner.all.send(batch);
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
    pub fn subscribe(&self, feed: Scope) -> Result<Subscription, Error> {
        let mut users = self.inner.users.lock().map_err(|_| Error::Internal("hub lock poisoned".into()))?;
        if self.inner.watchers.load(Ordering::Acquire) >= self.inner.max_watchers {
            return Err(Error::TooManyWatchers {
                message: format!("the server has {} open watch streams (max_watchers)", self.inner.max_watchers),
            });
        }
        let rx = match &feed {
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
                    .or_insert_with(|| UserChannel { tx: broadcast::channel(DEFAULT_USER_RING).0, watchers: 0 });
                channel.watchers += 1;
                channel.tx.subscribe()
            }
        };
        let open = self.inner.watchers.fetch_add(1, Ordering::AcqRel) + 1;
        crate::metrics::watchers(open);
        Ok(Subscription { rx, feed, hub: self.inner.clone() })
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

/// A live feed; frees its place (and its user's ring, if last) on drop.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<EventBatch>>,
    feed: Scope,
    hub: Arc<Inner>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let open = self.hub.watchers.fetch_sub(1, Ordering::AcqRel) - 1;
        crate::metrics::watchers(open);
        if let Scope::User(user) = &self.feed {
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
            events: vec![],
        })
    }

    #[test]
    fn watchers_see_their_user_only_and_rings_go_with_the_last_watcher() {
        let hub = Hub::new(10, 10);
        let mut alice = hub.subscribe(Scope::User(UserId::parse("alice").unwrap())).unwrap();
        let mut all = hub.subscribe(Scope::AllUsers).unwrap();
        hub.publish(batch(1, "bob"));
        hub.publish(batch(2, "alice"));
        assert_eq!(alice.rx.try_recv().unwrap().revision, 2);
        assert_eq!(all.rx.try_recv().unwrap().revision, 1);
        assert_eq!(all.rx.try_recv().unwrap().revision, 2);
        assert_eq!((hub.watchers(), hub.user_channels()), (2, 1));
        drop(alice);
        drop(all);
        assert_eq!((hub.watchers(), hub.user_channels()), (0, 0));
    }

    #[test]
    fn limits_refuse_extra_watchers() {
        let hub = Hub::new(3, 2);
        let user = || Scope::User(UserId::parse("u").unwrap());
        let _a = hub.subscribe(user()).unwrap();
        let _b = hub.subscribe(user()).unwrap();
        assert!(matches!(hub.subscribe(user()), Err(Error::TooManyWatchers { .. })));
        let _c = hub.subscribe(Scope::AllUsers).unwrap();
        assert!(matches!(hub.subscribe(Scope::AllUsers), Err(Error::TooManyWatchers { .. })));
    }

    #[test]
    fn publishing_never_waits_for_a_slow_watcher() {
        let hub = Hub::new(10, 10);
        let mut slow = hub.subscribe(Scope::AllUsers).unwrap();
        for revision in 1..=(DEFAULT_ALL_USERS_RING as u64 + 10) {
            hub.publish(batch(revision, "u"));
        }
        assert!(matches!(slow.rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(10))));
    }
}
