//! Code generation only: compiles `proto/convgroups/v1/*.proto` with the
//! pure-Rust `protox` compiler (no system `protoc`), generates prost messages
//! and tonic services, and writes the encoded descriptor set that server
//! reflection serves; and compiles the vendored etcd API subset
//! (`vendor/etcd/etcd.proto`) into a client for the etcd backend.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/convgroups/v1/types.proto",
    "proto/convgroups/v1/events.proto",
    "proto/convgroups/v1/conversation_group_service.proto",
    "proto/convgroups/v1/conversation_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=vendor/etcd");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    // `compile_fds` does not write the descriptor set itself, so reflection's
    // copy is encoded here (it includes source info: grpcurl `describe` shows
    // the proto comments).
    std::fs::write(out_dir.join("convgroups_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // Decode errors of our requests become INVALID_ARGUMENT with an ErrorInfo
    // (see src/codec.rs) instead of tonic-prost's bare INTERNAL.
    tonic_prost_build::configure().codec_path("crate::codec::Codec").compile_fds(fds)?;
    // The etcd API subset the etcd backend calls: clients only, prost's own
    // codec, and kept out of the descriptor set that reflection serves.
    let etcd = protox::compile(["etcd.proto"], ["vendor/etcd"])?;
    tonic_prost_build::configure().build_server(false).compile_fds(etcd)?;
    Ok(())
}
