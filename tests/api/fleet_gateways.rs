//! A fleet of three real Gateways (npm `openclaw@2026.9.6`, each with its own state dir, home
//! and port, like `openclaw fleet` cells) shared out by two `jhf-warp` processes on one
//! Postgres database. `#[ignore]`d: three Gateways and two replicas for a minute would starve the
//! parallel suite; `.ci/run` runs it in a step of its own, on Postgres.
//!
//! What it holds: each Gateway is observed by exactly one replica (counted by the replicas' own
//! `jhf_warp_runtime_operations_total{runtime=…}`); a hand edit on one Gateway is drift on that
//! runtime only; a fleet rollout across the three in two waves succeeds although the replica
//! that owns a second-wave Gateway is SIGKILLed mid-wave; no Gateway's config is written twice
//! (counted in each Gateway's own config journal); the audit chain is intact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use jhf_warp::pb::v1::control_service_client::ControlServiceClient;
use jhf_warp::pb::v1::drift_service_client::DriftServiceClient;
use jhf_warp::pb::v1::topology_service_client::TopologyServiceClient;
use jhf_warp::pb::v1::{self as pb, FleetRolloutState, FleetTargetState, RuntimeHealth};
use tonic::transport::Channel;

use crate::helpers::{
    OPERATOR_TOKEN, READER_TOKEN, eventually_within, fresh_database_url, left_out, with_token,
};
use crate::process::start_binary_with;
use crate::real_cli::openclaw_bin;
use crate::real_gateway::{GATEWAY_TOKEN, Gateway, agent_ids};
use crate::rollout::trio_minus_writer_plus_qa;

const CELLS: [&str; 3] = ["cell-a", "cell-b", "cell-c"];
/// Replica leases (membership, ownership, runtime): short, so the take-over is quick.
const LEASE_SECS: u64 = 3;
const OBSERVE_SECS: u64 = 4;
const SLOW: Duration = Duration::from_secs(180);

/// A `jhf-warp serve` process, SIGKILLed when dropped.
struct Replica {
    id: &'static str,
    child: Child,
    channel: Channel,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(dir: &Path, id: &'static str, database_url: &str, runtimes_file: &Path) -> Self {
        let data_dir = dir.join(id);
        std::fs::create_dir_all(&data_dir).unwrap();
        let env = [
            ("JHF_WARP_DATABASE_URL", database_url.to_owned()),
            ("JHF_WARP_TOKENS", crate::helpers::test_tokens()),
            ("JHF_WARP_REPLICA_ID", id.to_owned()),
            ("JHF_WARP_RUNTIMES_FILE", runtimes_file.display().to_string()),
            ("JHF_WARP_RECONCILER_LEASE_SECS", LEASE_SECS.to_string()),
            ("JHF_WARP_RUNTIME_LEASE_SECS", LEASE_SECS.to_string()),
            ("JHF_WARP_OBSERVE_INTERVAL", OBSERVE_SECS.to_string()),
        ];
        let (child, addr) = start_binary_with(&data_dir, &env);
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        Self { id, child, channel, addr }
    }

    fn control(&self) -> ControlServiceClient<Channel> {
        ControlServiceClient::new(self.channel.clone())
    }

    fn drift(&self) -> DriftServiceClient<Channel> {
        DriftServiceClient::new(self.channel.clone())
    }

    fn topology(&self) -> TopologyServiceClient<Channel> {
        TopologyServiceClient::new(self.channel.clone())
    }

    async fn runtimes(&self) -> Vec<pb::Runtime> {
        let request = pb::ListRuntimesRequest::default();
        self.control().list_runtimes(with_token(request, READER_TOKEN)).await.unwrap().into_inner().runtimes
    }

    /// Successful observations of each runtime this replica's adapters made, from `/metrics`.
    async fn observations(&self) -> BTreeMap<String, u64> {
        let text = crate::helpers::scrape_metrics(&format!("http://{}/metrics", self.addr)).await;
        let mut counts = BTreeMap::new();
        for cell in CELLS {
            let series = format!(
                "jhf_warp_runtime_operations_total{{runtime=\"{cell}\",operation=\"observe\",outcome=\"ok\"}} "
            );
            let count = text
                .lines()
                .find_map(|line| line.strip_prefix(series.as_str()))
                .map_or(0, |n| n.trim().parse().unwrap());
            counts.insert(cell.to_owned(), count);
        }
        counts
    }

    async fn drift_items(&self, runtime: &str) -> Vec<pb::DriftItem> {
        let request = pb::ListDriftItemsRequest { runtime: runtime.to_owned(), ..Default::default() };
        self.drift().list_drift_items(with_token(request, READER_TOKEN)).await.unwrap().into_inner().items
    }

    async fn observed(&self, runtime: &str) -> pb::Topology {
        let request =
            pb::GetTopologyRequest { runtime: runtime.to_owned(), read_mode: pb::ReadMode::Fresh.into() };
        let answer = self.topology().get_topology(with_token(request, READER_TOKEN)).await.unwrap();
        answer.into_inner().topology.unwrap()
    }

    async fn fleet_rollout(&self, id: &str) -> pb::FleetRollout {
        let request = pb::GetFleetRolloutRequest { fleet_rollout_id: id.to_owned() };
        let answer = self.drift().get_fleet_rollout(with_token(request, READER_TOKEN)).await.unwrap();
        answer.into_inner().fleet_rollout.unwrap()
    }
}

/// Writes each Gateway's token to a file only its owner reads, and the runtimes file naming them.
fn runtimes_file(dir: &Path, gateways: &[Gateway]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut text = String::from("runtimes:\n");
    for (cell, gateway) in CELLS.iter().zip(gateways) {
        let token = dir.join(format!("{cell}.token"));
        std::fs::write(&token, GATEWAY_TOKEN).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        text.push_str(&format!(
            "  - name: {cell}\n    address: \"gateway:ws://127.0.0.1:{}\"\n    token_file: {}\n    labels: {{ env: prod, cell: {} }}\n",
            gateway.port,
            token.display(),
            &cell[5..],
        ));
    }
    let path = dir.join("runtimes.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Config writes in a Gateway's own journal (`diagnostic_events`, scope `config-audit`, in the
/// state dir's `openclaw.sqlite`): OpenClaw records every write of `openclaw.json` there.
fn config_writes(state: &Path) -> usize {
    let mut databases = Vec::new();
    let mut stack = vec![state.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "openclaw.sqlite") {
                databases.push(path);
            }
        }
    }
    let script = "import sqlite3, sys\n\
                  n = 0\n\
                  for p in sys.argv[1:]:\n    \
                  c = sqlite3.connect(p)\n    \
                  n += c.execute(\"select count(*) from diagnostic_events where scope = 'config-audit'\").fetchone()[0]\n\
                  print(n)";
    let output =
        std::process::Command::new("python3").arg("-c").arg(script).args(&databases).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}

fn owners(runtimes: &[pb::Runtime]) -> BTreeMap<String, String> {
    runtimes.iter().map(|r| (r.spec.as_ref().unwrap().name.clone(), r.owner.clone())).collect()
}

fn seconds(t: Option<&pbjson_types::Timestamp>) -> f64 {
    t.map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "three live Gateways and two replica processes on Postgres; .ci/run runs it in a step of its own"]
async fn three_gateways_shared_by_two_replicas_roll_out_in_waves_through_a_replica_kill() {
    let Some(bin) = openclaw_bin() else { return };
    if std::env::var_os("JHF_WARP_TEST_DATABASE_URL").is_none() {
        left_out("the fleet process test needs Postgres (JHF_WARP_TEST_DATABASE_URL)");
        return;
    }
    let started = Instant::now();
    let (a, b, c) = tokio::join!(Gateway::start(&bin), Gateway::start(&bin), Gateway::start(&bin));
    let gateways = [a, b, c];
    let gateway_of: BTreeMap<&str, &Gateway> = CELLS.iter().copied().zip(gateways.iter()).collect();
    eprintln!("three gateways listening after {:.1} s", started.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let file = runtimes_file(dir.path(), &gateways);
    let url = fresh_database_url(dir.path()).await;
    let first = Replica::start(dir.path(), "r1", &url, &file).await;
    let second = Replica::start(dir.path(), "r2", &url, &file).await;

    // Ownership: every Gateway healthy under one owner, shared out (two replicas, three
    // runtimes: a fair share is at most two), and both replicas see the same owners.
    let settled = eventually_within("three healthy runtimes shared by both replicas", SLOW, async || {
        let seen = first.runtimes().await;
        let healthy = seen.len() == 3 && seen.iter().all(|r| r.health == RuntimeHealth::Healthy as i32);
        let owners = owners(&seen);
        let holders: BTreeSet<&String> = owners.values().collect();
        let shared = holders.len() == 2 && !holders.contains(&String::new());
        (healthy && shared && owners == self::owners(&second.runtimes().await)).then_some(owners)
    })
    .await;
    eprintln!("owners before the kill: {settled:?}");
    let per_replica = |id: &str| settled.values().filter(|o| o.as_str() == id).count();
    assert!(per_replica("r1") <= 2 && per_replica("r2") <= 2, "{settled:?}");

    // Observed by exactly one replica: over three observe intervals, each Gateway's
    // observations come from its owner alone.
    let (before_1, before_2) = (first.observations().await, second.observations().await);
    tokio::time::sleep(Duration::from_secs(3 * OBSERVE_SECS)).await;
    let (after_1, after_2) = (first.observations().await, second.observations().await);
    assert_eq!(owners(&first.runtimes().await), settled, "ownership held still while counting");
    for cell in CELLS {
        let by_1 = after_1[cell] - before_1[cell];
        let by_2 = after_2[cell] - before_2[cell];
        eprintln!("{cell}: owner {}, observations r1 {by_1}, r2 {by_2}", settled[cell]);
        let (owner, other) = if settled[cell] == "r1" { (by_1, by_2) } else { (by_2, by_1) };
        assert!(owner >= 2, "{cell} observed by its owner every interval");
        assert_eq!(other, 0, "{cell} observed by its owner only");
    }

    // Desired = observed on every runtime; a hand edit on cell-b is drift on cell-b only.
    for cell in CELLS {
        let request = pb::PutDesiredTopologyRequest {
            runtime: cell.to_owned(),
            topology: Some(first.observed(cell).await),
            request_id: format!("adopt-{cell}"),
            ..Default::default()
        };
        first.topology().put_desired_topology(with_token(request, OPERATOR_TOKEN)).await.unwrap();
    }
    for cell in CELLS {
        assert!(first.drift_items(cell).await.is_empty(), "{cell} in sync after adopting");
    }
    let edited = Instant::now();
    let hand = &gateway_of["cell-b"];
    let hash = hand.call("config.get", &serde_json::json!({}))["hash"].as_str().unwrap().to_owned();
    // Widened by hand: an agent nobody declared may be messaged.
    let patch =
        serde_json::json!({"tools": {"agentToAgent": {"allow": ["lead", "research", "writer", "intruder"]}}});
    let answer = hand.call("config.patch", &serde_json::json!({"raw": patch.to_string(), "baseHash": hash}));
    assert_eq!(answer["ok"], true, "{answer}");
    let items = eventually_within("the hand edit as drift on cell-b", SLOW, async || {
        let items = second.drift_items("cell-b").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    eprintln!(
        "hand edit on cell-b -> {} drift item(s) after {:.1} s",
        items.len(),
        edited.elapsed().as_secs_f64()
    );
    for cell in ["cell-a", "cell-c"] {
        assert!(first.drift_items(cell).await.is_empty(), "{cell} untouched by cell-b's edit");
        assert!(second.drift_items(cell).await.is_empty());
    }

    // A fleet rollout in two waves: the first wave alone, then the two runtimes of the other
    // replica... or of both; the second wave holds a runtime of the replica that gets killed.
    let victim_id = settled["cell-b"].clone();
    let canary = CELLS.iter().find(|c| **c != "cell-b").unwrap();
    let rest: Vec<String> = CELLS.iter().filter(|c| *c != canary).map(|c| (*c).to_owned()).collect();
    let journal_before: BTreeMap<&str, usize> =
        CELLS.iter().map(|c| (*c, config_writes(&gateway_of[c].state))).collect();
    let mut team = trio_minus_writer_plus_qa(&first.observed(canary).await);
    for node in &mut team.nodes {
        node.workspace.clear();
    }
    let request = pb::CreateFleetRolloutRequest {
        topology: Some(team),
        selector: "env=prod".to_owned(),
        waves: vec![pb::Wave { runtimes: vec![(*canary).to_owned()] }, pb::Wave { runtimes: rest.clone() }],
        request_id: "fleet-three-gateways".to_owned(),
        ..Default::default()
    };
    let rolled = Instant::now();
    let created = first.drift().create_fleet_rollout(with_token(request, OPERATOR_TOKEN)).await.unwrap();
    let id = created.into_inner().fleet_rollout.unwrap().id;
    let (victim, survivor) = if victim_id == "r1" { (first, second) } else { (second, first) };
    // Mid-wave: the second wave has started and cell-b's rollout exists but has not finished.
    let mid = eventually_within("the second wave running on cell-b", SLOW, async || {
        let current = survivor.fleet_rollout(&id).await;
        let b = current.targets.iter().find(|t| t.runtime == "cell-b")?;
        let finished =
            b.state != FleetTargetState::Waiting as i32 && b.state != FleetTargetState::Applying as i32;
        assert!(!finished, "cell-b finished before the kill: {current:?}");
        (current.current_wave == 1 && !b.rollout_id.is_empty()).then_some(current)
    })
    .await;
    let wave_1_took = rolled.elapsed();
    let killed_at = Instant::now();
    let victim_name = victim.id;
    drop(victim); // SIGKILL: no release; its leases must expire
    eprintln!(
        "killed {victim_name} (owner of cell-b) {:.1} s into the fleet rollout, wave 2 running: {:?}",
        wave_1_took.as_secs_f64(),
        mid.targets.iter().map(|t| (t.runtime.as_str(), t.state)).collect::<Vec<_>>()
    );
    let done = eventually_within("the survivor to finish the fleet rollout", SLOW, async || {
        let current = survivor.fleet_rollout(&id).await;
        let ended = [FleetRolloutState::Succeeded, FleetRolloutState::Failed, FleetRolloutState::Cancelled]
            .iter()
            .any(|s| *s as i32 == current.state);
        ended.then_some(current)
    })
    .await;
    eprintln!(
        "fleet rollout {} after {:.1} s ({:.1} s after the kill)",
        done.state,
        rolled.elapsed().as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
    let start = seconds(done.create_time.as_ref());
    for target in &done.targets {
        eprintln!(
            "  wave {} {}: {:?} from +{:.1} s to +{:.1} s {}",
            target.wave + 1,
            target.runtime,
            FleetTargetState::try_from(target.state).unwrap(),
            seconds(target.start_time.as_ref()) - start,
            seconds(target.finish_time.as_ref()) - start,
            target.error
        );
    }
    assert_eq!(done.state, FleetRolloutState::Succeeded as i32, "{done:#?}");
    assert!(done.targets.iter().all(|t| t.state == FleetTargetState::Succeeded as i32));

    // After the kill, the survivor owns everything.
    let after = eventually_within("the survivor to own all three", SLOW, async || {
        let owners = owners(&survivor.runtimes().await);
        owners.values().all(|o| o == survivor.id).then_some(owners)
    })
    .await;
    eprintln!("owners after the kill: {after:?}");

    // Final states, read from each Gateway itself: the team changed, each config written by
    // the rollout the same number of times (cell-b's rollout was resumed, not redone).
    let mut writes = BTreeMap::new();
    for cell in CELLS {
        let gateway = gateway_of[cell];
        assert_eq!(agent_ids(&bin, &gateway.state), ["lead", "qa", "research"], "{cell}");
        writes.insert(cell, config_writes(&gateway.state) - journal_before[cell]);
        let request = pb::ListRolloutsRequest { runtime: cell.to_owned(), ..Default::default() };
        let rollouts = survivor
            .drift()
            .list_rollouts(with_token(request, READER_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .rollouts;
        assert_eq!(rollouts.len(), 1, "{cell}: one rollout, never a second one");
    }
    eprintln!("config writes per gateway during the fleet rollout (its own journal): {writes:?}");
    let counts: BTreeSet<usize> = writes.values().copied().collect();
    assert_eq!(counts.len(), 1, "every gateway written the same number of times: {writes:?}");
    assert!(counts.iter().all(|n| *n > 0), "{writes:?}");
    let verify =
        survivor.control().verify_audit_chain(with_token(pb::VerifyAuditChainRequest {}, READER_TOKEN)).await;
    assert!(verify.unwrap().into_inner().intact, "audit chain intact");
    // How cell-b's interrupted rollout was resolved, in its own steps.
    let b = done.targets.iter().find(|t| t.runtime == "cell-b").unwrap();
    let request = pb::GetRolloutRequest { runtime: "cell-b".to_owned(), rollout_id: b.rollout_id.clone() };
    let rollout = survivor.drift().get_rollout(with_token(request, READER_TOKEN)).await.unwrap();
    for step in rollout.into_inner().rollout.unwrap().steps {
        eprintln!("  cell-b step {:?}: {}", pb::RolloutState::try_from(step.state).unwrap(), step.message);
    }
    // Final states: the drift the new desired team opened while it rolled out resolves on
    // every runtime, and the fleet view calls all three in sync.
    let settled_at = Instant::now();
    let in_sync = eventually_within("every runtime in sync after the rollout", SLOW, async || {
        for cell in CELLS {
            let open = survivor
                .drift_items(cell)
                .await
                .iter()
                .filter(|i| i.state != pb::DriftState::Resolved as i32)
                .count();
            if open > 0 {
                return None;
            }
        }
        let runtimes = survivor.runtimes().await;
        runtimes.iter().all(|r| r.in_sync).then_some(runtimes)
    })
    .await;
    for runtime in &in_sync {
        eprintln!(
            "final: {} owner {} health {:?} agents {} in sync {} generation {}",
            runtime.spec.as_ref().unwrap().name,
            runtime.owner,
            RuntimeHealth::try_from(runtime.health).unwrap(),
            runtime.agents,
            runtime.in_sync,
            runtime.desired_generation
        );
    }
    eprintln!(
        "drift resolved everywhere {:.1} s after the rollout ended",
        settled_at.elapsed().as_secs_f64()
    );
}
