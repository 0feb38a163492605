//! Transitional shim: the in-process harness is `tests/support` now
//! (`support::inproc`). Kept only so that test files written against the
//! old name on branches made before the move still compile; remove it once
//! those branches have landed and use `mod support;` instead.
#![allow(dead_code, unused_imports)]

#[path = "../support/mod.rs"]
mod support;

pub use support::inproc::*;
