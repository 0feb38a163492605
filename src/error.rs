//! The crate's one error type and its single mapping to a gRPC `Status`.
//!
//! Inner layers (domain, store, auth) return [`Error`]; only
//! `impl From<Error> for Status` knows gRPC codes. Every status it builds
//! carries a `google.rpc.ErrorInfo` (domain `convgroups`, an UPPER_SNAKE_CASE
//! reason, metadata naming the field and the limit, and `tencent_code` where
//! Tencent Cloud Chat has an equivalent). Internal errors are logged and
//! answered with a generic message, never leaked.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every error this service returns.
pub const ERROR_DOMAIN: &str = "convgroups";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {message}")]
    InvalidGroupName { field: &'static str, message: String, limit: usize },
    #[error("{field}: {message}")]
    InvalidConversationList { field: &'static str, message: String, limit: usize },
    #[error("{field}: {message}")]
    InvalidArgument { field: &'static str, message: String },
    #[error("the request is not a valid protobuf message: {message}")]
    MalformedRequest { message: String },
    #[error("{message} (max_request_bytes)")]
    RequestTooLarge { message: String, limit: usize },
    /// UpdateConversationGroup: an empty mask or a path that names no
    /// field (`path` empty for an empty mask).
    #[error("update_mask: {message}")]
    InvalidUpdateMask { path: String, message: String },
    #[error("look.icon: {message}")]
    InvalidGroupIcon { message: String, limit: usize },
    #[error("look.custom_data: {message}")]
    GroupCustomDataTooLarge { message: String, limit: usize },
    #[error("page_token: not a page token issued for this filter")]
    InvalidPageToken,
    #[error("{field}: no group named {name:?}")]
    GroupNotFound { field: &'static str, name: String },
    #[error("{field}: the user has no group with id {id}")]
    GroupIdNotFound { field: &'static str, id: crate::domain::GroupId },
    #[error("{field}: {message}")]
    InvalidGroupId { field: &'static str, message: String },
    #[error("{field}: {message}")]
    InvalidRule { field: &'static str, message: String, limit: usize },
    /// A request named a group both by name and by id.
    #[error("{name_field} and {id_field}: give one of the two, not both")]
    GroupNameAndId { name_field: &'static str, id_field: &'static str },
    #[error("{field}: a group named {name:?} already exists")]
    GroupAlreadyExists { field: &'static str, name: String },
    #[error("group_name: the user already has {limit} groups, the most allowed (max_groups)")]
    GroupLimitExceeded { limit: usize },
    #[error("expected_revision: is {expected}, but the caller's current revision is {current}")]
    RevisionMismatch { expected: u64, current: u64 },
    #[error("{field}: {message}")]
    GroupOrderMismatch { field: &'static str, message: String },
    /// An unspecified or unknown GroupSortMode.
    #[error("{field}: {message}")]
    InvalidSortMode { field: &'static str, message: String },
    /// MoveConversationsInGroup's placement: unset, or an anchor that is no
    /// member of the group or is itself moved.
    #[error("{field}: {message}")]
    InvalidPlacement { field: &'static str, message: String },
    /// A manual move in a group that is not MANUAL.
    #[error("sort_mode: group {name:?} is sorted {mode}, not MANUAL: set its sort mode to MANUAL first")]
    SortModeNotManual { name: String, mode: &'static str },
    #[error("start_revision: {start} is older than the oldest retained revision {oldest}")]
    RevisionCompacted { start: u64, oldest: u64, current: u64 },
    #[error("start_revision: {start} is newer than the current revision {current}")]
    RevisionInFuture { start: u64, oldest: u64, current: u64 },
    /// A read's `min_revision` is beyond anything the deployment has written.
    #[error("min_revision: {min} is newer than the current revision {current}")]
    MinRevisionInFuture { min: u64, current: u64 },
    #[error("too many watch streams: {message}")]
    TooManyWatchers { message: String },
    #[error("{message}")]
    Unauthenticated { message: String },
    #[error("{message}")]
    PermissionDenied { message: String },
    #[error("server is shutting down; resume from revision {resume_revision}")]
    ShuttingDown { resume_revision: u64 },
    #[error("the server is at its limit of {limit} calls in flight (max_in_flight); retry with backoff")]
    Overloaded { limit: usize },
    #[error("the call did not finish within {timeout:?} (unary_timeout)")]
    DeadlineExceeded { timeout: std::time::Duration },
    #[error("id: no webhook {id:?}")]
    WebhookNotFound { id: String },
    #[error("there are already {limit} webhooks, the most allowed (webhook_max_endpoints)")]
    WebhookLimitExceeded { limit: usize },
    #[error("{setting}: {message}")]
    InvalidSetting { setting: crate::config::Setting, message: String },
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// This server lost its connection to storage while a watch stream was
    /// open (the etcd backend's change feed); the client resumes here or on
    /// another replica.
    #[error("storage unavailable to this server; resume from revision {resume_revision}")]
    StorageLost { resume_revision: u64 },
    /// Storage failed after a mutation was committed, while it was being made
    /// durable: the client was not told it succeeded, but its change may
    /// have reached the disk and then reappears when the database is
    /// reopened (see `store::durability`).
    #[error("storage unavailable, outcome unknown: {0}")]
    StorageOutcomeUnknown(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The gRPC code, the ErrorInfo reason and its metadata.
    fn parts(&self) -> (Code, &'static str, Vec<(&'static str, String)>) {
        use Error::*;
        match self {
            InvalidGroupName { field, limit, .. } => (
                Code::InvalidArgument,
                "INVALID_GROUP_NAME",
                vec![("field", field.to_string()), ("max_bytes", limit.to_string()), ("tencent_code", "51011".into())],
            ),
            InvalidConversationList { field, limit, .. } => (
                Code::InvalidArgument,
                "INVALID_CONVERSATION_LIST",
                vec![("field", field.to_string()), ("max_items", limit.to_string()), ("tencent_code", "51006".into())],
            ),
            InvalidArgument { field, .. } => {
                (Code::InvalidArgument, "INVALID_ARGUMENT", vec![("field", field.to_string())])
            }
            InvalidUpdateMask { path, .. } => {
                let mut metadata = vec![("field", "update_mask".to_string())];
                if !path.is_empty() {
                    metadata.push(("path", path.clone()));
                }
                (Code::InvalidArgument, "INVALID_UPDATE_MASK", metadata)
            }
            InvalidGroupIcon { limit, .. } => (
                Code::InvalidArgument,
                "INVALID_GROUP_ICON",
                vec![("field", "look.icon".into()), ("max_bytes", limit.to_string())],
            ),
            GroupCustomDataTooLarge { limit, .. } => (
                Code::InvalidArgument,
                "GROUP_CUSTOM_DATA_TOO_LARGE",
                vec![("field", "look.custom_data".into()), ("max_bytes", limit.to_string())],
            ),
            MalformedRequest { .. } => (Code::InvalidArgument, "MALFORMED_REQUEST", vec![]),
            RequestTooLarge { limit, .. } => {
                (Code::ResourceExhausted, "REQUEST_TOO_LARGE", vec![("max_request_bytes", limit.to_string())])
            }
            WebhookNotFound { id } => {
                (Code::NotFound, "WEBHOOK_NOT_FOUND", vec![("field", "id".into()), ("webhook_id", id.clone())])
            }
            WebhookLimitExceeded { limit } => {
                (Code::ResourceExhausted, "WEBHOOK_LIMIT_EXCEEDED", vec![("webhook_max_endpoints", limit.to_string())])
            }
            InvalidPageToken => (Code::InvalidArgument, "INVALID_PAGE_TOKEN", vec![("field", "page_token".into())]),
            GroupNotFound { field, name } => (
                Code::NotFound,
                "GROUP_NOT_FOUND",
                vec![("field", field.to_string()), ("group_name", name.clone()), ("tencent_code", "51009".into())],
            ),
            GroupIdNotFound { field, id } => (
                Code::NotFound,
                "GROUP_NOT_FOUND",
                vec![("field", field.to_string()), ("group_id", id.to_string()), ("tencent_code", "51009".into())],
            ),
            InvalidRule { field, limit, .. } => (
                Code::InvalidArgument,
                "INVALID_RULE",
                vec![("field", field.to_string()), ("max_rule_ids", limit.to_string())],
            ),
            InvalidGroupId { field, .. } => {
                (Code::InvalidArgument, "INVALID_GROUP_ID", vec![("field", field.to_string())])
            }
            GroupNameAndId { name_field, id_field } => {
                (Code::InvalidArgument, "GROUP_NAME_AND_ID", vec![("field", format!("{name_field},{id_field}"))])
            }
            GroupAlreadyExists { field, name } => (
                Code::AlreadyExists,
                "GROUP_ALREADY_EXISTS",
                vec![("field", field.to_string()), ("group_name", name.clone())],
            ),
            GroupLimitExceeded { limit } => (
                Code::ResourceExhausted,
                "GROUP_LIMIT_EXCEEDED",
                vec![("max_groups", limit.to_string()), ("tencent_code", "51010".into())],
            ),
            RevisionMismatch { expected, current } => (
                Code::Aborted,
                "REVISION_MISMATCH",
                vec![("expected_revision", expected.to_string()), ("current_revision", current.to_string())],
            ),
            GroupOrderMismatch { field, .. } => {
                (Code::FailedPrecondition, "GROUP_ORDER_MISMATCH", vec![("field", field.to_string())])
            }
            InvalidSortMode { field, .. } => {
                (Code::InvalidArgument, "INVALID_SORT_MODE", vec![("field", field.to_string())])
            }
            InvalidPlacement { field, .. } => {
                (Code::InvalidArgument, "INVALID_PLACEMENT", vec![("field", field.to_string())])
            }
            SortModeNotManual { mode, .. } => (
                Code::FailedPrecondition,
                "SORT_MODE_NOT_MANUAL",
                vec![("field", "sort_mode".into()), ("sort_mode", mode.to_string())],
            ),
            RevisionCompacted { oldest, current, .. } => (
                Code::OutOfRange,
                "REVISION_COMPACTED",
                vec![("oldest_revision", oldest.to_string()), ("current_revision", current.to_string())],
            ),
            RevisionInFuture { oldest, current, .. } => (
                Code::OutOfRange,
                "REVISION_IN_FUTURE",
                vec![("oldest_revision", oldest.to_string()), ("current_revision", current.to_string())],
            ),
            MinRevisionInFuture { current, .. } => (
                Code::OutOfRange,
                "REVISION_IN_FUTURE",
                vec![("field", "min_revision".into()), ("current_revision", current.to_string())],
            ),
            TooManyWatchers { .. } => (Code::ResourceExhausted, "TOO_MANY_WATCHERS", vec![]),
            Unauthenticated { .. } => (Code::Unauthenticated, "UNAUTHENTICATED", vec![]),
            PermissionDenied { .. } => (Code::PermissionDenied, "PERMISSION_DENIED", vec![]),
            ShuttingDown { resume_revision } => {
                (Code::Unavailable, "SHUTTING_DOWN", vec![("resume_revision", resume_revision.to_string())])
            }
            Overloaded { limit } => (Code::ResourceExhausted, "OVERLOADED", vec![("max_in_flight", limit.to_string())]),
            DeadlineExceeded { timeout } => (
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
                vec![("unary_timeout_ms", timeout.as_millis().to_string())],
            ),
            InvalidSetting { setting, .. } => {
                (Code::FailedPrecondition, "INVALID_SETTING", vec![("setting", setting.to_string())])
            }
            Storage(_) => (Code::Unavailable, "STORAGE_UNAVAILABLE", vec![]),
            StorageLost { resume_revision } => {
                (Code::Unavailable, "STORAGE_UNAVAILABLE", vec![("resume_revision", resume_revision.to_string())])
            }
            StorageOutcomeUnknown(_) => (Code::Unavailable, "STORAGE_UNAVAILABLE", vec![("outcome", "unknown".into())]),
            Internal(_) => (Code::Internal, "INTERNAL", vec![]),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let (code, reason, metadata) = err.parts();
        let message = match &err {
            // Storage and internal details go to the log, not to clients.
            Error::Storage(detail) => {
                tracing::error!(error = %detail, "storage error");
                "storage is unavailable; the request was not applied".to_string()
            }
            Error::StorageOutcomeUnknown(detail) => {
                tracing::error!(error = %detail, "storage error after commit");
                "storage failed while the change was being written to disk: it was not acknowledged and may or may \
                 not be present once storage recovers; read before retrying"
                    .to_string()
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let metadata: HashMap<String, String> = metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}
