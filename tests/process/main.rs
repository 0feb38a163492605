//! Tests of the real `convgroups` binary as a child process: the
//! command-line client, the binary's own commands, keys from a JWKS file,
//! a new user's first hour with the README, and the operability of `serve`
//! (settings, logs, metrics, TLS, grpc-web, limits, shutdown). One binary,
//! so that CI links tonic and sled once for all of them.

#[path = "../support/mod.rs"]
mod support;

mod auth_keys;
mod binary;
mod cli;
mod first_hour;
mod grpc_web;
mod limits;
mod logs;
mod metrics;
mod serve_settings;
mod shutdown;
mod tls;
