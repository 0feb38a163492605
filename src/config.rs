//! Settings of `convgroups serve`: every one is a flag with a `CONVGROUPS_*`
//! environment variable, a key of the settings file (`--config`, see
//! [`crate::settings_file`]) and a documented default (`DEFAULT_*` below),
//! written once: durations as the text `--help` shows, which clap and the
//! `Default` impls both parse.
//! The README's settings table lists the same names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Default listen address: loopback only, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default data directory (sled database, generated auth secret).
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Groups per user (Tencent Cloud Chat allows 20).
pub const DEFAULT_MAX_GROUPS: usize = 20;
/// Bytes of UTF-8 in a group name (Tencent: 32).
pub const DEFAULT_MAX_GROUP_NAME_BYTES: usize = 32;
/// Conversations one group may hold (Tencent: 1000).
pub const DEFAULT_MAX_CONVERSATIONS_PER_GROUP: usize = 1000;
/// Conversation ids (or updates) in one request (Tencent: 100).
pub const DEFAULT_MAX_IDS_PER_REQUEST: usize = 100;
/// Pinned conversations per user (Tencent: 50).
pub const DEFAULT_MAX_PINNED: usize = 50;
/// Conversations pinned in one group (Telegram-style folder pins): a few
/// at the top of the group, not a second ordering.
pub const DEFAULT_MAX_PINNED_PER_GROUP: usize = 5;
/// Bytes of `custom_data` per conversation (Tencent: 256).
pub const DEFAULT_MAX_CUSTOM_DATA_BYTES: usize = 256;
/// An emoji or a few letters: a single emoji is 4 bytes, one with a skin
/// tone or a flag 8; long joined sequences (a family: 25) need more.
pub const DEFAULT_MAX_GROUP_ICON_BYTES: usize = 16;
/// As a conversation's custom_data.
pub const DEFAULT_MAX_GROUP_CUSTOM_DATA_BYTES: usize = 256;
/// Bytes of each free-text field of a conversation (show_name, face_url,
/// last_message.sender, last_message.text). Not in Tencent's docs; bounds what
/// one user can store per conversation.
pub const DEFAULT_MAX_TEXT_FIELD_BYTES: usize = 1024;
/// Values in a conversation's mark_list.
pub const DEFAULT_MAX_MARKS: usize = 64;
pub const DEFAULT_MAX_RULE_IDS: usize = 100;
/// GetConversationList page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest GetConversationList page; larger requests are capped to it.
pub const DEFAULT_MAX_PAGE_SIZE: usize = 1000;

/// Idle-stream bookmark period.
pub const DEFAULT_BOOKMARK_INTERVAL: &str = "10s";
/// Events younger than this are never trimmed.
pub const DEFAULT_RETAIN_FOR: &str = "7d";
/// The newest events of each user that are never trimmed.
pub const DEFAULT_RETAIN_EVENTS_PER_USER: u64 = 10_000;
/// How often background trimming of the event log runs.
pub const DEFAULT_COMPACT_INTERVAL: &str = "1m";
/// Open watch streams on the whole server.
pub const DEFAULT_MAX_WATCHERS: usize = 100_000;
/// Open watch streams per user.
pub const DEFAULT_MAX_WATCHERS_PER_USER: usize = 100;
/// Batches each user's live ring holds before a watcher that fell behind
/// is told it lagged (and reads the rest from the log). A user's mutations
/// are rarely bursty; the log covers the rest.
pub const DEFAULT_WATCH_USER_RING: usize = 256;
/// Batches the ring of `all_users` watchers holds (every user's changes
/// pass through it).
pub const DEFAULT_WATCH_ALL_USERS_RING: usize = 4096;
/// Largest ring (either kind). A ring's slots are allocated when it is
/// made, each user's with its first watcher, so a typo such as 1e9 would
/// take gigabytes per user.
pub const MAX_WATCH_RING: usize = 1 << 20;

/// The value of a duration default. Each default is written once, as the
/// text `--help` shows (`DEFAULT_RETAIN_FOR = "7d"`), and clap parses that
/// same text when the flag is not given; `Default` impls read it here. A
/// default that does not parse fails every test that builds a `Config`
/// (see `tests::defaults_are_what_clap_parses`).
fn default_duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("the default duration {text:?}: {e}"))
}

/// A duration that must be more than zero: a zero interval would make a
/// timer spin (or, in tokio, panic) and a zero timeout would fail every call.
fn positive_duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

/// A count that must be at least 1: with 0 no request could ever succeed.
fn positive_count(value: &str) -> Result<usize, String> {
    let count: usize = value.parse().map_err(|e| format!("{e}"))?;
    if count == 0 {
        return Err("must be at least 1".into());
    }
    Ok(count)
}

/// A live-ring size: at least 1 (a ring of none holds nothing) and at most
/// [`MAX_WATCH_RING`].
fn ring_size(value: &str) -> Result<usize, String> {
    let size = positive_count(value)?;
    if size > MAX_WATCH_RING {
        return Err(format!("{size} is more than the most allowed, {MAX_WATCH_RING}"));
    }
    Ok(size)
}

/// The rules of groups and conversations that a request is checked against.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Groups per user; creating one more is RESOURCE_EXHAUSTED.
    #[arg(long, env = "CONVGROUPS_MAX_GROUPS", default_value_t = DEFAULT_MAX_GROUPS, value_parser = positive_count)]
    pub max_groups: usize,
    /// Bytes of UTF-8 in a group name.
    #[arg(long, env = "CONVGROUPS_MAX_GROUP_NAME_BYTES", default_value_t = DEFAULT_MAX_GROUP_NAME_BYTES, value_parser = positive_count)]
    pub max_group_name_bytes: usize,
    /// Conversations one group may hold.
    #[arg(long, env = "CONVGROUPS_MAX_CONVERSATIONS_PER_GROUP", default_value_t = DEFAULT_MAX_CONVERSATIONS_PER_GROUP)]
    pub max_conversations_per_group: usize,
    /// Conversation ids or updates in one request.
    #[arg(long, env = "CONVGROUPS_MAX_IDS_PER_REQUEST", default_value_t = DEFAULT_MAX_IDS_PER_REQUEST, value_parser = positive_count)]
    pub max_ids_per_request: usize,
    /// Pinned conversations per user.
    #[arg(long, env = "CONVGROUPS_MAX_PINNED", default_value_t = DEFAULT_MAX_PINNED)]
    pub max_pinned: usize,
    /// Conversations pinned in one group (PinConversationsInGroup), apart
    /// from the user-wide pins of --max-pinned.
    #[arg(long, env = "CONVGROUPS_MAX_PINNED_PER_GROUP", default_value_t = DEFAULT_MAX_PINNED_PER_GROUP)]
    pub max_pinned_per_group: usize,
    /// Bytes of custom_data per conversation.
    #[arg(long, env = "CONVGROUPS_MAX_CUSTOM_DATA_BYTES", default_value_t = DEFAULT_MAX_CUSTOM_DATA_BYTES)]
    pub max_custom_data_bytes: usize,
    /// Bytes of each free-text conversation field (show_name, face_url, last_message).
    #[arg(long, env = "CONVGROUPS_MAX_TEXT_FIELD_BYTES", default_value_t = DEFAULT_MAX_TEXT_FIELD_BYTES)]
    pub max_text_field_bytes: usize,
    /// Values in a conversation's mark_list.
    #[arg(long, env = "CONVGROUPS_MAX_MARKS", default_value_t = DEFAULT_MAX_MARKS)]
    pub max_marks: usize,
    /// Conversation ids in a smart group's rule (include_ids and
    /// exclude_ids together).
    #[arg(long, env = "CONVGROUPS_MAX_RULE_IDS", default_value_t = DEFAULT_MAX_RULE_IDS)]
    pub max_rule_ids: usize,
    /// Bytes of UTF-8 in a group's icon (UpdateConversationGroup).
    #[arg(long, env = "CONVGROUPS_MAX_GROUP_ICON_BYTES", default_value_t = DEFAULT_MAX_GROUP_ICON_BYTES)]
    pub max_group_icon_bytes: usize,
    /// Bytes of a group's custom_data (UpdateConversationGroup).
    #[arg(long, env = "CONVGROUPS_MAX_GROUP_CUSTOM_DATA_BYTES", default_value_t = DEFAULT_MAX_GROUP_CUSTOM_DATA_BYTES)]
    pub max_group_custom_data_bytes: usize,
    /// GetConversationList page size when the request asks for 0.
    #[arg(long, env = "CONVGROUPS_DEFAULT_PAGE_SIZE", default_value_t = DEFAULT_PAGE_SIZE, value_parser = positive_count)]
    pub default_page_size: usize,
    /// Largest GetConversationList page; larger requests are capped.
    #[arg(long, env = "CONVGROUPS_MAX_PAGE_SIZE", default_value_t = DEFAULT_MAX_PAGE_SIZE, value_parser = positive_count)]
    pub max_page_size: usize,
}

impl Limits {
    /// Checks the settings against each other (each alone is checked as it
    /// is parsed).
    pub fn validate(&self) -> Result<(), crate::error::Error> {
        if self.default_page_size > self.max_page_size {
            return Err(crate::error::Error::InvalidSetting {
                setting: crate::config::Setting::Flag("--default-page-size"),
                message: format!(
                    "{} is more than --max-page-size {}: a request that asks for no particular size would get a \
                     page larger than any it may ask for",
                    self.default_page_size, self.max_page_size
                ),
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_groups: DEFAULT_MAX_GROUPS,
            max_group_name_bytes: DEFAULT_MAX_GROUP_NAME_BYTES,
            max_conversations_per_group: DEFAULT_MAX_CONVERSATIONS_PER_GROUP,
            max_ids_per_request: DEFAULT_MAX_IDS_PER_REQUEST,
            max_pinned: DEFAULT_MAX_PINNED,
            max_pinned_per_group: DEFAULT_MAX_PINNED_PER_GROUP,
            max_custom_data_bytes: DEFAULT_MAX_CUSTOM_DATA_BYTES,
            max_text_field_bytes: DEFAULT_MAX_TEXT_FIELD_BYTES,
            max_marks: DEFAULT_MAX_MARKS,
            max_rule_ids: DEFAULT_MAX_RULE_IDS,
            max_group_icon_bytes: DEFAULT_MAX_GROUP_ICON_BYTES,
            max_group_custom_data_bytes: DEFAULT_MAX_GROUP_CUSTOM_DATA_BYTES,
            default_page_size: DEFAULT_PAGE_SIZE,
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
        }
    }
}

/// Watch stream and event-log retention settings.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct WatchSettings {
    /// Bookmark period on an idle watch stream (e.g. 10s).
    #[arg(long, env = "CONVGROUPS_BOOKMARK_INTERVAL", default_value = DEFAULT_BOOKMARK_INTERVAL, value_parser = positive_duration)]
    pub bookmark_interval: Duration,
    /// Keep every event at least this long (e.g. 7d).
    #[arg(long, env = "CONVGROUPS_RETAIN_FOR", default_value = DEFAULT_RETAIN_FOR, value_parser = humantime::parse_duration)]
    pub retain_for: Duration,
    /// Keep at least this many of each user's newest events.
    #[arg(long, env = "CONVGROUPS_RETAIN_EVENTS_PER_USER", default_value_t = DEFAULT_RETAIN_EVENTS_PER_USER)]
    pub retain_events_per_user: u64,
    /// How often the event log is trimmed in the background (e.g. 1m).
    #[arg(long, env = "CONVGROUPS_COMPACT_INTERVAL", default_value = DEFAULT_COMPACT_INTERVAL, value_parser = positive_duration)]
    pub compact_interval: Duration,
    /// Open watch streams on the whole server.
    #[arg(long, env = "CONVGROUPS_MAX_WATCHERS", default_value_t = DEFAULT_MAX_WATCHERS)]
    pub max_watchers: usize,
    /// Open watch streams per user.
    #[arg(long, env = "CONVGROUPS_MAX_WATCHERS_PER_USER", default_value_t = DEFAULT_MAX_WATCHERS_PER_USER)]
    pub max_watchers_per_user: usize,
    /// Batches each user's live ring holds; a watcher further behind reads
    /// the rest from the event log (and counts in
    /// convgroups_watch_lagged_total). At most 1048576.
    #[arg(long, env = "CONVGROUPS_WATCH_USER_RING", default_value_t = DEFAULT_WATCH_USER_RING, value_parser = ring_size)]
    pub watch_user_ring: usize,
    /// Batches the live ring of all_users watchers holds (every user's
    /// changes pass through it). At most 1048576.
    #[arg(long, env = "CONVGROUPS_WATCH_ALL_USERS_RING", default_value_t = DEFAULT_WATCH_ALL_USERS_RING, value_parser = ring_size)]
    pub watch_all_users_ring: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            bookmark_interval: default_duration(DEFAULT_BOOKMARK_INTERVAL),
            retain_for: default_duration(DEFAULT_RETAIN_FOR),
            retain_events_per_user: DEFAULT_RETAIN_EVENTS_PER_USER,
            compact_interval: default_duration(DEFAULT_COMPACT_INTERVAL),
            max_watchers: DEFAULT_MAX_WATCHERS,
            max_watchers_per_user: DEFAULT_MAX_WATCHERS_PER_USER,
            watch_user_ring: DEFAULT_WATCH_USER_RING,
            watch_all_users_ring: DEFAULT_WATCH_ALL_USERS_RING,
        }
    }
}

/// How long shutdown waits for in-flight calls before it stops anyway.
pub const DEFAULT_SHUTDOWN_GRACE: &str = "10s";
/// HTTP/2 streams one connection may have open at once: one client
/// connection may carry thousands of watch streams.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 16_384;
/// HTTP/2 PING period on idle connections, so dead peers of long-lived watch
/// streams are noticed and their resources freed.
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL: &str = "30s";
/// How long a keepalive PING may go unanswered before the connection closes.
pub const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT: &str = "10s";
/// While storage is failing, how often the server probes the data directory
/// (a 1 MiB write, fsync and delete) and, once that works, reopens the
/// database.
pub const DEFAULT_STORAGE_RETRY_INTERVAL: &str = "500ms";

/// Largest request message accepted, in bytes (tonic's default too).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Unary calls in flight at once; more are refused at once with
/// RESOURCE_EXHAUSTED / OVERLOADED instead of queueing.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Users whose encoded GetConversationGroupList answer the server keeps.
pub const DEFAULT_GROUP_LIST_CACHE_USERS: usize = 10_000;
/// Users whose encoded first page of GetConversationList the server keeps
/// (a page of 100 is ~10 KB).
pub const DEFAULT_FIRST_PAGE_CACHE_USERS: usize = 1_000;
/// Deadline for one unary call on the server side.
pub const DEFAULT_UNARY_TIMEOUT: &str = "30s";

/// Transport and lifecycle settings.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Largest request message in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "CONVGROUPS_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES, value_parser = positive_count)]
    pub max_request_bytes: usize,
    /// Unary calls in flight; beyond it calls are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "CONVGROUPS_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT, value_parser = positive_count)]
    pub max_in_flight: usize,
    /// Users whose encoded GetConversationGroupList answer is kept in memory
    /// and reused until their groups change (a few KB each); 0 turns it off.
    #[arg(long, env = "CONVGROUPS_GROUP_LIST_CACHE_USERS", default_value_t = DEFAULT_GROUP_LIST_CACHE_USERS)]
    pub group_list_cache_users: usize,
    /// Users whose encoded first page of GetConversationList (the last
    /// filter and page size each asked for) is kept in memory and reused
    /// until their data changes; sled backend only; 0 turns it off.
    #[arg(long, env = "CONVGROUPS_FIRST_PAGE_CACHE_USERS", default_value_t = DEFAULT_FIRST_PAGE_CACHE_USERS)]
    pub first_page_cache_users: usize,
    /// Server-side deadline of a unary call (e.g. 30s).
    #[arg(long, env = "CONVGROUPS_UNARY_TIMEOUT", default_value = DEFAULT_UNARY_TIMEOUT, value_parser = positive_duration)]
    pub unary_timeout: Duration,
    /// PEM certificate chain; with --tls-key, serve TLS only.
    #[arg(long, env = "CONVGROUPS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CONVGROUPS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Origins allowed to call through grpc-web from a browser (repeat or
    /// comma-separate; `*` for any). None: same-origin only.
    #[arg(long, env = "CONVGROUPS_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,
    /// Address of the Prometheus endpoint (off unless set).
    #[arg(long, env = "CONVGROUPS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// How long shutdown waits for in-flight calls (e.g. 10s).
    #[arg(long, env = "CONVGROUPS_SHUTDOWN_GRACE", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// HTTP/2 streams per connection.
    #[arg(long, env = "CONVGROUPS_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 keepalive PING period (e.g. 30s).
    #[arg(long, env = "CONVGROUPS_HTTP2_KEEPALIVE_INTERVAL", default_value = DEFAULT_HTTP2_KEEPALIVE_INTERVAL, value_parser = positive_duration)]
    pub http2_keepalive_interval: Duration,
    /// How long a keepalive PING may go unanswered (e.g. 10s).
    #[arg(long, env = "CONVGROUPS_HTTP2_KEEPALIVE_TIMEOUT", default_value = DEFAULT_HTTP2_KEEPALIVE_TIMEOUT, value_parser = positive_duration)]
    pub http2_keepalive_timeout: Duration,
    /// While storage is failing, how often to probe the data directory and
    /// try to reopen the database (e.g. 500ms).
    #[arg(long, env = "CONVGROUPS_STORAGE_RETRY_INTERVAL", default_value = DEFAULT_STORAGE_RETRY_INTERVAL, value_parser = positive_duration)]
    pub storage_retry_interval: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            group_list_cache_users: DEFAULT_GROUP_LIST_CACHE_USERS,
            first_page_cache_users: DEFAULT_FIRST_PAGE_CACHE_USERS,
            unary_timeout: default_duration(DEFAULT_UNARY_TIMEOUT),
            tls_cert: None,
            tls_key: None,
            cors_allow_origin: Vec::new(),
            metrics_listen: None,
            shutdown_grace: default_duration(DEFAULT_SHUTDOWN_GRACE),
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            http2_keepalive_interval: default_duration(DEFAULT_HTTP2_KEEPALIVE_INTERVAL),
            http2_keepalive_timeout: default_duration(DEFAULT_HTTP2_KEEPALIVE_TIMEOUT),
            storage_retry_interval: default_duration(DEFAULT_STORAGE_RETRY_INTERVAL),
        }
    }
}

/// Log output format.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Log level or filter (e.g. info, debug, convgroups=debug); RUST_LOG wins if set.
    #[arg(long, env = "CONVGROUPS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "CONVGROUPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { log_level: "info".into(), log_format: LogFormat::Text }
    }
}

/// What an [`crate::error::Error::InvalidSetting`] is about. Inner layers
/// (the store) name a setting by what it is; the flag a person types is
/// named here, with the flags, and added when the error is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// A flag or variable, named by the layer that parses it.
    Flag(&'static str),
    /// The data directory.
    DataDir,
    /// The etcd cluster's endpoints.
    EtcdEndpoints,
    /// The prefix of this deployment's keys in etcd.
    EtcdPrefix,
    /// The file a backup writes.
    BackupOut,
    /// The backup file a restore reads.
    RestoreIn,
}

impl Setting {
    /// The flag (or variable) that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Setting::Flag(flag) => flag,
            Setting::DataDir => "--data-dir",
            Setting::EtcdEndpoints => "--etcd-endpoints",
            Setting::EtcdPrefix => "--etcd-prefix",
            Setting::BackupOut => "--out",
            Setting::RestoreIn => "--in",
        }
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.flag())
    }
}

/// Where state is kept.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Embedded sled database in `--data-dir` (one server).
    #[default]
    Sled,
    /// An etcd 3.4+ cluster shared by any number of stateless replicas.
    Etcd,
}

/// Default key prefix in etcd: several deployments can share one cluster
/// under different prefixes.
pub const DEFAULT_ETCD_PREFIX: &str = "/convgroups/";
/// How long one etcd request may take before the replica tries another
/// member (a stopped member accepts connections but never answers).
pub const DEFAULT_ETCD_REQUEST_TIMEOUT: &str = "2s";
/// How long a mutation or read keeps trying other members before it fails
/// with STORAGE_UNAVAILABLE.
pub const DEFAULT_ETCD_RETRY_FOR: &str = "5s";
/// How often each replica writes its heartbeat key, which its change feed
/// must see come back: it bounds how stale an idle stream's bookmark is and
/// how soon a dead feed is noticed.
pub const DEFAULT_ETCD_HEARTBEAT_INTERVAL: &str = "1s";
/// Users' records an etcd replica keeps for reads with `min_revision`.
pub const DEFAULT_ETCD_READ_CACHE_USERS: usize = 10_000;

/// The storage backend and its connection settings.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// Storage backend: `sled` (embedded, the default) or `etcd`.
    #[arg(long, env = "CONVGROUPS_BACKEND", value_enum, default_value_t = Backend::Sled)]
    pub backend: Backend,
    /// etcd client endpoints, comma-separated host:port (with --backend etcd).
    #[arg(long, env = "CONVGROUPS_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of this deployment in etcd.
    #[arg(long, env = "CONVGROUPS_ETCD_PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    pub etcd_prefix: String,
    /// Time one etcd request may take before another member is tried.
    #[arg(long, env = "CONVGROUPS_ETCD_REQUEST_TIMEOUT", default_value = DEFAULT_ETCD_REQUEST_TIMEOUT, value_parser = positive_duration)]
    pub etcd_request_timeout: Duration,
    /// How long an etcd call keeps trying members before failing.
    #[arg(long, env = "CONVGROUPS_ETCD_RETRY_FOR", default_value = DEFAULT_ETCD_RETRY_FOR, value_parser = positive_duration)]
    pub etcd_retry_for: Duration,
    /// How often the replica writes its heartbeat through its change feed.
    #[arg(long, env = "CONVGROUPS_ETCD_HEARTBEAT_INTERVAL", default_value = DEFAULT_ETCD_HEARTBEAT_INTERVAL, value_parser = positive_duration)]
    pub etcd_heartbeat_interval: Duration,
    /// Users' records a replica keeps in memory to answer
    /// GetConversationGroupList with `min_revision` without asking etcd
    /// (a few KB each); 0 turns that off (every read asks etcd).
    #[arg(long, env = "CONVGROUPS_ETCD_READ_CACHE_USERS", default_value_t = DEFAULT_ETCD_READ_CACHE_USERS)]
    pub etcd_read_cache_users: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: Backend::Sled,
            etcd_endpoints: Vec::new(),
            etcd_prefix: DEFAULT_ETCD_PREFIX.into(),
            etcd_request_timeout: default_duration(DEFAULT_ETCD_REQUEST_TIMEOUT),
            etcd_retry_for: default_duration(DEFAULT_ETCD_RETRY_FOR),
            etcd_heartbeat_interval: default_duration(DEFAULT_ETCD_HEARTBEAT_INTERVAL),
            etcd_read_cache_users: DEFAULT_ETCD_READ_CACHE_USERS,
        }
    }
}

pub const DEFAULT_WEBHOOK_REQUEST_TIMEOUT: &str = "10s";
pub const DEFAULT_WEBHOOK_MAX_RESPONSE_BYTES: usize = 64 * 1024;
pub const DEFAULT_WEBHOOK_RETRY_INITIAL: &str = "1s";
pub const DEFAULT_WEBHOOK_RETRY_MAX: &str = "10m";
pub const DEFAULT_WEBHOOK_FAILING_AFTER: u32 = 5;
pub const DEFAULT_WEBHOOK_ROTATION_GRACE: &str = "24h";
pub const DEFAULT_WEBHOOK_MAX_ENDPOINTS: usize = 100;
pub const DEFAULT_WEBHOOK_SCAN_INTERVAL: &str = "2s";
pub const DEFAULT_WEBHOOK_LEASE_TTL: &str = "10s";
pub const DEFAULT_WEBHOOK_CURSOR_SAVE_INTERVAL: &str = "10s";
/// Longest `--webhook-cursor-save-interval`: a cursor stored this late is
/// read again after a restart, and one that trimming (`--retain-for`)
/// overtook meanwhile records a gap of revisions that held nothing for the
/// endpoint; an hour is far inside any sensible retention.
pub const MAX_WEBHOOK_CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_WEBHOOK_MAX_GAPS: usize = 32;
/// Largest `--webhook-max-gaps`: the gaps are part of the cursor record,
/// written after every delivery, and of every GetWebhook answer (about 60
/// bytes each).
pub const MAX_WEBHOOK_MAX_GAPS: usize = 1024;

/// Webhook delivery (`crate::webhook`): the limits of one attempt, the
/// retry schedule, and how replicas share the endpoints.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Let webhook URLs reach loopback, private, link-local and metadata
    /// addresses. Off by default: whoever may register a webhook could
    /// otherwise make the server POST into its own network (SSRF).
    #[arg(long, env = "CONVGROUPS_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Time for one delivery attempt: lookup, connect, TLS, request and
    /// answer. Past it the attempt failed and is retried.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_REQUEST_TIMEOUT", default_value = DEFAULT_WEBHOOK_REQUEST_TIMEOUT, value_parser = positive_duration)]
    pub webhook_request_timeout: Duration,
    /// Bytes of a receiver's answer that are read (and dropped); the rest is
    /// not read at all.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_WEBHOOK_MAX_RESPONSE_BYTES)]
    pub webhook_max_response_bytes: usize,
    /// Wait before the first retry; doubled per failure (with jitter).
    #[arg(long, env = "CONVGROUPS_WEBHOOK_RETRY_INITIAL", default_value = DEFAULT_WEBHOOK_RETRY_INITIAL, value_parser = positive_duration)]
    pub webhook_retry_initial: Duration,
    /// Longest wait between retries.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_RETRY_MAX", default_value = DEFAULT_WEBHOOK_RETRY_MAX, value_parser = positive_duration)]
    pub webhook_retry_max: Duration,
    /// Failed attempts in a row after which an endpoint is FAILING (it keeps
    /// retrying and keeps its cursor).
    #[arg(long, env = "CONVGROUPS_WEBHOOK_FAILING_AFTER", default_value_t = DEFAULT_WEBHOOK_FAILING_AFTER, value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_failing_after: u32,
    /// How long the previous secrets keep signing after RotateWebhookSecret
    /// (unless the call says otherwise).
    #[arg(long, env = "CONVGROUPS_WEBHOOK_ROTATION_GRACE", default_value = DEFAULT_WEBHOOK_ROTATION_GRACE, value_parser = humantime::parse_duration)]
    pub webhook_rotation_grace: Duration,
    /// Endpoints that may be registered.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_MAX_ENDPOINTS", default_value_t = DEFAULT_WEBHOOK_MAX_ENDPOINTS, value_parser = positive_count)]
    pub webhook_max_endpoints: usize,
    /// How often a server looks for endpoints it should deliver (created,
    /// changed or left without a sender on another replica).
    #[arg(long, env = "CONVGROUPS_WEBHOOK_SCAN_INTERVAL", default_value = DEFAULT_WEBHOOK_SCAN_INTERVAL, value_parser = positive_duration)]
    pub webhook_scan_interval: Duration,
    /// etcd backend: time-to-live of a replica's claim on an endpoint; a
    /// replica that dies is replaced after at most this long.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_LEASE_TTL", default_value = DEFAULT_WEBHOOK_LEASE_TTL, value_parser = positive_duration)]
    pub webhook_lease_ttl: Duration,
    /// How often a cursor that only moved past revisions with nothing for
    /// the endpoint (other users' batches, filtered-out kinds, etcd
    /// heartbeats) is stored; a cursor that moved past a delivery is stored
    /// at once. Later is safe: after a restart those revisions are read and
    /// filtered again. At most 1h.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_CURSOR_SAVE_INTERVAL", default_value = DEFAULT_WEBHOOK_CURSOR_SAVE_INTERVAL, value_parser = positive_duration)]
    pub webhook_cursor_save_interval: Duration,
    /// Gaps (revision ranges trimmed before they were delivered) kept per
    /// endpoint and shown by GetWebhook; the oldest go first. The gap metric
    /// counts all. At most 1024.
    #[arg(long, env = "CONVGROUPS_WEBHOOK_MAX_GAPS", default_value_t = DEFAULT_WEBHOOK_MAX_GAPS, value_parser = positive_count)]
    pub webhook_max_gaps: usize,
    /// PEM file of certificate authorities that https webhook URLs may
    /// chain to, besides the system's (a private CA of your receivers).
    #[arg(long, env = "CONVGROUPS_WEBHOOK_CA_FILE", value_name = "FILE")]
    pub webhook_ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            webhook_allow_private: false,
            webhook_request_timeout: default_duration(DEFAULT_WEBHOOK_REQUEST_TIMEOUT),
            webhook_max_response_bytes: DEFAULT_WEBHOOK_MAX_RESPONSE_BYTES,
            webhook_retry_initial: default_duration(DEFAULT_WEBHOOK_RETRY_INITIAL),
            webhook_retry_max: default_duration(DEFAULT_WEBHOOK_RETRY_MAX),
            webhook_failing_after: DEFAULT_WEBHOOK_FAILING_AFTER,
            webhook_rotation_grace: default_duration(DEFAULT_WEBHOOK_ROTATION_GRACE),
            webhook_max_endpoints: DEFAULT_WEBHOOK_MAX_ENDPOINTS,
            webhook_scan_interval: default_duration(DEFAULT_WEBHOOK_SCAN_INTERVAL),
            webhook_lease_ttl: default_duration(DEFAULT_WEBHOOK_LEASE_TTL),
            webhook_cursor_save_interval: default_duration(DEFAULT_WEBHOOK_CURSOR_SAVE_INTERVAL),
            webhook_max_gaps: DEFAULT_WEBHOOK_MAX_GAPS,
            webhook_ca_file: None,
        }
    }
}

impl WebhookSettings {
    pub fn validate(&self) -> Result<(), crate::error::Error> {
        if self.webhook_retry_initial > self.webhook_retry_max {
            return Err(crate::error::Error::InvalidSetting {
                setting: crate::config::Setting::Flag("--webhook-retry-initial"),
                message: format!(
                    "{:?} is more than --webhook-retry-max {:?}",
                    self.webhook_retry_initial, self.webhook_retry_max
                ),
            });
        }
        if self.webhook_lease_ttl < Duration::from_secs(2) {
            return Err(crate::error::Error::InvalidSetting {
                setting: crate::config::Setting::Flag("--webhook-lease-ttl"),
                message: "must be at least 2s (etcd leases count whole seconds)".into(),
            });
        }
        if self.webhook_cursor_save_interval > MAX_WEBHOOK_CURSOR_SAVE_INTERVAL {
            return Err(crate::error::Error::InvalidSetting {
                setting: crate::config::Setting::Flag("--webhook-cursor-save-interval"),
                message: format!(
                    "{} is more than the most allowed, {}",
                    humantime::format_duration(self.webhook_cursor_save_interval),
                    humantime::format_duration(MAX_WEBHOOK_CURSOR_SAVE_INTERVAL)
                ),
            });
        }
        if self.webhook_max_gaps > MAX_WEBHOOK_MAX_GAPS {
            return Err(crate::error::Error::InvalidSetting {
                setting: crate::config::Setting::Flag("--webhook-max-gaps"),
                message: format!("{} is more than the most allowed, {MAX_WEBHOOK_MAX_GAPS}", self.webhook_max_gaps),
            });
        }
        Ok(())
    }
}

/// How often the `--auth-jwks-file` is re-read; a changed file's keys are
/// used from then on (SIGHUP re-reads it at once).
pub const DEFAULT_AUTH_JWKS_RELOAD_INTERVAL: &str = "5s";
/// The claim that names the user of a public-key token.
pub const DEFAULT_AUTH_USER_CLAIM: &str = "sub";
/// The claim that makes a public-key token an admin token (`true`), as the
/// `adm` of `convgroups token --admin`.
pub const DEFAULT_AUTH_ADMIN_CLAIM: &str = "adm";

/// Tokens signed with public keys (an identity provider's), besides the
/// HS256 secret. With a public key configured, HS256 tokens are accepted
/// only if the secret is configured explicitly (`--auth-secret-file` or
/// `CONVGROUPS_AUTH_SECRET`); the generated secret in the data directory is
/// then neither created nor used.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct AuthKeySettings {
    /// JWKS document (`{"keys": [...]}`) of the identity provider's public
    /// keys (RSA, EC P-256/P-384, Ed25519), chosen by the token's `kid`.
    /// Re-read every --auth-jwks-reload-interval and on SIGHUP; a broken new
    /// file keeps the keys loaded before.
    #[arg(long, env = "CONVGROUPS_AUTH_JWKS_FILE")]
    pub auth_jwks_file: Option<PathBuf>,
    /// PEM public key (`-----BEGIN PUBLIC KEY-----`; RSA, EC or Ed25519) that
    /// signs tokens; repeat (or comma-separate) for several. Used for tokens
    /// without a `kid`, or whose `kid` is not in the JWKS. Read at start.
    #[arg(long, env = "CONVGROUPS_AUTH_PUBLIC_KEY", value_delimiter = ',')]
    pub auth_public_key: Vec<PathBuf>,
    /// Required `iss` of public-key tokens (unchecked when unset).
    #[arg(long, env = "CONVGROUPS_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// Required `aud` of public-key tokens (one of theirs when a list;
    /// unchecked when unset).
    #[arg(long, env = "CONVGROUPS_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// Claim of a public-key token that holds the user id.
    #[arg(long, env = "CONVGROUPS_AUTH_USER_CLAIM", default_value = DEFAULT_AUTH_USER_CLAIM)]
    pub auth_user_claim: String,
    /// Claim of a public-key token that makes it an admin token: `NAME` (the
    /// claim is `true`) or `NAME=VALUE` (the claim equals VALUE, or is a list
    /// holding it, or a space-separated string such as `scope` holding it).
    #[arg(long, env = "CONVGROUPS_AUTH_ADMIN_CLAIM", default_value = DEFAULT_AUTH_ADMIN_CLAIM)]
    pub auth_admin_claim: String,
    /// How often --auth-jwks-file is checked for changes (e.g. 5s).
    #[arg(long, env = "CONVGROUPS_AUTH_JWKS_RELOAD_INTERVAL", default_value = DEFAULT_AUTH_JWKS_RELOAD_INTERVAL, value_parser = positive_duration)]
    pub auth_jwks_reload_interval: Duration,
}

impl AuthKeySettings {
    /// Whether any public key is configured.
    pub fn any(&self) -> bool {
        self.auth_jwks_file.is_some() || !self.auth_public_key.is_empty()
    }
}

impl Default for AuthKeySettings {
    fn default() -> Self {
        Self {
            auth_jwks_file: None,
            auth_public_key: Vec::new(),
            auth_issuer: None,
            auth_audience: None,
            auth_user_claim: DEFAULT_AUTH_USER_CLAIM.into(),
            auth_admin_claim: DEFAULT_AUTH_ADMIN_CLAIM.into(),
            auth_jwks_reload_interval: default_duration(DEFAULT_AUTH_JWKS_RELOAD_INTERVAL),
        }
    }
}

/// Everything `convgroups serve` needs. `Config::new(data_dir)` gives the
/// defaults, which is what tests start from.
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Settings file (TOML): each key a flag without its dashes
    /// (`max-groups = 20`). Flags and CONVGROUPS_* variables override it.
    #[arg(long, env = crate::settings_file::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CONVGROUPS_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory of the sled database and the generated auth secret.
    #[arg(long, env = "CONVGROUPS_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// File holding the HS256 token secret. Without it (and without
    /// CONVGROUPS_AUTH_SECRET) a random secret is created in the data dir,
    /// unless a public key is configured (then HS256 tokens are refused).
    #[arg(long, env = "CONVGROUPS_AUTH_SECRET_FILE")]
    pub auth_secret_file: Option<PathBuf>,
    /// The HS256 token secret itself (environment only, so it stays out of
    /// the process list).
    #[arg(skip = std::env::var("CONVGROUPS_AUTH_SECRET").ok())]
    pub auth_secret: Option<String>,
    #[command(flatten)]
    pub auth_keys: AuthKeySettings,
    #[command(flatten)]
    pub storage: StorageSettings,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub watch: WatchSettings,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

impl Config {
    /// Defaults, with the given data directory; ignores the environment.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            config: None,
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: data_dir.into(),
            auth_secret_file: None,
            auth_secret: None,
            auth_keys: AuthKeySettings::default(),
            storage: StorageSettings::default(),
            limits: Limits::default(),
            watch: WatchSettings::default(),
            server: ServerSettings::default(),
            webhooks: WebhookSettings::default(),
            log: LogSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct Serve {
        #[command(flatten)]
        config: Config,
    }

    /// What clap gives with no flag (and no environment) is what the
    /// `Default` impls give: each default is written once and read the same
    /// way by both.
    #[test]
    fn defaults_are_what_clap_parses() {
        let command = Serve::command().mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(["serve"]).expect("the defaults parse");
        let parsed = Serve::from_arg_matches(&matches).expect("the defaults parse").config;
        let defaults = Config::new(DEFAULT_DATA_DIR);
        assert_eq!(parsed.listen, defaults.listen);
        assert_eq!(parsed.data_dir, defaults.data_dir);
        assert_eq!(parsed.auth_keys, defaults.auth_keys);
        assert_eq!(parsed.storage, defaults.storage);
        assert_eq!(parsed.limits, defaults.limits);
        assert_eq!(parsed.watch, defaults.watch);
        assert_eq!(parsed.server, defaults.server);
        assert_eq!(parsed.webhooks, defaults.webhooks);
        assert_eq!(parsed.log, defaults.log);
    }

    #[test]
    fn ring_sizes_are_bounded() {
        assert_eq!(ring_size("1"), Ok(1));
        assert_eq!(ring_size(&MAX_WATCH_RING.to_string()), Ok(MAX_WATCH_RING));
        assert!(ring_size("0").unwrap_err().contains("at least 1"));
        assert!(ring_size(&(MAX_WATCH_RING + 1).to_string()).unwrap_err().contains("most allowed, 1048576"));
    }
}
