//! The contract tests: what every storage backend must do, through the
//! gRPC API of an in-process server. They run on sled, and a second time on
//! etcd when CONVGROUPS_TEST_ETCD_ENDPOINTS is set (scripts/test.sh). One
//! binary, so that CI links tonic and sled once for all of them.
//! (tests/auth_matrix.rs is a contract test too, in a binary of its own: it
//! installs a global log subscriber.)

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod group_ids;
mod group_order;
mod groups;
mod hostile;
mod listing;
mod looks;
mod registry;
mod revisions;
mod smart_groups;
mod watch;
mod watch_guarantees;
