//! TLS: a certificate generated at test time (rcgen); plaintext is refused;
//! ALPN offered to HTTP/1.1 clients (a hand-made ClientHello).

use std::io::{Read, Write};
use std::net::TcpStream;

use convgroups::pb::*;
use tonic::transport::{Certificate, ClientTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::client::*;
use crate::support::http::*;
use crate::support::inproc::*;
use crate::support::process::*;
use crate::support::PROMPT;

use super::grpc_web::web_client;

/// A server with TLS on, using a self-signed certificate for localhost and
/// 127.0.0.1 generated now; also returns the certificate PEM.
fn tls_server(dir: &std::path::Path, log_name: &str) -> (Server, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    let server = Launch::new(dir, log_name)
        .args([
            "--log-format",
            "json",
            "--tls-cert",
            &cert_path.to_string_lossy(),
            "--tls-key",
            &key_path.to_string_lossy(),
        ])
        .start();
    (server, cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_with_a_generated_certificate_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cert_pem) = tls_server(dir.path(), "tls.log");
    let port = server.addr().port();

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cert_pem)).domain_name("localhost");
    let channel = endpoint(&format!("https://127.0.0.1:{port}"))
        .tls_config(tls)
        .expect("client TLS config")
        .connect()
        .await
        .expect("TLS connection");
    let mut gc = client_on(channel.clone(), &server.bearer("alice"));
    create(&mut gc, "Secure", &["C2Cbob"]).await.expect("create over TLS");
    assert_eq!(group_names(&mut gc).await, ["Secure"]);
    // grpc-web over the same TLS port (HTTP/2, as browsers negotiate it).
    let mut web = web_client(channel.clone(), &server.bearer("alice"));
    let list =
        web.get_conversation_group_list(GetConversationGroupListRequest::default()).await.expect("grpc-web over TLS");
    assert_eq!(list.into_inner().group_names, ["Secure"]);
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .expect("health over TLS")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Plaintext gRPC (HTTP/2 prior knowledge) fails.
    let plain = tokio::time::timeout(PROMPT, async {
        let channel = endpoint(&format!("http://127.0.0.1:{port}")).connect().await?;
        let mut gc = client_on(channel, &server.bearer("alice"));
        gc.get_conversation_group_list(GetConversationGroupListRequest::default()).await.map_err(Into::into)
    })
    .await
    .expect("the plaintext attempt should fail promptly, not hang");
    let plain: Result<_, Box<dyn std::error::Error + Send + Sync>> = plain;
    assert!(plain.is_err(), "a plaintext gRPC call succeeded against a TLS server: {plain:?}");

    // Plaintext HTTP/1.1 (grpc-web) gets no HTTP answer.
    let addr = server.addr();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PROMPT)).unwrap();
        let _ = s.write_all(
            b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc-web\r\ncontent-length: 0\r\n\r\n",
        );
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        reply
    })
    .await
    .unwrap();
    assert!(!reply.starts_with(b"HTTP/"), "plaintext HTTP/1.1 was answered: {:?}", String::from_utf8_lossy(&reply));

    // Still serving TLS afterwards; the start-up line says TLS is on.
    assert_eq!(group_names(&mut gc).await, ["Secure"]);
    let log = server.stop().await;
    let lines = json_lines(&log);
    assert!(matches!(lines[line_index(&lines, "serving", &log)].get("tls"), Some(Json::Bool(true))), "{log}");
}
