//! Helpers of tests/ops.rs: the real `convgroups` binary as a child process
//! (free ports, bounded start-up wait, stderr captured to a file, killed by
//! pid when dropped), tokens signed with the secret the server generated,
//! hand-written HTTP/1.1 (grpc-web, CORS preflight, the metrics scrape), a
//! minimal JSON parser for the log lines, and Prometheus text lookups.
//!
//! Include with `mod common; mod ops_support;`.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use convgroups::auth::Secret;
use convgroups::domain::UserId;
use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::common::{GroupClient, Headers};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_convgroups");

/// Upper bound for anything that should happen promptly (start-up, a
/// response, an exit after a signal): generous, debug builds on two busy
/// cores.
pub const PROMPT: Duration = Duration::from_secs(20);

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// `convgroups` with an environment that nothing from the developer's
/// shell leaks into (RUST_LOG, CONVGROUPS_*).
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONVGROUPS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// What a run of the binary that exits on its own printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `convgroups args...` (with extra environment) to its end, killing it
/// if it is still running after [`PROMPT`] (a start that should have failed
/// but serves instead).
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut cmd = command();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"));
    let mut child = ChildGuard(Some(cmd.spawn().expect("spawn convgroups")));
    let status = child.wait_timeout(PROMPT).unwrap_or_else(|| {
        child.kill();
        panic!(
            "`convgroups {}` was still running after {PROMPT:?}; stderr:\n{}",
            args.join(" "),
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )
    });
    Finished {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A child process that is killed (by its pid) and reaped when dropped.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.as_mut().expect("child").try_wait().expect("try_wait")
    }

    /// Waits (polling, so usable from async tests too) up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (e.g. "TERM") to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// How to start a server: `serve --listen <addr> --data-dir <dir>` plus
/// extra flags and environment.
#[derive(Debug, Clone)]
pub struct Launch {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Pass --listen/--data-dir as flags (false: the caller sets them, e.g.
    /// through the environment).
    pub address_flags: bool,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `start` waits for the start-up line too, not just the port (which
    /// accepts before storage is open and the secret written). Needs a log
    /// level of info or finer.
    pub wait_serving: bool,
}

impl Launch {
    /// A server on a fresh port over `<dir>/data`, logging to `<dir>/<log_name>`.
    pub fn new(dir: &Path, log_name: &str) -> Self {
        Self {
            addr: free_addr(),
            data_dir: dir.join("data"),
            log_path: dir.join(log_name),
            address_flags: true,
            args: Vec::new(),
            env: Vec::new(),
            wait_serving: true,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// The same server again (same data dir and flags) on a fresh port,
    /// logging to `log_name`.
    pub fn again(&self, log_name: &str) -> Self {
        let log_path = self.log_path.with_file_name(log_name);
        Self { addr: free_addr(), log_path, ..self.clone() }
    }

    /// Starts the server and waits (bounded) until its port accepts.
    pub fn start(self) -> Server {
        let mut cmd = command();
        cmd.arg("serve");
        if self.address_flags {
            cmd.arg("--listen").arg(self.addr.to_string()).arg("--data-dir").arg(&self.data_dir);
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&self.log_path).expect("log file"));
        let child = ChildGuard(Some(cmd.spawn().expect("spawn convgroups serve")));
        let mut server = Server { child, launch: self };
        server.wait_until_accepting();
        server
    }
}

/// A running `convgroups serve`.
pub struct Server {
    pub child: ChildGuard,
    pub launch: Launch,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.launch.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + PROMPT;
        loop {
            let accepting = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok();
            if accepting && (!self.launch.wait_serving || self.log().contains("serving")) {
                return;
            }
            if let Some(status) = self.child.try_wait() {
                panic!("convgroups serve exited during start-up ({status}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "convgroups serve did not start serving within {PROMPT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.launch.log_path).unwrap_or_default()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + PROMPT;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "log never showed {needle:?}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process has a handler for SIGTERM yet (Linux: the
    /// SigCgt mask in /proc/<pid>/status). The server installs its handler
    /// only after it has bound the port (see
    /// `sigterm_right_after_start_up_is_graceful`), so a graceful stop waits
    /// for it.
    pub fn handles_sigterm(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
    }

    /// SIGTERM, once the server handles it (bounded wait).
    pub fn sigterm(&self) {
        let deadline = Instant::now() + PROMPT;
        while !self.handles_sigterm() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        signal(self.pid(), "TERM");
    }

    /// Waits up to `timeout` for the process to exit, without blocking the
    /// async runtime's other tasks for long.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then the exit status must be 0 within [`PROMPT`].
    pub async fn stop(mut self) -> String {
        self.sigterm();
        let status = self.exited_within(PROMPT).await;
        let log = self.log();
        match status {
            Some(status) => assert!(status.success(), "convgroups exited with {status} after SIGTERM; log:\n{log}"),
            None => panic!("convgroups did not exit within {PROMPT:?} of SIGTERM; log:\n{log}"),
        }
        log
    }

    /// The secret the server generated in its data dir (as stored, trimmed).
    /// The port accepts before the server has written it, so this waits
    /// (bounded) for a non-empty file.
    pub fn secret_text(&self) -> String {
        let path = self.launch.data_dir.join(convgroups::auth::SECRET_FILE_NAME);
        let deadline = Instant::now() + PROMPT;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default().trim_end().to_string();
            if !text.is_empty() {
                return text;
            }
            assert!(Instant::now() < deadline, "no auth secret at {} within {PROMPT:?}", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A token for `user` signed with the server's secret.
    pub fn token(&self, user: &str) -> String {
        Secret::from_bytes(self.secret_text().as_bytes()).issue(
            &UserId::parse(user).expect("user id"),
            false,
            Duration::from_secs(3600),
        )
    }

    pub fn bearer(&self, user: &str) -> String {
        format!("Bearer {}", self.token(user))
    }

    /// A new plaintext HTTP/2 connection to the server.
    pub async fn channel(&self) -> Channel {
        connect(&format!("http://{}", self.addr())).await
    }

    /// A group-service client for `user` on a new connection.
    pub async fn group_client(&self, user: &str) -> GroupClient {
        let bearer = self.bearer(user);
        ConversationGroupServiceClient::with_interceptor(
            self.channel().await,
            Headers::new(&[("authorization", &bearer)]),
        )
    }
}

/// Connects to `uri` (already accepting), with call and connect timeouts.
pub async fn connect(uri: &str) -> Channel {
    endpoint(uri).connect().await.unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
}

pub fn endpoint(uri: &str) -> Endpoint {
    Endpoint::from_shared(uri.to_string())
        .expect("endpoint uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(PROMPT)
}

/// A client on `channel` sending `authorization: <bearer>`.
pub fn client_on(channel: Channel, bearer: &str) -> GroupClient {
    ConversationGroupServiceClient::with_interceptor(channel, Headers::new(&[("authorization", bearer)]))
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1
// ---------------------------------------------------------------------------

/// One HTTP/1.1 exchange on a raw TCP connection, read incrementally: the
/// head first, then the body (chunked, content-length or up to EOF).
pub struct RawHttp {
    stream: TcpStream,
    /// Bytes read from the socket and not yet consumed.
    buf: Vec<u8>,
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Decoded body bytes not yet taken.
    pub body: Vec<u8>,
    body_done: bool,
    chunked: bool,
    remaining: Option<usize>,
    deadline: Instant,
}

impl RawHttp {
    /// Connects to `addr`, writes `head` (without the blank line: it is added,
    /// with content-length when `body` is not empty) and `body`, and reads
    /// the response head.
    pub fn send(addr: SocketAddr, head: &str, body: &[u8]) -> Self {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let mut request = head.trim_end().replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        request.push_str(&format!("\r\nhost: {addr}\r\n"));
        if !body.is_empty() {
            request.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).expect("write request");
        let mut http = Self {
            stream,
            buf: Vec::new(),
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            body_done: false,
            chunked: false,
            remaining: None,
            deadline: Instant::now() + PROMPT,
        };
        http.read_head();
        http
    }

    /// Reads more bytes from the socket; false on EOF. Panics past the deadline.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            assert!(Instant::now() < self.deadline, "HTTP response not complete within {PROMPT:?}");
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
                Err(e) => panic!("reading the HTTP response: {e}"),
            }
        }
    }

    fn read_head(&mut self) {
        let end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            assert!(self.fill(), "connection closed before the response head; got {:?}", self.raw_text());
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        self.status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                self.headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        self.chunked = self.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        self.remaining = self.header("content-length").and_then(|v| v.parse().ok());
        if self.remaining == Some(0) {
            self.body_done = true;
        }
        self.decode();
    }

    fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.buf).to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Moves whatever complete body bytes `buf` holds into `body`.
    fn decode(&mut self) {
        if self.body_done {
            return;
        }
        if self.chunked {
            loop {
                let Some(line_end) = find(&self.buf, b"\r\n") else { return };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size_text = size_text.split(';').next().unwrap_or_default().trim().to_string();
                let size = usize::from_str_radix(&size_text, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
                if size == 0 {
                    self.body_done = true;
                    return;
                }
                if self.buf.len() < line_end + 2 + size + 2 {
                    return;
                }
                let start = line_end + 2;
                self.body.extend_from_slice(&self.buf[start..start + size]);
                self.buf.drain(..start + size + 2);
            }
        } else if let Some(remaining) = self.remaining.as_mut() {
            let take = (*remaining).min(self.buf.len());
            self.body.extend(self.buf.drain(..take));
            *remaining -= take;
            if *remaining == 0 {
                self.body_done = true;
            }
        } else {
            self.body.append(&mut self.buf);
        }
    }

    /// Reads more of the body; false when the body is complete.
    fn read_more(&mut self) -> bool {
        if self.body_done {
            return false;
        }
        if !self.fill() {
            self.body_done = true;
            return false;
        }
        self.decode();
        true
    }

    /// The whole body (reads to its end).
    pub fn read_body(&mut self) -> Vec<u8> {
        while self.read_more() {}
        std::mem::take(&mut self.body)
    }

    /// The next grpc-web frame (flag byte, payload), reading as needed; None
    /// when the body ended.
    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.body.len() >= 5 {
                let len = u32::from_be_bytes(self.body[1..5].try_into().expect("4 bytes")) as usize;
                if self.body.len() >= 5 + len {
                    let flag = self.body[0];
                    let payload = self.body[5..5 + len].to_vec();
                    self.body.drain(..5 + len);
                    return Some((flag, payload));
                }
            }
            if !self.read_more() {
                assert!(self.body.is_empty(), "grpc-web body ends inside a frame: {:?}", self.body);
                return None;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A grpc-web (and gRPC) length-prefixed frame.
pub fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `GET path` over HTTP/1.1; the status and the body as text.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut http = RawHttp::send(addr, &format!("GET {path} HTTP/1.1\nconnection: close"), &[]);
    let body = http.read_body();
    (http.status, String::from_utf8_lossy(&body).to_string())
}

// ---------------------------------------------------------------------------
// Prometheus text
// ---------------------------------------------------------------------------

/// The value of the first sample of `name` whose labels contain every one of
/// `labels` (written `key="value"`).
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let wanted = metric == name && labels.iter().all(|l| label_text.split(',').any(|have| have == *l));
        wanted.then(|| value.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------
// Minimal JSON
// ---------------------------------------------------------------------------

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses one complete JSON text.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let value = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at {}", p.i));
        }
        Ok(value)
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.i))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i).copied() {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    fields.push((key, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                text.parse().map(Json::Num).map_err(|_| format!("bad number {text:?}"))
            }
            _ => Err(format!("unexpected input at {}", self.i)),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                            let code = u32::from_str_radix(std::str::from_utf8(hex).map_err(|e| e.to_string())?, 16)
                                .map_err(|e| e.to_string())?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
                c if c < 0x20 => return Err(format!("control character in a string at {}", self.i)),
                c => out.push(c),
            }
        }
    }
}
