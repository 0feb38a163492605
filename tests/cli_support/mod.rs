//! Harness of the command-line tests: the real `convgroups` binary as a
//! server child process (`serve` on 127.0.0.1 and a free port) and as the
//! client, with every wait bounded and every child killed by pid on drop,
//! also when a test fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_convgroups");

/// Upper bound for anything that should happen promptly (a call, a line of
/// watch output, a server start or stop). Generous: debug builds on busy
/// machines.
pub const PROMPT: Duration = Duration::from_secs(30);

/// The binary with an environment that cannot leak into the test: no
/// CONVGROUPS_* settings (token, address, data dir...) and no RUST_LOG from
/// the developer's shell.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONVGROUPS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// A finished command: exit status and output.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

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

/// Kills (SIGKILL) and reaps a child; for cleanup paths.
fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Waits for a child to exit, up to `limit`; None when it is still running.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn read_all(pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut text);
        text
    })
}

/// Runs the command to completion (killed after [`PROMPT`]).
pub fn execute(mut cmd: Command) -> Run {
    let args = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn convgroups");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, PROMPT);
    if status.is_none() {
        kill(&mut child);
    }
    let run = Run {
        args,
        status: child.wait().expect("reap"),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(status.is_some(), "still running after {PROMPT:?}, killed: {run}");
    run
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `convgroups token --user U [--admin] --data-dir D --create-secret` (the
/// secret is made here when no server has made it yet).
pub fn token(data_dir: &Path, user: &str, admin: bool) -> String {
    let dir = data_dir.to_str().expect("utf-8 path");
    let mut args = vec!["token", "--user", user, "--data-dir", dir, "--create-secret"];
    if admin {
        args.push("--admin");
    }
    let run = execute(command(&args));
    run.ok();
    run.out().to_string()
}

/// A `convgroups serve` child process. Dropping it kills it (SIGKILL);
/// [`Server::stop`] is the graceful SIGTERM path.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts a server on `data_dir` and waits until it accepts connections.
    ///
    /// Tokens must be issued before (see [`token`]): the server creates the
    /// secret on start, and a `token` run racing with it could create a
    /// different one.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// As [`Server::start`], with extra `serve` flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_cmd(command(&["serve"]), data_dir, extra)
    }

    /// As [`Server::start_with`], from `command(&["serve"])` prepared by the
    /// caller (with environment variables, say).
    pub fn start_cmd(mut cmd: Command, data_dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let dir = data_dir.to_str().expect("utf-8 path");
        let log = data_dir.with_extension(format!("server-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let mut args = vec!["--listen", &listen, "--data-dir", dir, "--log-level", "info"];
        args.extend_from_slice(extra);
        let child = cmd
            .args(&args)
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("spawn convgroups serve");
        let mut server = Self { child: Some(child), port, data_dir: data_dir.to_path_buf(), log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + PROMPT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited with {status} before accepting connections:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not accept connections within {PROMPT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (through the `kill` command: no libc here) and waits
    /// for the process to exit; returns its exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        match wait_bounded(&mut child, PROMPT) {
            Some(status) => status,
            None => {
                kill(&mut child);
                panic!("the server did not exit within {PROMPT:?} of SIGTERM:\n{}", self.log());
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill(child);
        }
    }
}

/// The client side: the binary with `--addr` and a token (through
/// CONVGROUPS_TOKEN, as a user would set it once in their shell).
#[derive(Clone, Debug)]
pub struct Cli {
    pub addr: String,
    pub token: String,
}

impl Cli {
    pub fn new(server: &Server, token: &str) -> Self {
        Self { addr: server.addr(), token: token.to_string() }
    }

    /// The command, ready to run: `args` then `--addr`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = command(args);
        cmd.args(["--addr", &self.addr]).env("CONVGROUPS_TOKEN", &self.token);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        execute(self.command(args))
    }

    /// Starts `watch` with these arguments.
    pub fn watch(&self, args: &[&str]) -> Watch {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        Watch::spawn(self.command(&all))
    }
}

/// A running `convgroups watch`, read line by line with a timeout. Killed
/// on drop.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Watch {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn convgroups watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Some(read_all(child.stderr.take().expect("stderr")));
        Self { child, lines, stderr }
    }

    /// Sends a signal by name (`INT` is Ctrl-C) through the `kill` command.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(sent.expect("run kill").success(), "kill -{name} failed");
    }

    /// The next line of output, waiting at most [`PROMPT`].
    #[track_caller]
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(PROMPT) {
            Ok(line) => line,
            Err(e) => {
                kill(&mut self.child);
                let stderr = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
                panic!("no watch line within {PROMPT:?} ({e}); stderr:\n{stderr}");
            }
        }
    }

    /// Lines until the process ends (bounded), then its status and stderr.
    #[track_caller]
    pub fn finish(mut self) -> (Vec<String>, ExitStatus, String) {
        let status = wait_bounded(&mut self.child, PROMPT);
        if status.is_none() {
            kill(&mut self.child);
        }
        let stderr = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
        let status = status.unwrap_or_else(|| panic!("watch still running after {PROMPT:?}; stderr:\n{stderr}"));
        // The reader thread ends at EOF, which the exit has caused.
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(PROMPT) {
            lines.push(line);
        }
        (lines, status, stderr)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
