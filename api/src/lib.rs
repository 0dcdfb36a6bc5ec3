//! The gRPC contract of jhf-warp (`jhf.warp.v1`): messages with proto3 JSON (serde through
//! pbjson), tonic clients for callers and the server traits jhf-warp implements. Nothing of
//! the server itself: no database, no HTTP framework.
//!
//! ```ignore
//! use jhf_warp_api::v1::meta_service_client::MetaServiceClient;
//! let mut meta = MetaServiceClient::connect("http://127.0.0.1:18086").await?;
//! let version = meta.get_version(jhf_warp_api::v1::GetVersionRequest {}).await?;
//! ```
#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

/// Messages, enums, clients and servers of `jhf.warp.v1`, with proto3 JSON impls.
pub mod v1 {
    tonic::include_proto!("jhf.warp.v1");
    include!(concat!(env!("OUT_DIR"), "/jhf.warp.v1.serde.rs"));
}

/// The encoded descriptor set of `proto/` (imports included, custom options kept) — the
/// content of the `jhf-warp.binpb` file the build writes.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jhf-warp.binpb"));

/// The proto package of the API.
pub const PROTO_PACKAGE: &str = "jhf.warp.v1";
