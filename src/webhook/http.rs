//! One delivery attempt: resolve, refuse private addresses, connect to the
//! address that was checked (so a second DNS answer cannot point the
//! request elsewhere), one HTTP/1.1 POST, read at most a few bytes of the
//! answer. No pool, no redirects, no proxy: a webhook is a small request
//! every few seconds at most, and each attempt must be judged on its own.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// A checked endpoint URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub uri: Uri,
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// Checks a URL's form (not where it points: see [`resolve`]).
pub fn parse_url(url: &str) -> Result<Target, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("{} bytes, more than {MAX_URL_BYTES}", url.len()));
    }
    let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url:?}: only http:// and https:// URLs can receive webhooks")),
    };
    let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?}: user information in the URL is not supported"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Target { uri, https, host, port })
}

/// Whether an address is one a webhook must not reach by default:
/// loopback, private (RFC 1918, unique local), shared (CGNAT), link-local
/// (which holds cloud metadata at 169.254.169.254 and fd00:ec2::254),
/// unspecified, broadcast, multicast, documentation and reserved ranges.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

/// The addresses of the target, refused when any is private (a name that
/// resolves to both is refused: the next lookup could pick either).
pub async fn resolve(target: &Target, allow_private: bool) -> Result<Vec<SocketAddr>, Failure> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| Failure::Dns(format!("{}: {e}", target.host)))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Failure::Dns(format!("{}: no address", target.host)));
    }
    if !allow_private {
        if let Some(addr) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(Failure::Refused(format!(
                "{} resolves to {}, a loopback, private, link-local or metadata address (--webhook-allow-private)",
                target.host,
                addr.ip()
            )));
        }
    }
    Ok(addrs)
}

/// Why an attempt failed; the metric's `reason` label.
#[derive(Debug, Clone)]
pub enum Failure {
    Dns(String),
    Refused(String),
    Connect(String),
    Timeout,
    Status(StatusCode),
    Protocol(String),
}

impl Failure {
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Dns(_) => "dns",
            Failure::Refused(_) => "refused_address",
            Failure::Connect(_) => "connect",
            Failure::Timeout => "timeout",
            Failure::Status(s) if s.is_redirection() => "redirect",
            Failure::Status(_) => "status",
            Failure::Protocol(_) => "protocol",
        }
    }

    /// The HTTP status, if the receiver answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status(s) => Some(s.as_u16()),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dns(m) => write!(f, "DNS lookup failed: {m}"),
            Failure::Refused(m) => write!(f, "refused: {m}"),
            Failure::Connect(m) => write!(f, "connect failed: {m}"),
            Failure::Timeout => write!(f, "no answer within --webhook-request-timeout"),
            Failure::Status(s) if s.is_redirection() => write!(f, "HTTP {} (redirects are not followed)", s.as_u16()),
            Failure::Status(s) => write!(f, "HTTP {}", s.as_u16()),
            Failure::Protocol(m) => write!(f, "HTTP error: {m}"),
        }
    }
}

/// Limits of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub allow_private: bool,
}

/// One POST of `body` with `headers`; Ok on any 2xx. The whole attempt
/// (lookup, connect, TLS, request, reading the answer) is under
/// `limits.timeout`.
pub async fn post(
    target: &Target,
    headers: &[(&'static str, String)],
    body: Bytes,
    limits: Limits,
    tls: &tokio_rustls::TlsConnector,
) -> Result<u16, Failure> {
    match tokio::time::timeout(limits.timeout, attempt(target, headers, body, limits, tls)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::Timeout),
    }
}

async fn attempt(
    target: &Target,
    headers: &[(&'static str, String)],
    body: Bytes,
    limits: Limits,
    tls: &tokio_rustls::TlsConnector,
) -> Result<u16, Failure> {
    let addrs = resolve(target, limits.allow_private).await?;
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    let stream = stream.ok_or_else(|| Failure::Connect(last.unwrap_or_default()))?;
    let _ = stream.set_nodelay(true);
    let path = target.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let host_header = match target.uri.port_u16() {
        Some(port) => format!("{}:{port}", target.uri.host().unwrap_or_default()),
        None => target.uri.host().unwrap_or_default().to_string(),
    };
    let mut request = Request::builder().method(Method::POST).uri(path).header(http::header::HOST, host_header);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request.body(Full::new(body)).map_err(|e| Failure::Protocol(e.to_string()))?;
    if target.https {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| Failure::Connect(format!("{}: {e}", target.host)))?;
        let tls =
            tls.connect(name, stream).await.map_err(|e| Failure::Connect(format!("TLS with {}: {e}", target.host)))?;
        send(TokioIo::new(tls), request, limits).await
    } else {
        send(TokioIo::new(stream), request, limits).await
    }
}

async fn send<T>(io: T, request: Request<Full<Bytes>>, limits: Limits) -> Result<u16, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| Failure::Protocol(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let outcome = async {
        let response = sender.send_request(request).await.map_err(|e| Failure::Protocol(e.to_string()))?;
        let status = response.status();
        // Read (and drop) at most max_response_bytes: a receiver cannot make
        // us hold a large answer; beyond it the connection is just closed.
        let _ = Limited::new(response.into_body(), limits.max_response_bytes).collect().await;
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(Failure::Status(status))
        }
    }
    .await;
    driver.abort();
    outcome
}

/// The TLS client of https deliveries: the system's certificate
/// authorities, and those of `ca_file` (`--webhook-ca-file`), which must
/// hold at least one PEM certificate. Built once per server.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, Error> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let refuse = |message: String| Error::InvalidSetting {
            setting: crate::config::Setting::Flag("--webhook-ca-file"),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| refuse(format!("{}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| refuse(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(refuse(format!("{} holds no PEM block `-----BEGIN CERTIFICATE-----`", path.display())));
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_for_form() {
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://user:pw@example.com/").is_err());
        let t = parse_url("https://example.com/hook?a=1").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("example.com", 443));
        let t = parse_url("http://[::1]:8080/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
    }
}
