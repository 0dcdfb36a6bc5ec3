//! Release `jhf-warp` processes the process benchmarks start, and what `/proc` says of them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns `command` (a `jhf-warp serve` with `--log-format json`), waits for its "serving"
/// log line and returns the child with the address it bound; stderr keeps draining in the
/// background so the child never blocks on a full pipe.
pub fn serve(command: &mut Command) -> (Child, String) {
    let mut child = command.stderr(Stdio::piped()).spawn().expect("jhf-warp starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("jhf-warp logs until it serves").expect("log line");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["message"] == "serving gRPC and HTTP" {
            break entry["addr"].as_str().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// The resident set of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
