//! What this build is: the crate version, the git commit it was built from
//! and the build date, stamped by `build.rs` (commit "unknown" outside a git
//! checkout; the date honours `SOURCE_DATE_EPOCH`). `convgroups --version`,
//! the first line `serve` logs and the `convgroups_build_info` metric all say
//! the same.

/// The crate version (`0.1.0`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit, 12 hex digits, or `unknown`.
pub const COMMIT: &str = env!("CONVGROUPS_GIT_COMMIT");
/// The UTC date of the build, `YYYY-MM-DD`.
pub const BUILD_DATE: &str = env!("CONVGROUPS_BUILD_DATE");
/// What `--version` prints after the name:
/// `0.1.0 (commit abc123def456, built 2026-11-29)`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CONVGROUPS_GIT_COMMIT"),
    ", built ",
    env!("CONVGROUPS_BUILD_DATE"),
    ")"
);

/// `convgroups 0.1.0 (commit abc123def456, built 2026-11-29)`: the
/// `--version` output and the start-up log line.
pub fn line() -> String {
    format!("convgroups {LONG}")
}
