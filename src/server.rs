//! Wiring: storage, fan-out hub, services behind the authenticator, health
//! and reflection, background compaction; and shutdown in order.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::auth::{Authenticator, Secret};
use crate::config::Config;
use crate::error::Error;
use crate::hub::Hub;
use crate::pb;
use crate::pb::conversation_group_service_server::ConversationGroupServiceServer;
use crate::pb::conversation_service_server::ConversationServiceServer;
use crate::service::{ConversationGroupServiceImpl, ConversationServiceImpl};
use crate::store::Store;

/// Service names as health reports them ("" is the server as a whole).
const HEALTH_NAMES: [&str; 3] = ["", "convgroups.v1.ConversationGroupService", "convgroups.v1.ConversationService"];

/// Serves on `listener` until `shutdown` resolves. Then, in order: health
/// reports NOT_SERVING, every watch stream ends with SHUTTING_DOWN and its
/// resume revision, no new connections are accepted, in-flight calls get up
/// to `shutdown_grace` to finish, and storage is flushed.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let secret = Secret::load_or_create(&config)?;
    let hub = Hub::new(config.watch.max_watchers, config.watch.max_watchers_per_user);
    let store = Store::open(&config.data_dir, config.limits.clone(), hub.clone())?;
    let auth = Authenticator::new(secret);

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in HEALTH_NAMES {
        health.set_service_status(name, ServingStatus::Serving).await;
    }

    // v1 for current clients, v1alpha for grpcurl <= 1.8; both know our
    // protos, the health service, google.rpc error details (so grpcurl can
    // print ErrorInfo) and both reflection services (so `list` shows both).
    let descriptor_sets = [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_types::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut v1 = tonic_reflection::server::Builder::configure();
    let mut v1alpha = tonic_reflection::server::Builder::configure();
    for set in descriptor_sets {
        v1 = v1.register_encoded_file_descriptor_set(set);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(set);
    }
    let reflection_v1 = v1.build_v1().map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = v1alpha.build_v1alpha().map_err(|e| Error::Internal(format!("reflection: {e}")))?;

    let groups = ConversationGroupServiceServer::with_interceptor(
        ConversationGroupServiceImpl::new(store.clone(), hub.clone(), config.watch.bookmark_interval),
        auth.clone(),
    );
    let conversations = ConversationServiceServer::with_interceptor(ConversationServiceImpl::new(store.clone()), auth);

    let compaction = tokio::spawn(compact_periodically(store.clone(), hub.clone(), config.clone()));

    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener address: {e}")))?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), revision = store.current_revision(), "serving");

    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let signal = {
        let (health, hub) = (health.clone(), hub.clone());
        async move {
            shutdown.await;
            tracing::info!(watchers = hub.watchers(), "shutting down");
            for name in HEALTH_NAMES {
                health.set_service_status(name, ServingStatus::NotServing).await;
            }
            // Open streams would otherwise hold graceful shutdown forever.
            hub.close();
            let _ = stopping_tx.send(());
        }
    };
    let server = &config.server;
    let serve = Server::builder()
        .http2_keepalive_interval(Some(server.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(server.http2_keepalive_timeout))
        .max_concurrent_streams(Some(server.http2_max_concurrent_streams))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(groups)
        .add_service(conversations)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
    let grace = server.shutdown_grace;
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = serve => served.map_err(|e| Error::Internal(format!("transport: {e}"))),
        _ = deadline => {
            tracing::warn!(grace = ?grace, "calls still running after the shutdown grace period; stopping anyway");
            Ok(())
        }
    };
    compaction.abort();
    // Acknowledged writes are already durable; this leaves the files clean.
    let flushed = store.flush().await;
    served?;
    flushed?;
    tracing::info!(revision = store.current_revision(), "stopped");
    Ok(())
}

/// Trims the event log every `compact_interval` until shutdown.
async fn compact_periodically(store: Store, hub: Hub, config: Config) {
    let watch = &config.watch;
    let retain_for_ms = i64::try_from(watch.retain_for.as_millis()).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(watch.compact_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let closed = hub.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = &mut closed => return,
            _ = ticks.tick() => {}
        }
        match store.compact(retain_for_ms, watch.retain_events_per_user).await {
            Ok(done) if done.trimmed > 0 => tracing::info!(trimmed = done.trimmed, "event log compacted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event log compaction failed; will retry"),
        }
    }
}
