//! The signals `convgroups serve` answers: SIGINT and SIGTERM are counted
//! (the first starts a graceful shutdown, the second cuts the drain short),
//! SIGHUP re-reads `--auth-jwks-file`. Kept apart from `main` so that the
//! binary's serve path reads as open, install, serve.

use std::future::Future;

use tokio::sync::watch;

use crate::auth::Authenticator;

/// How many shutdown signals (SIGINT, SIGTERM; Ctrl-C elsewhere) arrived
/// since [`Signals::install`].
#[derive(Clone, Debug)]
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Starts counting. Called before storage opens: a signal that arrives
    /// while it opens must start a graceful shutdown, not kill the process.
    /// Needs a running tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self { count: count_signals()? })
    }

    /// Resolves once the `n`th signal has arrived (`nth(1)`: shut down;
    /// `nth(2)`: stop waiting for calls).
    pub fn nth(&self, n: u32) -> impl Future<Output = ()> + Send + 'static {
        let mut count = self.count.clone();
        async move {
            let _ = count.wait_for(|count| *count >= n).await;
        }
    }
}

/// Counts SIGINT and SIGTERM from now on.
#[cfg(unix)]
fn count_signals() -> std::io::Result<watch::Receiver<u32>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (count, signals) = watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            count.send_modify(|n| *n += 1);
        }
    });
    Ok(signals)
}

/// Counts Ctrl-C presses from now on.
#[cfg(not(unix))]
fn count_signals() -> std::io::Result<watch::Receiver<u32>> {
    let (count, signals) = watch::channel(0u32);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            count.send_modify(|n| *n += 1);
        }
    });
    Ok(signals)
}

/// SIGHUP re-reads `--auth-jwks-file` (the file is also re-read when it
/// changes, every --auth-jwks-reload-interval).
#[cfg(unix)]
pub fn reload_keys_on_hangup(auth: Authenticator) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading --auth-jwks-file");
            let auth = auth.clone();
            let _ = tokio::task::spawn_blocking(move || auth.reload_keys()).await;
        }
    });
    Ok(())
}

/// No SIGHUP here: the file is re-read every --auth-jwks-reload-interval.
#[cfg(not(unix))]
pub fn reload_keys_on_hangup(_auth: Authenticator) -> std::io::Result<()> {
    Ok(())
}
