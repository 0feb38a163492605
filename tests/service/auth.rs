//! Identity, tenancy and authentication (contract §3): bearer tokens,
//! admin tokens acting for a user, and isolation between users.

use crate::support::inproc::*;
use base64::Engine as _;
use convgroups::auth::{Secret, USER_HEADER};
use convgroups::domain::UserId;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::*;
use serde::Serialize;
use tonic::{Code, Status};

#[derive(Serialize)]
struct Claims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    adm: Option<bool>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An HS256 token with these claims, signed with `secret`.
fn sign(secret: &[u8], claims: &Claims) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn bearer(token: &str) -> Headers {
    let value = format!("Bearer {token}");
    Headers::new(&[("authorization", &value)])
}

/// Checks an authentication/authorisation failure: the code, and an
/// ErrorInfo in the convgroups domain with an UPPER_SNAKE_CASE reason.
#[track_caller]
fn assert_denied(status: &Status, code: Code) {
    assert_eq!(status.code(), code, "{status:?}");
    let info =
        tonic_types::StatusExt::get_details_error_info(status).unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "convgroups");
    assert!(
        !info.reason.is_empty()
            && info.reason.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
        "reason {:?} is UPPER_SNAKE_CASE",
        info.reason
    );
}

/// Calls one read and one write RPC of each service with `headers` and
/// checks that each fails with `code`.
async fn assert_all_rpcs_fail(s: &TestServer, headers: Headers, code: Code, what: &str) {
    let mut gc = s.group_client_with(headers.clone());
    let mut cc = s.conv_client_with(headers);
    let st = expect_err(gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await);
    assert_eq!(st.code(), code, "{what}: GetConversationGroupList: {st:?}");
    assert_denied(&st, code);
    let st = expect_err(create(&mut gc, "G", &["C2Cx"]).await);
    assert_eq!(st.code(), code, "{what}: CreateConversationGroup: {st:?}");
    let st = expect_err(list_page(&mut gc, None, 0, "").await);
    assert_eq!(st.code(), code, "{what}: GetConversationList: {st:?}");
    let st = expect_err(upsert(&mut cc, vec![update("C2Cx")]).await);
    assert_eq!(st.code(), code, "{what}: UpsertConversations: {st:?}");
    assert_denied(&st, code);
    let st = expect_err(delete_convs(&mut cc, &["C2Cx"]).await);
    assert_eq!(st.code(), code, "{what}: DeleteConversations: {st:?}");
}

/// Nobody's state changed: alice and bob still have no groups and no conversations.
async fn assert_untouched(s: &TestServer, users: &[&str]) {
    for user in users {
        let mut gc = s.group_client(user);
        let state = user_state(&mut gc).await;
        assert!(state.groups.group_names.is_empty(), "{user} has groups: {state:?}");
        assert!(state.conversations.is_empty(), "{user} has conversations: {state:?}");
        assert_eq!(state.groups.revision, 0);
    }
}

/// Requests without an authorization header are UNAUTHENTICATED on both services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_token_are_unauthenticated() {
    let s = TestServer::start().await;
    assert_all_rpcs_fail(&s, Headers::default(), Code::Unauthenticated, "no header").await;
    assert_all_rpcs_fail(&s, Headers::new(&[(USER_HEADER, "alice")]), Code::Unauthenticated, "only a user header")
        .await;
    assert_untouched(&s, &["alice"]).await;
}

/// Malformed authorization headers and tokens are UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tokens_are_unauthenticated() {
    let s = TestServer::start().await;
    let good = s.token("alice", false);
    let cases = [
        String::new(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer garbage".to_string(),
        "Bearer a.b.c".to_string(),
        format!("Bearer {}", &good[..good.len() - 5]),
        format!("Bearer {good}x"),
        "Basic YWxpY2U6cGFzc3dvcmQ=".to_string(),
        good.clone(),
        format!("Token {good}"),
    ];
    for value in &cases {
        let headers = Headers::new(&[("authorization", value)]);
        assert_all_rpcs_fail(&s, headers, Code::Unauthenticated, value).await;
    }
    assert_untouched(&s, &["alice"]).await;
}

/// Tokens signed with another secret, with `alg: none`, or with a payload
/// altered after signing are UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badly_signed_tokens_are_unauthenticated() {
    let s = TestServer::start().await;
    let alice = UserId::parse("alice").unwrap();
    let other = Secret::from_bytes(b"a-different-secret-of-enough-bytes");
    let wrong_secret = other.issue(&alice, false, std::time::Duration::from_secs(3600));
    assert_all_rpcs_fail(&s, bearer(&wrong_secret), Code::Unauthenticated, "wrong secret").await;
    let wrong_admin = other.issue(&alice, true, std::time::Duration::from_secs(3600));
    assert_all_rpcs_fail(&s, bearer(&wrong_admin), Code::Unauthenticated, "wrong secret, admin").await;

    let payload = format!(r#"{{"sub":"alice","exp":{},"adm":true}}"#, now() + 3600);
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(payload.as_bytes()));
    assert_all_rpcs_fail(&s, bearer(&none), Code::Unauthenticated, "alg none").await;

    // Take a valid user token for alice and swap its payload for an admin one.
    let valid = s.token("alice", false);
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(payload.as_bytes()), parts[2]);
    assert_all_rpcs_fail(&s, bearer(&tampered), Code::Unauthenticated, "tampered payload").await;
    assert_untouched(&s, &["alice"]).await;
}

/// Expired tokens, and tokens without `exp` or with an invalid `sub`, are
/// UNAUTHENTICATED even when correctly signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_incomplete_tokens_are_unauthenticated() {
    let s = TestServer::start().await;
    let secret = s.secret_bytes();
    let expired = sign(&secret, &Claims { sub: Some("alice"), exp: Some(now() - 120), adm: None });
    assert_all_rpcs_fail(&s, bearer(&expired), Code::Unauthenticated, "expired").await;
    let expired_admin = sign(&secret, &Claims { sub: Some("alice"), exp: Some(now() - 120), adm: Some(true) });
    assert_all_rpcs_fail(&s, bearer(&expired_admin), Code::Unauthenticated, "expired admin").await;
    let no_exp = sign(&secret, &Claims { sub: Some("alice"), exp: None, adm: None });
    assert_all_rpcs_fail(&s, bearer(&no_exp), Code::Unauthenticated, "no exp").await;
    let no_sub = sign(&secret, &Claims { sub: None, exp: Some(now() + 3600), adm: None });
    assert_all_rpcs_fail(&s, bearer(&no_sub), Code::Unauthenticated, "no sub").await;
    let bad_sub = sign(&secret, &Claims { sub: Some("al ice"), exp: Some(now() + 3600), adm: None });
    assert_all_rpcs_fail(&s, bearer(&bad_sub), Code::Unauthenticated, "sub with a space").await;
    let empty_sub = sign(&secret, &Claims { sub: Some(""), exp: Some(now() + 3600), adm: None });
    assert_all_rpcs_fail(&s, bearer(&empty_sub), Code::Unauthenticated, "empty sub").await;
    assert_untouched(&s, &["alice"]).await;

    // The same hand-made token with a future exp works: the harness signs correctly.
    let fine = sign(&secret, &Claims { sub: Some("alice"), exp: Some(now() + 3600), adm: None });
    let mut gc = s.group_client_with(bearer(&fine));
    create(&mut gc, "G", &["C2Cx"]).await.unwrap();
    assert_eq!(group_names(&mut s.group_client("alice")).await, ["G"]);
}

/// A user token that names another user in x-convgroups-user is
/// PERMISSION_DENIED and touches nobody's data; naming itself is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_token_for_another_user_is_permission_denied() {
    let s = TestServer::start().await;
    let alice_bearer = format!("Bearer {}", s.token("alice", false));
    let as_bob = Headers::new(&[("authorization", &alice_bearer), (USER_HEADER, "bob")]);
    assert_all_rpcs_fail(&s, as_bob, Code::PermissionDenied, "alice as bob").await;
    assert_untouched(&s, &["alice", "bob"]).await;

    let as_self = Headers::new(&[("authorization", &alice_bearer), (USER_HEADER, "alice")]);
    let mut gc = s.group_client_with(as_self);
    create(&mut gc, "Mine", &["C2Cx"]).await.unwrap();
    assert_eq!(group_names(&mut s.group_client("alice")).await, ["Mine"]);
    assert!(group_names(&mut s.group_client("bob")).await.is_empty());
}

/// An admin token acts for the user named in x-convgroups-user, on both
/// services: the changes are that user's and nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_acts_for_the_user_in_the_header() {
    let s = TestServer::start().await;
    let mut admin_alice = s.admin_group_client(Some("alice"));
    let mut admin_alice_cc = s.admin_conv_client(Some("alice"));
    let mut admin_bob = s.admin_group_client(Some("bob"));

    let r = create(&mut admin_alice, "Suppliers", &["C2Cvendor"]).await.unwrap();
    upsert_ok(&mut admin_alice_cc, vec![ConversationUpdate { unread_count: Some(2), ..update("C2Cvendor") }]).await;
    create(&mut admin_bob, "Bobs", &["C2Cfriend"]).await.unwrap();

    let mut alice = s.group_client("alice");
    let alice_state = user_state(&mut alice).await;
    assert_eq!(alice_state.groups.group_names, ["Suppliers"]);
    assert_eq!(ids_of(&alice_state.conversations), ["C2Cvendor"]);
    assert_eq!(alice_state.conversations[0].unread_count, 2);
    assert!(alice_state.groups.revision > r.revision);
    assert_eq!(user_state(&mut admin_alice).await, alice_state, "the admin sees exactly alice's state");
    assert_eq!(group_names(&mut s.group_client("bob")).await, ["Bobs"]);

    // Alice continues from the admin's change with expected_revision.
    create_owned(&mut alice, "More", strings(&["C2Cx"]), Some(alice_state.groups.revision)).await.unwrap();
    assert_eq!(group_names(&mut admin_alice).await, ["Suppliers", "More"]);
}

/// Two users are isolated: same group names coexist, and nothing bob does
/// can see or change alice's groups, members or registry data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_see_or_change_each_others_data() {
    let s = TestServer::start_with(|c| c.limits.max_groups = 2).await;
    let mut alice = s.group_client("alice");
    let mut alice_cc = s.conv_client("alice");
    let mut bob = s.group_client("bob");
    let mut bob_cc = s.conv_client("bob");

    upsert_ok(
        &mut alice_cc,
        vec![ConversationUpdate { show_name: Some("Mum".into()), unread_count: Some(9), ..update("C2Cmum") }],
    )
    .await;
    create(&mut alice, "Family", &["C2Cmum", "C2Cdad"]).await.unwrap();
    create(&mut alice, "Secret", &["GROUPplans"]).await.unwrap();
    let alice_before = user_state(&mut alice).await;

    // Bob sees nothing of alice's.
    let bob_state = user_state(&mut bob).await;
    assert!(bob_state.groups.group_names.is_empty());
    assert!(bob_state.conversations.is_empty());
    assert_eq!(unread(&mut bob, None).await.unwrap(), 0);
    let r = list_page(&mut bob, Some(ConversationFilter { conversation_ids: strings(&["C2Cmum"]), ..filter() }), 0, "")
        .await
        .unwrap();
    assert!(r.conversations.is_empty());

    // Bob cannot touch alice's groups or conversations.
    let st = expect_err(delete_group(&mut bob, "Secret").await);
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
    let st = expect_err(rename(&mut bob, "Secret", "Mine").await);
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
    let st = expect_err(add(&mut bob, "Family", &["C2Cbob"]).await);
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
    let st = expect_err(remove(&mut bob, "Family", &["C2Cmum"]).await);
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
    let st = expect_err(
        list_page(&mut bob, Some(ConversationFilter { group_name: Some("Family".into()), ..filter() }), 0, "").await,
    );
    assert_status(&st, Code::NotFound, "GROUP_NOT_FOUND", Some("51009"));
    let r = delete_convs(&mut bob_cc, &["C2Cmum", "C2Cdad"]).await.unwrap();
    assert_failed(&r.failed, &[("C2Cmum", R::ConversationNotFound), ("C2Cdad", R::ConversationNotFound)]);

    // Bob's own data, with alice's group names and conversation ids, is his own.
    create(&mut bob, "Family", &["C2Cmum"]).await.expect("bob's own Family");
    create(&mut bob, "Secret", &["C2Cx"]).await.expect("bob has his own group limit");
    upsert_ok(&mut bob_cc, vec![ConversationUpdate { show_name: Some("Bob's mum".into()), ..update("C2Cmum") }]).await;
    delete_convs(&mut bob_cc, &["C2Cx"]).await.unwrap();
    reorder(&mut bob, &["Secret", "Family"]).await.unwrap();
    rename(&mut bob, "Family", "Fam").await.unwrap();

    assert_eq!(user_state(&mut alice).await, alice_before, "alice's state is untouched by bob");
    assert_eq!(find_conversation(&mut bob, "C2Cmum").await.unwrap().show_name, "Bob's mum");
    assert_eq!(group_names(&mut bob).await, ["Secret", "Fam"]);
}

/// The gRPC health service answers without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_needs_no_token() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let s = TestServer::start().await;
    let mut health = HealthClient::new(s.channel());
    let r = health.check(HealthCheckRequest { service: String::new() }).await.expect("health check").into_inner();
    assert_eq!(r.status, ServingStatus::Serving as i32);
}
