//! The targets of the stable harness (`tests/fuzz.rs`), compiled here
//! without its driver and tests.
#![allow(dead_code)]

#[path = "../../tests/fuzz.rs"]
mod stable;

#[allow(unused_imports)]
pub use stable::{target_conversion, target_ids, target_page_token, target_request, target_token};
