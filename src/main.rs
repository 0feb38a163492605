//! The `convgroups` binary: `serve` runs the service, `token` prints a token
//! signed with the server's secret. Everything else lives in the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use convgroups::auth::Secret;
use convgroups::config::Config;
use convgroups::domain::UserId;

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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("convgroups: {message}");
            ExitCode::FAILURE
        }
    }
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
                convgroups::server::run(listener, config, shutdown_signal()).await.map_err(|e| e.to_string())
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
