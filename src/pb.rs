//! Generated protobuf messages and gRPC stubs (`proto/convgroups/v1`), and the
//! descriptor set served by reflection. Nothing else lives here, so lint
//! allowances for generated code stay in this one place.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("convgroups.v1");

/// Encoded `FileDescriptorSet` of the convgroups protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("convgroups_descriptor");

/// The services as the server runs them: the same methods and messages, with
/// `WatchGroupEventsResponse` and `GetConversationGroupListResponse` taken as
/// [`crate::wire::Wire`] (shared encoded bytes). See `build.rs`.
pub mod service {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/served/convgroups.v1.rs"));
}

/// The etcd v3 API subset the etcd backend uses (`vendor/etcd/etcd.proto`).
pub mod etcd {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}
