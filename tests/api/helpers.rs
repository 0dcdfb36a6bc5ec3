//! `spawn_app()` and friends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jhf_warp::app::{App, Hooks, StartupError};
use jhf_warp::config::ServeArgs;
use jhf_warp::control::clock::{Clock, ManualClock, SystemClock};
use jhf_warp::control::failpoints::Failpoints;
use jhf_warp::pb::v1::control_service_client::ControlServiceClient;
use jhf_warp::pb::v1::drift_service_client::DriftServiceClient;
use jhf_warp::pb::v1::meta_service_client::MetaServiceClient;
use jhf_warp::pb::v1::topology_service_client::TopologyServiceClient;
use sea_orm::ConnectionTrait;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

pub const OPERATOR_TOKEN: &str = "operator-test-token";
pub const READER_TOKEN: &str = "reader-test-token";
pub const AGENT_TOKEN: &str = "control-agent-test-token";
/// A second operator (`op2`), for what is scoped to the caller.
pub const OPERATOR2_TOKEN: &str = "operator-2-test-token";

/// Control-agent principals every test server knows besides `agent` (a lease is held by its
/// caller, so tests that contend need several). Their tokens come from [`agent_token`].
pub const CONTROL_AGENTS: &[&str] = &["a", "b", "c", "x", "lead", "research", "writer", "agent-a", "agent-b"];
/// Contenders of the lease contention tests (`contender-<n>`).
pub const CONTENDERS: usize = 16;

/// Returns the token of control-agent principal `name`.
pub fn agent_token(name: &str) -> String {
    format!("{name}-control-agent-test-token")
}

/// The `--tokens` value of test servers: operator, reader, control agents.
pub fn test_tokens() -> String {
    let mut tokens = format!(
        "op:operator:{OPERATOR_TOKEN},op2:operator:{OPERATOR2_TOKEN},reader:reader:{READER_TOKEN},agent:control-agent:{AGENT_TOKEN}"
    );
    let contenders = (0..CONTENDERS).map(|n| format!("contender-{n}"));
    for name in CONTROL_AGENTS.iter().map(|n| n.to_string()).chain(contenders) {
        tokens.push_str(&format!(",{name}:control-agent:{}", agent_token(&name)));
    }
    tokens
}

/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `check` returns a value (polling), and returns it; fails the test after
/// `within` with `what` in the message. The one way tests wait for the system.
pub async fn eventually_within<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Says that a test's environment is missing (a real CLI, an sshd, ...). On a bare machine the
/// test then passes without running (`cargo test` needs only the toolchain); under `.ci/run`
/// (`JHF_WARP_CI=1`), which installs everything, a missing environment fails the test.
pub fn left_out(what: &str) {
    if std::env::var_os("JHF_WARP_CI").is_some() {
        panic!("LEFT OUT under CI (JHF_WARP_CI is set, so everything should be installed): {what}");
    }
    eprintln!("LEFT OUT: {what}");
}

/// [`eventually_within`] the standard [`WAIT`].
pub async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(what, WAIT, check).await
}

/// Asserts that `check` holds at every poll during `window`: the only way to show that
/// something does *not* happen (an absence needs an observation window, not a sleep).
pub async fn consistently(what: &str, window: Duration, mut check: impl AsyncFnMut() -> bool) {
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        assert!(check().await, "{what} stopped holding");
        tokio::time::sleep(POLL).await;
    }
}

static TRACING: Once = Once::new();

fn init_test_logging() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,jhf_warp=debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// The ErrorInfo reason of a refusal ("" when it carries none).
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// What a test app is built from.
#[derive(Clone)]
pub struct AppOptions {
    pub fixture: &'static str,
    pub observation_history: u64,
    /// Keep the test's data dir and database across a restart.
    pub reuse: Option<(PathBuf, String)>,
    /// A clock the test moves; the system clock when `None`.
    pub clock: Option<Arc<ManualClock>>,
    /// Seconds between periodic observations; tests observe on demand, so the default is long.
    pub observe_interval_secs: u64,
    /// Failpoints to enable.
    pub failpoints: Vec<&'static str>,
    /// A `--runtime` address other than `fixture:<fixture>` (local or ssh runtimes).
    pub runtime: Option<String>,
    /// `--openclaw-bin` for local and ssh runtimes.
    pub openclaw_bin: Option<String>,
    /// `--ssh-identity` and `--ssh-known-hosts`.
    pub ssh_files: Option<(PathBuf, PathBuf)>,
    /// A database-clock skew shared with the test (and with other replicas).
    pub db_clock_skew_ms: Option<Arc<AtomicI64>>,
    /// Take part in reconcile leader election: (replica id, lease seconds, interval seconds).
    /// Off by default, with the schedule paused, so other tests' lease and audit counts hold.
    pub reconcile: Option<(&'static str, u64, u64)>,
    /// Leave the schedule running although no replica takes part in leader election: the
    /// loop is stalled from the start (watchdog and health tests).
    pub stalled_schedule: bool,
    /// Minimum milliseconds between FRESH runtime reads; 0 by default, because most tests edit
    /// the runtime and read it back at once (coalescing has its own tests).
    pub fresh_read_min_interval_ms: u64,
    /// `--max-in-flight`.
    pub max_in_flight: u32,
    /// `--tls-cert`, `--tls-key` and `--tls-client-ca` (health is then not awaited: the
    /// test's own TLS client knows the CA).
    pub tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    /// `--tls-reload-secs`.
    pub tls_reload_secs: u64,
    /// `--retention-sweep-secs`.
    pub retention_sweep_secs: u64,
    /// `--replica-id` (default: generated).
    pub replica_id: Option<&'static str>,
    /// The Gateway's shared token (gateway: runtimes).
    pub gateway_token: Option<String>,
    /// `--runtimes-file` (a fleet; `fixture`/`runtime` are then unused).
    pub runtimes_file: Option<PathBuf>,
    /// `--event-sinks-file`; with it, retries are fast (10 ms doubling to 100 ms, 30 attempts,
    /// 300 ms per attempt) so delivery tests need no long waits.
    pub event_sinks_file: Option<PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            fixture: "trio",
            observation_history: 100,
            reuse: None,
            clock: None,
            observe_interval_secs: 3600,
            failpoints: Vec::new(),
            runtime: None,
            openclaw_bin: None,
            ssh_files: None,
            db_clock_skew_ms: None,
            reconcile: None,
            stalled_schedule: false,
            fresh_read_min_interval_ms: 0,
            max_in_flight: 256,
            tls: None,
            tls_reload_secs: 10,
            retention_sweep_secs: 3600,
            replica_id: None,
            gateway_token: None,
            event_sinks_file: None,
            runtimes_file: None,
        }
    }
}

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Milliseconds added to this server's database clock.
    pub db_clock_skew_ms: Arc<AtomicI64>,
    /// This server's failpoints (tests may enable more after start).
    pub failpoints: Failpoints,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), StartupError>>>,
    _temp: Option<tempfile::TempDir>,
}

impl TestApp {
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    pub async fn control(&self) -> ControlServiceClient<Channel> {
        ControlServiceClient::new(self.channel().await)
    }

    /// Moves this server's database clock forward.
    pub fn advance_db_clock(&self, seconds: i64) {
        self.db_clock_skew_ms.fetch_add(seconds * 1000, Ordering::SeqCst);
    }

    pub async fn drift(&self) -> DriftServiceClient<Channel> {
        DriftServiceClient::new(self.channel().await)
    }

    pub async fn topology(&self) -> TopologyServiceClient<Channel> {
        TopologyServiceClient::new(self.channel().await)
    }

    pub async fn meta(&self) -> MetaServiceClient<Channel> {
        MetaServiceClient::new(self.channel().await)
    }

    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel().await)
    }

    /// The state dir of the fixture copy this server reads.
    pub fn runtime_state_dir(&self, fixture: &str) -> PathBuf {
        self.data_dir.join("runtime").join(fixture).join("state")
    }

    /// Returns the options that restart this server on the same data dir and database.
    pub fn restart_options(&self, fixture: &'static str) -> AppOptions {
        AppOptions {
            fixture,
            reuse: Some((self.data_dir.clone(), self.database_url.clone())),
            ..AppOptions::default()
        }
    }

    /// Rewrites the config of the fixture copy this server reads.
    pub fn edit_runtime_config(&self, fixture: &str, edit: impl FnOnce(String) -> String) {
        let path = self.runtime_state_dir(fixture).join("openclaw.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
    }

    /// Begins shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }

    /// Shuts down and waits until the server has stopped; the temp dir is handed back so a
    /// restarted server can reuse it.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        self.begin_shutdown();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(WAIT, handle).await.expect("server stops in time").unwrap().unwrap();
        }
        self._temp.take()
    }

    /// Waits until the health service `service` (`""` = overall) reports `wanted`.
    pub async fn wait_for_service_health(&self, service: &str, wanted: ServingStatus) {
        let mut client = self.health().await;
        eventually(&format!("health {service:?} to become {wanted:?}"), async || {
            let status = client
                .check(HealthCheckRequest { service: service.to_owned() })
                .await
                .map(|r| r.into_inner().status)
                .unwrap_or_default();
            (status == wanted as i32).then_some(())
        })
        .await
    }

    /// Waits until `""` reports the wanted status.
    pub async fn wait_for_health(&self, wanted: ServingStatus) {
        self.wait_for_service_health("", wanted).await
    }
}

/// Starts the server on the `trio` fixture and waits until it is ready.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Starts a server on the given fixture and waits until it is ready.
pub async fn spawn_ready_app(fixture: &'static str) -> TestApp {
    spawn_app_with(AppOptions { fixture, ..AppOptions::default() }).await
}

/// Starts a server and waits until it is SERVING (a TLS server is serving once built).
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let tls = options.tls.is_some();
    let app = spawn_app_unready(options, |_| {}).await;
    if !tls {
        app.wait_for_health(ServingStatus::Serving).await;
    }
    app
}

/// Starts a server without waiting for readiness; `prepare` may change the data dir first
/// (the fixture copy is made on first start, so tests can pre-create it).
pub async fn spawn_app_unready(options: AppOptions, prepare: impl FnOnce(&Path)) -> TestApp {
    init_test_logging();
    let (temp, data_dir, database_url) = match options.reuse {
        Some((data_dir, url)) => (None, data_dir, url),
        None => {
            let temp = tempfile::tempdir().unwrap();
            let data_dir = temp.path().to_path_buf();
            let url = fresh_database_url(&data_dir).await;
            (Some(temp), data_dir, url)
        }
    };
    prepare(&data_dir);
    let mut args = ServeArgs::from_env().unwrap();
    args.store.data_dir = data_dir.clone();
    args.store.database_url = Some(database_url.clone());
    args.listen = "127.0.0.1:0".parse().unwrap();
    args.runtime =
        options.runtime.clone().unwrap_or_else(|| format!("fixture:{}", options.fixture)).parse().unwrap();
    if let Some(bin) = &options.openclaw_bin {
        args.openclaw_bin = bin.clone();
        // The real CLI starts Node for every call; on a loaded 2-core CI machine one
        // observation (several calls, over SSH) can take longer than the 10 s default.
        args.runtime_timeout_secs = 60;
    }
    if let Some(token) = &options.gateway_token {
        args.gateway_token = Some(token.clone());
        args.runtime_timeout_secs = 30;
    }
    if let Some((identity, known_hosts)) = &options.ssh_files {
        args.ssh_identity = Some(identity.clone());
        args.ssh_known_hosts = Some(known_hosts.clone());
    }
    args.fixtures_dir = Some(fixtures_dir());
    args.token_file = None;
    args.tokens = Some(test_tokens());
    args.observation_history = options.observation_history;
    args.shutdown_grace_secs = 2;
    args.serving.fresh_read_min_interval_ms = options.fresh_read_min_interval_ms;
    args.serving.max_in_flight = options.max_in_flight;
    if let Some((cert, key, client_ca)) = &options.tls {
        args.tls.tls_cert = Some(cert.clone());
        args.tls.tls_key = Some(key.clone());
        args.tls.tls_client_ca = client_ca.clone();
    }
    args.tls.tls_reload_secs = options.tls_reload_secs;
    args.retention_sweep_secs = options.retention_sweep_secs;
    if let Some(replica) = options.replica_id {
        args.reconcile.replica_id = Some(replica.to_owned());
    }
    args.observe_interval_secs = options.observe_interval_secs;
    args.runtimes_file = options.runtimes_file.clone();
    if let Some(sinks) = &options.event_sinks_file {
        args.events.event_sinks_file = Some(sinks.clone());
        args.events.event_retry_initial_ms = 10;
        args.events.event_retry_max_ms = 100;
        args.events.event_max_attempts = 30;
        args.events.event_attempt_timeout_ms = 300;
    }
    let clock: Arc<dyn Clock> = match options.clock {
        Some(manual) => manual,
        None => Arc::new(SystemClock),
    };
    let failpoints = Failpoints::default();
    for name in &options.failpoints {
        failpoints.enable(name);
    }
    let db_clock_skew_ms = options.db_clock_skew_ms.clone().unwrap_or_default();
    match options.reconcile {
        Some((replica, lease_secs, interval_secs)) => {
            args.reconcile.replica_id = Some(replica.to_owned());
            args.reconcile.reconciler_lease_secs = lease_secs;
            args.reconcile.reconcile_interval_secs = interval_secs;
            args.reconcile.reconcile_paused = false;
        }
        None => args.reconcile.reconcile_paused = !options.stalled_schedule,
    }
    let hooks = Hooks {
        clock,
        failpoints: failpoints.clone(),
        db_clock_skew_ms: db_clock_skew_ms.clone(),
        reconcile_leader: options.reconcile.is_some(),
    };
    let app = App::build_with(args, hooks).await.expect("app builds");
    let addr = app.local_addr();
    let (shutdown, on_shutdown) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = on_shutdown.await;
    }));
    TestApp {
        addr,
        data_dir,
        database_url,
        db_clock_skew_ms,
        failpoints,
        shutdown: Some(shutdown),
        handle: Some(handle),
        _temp: temp,
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/openclaw")
}

/// The `/metrics` text at `url` (a full URL), read with the READ token.
pub async fn scrape_metrics(url: &str) -> String {
    let response = reqwest::Client::new().get(url).bearer_auth(READER_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

/// A fresh database: a SQLite file in the data dir, or a new Postgres database on the
/// server named by `JHF_WARP_TEST_DATABASE_URL`.
pub async fn fresh_database_url(data_dir: &Path) -> String {
    let Ok(base) = std::env::var("JHF_WARP_TEST_DATABASE_URL") else {
        return format!("sqlite://{}?mode=rwc", data_dir.join("warp.db").display());
    };
    let name = format!("jhf_warp_test_{}", hex::encode(rand_bytes()));
    let admin = sea_orm::Database::connect(&base).await.expect("test postgres reachable");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    admin.close().await.ok();
    let (prefix, _) =
        base.split('?').next().unwrap_or(&base).rsplit_once('/').expect("database url has a path");
    format!("{prefix}/{name}")
}

fn rand_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

/// Wraps a message with a bearer token.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
