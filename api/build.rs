//! Compiles the workspace's `proto/` without a system `protoc`: protox parses the files,
//! tonic-prost-build generates messages, clients and servers, pbjson-build generates canonical
//! proto3 JSON impls, and the encoded descriptor set (custom options kept, so the server can
//! read each method's auth class) is written as `jhf-warp.binpb` for reflection, gateways and
//! tools.

use std::{env, fs, path::PathBuf};

const PROTO_FILES: &[&str] = &[
    "jhf/warp/v1/options.proto",
    "jhf/warp/v1/common.proto",
    "jhf/warp/v1/meta.proto",
    "jhf/warp/v1/topology.proto",
    "jhf/warp/v1/drift.proto",
    "jhf/warp/v1/orchestration.proto",
    "jhf/warp/v1/control.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    // The proto files live once, at the workspace root (`proto/`); a packaged crate carries
    // its own copy under `api/proto`.
    let root = [manifest.join("../proto"), manifest.join("proto")]
        .into_iter()
        .find(|dir| dir.join(PROTO_FILES[0]).is_file())
        .ok_or("proto/ not found next to the api crate")?;
    println!("cargo:rerun-if-changed={}", root.display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTO_FILES)?;

    // `encode_file_descriptor_set` keeps extension options (our `auth_class`); the typed
    // `file_descriptor_set()` would drop them.
    let descriptor_bytes = compiler.encode_file_descriptor_set();
    fs::write(out_dir.join("jhf-warp.binpb"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Well-known types come from pbjson-types so they carry proto3 JSON impls too.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // Ordered maps: a message encodes to the same bytes every time, so the idempotency
        // fingerprint of a request carrying labels is stable (a HashMap iterates at random).
        .btree_map(".")
        .compile_fds(compiler.file_descriptor_set())?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .preserve_proto_field_names()
        .emit_fields()
        .btree_map(["."])
        .build(&[".jhf.warp.v1"])?;
    Ok(())
}
