//! The authentication matrix: every RPC that needs a token × every kind of
//! bad credential → the right code, with nothing of another user ever
//! returned or changed. Also: an admin token with `x-convgroups-user` acts
//! for exactly that user, the generated secret file is private (0600), and
//! neither tokens nor the secret ever reach the logs.
//!
//! The victim is `bob`, whose data carry the marker `bobsecret`; the
//! attacker is `alice`, who has data of her own. Every request in the matrix
//! aims at bob's data (his group names and conversation ids), so a request
//! that got through would show.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use convgroups::auth::{SECRET_FILE_NAME, USER_HEADER};
use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::conversation_service_client::ConversationServiceClient;
use convgroups::pb::watch_group_events_response::Kind as WatchKind;
use convgroups::pb::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use support::inproc::*;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// The marker in every one of bob's group names and conversation ids.
const MARK: &str = "bobsecret";
/// The marker of bob's data that no request ever names (a group, a
/// conversation's name and custom data): it can only come from his store.
const PRIVATE: &str = "bobprivate";

// ---------------------------------------------------------------------------
// Log capture (installed once per test binary, before any server starts)
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged by this test binary: the server's own events at every
/// level, its libraries at debug.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,convgroups=trace,h2=info,hyper=info"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        captured
    })
}

async fn start() -> TestServer {
    logs();
    TestServer::start().await
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with this header `alg`, signed with `sign_alg` (HMAC over
/// `secret`): equal for an honest token, different for algorithm confusion.
fn jwt(header_alg: &str, sign_alg: Algorithm, secret: &[u8], claims: &str) -> String {
    let header = b64(format!(r#"{{"alg":"{header_alg}","typ":"JWT"}}"#).as_bytes());
    let message = format!("{header}.{}", b64(claims.as_bytes()));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), sign_alg).expect("sign");
    format!("{message}.{signature}")
}

fn sign(alg: Algorithm, secret: &[u8], claims: &str) -> String {
    jwt(&format!("{alg:?}"), alg, secret, claims)
}

/// One kind of credential a request carries, as the metadata it sends.
struct Credential {
    name: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// The code every RPC must answer with.
    code: Code,
}

fn cred(name: &str, headers: Vec<(&'static str, Vec<u8>)>, code: Code) -> Credential {
    Credential { name: name.to_string(), headers, code }
}

fn bearer(token: &str) -> (&'static str, Vec<u8>) {
    ("authorization", format!("Bearer {token}").into_bytes())
}

/// Every bad credential of the matrix, each aimed at bob.
fn bad_credentials(s: &TestServer) -> Vec<Credential> {
    let secret = s.secret_bytes();
    let exp = now() + 3600;
    let bob = format!(r#"{{"sub":"bob","exp":{exp}}}"#);
    let bob_admin = format!(r#"{{"sub":"bob","exp":{exp},"adm":true}}"#);
    let expired = format!(r#"{{"sub":"bob","exp":{}}}"#, now() - 10);
    let expired_admin = format!(r#"{{"sub":"bob","exp":{},"adm":true}}"#, now() - 10);
    let other_secret = b"not-the-server-secret-but-long-enough-0123456789";
    let alice = s.token("alice", false);
    let alice_parts: Vec<&str> = alice.split('.').collect();
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let raw = |v: &str| v.as_bytes().to_vec();
    let u = Code::Unauthenticated;
    let mut all = vec![
        cred("no token", vec![], u),
        cred("only the user header", vec![(USER_HEADER, raw("bob"))], u),
        cred("empty authorization", vec![("authorization", vec![])], u),
        cred("Bearer abc", vec![("authorization", raw("Bearer abc"))], u),
        cred("Bearer a.b.c", vec![("authorization", raw("Bearer a.b.c"))], u),
        cred("Bearer alone", vec![("authorization", raw("Bearer"))], u),
        cred("Basic xyz", vec![("authorization", raw("Basic xyz"))], u),
        cred("Basic with a token", vec![("authorization", format!("Basic {alice}").into_bytes())], u),
        cred("token without a scheme", vec![("authorization", raw(&alice))], u),
        cred("non-ASCII authorization", vec![("authorization", b"Bearer \xff\xfe".to_vec())], u),
        cred("wrong signature", vec![bearer(&sign(Algorithm::HS256, other_secret, &bob))], u),
        cred("wrong signature, admin", vec![bearer(&sign(Algorithm::HS256, other_secret, &bob_admin))], u),
        cred("expired", vec![bearer(&sign(Algorithm::HS256, &secret, &expired))], u),
        cred("expired admin", vec![bearer(&sign(Algorithm::HS256, &secret, &expired_admin))], u),
        cred("no exp", vec![bearer(&sign(Algorithm::HS256, &secret, r#"{"sub":"bob"}"#))], u),
        cred("exp as a string", vec![bearer(&sign(Algorithm::HS256, &secret, r#"{"sub":"bob","exp":"never"}"#))], u),
        cred("no sub", vec![bearer(&sign(Algorithm::HS256, &secret, &format!(r#"{{"exp":{exp}}}"#)))], u),
        cred(
            "sub not a user id",
            vec![bearer(&sign(Algorithm::HS256, &secret, &format!(r#"{{"sub":"b ob","exp":{exp}}}"#)))],
            u,
        ),
        cred("alg none", vec![bearer(&format!("{none_header}.{}.", b64(bob.as_bytes())))], u),
        cred("alg none, admin", vec![bearer(&format!("{none_header}.{}.", b64(bob_admin.as_bytes())))], u),
        cred(
            "alg none with alice's signature",
            vec![bearer(&format!("{none_header}.{}.{}", b64(bob_admin.as_bytes()), alice_parts[2]))],
            u,
        ),
        cred("HS512 with the right secret", vec![bearer(&sign(Algorithm::HS512, &secret, &bob))], u),
        cred("HS384 with the right secret", vec![bearer(&sign(Algorithm::HS384, &secret, &bob_admin))], u),
        cred("RS256 header, HMAC signature", vec![bearer(&jwt("RS256", Algorithm::HS256, &secret, &bob_admin))], u),
        cred("HS256 header, HS512 signature", vec![bearer(&jwt("HS256", Algorithm::HS512, &secret, &bob))], u),
        cred(
            "alice's signature on bob's claims",
            vec![bearer(&format!("{}.{}.{}", alice_parts[0], b64(bob_admin.as_bytes()), alice_parts[2]))],
            u,
        ),
        cred("alice's token, truncated", vec![bearer(&alice[..alice.len() - 2])], u),
    ];
    // A valid user token asking for another user: refused, not unauthenticated.
    all.push(cred(
        "alice's token with x-convgroups-user: bob",
        vec![bearer(&alice), (USER_HEADER, raw("bob"))],
        Code::PermissionDenied,
    ));
    all
}

// ---------------------------------------------------------------------------
// The RPCs, each aimed at bob's data
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rpc {
    Create,
    Delete,
    Rename,
    List,
    Reorder,
    Add,
    Remove,
    Conversations,
    Unread,
    Watch,
    Upsert,
    DeleteConversations,
    MarkRead,
    Mute,
    Move,
    Update,
    SortMode,
    MoveIn,
    PinIn,
    UnpinIn,
}

const ALL_RPCS: [Rpc; 20] = [
    Rpc::Create,
    // Before Rename moves bob's "Work" away, so that they act on it.
    Rpc::SortMode,
    Rpc::MoveIn,
    Rpc::PinIn,
    Rpc::UnpinIn,
    Rpc::Delete,
    Rpc::Rename,
    Rpc::List,
    Rpc::Reorder,
    Rpc::Add,
    Rpc::Remove,
    Rpc::Conversations,
    Rpc::Unread,
    Rpc::Watch,
    Rpc::Upsert,
    Rpc::DeleteConversations,
    Rpc::MarkRead,
    Rpc::Mute,
    Rpc::Move,
    Rpc::Update,
];

fn with_headers<T>(message: T, headers: &[(&'static str, Vec<u8>)]) -> Request<T> {
    let mut request = Request::new(message);
    for (key, value) in headers {
        let value = MetadataValue::try_from(value.as_slice()).expect("a valid header value");
        request.metadata_mut().insert(*key, value);
    }
    request
}

/// Calls `rpc` with `headers`; the answer as text (for leak checks), or
/// the status. A watch answers with its replay from revision 1 up to the
/// first bookmark.
async fn call(
    s: &TestServer,
    rpc: Rpc,
    headers: &[(&'static str, Vec<u8>)],
    all_users: bool,
) -> Result<String, Status> {
    let mut gc = ConversationGroupServiceClient::new(s.channel());
    let mut cc = ConversationServiceClient::new(s.channel());
    let work = format!("Work-{MARK}");
    let secret_id = format!("C2C{MARK}1");
    let text = match rpc {
        Rpc::Create => {
            let m = CreateConversationGroupRequest {
                group_name: "Pwned".into(),
                conversation_ids: vec![secret_id],
                expected_revision: None,
                ..Default::default()
            };
            format!("{:?}", gc.create_conversation_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Delete => {
            let m = DeleteConversationGroupRequest { group_name: work, expected_revision: None, ..Default::default() };
            format!("{:?}", gc.delete_conversation_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Update => {
            let m = UpdateConversationGroupRequest {
                group_name: work,
                look: Some(GroupLook { icon: "X".into(), ..Default::default() }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["icon".into()] }),
                ..Default::default()
            };
            format!("{:?}", gc.update_conversation_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Rename => {
            let m = RenameConversationGroupRequest {
                old_name: work,
                new_name: "Pwned".into(),
                expected_revision: None,
                ..Default::default()
            };
            format!("{:?}", gc.rename_conversation_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::List => {
            format!(
                "{:?}",
                gc.get_conversation_group_list(with_headers(GetConversationGroupListRequest::default(), headers))
                    .await?
                    .into_inner()
            )
        }
        Rpc::Reorder => {
            let m = ReorderConversationGroupsRequest {
                group_names: vec![format!("Home-{MARK}"), work],
                expected_revision: None,
                ..Default::default()
            };
            format!("{:?}", gc.reorder_conversation_groups(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Add => {
            let m = AddConversationsToGroupRequest {
                group_name: work,
                conversation_ids: vec!["C2Cpwned".into()],
                expected_revision: None,
                ..Default::default()
            };
            format!("{:?}", gc.add_conversations_to_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Remove => {
            let m = DeleteConversationsFromGroupRequest {
                group_name: work,
                conversation_ids: vec![secret_id],
                expected_revision: None,
                ..Default::default()
            };
            format!("{:?}", gc.delete_conversations_from_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::SortMode => {
            let m = SetConversationGroupSortModeRequest {
                group_name: work,
                sort_mode: GroupSortMode::Manual as i32,
                ..Default::default()
            };
            format!("{:?}", gc.set_conversation_group_sort_mode(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::MoveIn => {
            let m = MoveConversationsInGroupRequest {
                group_name: work,
                conversation_ids: vec![secret_id],
                placement: Some(move_conversations_in_group_request::Placement::ToStart(true)),
                ..Default::default()
            };
            format!("{:?}", gc.move_conversations_in_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::PinIn => {
            let m = PinConversationsInGroupRequest {
                group_name: work,
                conversation_ids: vec![secret_id],
                ..Default::default()
            };
            format!("{:?}", gc.pin_conversations_in_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::UnpinIn => {
            let m = UnpinConversationsInGroupRequest {
                group_name: work,
                conversation_ids: vec![secret_id],
                ..Default::default()
            };
            format!("{:?}", gc.unpin_conversations_in_group(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Conversations => {
            let m = GetConversationListRequest {
                filter: None,
                page_size: 1000,
                page_token: String::new(),
                min_revision: None,
            };
            format!("{:?}", gc.get_conversation_list(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Unread => {
            format!(
                "{:?}",
                gc.get_unread_count(with_headers(GetUnreadCountRequest { filter: None, min_revision: None }, headers))
                    .await?
                    .into_inner()
            )
        }
        Rpc::Watch => {
            let m = WatchGroupEventsRequest { start_revision: 1, all_users, ..Default::default() };
            let mut stream = gc.watch_group_events(with_headers(m, headers)).await?.into_inner();
            let mut seen = Vec::new();
            loop {
                let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
                    .await
                    .map_err(|_| Status::deadline_exceeded("no bookmark within 10 s"))??
                    .ok_or_else(|| Status::unknown("stream ended before a bookmark"))?;
                let done = matches!(message.kind, Some(WatchKind::Bookmark(_)));
                seen.push(message);
                if done {
                    break;
                }
            }
            format!("{seen:?}")
        }
        Rpc::Upsert => {
            let m = UpsertConversationsRequest {
                conversations: vec![ConversationUpdate { show_name: Some("pwned".into()), ..update(&secret_id) }],
            };
            format!("{:?}", cc.upsert_conversations(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::DeleteConversations => {
            let m = DeleteConversationsRequest { conversation_ids: vec![secret_id] };
            format!("{:?}", cc.delete_conversations(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::MarkRead => {
            let m = MarkConversationGroupReadRequest { group_name: work, ..Default::default() };
            format!("{:?}", gc.mark_conversation_group_read(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Mute => {
            let m = SetConversationGroupMuteRequest {
                group_name: work,
                recv_opt: RecvOpt::NotReceive as i32,
                apply_to_new_members: true,
                ..Default::default()
            };
            format!("{:?}", gc.set_conversation_group_mute(with_headers(m, headers)).await?.into_inner())
        }
        Rpc::Move => {
            let m = MoveConversationsRequest {
                conversation_ids: vec![secret_id],
                from_group_name: work,
                to: vec![GroupSelector { group_name: format!("Home-{MARK}"), group_id: String::new() }],
                ..Default::default()
            };
            format!("{:?}", gc.move_conversations(with_headers(m, headers)).await?.into_inner())
        }
    };
    Ok(text)
}

/// Bob's data (marked), alice's data (unmarked) and a few events of each,
/// interleaved so that their revisions alternate.
async fn seed(s: &TestServer) -> (UserState, UserState) {
    let mut bob = s.group_client("bob");
    let mut bob_cc = s.conv_client("bob");
    let mut alice = s.group_client("alice");
    let mut alice_cc = s.conv_client("alice");
    let secret1 = format!("C2C{MARK}1");
    let secret2 = format!("GROUP{MARK}2");
    create(&mut bob, &format!("Work-{MARK}"), &[&secret1, &secret2]).await.unwrap();
    create(&mut alice, "Mine", &["C2Cfriend"]).await.unwrap();
    create(&mut bob, &format!("Home-{MARK}"), &[&secret2]).await.unwrap();
    create(&mut bob, &format!("P-{PRIVATE}"), &[&format!("C2C{PRIVATE}")]).await.unwrap();
    upsert_ok(&mut alice_cc, vec![ConversationUpdate { unread_count: Some(1), ..update("C2Cfriend") }]).await;
    upsert_ok(
        &mut bob_cc,
        vec![ConversationUpdate {
            show_name: Some(format!("name-{PRIVATE}")),
            unread_count: Some(7),
            custom_data: Some(PRIVATE.as_bytes().to_vec()),
            ..update(&secret1)
        }],
    )
    .await;
    (user_state(&mut bob).await, user_state(&mut alice).await)
}

#[track_caller]
fn assert_refused(status: &Status, code: Code, what: &str) {
    assert_eq!(status.code(), code, "{what}: {status:?}");
    let info = status.get_details_error_info().unwrap_or_else(|| panic!("{what}: no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "convgroups", "{what}");
    let reason = if code == Code::Unauthenticated { "UNAUTHENTICATED" } else { "PERMISSION_DENIED" };
    assert_eq!(info.reason, reason, "{what}");
    assert!(!status.message().contains(PRIVATE), "{what}: the refusal leaks bob's data: {status:?}");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Every RPC × every bad credential: UNAUTHENTICATED (or PERMISSION_DENIED
/// for a valid user token naming another user), and nobody's state changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_every_bad_credential() {
    let s = start().await;
    let (bob_before, alice_before) = seed(&s).await;
    let credentials = bad_credentials(&s);
    for credential in &credentials {
        for rpc in ALL_RPCS {
            let what = format!("{rpc:?} with {}", credential.name);
            let status = call(&s, rpc, &credential.headers, false).await.expect_err(&what);
            assert_refused(&status, credential.code, &what);
        }
    }
    assert_eq!(user_state(&mut s.group_client("bob")).await, bob_before, "bob's state changed");
    assert_eq!(user_state(&mut s.group_client("alice")).await, alice_before, "alice's state changed");
    let matrix = credentials.len() * ALL_RPCS.len();
    assert!(matrix >= 12 * 28, "the matrix has {matrix} cells");
}

/// `all_users` with a user token is PERMISSION_DENIED (with or without a
/// user header); with an admin token it opens, and a snapshot with it is
/// INVALID_ARGUMENT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_users_needs_an_admin_token() {
    let s = start().await;
    let (bob_before, _) = seed(&s).await;
    let alice = s.token("alice", false);
    for headers in [vec![bearer(&alice)], vec![bearer(&alice), (USER_HEADER, b"alice".to_vec())]] {
        let status = call(&s, Rpc::Watch, &headers, true).await.expect_err("all_users with a user token");
        assert_refused(&status, Code::PermissionDenied, "all_users with a user token");
    }
    let bob = s.token("bob", false);
    let status = call(&s, Rpc::Watch, &[bearer(&bob)], true).await.expect_err("all_users with bob's token");
    assert_refused(&status, Code::PermissionDenied, "all_users with bob's own token");

    let admin = s.token("ops", true);
    let replay = call(&s, Rpc::Watch, &[bearer(&admin)], true).await.expect("all_users with an admin token");
    assert!(replay.contains(MARK) && replay.contains("C2Cfriend"), "the admin sees every user: {replay}");
    let mut gc = ConversationGroupServiceClient::new(s.channel());
    let m = WatchGroupEventsRequest { all_users: true, send_snapshot: true, ..Default::default() };
    let status = expect_err(gc.watch_group_events(with_headers(m, &[bearer(&admin)])).await);
    assert_status_field(&status, Code::InvalidArgument, "INVALID_ARGUMENT", None, "send_snapshot");
    assert_eq!(user_state(&mut s.group_client("bob")).await, bob_before);
}

/// Alice's own token on every RPC: she gets her own data and events only,
/// never anything of bob's, and her writes never touch bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_token_sees_and_changes_only_its_own_user() {
    let s = start().await;
    let (bob_before, _) = seed(&s).await;
    let alice = s.token("alice", false);
    let as_alice = [bearer(&alice)];
    let as_alice_named = [bearer(&alice), (USER_HEADER, b"alice".to_vec())];
    for headers in [&as_alice[..], &as_alice_named[..]] {
        for rpc in ALL_RPCS {
            // Alice's requests name bob's groups; for her those do not exist.
            match call(&s, rpc, headers, false).await {
                Ok(text) => assert!(!text.contains(PRIVATE), "{rpc:?} returned bob's data to alice: {text}"),
                Err(status) => {
                    assert!(
                        matches!(status.code(), Code::NotFound | Code::FailedPrecondition | Code::AlreadyExists),
                        "{rpc:?} as alice: {status:?}"
                    );
                    assert!(!status.message().contains(PRIVATE), "{rpc:?}: {status:?}");
                }
            }
        }
    }
    // The replay from revision 1 holds only alice's events.
    let replay = call(&s, Rpc::Watch, &as_alice, false).await.unwrap();
    assert!(replay.contains("user_id: \"alice\"") && !replay.contains("user_id: \"bob\""), "{replay}");
    assert_eq!(user_state(&mut s.group_client("bob")).await, bob_before, "alice changed bob's state");
    let alice_state = user_state(&mut s.group_client("alice")).await;
    assert!(alice_state.groups.group_names.contains(&"Pwned".to_string()), "alice's own create worked");
}

/// An admin token with `x-convgroups-user: bob` acts for bob on every RPC,
/// and for nobody else; without the header every RPC for one user's data is
/// refused with INVALID_ARGUMENT naming the header (it does not act for a
/// user named after the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_acts_for_the_user_in_the_header() {
    let s = start().await;
    let (_, alice_before) = seed(&s).await;
    let admin = s.token("ops", true);
    let as_bob = [bearer(&admin), (USER_HEADER, b"bob".to_vec())];
    let list = call(&s, Rpc::List, &as_bob, false).await.unwrap();
    assert!(list.contains(&format!("Work-{MARK}")), "the admin sees bob's groups: {list}");
    let replay = call(&s, Rpc::Watch, &as_bob, false).await.unwrap();
    assert!(replay.contains("user_id: \"bob\"") && !replay.contains("user_id: \"alice\""), "{replay}");
    for rpc in ALL_RPCS {
        let answer = call(&s, rpc, &as_bob, false).await;
        // Earlier calls changed bob's groups (Rename moved Work away), so
        // some later ones find nothing: that is bob's state speaking.
        if let Err(status) = &answer {
            assert!(matches!(status.code(), Code::NotFound | Code::FailedPrecondition), "{rpc:?}: {status:?}");
        }
    }
    let bob = user_state(&mut s.group_client("bob")).await;
    assert!(bob.groups.group_names.contains(&"Pwned".to_string()), "the admin's create is bob's: {bob:?}");
    assert_eq!(user_state(&mut s.group_client("alice")).await, alice_before, "the admin acting for bob changed alice");
    let ops = user_state(&mut s.group_client("ops")).await;
    assert!(ops.groups.group_names.is_empty() && ops.conversations.is_empty(), "the admin's own user: {ops:?}");

    // Without the header the admin acts for no one.
    for rpc in ALL_RPCS {
        let status = call(&s, rpc, &[bearer(&admin)], false).await.expect_err("an admin token without the header");
        assert_status_field(&status, Code::InvalidArgument, "INVALID_ARGUMENT", None, USER_HEADER);
    }
    let ops = user_state(&mut s.group_client("ops")).await;
    assert!(ops.groups.group_names.is_empty() && ops.conversations.is_empty(), "the admin's own user: {ops:?}");
}

/// The secret generated on first start is readable by its owner only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_secret_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = start().await;
    let path = s.data_dir().join(SECRET_FILE_NAME);
    let mode = std::fs::metadata(&path).expect("secret file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode of {}: {mode:o}", path.display());
    // A restart reuses it (tokens issued before stay valid) and keeps the mode.
    let token = s.token("alice", false);
    let s = s.restart().await;
    let mode = std::fs::metadata(&path).expect("secret file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    call(&s, Rpc::List, &[bearer(&token)], false).await.expect("a token from before the restart");
}

/// Neither a token (valid, forged or expired) nor the secret appears in
/// anything the server logs, at any level, while the whole matrix runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_secrets_never_reach_the_logs() {
    let s = start().await;
    seed(&s).await;
    let mut credentials = bad_credentials(&s);
    let admin = s.token("ops", true);
    credentials.push(cred("admin for bob", vec![bearer(&admin), (USER_HEADER, b"bob".to_vec())], Code::Ok));
    credentials.push(cred("alice", vec![bearer(&s.token("alice", false))], Code::Ok));
    for credential in &credentials {
        for rpc in ALL_RPCS {
            let _ = call(&s, rpc, &credential.headers, false).await;
        }
    }
    let secret = String::from_utf8(s.secret_bytes()).expect("the generated secret is base64url text");
    s.shutdown().await;

    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).to_string();
    assert!(
        text.contains("call refused") || text.contains("code=Unauthenticated"),
        "the capture works: refusals are logged"
    );
    assert!(text.contains("method=\"UpsertConversations\""), "the capture works: calls are logged");
    assert!(!text.contains(&secret), "the secret is in the logs");
    let mut needles = BTreeSet::new();
    for credential in &credentials {
        for (key, value) in &credential.headers {
            if *key != "authorization" {
                continue;
            }
            let value = String::from_utf8_lossy(value);
            let token = value.trim_start_matches("Bearer ").trim_start_matches("Basic ");
            // A whole token, and each of its signature and payload parts.
            if token.len() > 16 {
                needles.insert(token.to_string());
                for part in token.split('.').skip(1) {
                    if part.len() > 16 {
                        needles.insert(part.to_string());
                    }
                }
            }
        }
    }
    assert!(needles.len() > 20, "the check looks for {} strings", needles.len());
    for needle in &needles {
        assert!(!text.contains(needle.as_str()), "a credential reached the logs: {needle}");
    }
}
