//! Talking to the server below gRPC: hand-written HTTP/1.1 (grpc-web, CORS
//! preflight, the metrics scrape), Prometheus text lookups, and the JSON
//! log lines (serde_json, plus a key list that keeps duplicate keys).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::PROMPT;

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

/// One Prometheus gauge or counter value (no labels) from
/// `http://<addr>/metrics`, over a plain HTTP/1.0 request; None when the
/// scrape fails.
pub fn scrape_metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    sample(&body, name, &[])
}

// ---------------------------------------------------------------------------
// JSON log lines
// ---------------------------------------------------------------------------

/// The group service, as grpc-web paths and log lines name it.
pub const GROUP_SERVICE: &str = "convgroups.v1.ConversationGroupService";

/// A parsed JSON value (a log line).
pub type Json = serde_json::Value;

/// Field access the log tests use.
pub trait JsonExt {
    /// The string field `key` of an object.
    fn str(&self, key: &str) -> Option<&str>;
}

impl JsonExt for Json {
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }
}

/// Parses one complete JSON text.
pub fn parse_json(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// The keys of a JSON object in the order written, duplicates kept (a
/// parsed [`Json`] keeps only the last of a repeated key).
pub fn json_keys(text: &str) -> Result<Vec<String>, String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }
    serde_json::from_str::<Keys>(text).map(|keys| keys.0).map_err(|e| e.to_string())
}

/// The log's lines, each parsed as a JSON object (the test fails on any
/// other line).
#[track_caller]
pub fn json_lines(log: &str) -> Vec<Json> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match parse_json(line) {
            Ok(value @ Json::Object(_)) => value,
            Ok(other) => panic!("log line is JSON but not an object: {other:?}\n{line}"),
            Err(e) => panic!("log line is not JSON ({e}):\n{line}\nwhole log:\n{log}"),
        })
        .collect()
}

/// Index of the first JSON log line whose message is `message`.
#[track_caller]
pub fn line_index(lines: &[Json], message: &str, log: &str) -> usize {
    lines
        .iter()
        .position(|l| l.str("message") == Some(message))
        .unwrap_or_else(|| panic!("no {message:?} line in the log:\n{log}"))
}

/// The `rpc` lines of a JSON log for `method`.
pub fn rpc_lines<'a>(lines: &'a [Json], method: &str) -> Vec<&'a Json> {
    lines.iter().filter(|l| l.str("message") == Some("rpc") && l.str("method") == Some(method)).collect()
}

#[track_caller]
pub fn assert_secrets_absent(log: &str, secrets: &[(&str, &str)]) {
    for (what, secret) in secrets {
        assert!(!secret.is_empty());
        if let Some(pos) = log.find(secret) {
            let line = log[..pos].lines().count();
            panic!("the {what} appears in the log (line {line}): {}", &log[pos.saturating_sub(200)..pos]);
        }
    }
}
