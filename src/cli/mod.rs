//! The command-line client for people: `groups`, `conversations` and `watch`
//! talk to a running server over gRPC; `backup` and `restore` work on the
//! data directory of a stopped one. The binary parses [`Command`] and calls
//! [`run`].
//!
//! * `client`: connection flags, TLS, token headers, how errors read.
//! * `commands`: one function per subcommand.
//! * `render`: messages as proto3 JSON and as text; `output`: the JSON
//!   writer and text tables.
//!
//! Output: text for people by default, `--json` prints one JSON object
//! (`watch` always prints JSON, one object per line). Errors go to stderr as
//! `error: <CODE> <REASON>: <message>`.

mod client;
mod commands;
mod output;
mod render;
mod webhooks;

pub use webhooks::{WebhooksArgs, WebhooksCommand};

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::domain::EventType;
use clap::{Args, Subcommand, ValueEnum};

pub use client::{Connection, DEFAULT_ADDR};

/// Exit status when the command failed: an RPC error, no connection, bad
/// input, a refused backup or restore. (Usage errors exit 2, as clap does.)
pub const EXIT_ERROR: u8 = 1;
/// Exit status when a batch call was applied but some of its items failed
/// (each failure is printed to stderr). Not 2, which means a usage error.
pub const EXIT_SOME_ITEMS_FAILED: u8 = 3;

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 error (the reason is printed as `error: <CODE> <REASON>: <message>`); \
2 usage error; 3 some items of a batch call failed (the others were applied; each failure is \
printed to stderr as `error: <ID>: <CODE>: <message>`).";

/// The client subcommands (flattened into the binary's own subcommands).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List and change conversation groups on a running server.
    #[command(after_help = EXIT_CODES)]
    Groups(GroupsArgs),
    /// List, count, update and delete conversations on a running server.
    #[command(after_help = EXIT_CODES)]
    Conversations(ConversationsArgs),
    /// Stream group events from a running server, one JSON object per line,
    /// until Ctrl-C or the server ends the stream.
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
    /// Register, inspect, change and replay webhook endpoints (admin token).
    #[command(after_help = EXIT_CODES)]
    Webhooks(WebhooksArgs),
    /// Write a backup of a stopped server's data directory to a file: every
    /// group, conversation, revision and event, and the auth secret (so
    /// issued tokens stay valid).
    Backup(BackupArgs),
    /// Restore a backup into a new, empty data directory (the server must not
    /// be running on it). A damaged file is refused and restores nothing.
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// The groups in display order, with member and unread counts.
    List,
    /// Create a group holding the given conversations (C2C<user> or
    /// GROUP<group>); it is created even if some of them fail.
    #[command(after_help = EXIT_CODES)]
    Create {
        /// The group.
        name: String,
        /// Conversation ids: C2C<user> or GROUP<group> (c2c_<user> and
        /// group_<group> are accepted too). None for a smart group that
        /// starts with its rule's members only.
        #[arg(value_name = "ID", required_unless_present_any = RULE_FLAGS)]
        ids: Vec<String>,
        /// With any of these, a smart group (see `groups rule`).
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        expect: Expect,
    },
    /// Make a group a smart group, change its rule, or (--clear) make it an
    /// ordinary group again. Members by rule follow the rule from then on;
    /// explicitly added members stay.
    Rule {
        /// The group (its id with --by-id).
        name: String,
        #[command(flatten)]
        rule: RuleArgs,
        /// Remove the rule (its members by rule leave).
        #[arg(long, conflicts_with_all = RULE_FLAGS, required_unless_present_any = RULE_FLAGS)]
        clear: bool,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Rename a group, keeping its members, position and id.
    Rename {
        /// The group's current name (its id with --by-id).
        old: String,
        /// Its new name.
        new: String,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Delete a group (its conversations stay).
    Delete {
        /// The group (its id with --by-id).
        name: String,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Add conversations to a group.
    #[command(after_help = EXIT_CODES)]
    Add {
        /// The group (its id with --by-id).
        name: String,
        /// Conversation ids: C2C<user> or GROUP<group> (c2c_<user> and
        /// group_<group> are accepted too).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Remove conversations from a group (the conversations stay).
    #[command(after_help = EXIT_CODES)]
    Remove {
        /// The group (its id with --by-id).
        name: String,
        /// Conversation ids: C2C<user> or GROUP<group> (c2c_<user> and
        /// group_<group> are accepted too).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Mark every conversation of a group read (unread count 0), in one
    /// revision.
    MarkRead {
        /// The group (its id with --by-id).
        name: String,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Set how every conversation of a group receives messages (`--recv-opt
    /// receive` unmutes), in one revision.
    Mute {
        /// The group (its id with --by-id).
        name: String,
        /// The receive option every member gets.
        #[arg(long, value_enum, value_name = "OPT", default_value = "receive-not-notify")]
        recv_opt: RecvOptArg,
        /// Also give the option to conversations added to the group later
        /// (without it, an option the group remembered is forgotten).
        #[arg(long)]
        new_members: bool,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Move conversations from one group to others (--from), or add them to
    /// several groups at once, in one revision. A move is all or nothing
    /// per conversation: if a target is full it stays where it is.
    #[command(after_help = EXIT_CODES)]
    Move {
        /// Conversation ids: C2C<user> or GROUP<group> (c2c_<user> and
        /// group_<group> are accepted too).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// The group to move them out of (an id with --by-id); without it
        /// they are only added to the targets.
        #[arg(long, value_name = "GROUP")]
        from: Option<String>,
        /// A target group (an id with --by-id); repeat for more.
        #[arg(long, required = true, value_name = "GROUP")]
        to: Vec<String>,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Set how a group looks: its icon, colour, collapsed state and client
    /// data. Only the fields given are changed (each flag adds its field to
    /// the request's update_mask); the others keep their values.
    #[command(group(clap::ArgGroup::new("look").required(true).multiple(true)
        .args(["icon", "clear_icon", "color", "collapsed", "custom_data_base64", "clear_custom_data"])))]
    Update {
        /// The group (its id with --by-id).
        name: String,
        /// An emoji or short text (at most the server's max_group_icon_bytes, 16 by default).
        #[arg(long, value_name = "TEXT", conflicts_with = "clear_icon")]
        icon: Option<String>,
        /// Remove the icon.
        #[arg(long)]
        clear_icon: bool,
        /// The tag colour (`none` removes it).
        #[arg(long, value_enum, value_name = "COLOR")]
        color: Option<ColorArg>,
        /// Show the group folded (true) or unfolded (false) on every device.
        #[arg(long, value_name = "true|false")]
        collapsed: Option<bool>,
        /// Opaque client data, base64 (standard alphabet, with padding).
        #[arg(long, value_name = "BASE64", conflicts_with = "clear_custom_data")]
        custom_data_base64: Option<String>,
        /// Remove the client data.
        #[arg(long)]
        clear_custom_data: bool,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Set the order inside a group: recent (the default: the
    /// conversations' own order), manual (as arranged with move-in) or
    /// alphabetical (show name, byte-wise).
    Sort {
        /// The group (its id with --by-id).
        name: String,
        /// recent, manual or alphabetical.
        #[arg(value_enum)]
        mode: SortModeArg,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Move conversations inside a manual group, in the order given: before
    /// or after another member, or to the start or the end.
    #[command(name = "move-in", after_help = EXIT_CODES)]
    MoveIn {
        /// The group (its id with --by-id).
        name: String,
        /// The members to move.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        place: MovePlace,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Pin members of a group in that group (listed first in every sort
    /// mode), to the front of its pins in the order given.
    #[command(after_help = EXIT_CODES)]
    Pin {
        /// The group (its id with --by-id).
        name: String,
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Unpin conversations in a group.
    #[command(after_help = EXIT_CODES)]
    Unpin {
        /// The group (its id with --by-id).
        name: String,
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
    /// Set the display order: name every group exactly once.
    Reorder {
        /// Every group, in the new order (ids with --by-id).
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        #[command(flatten)]
        by: ById,
        #[command(flatten)]
        expect: Expect,
    },
}

/// The ids of the rule flags, for clap's "required unless" and "conflicts".
const RULE_FLAGS: [&str; 8] =
    ["match_type", "match_mark", "match_unread", "match_muted", "match_ungrouped", "match_at", "include", "exclude"];

/// A smart group's rule: the flags given combine with AND; --include and
/// --exclude name conversations that always or never belong.
#[derive(Args, Debug, Clone, Default)]
pub struct RuleArgs {
    /// Only one kind of conversation.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub match_type: Option<ConvType>,
    /// Conversations with this mark (0: with no mark).
    #[arg(long, value_name = "MARK")]
    pub match_mark: Option<u64>,
    /// Conversations with (true) or without (false) unread messages.
    #[arg(long, value_name = "BOOL")]
    pub match_unread: Option<bool>,
    /// Muted (true: any receive option but RECEIVE) or not (false).
    #[arg(long, value_name = "BOOL")]
    pub match_muted: Option<bool>,
    /// In no group except smart groups (true) or in one (false).
    #[arg(long, value_name = "BOOL")]
    pub match_ungrouped: Option<bool>,
    /// With (true) or without (false) an @-mention.
    #[arg(long, value_name = "BOOL")]
    pub match_at: Option<bool>,
    /// A conversation that always belongs (repeat for more).
    #[arg(long, value_name = "ID")]
    pub include: Vec<String>,
    /// A conversation that never belongs (repeat for more).
    #[arg(long, value_name = "ID")]
    pub exclude: Vec<String>,
}

/// A group's sort mode on the command line.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum SortModeArg {
    Recent,
    Manual,
    Alphabetical,
}

/// Where `groups move-in` puts the conversations: exactly one.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct MovePlace {
    /// Directly before this member.
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
    /// Directly after this member.
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
    /// At the start of the group's order.
    #[arg(long)]
    pub to_start: bool,
    /// At the end of the group's order.
    #[arg(long)]
    pub to_end: bool,
}

/// Naming a group by its id instead of its name.
#[derive(Args, Debug, Clone, Copy)]
pub struct ById {
    /// The group argument is a group id (as `groups list` shows, e.g. g3),
    /// not a name: ids stay the same across renames.
    #[arg(long)]
    pub by_id: bool,
}

impl ById {
    /// The request's (name, id) fields for `group`.
    pub fn fields(self, group: &str) -> (String, String) {
        if self.by_id {
            (String::new(), group.to_string())
        } else {
            (group.to_string(), String::new())
        }
    }

    /// The group as a sentence names it: `"Work"`, or `g3`.
    pub fn label(self, group: &str) -> String {
        if self.by_id {
            group.to_string()
        } else {
            render::quoted(group)
        }
    }
}

/// Optimistic concurrency for scripts.
#[derive(Args, Debug, Clone, Copy)]
pub struct Expect {
    /// Apply the change only if the user's current revision is this one
    /// (else ABORTED REVISION_MISMATCH and nothing changes).
    #[arg(long, value_name = "REV")]
    pub expected_revision: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ConversationsArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: ConversationsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ConversationsCommand {
    /// List conversations: pinned first, then by order key (newest first).
    List {
        #[command(flatten)]
        filter: Filter,
        /// Conversations per page (0: the server's default, 100).
        #[arg(long, value_name = "N", default_value_t = 0)]
        page_size: u32,
        /// Continue a listing: the token printed with the previous page.
        #[arg(long, value_name = "TOKEN")]
        page_token: Option<String>,
        /// Fetch every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// The total unread count of the matching conversations (muted ones not
    /// counted).
    Unread {
        #[command(flatten)]
        filter: Filter,
    },
    /// Create or update conversations: the given fields are set on every ID,
    /// the others keep their values.
    #[command(after_help = EXIT_CODES)]
    Upsert {
        /// Conversation ids: C2C<user> or GROUP<group> (c2c_<user> and
        /// group_<group> are accepted too).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        update: Update,
    },
    /// Delete conversations: their data and their membership in every group.
    #[command(after_help = EXIT_CODES)]
    Delete {
        /// Conversation ids: C2C<user> or GROUP<group> (c2c_<user> and
        /// group_<group> are accepted too).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

/// Which conversations `list` and `unread` cover; the flags combine with AND.
#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// Only the members of this group.
    #[arg(long, value_name = "NAME", conflicts_with = "ungrouped")]
    pub group: Option<String>,
    /// Only the members of the group with this id (e.g. g3).
    #[arg(long, value_name = "ID", conflicts_with_all = ["ungrouped", "group"])]
    pub group_id: Option<String>,
    /// Only conversations in no group.
    #[arg(long)]
    pub ungrouped: bool,
    /// Only conversations with unread messages.
    #[arg(long)]
    pub unread: bool,
    /// Only one kind of conversation.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<ConvType>,
    /// Only conversations carrying this mark (0: those with no mark).
    #[arg(long, value_name = "MARK")]
    pub mark: Option<u64>,
    /// Only these conversations (repeat the flag).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvType {
    /// One-to-one chats (C2C...).
    C2c,
    /// Chat groups (GROUP...).
    Group,
}

/// The fields `conversations upsert` can set.
#[derive(Args, Debug, Clone, Default)]
pub struct Update {
    /// Display name (show_name).
    #[arg(long)]
    pub name: Option<String>,
    /// Avatar URL (face_url).
    #[arg(long)]
    pub face_url: Option<String>,
    /// Unread message count.
    #[arg(long, value_name = "N")]
    pub unread: Option<u32>,
    /// Pin the conversations.
    #[arg(long, conflicts_with = "unpin")]
    pub pin: bool,
    /// Unpin the conversations.
    #[arg(long)]
    pub unpin: bool,
    /// Sort key (typically the last message time); larger first.
    #[arg(long, value_name = "N")]
    pub order_key: Option<u64>,
    /// How messages are received.
    #[arg(long, value_enum, value_name = "OPT")]
    pub recv_opt: Option<RecvOptArg>,
    /// Replace the marks (comma-separated numbers).
    #[arg(long, value_name = "MARK,...", value_delimiter = ',', conflicts_with = "clear_marks")]
    pub marks: Option<Vec<u64>>,
    /// Remove every mark.
    #[arg(long)]
    pub clear_marks: bool,
    /// Add marks, keeping the others (comma-separated numbers; one step on
    /// the server, so a mark another device sets meanwhile is kept).
    #[arg(long, value_name = "MARK,...", value_delimiter = ',', conflicts_with_all = ["marks", "clear_marks"])]
    pub add_marks: Vec<u64>,
    /// Remove marks, keeping the others (comma-separated numbers).
    #[arg(long, value_name = "MARK,...", value_delimiter = ',', conflicts_with_all = ["marks", "clear_marks"])]
    pub remove_marks: Vec<u64>,
    /// Opaque client data, as text.
    #[arg(long, value_name = "TEXT")]
    pub custom_data: Option<String>,
}

/// `groups update --color`: the palette of GroupColor.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorArg {
    /// No colour (GROUP_COLOR_UNSPECIFIED).
    None,
    Red,
    Orange,
    Violet,
    Green,
    Cyan,
    Blue,
    Pink,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvOptArg {
    Receive,
    NotReceive,
    ReceiveNotNotify,
    ReceiveNotNotifyExceptAt,
    NotReceiveExceptAt,
}

const WATCH_HELP: &str = "\
Each line is one message of the stream: {\"snapshot\":...}, {\"events\":{\"revision\":...,\"events\":[...]}} \
or {\"bookmark\":{\"revision\":...}}. Without --from the stream starts now (with --snapshot: the current \
groups first); --from REV first replays every retained event from REV on. Exit status: 0 on Ctrl-C, at the \
end of the stream, or after the first bookmark with --no-follow; 1 on an error. When the server shuts down \
the stream ends with UNAVAILABLE SHUTTING_DOWN and the revision to resume from is printed to stderr: \
`convgroups watch --from <REV>` continues without a gap.";

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Replay retained events from this revision on, then follow (0: start now).
    #[arg(long, value_name = "REV", default_value_t = 0)]
    pub from: u64,
    /// Print the current groups with their members first.
    #[arg(long)]
    pub snapshot: bool,
    /// Only events about this group (repeat for more; group-list-wide
    /// reorder events are always sent).
    #[arg(long, value_name = "NAME")]
    pub group: Vec<String>,
    /// Only events about the group with this id (repeat for more).
    #[arg(long, value_name = "ID")]
    pub group_id: Vec<String>,
    /// Only events of this kind (repeat for more).
    #[arg(long = "type", value_enum, value_name = "KIND")]
    pub kinds: Vec<EventType>,
    /// Every user's events (admin tokens only; not with --snapshot).
    #[arg(long)]
    pub all_users: bool,
    /// Stop at the first bookmark: print the snapshot and/or the replayed
    /// events up to now, then exit.
    #[arg(long)]
    pub no_follow: bool,
}

/// `--type KIND`: the domain's event types, spelled as on the command line.
impl ValueEnum for EventType {
    fn value_variants<'a>() -> &'a [Self] {
        &EventType::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            EventType::GroupCreated => "group-created",
            EventType::GroupDeleted => "group-deleted",
            EventType::GroupRenamed => "group-renamed",
            EventType::GroupsReordered => "groups-reordered",
            EventType::ConversationsAddedToGroup => "conversations-added-to-group",
            EventType::ConversationsDeletedFromGroup => "conversations-deleted-from-group",
            EventType::ConversationsChanged => "conversations-changed",
            EventType::ConversationsDeleted => "conversations-deleted",
            EventType::GroupUpdated => "group-updated",
            EventType::GroupRuleChanged => "group-rule-changed",
            EventType::GroupMuteChanged => "group-mute-changed",
            EventType::GroupOrderChanged => "group-order-changed",
            EventType::GroupPinsChanged => "group-pins-changed",
        }))
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Data directory of the stopped server (etcd backend: where the
    /// generated auth secret is, if the replicas use one).
    #[arg(long, env = "CONVGROUPS_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Which backend to back up, and where etcd is (`--backend etcd
    /// --etcd-endpoints ... --etcd-prefix ...`); replicas may keep running.
    #[command(flatten)]
    pub storage: crate::config::StorageSettings,
    /// The backup file to write (mode 0600: it holds the auth secret).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// The data directory to create; must not hold a database yet (etcd
    /// backend: where the backup's auth secret is written).
    #[arg(long, env = "CONVGROUPS_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Which backend to restore into (`--backend etcd --etcd-endpoints ...
    /// --etcd-prefix ...`: an empty prefix; the event log starts afresh).
    #[command(flatten)]
    pub storage: crate::config::StorageSettings,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A batch call was applied, but some items failed.
    SomeItemsFailed,
}

/// Runs a client command and says how the process should exit.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Backup(args) => commands::backup(&args),
        Command::Restore(args) => commands::restore(&args),
        command => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| client::Failure::Message(format!("starting the runtime: {e}")))
            .and_then(|runtime| runtime.block_on(commands::remote(command))),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeItemsFailed) => ExitCode::from(EXIT_SOME_ITEMS_FAILED),
        // The reader of stdout went away (`| head`): nothing left to say.
        Err(client::Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "error: {failure}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
