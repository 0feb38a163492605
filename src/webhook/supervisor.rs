//! Starts a sender for every enabled endpoint this server should deliver,
//! and notices endpoints created, re-enabled or left without a sender:
//! at once for changes made through this server, every
//! `--webhook-scan-interval` for the rest.
//!
//! sled: one process, every endpoint. etcd: the endpoints this replica
//! claims with its lease (see [`super::lease`]); the others are some other
//! replica's.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease::ReplicaLease;
use super::records;
use super::sender::Sender;
use crate::config::WebhookSettings;
use crate::store::Store;

/// A cheap-clone handle: the admin API tells it about changes.
#[derive(Clone)]
pub struct Supervisor {
    changes: Arc<watch::Sender<u64>>,
}

impl Supervisor {
    /// Starts supervising; the task ends when `stop` resolves, and takes
    /// the senders with it (an attempt in flight is dropped: its batch is
    /// not acknowledged, so it is sent again after the restart).
    /// `tls`: [`super::http::tls_connector`] of the settings, built before
    /// (it can refuse the start).
    pub fn start(store: Store, settings: WebhookSettings, tls: tokio_rustls::TlsConnector) -> (Self, JoinHandle<()>) {
        let (changes, _) = watch::channel(0u64);
        let changes = Arc::new(changes);
        let task = tokio::spawn(supervise(store, settings, tls, changes.clone()));
        (Self { changes }, task)
    }

    /// Something changed: senders reload their configuration, the
    /// supervisor rescans.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

struct Running {
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn supervise(
    store: Store,
    settings: WebhookSettings,
    tls: tokio_rustls::TlsConnector,
    changes: Arc<watch::Sender<u64>>,
) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut lease: Option<ReplicaLease> = None;
    let mut wake = changes.subscribe();
    let etcd = store.webhook_etcd("").is_some();
    loop {
        running.retain(|_, r| !r.task.is_finished());
        if lease.as_ref().is_some_and(|l| l.lost()) {
            // Our claims went with the lease: their senders stop themselves.
            lease = None;
            running.clear();
        }
        if etcd && lease.is_none() {
            match ReplicaLease::grant(&store, settings.webhook_lease_ttl).await {
                Ok(granted) => lease = granted,
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot get an etcd lease; retrying"),
            }
        }
        match records::list_endpoints(&store).await {
            Ok(endpoints) => {
                for endpoint in endpoints.into_iter().filter(|e| e.enabled) {
                    if running.contains_key(&endpoint.id) {
                        continue;
                    }
                    let claim = match &lease {
                        None if etcd => continue,
                        None => None,
                        Some(lease) => match lease.claim(&store, &endpoint.id).await {
                            Ok(Some(claim)) => Some(claim),
                            Ok(None) => continue,
                            Err(e) => {
                                tracing::warn!(endpoint = %endpoint.id, error = %e, "webhooks: claiming failed");
                                continue;
                            }
                        },
                    };
                    tracing::info!(endpoint = %endpoint.id, "webhook sender started");
                    let sender = Sender {
                        store: store.clone(),
                        settings: settings.clone(),
                        tls: tls.clone(),
                        id: endpoint.id.clone(),
                        changes: changes.subscribe(),
                        claim,
                    };
                    running.insert(endpoint.id, Running { task: tokio::spawn(sender.run()) });
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot list endpoints; retrying"),
        }
        if let Err(e) = remove_orphan_cursors(&store).await {
            tracing::warn!(error = %e, "webhooks: cannot clean up cursors of deleted endpoints");
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = tokio::time::sleep(settings.webhook_scan_interval) => {}
        }
    }
}

/// Removes the cursors of deleted endpoints: a sender in the middle of an
/// attempt when its endpoint was deleted stores its cursor once more before
/// it notices. (A configuration and its first cursor are written together,
/// so a cursor without a configuration is always such a leftover.)
async fn remove_orphan_cursors(store: &Store) -> Result<(), crate::error::Error> {
    let cursors = store.webhook_scan("c/").await?;
    if cursors.is_empty() {
        return Ok(());
    }
    let endpoints: std::collections::HashSet<String> =
        records::list_endpoints(store).await?.into_iter().map(|e| e.id).collect();
    let orphans: Vec<String> =
        cursors.into_iter().map(|(key, _)| key).filter(|key| !endpoints.contains(&key["c/".len()..])).collect();
    if !orphans.is_empty() {
        store.webhook_write(Vec::new(), orphans).await?;
    }
    Ok(())
}
