//! The gRPC services: each handler extracts the caller, converts and
//! validates the request, calls the store, and converts the answer. Errors
//! become `Status` through `crate::error` only.

mod conversations;
pub mod convert;
mod groups;
mod watch;

pub use conversations::ConversationServiceImpl;
pub use groups::ConversationGroupServiceImpl;
