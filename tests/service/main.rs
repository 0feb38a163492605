//! The other in-process tests: authentication, persistence across
//! restarts, the model-based test, many watchers, the README's grpcurl
//! walkthrough, and the self-tests of the linearizability checker and of
//! the etcd test harness. One binary, so that CI links tonic and sled once
//! for all of them.

#[path = "../support/mod.rs"]
mod support;

#[path = "../linearizability/mod.rs"]
mod linearizability;

mod auth;
mod etcd_harness_selftest;
mod grpcurl;
mod linearizability_selftest;
mod model;
mod persistence;
mod watch_scale;
