//! The real `convgroups` binary as a child process: an environment nothing
//! from the developer's shell leaks into ([`command`]), free loopback ports,
//! runs to completion with a bound ([`execute`]), tokens minted by
//! `convgroups token` ([`mint_token`]), and one `convgroups serve` child
//! ([`Server`], started through a [`Launch`]): start and wait until it
//! accepts (or serves, or reports SERVING on health), SIGTERM, kill -9, and
//! killed by pid when dropped, also when a test fails.

use std::fs::File;
use std::io::{BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use convgroups::auth::Secret;
use convgroups::domain::UserId;
use convgroups::pb::conversation_group_service_client::ConversationGroupServiceClient;
use tonic::transport::{Channel, Endpoint};

use super::client::{GroupClient, Headers};
use super::PROMPT;

/// The binary under test (debug under `cargo test`, release under `cargo
/// test --release`).
pub const BIN: &str = env!("CARGO_BIN_EXE_convgroups");

/// How long a starting server may take to report SERVING (debug build,
/// busy CI).
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Per-call deadline of the clients of a child server, so a test never
/// hangs on one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The binary with `args` and an environment that cannot leak into the
/// test: no CONVGROUPS_* settings (token, address, data dir...) and no
/// RUST_LOG from the developer's shell; NO_COLOR, no stdin.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONVGROUPS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1").args(args).stdin(Stdio::null());
    cmd
}

/// A port on 127.0.0.1 that was free a moment ago (bound, then released;
/// a small race we accept).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// An address on 127.0.0.1 that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// Sends `signal` (e.g. "TERM") to `pid` with kill(1) (no libc here).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// A child process that is killed (SIGKILL, by its pid) and reaped when
/// dropped.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    /// The exit status, if the child has exited (or was reaped).
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

    /// SIGKILL (what `kill -9` sends; `Child::kill` is SIGKILL on Unix) and
    /// reap.
    pub fn kill(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read_all(pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut text);
        text
    })
}

/// A finished command: exit status and output.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// What a run of the binary that exits on its own printed (the name
/// tests/ops_* use).
pub type Finished = Run;

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Asserts the exit code, showing the whole run when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "unexpected exit code of {self}");
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Stdout without its final newline.
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr should contain {needle:?}: {self}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout should contain {needle:?}: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`convgroups {}` exited {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.args.join(" "),
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs the command to completion; killed and a panic after [`PROMPT`] (a
/// start that should have failed but serves instead, say).
#[track_caller]
pub fn execute(mut cmd: Command) -> Run {
    let args = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn convgroups");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let mut child = ChildGuard::new(child);
    let status = child.wait_timeout(PROMPT);
    child.kill();
    let run = Run {
        args,
        status: child.child_mut().wait().expect("reap"),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(status.is_some(), "still running after {PROMPT:?}, killed: {run}");
    run
}

/// Runs `convgroups args...` with extra environment to its end (see
/// [`execute`]).
#[track_caller]
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut cmd = command(args);
    cmd.envs(env.iter().copied());
    execute(cmd)
}

/// `convgroups token --user <user> [--admin] --data-dir <dir>
/// --create-secret`: a token signed with the secret of that data directory
/// (made here when no server has made it yet). Issue tokens before the
/// server starts: the server creates the secret on start, and a `token` run
/// racing with it could create a different one.
pub fn mint_token(data_dir: &Path, user: &str, admin: bool) -> String {
    let dir = data_dir.to_str().expect("utf-8 path");
    let mut args = vec!["token", "--user", user, "--ttl", "48h", "--data-dir", dir, "--create-secret"];
    if admin {
        args.push("--admin");
    }
    let run = execute(command(&args));
    run.ok();
    run.out().trim().to_string()
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

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
    /// The server's stdout goes to the log too (else nowhere).
    pub stdout_to_log: bool,
}

impl Launch {
    /// A server on a fresh port over `<dir>/data`, logging to `<dir>/<log_name>`.
    pub fn new(dir: &Path, log_name: &str) -> Self {
        Self::at(&dir.join("data"), &dir.join(log_name))
    }

    /// A server on a fresh port over `data_dir`, logging (stderr) to `log_path`.
    pub fn at(data_dir: &Path, log_path: &Path) -> Self {
        Self {
            addr: free_addr(),
            data_dir: data_dir.to_path_buf(),
            log_path: log_path.to_path_buf(),
            address_flags: true,
            args: Vec::new(),
            env: Vec::new(),
            wait_serving: true,
            stdout_to_log: false,
        }
    }

    /// The command-line tests' server: over `data_dir`, with `--log-level
    /// info`, stdout and stderr to `<data_dir>.server-<port>.log`; started
    /// once its port accepts.
    pub fn in_dir(data_dir: &Path) -> Self {
        let mut launch = Self::at(data_dir, data_dir);
        launch.log_path = data_dir.with_extension(format!("server-{}.log", launch.addr.port()));
        launch.wait_serving = false;
        launch.stdout_to_log = true;
        launch.args(["--log-level", "info"])
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

    fn spawn(self) -> Result<Server, String> {
        let mut cmd = command(&["serve"]);
        if self.address_flags {
            cmd.arg("--listen").arg(self.addr.to_string()).arg("--data-dir").arg(&self.data_dir);
        }
        let log = File::create(&self.log_path).map_err(|e| format!("create {}: {e}", self.log_path.display()))?;
        let stdout = if self.stdout_to_log { Stdio::from(log.try_clone().expect("log file")) } else { Stdio::null() };
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v))).stdout(stdout).stderr(log);
        let child = cmd.spawn().map_err(|e| format!("spawn {BIN} serve: {e}"))?;
        let metrics_addr = self
            .args
            .iter()
            .position(|a| a == "--metrics-listen")
            .and_then(|i| self.args.get(i + 1))
            .map(|a| a.parse().expect("--metrics-listen address"));
        Ok(Server {
            child: ChildGuard::new(child),
            addr: self.addr,
            port: self.addr.port(),
            data_dir: self.data_dir.clone(),
            log_path: self.log_path.clone(),
            metrics_addr,
            launch: self,
        })
    }

    /// Starts the server and waits (bounded) until its port accepts, and
    /// until it logged "serving" if [`Launch::wait_serving`].
    #[track_caller]
    pub fn start(self) -> Server {
        let mut server = self.spawn().unwrap_or_else(|e| panic!("{e}"));
        server.wait_until_accepting();
        server
    }

    /// Starts the server (with `CONVGROUPS_LOG_LEVEL=info`, which a
    /// `--log-level` flag overrides) and waits until health reports
    /// SERVING; panics with the end of the log if it does not.
    pub async fn start_healthy(self) -> Server {
        match self.try_start_healthy().await {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Like [`Self::start_healthy`], with failure (exit or no SERVING in
    /// time) as an error that includes the end of the log.
    pub async fn try_start_healthy(self) -> Result<Server, String> {
        let mut server = self.env("CONVGROUPS_LOG_LEVEL", "info").spawn()?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = server.exited() {
                return Err(format!(
                    "convgroups serve exited with {status} before serving; log:\n{}",
                    server.log_tail(40)
                ));
            }
            if server.serving().await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "convgroups serve did not report SERVING within {START_DEADLINE:?}; log:\n{}",
                    server.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A running `convgroups serve`. Dropping it kills it (SIGKILL).
pub struct Server {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Where `--metrics-listen` (if given) serves the scrape.
    pub metrics_addr: Option<SocketAddr>,
    pub launch: Launch,
}

impl Server {
    /// Starts a server on `data_dir` (see [`Launch::in_dir`]) and waits
    /// until it accepts connections. Tokens must be issued before (see
    /// [`mint_token`]).
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// As [`Server::start`], with extra `serve` flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Launch::in_dir(data_dir).args(extra.iter().copied()).start()
    }

    /// Starts `serve` over `data_dir` (stderr to `log_path`) and waits until
    /// health reports SERVING (see [`Launch::start_healthy`]).
    pub async fn start_healthy(data_dir: &Path, log_path: &Path, extra: &[&str]) -> Self {
        Launch::at(data_dir, log_path).args(extra.iter().copied()).start_healthy().await
    }

    /// See [`Launch::try_start_healthy`].
    pub async fn try_start_healthy(data_dir: &Path, log_path: &Path, extra: &[&str]) -> Result<Self, String> {
        Launch::at(data_dir, log_path).args(extra.iter().copied()).try_start_healthy().await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, what clients dial.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + PROMPT;
        loop {
            let accepting = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok();
            if accepting && (!self.launch.wait_serving || self.log().contains("serving")) {
                return;
            }
            if let Some(status) = self.child.try_wait() {
                panic!("convgroups serve exited with {status} before accepting connections; log:\n{}", self.log());
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
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Waits (bounded) until the log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + PROMPT;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "log never showed {needle:?}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for the process to exit, without blocking the
    /// async runtime's other tasks for long.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
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

    /// SIGTERM (graceful shutdown), then the exit status must be 0 within
    /// [`PROMPT`]; returns the log.
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

    /// SIGTERM right away and wait (blocking, up to [`PROMPT`]) for the
    /// exit; returns its status, whatever it is.
    #[track_caller]
    pub fn stop_status(mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        match self.child.wait_timeout(PROMPT) {
            Some(status) => status,
            None => {
                self.child.kill();
                panic!("the server did not exit within {PROMPT:?} of SIGTERM:\n{}", self.log());
            }
        }
    }

    /// SIGTERM and wait up to `timeout` for the exit; None if it did not
    /// exit in time (it is then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let status = self.exited_within(timeout).await;
        if status.is_none() {
            self.kill9();
        }
        status
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        self.child.kill();
    }

    /// The overall health status, if health answers at all.
    pub async fn health_status(&self) -> Option<i32> {
        let endpoint = Endpoint::from_shared(self.uri()).ok()?;
        let channel = endpoint.connect_timeout(Duration::from_secs(1)).connect().await.ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let answer = tokio::time::timeout(Duration::from_secs(2), health.check(request)).await.ok()?.ok()?;
        Some(answer.get_ref().status)
    }

    /// True if the standard health service answers SERVING.
    pub async fn serving(&self) -> bool {
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        self.health_status().await == Some(serving)
    }

    /// The secret the server generated in its data dir (as stored, trimmed).
    /// The port accepts before the server has written it, so this waits
    /// (bounded) for a non-empty file.
    pub fn secret_text(&self) -> String {
        let path = self.data_dir.join(convgroups::auth::SECRET_FILE_NAME);
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

    /// A new plaintext HTTP/2 connection to the server, with call and
    /// connect timeouts.
    pub async fn channel(&self) -> Channel {
        connect(&self.uri()).await
    }

    /// [`Self::channel`], with a failure to connect as the error.
    pub async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        endpoint(&self.uri()).connect().await
    }

    /// A channel that connects on first use (never fails to build).
    pub fn lazy_channel(&self) -> Channel {
        endpoint(&self.uri()).connect_lazy()
    }

    /// A group-service client for `user` on a new connection.
    pub async fn group_client(&self, user: &str) -> GroupClient {
        let bearer = self.bearer(user);
        ConversationGroupServiceClient::with_interceptor(
            self.channel().await,
            Headers::new(&[("authorization", &bearer)]),
        )
    }

    /// Resident set size in KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid())
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
        .timeout(CALL_TIMEOUT)
}

/// The last `lines` lines of a log file, without terminal colour codes.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    strip_ansi(&all[all.len().saturating_sub(lines)..].join("\n"))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process (clock ticks assumed 100 Hz, as on Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
