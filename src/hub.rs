//! Live fan-out of committed event batches to watchers.
//!
//! The store publishes each batch once it is durable, in revision order.
//! Publishing never waits for a watcher: batches go into a bounded broadcast
//! ring, and a watcher that falls behind it learns so (`Lagged`) instead of
//! slowing anyone down.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::EventBatch;

/// Batches kept for live watchers before a slow one is told it lagged.
pub const DEFAULT_HUB_CAPACITY: usize = 4096;

/// A cheap-clone handle on the fan-out.
#[derive(Clone, Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<EventBatch>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_HUB_CAPACITY)
    }
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }

    /// Hands a durable batch to every live watcher; never blocks.
    pub fn publish(&self, batch: Arc<EventBatch>) {
        // No receivers is not an error: nobody is watching.
        let _ = self.tx.send(batch);
    }

    /// A live feed of batches published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventBatch>> {
        self.tx.subscribe()
    }
}
