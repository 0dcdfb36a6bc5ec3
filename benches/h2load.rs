//! The serving path measured from outside: nghttp2's `h2load` (a C load generator far lighter
//! than the servers; Debian `nghttp2-client`, installed by `.ci/run`) drives a bare tonic unary
//! echo and the release `jhf-warp`, both with one worker thread, with the same load (4
//! connections x 16 streams), one after the other in one run.
//!
//! Prints, per read RPC and per log setting (the default `info`, `warn`, and `info` with
//! `--log-every-call`), requests/s and the server's CPU per request from `/proc`, each as a
//! ratio to the echo's; the gRPC codes the server counted (so a run of refusals cannot pass for
//! throughput); and the p50 at one stream in flight beside `GetVersion`. `JHF_WARP_BENCH_SHORT=1`
//! runs 3 s per figure instead of 6. Without `h2load` on PATH it says so and stops. Nothing here
//! asserts on time.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jhf_warp::pb::v1 as pb;
use prost::Message;

#[path = "support/process.rs"]
mod process;
#[path = "support/servers.rs"]
mod servers;

use servers::{Echo, Server, TOKEN, run_echo_server, seed};

const CONNECTIONS: &str = "4";
const STREAMS: &str = "16";

/// One call as h2load sends it: the path and the gRPC-framed request body.
struct Call {
    name: &'static str,
    path: &'static str,
    body: Vec<u8>,
}

fn framed(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(payload.len()).expect("small message").to_be_bytes());
    body.extend_from_slice(&payload);
    body
}

fn read_calls() -> Vec<Call> {
    let stored = pb::ReadMode::Stored as i32;
    vec![
        Call {
            name: "GetTopology(STORED)",
            path: "/jhf.warp.v1.TopologyService/GetTopology",
            body: framed(&pb::GetTopologyRequest { runtime: String::new(), read_mode: stored }),
        },
        Call {
            name: "GetInventory(STORED)",
            path: "/jhf.warp.v1.TopologyService/GetInventory",
            body: framed(&pb::GetInventoryRequest { runtime: String::new(), read_mode: stored }),
        },
        Call {
            name: "GetDesiredTopology",
            path: "/jhf.warp.v1.TopologyService/GetDesiredTopology",
            body: framed(&pb::GetDesiredTopologyRequest::default()),
        },
        Call {
            name: "GetDriftSummary",
            path: "/jhf.warp.v1.DriftService/GetDriftSummary",
            body: framed(&pb::GetDriftSummaryRequest::default()),
        },
        Call {
            name: "GetSchedule",
            path: "/jhf.warp.v1.ControlService/GetSchedule",
            body: framed(&pb::GetScheduleRequest::default()),
        },
        Call {
            name: "GetLease",
            path: "/jhf.warp.v1.ControlService/GetLease",
            body: framed(&pb::GetLeaseRequest { name: "agent/bench".to_owned() }),
        },
    ]
}

/// What one h2load run reports.
struct Run {
    rate: f64,
    done: u64,
    p50_ms: f64,
    cpu_per_request: Duration,
}

/// Runs h2load against `server` for `duration` with `connections` x `streams`.
fn h2load(server: &Server, call: &Call, scratch: &Path, duration: Duration, load: (&str, &str)) -> Run {
    let body = scratch.join("body.bin");
    std::fs::write(&body, &call.body).expect("body file");
    let cpu_before = server.cpu();
    let output = Command::new("h2load")
        .args(["-c", load.0, "-m", load.1, "-D", &format!("{}", duration.as_secs())])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["-H", &format!("authorization: Bearer {TOKEN}")])
        .arg("-d")
        .arg(&body)
        .arg(format!("http://{}{}", server.addr, call.path))
        .output()
        .expect("h2load runs");
    let cpu = server.cpu().saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("finished in ")?.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok()
        })
        .unwrap_or(0.0);
    let done = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("requests: ")?.split(", ").find_map(|p| p.strip_suffix(" succeeded")?.parse().ok())
        })
        .unwrap_or(0);
    // "time for request:  min  max  mean  sd  +/- sd": the mean stands in for the median at one
    // stream in flight, where the distribution is narrow.
    let p50_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("time for request:")?.split_whitespace().nth(2).map(millis))
        .unwrap_or(0.0);
    Run { rate, done, p50_ms, cpu_per_request: if done > 0 { cpu / done as u32 } else { Duration::ZERO } }
}

/// `12.34ms`, `567us`, `1.2s` in milliseconds.
fn millis(text: &str) -> f64 {
    let number = |suffix: &str| text.strip_suffix(suffix).and_then(|n| n.parse::<f64>().ok());
    number("us")
        .map(|n| n / 1000.0)
        .or_else(|| number("ms"))
        .or_else(|| number("s").map(|n| n * 1000.0))
        .unwrap_or(0.0)
}

/// The gRPC codes `server` counted for `method`, from its `/metrics`.
async fn codes(server: &Server, method: &str) -> String {
    let text = reqwest::Client::new()
        .get(format!("http://{}/metrics", server.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let needle = format!("grpc_method=\"{method}\",grpc_code=\"");
    let mut codes = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("grpc_server_handled_total") && l.contains(&needle)) {
        let code = line.split(&needle).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("?");
        let count = line.rsplit(' ').next().unwrap_or("0");
        codes.push(format!("{code} {count}"));
    }
    codes.join(", ")
}

fn main() {
    if std::env::var("JHF_WARP_BENCH_ROLE").as_deref() == Ok("echo") {
        run_echo_server();
        return;
    }
    if Command::new("h2load").arg("--version").output().is_err() {
        println!(
            "h2load bench: h2load is not installed (Debian: apt-get install nghttp2-client); nothing measured"
        );
        return;
    }
    let short = std::env::var_os("JHF_WARP_BENCH_SHORT").is_some();
    let duration = Duration::from_secs(if short { 3 } else { 6 });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio");
    runtime.block_on(run(duration));
}

async fn run(duration: Duration) {
    let temp = tempfile::tempdir().expect("temp dir");
    println!(
        "h2load bench: servers with 1 worker thread; h2load {CONNECTIONS} connections x {STREAMS} streams, {} s per figure",
        duration.as_secs()
    );
    let echo_call =
        Call { name: "echo", path: "/bench.Echo/Echo", body: framed(&Echo { payload: b"ping".to_vec() }) };
    let echo = Server::echo();
    let base = h2load(&echo, &echo_call, temp.path(), duration, (CONNECTIONS, STREAMS));
    let echo_one = h2load(&echo, &echo_call, temp.path(), duration, ("1", "1"));
    drop(echo);
    println!(
        "  echo (bare tonic unary)             {:>8.0} req/s  {:>6.1} us CPU/req  (p50 at 1 in flight {:.3} ms)",
        base.rate,
        micros(base.cpu_per_request),
        echo_one.p50_ms
    );

    for (setting, filter, extra) in [
        ("default logs (info)", "info", &[][..]),
        ("warn logs", "warn,jhf_warp::app=info", &[][..]),
        ("info, every call logged", "info", &["--log-every-call"][..]),
    ] {
        let data = temp.path().join(setting.replace([' ', ',', '(', ')'], "-"));
        let server = Server::warp_logging(&data, filter, extra);
        seed(&server).await;
        println!("  jhf-warp, {setting}:");
        for call in read_calls() {
            let run = h2load(&server, &call, temp.path(), duration, (CONNECTIONS, STREAMS));
            let method = call.path.rsplit('/').next().unwrap_or("");
            println!(
                "    {:<26} {:>8.0} req/s  {:>6.1} us CPU/req  throughput x{:.2} of echo  CPU x{:.2} of echo  [{} served: {}]",
                call.name,
                run.rate,
                micros(run.cpu_per_request),
                run.rate / base.rate.max(f64::MIN_POSITIVE),
                run.cpu_per_request.as_secs_f64() / base.cpu_per_request.as_secs_f64().max(f64::MIN_POSITIVE),
                run.done,
                codes(&server, method).await,
            );
        }
        if filter == "info" && extra.is_empty() {
            let version = Call {
                name: "GetVersion",
                path: "/jhf.warp.v1.MetaService/GetVersion",
                body: framed(&pb::GetVersionRequest {}),
            };
            let version = h2load(&server, &version, temp.path(), duration, ("1", "1"));
            let topology = h2load(&server, &read_calls()[0], temp.path(), duration, ("1", "1"));
            println!(
                "    at 1 in flight (mean): GetVersion {:.3} ms, GetTopology(STORED) {:.3} ms  ratio x{:.2}",
                version.p50_ms,
                topology.p50_ms,
                topology.p50_ms / version.p50_ms.max(f64::MIN_POSITIVE)
            );
            println!("    server RSS after the load: {:.1} MiB", server.rss_mib());
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
