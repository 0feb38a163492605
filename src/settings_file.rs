//! The settings file: `convgroups serve --config convgroups.toml` (or
//! `CONVGROUPS_CONFIG=convgroups.toml`).
//!
//! A TOML file of top-level keys, one for each flag of `convgroups serve`,
//! spelled as the flag without its dashes (`max-groups = 20`,
//! `tls-cert = "cert.pem"`, `cors-allow-origin = ["https://a", "https://b"]`,
//! durations as the flags take them: `unary-timeout = "30s"`). Precedence,
//! highest first: a flag on the command line, its `CONVGROUPS_*` environment
//! variable, the file, the default.
//!
//! The file is not a second parser: [`expand`] turns each of its settings
//! into the flag it stands for (`--max-groups=20`) and puts those before the
//! user's own arguments, leaving out the settings whose flag is on the
//! command line or whose environment variable is set. clap then parses and
//! checks everything as usual, so a setting means the same in the file, in
//! the environment and as a flag, and a flag added to `serve` has its key at
//! once. Before that, each value is checked alone, so that a refusal names
//! the file and the key: an unknown key (with the closest one it may have
//! meant), a value of the wrong type (a list for a single value, a string for
//! a switch) or one the flag would refuse (`max-groups = 0`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::ValueRange;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The environment variable that names the settings file (as `--config`
/// does; the flag wins).
pub const CONFIG_ENV: &str = "CONVGROUPS_CONFIG";

/// The subcommands that take the settings of `serve`, and so `--config`.
pub const SUBCOMMANDS: &[&str] = &["serve", "check-config", "token"];

/// Ids of the `serve` arguments that have no key.
const NOT_KEYS: &[&str] = &["config", "help", "version"];

/// The command line once the settings file has been read into it.
#[derive(Debug, Clone, Default)]
pub struct Expanded {
    /// The arguments to parse: the program, the subcommand, the file's
    /// settings as flags, then the user's arguments.
    pub args: Vec<OsString>,
    /// The settings file, when one was named.
    pub file: Option<PathBuf>,
    /// Ids of the arguments whose value comes from the file.
    pub from_file: BTreeSet<String>,
}

/// A settings file that cannot be used: unreadable, not TOML, or a key or
/// value that is refused. Shown as `--config <file>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--config {}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for Error {}

/// The arguments of `settings` (the `serve` command) that the file may set:
/// every long flag that takes a value, or is a switch.
pub fn keys(settings: &Command) -> impl Iterator<Item = &Arg> {
    settings.get_arguments().filter(|arg| {
        arg.get_long().is_some()
            && !arg.is_positional()
            && !NOT_KEYS.contains(&arg.get_id().as_str())
            && matches!(arg.get_action(), ArgAction::Set | ArgAction::Append | ArgAction::SetTrue)
    })
}

/// Reads the settings file named by `--config` or [`CONFIG_ENV`] into
/// `args` (the whole command line, program name first). `settings` is the
/// `serve` subcommand, whose arguments are the keys; `cli` is the whole
/// command, whose subcommand named in `args` gets the keys it takes (`token`
/// only those that say where the secret is; the rest are checked and
/// skipped). Command lines of other subcommands, and those with no settings
/// file, come back as they are.
pub fn expand(args: Vec<OsString>, settings: &Command, cli: &Command) -> Result<Expanded, Error> {
    let mut expanded = Expanded { args, ..Expanded::default() };
    // The binary itself has no options before the subcommand but --help and
    // --version, which name no subcommand.
    let subcommand = expanded.args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    if !SUBCOMMANDS.contains(&subcommand) {
        return Ok(expanded);
    }
    let taking = cli.find_subcommand(subcommand).unwrap_or(settings);
    let given = CommandLine::scan(&expanded.args[2..]);
    let file = match given.config.clone() {
        Some(file) => file,
        None => match std::env::var_os(CONFIG_ENV) {
            Some(file) if !file.is_empty() => PathBuf::from(file),
            _ => return Ok(expanded),
        },
    };
    let fail = |message: String| Error { file: file.clone(), message };
    let text = std::fs::read_to_string(&file).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let table = text.parse::<toml::Table>().map_err(|e| fail(toml_error(&text, &e)))?;

    let validator = settings.clone().no_binary_name(true).mut_args(|arg| arg.env(None));
    let mut flags = Vec::new();
    for (key, value) in &table {
        let arg = keys(settings)
            .find(|arg| arg.get_long() == Some(key.as_str()))
            .ok_or_else(|| fail(unknown_key(key, value, settings)))?;
        let values = values_of(arg, value).map_err(|message| fail(format!("{key} = {value}: {message}")))?;
        for flag in &values {
            check_value(&validator, flag).map_err(|message| fail(format!("{key} = {value}: {message}")))?;
        }
        if !taking.get_arguments().any(|taken| taken.get_long() == Some(key.as_str())) {
            continue;
        }
        // A flag on the command line or an environment variable wins.
        let in_env = arg.get_env().is_some_and(|name| std::env::var_os(name).is_some());
        if given.longs.contains(key) || in_env {
            continue;
        }
        expanded.from_file.insert(arg.get_id().to_string());
        flags.extend(values);
    }
    expanded.args.splice(2..2, flags);
    expanded.file = Some(file);
    Ok(expanded)
}

/// What the user's own arguments (after the subcommand) hold: the long flags
/// given, and the settings file they name.
struct CommandLine {
    longs: BTreeSet<String>,
    config: Option<PathBuf>,
}

impl CommandLine {
    fn scan(args: &[OsString]) -> Self {
        let mut longs = BTreeSet::new();
        let mut config = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let Some(text) = arg.to_str() else { continue };
            if text == "--" {
                break;
            }
            let Some(flag) = text.strip_prefix("--") else { continue };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (flag, None),
            };
            if name == "config" {
                config = match inline {
                    Some(value) => Some(PathBuf::from(value)),
                    None => args.next().map(PathBuf::from),
                };
            }
            longs.insert(name.to_string());
        }
        Self { longs, config }
    }
}

/// The flags that a file's `key = value` stands for: `--key=value` for each
/// value (a list gives one each), `--key` for a switch that is `true`.
fn values_of(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().expect("keys have a long flag");
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}").into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err("a switch: true or false".into()),
        };
    }
    let many = matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|range: ValueRange| range.max_values() > 1);
    let scalars = match value {
        toml::Value::Array(items) if many => items.iter().collect(),
        toml::Value::Array(_) => return Err("takes one value, not a list".into()),
        value => vec![value],
    };
    let takes_bool = arg.get_possible_values().iter().any(|v| v.get_name() == "true");
    scalars
        .into_iter()
        .map(|value| {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Datetime(d) => d.to_string(),
                toml::Value::Boolean(b) if takes_bool => b.to_string(),
                toml::Value::Boolean(_) => return Err("takes a value, not true or false".to_string()),
                toml::Value::Array(_) => return Err("a list of single values, not of lists".to_string()),
                toml::Value::Table(_) => return Err("takes a value, not a table".to_string()),
            };
            Ok(format!("--{long}={text}").into())
        })
        .collect()
}

/// Parses one flag alone, as `serve` would (with no environment), and says
/// why it is refused, if it is.
fn check_value(validator: &Command, flag: &OsString) -> Result<(), String> {
    let Err(error) = validator.clone().try_get_matches_from([flag]) else { return Ok(()) };
    match error.kind() {
        // Another setting's business (--tls-cert needs --tls-key): the whole
        // command line is checked after this.
        ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict => Ok(()),
        ErrorKind::ValueValidation => {
            let cause = std::error::Error::source(&error).map(|c| c.to_string());
            Err(cause.unwrap_or_else(|| first_line(&error)))
        }
        ErrorKind::InvalidValue => match error.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => Err(format!("not one of: {}", valid.join(", "))),
            _ => Err(first_line(&error)),
        },
        _ => Err(first_line(&error)),
    }
}

/// clap's message without its `error: ` prefix and its usage lines.
fn first_line(error: &clap::Error) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// A TOML syntax error as one line, with the place it is at.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("not TOML: line {line}, column {column}: {message}")
        }
        None => format!("not TOML: {message}"),
    }
}

/// Why `key` is not a setting, with the one it may have meant.
fn unknown_key(key: &str, value: &toml::Value, settings: &Command) -> String {
    if let toml::Value::Table(_) = value {
        return format!(
            "[{key}] is not a setting: the file has no sections; write each setting at the top level, \
             before any [section] line (`max-groups = 20`)"
        );
    }
    let known: Vec<&str> = keys(settings).filter_map(Arg::get_long).collect();
    let hint = if key == "config" {
        "a settings file cannot name another".to_string()
    } else if key == "auth-secret" || key == "auth_secret" {
        "the secret itself is taken only from CONVGROUPS_AUTH_SECRET, or from the file that \
         `auth-secret-file` names"
            .to_string()
    } else if let Some(same) = known.iter().find(|k| **k == key.replace('_', "-")) {
        format!("keys are spelled as the flags are: `{same}`")
    } else {
        match closest(key, &known) {
            Some(near) => format!("did you mean `{near}`?"),
            None => "the keys are the flags of `convgroups serve --help` without their dashes".into(),
        }
    };
    format!("unknown key `{key}`: {hint}")
}

/// The known key nearest to `key`, if it is near enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let (distance, near) = known.iter().map(|k| (edit_distance(key, k), *k)).min()?;
    (distance <= 2.max(key.len() / 4)).then_some(near)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Whether a setting's value must not be printed.
fn is_secret(id: &str) -> bool {
    let id = id.to_ascii_lowercase();
    (id.contains("secret") || id.contains("password") || id.contains("token")) && !id.ends_with("file")
}

/// The effective settings of a parsed `serve` (or `check-config`) command
/// line, as a settings file that would set each the same way, with where
/// each came from: `max-groups = 2  # convgroups.toml`. Settings not set
/// are comments; secret values are not shown.
pub fn describe(matches: &ArgMatches, settings: &Command, expanded: &Expanded) -> String {
    let mut lines = Vec::new();
    for arg in keys(settings) {
        let id = arg.get_id().as_str();
        let long = arg.get_long().expect("keys have a long flag");
        let source = match matches.value_source(id) {
            Some(ValueSource::DefaultValue) => "default".to_string(),
            Some(ValueSource::EnvVariable) => {
                arg.get_env().map_or("environment".into(), |name| name.to_string_lossy().into_owned())
            }
            Some(_) if expanded.from_file.contains(id) => {
                expanded.file.as_deref().map_or("file".into(), |f| f.display().to_string())
            }
            Some(_) => format!("--{long}"),
            None => {
                lines.push((format!("# {long} ="), "not set".to_string()));
                continue;
            }
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if is_secret(id) {
            toml::Value::String("(not shown)".into())
        } else if matches!(arg.get_action(), ArgAction::SetTrue) {
            toml::Value::Boolean(raw.first().is_some_and(|v| v == "true"))
        } else if matches!(arg.get_action(), ArgAction::Append) {
            toml::Value::Array(raw.into_iter().map(scalar).collect())
        } else {
            raw.into_iter().next().map_or(toml::Value::String(String::new()), scalar)
        };
        lines.push((format!("{long} = {value}"), source));
    }
    let width = lines.iter().map(|(setting, _)| setting.len()).max().unwrap_or(0).min(48);
    let mut text = String::new();
    for (setting, source) in lines {
        text.push_str(&format!("{setting:width$}  # {source}\n"));
    }
    text
}

/// A value as TOML: a whole number as an integer, anything else a string.
fn scalar(raw: String) -> toml::Value {
    match raw.parse::<i64>() {
        Ok(n) => toml::Value::Integer(n),
        Err(_) => toml::Value::String(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("max-group", "max-groups"), 1);
        assert_eq!(edit_distance("max_groups", "max-groups"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn only_secret_values_are_hidden() {
        assert!(is_secret("auth_secret"));
        assert!(!is_secret("auth_secret_file"));
        assert!(!is_secret("max_groups"));
    }
}
