//! Transitional shim: the command-line harness is `tests/support` now
//! (`support::cli` and `support::process`). Kept only so that test files
//! written against the old name on branches made before the move still
//! compile; remove it once those branches have landed and use
//! `mod support;` instead.
#![allow(dead_code, unused_imports)]

#[path = "../support/mod.rs"]
mod support;

pub use support::cli::*;
