//! The `convgroups` binary: `serve` runs the service, `token` prints a token
//! signed with the server's secret. Everything else lives in the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use convgroups::auth::Secret;
use convgroups::config::{Config, LogFormat, LogSettings};
use convgroups::domain::UserId;
use convgroups::server::App;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "convgroups", version, about = "Conversation groups over gRPC, stored in sled")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gRPC server.
    Serve(Config),
    /// Print a token signed with the server's secret (creating the secret in
    /// the data dir if there is none yet).
    Token {
        /// The user the token acts for (its `sub`).
        #[arg(long)]
        user: String,
        /// How long the token is valid (e.g. 24h, 30m, 7d).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// An administrator/backend token: may act for any user via the
        /// x-convgroups-user header and watch all users.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        config: Config,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match &cli.command {
        Command::Serve(config) => config.log.clone(),
        _ => LogSettings { log_level: "warn".into(), ..LogSettings::default() },
    };
    if let Err(message) = init_logging(&log) {
        eprintln!("convgroups: {message}");
        return ExitCode::FAILURE;
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("convgroups: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; RUST_LOG, when set, wins over --log-level.
fn init_logging(log: &LogSettings) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec}: {e}"))?,
        _ => EnvFilter::try_new(&log.log_level).map_err(|e| format!("--log-level {}: {e}", log.log_level))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    Ok(())
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Token { user, ttl, admin, config } => {
            let user = UserId::parse(&user).map_err(|e| format!("--user: {e}"))?;
            let secret = Secret::load_or_create(&config).map_err(|e| e.to_string())?;
            println!("{}", secret.issue(&user, admin, ttl));
            Ok(())
        }
        Command::Serve(config) => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting the runtime: {e}"))?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|e| format!("--listen {}: {e}", config.listen))?;
                let app = App::open(config).map_err(|e| e.to_string())?;
                // The first signal starts a graceful shutdown; a second one
                // cuts the drain short (storage is flushed either way).
                let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
                let shutdown = async move {
                    shutdown_signal().await;
                    let _ = first_tx.send(());
                };
                let force = async move {
                    if first_rx.await.is_ok() {
                        shutdown_signal().await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                app.serve_with_force(listener, shutdown, force).await.map_err(|e| e.to_string())
            })
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
