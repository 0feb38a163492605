//! grpc-web: raw HTTP/1.1 unary and streaming calls, the tonic-web client
//! over HTTP/2 (plain and TLS), CORS preflights.

use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use convgroups::pb::watch_group_events_response::Kind;
use convgroups::pb::*;
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::support::client::*;
use crate::support::http::*;
use crate::support::inproc::*;
use crate::support::process::*;
use crate::support::watch::watch_from;

/// One grpc-web unary call over HTTP/1.1; the HTTP status and the grpc-web
/// frames of the response body.
pub(crate) fn grpc_web_call(
    addr: std::net::SocketAddr,
    method: &str,
    bearer: &str,
    message: &[u8],
) -> (u16, Vec<(u8, Vec<u8>)>) {
    let (status, _, frames) = grpc_web_call_with(addr, method, &[("authorization", bearer)], message);
    (status, frames)
}

/// Response headers (lowercased names) and grpc-web frames (flag, payload).
type WebResponse = (u16, Vec<(String, String)>, Vec<(u8, Vec<u8>)>);

/// Like [`grpc_web_call`] with any extra headers; also returns the headers.
fn grpc_web_call_with(
    addr: std::net::SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    message: &[u8],
) -> WebResponse {
    let mut head = format!(
        "POST /{GROUP_SERVICE}/{method} HTTP/1.1\ncontent-type: application/grpc-web+proto\nx-grpc-web: 1\n\
         accept: application/grpc-web+proto\nconnection: close"
    );
    for (name, value) in headers {
        head.push_str(&format!("\n{name}: {value}"));
    }
    let mut http = RawHttp::send(addr, &head, &frame(0, message));
    let mut frames = Vec::new();
    while let Some(f) = http.next_frame() {
        frames.push(f);
    }
    (http.status, http.headers.clone(), frames)
}

/// The grpc-status of a grpc-web response: from the trailer frame, else
/// from the headers (a trailers-only answer).
fn grpc_web_status(headers: &[(String, String)], frames: &[(u8, Vec<u8>)]) -> Option<String> {
    let trailers =
        frames.iter().find(|(flag, _)| flag & 0x80 != 0).map(|(_, t)| String::from_utf8_lossy(t).to_string());
    let from_trailers = trailers
        .and_then(|t| t.split("\r\n").find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_string())));
    from_trailers.or_else(|| headers.iter().find(|(n, _)| n == "grpc-status").map(|(_, v)| v.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_unary_calls_over_http1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "web.log").start();
    let (addr, bearer) = (server.addr(), server.bearer("alice"));
    tokio::task::spawn_blocking(move || {
        let request = CreateConversationGroupRequest {
            group_name: "Web".into(),
            conversation_ids: vec!["C2Cbrowser".into()],
            expected_revision: None,
            sort_mode: None,
        };
        let (headers_status, headers, frames) = grpc_web_call_with(
            addr,
            "CreateConversationGroup",
            &[("authorization", &bearer)],
            &request.encode_to_vec(),
        );
        assert_eq!(headers_status, 200);
        let content_type = headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
        assert!(content_type.is_some_and(|v| v.starts_with("application/grpc-web")), "content-type {content_type:?}");
        assert_eq!(frames.len(), 2, "a data frame and a trailer frame: {frames:?}");
        assert_eq!(frames[0].0, 0x00, "data frame flag");
        let created = CreateConversationGroupResponse::decode(frames[0].1.as_slice()).expect("decode response");
        assert_eq!(created.success_conversation_ids, ["C2Cbrowser"]);
        assert_eq!(frames[1].0, 0x80, "trailer frame flag");
        let trailers = String::from_utf8_lossy(&frames[1].1).to_ascii_lowercase();
        assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");

        let (status, frames) = grpc_web_call(addr, "GetConversationGroupList", &bearer, &[]);
        assert_eq!(status, 200);
        assert_eq!(grpc_web_status(&[], &frames).as_deref(), Some("0"), "{frames:?}");
        let list = GetConversationGroupListResponse::decode(frames[0].1.as_slice()).expect("decode list");
        assert_eq!(list.group_names, ["Web"]);
        assert_eq!(list.revision, created.revision);

        // Without a token: UNAUTHENTICATED (16) as a grpc-web status.
        let (status, headers, frames) = grpc_web_call_with(addr, "GetConversationGroupList", &[], &[]);
        assert_eq!(status, 200);
        assert_eq!(grpc_web_status(&headers, &frames).as_deref(), Some("16"), "{headers:?} {frames:?}");
    })
    .await
    .unwrap();
    // The same group through plain gRPC on the same port.
    let mut gc = server.group_client("alice").await;
    assert_eq!(group_names(&mut gc).await, ["Web"]);
    server.stop().await;
}

/// WatchGroupEvents through grpc-web over HTTP/1.1: the bookmark, then a
/// batch as frames arrive on the open response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_watch_streams_over_http1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "webwatch.log").start();
    let mut gc = server.group_client("alice").await;
    let first = create(&mut gc, "Before", &["C2Ca"]).await.unwrap().revision;
    let (addr, bearer) = (server.addr(), server.bearer("alice"));
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let head = format!(
            "POST /{GROUP_SERVICE}/WatchGroupEvents HTTP/1.1\ncontent-type: application/grpc-web+proto\n\
             x-grpc-web: 1\nauthorization: {bearer}"
        );
        let mut http = RawHttp::send(addr, &head, &frame(0, &watch_from(0).encode_to_vec()));
        assert_eq!(http.status, 200);
        let (flag, bytes) = http.next_frame().expect("first frame");
        assert_eq!(flag, 0);
        let bookmark = WatchGroupEventsResponse::decode(bytes.as_slice()).unwrap().kind;
        assert!(matches!(bookmark, Some(Kind::Bookmark(b)) if b.revision == first), "{bookmark:?}");
        opened_tx.send(()).unwrap();
        let (flag, bytes) = http.next_frame().expect("second frame");
        assert_eq!(flag, 0);
        match WatchGroupEventsResponse::decode(bytes.as_slice()).unwrap().kind {
            Some(Kind::Events(batch)) => batch.revision,
            other => panic!("expected a batch, got {other:?}"),
        }
    });
    opened_rx.await.expect("watch opened");
    let created = create(&mut gc, "After", &["C2Cb"]).await.unwrap().revision;
    assert_eq!(reader.await.unwrap(), created);
    server.stop().await;
}

/// A grpc-web request as tonic-web's client layer makes it.
type WebRequest = http::Request<tonic_web::GrpcWebCall<tonic::body::Body>>;
/// A channel that speaks grpc-web (tonic-web's client layer).
type WebChannel = tonic_web::GrpcWebClientService<
    tower::util::MapRequest<Channel, fn(WebRequest) -> http::Request<tonic::body::Body>>,
>;

/// A group-service client speaking grpc-web on `channel` (HTTP/2).
pub(crate) fn web_client(
    channel: Channel,
    bearer: &str,
) -> ConversationGroupServiceClient<InterceptedService<WebChannel, Headers>> {
    let to_body: fn(WebRequest) -> http::Request<tonic::body::Body> = |r| r.map(tonic::body::Body::new);
    let web =
        tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).map_request(to_body).service(channel);
    ConversationGroupServiceClient::with_interceptor(web, Headers::new(&[("authorization", bearer)]))
}

/// tonic-web's client layer over HTTP/2 (prior knowledge) on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http2_with_the_tonic_web_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), "web2.log").start();
    let mut client = web_client(server.channel().await, &server.bearer("alice"));
    let created = client
        .create_conversation_group(CreateConversationGroupRequest {
            group_name: "H2Web".into(),
            conversation_ids: vec!["C2Cx".into()],
            expected_revision: None,
            sort_mode: None,
        })
        .await
        .expect("grpc-web create over HTTP/2")
        .into_inner();
    let list =
        client.get_conversation_group_list(GetConversationGroupListRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.group_names, ["H2Web"]);
    assert_eq!(list.revision, created.revision);
    server.stop().await;
}

/// A CORS preflight; the response headers.
fn preflight(addr: std::net::SocketAddr, origin: &str) -> (u16, Vec<(String, String)>) {
    let head = format!(
        "OPTIONS /{GROUP_SERVICE}/GetConversationGroupList HTTP/1.1\norigin: {origin}\n\
         access-control-request-method: POST\n\
         access-control-request-headers: authorization,content-type,x-grpc-web\nconnection: close"
    );
    let mut http = RawHttp::send(addr, &head, &[]);
    http.read_body();
    (http.status, http.headers.clone())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let with = Launch::new(dir.path(), "cors.log").args(["--cors-allow-origin", "http://example.test"]).start();
    let without_dir = tempfile::tempdir().unwrap();
    let without = Launch::new(without_dir.path(), "nocors.log").start();
    let (with_addr, without_addr, bearer) = (with.addr(), without.addr(), with.bearer("alice"));
    tokio::task::spawn_blocking(move || {
        let (status, headers) = preflight(with_addr, "http://example.test");
        assert!((200..300).contains(&status), "preflight status {status}: {headers:?}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("http://example.test"), "{headers:?}");
        let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        for needed in ["authorization", "content-type", "x-grpc-web"] {
            assert!(allowed.contains(needed), "allow-headers {allowed:?} lacks {needed}");
        }
        assert!(header(&headers, "access-control-allow-methods").unwrap_or_default().contains("POST"), "{headers:?}");

        let (_, headers) = preflight(with_addr, "http://evil.test");
        assert_eq!(header(&headers, "access-control-allow-origin"), None, "other origin allowed: {headers:?}");

        // The call itself, from the allowed origin: readable status headers.
        let (status, headers, frames) = grpc_web_call_with(
            with_addr,
            "GetConversationGroupList",
            &[("authorization", &bearer), ("origin", "http://example.test")],
            &[],
        );
        assert_eq!(status, 200);
        assert_eq!(grpc_web_status(&headers, &frames).as_deref(), Some("0"));
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("http://example.test"), "{headers:?}");
        let exposed = header(&headers, "access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"), "expose-headers {exposed:?}");

        let (_, headers) = preflight(without_addr, "http://example.test");
        assert_eq!(header(&headers, "access-control-allow-origin"), None, "CORS without the flag: {headers:?}");
    })
    .await
    .unwrap();
    with.stop().await;
    without.stop().await;
}
