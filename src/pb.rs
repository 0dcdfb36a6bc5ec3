//! Generated protobuf code for `jhf.warp.v1`: the only module that includes generated code.
#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

/// Messages, enums, clients and servers of `jhf.warp.v1`, with proto3 JSON impls.
pub mod v1 {
    tonic::include_proto!("jhf.warp.v1");
    include!(concat!(env!("OUT_DIR"), "/jhf.warp.v1.serde.rs"));
}

/// The encoded descriptor set of `proto/` (imports included, custom options kept).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jhf_warp_descriptor.bin"));

/// The proto package of the API.
pub const PROTO_PACKAGE: &str = "jhf.warp.v1";
