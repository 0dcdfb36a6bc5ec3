//! Compiles `proto/` without a system `protoc`: protox parses the files, tonic-prost-build
//! generates messages and services, pbjson-build generates canonical proto3 JSON impls for the
//! HTTP shim, and the encoded descriptor set (with custom options kept, so the server can read
//! each method's auth class) is written for reflection.

use std::{env, fs, path::PathBuf};

const PROTO_ROOT: &str = "proto";
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
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTO_FILES)?;

    // `encode_file_descriptor_set` keeps extension options (our `auth_class`); the typed
    // `file_descriptor_set()` would drop them.
    let descriptor_bytes = compiler.encode_file_descriptor_set();
    fs::write(out_dir.join("jhf_warp_descriptor.bin"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Well-known types come from pbjson-types so they carry proto3 JSON impls too.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(compiler.file_descriptor_set())?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".jhf.warp.v1"])?;

    emit_git_sha();
    Ok(())
}

/// Exposes the git revision as `JHF_WARP_GIT_SHA`; `unknown` outside a checkout.
fn emit_git_sha() {
    let sha = env::var("JHF_WARP_GIT_SHA").ok().or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_owned())
    });
    println!("cargo:rustc-env=JHF_WARP_GIT_SHA={}", sha.unwrap_or_else(|| "unknown".to_owned()));
    println!("cargo:rerun-if-env-changed=JHF_WARP_GIT_SHA");
    println!("cargo:rerun-if-changed=.git/HEAD");
}
