//! The command-line client as a child process: [`Cli`] runs the binary
//! with `--addr` and a token, [`Watch`] reads a running `convgroups watch`
//! line by line with a timeout (killed on drop).

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::process::{read_all, ChildGuard};

// What the command-line tests use of the process harness, under the names
// they have always used (`token` is `mint_token`).
pub use super::process::{command, execute, free_port, mint_token as token, Launch, Run, Server, BIN};
pub use super::PROMPT;

/// The client side: the binary with `--addr` and a token (through
/// CONVGROUPS_TOKEN, as a user would set it once in their shell).
#[derive(Clone, Debug)]
pub struct Cli {
    pub addr: String,
    pub token: String,
}

impl Cli {
    pub fn new(server: &Server, token: &str) -> Self {
        Self { addr: server.uri(), token: token.to_string() }
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
    child: ChildGuard,
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
        Self { child: ChildGuard::new(child), lines, stderr }
    }

    /// Sends a signal by name (`INT` is Ctrl-C) through the `kill` command.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill").args([&format!("-{name}"), &self.child.pid().to_string()]).status();
        assert!(sent.expect("run kill").success(), "kill -{name} failed");
    }

    /// The next line of output, waiting at most [`PROMPT`].
    #[track_caller]
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(PROMPT) {
            Ok(line) => line,
            Err(e) => {
                self.child.kill();
                let stderr = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
                panic!("no watch line within {PROMPT:?} ({e}); stderr:\n{stderr}");
            }
        }
    }

    /// Lines until the process ends (bounded), then its status and stderr.
    #[track_caller]
    pub fn finish(mut self) -> (Vec<String>, ExitStatus, String) {
        let status = self.child.wait_timeout(PROMPT);
        if status.is_none() {
            self.child.kill();
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
