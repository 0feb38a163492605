//! Wiring: storage, fan-out hub, services behind the authenticator, health
//! and reflection; and shutdown in order.

use std::future::Future;

use tokio::net::TcpListener;
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

/// Service names as health reports them.
const GROUP_SERVICE: &str = "convgroups.v1.ConversationGroupService";
const CONVERSATION_SERVICE: &str = "convgroups.v1.ConversationService";

/// Serves on `listener` until `shutdown` resolves, then reports NOT_SERVING,
/// stops accepting, lets in-flight calls finish, and flushes storage.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let secret = Secret::load_or_create(&config)?;
    let hub = Hub::default();
    let store = Store::open(&config.data_dir, config.limits.clone(), hub.clone())?;
    let auth = Authenticator::new(secret);

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in ["", GROUP_SERVICE, CONVERSATION_SERVICE] {
        health.set_service_status(name, ServingStatus::Serving).await;
    }

    // v1 for current clients, v1alpha for grpcurl <= 1.8; both know our
    // protos, the health service and google.rpc error details, so grpcurl
    // can describe every call and print ErrorInfo.
    let descriptor_sets =
        [pb::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET, tonic_types::pb::FILE_DESCRIPTOR_SET];
    let mut v1 = tonic_reflection::server::Builder::configure();
    let mut v1alpha = tonic_reflection::server::Builder::configure();
    for set in descriptor_sets {
        v1 = v1.register_encoded_file_descriptor_set(set);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(set);
    }
    let reflection_v1 = v1.build_v1().map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = v1alpha.build_v1alpha().map_err(|e| Error::Internal(format!("reflection: {e}")))?;

    let groups = ConversationGroupServiceServer::with_interceptor(
        ConversationGroupServiceImpl::new(store.clone()),
        auth.clone(),
    );
    let conversations = ConversationServiceServer::with_interceptor(ConversationServiceImpl::new(store.clone()), auth);

    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener address: {e}")))?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), revision = store.current_revision(), "serving");

    let health_on_shutdown = health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, no new connections, draining calls");
        for name in ["", GROUP_SERVICE, CONVERSATION_SERVICE] {
            health_on_shutdown.set_service_status(name, ServingStatus::NotServing).await;
        }
    };
    let served = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(groups)
        .add_service(conversations)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
        .await;
    // Flush whatever happens to the transport: acknowledged writes are
    // already durable, but this leaves the database clean.
    let flushed = store.flush().await;
    served.map_err(|e| Error::Internal(format!("transport: {e}")))?;
    flushed?;
    tracing::info!("stopped");
    Ok(())
}
