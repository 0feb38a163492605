//! The in-process server: a real convgroups server on 127.0.0.1:0 over a
//! temporary data directory, clients that carry a bearer token, and small
//! helpers that keep each test about the behaviour it checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use convgroups::auth::{Secret, USER_HEADER};
use convgroups::config::Config;
use convgroups::domain::UserId;
use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::conversation_service_client::ConversationServiceClient;
use convgroups::pb::*;
use tempfile::TempDir;

pub use super::client::{ConvClient, GroupClient, Headers};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::{ErrorInfo, StatusExt};

/// With `CONVGROUPS_TEST_ETCD_ENDPOINTS` set (scripts/test.sh sets it for
/// its second pass over the contract tests), every server of the harness
/// runs on the etcd backend over that cluster, each under a prefix of its
/// own so tests never see each other's data; otherwise on sled.
pub fn use_backend_from_env(config: &mut Config) {
    let Ok(endpoints) = std::env::var("CONVGROUPS_TEST_ETCD_ENDPOINTS") else { return };
    config.storage.backend = convgroups::config::Backend::Etcd;
    config.storage.etcd_endpoints = endpoints.split(',').map(str::to_string).collect();
    config.storage.etcd_prefix = format!("/test-{:016x}/", rand::random::<u64>());
}

/// Whether the harness runs servers on etcd (see [`use_backend_from_env`]).
pub fn on_etcd() -> bool {
    std::env::var_os("CONVGROUPS_TEST_ETCD_ENDPOINTS").is_some()
}

/// Lifetime of the tokens the harness issues.
const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How long `start` keeps retrying to connect before giving up.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// A running server. Shuts down (without waiting) when dropped; call
/// [`TestServer::shutdown`] to wait for `run` to return.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    /// Live figures (open watchers, revision) of the running server.
    pub stats: convgroups::server::Stats,
    dir: Option<TempDir>,
    secret: Secret,
    channel: Channel,
    shutdown_tx: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), convgroups::error::Error>>>,
}

impl TestServer {
    /// A server with the default configuration on a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server on a fresh data directory, with the configuration adjusted
    /// by `adjust` (typically to lower a limit).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(dir.path().join("data"));
        use_backend_from_env(&mut config);
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    /// A server on `dir` (kept alive by the server) with `config`.
    pub async fn start_in(dir: TempDir, config: Config) -> Self {
        // Created here, before the server starts, so the test and the
        // server sign and check with the same secret.
        let secret = Secret::load_or_create(&config).expect("auth secret");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let app = convgroups::server::App::open(config.clone()).await.expect("open the server");
        let stats = app.stats();
        let handle = tokio::spawn(app.serve(listener, async move {
            // Either an explicit shutdown or the sender being dropped.
            let _ = shutdown_rx.await;
        }));
        let channel = connect(addr).await;
        Self {
            addr,
            config,
            stats,
            dir: Some(dir),
            secret,
            channel,
            shutdown_tx: Some(shutdown_tx),
            handle: Some(handle),
        }
    }

    /// Stops the server, waits for `run` to return Ok, and starts a new one
    /// on the same data directory and configuration.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let dir = self.dir.take().expect("data dir");
        let config = self.config.clone();
        // `stats` holds the old store open (and with it sled's lock on the
        // data directory): it must go before the new server opens it.
        drop(self);
        Self::start_in(dir, config).await
    }

    /// Stops the server and waits for `run` to return; panics if it failed.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("server::run did not return within 30 s of shutdown");
            result.expect("server task panicked").expect("server::run returned an error");
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// A signed token for `user` (an admin token if `admin`).
    pub fn token(&self, user: &str, admin: bool) -> String {
        let user = UserId::parse(user).expect("valid user id");
        self.secret.issue(&user, admin, TOKEN_TTL)
    }

    /// The raw secret bytes, for hand-made tokens.
    pub fn secret_bytes(&self) -> Vec<u8> {
        let raw = std::fs::read(self.config.data_dir.join(convgroups::auth::SECRET_FILE_NAME)).expect("secret file");
        raw.trim_ascii_end().to_vec()
    }

    /// Group-service client acting as `user`.
    pub fn group_client(&self, user: &str) -> GroupClient {
        let bearer = format!("Bearer {}", self.token(user, false));
        self.group_client_with(Headers::new(&[("authorization", &bearer)]))
    }

    /// Registry client acting as `user`.
    pub fn conv_client(&self, user: &str) -> ConvClient {
        let bearer = format!("Bearer {}", self.token(user, false));
        self.conv_client_with(Headers::new(&[("authorization", &bearer)]))
    }

    /// Group-service client with an admin token, acting for `acting_for`
    /// through the `x-convgroups-user` header (no header when None).
    pub fn admin_group_client(&self, acting_for: Option<&str>) -> GroupClient {
        self.group_client_with(self.admin_headers(acting_for))
    }

    /// Registry client with an admin token (see [`Self::admin_group_client`]).
    pub fn admin_conv_client(&self, acting_for: Option<&str>) -> ConvClient {
        self.conv_client_with(self.admin_headers(acting_for))
    }

    fn admin_headers(&self, acting_for: Option<&str>) -> Headers {
        let bearer = format!("Bearer {}", self.token("admin-backend", true));
        match acting_for {
            Some(user) => Headers::new(&[("authorization", &bearer), (USER_HEADER, user)]),
            None => Headers::new(&[("authorization", &bearer)]),
        }
    }

    /// Group-service client sending exactly `headers`.
    pub fn group_client_with(&self, headers: Headers) -> GroupClient {
        ConversationGroupServiceClient::with_interceptor(self.channel.clone(), headers)
    }

    /// Registry client sending exactly `headers`.
    pub fn conv_client_with(&self, headers: Headers) -> ConvClient {
        ConversationServiceClient::with_interceptor(self.channel.clone(), headers)
    }

    /// A plain channel to the server (for health checks).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
    }
}

/// Connects to a server that was spawned a moment ago, retrying briefly.
async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    let deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("could not connect to the test server at {addr}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Error assertions
// ---------------------------------------------------------------------------

/// The error of a call that must fail.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T, Status>) -> Status {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(status) => status,
    }
}

/// Checks a status: gRPC code, ErrorInfo reason and domain, and the
/// `tencent_code` metadata (present with this value, or absent for None).
/// Returns the ErrorInfo for further checks.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str, tencent_code: Option<&str>) -> ErrorInfo {
    assert_eq!(status.code(), code, "gRPC code of {status:?}");
    let info = status.get_details_error_info().unwrap_or_else(|| panic!("no google.rpc.ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "ErrorInfo.reason of {status:?}");
    assert_eq!(info.domain, "convgroups", "ErrorInfo.domain of {status:?}");
    assert_eq!(
        info.metadata.get("tencent_code").map(String::as_str),
        tencent_code,
        "ErrorInfo.metadata[tencent_code] of {status:?}"
    );
    info
}

/// Like [`assert_status`], and the message names `field`.
#[track_caller]
pub fn assert_status_field(
    status: &Status,
    code: Code,
    reason: &str,
    tencent_code: Option<&str>,
    field: &str,
) -> ErrorInfo {
    let info = assert_status(status, code, reason, tencent_code);
    assert!(status.message().contains(field), "message {:?} should name the field {field:?}", status.message());
    info
}

/// Checks the per-item failures of a batch response, ignoring their order:
/// exactly these (id as sent, code) pairs, each with a non-empty message and
/// the Tencent code the contract maps its code to.
#[track_caller]
pub fn assert_failed(failed: &[ConversationResult], expected: &[(&str, ConversationResultCode)]) {
    let mut got: Vec<(String, i32)> = failed.iter().map(|f| (f.conversation_id.clone(), f.code)).collect();
    let mut want: Vec<(String, i32)> = expected.iter().map(|(id, code)| (id.to_string(), *code as i32)).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "failed items (id, code); full: {failed:?}");
    for item in failed {
        assert!(!item.message.is_empty(), "failed item without a message: {item:?}");
        let tencent = match ConversationResultCode::try_from(item.code) {
            Ok(ConversationResultCode::GroupFull) => 51008,
            Ok(ConversationResultCode::PinLimitExceeded) => 51012,
            _ => 0,
        };
        assert_eq!(item.tencent_code, tencent, "tencent_code of {item:?}");
    }
}

// ---------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------

pub fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// `count` distinct canonical C2C ids: C2C<prefix>0000, C2C<prefix>0001...
pub fn c2c_ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("C2C{prefix}{i:04}")).collect()
}

pub async fn create(gc: &mut GroupClient, name: &str, ids: &[&str]) -> Result<CreateConversationGroupResponse, Status> {
    create_owned(gc, name, strings(ids), None).await
}

pub async fn create_owned(
    gc: &mut GroupClient,
    name: &str,
    ids: Vec<String>,
    expected_revision: Option<u64>,
) -> Result<CreateConversationGroupResponse, Status> {
    gc.create_conversation_group(CreateConversationGroupRequest {
        group_name: name.to_string(),
        conversation_ids: ids,
        expected_revision,
        sort_mode: None,
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn delete_group(gc: &mut GroupClient, name: &str) -> Result<DeleteConversationGroupResponse, Status> {
    gc.delete_conversation_group(DeleteConversationGroupRequest {
        group_name: name.to_string(),
        expected_revision: None,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn rename(gc: &mut GroupClient, old: &str, new: &str) -> Result<RenameConversationGroupResponse, Status> {
    gc.rename_conversation_group(RenameConversationGroupRequest {
        old_name: old.to_string(),
        new_name: new.to_string(),
        expected_revision: None,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn reorder(gc: &mut GroupClient, names: &[&str]) -> Result<ReorderConversationGroupsResponse, Status> {
    gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
        group_names: strings(names),
        expected_revision: None,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn add(gc: &mut GroupClient, name: &str, ids: &[&str]) -> Result<AddConversationsToGroupResponse, Status> {
    add_owned(gc, name, strings(ids)).await
}

pub async fn add_owned(
    gc: &mut GroupClient,
    name: &str,
    ids: Vec<String>,
) -> Result<AddConversationsToGroupResponse, Status> {
    gc.add_conversations_to_group(AddConversationsToGroupRequest {
        group_name: name.to_string(),
        conversation_ids: ids,
        expected_revision: None,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn remove(
    gc: &mut GroupClient,
    name: &str,
    ids: &[&str],
) -> Result<DeleteConversationsFromGroupResponse, Status> {
    gc.delete_conversations_from_group(DeleteConversationsFromGroupRequest {
        group_name: name.to_string(),
        conversation_ids: strings(ids),
        expected_revision: None,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn group_list(gc: &mut GroupClient) -> GetConversationGroupListResponse {
    gc.get_conversation_group_list(GetConversationGroupListRequest::default())
        .await
        .expect("GetConversationGroupList")
        .into_inner()
}

/// The caller's current revision, as GetConversationGroupList reports it.
pub async fn revision(gc: &mut GroupClient) -> u64 {
    group_list(gc).await.revision
}

/// Display-ordered group names.
pub async fn group_names(gc: &mut GroupClient) -> Vec<String> {
    group_list(gc).await.group_names
}

/// The group named `name` from GetConversationGroupList.
pub async fn group(gc: &mut GroupClient, name: &str) -> Option<ConversationGroup> {
    group_list(gc).await.groups.into_iter().find(|g| g.name == name)
}

pub async fn list_page(
    gc: &mut GroupClient,
    filter: Option<ConversationFilter>,
    page_size: u32,
    page_token: &str,
) -> Result<GetConversationListResponse, Status> {
    gc.get_conversation_list(GetConversationListRequest {
        filter,
        page_size,
        page_token: page_token.to_string(),
        min_revision: None,
    })
    .await
    .map(|r| r.into_inner())
}

/// Every conversation matching `filter`, walking all pages of `page_size`.
pub async fn list_all_paged(
    gc: &mut GroupClient,
    filter: Option<ConversationFilter>,
    page_size: u32,
) -> Result<Vec<Conversation>, Status> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..10_000 {
        let page = list_page(gc, filter.clone(), page_size, &token).await?;
        all.extend(page.conversations);
        assert_eq!(page.is_finished, page.next_page_token.is_empty(), "is_finished iff next_page_token is empty");
        if page.is_finished {
            return Ok(all);
        }
        token = page.next_page_token;
    }
    panic!("paging did not finish");
}

/// Every conversation matching `filter`.
pub async fn list_all(gc: &mut GroupClient, filter: Option<ConversationFilter>) -> Vec<Conversation> {
    list_all_paged(gc, filter, 1000).await.expect("GetConversationList")
}

/// Conversation ids of a listing, in order.
pub fn ids_of(conversations: &[Conversation]) -> Vec<String> {
    conversations.iter().map(|c| c.conversation_id.clone()).collect()
}

/// Ids of every conversation matching `filter`, in listing order.
pub async fn list_ids(gc: &mut GroupClient, filter: ConversationFilter) -> Vec<String> {
    ids_of(&list_all(gc, Some(filter)).await)
}

/// The listed conversation `id` (from the unfiltered listing).
pub async fn find_conversation(gc: &mut GroupClient, id: &str) -> Option<Conversation> {
    list_all(gc, None).await.into_iter().find(|c| c.conversation_id == id)
}

pub async fn unread(gc: &mut GroupClient, filter: Option<ConversationFilter>) -> Result<u64, Status> {
    gc.get_unread_count(GetUnreadCountRequest { filter, min_revision: None }).await.map(|r| r.into_inner().unread_count)
}

/// A ConversationUpdate for `id` with every optional field unset.
pub fn update(id: &str) -> ConversationUpdate {
    ConversationUpdate { conversation_id: id.to_string(), ..Default::default() }
}

pub async fn upsert(
    cc: &mut ConvClient,
    conversations: Vec<ConversationUpdate>,
) -> Result<UpsertConversationsResponse, Status> {
    cc.upsert_conversations(UpsertConversationsRequest { conversations }).await.map(|r| r.into_inner())
}

/// Upserts and insists that every item succeeded.
pub async fn upsert_ok(cc: &mut ConvClient, conversations: Vec<ConversationUpdate>) -> UpsertConversationsResponse {
    let response = upsert(cc, conversations).await.expect("UpsertConversations");
    assert!(response.failed.is_empty(), "unexpected failed items: {:?}", response.failed);
    response
}

pub async fn delete_convs(cc: &mut ConvClient, ids: &[&str]) -> Result<DeleteConversationsResponse, Status> {
    cc.delete_conversations(DeleteConversationsRequest { conversation_ids: strings(ids) }).await.map(|r| r.into_inner())
}

/// Everything a user can observe through the read RPCs: the group list
/// (names, counts, unread totals, revision) and every listed conversation.
#[derive(Debug, PartialEq)]
pub struct UserState {
    pub groups: GetConversationGroupListResponse,
    pub conversations: Vec<Conversation>,
}

pub async fn user_state(gc: &mut GroupClient) -> UserState {
    UserState { groups: group_list(gc).await, conversations: list_all(gc, None).await }
}

/// A filter with every field unset.
pub fn filter() -> ConversationFilter {
    ConversationFilter::default()
}
