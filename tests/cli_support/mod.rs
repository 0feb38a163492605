//! Transitional shim: the command-line harness is `tests/support` now
//! (`support::cli` and `support::process`). Kept only so that test files
//! written against the old name and API on branches made before the move
//! still compile; remove it once those branches have landed and use
//! `mod support;` (`support::cli::*`) instead.
#![allow(dead_code, unused_imports)]

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

#[path = "../support/mod.rs"]
mod support;

pub use support::cli::{command, execute, free_port, token, Cli, Run, Watch, BIN, PROMPT};
pub use support::python;

/// The old `cli_support::Server`: `addr()` is the URI, `stop()` waits
/// (blocking) for the exit status after SIGTERM. Everything else is
/// `support::process::Server` (through `Deref`, so `Cli::new(&server, ..)`
/// still works).
pub struct Server {
    inner: support::process::Server,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::from(support::process::Server::start_with(data_dir, extra))
    }

    /// From `command(&["serve"])` prepared by the caller: its environment
    /// and any arguments after `serve` are kept.
    pub fn start_cmd(cmd: Command, data_dir: &Path, extra: &[&str]) -> Self {
        let mut launch = support::process::Launch::in_dir(data_dir);
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                launch = launch.env(&key.to_string_lossy(), value.to_string_lossy());
            }
        }
        let args: Vec<String> = cmd.get_args().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
        Self::from(launch.args(args).args(extra.iter().copied()).start())
    }

    fn from(inner: support::process::Server) -> Self {
        Self { port: inner.port, data_dir: inner.data_dir.clone(), inner }
    }

    pub fn addr(&self) -> String {
        self.inner.uri()
    }

    pub fn stop(self) -> ExitStatus {
        self.inner.stop_status()
    }
}

impl Deref for Server {
    type Target = support::process::Server;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}
