//! Talking to a running server: connection flags, the channel (plain or TLS),
//! the bearer token and acting-user headers, and how a failed call is shown.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::auth::USER_HEADER;
use crate::pb::conversation_group_service_client::ConversationGroupServiceClient;
use crate::pb::conversation_service_client::ConversationServiceClient;

/// Where the client connects when `--addr` is not given: the server's
/// default listen address.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// Flags of every command that talks to a server. They are global to their
/// command, so `convgroups groups --json list` and `convgroups groups list
/// --json` both work.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Server options")]
pub struct Connection {
    /// Server address: http://HOST:PORT, or https://HOST:PORT with --ca-cert.
    /// A bare HOST:PORT means http://HOST:PORT.
    #[arg(long, env = "CONVGROUPS_ADDR", default_value = DEFAULT_ADDR, global = true)]
    pub addr: String,
    /// Bearer token, as printed by `convgroups token --user U`.
    #[arg(long, env = "CONVGROUPS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The user to act for, sent as the x-convgroups-user header (admin
    /// tokens only; a user token may only name itself).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// PEM file of the CA certificate that signed the server's TLS
    /// certificate; needs an https:// address.
    #[arg(long, env = "CONVGROUPS_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the host of --addr).
    #[arg(long, global = true)]
    pub tls_server_name: Option<String>,
    /// Deadline for connecting and for each call (not for the stream of `watch`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// Print JSON (proto3 JSON field names, one object) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a command failed: what `error:` prints.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with a non-OK status.
    Status(Status),
    /// Anything else (bad flags, no connection, a local file).
    Message(String),
    /// Writing to stdout failed because the reader went away (`| head`):
    /// not worth a message.
    BrokenPipe,
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Status(status)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("writing the output: {e}"))
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(status) => f.write_str(&describe_status(status)),
            Failure::Message(message) => f.write_str(message),
            Failure::BrokenPipe => f.write_str("broken pipe"),
        }
    }
}

/// The gRPC code as the spec names it (`NOT_FOUND`), not tonic's sentence.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `<CODE> <REASON>: <message>`, the reason coming from the status's
/// google.rpc.ErrorInfo; `<CODE>: <message>` when there is none (a proxy or
/// the transport answered, not the service).
pub fn describe_status(status: &Status) -> String {
    let code = code_name(status.code());
    let mut message = status.message().to_string();
    if message.is_empty() {
        message = error_chain(status);
    }
    match status.get_details_error_info() {
        Some(info) => format!("{code} {}: {message}", info.reason),
        None => format!("{code}: {message}"),
    }
}

/// An error and its sources, `a: b: c`: tonic's transport errors say only
/// "transport error" at the top.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// A failure below gRPC (no answer from the service, only the transport's
/// complaint) on an `http://` address may be a TLS server: say so instead of
/// tonic's `transport error`.
pub async fn explain_plaintext_to_tls(failure: Failure, conn: &Connection) -> Failure {
    let transport_failed = match &failure {
        Failure::Status(status) => {
            status.get_details_error_info().is_none()
                && matches!(status.code(), Code::Unknown | Code::Unavailable | Code::Internal)
        }
        Failure::Message(message) => message.starts_with("cannot connect to "),
        Failure::BrokenPipe => false,
    };
    let host_port = conn.addr.strip_prefix("http://").unwrap_or(&conn.addr);
    let https_or_other = conn.addr.contains("://") && !conn.addr.starts_with("http://");
    if !transport_failed || https_or_other {
        return failure;
    }
    let host_port = host_port.trim_end_matches('/').to_string();
    if !speaks_tls(&host_port, conn.timeout.min(Duration::from_secs(5))).await {
        return failure;
    }
    Failure::Message(format!(
        "--addr {}: the server speaks TLS, not plaintext HTTP/2 ({failure}); use --addr https://{host_port} \
         with --ca-cert FILE (the server's certificate, or the CA certificate that signed it)",
        conn.addr
    ))
}

/// Whether the server at `host_port` answers the HTTP/2 connection preface
/// with a TLS alert record (content type 21, version 3.x), which is what a
/// TLS server (rustls, Go, OpenSSL) sends to a client that does not speak
/// TLS.
async fn speaks_tls(host_port: &str, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(host_port).await.ok()?;
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.ok()?;
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.ok()?;
        Some(head)
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some([21, 3])))
}

/// Adds the bearer token and, for admin tokens, the acting user to every call.
#[derive(Clone, Debug)]
pub struct Auth {
    authorization: MetadataValue<Ascii>,
    user: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.authorization.clone());
        if let Some(user) = &self.user {
            request.metadata_mut().insert(USER_HEADER, user.clone());
        }
        Ok(request)
    }
}

pub type GroupClient = ConversationGroupServiceClient<InterceptedService<Channel, Auth>>;
pub type ConvClient = ConversationServiceClient<InterceptedService<Channel, Auth>>;

/// A connected client.
pub struct Client {
    channel: Channel,
    auth: Auth,
    timeout: Duration,
}

impl Client {
    /// Checks the flags and connects, so that an unreachable server is
    /// reported as such before any call.
    pub async fn connect(conn: &Connection) -> Result<Self, Failure> {
        let token = conn.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::Message(
                "no token: pass --token or set CONVGROUPS_TOKEN (`convgroups token --user U` prints one)".into(),
            )
        })?;
        let authorization = MetadataValue::try_from(format!("Bearer {}", token.trim()))
            .map_err(|_| Failure::Message("--token: not a valid token (it must be printable ASCII)".into()))?;
        let user = match &conn.user {
            Some(user) => Some(
                MetadataValue::try_from(user.as_str())
                    .map_err(|_| Failure::Message(format!("--user {user:?}: not a valid header value")))?,
            ),
            None => None,
        };
        let addr = if conn.addr.contains("://") { conn.addr.clone() } else { format!("http://{}", conn.addr) };
        let bad_addr = |message: String| Failure::Message(format!("--addr {addr}: {message}"));
        let mut endpoint =
            Endpoint::from_shared(addr.clone()).map_err(|e| bad_addr(error_chain(&e)))?.connect_timeout(conn.timeout);
        let https = addr.starts_with("https://");
        match (&conn.ca_cert, https) {
            (Some(path), true) => {
                let pem =
                    std::fs::read(path).map_err(|e| Failure::Message(format!("--ca-cert {}: {e}", path.display())))?;
                let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
                if let Some(name) = &conn.tls_server_name {
                    tls = tls.domain_name(name.clone());
                }
                endpoint = endpoint.tls_config(tls).map_err(|e| bad_addr(error_chain(&e)))?;
            }
            (None, true) => {
                // This build has no system trust store (tonic's tls-ring
                // without native roots), so the CA must be named.
                return Err(bad_addr("https needs --ca-cert (the CA certificate that signed the server's)".into()));
            }
            (Some(_), false) => return Err(bad_addr("--ca-cert needs an https:// address".into())),
            (None, false) => {}
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Failure::Message(format!("cannot connect to {addr}: {}", error_chain(&e))))?;
        Ok(Self { channel, auth: Auth { authorization, user }, timeout: conn.timeout })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn auth(&self) -> Auth {
        self.auth.clone()
    }

    pub fn groups(&self) -> GroupClient {
        ConversationGroupServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn conversations(&self) -> ConvClient {
        ConversationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A request for a unary call, carrying `--timeout` as its grpc-timeout
    /// so the server gives up too.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Runs a unary call under `--timeout` on this side too (a server that
    /// accepted the connection but never answers must not hang the client).
    pub async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?.into_inner()),
            Err(_) => Err(Failure::Status(Status::deadline_exceeded(format!(
                "no answer within {} (--timeout)",
                humantime::format_duration(self.timeout)
            )))),
        }
    }
}
