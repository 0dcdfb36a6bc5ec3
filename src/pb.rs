//! The generated contract, from the `jhf-warp-api` crate (the server's own code never includes
//! generated code itself).

pub use jhf_warp_api::{FILE_DESCRIPTOR_SET, PROTO_PACKAGE, v1};
