//! Hostile input over the wire: malformed protobuf, invalid UTF-8 in string
//! fields, oversized messages, absurd counts, unknown enum values, huge page
//! sizes, forged page tokens, 10,000 ids in one call, broken gRPC framing and
//! odd headers. Each gets a clear error (never a panic, never a hang), the
//! attacker's and a bystander's state are unchanged afterwards, and the
//! server keeps serving others while it happens.
//!
//! Protobuf that does not decode never reaches the service: our codec answers
//! it with INVALID_ARGUMENT, reason MALFORMED_REQUEST and prost's message
//! naming the message and field. What the service sees, it answers with
//! INVALID_ARGUMENT / RESOURCE_EXHAUSTED and an ErrorInfo.

use std::pin::Pin;
use std::time::Duration;

use crate::support::inproc::*;
use base64::Engine as _;
use convgroups::auth::USER_HEADER;
use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::watch_group_events_response::Kind as WatchKind;
use convgroups::pb::ConversationResultCode as R;
use convgroups::pb::*;
use prost::bytes::{Buf, BufMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const GROUP_SVC: &str = "/convgroups.v1.ConversationGroupService/";
const CONV_SVC: &str = "/convgroups.v1.ConversationService/";

/// Every RPC that needs a token: (path, server-streaming).
fn rpcs() -> Vec<(String, bool)> {
    let group = [
        "CreateConversationGroup",
        "DeleteConversationGroup",
        "RenameConversationGroup",
        "GetConversationGroupList",
        "ReorderConversationGroups",
        "AddConversationsToGroup",
        "DeleteConversationsFromGroup",
        "GetConversationList",
        "GetUnreadCount",
        "MarkConversationGroupRead",
        "SetConversationGroupMute",
        "MoveConversations",
        "UpdateConversationGroup",
        "SetConversationGroupRule",
        "SetConversationGroupSortMode",
        "MoveConversationsInGroup",
        "PinConversationsInGroup",
        "UnpinConversationsInGroup",
    ];
    let mut all: Vec<(String, bool)> = group.iter().map(|m| (format!("{GROUP_SVC}{m}"), false)).collect();
    all.push((format!("{GROUP_SVC}WatchGroupEvents"), true));
    all.push((format!("{CONV_SVC}UpsertConversations"), false));
    all.push((format!("{CONV_SVC}DeleteConversations"), false));
    all
}

// ---------------------------------------------------------------------------
// A codec that sends and receives raw bytes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;
#[derive(Debug)]
struct RawEncoder;
#[derive(Debug)]
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Sends `body` as the request message of `path` with a bearer token for
/// `user`; for a streaming RPC, returns the first message (or the status
/// the stream ends with).
async fn raw_call(s: &TestServer, user: &str, path: &str, streaming: bool, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    raw_call_as(s, Some(user), path, streaming, body).await
}

/// [`raw_call`], with no authorization header for `None`.
async fn raw_call_as(
    s: &TestServer,
    user: Option<&str>,
    path: &str,
    streaming: bool,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(s.channel());
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(body);
    if let Some(user) = user {
        let bearer = format!("Bearer {}", s.token(user, false));
        request.metadata_mut().insert("authorization", bearer.parse().expect("ASCII"));
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    if streaming {
        let mut stream = grpc.server_streaming(request, path, RawCodec).await?.into_inner();
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(first))) => Ok(first),
            Ok(Ok(None)) => Err(Status::unknown("stream ended without a message")),
            Ok(Err(status)) => Err(status),
            Err(_) => Err(Status::deadline_exceeded("no first message within 10 s")),
        }
    } else {
        grpc.unary(request, path, RawCodec).await.map(|r| r.into_inner())
    }
}

// ---------------------------------------------------------------------------
// Hand-encoded protobuf
// ---------------------------------------------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A varint field (wire type 0).
fn varint_field(field: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3, out);
    varint(v, out);
}

fn msg(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    build(&mut out);
    out
}

const BAD_UTF8: &[u8] = b"ok\xff\xfe\xc3";

// ---------------------------------------------------------------------------
// Victims, and the check that the server keeps serving them
// ---------------------------------------------------------------------------

/// The attacker (`mallory`) and a bystander (`carol`), each with groups and
/// registered conversations, and their states as seen before the attack.
struct Victims {
    before: Vec<(String, UserState)>,
}

impl Victims {
    async fn seed(s: &TestServer) -> Self {
        let mut before = Vec::new();
        for user in ["mallory", "carol"] {
            let mut gc = s.group_client(user);
            let mut cc = s.conv_client(user);
            create(&mut gc, "Work", &["C2Cboss", "GROUPteam"]).await.expect("seed group");
            create(&mut gc, "Home", &["C2Cmum"]).await.expect("seed group");
            upsert_ok(
                &mut cc,
                vec![
                    ConversationUpdate { unread_count: Some(3), is_pinned: Some(true), ..update("C2Cboss") },
                    ConversationUpdate {
                        show_name: Some(format!("{user}'s mum")),
                        order_key: Some(9),
                        ..update("C2Cmum")
                    },
                ],
            )
            .await;
            before.push((user.to_string(), user_state(&mut gc).await));
        }
        Self { before }
    }

    /// Both users' states are exactly as before, and health says SERVING.
    async fn assert_untouched(&self, s: &TestServer, after: &str) {
        for (user, state) in &self.before {
            let now = user_state(&mut s.group_client(user)).await;
            assert_eq!(&now, state, "{user}'s state changed after {after}");
        }
        use tonic_health::pb::health_client::HealthClient;
        let health = HealthClient::new(s.channel())
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .unwrap_or_else(|e| panic!("health after {after}: {e:?}"))
            .into_inner();
        assert_eq!(health.status, 1, "health SERVING after {after}");
    }
}

/// A decode failure: INVALID_ARGUMENT / MALFORMED_REQUEST whose message
/// names what failed.
#[track_caller]
fn assert_undecodable(status: &Status, what: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let info = status.get_details_error_info().unwrap_or_else(|| panic!("{what}: no ErrorInfo in {status:?}"));
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("MALFORMED_REQUEST", "convgroups"), "{what}");
    assert!(status.message().contains("decode"), "{what}: message {:?} says what failed", status.message());
}

/// The message of `status` names `field`.
#[track_caller]
fn assert_names(status: &Status, field: &str, what: &str) {
    assert!(status.message().contains(field), "{what}: message {:?} should name {field:?}", status.message());
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Bytes that are not protobuf, sent to every RPC: MALFORMED_REQUEST from
/// the decoder, nothing changes, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_rejected_by_every_rpc() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("varint longer than 10 bytes", vec![0xff; 11]),
        ("length-delimited field cut short", vec![0x0a, 0x05, b'a']),
        ("length of 4 GiB with no data", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("wire type 7", vec![0x0f]),
        ("wire type 6", vec![0x0e, 0x01]),
        ("field number 0", vec![0x00, 0x01]),
        ("start group without an end", vec![0x0b, 0x08, 0x01]),
        ("end group without a start", vec![0x0c]),
        ("truncated tag varint", vec![0x80]),
        ("truncated 64-bit field", vec![0x09, 0x01, 0x02]),
        ("truncated 32-bit field", vec![0x0d, 0x01]),
        ("known field with the wrong wire type", vec![0x08, 0x01]),
    ];
    for (path, streaming) in rpcs() {
        for (what, bytes) in &garbage {
            let result = raw_call(&s, "mallory", &path, streaming, bytes.clone()).await;
            match result {
                // A field unknown to this message is skipped, as proto3 wants;
                // the rest of the (now empty) request is then checked.
                Ok(_) if matches!(*what, "known field with the wrong wire type") => {}
                Ok(answer) => panic!("{path} accepted {what}: {answer:?}"),
                Err(status) if status.get_details_error_info().is_some_and(|i| i.reason == "MALFORMED_REQUEST") => {
                    assert_undecodable(&status, &format!("{path}: {what}"))
                }
                // Decoded (the field is unknown here) and refused by the service.
                Err(status) => assert!(
                    status.get_details_error_info().is_some(),
                    "{path}: {what}: a service error carries ErrorInfo: {status:?}"
                ),
            }
        }
    }
    victims.assert_untouched(&s, "malformed protobuf").await;
}

/// The contract (§5) wants every non-OK status to carry a
/// google.rpc.ErrorInfo in the `convgroups` domain, requests that do not
/// decode included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_get_a_status_with_error_info() {
    let s = TestServer::start().await;
    let path = format!("{GROUP_SVC}CreateConversationGroup");
    let status = raw_call(&s, "mallory", &path, false, vec![0x0a, 0x05, b'a']).await.expect_err("undecodable");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("contract §5: every non-OK status carries an ErrorInfo; got {status:?}"));
    assert_eq!(info.domain, "convgroups");
}

/// Without a token, nothing about the body matters: garbage, invalid UTF-8
/// and oversized requests alike are UNAUTHENTICATED (contract §3), so an
/// anonymous client learns nothing and costs no decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_token_are_unauthenticated_whatever_their_body() {
    let s = TestServer::start_with(|c| c.server.max_request_bytes = 1024).await;
    let bodies = [vec![0xff; 11], msg(|m| bytes_field(1, BAD_UTF8, m)), vec![b'x'; 4096]];
    for (path, streaming) in rpcs() {
        for body in &bodies {
            let st = raw_call_as(&s, None, &path, streaming, body.clone()).await.expect_err(&path);
            assert_eq!(
                st.code(),
                Code::Unauthenticated,
                "{path} without a token, body of {} bytes: {st:?}",
                body.len()
            );
        }
    }
}

/// Invalid UTF-8 in every kind of string field, top-level and nested: the
/// request is refused, the message names the field, nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_string_fields_is_rejected() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let g = |m: &str| format!("{GROUP_SVC}{m}");
    let c = |m: &str| format!("{CONV_SVC}{m}");
    let update_with = |field: u32| {
        msg(|m| {
            let update = msg(|u| {
                bytes_field(1, b"C2Cboss", u);
                bytes_field(field, BAD_UTF8, u);
            });
            bytes_field(1, &update, m);
        })
    };
    let cases: Vec<(String, bool, Vec<u8>, &str)> = vec![
        (
            g("CreateConversationGroup"),
            false,
            msg(|m| {
                bytes_field(1, BAD_UTF8, m);
                bytes_field(2, b"C2Cx", m);
            }),
            "group_name",
        ),
        (
            g("CreateConversationGroup"),
            false,
            msg(|m| {
                bytes_field(1, b"New", m);
                bytes_field(2, b"C2Cx", m);
                bytes_field(2, BAD_UTF8, m);
            }),
            "conversation_ids",
        ),
        (g("DeleteConversationGroup"), false, msg(|m| bytes_field(1, b"Wor\xffk", m)), "group_name"),
        (
            g("RenameConversationGroup"),
            false,
            msg(|m| {
                bytes_field(1, b"Work", m);
                bytes_field(2, BAD_UTF8, m);
            }),
            "new_name",
        ),
        (
            g("RenameConversationGroup"),
            false,
            msg(|m| {
                bytes_field(1, BAD_UTF8, m);
                bytes_field(2, b"Job", m);
            }),
            "old_name",
        ),
        (
            g("ReorderConversationGroups"),
            false,
            msg(|m| {
                bytes_field(1, b"Home", m);
                bytes_field(1, BAD_UTF8, m);
            }),
            "group_names",
        ),
        (
            g("AddConversationsToGroup"),
            false,
            msg(|m| {
                bytes_field(1, b"Work", m);
                bytes_field(2, BAD_UTF8, m);
            }),
            "conversation_ids",
        ),
        (
            g("DeleteConversationsFromGroup"),
            false,
            msg(|m| {
                bytes_field(1, BAD_UTF8, m);
                bytes_field(2, b"C2Cboss", m);
            }),
            "group_name",
        ),
        (
            g("GetConversationList"),
            false,
            msg(|m| bytes_field(1, &msg(|f| bytes_field(2, BAD_UTF8, f)), m)),
            "group_name",
        ),
        (
            g("GetConversationList"),
            false,
            msg(|m| bytes_field(1, &msg(|f| bytes_field(6, BAD_UTF8, f)), m)),
            "conversation_ids",
        ),
        (g("GetConversationList"), false, msg(|m| bytes_field(3, BAD_UTF8, m)), "page_token"),
        (g("GetUnreadCount"), false, msg(|m| bytes_field(1, &msg(|f| bytes_field(2, BAD_UTF8, f)), m)), "group_name"),
        (g("WatchGroupEvents"), true, msg(|m| bytes_field(4, BAD_UTF8, m)), "group_names"),
        (
            g("UpdateConversationGroup"),
            false,
            msg(|m| {
                bytes_field(1, b"Work", m);
                bytes_field(3, &msg(|l| bytes_field(1, BAD_UTF8, l)), m);
            }),
            "icon",
        ),
        (
            g("UpdateConversationGroup"),
            false,
            msg(|m| {
                bytes_field(1, b"Work", m);
                bytes_field(4, &msg(|f| bytes_field(1, BAD_UTF8, f)), m);
            }),
            "paths",
        ),
        (
            c("UpsertConversations"),
            false,
            msg(|m| bytes_field(1, &msg(|u| bytes_field(1, BAD_UTF8, u)), m)),
            "conversation_id",
        ),
        (c("UpsertConversations"), false, update_with(2), "show_name"),
        (c("UpsertConversations"), false, update_with(3), "face_url"),
        (
            c("UpsertConversations"),
            false,
            msg(|m| {
                let update = msg(|u| {
                    bytes_field(1, b"C2Cboss", u);
                    bytes_field(11, &msg(|l| bytes_field(2, BAD_UTF8, l)), u);
                });
                bytes_field(1, &update, m);
            }),
            "text",
        ),
        (
            c("DeleteConversations"),
            false,
            msg(|m| {
                bytes_field(1, b"C2Cmum", m);
                bytes_field(1, BAD_UTF8, m);
            }),
            "conversation_ids",
        ),
    ];
    for (path, streaming, body, field) in cases {
        let what = format!("{path} with invalid UTF-8 in {field}");
        let status = raw_call(&s, "mallory", &path, streaming, body).await.expect_err(&what);
        assert_undecodable(&status, &what);
        assert_names(&status, field, &what);
        assert!(status.message().contains("UTF-8"), "{what}: {status:?}");
    }
    victims.assert_untouched(&s, "invalid UTF-8").await;

    // The same requests with valid UTF-8 decode fine: the harness is sound.
    let ok = msg(|m| {
        bytes_field(1, b"New", m);
        bytes_field(2, b"C2Cx", m);
    });
    let answer = raw_call(&s, "dave", &g("CreateConversationGroup"), false, ok).await.expect("valid request");
    let answer = CreateConversationGroupResponse::decode(answer.as_slice()).expect("a response");
    assert_eq!(answer.success_conversation_ids, ["C2Cx"]);
}

/// Requests over the decoding limit are RESOURCE_EXHAUSTED (the default
/// 4 MiB, and a lowered --max-request-bytes); just under it the service
/// decodes and judges the request itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_resource_exhausted() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let mut gc = s.group_client("mallory");
    let mut cc = s.conv_client("mallory");
    let five_mib = "n".repeat(5 * 1024 * 1024);

    let st = expect_err(create(&mut gc, &five_mib, &["C2Cx"]).await);
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert!(st.message().contains("too large"), "{st:?}");
    let big_update = ConversationUpdate { custom_data: Some(vec![7; 5 * 1024 * 1024]), ..update("C2Cboss") };
    let st = expect_err(upsert(&mut cc, vec![big_update]).await);
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    for (path, streaming) in rpcs() {
        let body = msg(|m| bytes_field(99, five_mib.as_bytes(), m));
        let st = raw_call(&s, "mallory", &path, streaming, body).await.expect_err(&path);
        assert_eq!(st.code(), Code::ResourceExhausted, "{path}: {st:?}");
    }

    // Just under the limit: decoded, then refused by the name rule.
    let almost = "n".repeat(4 * 1024 * 1024 - 64);
    let st = expect_err(create(&mut gc, &almost, &["C2Cx"]).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"), "group_name");
    let big_update = ConversationUpdate { show_name: Some(almost), ..update("C2Cboss") };
    let r = upsert(&mut cc, vec![big_update]).await.expect("decoded and judged per item");
    assert_failed(&r.failed, &[("C2Cboss", R::InvalidField)]);
    assert!(r.failed[0].message.contains("show_name"), "{:?}", r.failed[0]);
    victims.assert_untouched(&s, "oversized requests").await;

    let small = TestServer::start_with(|c| c.server.max_request_bytes = 64 * 1024).await;
    let mut gc = small.group_client("mallory");
    let st = expect_err(create(&mut gc, &"n".repeat(65 * 1024), &["C2Cx"]).await);
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    let st = expect_err(create(&mut gc, &"n".repeat(60 * 1024), &["C2Cx"]).await);
    assert_status(&st, Code::InvalidArgument, "INVALID_GROUP_NAME", Some("51011"));
    create(&mut gc, "fine", &["C2Cx"]).await.expect("a normal request after oversized ones");
}

/// Oversized requests are refused by tonic's decoder, before the service:
/// their status has no ErrorInfo, which contract §5 asks of every non-OK
/// status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_status_carries_error_info() {
    let s = TestServer::start_with(|c| c.server.max_request_bytes = 1024).await;
    let st = expect_err(create(&mut s.group_client("mallory"), &"n".repeat(2048), &["C2Cx"]).await);
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    let info = st
        .get_details_error_info()
        .unwrap_or_else(|| panic!("contract §5: every non-OK status carries an ErrorInfo; got {st:?}"));
    assert_eq!(info.domain, "convgroups");
}

/// 10,000 ids (or updates) in one call, on every RPC that takes a list:
/// INVALID_CONVERSATION_LIST naming the field and the limit. Other absurd
/// counts get their own clear answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_ids_in_one_call_are_refused() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let mut gc = s.group_client("mallory");
    let mut cc = s.conv_client("mallory");
    let many = c2c_ids("flood", 10_000);
    #[track_caller]
    fn too_many(st: &Status, field: &str) {
        let info = assert_status_field(st, Code::InvalidArgument, "INVALID_CONVERSATION_LIST", Some("51006"), field);
        assert_eq!(info.metadata.get("max_items").map(String::as_str), Some("100"), "{st:?}");
        assert!(st.message().contains("10000"), "{st:?}");
    }
    too_many(&expect_err(create_owned(&mut gc, "Flood", many.clone(), None).await), "conversation_ids");
    too_many(&expect_err(add_owned(&mut gc, "Work", many.clone()).await), "conversation_ids");
    let st = expect_err(
        gc.delete_conversations_from_group(DeleteConversationsFromGroupRequest {
            group_name: "Work".into(),
            conversation_ids: many.clone(),
            expected_revision: None,
            ..Default::default()
        })
        .await,
    );
    too_many(&st, "conversation_ids");
    let st = expect_err(cc.delete_conversations(DeleteConversationsRequest { conversation_ids: many.clone() }).await);
    too_many(&st, "conversation_ids");
    let updates: Vec<ConversationUpdate> = many.iter().map(|id| update(id)).collect();
    too_many(&expect_err(upsert(&mut cc, updates).await), "conversations");
    let flood = ConversationFilter { conversation_ids: many.clone(), ..filter() };
    too_many(&expect_err(list_page(&mut gc, Some(flood.clone()), 0, "").await), "filter.conversation_ids");
    too_many(&expect_err(unread(&mut gc, Some(flood)).await), "filter.conversation_ids");

    // A million empty strings (2 MB): refused by count, not parsed one by one.
    let empties = vec![String::new(); 1_000_000];
    too_many(&expect_err(add_owned(&mut gc, "Work", empties).await), "conversation_ids");

    // 10,000 group names in a reorder: not a permutation.
    let names: Vec<String> = (0..10_000).map(|i| format!("g{i}")).collect();
    let st = expect_err(
        gc.reorder_conversation_groups(ReorderConversationGroupsRequest {
            group_names: names,
            expected_revision: None,
            ..Default::default()
        })
        .await,
    );
    assert_status_field(&st, Code::FailedPrecondition, "GROUP_ORDER_MISMATCH", None, "group_names");

    // 100,000 marks on one conversation: that item fails, naming the field.
    let marks =
        ConversationUpdate { mark_list: Some(MarkList { values: (0..100_000).collect() }), ..update("C2Cboss") };
    let r = upsert(&mut cc, vec![marks]).await.expect("judged per item");
    assert_failed(&r.failed, &[("C2Cboss", R::InvalidField)]);
    assert!(r.failed[0].message.contains("mark_list"), "{:?}", r.failed[0]);

    // A watch filter of 10,000 group names is refused, naming the field and
    // the limit (max_groups, 20: no user has more groups); 20 names and
    // 10,000 (repeated) event types open and start with a bookmark.
    let too_many =
        WatchGroupEventsRequest { group_names: (0..10_000).map(|i| format!("g{i}")).collect(), ..Default::default() };
    let st = expect_err(gc.watch_group_events(too_many).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_ARGUMENT", None, "group_names");
    assert!(st.message().contains("max_groups") && st.message().contains("20"), "{st:?}");
    let st = expect_err(
        gc.watch_group_events(WatchGroupEventsRequest {
            group_names: (0..21).map(|i| format!("g{i}")).collect(),
            ..Default::default()
        })
        .await,
    );
    assert_status_field(&st, Code::InvalidArgument, "INVALID_ARGUMENT", None, "group_names");
    let request = WatchGroupEventsRequest {
        event_types: (0..10_000).map(|i| i % 8 + 1).collect(),
        group_names: (0..20).map(|i| format!("g{i}")).collect(),
        ..Default::default()
    };
    let mut stream = gc.watch_group_events(request).await.expect("watch with full filters").into_inner();
    let first = stream.message().await.expect("first message").expect("a message");
    assert!(matches!(first.kind, Some(WatchKind::Bookmark(_))), "{first:?}");
    drop(stream);
    victims.assert_untouched(&s, "10,000 ids").await;
}

/// Enum values the proto does not define: per-item INVALID_FIELD for
/// recv_opt, INVALID_ARGUMENT naming filter.type and event_types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_enum_values_are_refused_with_the_field_named() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let mut gc = s.group_client("mallory");
    let mut cc = s.conv_client("mallory");

    for value in [99, -1, 0, i32::MAX, i32::MIN, 6] {
        let r = upsert(&mut cc, vec![ConversationUpdate { recv_opt: Some(value), ..update("C2Cboss") }])
            .await
            .expect("judged per item");
        assert_failed(&r.failed, &[("C2Cboss", R::InvalidField)]);
        assert!(r.failed[0].message.contains("recv_opt"), "{value}: {:?}", r.failed[0]);
        assert!(r.success_conversation_ids.is_empty());
    }
    for value in [42, -5, 0, 3, i32::MIN] {
        let bad = ConversationFilter { r#type: Some(value), ..filter() };
        let st = expect_err(list_page(&mut gc, Some(bad.clone()), 0, "").await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_ARGUMENT", None, "filter.type");
        let st = expect_err(unread(&mut gc, Some(bad)).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_ARGUMENT", None, "filter.type");
    }
    for types in [vec![77], vec![0], vec![-1], vec![1, 99]] {
        let request = WatchGroupEventsRequest { event_types: types.clone(), ..Default::default() };
        let st = expect_err(gc.watch_group_events(request).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_ARGUMENT", None, "event_types");
    }
    // An unknown enum value inside a message nobody validates (the removal
    // reason is output-only) and unknown fields are ignored, as proto3 says.
    let path = format!("{GROUP_SVC}GetConversationGroupList");
    let body = msg(|m| {
        varint_field(7, 12345, m);
        bytes_field(500, b"whatever", m);
    });
    let answer = raw_call(&s, "mallory", &path, false, body).await.expect("unknown fields are skipped");
    let list = GetConversationGroupListResponse::decode(answer.as_slice()).expect("a response");
    assert_eq!(list.group_names, ["Work", "Home"]);
    victims.assert_untouched(&s, "unknown enum values").await;
}

/// page_size 0, 1 and u32::MAX: the default, exactly one, and the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_page_sizes_are_capped() {
    let s = TestServer::start_with(|c| {
        c.limits.default_page_size = 3;
        c.limits.max_page_size = 5;
    })
    .await;
    let mut gc = s.group_client("mallory");
    let mut cc = s.conv_client("mallory");
    let ids = c2c_ids("p", 12);
    upsert_ok(&mut cc, ids.iter().map(|id| update(id)).collect()).await;
    for (page_size, expected) in [(0, 3), (1, 1), (5, 5), (6, 5), (u32::MAX, 5), (u32::MAX - 1, 5), (1 << 31, 5)] {
        let page = list_page(&mut gc, None, page_size, "").await.expect("listing");
        assert_eq!(page.conversations.len(), expected, "page_size {page_size}");
        assert!(!page.is_finished);
    }
    let all = list_all_paged(&mut gc, None, u32::MAX).await.expect("walk");
    assert_eq!(ids_of(&all), ids, "a walk with the largest page size sees everything once, in order");
}

/// Page tokens that were not issued for this filter, or not issued at all:
/// INVALID_ARGUMENT / INVALID_PAGE_TOKEN. A structurally valid token (even
/// one another user got) only ever pages through the caller's own list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_page_tokens_are_refused_or_harmless() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let mut gc = s.group_client("mallory");
    let b64 = |raw: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);

    // A real token, for the unfiltered list with page size 1.
    let first = list_page(&mut gc, None, 1, "").await.expect("first page");
    let real = first.next_page_token.clone();
    assert!(!real.is_empty());
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&real).expect("base64url, as documented");

    let mut forged: Vec<(String, String)> = vec![
        ("not base64".into(), "!!!!".into()),
        ("padding only".into(), "====".into()),
        ("standard alphabet".into(), real.replace('-', "+").replace('_', "/") + "+/"),
        ("padded".into(), format!("{real}==")),
        ("one char".into(), "A".into()),
        ("whitespace".into(), format!(" {real}")),
        ("trailing garbage".into(), format!("{real}x")),
        ("truncated".into(), real[..real.len() - 3].to_string()),
        ("a zero byte".into(), b64(&[0])),
        ("short".into(), b64(&[1; 18])),
        ("a mebibyte".into(), "A".repeat(1 << 20)),
        ("unicode".into(), "\u{1f600}\u{1f600}".into()),
    ];
    let mut patched = |what: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut raw = decoded.clone();
        f(&mut raw);
        forged.push((what.to_string(), b64(&raw)));
    };
    patched("version 2", &|r| r[0] = 2);
    patched("version 0", &|r| r[0] = 0);
    patched("another filter's fingerprint", &|r| r[1] ^= 0x55);
    patched("pinned flag 7", &|r| r[9] = 7);
    patched("invalid UTF-8 id", &|r| {
        r.truncate(18);
        r.extend_from_slice(b"C2C\xff\xfe");
    });
    patched("malformed id", &|r| {
        r.truncate(18);
        r.extend_from_slice(b"nonsense");
    });
    patched("no id", &|r| r.truncate(18));
    patched("an id of 10 KB", &|r| {
        r.truncate(18);
        r.extend_from_slice(format!("C2C{}", "a".repeat(10_000)).as_bytes());
    });
    for (what, token) in &forged {
        let st = list_page(&mut gc, None, 1, token).await.expect_err(what);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");
    }

    // The real token with another filter is refused too.
    let other = ConversationFilter { r#type: Some(ConversationType::C2c as i32), ..filter() };
    let st = expect_err(list_page(&mut gc, Some(other), 1, &real).await);
    assert_status_field(&st, Code::InvalidArgument, "INVALID_PAGE_TOKEN", None, "page_token");

    // Mallory's token in carol's hands, and a hand-made position: carol
    // only ever sees carol's conversations.
    let mut carol = s.group_client("carol");
    let carol_all = ids_of(&list_all(&mut carol, None).await);
    let page = list_page(&mut carol, None, 100, &real).await.expect("a well-formed token");
    for c in &page.conversations {
        assert!(carol_all.contains(&c.conversation_id), "carol got {c:?}");
        assert!(!c.show_name.contains("mallory"), "carol got mallory's data: {c:?}");
    }
    let mut handmade = decoded.clone();
    handmade.truncate(9);
    handmade.push(1);
    handmade.extend_from_slice(&u64::MAX.to_be_bytes());
    handmade.extend_from_slice(b"C2C!");
    let page = list_page(&mut carol, None, 100, &b64(&handmade)).await.expect("a well-formed position");
    for c in &page.conversations {
        assert!(carol_all.contains(&c.conversation_id), "carol got {c:?}");
    }
    victims.assert_untouched(&s, "forged page tokens").await;
}

/// Odd metadata: an admin token naming a user id that is not one, or a
/// header value that is not ASCII: INVALID_ARGUMENT naming the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_user_headers_are_refused() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let mut client = ConversationGroupServiceClient::new(s.channel());
    let admin = format!("Bearer {}", s.token("backend", true));
    let values: Vec<Vec<u8>> = vec![
        b"\xff\xfe".to_vec(),
        "caf\u{e9}".as_bytes().to_vec(),
        b"two words".to_vec(),
        b"".to_vec(),
        vec![b'a'; 129],
        vec![b'a'; 8 * 1024],
    ];
    for value in values {
        let mut request = Request::new(CreateConversationGroupRequest {
            group_name: "Hijack".into(),
            conversation_ids: strings(&["C2Cx"]),
            expected_revision: None,
            ..Default::default()
        });
        request.metadata_mut().insert("authorization", admin.parse().unwrap());
        let Ok(header) = MetadataValue::try_from(value.as_slice()) else { continue };
        request.metadata_mut().insert(USER_HEADER, header);
        let st = expect_err(client.create_conversation_group(request).await);
        assert_status_field(&st, Code::InvalidArgument, "INVALID_ARGUMENT", None, USER_HEADER);
    }
    // A huge authorization header is refused (by the token check or by the
    // HTTP/2 layer) and does not take the server down. hyper answers it by
    // closing the whole connection (GOAWAY), so it goes over a connection of
    // its own: the shared one must stay usable for the checks below.
    let mut request = Request::new(GetConversationGroupListRequest::default());
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    request.metadata_mut().insert("authorization", huge.parse().unwrap());
    let own = tonic::transport::Endpoint::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .expect("a connection of its own");
    let st = expect_err(ConversationGroupServiceClient::new(own).get_conversation_group_list(request).await);
    assert_ne!(st.code(), Code::Ok);
    victims.assert_untouched(&s, "hostile headers").await;
}

/// Broken gRPC framing below the protobuf layer, sent as raw HTTP/2
/// requests: each gets a non-OK status and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_grpc_framing_is_refused() {
    use tonic::codegen::Body as _;
    use tower::ServiceExt as _;

    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let bearer = format!("Bearer {}", s.token("mallory", false));
    // Bodies are Strings (http-body implements Body for String), so every
    // byte here is ASCII: lengths stay below 0x80 per byte.
    let frame = |flag: u8, len: u32, payload: &str| {
        let mut out = String::new();
        out.push(flag as char);
        for b in len.to_be_bytes() {
            out.push(b as char);
        }
        out.push_str(payload);
        out
    };
    let cases: Vec<(&str, &str, String)> = vec![
        ("empty body: no message", "application/grpc", String::new()),
        ("truncated prefix", "application/grpc", "\0\0\0".into()),
        ("length larger than the body", "application/grpc", frame(0, 100, "\u{8}\u{1}")),
        ("length of ~2 GiB", "application/grpc", frame(0, 0x7f7f_7f7f, "")),
        ("compressed flag without grpc-encoding", "application/grpc", frame(1, 0, "")),
        ("compression flag 2", "application/grpc", frame(2, 0, "")),
        ("two messages in a unary call", "application/grpc", frame(0, 0, "") + &frame(0, 0, "")),
        ("not gRPC at all", "text/plain", "hello".into()),
        ("JSON body with a gRPC content type", "application/grpc", "{\"groupName\":\"x\"}".into()),
    ];
    for (what, content_type, body) in cases {
        let uri = format!("http://{}{GROUP_SVC}GetConversationGroupList", s.addr);
        let request = http::Request::post(uri)
            .header("content-type", content_type)
            .header("te", "trailers")
            .header("authorization", &bearer)
            .body(tonic::body::Body::new(body))
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), s.channel().oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"));
        let Ok(response) = response else { continue };
        let (parts, mut body) = response.into_parts();
        let mut status = tonic::Status::from_header_map(&parts.headers);
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let Ok(frame) = frame else { break };
            if let Ok(trailers) = frame.into_trailers() {
                status = status.or_else(|| tonic::Status::from_header_map(&trailers));
            }
        }
        let ok_http = parts.status == http::StatusCode::OK;
        match status {
            Some(st) if st.code() == Code::Ok => {
                // Two messages in a unary call: tonic answers the first.
                assert_eq!(what, "two messages in a unary call", "{what} was accepted");
            }
            Some(st) => assert!(!st.message().is_empty() || st.code() != Code::Unknown, "{what}: {st:?}"),
            None => assert!(!ok_http, "{what}: neither a grpc-status nor an HTTP error ({parts:?})"),
        }
    }
    victims.assert_untouched(&s, "broken framing").await;
}

/// A barrage of hostile calls while an honest user works: every honest call
/// succeeds, and both users' data survive a restart exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_users_are_served_during_an_attack_and_state_survives_a_restart() {
    let s = TestServer::start().await;
    let victims = Victims::seed(&s).await;
    let honest = {
        let mut gc = s.group_client("erin");
        let mut cc = s.conv_client("erin");
        tokio::spawn(async move {
            for i in 0..40 {
                create(&mut gc, &format!("g{i}"), &["C2Cfriend"]).await.expect("honest create during the attack");
                delete_group(&mut gc, &format!("g{i}")).await.expect("honest delete during the attack");
                upsert_ok(&mut cc, vec![ConversationUpdate { order_key: Some(i), ..update("C2Cfriend") }]).await;
            }
        })
    };
    let garbage = [vec![0xff; 11], vec![0x0a, 0x05, b'a'], msg(|m| bytes_field(1, BAD_UTF8, m))];
    for round in 0..20 {
        for (path, streaming) in rpcs() {
            let body = garbage[round % garbage.len()].clone();
            let result = raw_call(&s, "mallory", &path, streaming, body).await;
            // Every request message has a field 1 now (GetConversationGroupList's
            // is the varint `min_revision`), so each garbage body is refused.
            assert!(result.is_err(), "{path} accepted garbage");
        }
        let many = c2c_ids("x", 10_000);
        assert!(add_owned(&mut s.group_client("mallory"), "Work", many).await.is_err());
    }
    tokio::time::timeout(Duration::from_secs(60), honest).await.expect("the honest user finished").expect("no panic");
    victims.assert_untouched(&s, "the barrage").await;

    let erin = user_state(&mut s.group_client("erin")).await;
    assert_eq!(erin.conversations.len(), 1);
    assert_eq!(erin.conversations[0].order_key, 39);
    let s = s.restart().await;
    victims.assert_untouched(&s, "a restart after the barrage").await;
    assert_eq!(user_state(&mut s.group_client("erin")).await, erin);
}
