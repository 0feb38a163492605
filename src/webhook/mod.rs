//! Webhooks: every committed event batch POSTed to HTTP endpoints, signed
//! per Standard Webhooks, in revision order, at least once.
//!
//! A sender is a durable watcher of the revision log: it reads batches from
//! its endpoint's cursor with [`Store::read_log`] (the same reads a watch
//! stream catches up with), POSTs each one the endpoint's filters keep
//! until a 2xx, and only then stores the cursor past it. A restart resumes
//! from the stored cursor, so a batch is lost never and sent twice only if
//! its acknowledgement was not stored yet.
//!
//! * [`records`]: the stored endpoint configuration and cursor.
//! * [`admin`]: the operations behind the admin API.
//! * [`sender`]: one task per endpoint; [`supervisor`] starts them (on etcd,
//!   only for the endpoints this replica holds the lease of).
//! * [`http`]: one attempt (SSRF checks, timeout, response limit);
//!   [`signing`]: `whsec_` secrets and signatures.
//! * [`service`]: the gRPC `WebhookService`.

pub mod admin;
pub mod http;
pub mod lease;
pub mod records;
pub mod sender;
pub mod service;
pub mod signing;
pub mod supervisor;

pub use supervisor::Supervisor;
