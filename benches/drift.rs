//! Drift computation at scale: 10 000 agents (override with `JHF_WARP_BENCH_AGENTS`), desired
//! equal to observed. Reports items compared per second and the ratio of the diff's cost to a
//! baseline measured in the same run: canonicalising the same graph (`Topology::new`: sort,
//! dedup, hash), the unit of work every observation already pays.
//!
//! Run with `cargo bench --bench drift`. Nothing here asserts on time.

use std::hint::black_box;
use std::time::Duration;

mod support;

use jhf_warp::domain::TrustLevel;
use jhf_warp::domain::drift::diff_topologies;
use jhf_warp::domain::inventory::RouteMatch;
use jhf_warp::domain::topology::{EdgeKind, Route, Topology, TopologyEdge, TopologyNode};
use support::measure;

/// Agents in the SEND clique (the rest only spawn and route).
const CLIQUE: usize = 50;

fn team(agents: usize) -> (Vec<TopologyNode>, Vec<TopologyEdge>, Vec<Route>) {
    let id = |i: usize| format!("agent-{i:05}");
    let nodes = (0..agents)
        .map(|i| TopologyNode {
            agent_id: id(i),
            role: format!("role-{}", i % 12),
            trust: [TrustLevel::Restricted, TrustLevel::Standard, TrustLevel::Elevated][i % 3],
            model: Some("anthropic/claude-sonnet-4-5".to_owned()),
            tools_profile: Some("coding".to_owned()),
            workspace: format!("/srv/openclaw/workspace-{}", id(i)),
            pins: Default::default(),
        })
        .collect();
    let mut edges = Vec::new();
    for i in 0..agents {
        for step in 1..=2 {
            if i + step < agents {
                edges.push(TopologyEdge { from: id(i), to: id(i + step), kind: EdgeKind::Spawn });
            }
        }
    }
    for a in 0..CLIQUE.min(agents) {
        for b in 0..CLIQUE.min(agents) {
            if a != b {
                edges.push(TopologyEdge { from: id(a), to: id(b), kind: EdgeKind::Send });
            }
        }
    }
    let routes = (0..agents)
        .map(|i| Route {
            route: RouteMatch {
                channel: "telegram".to_owned(),
                account_id: Some(id(i)),
                ..RouteMatch::default()
            },
            agent_id: id(i),
        })
        .collect();
    (nodes, edges, routes)
}

fn main() {
    let agents: usize =
        std::env::var("JHF_WARP_BENCH_AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let (nodes, edges, routes) = team(agents);
    let items = nodes.len() + edges.len() + routes.len();
    let desired = Topology::new(nodes.clone(), edges.clone(), routes.clone());
    let observed = desired.clone();
    assert!(diff_topologies(&desired, &observed).is_empty(), "equal graphs must not drift");

    let budget = Duration::from_secs(2);
    let baseline = measure(budget, || {
        black_box(Topology::new(
            black_box(nodes.clone()),
            black_box(edges.clone()),
            black_box(routes.clone()),
        ));
    });
    let drift = measure(budget, || {
        black_box(diff_topologies(black_box(&desired), black_box(&observed)));
    });

    let per_second = |d: Duration| items as f64 / d.as_secs_f64();
    println!(
        "drift bench: {agents} agents, {} edges, {} routes = {items} items compared",
        edges.len(),
        routes.len()
    );
    println!(
        "  baseline (canonicalise graph): {:>10.3} ms  {:>12.0} items/s",
        baseline.as_secs_f64() * 1e3,
        per_second(baseline)
    );
    println!(
        "  diff (desired == observed):    {:>10.3} ms  {:>12.0} items/s",
        drift.as_secs_f64() * 1e3,
        per_second(drift)
    );
    println!("  ratio diff / baseline: {:.2}", drift.as_secs_f64() / baseline.as_secs_f64());
}
