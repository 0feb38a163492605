//! Wiring: storage, fan-out hub, services behind the authenticator, health
//! and reflection, background compaction; and shutdown in order.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::Status;
use tower::util::MapRequestLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::auth::Authenticator;
use crate::config::{Config, ServerSettings};
use crate::error::Error;
use crate::hub::Hub;
use crate::pb;
use crate::pb::service::conversation_group_service_server::ConversationGroupServiceServer;
use crate::pb::service::conversation_service_server::ConversationServiceServer;
use crate::pb::webhook_service_server::WebhookServiceServer;
use crate::service::{Calls, ConversationGroupServiceImpl, ConversationServiceImpl, Gate, ReadCaches, RpcMethod};
use crate::store::{RevisionWatch, Store};

/// Service names as health reports them ("" is the server as a whole).
const HEALTH_NAMES: [&str; 3] = ["", "convgroups.v1.ConversationGroupService", "convgroups.v1.ConversationService"];

/// An opened server: storage is open and the secret loaded, nothing is
/// listening yet. Tests open one to keep a [`Stats`] handle, then serve it.
pub struct App {
    config: Config,
    store: Store,
    hub: Hub,
    auth: Authenticator,
}

/// Live figures of a running server, for tests and operators.
#[derive(Clone, Debug)]
pub struct Stats {
    hub: Hub,
    revision: RevisionWatch,
}

impl Stats {
    /// Open watch streams.
    pub fn watchers(&self) -> usize {
        self.hub.watchers()
    }

    /// Users that have a live fan-out ring (one per user with watchers).
    pub fn user_channels(&self) -> usize {
        self.hub.user_channels()
    }

    /// The last durable revision.
    pub fn revision(&self) -> u64 {
        self.revision.current()
    }
}

impl App {
    /// Loads the secret and opens storage (which fails if another server
    /// holds the data directory).
    pub async fn open(config: Config) -> Result<Self, Error> {
        check_settings(&config)?;
        let auth = Authenticator::from_config(&config)?;
        let hub = Hub::new(&config.watch);
        let store = Store::open_configured(&config, hub.clone()).await?;
        Ok(Self { config, store, hub, auth })
    }

    /// The token checker; [`Authenticator::reload_keys`] on it re-reads
    /// `--auth-jwks-file` (what the binary does on SIGHUP).
    pub fn authenticator(&self) -> Authenticator {
        self.auth.clone()
    }

    pub fn stats(&self) -> Stats {
        // Not the store itself: a Stats kept by a test must not keep the
        // database open after the server stops.
        Stats { hub: self.hub.clone(), revision: self.store.revision_watch() }
    }

    /// Serves on `listener` until `shutdown` resolves. Then, in order: health
    /// reports NOT_SERVING, every watch stream ends with SHUTTING_DOWN and its
    /// resume revision, no new connections are accepted, in-flight calls get
    /// up to `shutdown_grace` to finish, and storage is flushed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        self.serve_with_force(listener, shutdown, std::future::pending()).await
    }

    /// [`serve`](Self::serve), where `force` (a second signal) cuts the
    /// drain short; storage is still flushed. The one way a server runs:
    /// the binary calls it with its signals, the tests through `serve`.
    pub async fn serve_with_force(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        force: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let Self { config, store, hub, auth } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        let server = &config.server;
        // Everything that can refuse the start comes before "serving".
        let builder = server_builder(server)?;
        let cors = cors_layer(&server.cors_allow_origin)?;
        let webhook_tls = crate::webhook::http::tls_connector(config.webhooks.webhook_ca_file.as_deref())?;
        if let Some(addr) = server.metrics_listen {
            crate::metrics::install(addr, store.current_revision())?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
        }
        // Webhook senders: durable watchers of the log, one per endpoint
        // (on etcd: per endpoint this replica holds the lease of).
        let (webhook_supervisor, webhook_senders) =
            crate::webhook::Supervisor::start(store.clone(), config.webhooks.clone(), webhook_tls);
        let routes =
            services(reflection()?.add_service(health_service), &config, &store, &hub, &auth, webhook_supervisor);
        let tasks = Tasks::spawn(&config, &store, &hub, &auth, &health, webhook_senders);
        let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener address: {e}")))?;
        // What is running, as `--version` says it; after every check that can
        // refuse the start, so that a refusal stays one line.
        tracing::info!("{}", crate::version::line());
        tracing::info!(
            %addr,
            data_dir = %config.data_dir.display(),
            revision = store.current_revision(),
            tls = server.tls_cert.is_some(),
            "serving"
        );

        let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
        let signal = shutdown_sequence(shutdown, health, hub, tasks.storage_health.abort_handle(), stopping_tx);
        let serve = router(builder, server, cors, routes, listener, signal);
        let served = drain(serve, stopping_rx, server.shutdown_grace, force).await;
        tasks.abort();
        // Acknowledged writes are already durable; this leaves the files clean.
        let flushed = store.flush().await;
        served?;
        flushed?;
        tracing::info!(revision = store.current_revision(), "stopped");
        Ok(())
    }
}

/// Sets every name health reports to `status`.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Reflection: v1 for current clients, v1alpha for grpcurl <= 1.8; both
/// know our protos, the health service, google.rpc error details (so
/// grpcurl can print ErrorInfo) and both reflection services (so `list`
/// shows both).
fn reflection() -> Result<Routes, Error> {
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
    Ok(Routes::default().add_service(reflection_v1).add_service(reflection_v1alpha))
}

/// Our two gRPC services, each behind the authenticating gate, added to
/// `routes`.
fn services(
    routes: Routes,
    config: &Config,
    store: &Store,
    hub: &Hub,
    auth: &Authenticator,
    webhook_supervisor: crate::webhook::Supervisor,
) -> Routes {
    let server = &config.server;
    let calls = Calls::new(server.max_in_flight, server.unary_timeout);
    let gate = Gate::new(auth.clone());
    let groups = InterceptedService::new(
        ConversationGroupServiceServer::new(ConversationGroupServiceImpl::new(
            store.clone(),
            hub.clone(),
            calls.clone(),
            config.watch.bookmark_interval,
            ReadCaches::new(server.group_list_cache_users, server.first_page_cache_users),
        ))
        .max_decoding_message_size(server.max_request_bytes),
        gate.clone(),
    );
    let conversations = InterceptedService::new(
        ConversationServiceServer::new(ConversationServiceImpl::new(store.clone(), calls))
            .max_decoding_message_size(server.max_request_bytes),
        gate.clone(),
    );
    let webhook_admin = std::sync::Arc::new(crate::webhook::admin::Admin::new(
        store.clone(),
        config.webhooks.clone(),
        webhook_supervisor,
    ));
    let webhooks = InterceptedService::new(
        WebhookServiceServer::new(crate::webhook::service::WebhookServiceImpl::new(
            webhook_admin,
            server.unary_timeout,
        ))
        .max_decoding_message_size(server.max_request_bytes),
        gate,
    );
    routes.add_service(groups).add_service(conversations).add_service(webhooks)
}

/// The tasks that run beside the server until it stops.
struct Tasks {
    /// Event-log compaction and the storage-size metric.
    upkeep: JoinHandle<()>,
    /// Re-reads `--auth-jwks-file` every --auth-jwks-reload-interval.
    jwks_reload: Option<JoinHandle<()>>,
    /// Health following storage (see [`follow_storage_health`]).
    storage_health: JoinHandle<()>,
    /// The webhook supervisor and its senders. Aborting drops an attempt
    /// in flight unacknowledged, so its batch is sent again after the
    /// restart.
    webhook_senders: JoinHandle<()>,
}

impl Tasks {
    fn spawn(
        config: &Config,
        store: &Store,
        hub: &Hub,
        auth: &Authenticator,
        health: &HealthReporter,
        webhook_senders: JoinHandle<()>,
    ) -> Self {
        Self {
            webhook_senders,
            upkeep: tokio::spawn(background(store.clone(), hub.clone(), config.clone())),
            jwks_reload: auth.jwks_reload_interval().map(|every| tokio::spawn(reload_jwks(auth.clone(), every))),
            storage_health: tokio::spawn(follow_storage_health(health.clone(), store.revision_watch())),
        }
    }

    fn abort(self) {
        self.upkeep.abort();
        if let Some(jwks_reload) = self.jwks_reload {
            jwks_reload.abort();
        }
        self.storage_health.abort();
        self.webhook_senders.abort();
    }
}

/// Health (and the storage_failing gauge) follow storage: NOT_SERVING
/// while a failed write keeps mutations refused, SERVING again once the
/// store has reopened its database. Runs until aborted, which the shutdown
/// sequence does before it sets NOT_SERVING for good.
async fn follow_storage_health(health: HealthReporter, mut storage: RevisionWatch) {
    loop {
        crate::metrics::storage_failing(false);
        storage.storage_failing(true).await;
        crate::metrics::storage_failing(true);
        set_health(&health, ServingStatus::NotServing).await;
        storage.storage_failing(false).await;
        set_health(&health, ServingStatus::Serving).await;
    }
}

/// What happens when `shutdown` resolves, before the transport stops
/// accepting: health says NOT_SERVING (and its Watch streams end), every
/// watch stream ends with its resume revision, and `stopping` starts the
/// grace period of [`drain`].
async fn shutdown_sequence(
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut health: HealthReporter,
    hub: Hub,
    storage_health: AbortHandle,
    stopping: oneshot::Sender<()>,
) {
    shutdown.await;
    storage_health.abort();
    tracing::info!(watchers = hub.watchers(), "shutting down");
    set_health(&health, ServingStatus::NotServing).await;
    // Health Watch streams end only when their status is
    // removed; they would otherwise hold the drain for the whole
    // grace period. Their last message is NOT_SERVING; Check
    // answers NOT_FOUND from here on.
    for name in HEALTH_NAMES {
        health.clear_service_status(name).await;
    }
    // Open streams would otherwise hold graceful shutdown forever.
    hub.close();
    let _ = stopping.send(());
}

/// The transport with its layers and `routes`, serving on `listener`
/// until `signal` resolves and the calls in flight have finished.
fn router(
    builder: Server,
    server: &ServerSettings,
    cors: Option<CorsLayer>,
    routes: Routes,
    listener: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), tonic::transport::Error>> {
    let max_request_bytes = server.max_request_bytes;
    builder
        .http2_keepalive_interval(Some(server.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(server.http2_keepalive_timeout))
        .max_concurrent_streams(Some(server.http2_max_concurrent_streams))
        // grpc-web over HTTP/1.1 on the same port as gRPC.
        .accept_http1(true)
        .layer(tower::layer::layer_fn(move |inner| DecodeRefusals { inner, max_request_bytes }))
        // The gate's log line names the method of a refused call.
        .layer(MapRequestLayer::new(|mut request: http::Request<tonic::body::Body>| {
            let method = RpcMethod::of_path(request.uri().path());
            request.extensions_mut().insert(method);
            request
        }))
        .layer(tower::util::option_layer(cors))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            // No Nagle: small gRPC frames must not wait for delayed ACKs
            // (40 ms per call otherwise).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        )
}

/// Waits for `serve` to finish draining, at most `grace` after the shutdown
/// sequence has started (`stopping`), and not at all once `force` resolves.
async fn drain(
    serve: impl Future<Output = Result<(), tonic::transport::Error>>,
    stopping: oneshot::Receiver<()>,
    grace: Duration,
    force: impl Future<Output = ()>,
) -> Result<(), Error> {
    let deadline = async move {
        if stopping.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serve => served.map_err(|e| Error::Internal(format!("transport: {e}"))),
        _ = deadline => {
            tracing::warn!(grace = ?grace, "calls still running after the shutdown grace period; stopping anyway");
            Ok(())
        }
        _ = force => {
            tracing::warn!("second signal: stopping now without waiting for calls");
            Ok(())
        }
    }
}

/// What [`check_settings`] found out.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Which tokens are accepted and where the secret comes from (never
    /// the secret itself).
    pub auth: String,
}

/// Every check of the settings that `serve` makes before it serves, short of
/// binding its ports and opening storage: limits that make sense together,
/// the data directory's parent, the auth secret (readable, long enough; one
/// that does not exist yet is not created), the TLS certificate and key
/// (readable, PEM, the key the certificate's), the webhook CA file, CORS
/// origins, etcd endpoints.
/// `serve` runs it first; `convgroups check-config` runs only it.
pub fn check_settings(config: &Config) -> Result<Checked, Error> {
    config.limits.validate()?;
    config.webhooks.validate()?;
    crate::webhook::http::tls_connector(config.webhooks.webhook_ca_file.as_deref())?;
    crate::auth::check_data_dir(&config.data_dir)?;
    let auth = Authenticator::check_settings(config)?;
    server_builder(&config.server)?;
    cors_layer(&config.server.cors_allow_origin)?;
    Store::check_settings(config)?;
    Ok(Checked { auth })
}

/// The transport builder, with TLS when --tls-cert and --tls-key are set
/// (both files read and checked here). Binds nothing.
fn server_builder(server: &ServerSettings) -> Result<Server, Error> {
    let builder = Server::builder();
    let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) else { return Ok(builder) };
    builder.tls_config(tls_config(cert, key)?).map_err(|e| {
        // Both files are parsed here; a complaint about the key
        // (unreadable, or not the certificate's) is --tls-key's.
        let detail = error_chain(&e);
        let (setting, path) =
            if detail.to_ascii_lowercase().contains("key") { ("--tls-key", key) } else { ("--tls-cert", cert) };
        Error::InvalidSetting {
            setting: crate::config::Setting::Flag(setting),
            message: format!("{}: {detail}", path.display()),
        }
    })
}

/// An error with its causes, for errors (like tonic's) whose Display
/// leaves out what went wrong underneath.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Loads the TLS identity; a bad file stops the start with its name.
fn tls_config(cert: &Path, key: &Path) -> Result<ServerTlsConfig, Error> {
    let read = |setting: &'static str, path: &Path| {
        std::fs::read(path).map_err(|e| Error::InvalidSetting {
            setting: crate::config::Setting::Flag(setting),
            message: format!("cannot read {}: {e}", path.display()),
        })
    };
    let (cert_pem, key_pem) = (read("--tls-cert", cert)?, read("--tls-key", key)?);
    // tonic parses both files only when the server is built, and then
    // blames --tls-cert for either; check each here so the error names the
    // file at fault.
    check_pem(cert, &cert_pem, "--tls-cert", &["CERTIFICATE"])?;
    check_pem(key, &key_pem, "--tls-key", &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"])?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)))
}

/// Refuses a file with no PEM block of the expected kind.
fn check_pem(path: &Path, pem: &[u8], setting: &'static str, labels: &[&str]) -> Result<(), Error> {
    let text = String::from_utf8_lossy(pem);
    let found = labels.iter().any(|label| text.contains(&format!("-----BEGIN {label}-----")));
    if found {
        return Ok(());
    }
    Err(Error::InvalidSetting {
        setting: crate::config::Setting::Flag(setting),
        message: format!("{} holds no PEM block `-----BEGIN {}-----`", path.display(), labels[0]),
    })
}

/// CORS for grpc-web from browsers on other origins; None keeps the
/// browser's same-origin rule.
fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, Error> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| Error::InvalidSetting {
                    setting: crate::config::Setting::Flag("--cors-allow-origin"),
                    message: format!("{o:?} is not a valid origin"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    let header = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                header("authorization"),
                header("content-type"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header(crate::auth::USER_HEADER),
            ])
            .expose_headers([header("grpc-status"), header("grpc-message"), header("grpc-status-details-bin")])
            .max_age(Duration::from_secs(24 * 3600)),
    ))
}

/// tonic answers a request over the decoding limit with OUT_OF_RANGE and no
/// details; the gRPC convention (and our contract) is RESOURCE_EXHAUSTED,
/// with an ErrorInfo like every error of ours, so the trailers-only answer
/// is rewritten. tonic's message (which names the size and the limit) is
/// kept.
/// Requests refused before any handler ran, while tonic decoded them
/// (MALFORMED_REQUEST from our codec, tonic's oversize OUT_OF_RANGE made
/// REQUEST_TOO_LARGE here): they get the one log line and the metrics of
/// every other refused call, which the gate and the handlers cannot give
/// them.
#[derive(Clone)]
struct DecodeRefusals<S> {
    inner: S,
    max_request_bytes: usize,
}

impl<S, B> tower::Service<http::Request<B>> for DecodeRefusals<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = std::time::Instant::now();
        let method = RpcMethod::of_path(request.uri().path());
        let max_request_bytes = self.max_request_bytes;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = relabel_decode_errors(response.await?, max_request_bytes);
            log_decode_refusal(&method.0, started, &response);
            Ok(response)
        })
    }
}

/// Logs and counts a response that carries a decode refusal in its headers.
fn log_decode_refusal(method: &str, started: std::time::Instant, response: &http::Response<tonic::body::Body>) {
    use tonic_types::StatusExt;
    let Some(status) = Status::from_header_map(response.headers()) else { return };
    let reason = status.get_details_error_info().map(|info| info.reason).unwrap_or_default();
    if reason == "MALFORMED_REQUEST" || reason == "REQUEST_TOO_LARGE" {
        crate::service::log_refused(method, started, &status);
    }
}

/// Relabels tonic's decode errors as ours: an oversize request
/// (OUT_OF_RANGE) is RESOURCE_EXHAUSTED / REQUEST_TOO_LARGE, a truncated
/// message (INTERNAL) is INVALID_ARGUMENT / MALFORMED_REQUEST.
fn relabel_decode_errors(
    mut response: http::Response<tonic::body::Body>,
    max_request_bytes: usize,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let Some(original) = Status::from_header_map(headers) else { return response };
    let (error, code) = match original.code() {
        tonic::Code::OutOfRange if original.message().contains("length too large") => {
            let message = original.message().to_string();
            (Error::RequestTooLarge { message, limit: max_request_bytes }, "8")
        }
        // A gRPC frame whose length prefix promises more bytes than the
        // request body holds: the sender's fault, not an INTERNAL error.
        tonic::Code::Internal if original.message().starts_with("Unexpected EOF decoding stream") => {
            let message = "the request body ended inside a gRPC message: its length prefix is larger than \
                           the bytes sent"
                .to_string();
            (Error::MalformedRequest { message }, "3")
        }
        _ => return response,
    };
    let status = Status::from(error);
    if status.add_header(headers).is_err() {
        headers.insert("grpc-status", HeaderValue::from_static(code));
    }
    response
}

/// Background upkeep until shutdown: trims the event log every
/// `compact_interval` and refreshes the storage-size metric.
async fn background(store: Store, hub: Hub, config: Config) {
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
        if let Ok(Some(bytes)) = store.size_on_disk().await {
            crate::metrics::storage_size(bytes);
        }
        match store.compact(retain_for_ms, watch.retain_events_per_user).await {
            Ok(done) if done.trimmed > 0 => tracing::info!(trimmed = done.trimmed, "event log compacted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event log compaction failed; will retry"),
        }
    }
}

/// Re-reads `--auth-jwks-file` every `every` until aborted: a changed file's
/// keys take effect without a restart (SIGHUP does it at once).
async fn reload_jwks(auth: Authenticator, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let auth = auth.clone();
        // A blocking file read; off the async workers.
        let _ = tokio::task::spawn_blocking(move || auth.reload_keys()).await;
    }
}
