//! The Docker files cannot be built on this machine (no engine): this test reads them and checks
//! what a build and a compose run rely on.

use std::path::PathBuf;

fn repo(path: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_dockerfile_stubs_every_target_builds_for_real_and_checks_health_without_curl() {
    let dockerfile = repo("docker/Dockerfile");
    // Every test and bench target Cargo.toml declares has a stand-in in the dependency step,
    // or `cargo build` there fails on a missing path.
    let manifest: toml::Table = toml::from_str(&repo("Cargo.toml")).unwrap();
    for kind in ["test", "bench"] {
        for target in manifest.get(kind).and_then(|t| t.as_array()).unwrap() {
            let path = target["path"].as_str().unwrap();
            assert!(dockerfile.contains(path), "docker/Dockerfile does not stub {kind} target {path}");
        }
    }
    for member in manifest["workspace"]["members"].as_array().unwrap().iter().filter_map(|m| m.as_str()) {
        if member != "." {
            assert!(
                dockerfile.contains(&format!("{member}/Cargo.toml")),
                "workspace member {member} is not copied"
            );
        }
    }
    assert!(!dockerfile.contains("|| true"), "the cached dependency build must fail loudly");
    assert!(!dockerfile.contains("curl"), "the image checks health with its own binary");
    assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/jhf-warp", "healthcheck"]"#));
    let data_dir = "/var/lib/jhf-warp/data";
    assert!(
        dockerfile.contains(&format!("chown warp:warp {data_dir}")),
        "the data dir belongs to the image's user"
    );
    let chown = dockerfile.find("chown warp:warp").unwrap();
    let volume = dockerfile.find("VOLUME").unwrap();
    assert!(chown < volume, "the data dir is prepared before the volume is declared");
    assert!(dockerfile.contains(&format!("JHF_WARP_DATA_DIR={data_dir}")));
}

#[test]
fn compose_runs_postgres_and_two_replicas_with_health_checks() {
    let mut compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&repo("docker/compose.yaml")).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let replicas: Vec<&str> =
        services.keys().filter_map(|k| k.as_str()).filter(|k| k.starts_with("warp-")).collect();
    assert_eq!(replicas, ["warp-1", "warp-2"]);
    assert!(compose["services"]["postgres"]["healthcheck"]["test"].is_sequence());
    let mut ids = Vec::new();
    for replica in &replicas {
        let service = &compose["services"][*replica];
        let test: Vec<&str> =
            service["healthcheck"]["test"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(test, ["CMD", "/usr/local/bin/jhf-warp", "healthcheck"], "{replica}");
        assert_eq!(
            service["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy"),
            "{replica}"
        );
        let url = service["environment"]["JHF_WARP_DATABASE_URL"].as_str().unwrap();
        assert!(url.starts_with("postgres://") && url.contains("@postgres:5432/"), "{replica}: {url}");
        ids.push(service["environment"]["JHF_WARP_REPLICA_ID"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids, ["warp-1", "warp-2"], "each replica has its own id");
    assert_eq!(
        compose["services"]["warp-2"]["depends_on"]["warp-1"]["condition"].as_str(),
        Some("service_healthy")
    );
}
