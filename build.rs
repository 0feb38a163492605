//! Code generation only: compiles `proto/convgroups/v1/*.proto` with the
//! pure-Rust `protox` compiler (no system `protoc`), generates prost messages
//! and tonic services, and writes the encoded descriptor set that server
//! reflection serves; and compiles the vendored etcd API subset
//! (`vendor/etcd/etcd.proto`) into a client for the etcd backend. Also
//! stamps the build for `convgroups --version`, the start-up log and the
//! `convgroups_build_info` metric: `CONVGROUPS_GIT_COMMIT` and
//! `CONVGROUPS_BUILD_DATE` (see [`stamp`]).

use std::path::{Path, PathBuf};
use std::process::Command;

const PROTOS: &[&str] = &[
    "proto/convgroups/v1/types.proto",
    "proto/convgroups/v1/events.proto",
    "proto/convgroups/v1/conversation_group_service.proto",
    "proto/convgroups/v1/conversation_service.proto",
    "proto/convgroups/v1/webhook_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=vendor/etcd");
    stamp();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    // `compile_fds` does not write the descriptor set itself, so reflection's
    // copy is encoded here (it includes source info: grpcurl `describe` shows
    // the proto comments).
    std::fs::write(out_dir.join("convgroups_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // Decode errors of our requests become INVALID_ARGUMENT with an ErrorInfo
    // (see src/grpc_codec.rs) instead of tonic-prost's bare INTERNAL.
    tonic_prost_build::configure().codec_path("crate::grpc_codec::Codec").compile_fds(fds.clone())?;
    // The services the server runs, generated a second time (servers only)
    // over the same messages, except that two responses are `crate::wire`
    // types: a message or its encoding made once and shared (a batch sent to
    // many watchers, a cached group list or first page), and whose codec starts each
    // response stream with a smaller buffer. The bytes on the wire are the
    // proto's; only the server's side of the trait changes. The services
    // above stay as plain as tonic makes them (the benchmark's empty server
    // uses them).
    let served = out_dir.join("served");
    std::fs::create_dir_all(&served)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&served)
        .extern_path(".convgroups.v1.WatchGroupEventsResponse", "crate::wire::WatchFrame")
        .extern_path(".convgroups.v1.GetConversationGroupListResponse", "crate::wire::GroupListReply")
        .extern_path(".convgroups.v1.GetConversationListResponse", "crate::wire::ConversationPageReply")
        .extern_path(".convgroups.v1", "crate::pb")
        .codec_path("crate::grpc_codec::ServedCodec")
        .compile_fds(fds)?;
    // The etcd API subset the etcd backend calls: clients only, prost's own
    // codec, and kept out of the descriptor set that reflection serves.
    let etcd = protox::compile(["etcd.proto"], ["vendor/etcd"])?;
    tonic_prost_build::configure().build_server(false).compile_fds(etcd)?;
    Ok(())
}

/// The git commit (12 hex digits) and the UTC build date, as `rustc-env`
/// variables of the package.
///
/// The commit is `git rev-parse --short=12 HEAD` of this repository, or
/// "unknown" where there is none (a source tarball; no git installed) — a
/// tarball unpacked inside another repository must not report that one's
/// commit. A packager may set `CONVGROUPS_GIT_COMMIT` themselves. The date
/// is today's, or that of `SOURCE_DATE_EPOCH` for reproducible builds.
///
/// Only HEAD and the branch it points to are watched, so a new commit or a
/// checkout re-stamps the build, while an ordinary edit does not rerun the
/// proto compilation.
fn stamp() {
    println!("cargo:rerun-if-env-changed=CONVGROUPS_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = match std::env::var("CONVGROUPS_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_string(),
        _ => git_commit().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=CONVGROUPS_GIT_COMMIT={commit}");
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => {
            epoch.trim().parse::<i64>().unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH={epoch:?} is not whole seconds"))
        }
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
    };
    println!("cargo:rustc-env=CONVGROUPS_BUILD_DATE={}", utc_date(seconds));
}

/// This repository's HEAD commit, with `rerun-if-changed` on the files that
/// move when it does; None outside a git work tree of this very package.
fn git_commit() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).current_dir(&manifest_dir).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    // In a linked work tree `.git` is a file, HEAD lives in the work tree's
    // own git dir and branches in the common one: ask git for each path.
    let mut watch = vec!["HEAD".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    watch.push("packed-refs".into());
    for name in watch {
        let Some(path) = git(&["rev-parse", "--git-path", &name]) else { continue };
        let path = if Path::new(&path).is_absolute() { PathBuf::from(path) } else { manifest_dir.join(path) };
        // A missing file would make cargo rerun this script on every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// `YYYY-MM-DD` of a Unix time, in UTC (the civil-from-days algorithm of
/// Howard Hinnant's date library).
fn utc_date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
