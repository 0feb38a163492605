//! The `convgroups` binary: `serve` runs the service, `check-config` checks
//! its settings, `token` prints a token signed with the server's secret,
//! `completions` prints a shell completion script, and the client commands
//! (`groups`, `conversations`, `watch`, `backup`, `restore`) are
//! `convgroups::cli`. A settings file (`--config`) is read into the command
//! line before clap parses it (`convgroups::settings_file`). Everything else
//! lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use convgroups::auth::Secret;
use convgroups::config::{Config, LogFormat, LogSettings};
use convgroups::domain::UserId;
use convgroups::server::App;
use convgroups::settings_file::{self, Expanded};
use convgroups::signals::{self, Signals};
use tracing_subscriber::EnvFilter;

/// Exit status of a command line (or settings file) that cannot be parsed,
/// as clap's own usage errors.
const EXIT_USAGE: u8 = 2;

const CHECK_CONFIG_HELP: &str = "\
Prints the effective settings (each with where it came from: a flag, a CONVGROUPS_* variable, the \
settings file or the default; secrets are not shown) and `ok`. Nothing is bound and no database is \
opened, so a port in use or a data directory held by a running server shows only at `serve`. \
Exit status: 0 when `serve` would accept these settings; 1 when it would refuse them at start \
(the same `convgroups: <setting>: <reason>` line); 2 when a flag, a variable or the settings file \
cannot be parsed.";

#[derive(Parser, Debug)]
#[command(name = "convgroups", version = convgroups::version::LONG, about = "Conversation groups over gRPC, stored in sled")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gRPC server.
    Serve(Config),
    /// Check the settings of `serve` (flags, CONVGROUPS_* variables,
    /// --config file) as `serve` would, print them, and exit.
    #[command(after_help = CHECK_CONFIG_HELP)]
    CheckConfig(Config),
    /// Print a token signed with the server's secret (from --data-dir,
    /// --auth-secret-file or CONVGROUPS_AUTH_SECRET, as the server has it).
    Token {
        /// The user the token acts for (its `sub`).
        #[arg(long)]
        user: String,
        /// How long the token is valid (e.g. 24h, 30m, 7d); at least 1s.
        #[arg(long, default_value = "24h", value_parser = token_ttl)]
        ttl: Duration,
        /// An administrator/backend token: may act for any user via the
        /// x-convgroups-user header and watch all users.
        #[arg(long)]
        admin: bool,
        /// Create the secret in --data-dir when there is none yet (for a
        /// server not started yet). Without it, a missing secret is an error:
        /// a token signed with a new secret would be refused by the server.
        #[arg(long)]
        create_secret: bool,
        #[command(flatten)]
        secret: TokenSecret,
    },
    /// The command-line client: groups, conversations, watch, backup, restore.
    #[command(flatten)]
    Client(convgroups::cli::Command),
    /// Print a shell completion script: `convgroups completions bash >
    /// /etc/bash_completion.d/convgroups` (zsh: a file `_convgroups` in a
    /// directory of $fpath; fish: ~/.config/fish/completions/convgroups.fish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// The settings of `serve` that say where its HS256 secret is (and whether
/// it accepts HS256 tokens at all): all that `token` needs of them. The
/// flags, variables and settings-file keys are those of `serve`.
#[derive(clap::Args, Debug)]
struct TokenSecret {
    /// Settings file of the server (TOML, as `serve --config`): its keys
    /// below are used, the others are checked and skipped.
    #[arg(long, env = convgroups::settings_file::CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The server's data directory, where it generated its secret.
    #[arg(long, env = "CONVGROUPS_DATA_DIR", default_value = convgroups::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// File holding the server's HS256 token secret (CONVGROUPS_AUTH_SECRET,
    /// when set, holds the secret itself).
    #[arg(long, env = "CONVGROUPS_AUTH_SECRET_FILE")]
    auth_secret_file: Option<PathBuf>,
    #[arg(skip = std::env::var("CONVGROUPS_AUTH_SECRET").ok())]
    auth_secret: Option<String>,
    /// The server's JWKS file, if it has one: then it accepts HS256 tokens
    /// only with the secret configured explicitly.
    #[arg(long, env = "CONVGROUPS_AUTH_JWKS_FILE")]
    auth_jwks_file: Option<PathBuf>,
    /// The server's PEM public keys, if it has any (as --auth-jwks-file).
    #[arg(long, env = "CONVGROUPS_AUTH_PUBLIC_KEY", value_delimiter = ',')]
    auth_public_key: Vec<PathBuf>,
}

impl TokenSecret {
    /// The server's settings with these (the rest are defaults, unused).
    fn into_config(self) -> Config {
        let mut config = Config::new(self.data_dir);
        config.config = self.config;
        config.auth_secret_file = self.auth_secret_file;
        config.auth_secret = self.auth_secret;
        config.auth_keys.auth_jwks_file = self.auth_jwks_file;
        config.auth_keys.auth_public_key = self.auth_public_key;
        config
    }
}

fn main() -> ExitCode {
    let command = Cli::command();
    let serve = command.find_subcommand("serve").expect("the serve subcommand").clone();
    let expanded = match settings_file::expand(std::env::args_os().collect(), &serve, &command) {
        Ok(expanded) => expanded,
        Err(e) => {
            eprintln!("convgroups: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let matches = command.get_matches_from(&expanded.args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let log = match &cli.command {
        Command::Serve(config) => config.log.clone(),
        _ => LogSettings { log_level: "warn".into(), ..LogSettings::default() },
    };
    if let Err(message) = init_logging(&log) {
        eprintln!("convgroups: {message}");
        return ExitCode::FAILURE;
    }
    let command = match cli.command {
        // The client has its own exit codes (see `convgroups::cli`).
        Command::Client(command) => return convgroups::cli::run(command),
        Command::Completions { shell } => return completions(shell),
        Command::CheckConfig(config) => return check_config(&config, &matches, &serve, &expanded),
        command => command,
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("convgroups: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A token lifetime: whole seconds (`exp` is in seconds), at least one; a
/// token printed already expired helps no one.
fn token_ttl(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if ttl < Duration::from_secs(1) {
        return Err("must be at least 1s (a shorter token has expired by the time it is printed)".into());
    }
    Ok(ttl)
}

/// `convgroups check-config`: the checks `serve` makes before serving, in
/// the same order and with the same messages and exit status, then the
/// effective settings and `ok`.
fn check_config(config: &Config, matches: &ArgMatches, serve: &clap::Command, expanded: &Expanded) -> ExitCode {
    let checked =
        log_filter(&config.log).and_then(|_| convgroups::server::check_settings(config).map_err(|e| e.to_string()));
    let checked = match checked {
        Ok(checked) => checked,
        Err(message) => {
            eprintln!("convgroups: {message}");
            return ExitCode::FAILURE;
        }
    };
    let matches = matches.subcommand_matches("check-config").expect("check-config was parsed");
    let mut out = format!("# {}\n", convgroups::version::line());
    if let Some(file) = &expanded.file {
        out.push_str(&format!("# settings file: {}\n", file.display()));
    }
    out.push_str(&settings_file::describe(matches, serve, expanded));
    out.push_str(&format!("# auth: {}\nok\n", checked.auth));
    print_out(out.as_bytes())
}

/// `convgroups completions SHELL`.
fn completions(shell: Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "convgroups", &mut script);
    print_out(&script)
}

/// Writes to stdout; a reader that went away (`| head`) is no failure.
fn print_out(bytes: &[u8]) -> ExitCode {
    match std::io::stdout().write_all(bytes).and_then(|_| std::io::stdout().flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convgroups: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter: RUST_LOG when set, else --log-level.
fn log_filter(log: &LogSettings) -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec}: {e}")),
        _ => EnvFilter::try_new(&log.log_level).map_err(|e| format!("--log-level {}: {e}", log.log_level)),
    }
}

/// Logs go to stderr; RUST_LOG, when set, wins over --log-level.
fn init_logging(log: &LogSettings) -> Result<(), String> {
    let filter = log_filter(log)?;
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    Ok(())
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Client(_) | Command::Completions { .. } | Command::CheckConfig(_) => {
            unreachable!("dispatched in main")
        }
        Command::Token { user, ttl, admin, create_secret, secret } => {
            let config = secret.into_config();
            let user = UserId::parse(&user).map_err(|e| format!("--user: {e}"))?;
            if config.auth_keys.any() && config.auth_secret_file.is_none() && config.auth_secret.is_none() {
                return Err("a server with --auth-jwks-file or --auth-public-key and no --auth-secret-file or \
                     CONVGROUPS_AUTH_SECRET accepts no HS256 tokens: get tokens from the identity provider, \
                     or configure the secret explicitly on both"
                    .into());
            }
            let secret = if create_secret { Secret::load_or_create(&config) } else { Secret::load_existing(&config) };
            let secret = secret.map_err(|e| e.to_string())?;
            println!("{}", secret.issue(&user, admin, ttl));
            Ok(())
        }
        Command::Serve(config) => {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting the runtime: {e}"))?;
            runtime.block_on(async move {
                let installing = |e: std::io::Error| format!("installing signal handlers: {e}");
                // Before storage opens: see `Signals::install`.
                let signals = Signals::install().map_err(installing)?;
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|e| format!("--listen {}: {e}", config.listen))?;
                let app = App::open(config).await.map_err(|e| e.to_string())?;
                signals::reload_keys_on_hangup(app.authenticator()).map_err(installing)?;
                // The first signal starts a graceful shutdown; a second one
                // cuts the drain short (storage is flushed either way).
                app.serve_with_force(listener, signals.nth(1), signals.nth(2)).await.map_err(|e| e.to_string())
            })
        }
    }
}
