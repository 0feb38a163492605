//! convgroups: conversation groups ("Suppliers", "R&D") for chat
//! applications, as a gRPC service that stores its state in sled and streams
//! every change to any number of watchers.
//!
//! # Layout
//! * [`pb`]: generated protobuf messages and gRPC stubs, descriptor set;
//!   [`codec`]: their codec (prost, with decode errors as INVALID_ARGUMENT);
//!   [`wire`]: responses encoded once and shared (watch batches, group lists).
//! * [`config`]: settings of `convgroups serve`, every limit with its default.
//! * [`domain`]: validated ids and names, the data model, per-item outcomes
//!   and events; no protobuf, no storage.
//! * [`store`]: the only module that knows sled: key layout, codec, atomic
//!   mutations with their event log, group commit.
//! * [`hub`]: live fan-out of durable event batches to watchers.
//! * [`auth`]: JWT check in an interceptor, handing on a typed `Caller`.
//! * [`service`]: the gRPC services: caller → convert → store → convert.
//! * [`error`]: the one error enum and its single mapping to `Status`.
//! * [`metrics`]: Prometheus metrics (off unless `--metrics-listen`).
//! * [`server`]: wiring, health, reflection, ordered shutdown; `run` is what
//!   the binary and the tests call.
//! * [`settings_file`]: `--config convgroups.toml`, turned into the flags it
//!   stands for; [`version`]: the commit and date of this build.

pub mod auth;
pub mod cli;
pub mod codec;
pub mod config;
pub mod domain;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod pb;
pub mod server;
pub mod service;
pub mod settings_file;
pub mod store;
pub mod version;
pub mod wire;
