//! convgroups: conversation groups ("Suppliers", "R&D") for chat
//! applications, as a gRPC service that stores its state in sled and streams
//! every change to any number of watchers.
//!
//! # Layout
//! Every module, in the order a request meets them:
//! * [`server`]: wiring in named steps (reflection, services, router,
//!   storage-health follower, shutdown sequence, drain); `App::open` then
//!   `App::serve_with_force` is the one way a server runs, for the binary
//!   and the tests alike.
//! * [`signals`]: SIGINT/SIGTERM counted (first: shut down, second: stop
//!   draining) and SIGHUP (re-read the JWKS file), for the binary.
//! * [`config`]: settings of `convgroups serve`, every limit with its default;
//!   [`settings_file`]: `--config convgroups.toml`, turned into the flags it
//!   stands for.
//! * [`auth`]: JWT check in an interceptor, handing on a typed `Caller`.
//! * [`service`]: the gRPC services: caller → convert → store → convert.
//! * [`pb`]: generated protobuf messages and gRPC stubs, descriptor set;
//!   [`grpc_codec`]: their codec (prost, with decode errors as INVALID_ARGUMENT);
//!   [`wire`]: responses encoded once and shared (watch batches, group lists).
//! * [`domain`]: validated ids and names, the data model, per-item outcomes
//!   and events; no protobuf, no storage.
//! * [`store`]: the only module that knows sled and etcd: key layout, stored encoding,
//!   atomic mutations with their event log, group commit.
//! * [`hub`]: live fan-out of durable event batches to watchers.
//! * [`error`]: the one error enum and its single mapping to `Status`.
//! * [`metrics`]: Prometheus metrics (off unless `--metrics-listen`).
//! * [`cli`]: the command-line client (`groups`, `conversations`, `watch`,
//!   `backup`, `restore`); the binary (`src/main.rs`) parses the command
//!   line and dispatches to it or to `server`.
//! * [`version`]: the commit and date of this build.
//! * [`webhook`]: every committed batch POSTed to HTTP endpoints, signed,
//!   retried, resumable from a stored cursor; its admin service.

pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc_codec;
pub mod hub;
pub mod metrics;
pub mod pb;
pub mod server;
pub mod service;
pub mod settings_file;
pub mod signals;
pub mod store;
pub mod version;
pub mod webhook;
pub mod wire;
