//! Observation at scale: synthetic installations of 100, 500 and 2 000 agents (override with
//! `JHF_WARP_BENCH_SIZES=100,500,2000`), each with a 100-agent SEND clique, spawn chains and a
//! route per agent, read from disk by the fixture adapter, derived, diffed against itself and
//! recorded in a fresh SQLite store — the pipeline of one observation.
//!
//! Prints, per size: read+inventory, derive+diff, record times, the stored size and the
//! process RSS, and each time per agent as a ratio to the smallest size's, so a super-linear
//! step shows as a ratio well above 1 (the SEND clique is fixed at 100, so edges grow linearly
//! with agents). Run with `cargo bench --bench observe`. Nothing here asserts on time.

use std::time::{Duration, Instant};

use jhf_warp::domain::derive_topology;
use jhf_warp::domain::drift::diff;
use jhf_warp::domain::drift::tracker::{TrackerConfig, observe};
use jhf_warp::runtime::{FixtureRuntime, RuntimeAdapter, RuntimeLimits};
use jhf_warp::store::{NewObservation, Store, StoreOptions, TrackerFeed};

const CLIQUE: usize = 100;

struct Row {
    agents: usize,
    edges: usize,
    read: Duration,
    derive_diff: Duration,
    record: Duration,
    stored_bytes: usize,
    rss_kib: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The shortest of three runs (the first warms caches).
async fn fastest<T, F: Future<Output = T>>(mut run: impl FnMut() -> F) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..3 {
        let start = Instant::now();
        let value = run().await;
        let took = start.elapsed();
        if best.as_ref().is_none_or(|(fastest, _)| took < *fastest) {
            best = Some((took, value));
        }
    }
    best.expect("three runs")
}

async fn measure(agents: usize) -> Row {
    let temp = tempfile::tempdir().expect("temp dir");
    let fixtures = temp.path().join("fixtures");
    jhf_warp::testing::write_state_tree(&fixtures.join("synthetic"), agents, CLIQUE).expect("state tree");
    let data = temp.path().join("data");
    let runtime = FixtureRuntime::prepare(&fixtures, "synthetic", &data, RuntimeLimits::default())
        .await
        .expect("fixture");
    let (read, inventory) = fastest(|| async { runtime.observe().await.expect("observe") }).await;
    assert_eq!(inventory.agents.len(), agents, "every agent observed");
    let (derive_diff, (topology, differences)) = fastest(|| async {
        let topology = derive_topology(&inventory);
        let differences = diff(Some(&topology), &topology, &inventory);
        (topology, differences)
    })
    .await;
    let store = Store::connect(
        &format!("sqlite://{}?mode=rwc", data.join("warp.db").display()),
        StoreOptions::default(),
    )
    .await
    .expect("store");
    store.migrate().await.expect("migrate");
    let now = chrono::Utc::now();
    let feed = TrackerFeed {
        min_gap: None,
        apply: Box::new(|items| observe(items, &differences, now, &TrackerConfig::default())),
    };
    let start = Instant::now();
    let new = NewObservation {
        runtime: runtime.address(),
        inventory: &inventory,
        topology: &topology,
        observed_at: chrono::Utc::now(),
    };
    store.record_observation(new, 10, feed, None).await.expect("record");
    let record = start.elapsed();
    let stored_bytes = serde_json::to_string(&inventory).map(|s| s.len()).unwrap_or(0)
        + serde_json::to_string(&topology).map(|s| s.len()).unwrap_or(0);
    Row { agents, edges: topology.edges.len(), read, derive_diff, record, stored_bytes, rss_kib: rss_kib() }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("JHF_WARP_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|sizes: &Vec<usize>| !sizes.is_empty())
        .unwrap_or_else(|| vec![100, 500, 2000]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let rows: Vec<Row> = sizes.iter().map(|&agents| runtime.block_on(measure(agents))).collect();
    let base = &rows[0];
    let per_agent = |d: Duration, agents: usize| d.as_secs_f64() / agents as f64;
    let ratio = |d: Duration, row: &Row, base_d: Duration| {
        per_agent(d, row.agents) / per_agent(base_d, base.agents).max(f64::MIN_POSITIVE)
    };
    println!(
        "observe bench: synthetic teams with a {CLIQUE}-agent SEND clique (ratios: time per agent vs {} agents)",
        base.agents
    );
    for row in &rows {
        println!(
            "  {:>5} agents {:>6} edges | read+inventory {:>8.1} ms (x{:.2}) | derive+diff {:>7.1} ms (x{:.2}) | record {:>7.1} ms (x{:.2}) | stored {:>6} KiB ({:.0} B/agent) | RSS {:>6} KiB",
            row.agents,
            row.edges,
            row.read.as_secs_f64() * 1e3,
            ratio(row.read, row, base.read),
            row.derive_diff.as_secs_f64() * 1e3,
            ratio(row.derive_diff, row, base.derive_diff),
            row.record.as_secs_f64() * 1e3,
            ratio(row.record, row, base.record),
            row.stored_bytes / 1024,
            row.stored_bytes as f64 / row.agents as f64,
            row.rss_kib,
        );
    }
}
