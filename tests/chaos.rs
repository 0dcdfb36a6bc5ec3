//! Chaos: three `jhf-warp` processes on one Postgres database and one runtime. A driver changes
//! the desired topology, starts rollouts and contends for a lease while the replicas heal on a
//! schedule, and a killer SIGKILLs a random replica every few seconds and starts it again. At
//! the end the invariants are printed and asserted:
//! - no client saw a rollout move against the state machine or reach two final states (the
//!   states its WatchRollout streams and GetRollout polls answered, in the order seen);
//! - every sample of the runtime's config hash is some rollout's base or target (no
//!   half-applied change);
//! - every acknowledged mutation has exactly one audit event, and the chain verifies;
//! - the contended lease never had two holders at once and no stale token was accepted;
//! - once the killing stops, the runtime converges to the last desired revision;
//! - no call was ever answered INTERNAL.
//!
//! A second scenario stops Postgres under load and starts it again: callers get UNAVAILABLE
//! (never INTERNAL), `/ready` turns 503 and back, and nothing acknowledged is lost.
//!
//! Both need Postgres and spawn processes, so they are `#[ignore]`d in `cargo test`; CI runs
//! them with `JHF_WARP_TEST_DATABASE_URL` set:
//! `cargo test --test chaos -- --ignored --nocapture --test-threads 1`.
//! `JHF_WARP_CHAOS_SECS` sets the chaos duration (default 60). The outage scenario stops and
//! starts the local cluster with `pg_ctlcluster` (override with `JHF_WARP_CHAOS_PG_STOP` and
//! `JHF_WARP_CHAOS_PG_START`): it takes the shared server down for a few seconds.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jhf_warp::pb::v1 as pb;
use jhf_warp::pb::v1::control_service_client::ControlServiceClient;
use jhf_warp::pb::v1::drift_service_client::DriftServiceClient;
use jhf_warp::pb::v1::topology_service_client::TopologyServiceClient;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};

use helpers::{
    OPERATOR_TOKEN, READER_TOKEN, agent_token, eventually_within, fixtures_dir, fresh_database_url,
    test_tokens, with_token,
};

const REPLICAS: usize = 3;

/// One replica's fixed port and, while it runs, its process.
struct Slot {
    port: u16,
    child: Option<Child>,
    starts: u32,
}

/// Three replicas sharing one data dir (hence one fixture runtime) and one database.
struct Cluster {
    data_dir: std::path::PathBuf,
    database_url: String,
    slots: Mutex<Vec<Slot>>,
    extra_env: Vec<(&'static str, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    fn new(
        data_dir: std::path::PathBuf,
        database_url: String,
        replicas: usize,
        extra_env: Vec<(&'static str, String)>,
    ) -> Self {
        let slots = (0..replicas).map(|_| Slot { port: free_port(), child: None, starts: 0 }).collect();
        Self { data_dir, database_url, slots: Mutex::new(slots), extra_env }
    }

    fn addrs(&self) -> Vec<String> {
        self.slots.lock().unwrap().iter().map(|s| format!("127.0.0.1:{}", s.port)).collect()
    }

    fn start(&self, index: usize) {
        let mut slots = self.slots.lock().unwrap();
        let slot = &mut slots[index];
        slot.starts += 1;
        let log = std::fs::File::create(self.data_dir.join(format!("replica-{index}-{}.log", slot.starts)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
            .args([
                "--log-format",
                "json",
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", slot.port),
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .env("JHF_WARP_FIXTURES_DIR", fixtures_dir())
            .env("JHF_WARP_DATABASE_URL", &self.database_url)
            .env("JHF_WARP_TOKENS", test_tokens())
            .env_remove("JHF_WARP_TOKEN_FILE")
            .env_remove("JHF_WARP_REPLICA_ID")
            .envs(self.extra_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        slot.child = Some(child);
    }

    fn kill(&self, index: usize) {
        if let Some(mut child) = self.slots.lock().unwrap()[index].child.take() {
            let _ = child.kill(); // SIGKILL: no drain, no lease release
            let _ = child.wait();
        }
    }

    fn running(&self) -> Vec<bool> {
        self.slots.lock().unwrap().iter().map(|s| s.child.is_some()).collect()
    }

    async fn wait_ready(&self) {
        for addr in self.addrs() {
            let url = format!("http://{addr}/ready");
            eventually_within(&format!("{addr} to be ready"), Duration::from_secs(60), async || {
                (reqwest::get(&url).await.map(|r| r.status().as_u16()).unwrap_or(0) == 200).then_some(())
            })
            .await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for slot in self.slots.lock().unwrap().iter_mut() {
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Every gRPC status code callers saw, counted.
#[derive(Default)]
struct Codes(Mutex<BTreeMap<String, u64>>);

impl Codes {
    fn saw(&self, code: Code) {
        *self.0.lock().unwrap().entry(format!("{code:?}")).or_default() += 1;
    }

    fn count(&self, code: Code) -> u64 {
        self.0.lock().unwrap().get(&format!("{code:?}")).copied().unwrap_or(0)
    }

    fn summary(&self) -> String {
        format!("{:?}", self.0.lock().unwrap())
    }
}

/// A call answered by any replica: transport failures, UNAVAILABLE and RESOURCE_EXHAUSTED are
/// retried on the next replica (with the same request, so the same request id) for up to 60 s.
async fn call<T, F, Fut>(addrs: &[String], codes: &Codes, mut attempt: F) -> Result<T, Status>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = rand_index(addrs.len());
    loop {
        let addr = &addrs[next % addrs.len()];
        next += 1;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(30));
        let result = match channel.connect().await {
            Ok(channel) => attempt(channel).await,
            Err(_) => Err(Status::unavailable("not listening")),
        };
        match result {
            Ok(value) => {
                codes.saw(Code::Ok);
                return Ok(value);
            }
            Err(status) => {
                codes.saw(status.code());
                let retry = matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::ResourceExhausted
                        | Code::DeadlineExceeded
                );
                if !retry || Instant::now() > deadline {
                    return Err(status);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn rand_index(n: usize) -> usize {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    u32::from_le_bytes(bytes) as usize % n.max(1)
}

fn trio_desired(observed: &pb::Topology, with_qa: bool) -> pb::Topology {
    let mut topology = observed.clone();
    if !with_qa {
        return topology;
    }
    topology.nodes.retain(|n| n.agent_id != "writer");
    topology.edges.retain(|e| e.from_agent_id != "writer" && e.to_agent_id != "writer");
    topology.routes.retain(|r| r.agent_id != "writer");
    topology.nodes.push(pb::TopologyNode {
        agent_id: "qa".into(),
        role: "QA".into(),
        trust: pb::TrustLevel::Restricted.into(),
        tools_profile: "minimal".into(),
        ..Default::default()
    });
    topology.edges.push(pb::TopologyEdge {
        from_agent_id: "lead".into(),
        to_agent_id: "qa".into(),
        kind: pb::EdgeKind::Spawn.into(),
    });
    topology
}

/// An acknowledged mutation: its method and request id.
type Acked = (String, String);

struct Driver {
    addrs: Vec<String>,
    codes: Codes,
    acked: Mutex<Vec<Acked>>,
    last_generation: AtomicU64,
    stop: AtomicBool,
    sequence: AtomicU64,
    /// Rollout states as clients saw them (WatchRollout events and GetRollout polls), in the
    /// order they were seen, by rollout id.
    seen: Mutex<BTreeMap<String, Vec<i32>>>,
}

impl Driver {
    fn id(&self, what: &str) -> String {
        format!("{what}-{}", self.sequence.fetch_add(1, Ordering::Relaxed))
    }

    fn ack(&self, method: &str, request_id: &str) {
        self.acked.lock().unwrap().push((method.to_owned(), request_id.to_owned()));
    }

    async fn desired_changes(&self, initial: pb::Topology) {
        let mut with_qa = true;
        while !self.stop.load(Ordering::Relaxed) {
            let current = call(&self.addrs, &self.codes, |channel| async move {
                let request = with_token(
                    pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 },
                    READER_TOKEN,
                );
                TopologyServiceClient::new(channel).get_desired_topology(request).await
            })
            .await;
            let etag = current
                .map(|r| r.into_inner().desired.map(|d| d.etag).unwrap_or_default())
                .unwrap_or_default();
            let request_id = self.id("desired");
            let request = pb::PutDesiredTopologyRequest {
                runtime: String::new(),
                topology: Some(trio_desired(&initial, with_qa)),
                etag,
                request_id: request_id.clone(),
                validate_only: false,
            };
            let put = call(&self.addrs, &self.codes, |channel| {
                let request = request.clone();
                async move {
                    TopologyServiceClient::new(channel)
                        .put_desired_topology(with_token(request, OPERATOR_TOKEN))
                        .await
                }
            })
            .await;
            if let Ok(answer) = put {
                let generation = answer.into_inner().desired.map(|d| d.generation).unwrap_or(0);
                self.last_generation.fetch_max(generation as u64, Ordering::SeqCst);
                self.ack("jhf.warp.v1.TopologyService/PutDesiredTopology", &request_id);
                with_qa = !with_qa;
            }
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    }

    async fn rollouts(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let planned = call(&self.addrs, &self.codes, |channel| async move {
                let request = with_token(
                    pb::PlanPatchRequest { runtime: String::new(), kind: pb::PlanKind::Apply.into() },
                    READER_TOKEN,
                );
                DriftServiceClient::new(channel).plan_patch(request).await
            })
            .await;
            let Some(plan) = planned.ok().and_then(|p| p.into_inner().plan) else { continue };
            if plan.operations.is_empty() {
                continue;
            }
            let request_id = self.id("rollout");
            let request = pb::CreateRolloutRequest {
                runtime: String::new(),
                plan_id: plan.id,
                dry_run: false,
                request_id: request_id.clone(),
                validate_only: false,
            };
            let created = call(&self.addrs, &self.codes, |channel| {
                let request = request.clone();
                async move {
                    DriftServiceClient::new(channel).create_rollout(with_token(request, OPERATOR_TOKEN)).await
                }
            })
            .await;
            if let Ok(created) = created {
                self.ack("jhf.warp.v1.DriftService/CreateRollout", &request_id);
                if let Some(rollout) = created.into_inner().rollout {
                    self.see(&rollout.id, rollout.state);
                    self.follow(&rollout.id).await;
                }
            }
        }
    }

    fn see(&self, id: &str, state: i32) {
        let mut seen = self.seen.lock().unwrap();
        let history = seen.entry(id.to_owned()).or_default();
        if history.last() != Some(&state) {
            history.push(state);
        }
    }

    /// Follows a rollout as a client would, until it is final or the chaos ends: its
    /// WatchRollout stream (re-opened on another replica when one is killed), and a GetRollout
    /// poll whenever the stream is down.
    async fn follow(&self, id: &str) {
        let finals = [pb::RolloutState::Succeeded, pb::RolloutState::Failed, pb::RolloutState::RolledBack]
            .map(|s| s as i32);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let polled = call(&self.addrs, &self.codes, |channel| async move {
                let request = with_token(
                    pb::GetRolloutRequest { runtime: String::new(), rollout_id: id.to_owned() },
                    READER_TOKEN,
                );
                DriftServiceClient::new(channel).get_rollout(request).await
            })
            .await;
            let Some(rollout) = polled.ok().and_then(|r| r.into_inner().rollout) else { continue };
            self.see(id, rollout.state);
            if finals.contains(&rollout.state) {
                return;
            }
            let addr = &self.addrs[rand_index(self.addrs.len())];
            let Ok(channel) = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await else {
                continue;
            };
            let request = with_token(
                pb::WatchRolloutRequest { runtime: String::new(), rollout_id: id.to_owned() },
                READER_TOKEN,
            );
            let Ok(stream) = DriftServiceClient::new(channel).watch_rollout(request).await else { continue };
            let mut stream = stream.into_inner();
            while let Ok(Ok(Some(event))) =
                tokio::time::timeout(Duration::from_secs(5), stream.message()).await
            {
                let Some(rollout) = event.rollout else { continue };
                self.see(id, rollout.state);
                if finals.contains(&rollout.state) {
                    return;
                }
            }
        }
    }

    /// One contender of `job/chaos`; returns its grants (holder, token, start, end).
    async fn contend(
        &self,
        contender: usize,
        stale_tries: &AtomicU64,
        stale_accepted: &AtomicU64,
    ) -> Vec<Grant> {
        let holder = format!("contender-{contender}");
        let token = agent_token(&holder);
        let mut grants = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let acquire = pb::AcquireLeaseRequest {
                name: "job/chaos".into(),
                holder: holder.clone(),
                duration_seconds: 3,
            };
            let acquired =
                call(&self.addrs, &self.codes, |channel| {
                    let (acquire, token) = (acquire.clone(), token.clone());
                    async move {
                        ControlServiceClient::new(channel).acquire_lease(with_token(acquire, &token)).await
                    }
                })
                .await;
            let Ok(lease) = acquired else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let lease = lease.into_inner().lease.unwrap();
            let mut grant = Grant {
                holder: holder.clone(),
                token: lease.fencing_token,
                start: time(&lease.renew_time),
                end: time(&lease.expire_time),
                release_known: false,
            };
            let renew = |fencing_token| pb::RenewLeaseRequest {
                name: "job/chaos".into(),
                holder: holder.clone(),
                fencing_token,
                duration_seconds: 3,
            };
            if grant.token > 1 {
                stale_tries.fetch_add(1, Ordering::Relaxed);
                let stale = renew(grant.token - 1);
                let answer =
                    call(&self.addrs, &self.codes, |channel| {
                        let (stale, token) = (stale.clone(), token.clone());
                        async move {
                            ControlServiceClient::new(channel).renew_lease(with_token(stale, &token)).await
                        }
                    })
                    .await;
                if answer.is_ok() {
                    stale_accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
            let fresh = renew(grant.token);
            if let Ok(renewed) = call(&self.addrs, &self.codes, |channel| {
                let (fresh, token) = (fresh.clone(), token.clone());
                async move { ControlServiceClient::new(channel).renew_lease(with_token(fresh, &token)).await }
            })
            .await
            {
                grant.end = grant.end.max(time(&renewed.into_inner().lease.unwrap().expire_time));
            }
            let release = pb::ReleaseLeaseRequest {
                name: "job/chaos".into(),
                holder: holder.clone(),
                fencing_token: grant.token,
            };
            if let Ok(released) =
                call(&self.addrs, &self.codes, |channel| {
                    let (release, token) = (release.clone(), token.clone());
                    async move {
                        ControlServiceClient::new(channel).release_lease(with_token(release, &token)).await
                    }
                })
                .await
            {
                grant.end = time(&released.into_inner().lease.unwrap().expire_time);
                grant.release_known = true;
            }
            grants.push(grant);
        }
        grants
    }
}

#[derive(Debug, Clone)]
struct Grant {
    holder: String,
    token: i64,
    start: i64,
    end: i64,
    /// False when the release's answer was lost (its replica was killed): the release may have
    /// committed, so `end` is settled from the audit log afterwards.
    release_known: bool,
}

fn time(t: &Option<pbjson_types::Timestamp>) -> i64 {
    t.as_ref().map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos)).unwrap_or(0)
}

/// Reads the runtime's config every 20 ms and keeps the hashes seen.
fn sample_config(
    path: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, BTreeSet<String>)> {
    std::thread::spawn(move || {
        let (mut samples, mut hashes) = (0, BTreeSet::new());
        while !stop.load(Ordering::Relaxed) {
            if let Ok(raw) = std::fs::read(&path) {
                samples += 1;
                hashes.insert(hex::encode(Sha256::digest(&raw)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (samples, hashes)
    })
}

async fn all_rollouts(addrs: &[String], codes: &Codes) -> Vec<pb::Rollout> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListRolloutsRequest {
            runtime: String::new(),
            page_size: 1000,
            page_token: page_token.clone(),
        };
        let page =
            call(addrs, codes, |channel| {
                let request = request.clone();
                async move {
                    DriftServiceClient::new(channel).list_rollouts(with_token(request, READER_TOKEN)).await
                }
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.rollouts);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn all_audit_events(addrs: &[String], codes: &Codes) -> Vec<pb::AuditEvent> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListAuditEventsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = call(addrs, codes, |channel| {
            let request = request.clone();
            async move {
                ControlServiceClient::new(channel).list_audit_events(with_token(request, READER_TOKEN)).await
            }
        })
        .await
        .unwrap()
        .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// The transitions of a rollout's state machine that the chaos driver can cause (a manual
/// rollback, the only way out of SUCCEEDED, is never asked for).
fn next_states(state: pb::RolloutState) -> &'static [pb::RolloutState] {
    use pb::RolloutState as S;
    match state {
        S::Pending => &[S::Applying, S::Succeeded, S::Failed],
        S::Applying => &[S::Verifying, S::Failed, S::RollingBack],
        S::Verifying => &[S::Succeeded, S::RollingBack, S::Failed],
        S::RollingBack => &[S::RolledBack, S::Failed],
        _ => &[],
    }
}

/// Whether `to` can follow `from` through zero or more transitions.
fn reachable(from: pb::RolloutState, to: pb::RolloutState) -> bool {
    let mut frontier = vec![from];
    let mut visited = BTreeSet::new();
    while let Some(state) = frontier.pop() {
        if state == to {
            return true;
        }
        if visited.insert(state as i32) {
            frontier.extend(next_states(state));
        }
    }
    false
}

/// Checks the states clients saw of one rollout, in the order they saw them (a client may miss
/// states in between, never see them out of order): each state must be reachable from the one
/// seen before it, so a state seen after a final one — or an earlier state after a later one
/// — is a violation.
fn seen_history_violation(id: &str, history: &[i32]) -> Option<String> {
    let states: Vec<pb::RolloutState> =
        history.iter().map(|s| pb::RolloutState::try_from(*s).unwrap_or_default()).collect();
    states
        .windows(2)
        .find(|pair| !reachable(pair[0], pair[1]))
        .map(|pair| format!("{id}: clients saw {:?} after {:?} (history {states:?})", pair[1], pair[0]))
}

#[test]
fn the_state_checker_refuses_a_history_clients_could_not_have_seen() {
    use pb::RolloutState as S;
    let ok = [S::Pending, S::Applying, S::Verifying, S::Succeeded].map(|s| s as i32);
    assert_eq!(seen_history_violation("ro-1", &ok), None);
    let skipped = [S::Pending, S::Succeeded].map(|s| s as i32);
    assert_eq!(seen_history_violation("ro-2", &skipped), None, "a poll may miss the states between");
    let flipped = [S::Pending, S::Verifying, S::Applying].map(|s| s as i32);
    assert!(seen_history_violation("ro-3", &flipped).is_some(), "VERIFYING then APPLYING runs backwards");
    let reopened = [S::Applying, S::Succeeded, S::Applying].map(|s| s as i32);
    assert!(seen_history_violation("ro-4", &reopened).is_some(), "a final state is final");
    let two_finals = [S::Applying, S::Failed, S::RolledBack].map(|s| s as i32);
    assert!(seen_history_violation("ro-5", &two_finals).is_some(), "one final state each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Postgres (JHF_WARP_TEST_DATABASE_URL) and spawns processes; CI runs it with --ignored"]
async fn three_replicas_under_sigkill_keep_every_invariant() {
    assert!(
        std::env::var("JHF_WARP_TEST_DATABASE_URL").is_ok(),
        "the chaos test runs on Postgres: set JHF_WARP_TEST_DATABASE_URL"
    );
    let chaos_secs: u64 =
        std::env::var("JHF_WARP_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let cluster = Arc::new(Cluster::new(
        dir.path().to_path_buf(),
        url,
        REPLICAS,
        vec![
            ("JHF_WARP_OBSERVE_INTERVAL", "1".into()),
            ("JHF_WARP_DRIFT_CONFIRM_SECS", "1".into()),
            ("JHF_WARP_RECONCILE_MODE", "heal".into()),
            ("JHF_WARP_RECONCILE_INTERVAL_SECS", "3".into()),
            ("JHF_WARP_RECONCILER_LEASE_SECS", "3".into()),
            ("JHF_WARP_RUNTIME_LEASE_SECS", "4".into()),
            ("JHF_WARP_SHUTDOWN_GRACE_SECS", "1".into()),
            ("JHF_WARP_FRESH_READ_MIN_INTERVAL_MS", "200".into()),
        ],
    ));
    // The first replica copies the fixture; the others start on the same copy.
    cluster.start(0);
    cluster.wait_ready_one(0).await;
    for index in 1..REPLICAS {
        cluster.start(index);
    }
    cluster.wait_ready().await;
    let config_path = dir.path().join("runtime/trio/state/openclaw.json");
    let initial_hash = hex::encode(Sha256::digest(std::fs::read(&config_path).unwrap()));

    let driver = Arc::new(Driver {
        addrs: cluster.addrs(),
        codes: Codes::default(),
        acked: Mutex::default(),
        last_generation: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        sequence: AtomicU64::new(0),
        seen: Mutex::default(),
    });
    let observed = call(&driver.addrs, &driver.codes, |channel| async move {
        TopologyServiceClient::new(channel)
            .get_topology(with_token(pb::GetTopologyRequest::default(), READER_TOKEN))
            .await
    })
    .await
    .unwrap()
    .into_inner()
    .topology
    .unwrap();

    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_config(config_path.clone(), sampling.clone());
    let (stale_tries, stale_accepted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut work = Vec::new();
    {
        let driver = driver.clone();
        work.push(tokio::spawn(async move { driver.desired_changes(observed).await }));
    }
    {
        let driver = driver.clone();
        work.push(tokio::spawn(async move { driver.rollouts().await }));
    }
    let mut contenders = Vec::new();
    for contender in 0..4 {
        let (driver, tries, accepted) = (driver.clone(), stale_tries.clone(), stale_accepted.clone());
        contenders.push(tokio::spawn(async move { driver.contend(contender, &tries, &accepted).await }));
    }

    // The killer.
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(chaos_secs) {
        tokio::time::sleep(Duration::from_millis(2500 + rand_index(2000) as u64)).await;
        let victim = rand_index(REPLICAS);
        cluster.kill(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(300 + rand_index(1200) as u64)).await;
        cluster.start(victim);
    }
    assert!(cluster.running().iter().all(|r| *r));
    driver.stop.store(true, Ordering::SeqCst);
    for task in work {
        task.await.unwrap();
    }
    let mut grants = Vec::new();
    for task in contenders {
        grants.extend(task.await.unwrap());
    }
    cluster.wait_ready().await;

    // Convergence. The desired topology flipped every few seconds, so its items are FLAPPING
    // and HEAL rightly leaves them alone: an operator's rollout of the last revision converges
    // the runtime (retried while the replicas finish what the chaos left).
    let last = driver.last_generation.load(Ordering::SeqCst) as i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut final_rollouts = 0;
    let converged = loop {
        let planned = call(&driver.addrs, &driver.codes, |channel| async move {
            let request = with_token(
                pb::PlanPatchRequest { runtime: String::new(), kind: pb::PlanKind::Apply.into() },
                READER_TOKEN,
            );
            DriftServiceClient::new(channel).plan_patch(request).await
        })
        .await;
        if let Err(status) = &planned {
            println!("final plan refused: {status:?}");
        }
        let plan = planned.ok().and_then(|p| p.into_inner().plan);
        let nothing_to_change =
            plan.as_ref().is_some_and(|p| p.operations.is_empty() && p.desired_generation == last);
        if let Some(plan) = plan
            && !plan.operations.is_empty()
        {
            let request_id = driver.id("final-rollout");
            let request = pb::CreateRolloutRequest {
                runtime: String::new(),
                plan_id: plan.id,
                dry_run: false,
                request_id: request_id.clone(),
                validate_only: false,
            };
            let created = call(&driver.addrs, &driver.codes, |channel| {
                let request = request.clone();
                async move {
                    DriftServiceClient::new(channel).create_rollout(with_token(request, OPERATOR_TOKEN)).await
                }
            })
            .await;
            if created.is_ok() {
                driver.ack("jhf.warp.v1.DriftService/CreateRollout", &request_id);
                final_rollouts += 1;
            }
        }
        let summary = call(&driver.addrs, &driver.codes, |channel| async move {
            DriftServiceClient::new(channel)
                .get_drift_summary(with_token(
                    pb::GetDriftSummaryRequest { runtime: String::new() },
                    READER_TOKEN,
                ))
                .await
        })
        .await
        .unwrap()
        .into_inner();
        let rollouts = all_rollouts(&driver.addrs, &driver.codes).await;
        let unfinished: Vec<&pb::Rollout> = rollouts
            .iter()
            .filter(|r| {
                matches!(
                    pb::RolloutState::try_from(r.state),
                    Ok(pb::RolloutState::Pending
                        | pb::RolloutState::Applying
                        | pb::RolloutState::Verifying
                        | pb::RolloutState::RollingBack)
                )
            })
            .collect();
        if nothing_to_change && summary.desired_generation == last && unfinished.is_empty() {
            break summary;
        }
        if Instant::now() > deadline {
            let runs = call(&driver.addrs, &driver.codes, |channel| async move {
                let request = pb::ListSchedulerRunsRequest {
                    runtime: String::new(),
                    page_size: 5,
                    page_token: String::new(),
                };
                ControlServiceClient::new(channel)
                    .list_scheduler_runs(with_token(request, READER_TOKEN))
                    .await
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
            let recent: Vec<String> = runs
                .iter()
                .map(|r| format!("{} {} {}: {}", r.cycle_id, r.mode, r.state, r.message))
                .collect();
            let items = call(&driver.addrs, &driver.codes, |channel| async move {
                let request = pb::ListDriftItemsRequest::default();
                DriftServiceClient::new(channel).list_drift_items(with_token(request, READER_TOKEN)).await
            })
            .await
            .unwrap()
            .into_inner()
            .items;
            let items: Vec<String> =
                items.iter().map(|i| format!("{} {:?}", i.key, pb::DriftState::try_from(i.state))).collect();
            let logs = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"));
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let warnings: Vec<&str> =
                    text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
                println!(
                    "{}: {} warnings; last: {:?}",
                    log.display(),
                    warnings.len(),
                    warnings.iter().rev().take(3).collect::<Vec<_>>()
                );
            }
            let newest: Vec<String> = rollouts
                .iter()
                .take(4)
                .map(|r| {
                    format!(
                        "{} {:?} {:?} {:?}",
                        r.id,
                        pb::RolloutState::try_from(r.state),
                        r.error,
                        r.steps.iter().map(|s| &s.message).collect::<Vec<_>>()
                    )
                })
                .collect();
            println!("newest rollouts: {newest:#?}");
            panic!(
                "no convergence to generation {last}: summary {summary:?}; unfinished rollouts {:?}; runs {recent:?}; items {items:?}",
                unfinished
                    .iter()
                    .map(|r| (&r.id, r.state, r.steps.last().map(|s| &s.message)))
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    sampling.store(true, Ordering::SeqCst);
    let (samples, sampled) = sampler.join().unwrap();

    // Rollouts: one final state each, along the state machine — as clients saw them, and in
    // the final answer of every rollout the driver did not see to its end.
    let rollouts = all_rollouts(&driver.addrs, &driver.codes).await;
    let mut histories = std::mem::take(&mut *driver.seen.lock().unwrap());
    for rollout in &rollouts {
        let history = histories.entry(rollout.id.clone()).or_default();
        if history.last() != Some(&rollout.state) {
            history.push(rollout.state);
        }
    }
    let violations: Vec<String> =
        histories.iter().filter_map(|(id, history)| seen_history_violation(id, history)).collect();
    println!(
        "rollout states seen by clients: {} rollouts, {} state changes observed",
        histories.len(),
        histories.values().map(|h| h.len().saturating_sub(1)).sum::<usize>()
    );
    let mut known: BTreeSet<String> = BTreeSet::from([initial_hash]);
    for rollout in &rollouts {
        known.insert(rollout.base_hash.clone());
        if !rollout.target_hash.is_empty() {
            known.insert(rollout.target_hash.clone());
        }
    }
    let unexplained: Vec<&String> = sampled.iter().filter(|hash| !known.contains(*hash)).collect();
    let by_state = rollouts.iter().fold(BTreeMap::<String, usize>::new(), |mut acc, r| {
        *acc.entry(format!("{:?}", pb::RolloutState::try_from(r.state).unwrap_or_default())).or_default() +=
            1;
        acc
    });

    // Audit: exactly one event per acknowledged mutation, and an intact chain.
    let events = all_audit_events(&driver.addrs, &driver.codes).await;
    let mut per_call: BTreeMap<(String, String), usize> = BTreeMap::new();
    for event in &events {
        if event.outcome == "OK" && !event.request_id.is_empty() {
            *per_call.entry((event.method.clone(), event.request_id.clone())).or_default() += 1;
        }
    }
    let acked = driver.acked.lock().unwrap().clone();
    let audit_mismatches: Vec<String> = acked
        .iter()
        .filter(|key| per_call.get(*key).copied().unwrap_or(0) != 1)
        .map(|(method, id)| {
            format!(
                "{method} {id}: {} events",
                per_call.get(&(method.clone(), id.clone())).copied().unwrap_or(0)
            )
        })
        .collect();
    let verify = call(&driver.addrs, &driver.codes, |channel| async move {
        ControlServiceClient::new(channel)
            .verify_audit_chain(with_token(pb::VerifyAuditChainRequest {}, READER_TOKEN))
            .await
    })
    .await
    .unwrap()
    .into_inner();

    // Leases: never two holders at once, no stale token accepted. A release whose answer was
    // lost ended when the audit log says it committed.
    let released_at: BTreeMap<i64, i64> = events
        .iter()
        .filter(|e| {
            e.resource == "lease/job/chaos" && e.summary.starts_with("release lease job/chaos: holder nobody")
        })
        .filter_map(|e| {
            let token = e.summary.rsplit("fencing token ").next()?.parse().ok()?;
            Some((token, time(&e.time)))
        })
        .collect();
    let mut settled_from_audit = 0;
    for grant in grants.iter_mut().filter(|g| !g.release_known) {
        if let Some(at) = released_at.get(&grant.token) {
            grant.end = grant.end.min(*at);
            settled_from_audit += 1;
        }
    }
    let mut by_token: BTreeMap<i64, Grant> = BTreeMap::new();
    let mut token_reissued = 0;
    for grant in grants {
        let entry = by_token.entry(grant.token).or_insert_with(|| grant.clone());
        if entry.holder != grant.holder {
            token_reissued += 1;
        }
        entry.start = entry.start.min(grant.start);
        entry.end = entry.end.max(grant.end);
    }
    let ordered: Vec<&Grant> = by_token.values().collect();
    let overlapping: Vec<String> = ordered
        .windows(2)
        .filter(|pair| pair[1].start < pair[0].end)
        .map(|pair| format!("{:?} then {:?}", pair[0], pair[1]))
        .collect();
    let overlaps = overlapping.len();

    println!("chaos: {chaos_secs} s, {REPLICAS} replicas, {kills} SIGKILLs and restarts");
    println!("  calls by answer: {}", driver.codes.summary());
    println!("  rollouts: {} {by_state:?}; state-machine violations: {}", rollouts.len(), violations.len());
    for failed in rollouts.iter().filter(|r| r.state == pb::RolloutState::Failed as i32) {
        println!("    failed {}: {}", failed.id, failed.error);
    }
    println!(
        "  config samples: {samples}, distinct hashes: {}, not a rollout's base or target: {}",
        sampled.len(),
        unexplained.len()
    );
    println!(
        "  audit: {} events, {} acknowledged mutations, {} without exactly one event; chain intact: {} ({} checked)",
        events.len(),
        acked.len(),
        audit_mismatches.len(),
        verify.intact,
        verify.events_checked
    );
    println!(
        "  lease job/chaos: {} grants ({settled_from_audit} releases settled from the audit log), {overlaps} overlapping holders, {token_reissued} tokens issued twice, {} stale-token writes accepted of {} tried",
        ordered.len(),
        stale_accepted.load(Ordering::Relaxed),
        stale_tries.load(Ordering::Relaxed)
    );
    println!(
        "  converged after {final_rollouts} final rollout(s): a plan for desired generation {} (the last acknowledged: {last}) changes nothing; config hash {}",
        converged.desired_generation, converged.config_hash
    );
    assert!(kills >= 5, "the chaos killed replicas");
    assert!(violations.is_empty(), "{violations:?}");
    assert!(unexplained.is_empty(), "half-applied or unexplained config: {unexplained:?}");
    assert!(audit_mismatches.is_empty(), "{audit_mismatches:?}");
    assert!(verify.intact, "{}", verify.reason);
    assert_eq!(overlaps, 0, "two holders at once: {overlapping:?}");
    assert_eq!(token_reissued, 0);
    assert_eq!(stale_accepted.load(Ordering::Relaxed), 0);
    assert_eq!(
        driver.codes.count(Code::Internal),
        0,
        "a call was answered INTERNAL: {}",
        driver.codes.summary()
    );
    assert!(
        acked.len() > 10 && rollouts.len() > 3,
        "the driver made progress: {} mutations, {} rollouts",
        acked.len(),
        rollouts.len()
    );
}

impl Cluster {
    async fn wait_ready_one(&self, index: usize) {
        let url = format!("http://{}/ready", self.addrs()[index]);
        eventually_within("the first replica to be ready", Duration::from_secs(60), async || {
            (reqwest::get(&url).await.map(|r| r.status().as_u16()).unwrap_or(0) == 200).then_some(())
        })
        .await;
    }
}

fn pg_ctl(env: &str, verb: &str) {
    let command = std::env::var(env).unwrap_or_else(|_| {
        let versions =
            std::fs::read_dir("/etc/postgresql").expect("a local Postgres cluster (/etc/postgresql)");
        let version = versions
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .max()
            .unwrap();
        format!("pg_ctlcluster --skip-systemctl-redirect {version} main {verb}")
    });
    let status =
        Command::new("sh").args(["-c", &command]).status().expect("run the Postgres control command");
    assert!(status.success(), "`{command}` failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops and starts the local Postgres; CI runs it with --ignored"]
async fn a_postgres_outage_under_load_answers_unavailable_and_loses_nothing_acknowledged() {
    assert!(
        std::env::var("JHF_WARP_TEST_DATABASE_URL").is_ok(),
        "runs on Postgres: set JHF_WARP_TEST_DATABASE_URL"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let cluster = Arc::new(Cluster::new(
        dir.path().to_path_buf(),
        url,
        2,
        vec![("JHF_WARP_OBSERVE_INTERVAL", "3600".into())],
    ));
    cluster.start(0);
    cluster.wait_ready_one(0).await;
    cluster.start(1);
    cluster.wait_ready().await;
    let addrs = cluster.addrs();
    let codes = Arc::new(Codes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();

    // Load: desired revisions, one after the other, each answered or refused.
    let writer = {
        let (addrs, codes, stop, acked) = (addrs.clone(), codes.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0;
            let mut etag = String::new();
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let request_id = format!("outage-{n}");
                let mut topology = pb::Topology::default();
                topology.nodes.push(pb::TopologyNode {
                    agent_id: format!("a{}", n % 7),
                    role: "worker".into(),
                    ..Default::default()
                });
                let request = pb::PutDesiredTopologyRequest {
                    runtime: String::new(),
                    topology: Some(topology),
                    etag: etag.clone(),
                    request_id: request_id.clone(),
                    validate_only: false,
                };
                // No retries here: every answer is what a caller would see.
                let addr = &addrs[n % addrs.len()];
                let result = match Channel::from_shared(format!("http://{addr}")).unwrap().connect().await {
                    Ok(channel) => {
                        TopologyServiceClient::new(channel)
                            .put_desired_topology(with_token(request, OPERATOR_TOKEN))
                            .await
                    }
                    Err(_) => Err(Status::unavailable("not listening")),
                };
                match result {
                    Ok(answer) => {
                        codes.saw(Code::Ok);
                        let desired = answer.into_inner().desired.unwrap();
                        etag = desired.etag.clone();
                        acked.lock().unwrap().push((desired.generation, request_id));
                    }
                    Err(status) => {
                        codes.saw(status.code());
                        if status.code() == Code::FailedPrecondition {
                            etag = String::new();
                            // Re-read the current etag through any replica once the store is back.
                            let current = call(&addrs, &Codes::default(), |channel| async move {
                                TopologyServiceClient::new(channel)
                                    .get_desired_topology(with_token(
                                        pb::GetDesiredTopologyRequest {
                                            runtime: String::new(),
                                            generation: 0,
                                        },
                                        READER_TOKEN,
                                    ))
                                    .await
                            })
                            .await;
                            if let Ok(current) = current {
                                etag = current.into_inner().desired.map(|d| d.etag).unwrap_or_default();
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let ready_seen: Arc<Mutex<BTreeSet<u16>>> = Arc::default();
    let prober = {
        let (addr, stop, seen) = (addrs[0].clone(), stop.clone(), ready_seen.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = reqwest::get(format!("http://{addr}/ready"))
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                seen.lock().unwrap().insert(status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_outage = acked.lock().unwrap().len();
    pg_ctl("JHF_WARP_CHAOS_PG_STOP", "stop");
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg_ctl("JHF_WARP_CHAOS_PG_START", "start");
    cluster.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    prober.await.unwrap();

    // Every acknowledged revision is stored, with its audit event.
    let acked = acked.lock().unwrap().clone();
    let mut lost = Vec::new();
    for (generation, request_id) in &acked {
        let stored = call(&addrs, &Codes::default(), |channel| async move {
            TopologyServiceClient::new(channel)
                .get_desired_topology(with_token(
                    pb::GetDesiredTopologyRequest { runtime: String::new(), generation: *generation },
                    READER_TOKEN,
                ))
                .await
        })
        .await;
        if stored.is_err() {
            lost.push(format!("generation {generation} ({request_id})"));
        }
    }
    let events = all_audit_events(&addrs, &Codes::default()).await;
    let audited: BTreeSet<&str> = events.iter().map(|e| e.request_id.as_str()).collect();
    let unaudited = acked.iter().filter(|(_, id)| !audited.contains(id.as_str())).count();
    let ready_seen = ready_seen.lock().unwrap().clone();
    println!("postgres outage: answers {}; /ready statuses seen {ready_seen:?}", codes.summary());
    println!(
        "  {} revisions acknowledged ({before_outage} before the outage), {} lost, {unaudited} without an audit event",
        acked.len(),
        lost.len()
    );
    assert_eq!(codes.count(Code::Internal), 0, "INTERNAL during the outage: {}", codes.summary());
    assert!(codes.count(Code::Unavailable) > 0, "the outage was seen as UNAVAILABLE: {}", codes.summary());
    assert!(
        ready_seen.contains(&503) && ready_seen.contains(&200),
        "/ready went 503 and back: {ready_seen:?}"
    );
    assert!(lost.is_empty(), "{lost:?}");
    assert_eq!(unaudited, 0);
    assert!(acked.len() > before_outage, "writes resumed after the outage");
}
