//! A fleet at the scale its users run: 200 runtimes of 10 agents each (file runtimes this bench
//! generates: `fixture:fleet-NNN` trees in a scratch fixtures dir, read from disk by the fixture
//! adapter) shared out by three release `jhf-warp` processes on one Postgres database.
//!
//! Prints: how long until every runtime was observed and owned, the runtimes each replica owns
//! against the fair share, the oldest observation over three observe intervals against the
//! interval, each replica's RSS, and `GetFleetSummary` p50 at one request in flight beside
//! `GetVersion` on the same connection (a ratio). Needs `JHF_WARP_BENCH_DATABASE_URL`
//! (`postgres://…/postgres`; `.ci/run` sets it). It fails only on behaviour (a runtime never
//! observed, a replica over twice its fair share), never on time.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

#[path = "support/process.rs"]
mod process;

use jhf_warp::pb::v1 as pb;
use tonic::transport::Channel;

const RUNTIMES: usize = 200;
const AGENTS: usize = 10;
const REPLICAS: usize = 3;
const OBSERVE_SECS: u64 = 10;
const TOKEN: &str = "bench-operator-token-0123456789";
const CALLS: usize = 400;

struct Replica {
    child: Child,
    channel: Channel,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(root: &std::path::Path, id: &str, database_url: &str) -> Self {
        let data_dir = root.join(id);
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let (child, addr) = process::serve(
            Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
                .args(["--log-format", "json", "--log-filter", "warn,jhf_warp::app=info", "serve"])
                .args(["--listen", "127.0.0.1:0", "--observe-interval", &OBSERVE_SECS.to_string()])
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--runtimes-file")
                .arg(root.join("runtimes.yaml"))
                .env("JHF_WARP_DATABASE_URL", database_url)
                .env("JHF_WARP_REPLICA_ID", id)
                .env("JHF_WARP_TOKENS", format!("bench:operator:{TOKEN}"))
                .env("JHF_WARP_FIXTURES_DIR", root.join("fixtures"))
                .env("JHF_WARP_RECONCILE_PAUSED", "true"),
        );
        let endpoint = Channel::from_shared(format!("http://{addr}")).expect("uri").tcp_nodelay(true);
        Self { child, channel: endpoint.connect().await.expect("connects") }
    }

    fn rss_mib(&self) -> f64 {
        process::rss_mib(self.child.id())
    }

    async fn runtimes(&self) -> Vec<pb::Runtime> {
        let mut client = pb::control_service_client::ControlServiceClient::new(self.channel.clone());
        let request = pb::ListRuntimesRequest { page_size: 1000, ..Default::default() };
        client.list_runtimes(authorized(request)).await.expect("ListRuntimes").into_inner().runtimes
    }
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().expect("header"));
    request
}

async fn fresh_postgres(base: &str, name: &str) -> String {
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(base).await.expect("postgres reachable");
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.expect("drop");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
    admin.close().await.expect("close");
    let prefix = base.split('?').next().unwrap_or(base).rsplit_once('/').expect("url with a path").0;
    format!("{prefix}/{name}")
}

/// The fleet's runtimes: generated state trees and the runtimes file naming them.
fn write_fleet(root: &std::path::Path) {
    let mut file = String::from("runtimes:\n");
    for index in 0..RUNTIMES {
        let name = format!("fleet-{index:03}");
        jhf_warp::testing::write_state_tree(&root.join("fixtures").join(&name), AGENTS, AGENTS)
            .expect("state tree");
        let env = if index % 4 == 0 { "staging" } else { "prod" };
        file.push_str(&format!(
            "  - name: {name}\n    address: fixture:{name}\n    labels: {{ env: {env}, shard: s{} }}\n",
            index % 10
        ));
    }
    std::fs::write(root.join("runtimes.yaml"), file).expect("runtimes file");
}

fn age_secs(observed: Option<&pbjson_types::Timestamp>) -> f64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs_f64();
    observed.map_or(f64::INFINITY, |t| now - (t.seconds as f64 + f64::from(t.nanos) / 1e9))
}

async fn p50<F, Fut>(calls: usize, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies[latencies.len() / 2]
}

fn main() {
    let Ok(base) = std::env::var("JHF_WARP_BENCH_DATABASE_URL") else {
        println!("fleet bench: set JHF_WARP_BENCH_DATABASE_URL=postgres://…/postgres to measure");
        return;
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    runtime.block_on(run(&base));
}

async fn run(base: &str) {
    let temp = tempfile::tempdir().expect("temp dir");
    write_fleet(temp.path());
    let url = fresh_postgres(base, "jhf_warp_test_bench_fleet").await;
    println!(
        "fleet bench: {RUNTIMES} runtimes x {AGENTS} agents, {REPLICAS} release replicas on Postgres, observe interval {OBSERVE_SECS} s"
    );
    let started = Instant::now();
    let mut replicas = Vec::new();
    for index in 0..REPLICAS {
        replicas.push(Replica::start(temp.path(), &format!("r{}", index + 1), &url).await);
    }

    // Every runtime observed, healthy and owned, and the owners shared out.
    let fair = RUNTIMES.div_ceil(REPLICAS);
    let (owned, settled) = loop {
        let all = replicas[0].runtimes().await;
        let healthy = all.iter().filter(|r| r.health == pb::RuntimeHealth::Healthy as i32).count();
        let mut owned: BTreeMap<String, usize> = BTreeMap::new();
        for runtime in &all {
            *owned.entry(runtime.owner.clone()).or_default() += 1;
        }
        let balanced =
            owned.len() == REPLICAS && !owned.contains_key("") && owned.values().all(|n| *n <= fair);
        if all.len() == RUNTIMES && healthy == RUNTIMES && balanced {
            break (owned, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not settled after 300 s: {} runtimes, {healthy} healthy, owners {owned:?}",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "  every runtime observed, healthy and owned {:.1} s after the first replica started",
        settled.as_secs_f64()
    );
    let most = owned.values().copied().max().unwrap_or(0);
    println!(
        "  ownership: {owned:?}; fair share {fair}, most held {most} (x{:.2} of fair; the bar is x2)",
        most as f64 / fair as f64
    );
    assert!(most <= 2 * fair, "a replica holds more than twice its fair share: {owned:?}");

    // Observation keeps pace: sampled over three intervals, the oldest last observation of any
    // runtime, against its interval.
    let mut oldest: f64 = 0.0;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3 * OBSERVE_SECS) {
        let all = replicas[(watch.elapsed().as_secs() as usize) % REPLICAS].runtimes().await;
        for runtime in &all {
            oldest = oldest.max(age_secs(runtime.last_observation_time.as_ref()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "  oldest last observation over {} s of samples: {oldest:.1} s (interval {OBSERVE_SECS} s, x{:.2})",
        3 * OBSERVE_SECS,
        oldest / OBSERVE_SECS as f64
    );
    assert!(oldest.is_finite(), "a runtime was never observed");

    let rss: Vec<String> = replicas.iter().map(|r| format!("{:.1} MiB", r.rss_mib())).collect();
    println!("  RSS per replica: {}", rss.join(", "));

    let channel = replicas[0].channel.clone();
    let version = p50(CALLS, || {
        let mut client = pb::meta_service_client::MetaServiceClient::new(channel.clone());
        async move {
            client.get_version(pb::GetVersionRequest {}).await.expect("GetVersion");
        }
    })
    .await;
    let summary = p50(CALLS, || {
        let mut client = pb::control_service_client::ControlServiceClient::new(channel.clone());
        async move {
            let answer = client
                .get_fleet_summary(authorized(pb::GetFleetSummaryRequest::default()))
                .await
                .expect("GetFleetSummary");
            let total = answer.into_inner().total.expect("counts");
            assert_eq!(total.runtimes as usize, RUNTIMES);
        }
    })
    .await;
    println!(
        "  p50 at 1 in flight: GetVersion {:.3} ms, GetFleetSummary ({RUNTIMES} runtimes) {:.3} ms  ratio x{:.2}",
        version.as_secs_f64() * 1e3,
        summary.as_secs_f64() * 1e3,
        summary.as_secs_f64() / version.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    drop(replicas);
}
