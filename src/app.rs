//! Building and running the service: `App::build` binds the listener (port 0 allowed),
//! connects and migrates the store, prepares the runtime adapter and wires the transports;
//! `run_until_stopped` serves until the shutdown future resolves, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tracing::Instrument;

use crate::auth::{AuthSetupError, TokenStore};
use crate::config::ServeArgs;
use crate::control::clock::{Clock, SystemClock};
use crate::control::events::EventBus;
use crate::control::failpoints::Failpoints;
use crate::control::{
    AuditService, Classifier, DelegationService, DesiredTopologyService, DispatchService, DriftMonitor,
    LeaderSettings, LearningService, LeaseService, MetricsService, ObservationService, ObserverSettings,
    PersistentService, Readiness, ReconcileLeader, ReconcileService, RolloutService, ScheduleService,
    SetupService, WatchdogService,
};
use crate::domain::page_token::PageTokenCodec;
use crate::domain::watchdog::WatchdogThresholds;
use crate::grpc::{
    self, ControlServiceImpl, DriftServiceImpl, MetaServiceImpl, OrchestrationServiceImpl,
    TopologyServiceImpl, auth::AuthState, descriptor,
};
use crate::pb::v1::control_service_server::ControlServiceServer;
use crate::pb::v1::drift_service_server::DriftServiceServer;
use crate::pb::v1::orchestration_service_server::OrchestrationServiceServer;
use crate::pb::{
    self, v1::meta_service_server::MetaServiceServer, v1::topology_service_server::TopologyServiceServer,
};
use crate::runtime::{
    CliRuntime, FixtureRuntime, LocalShell, RuntimeAdapter, RuntimeAddress, RuntimeError, RuntimeMode,
    SshShell,
};
use crate::store::{Store, StoreError};

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("cannot read the rules file {path}: {source}")]
    RulesFile { path: PathBuf, source: std::io::Error },
    #[error("identity registry {path}: {detail}")]
    IdentityRegistry { path: PathBuf, detail: String },
    #[error("rules file {path}: {source}")]
    Rules { path: PathBuf, source: crate::domain::classify::RulesError },
    #[error("api descriptor: {0}")]
    Descriptor(#[from] descriptor::DescriptorError),
    #[error("reflection setup failed: {0}")]
    Reflection(String),
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built, not yet running service.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    readiness: Readiness,
    health: HealthReporter,
    observations: ObservationService,
    store: Store,
    generated_token_path: Option<PathBuf>,
    shutdown_grace: Duration,
    observe_interval: Duration,
    stop: CancellationToken,
    rollouts: RolloutService,
    watchdog: WatchdogService,
    watchdog_interval: Duration,
    leader: Option<ReconcileLeader>,
}

/// What tests may inject into an [`App`].
#[derive(Clone)]
pub struct Hooks {
    /// Where the application reads time.
    pub clock: Arc<dyn Clock>,
    /// Enabled failpoints (none in production).
    pub failpoints: Failpoints,
    /// Milliseconds added to the database clock (lease tests move time with it).
    pub db_clock_skew_ms: Arc<AtomicI64>,
    /// Whether this replica takes part in reconcile leader election (tests that count leases
    /// or audit events switch it off).
    pub reconcile_leader: bool,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            failpoints: Failpoints::default(),
            db_clock_skew_ms: Arc::default(),
            reconcile_leader: true,
        }
    }
}

impl App {
    /// Prepares everything the service needs; nothing is served until `run_until_stopped`.
    pub async fn build(args: ServeArgs) -> Result<Self, StartupError> {
        Self::build_with(args, Hooks::default()).await
    }

    /// Like [`App::build`], with test hooks (a clock tests drive, failpoints).
    pub async fn build_with(args: ServeArgs, hooks: Hooks) -> Result<Self, StartupError> {
        let Hooks { clock, failpoints, db_clock_skew_ms, reconcile_leader } = hooks;
        let data_dir = args.store.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .map_err(|source| StartupError::DataDir { path: data_dir.clone(), source })?;
        let methods = descriptor::classified_methods()?;
        let classifier = Classifier::new(Arc::new(load_rules(args.rules.as_deref())?));
        let identity_registry = load_identity_registry(args.identity_registry.as_deref())?;
        let (tokens, generated_token_path) =
            TokenStore::load(args.token_file.as_deref(), args.tokens.as_deref(), &data_dir)?;
        if let Some(path) = &generated_token_path {
            tracing::info!(path = %path.display(), "no tokens configured; operator token is in this file");
        }
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: args.listen, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartupError::Bind { addr: args.listen, source })?;

        let runtime = prepare_runtime(&args, &data_dir).await?;
        let mut warnings = standing_warnings(&args.runtime, runtime.as_ref());
        if identity_registry.is_none() {
            warnings.push(
                "no identity registry configured (--identity-registry): business links of persistent agents are checked for syntax only".to_owned(),
            );
        }
        let readiness = Readiness::new(warnings);
        let store = Store::connect(&args.store.database_url()).await?.with_clock_skew(db_clock_skew_ms);
        store.migrate().await?;
        readiness.set_store(true, format!("migrated ({})", store.backend_name()));
        let page_key = store.server_secret("page_token", random_hex()).await?;
        let page_tokens = PageTokenCodec::new(page_key.into_bytes());
        let events = EventBus::default();
        let stop = CancellationToken::new();

        let settings = ObserverSettings {
            history_limit: args.observation_history,
            runtime_timeout: Duration::from_secs(args.runtime_timeout_secs),
            tracker: args.drift.tracker_config(),
        };
        let observations = ObservationService::new(
            runtime,
            store.clone(),
            readiness.clone(),
            page_tokens.clone(),
            settings,
            clock.clone(),
            events.clone(),
        );
        let desired = DesiredTopologyService::new(
            store.clone(),
            observations.clone(),
            clock.clone(),
            events.clone(),
            page_tokens.clone(),
        );
        let drift = DriftMonitor::new(
            store.clone(),
            observations.clone(),
            clock.clone(),
            events.clone(),
            page_tokens.clone(),
        );
        let leases = LeaseService::new(store.clone(), page_tokens.clone());
        let audit = AuditService::new(store.clone(), page_tokens.clone());
        let delegations =
            DelegationService::new(store.clone(), observations.clone(), clock.clone(), page_tokens.clone());
        let schedules = ScheduleService::new(
            store.clone(),
            observations.runtime_address().to_owned(),
            args.reconcile.default_schedule(),
            clock.clone(),
        );
        let lease_secs = args.reconcile.reconciler_lease_secs as i64;
        let watchdog = WatchdogService::new(
            store.clone(),
            observations.clone(),
            readiness.clone(),
            clock.clone(),
            WatchdogThresholds {
                observation_overdue: chrono::TimeDelta::seconds(
                    3 * args.observe_interval_secs.min(86_400) as i64,
                ),
                ..WatchdogThresholds::default()
            },
            schedules.clone(),
            lease_secs,
        );
        let rollouts = RolloutService::new(
            observations.runtime(),
            store.clone(),
            observations.clone(),
            clock.clone(),
            events,
            page_tokens.clone(),
            failpoints,
        );
        let setup = SetupService::new(
            store.clone(),
            classifier.clone(),
            desired.clone(),
            rollouts.clone(),
            observations.clone(),
            clock.clone(),
            chrono::TimeDelta::seconds(args.setup_preview_ttl_secs.min(7 * 86_400) as i64),
        );
        let persistent = PersistentService::new(
            store.clone(),
            clock.clone(),
            page_tokens.clone(),
            identity_registry.map(Arc::new),
        );
        let learning = LearningService::new(
            store.clone(),
            clock.clone(),
            page_tokens.clone(),
            persistent.clone(),
            setup.clone(),
        );
        let reconcile =
            ReconcileService::new(store.clone(), observations.clone(), rollouts.clone(), clock, page_tokens);
        let replica_id = args
            .reconcile
            .replica_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", std::process::id(), &random_hex()[..8]));
        tracing::info!(replica_id = %replica_id, "reconcile leader election: holder name of this replica");
        let metrics = MetricsService::new(
            store.clone(),
            observations.clone(),
            schedules.clone(),
            readiness.clone(),
            replica_id.clone(),
        );
        let leader = ReconcileLeader::new(
            leases.clone(),
            schedules.clone(),
            reconcile.clone(),
            store.clone(),
            LeaderSettings { replica_id, lease_secs },
        );
        let (health, health_service) = tonic_health::server::health_reporter();
        grpc::spawn_health_publisher(&readiness, health.clone());
        let meta = MetaServiceImpl::new(readiness.clone(), Arc::new(methods.clone()));
        // grpcurl 1.8.x speaks only v1alpha; newer clients use v1. Both serve the same files.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc error details, so grpcurl can render ErrorInfo/BadRequest.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().map_err(|e| StartupError::Reflection(e.to_string()))?;
        let reflection_v1alpha =
            reflection().build_v1alpha().map_err(|e| StartupError::Reflection(e.to_string()))?;

        let mut grpc_routes = Routes::builder();
        grpc_routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(MetaServiceServer::new(meta.clone()))
            .add_service(TopologyServiceServer::new(TopologyServiceImpl::new(
                observations.clone(),
                desired,
                stop.clone(),
            )))
            .add_service(DriftServiceServer::new(DriftServiceImpl::new(
                drift,
                rollouts.clone(),
                stop.clone(),
            )))
            .add_service(ControlServiceServer::new(ControlServiceImpl::new(
                leases,
                audit,
                delegations,
                watchdog.clone(),
                reconcile,
                schedules,
                DispatchService::new(store.clone(), observations.clone(), classifier.clone()),
            )))
            .add_service(OrchestrationServiceServer::new(OrchestrationServiceImpl::new(
                classifier, setup, persistent, learning,
            )));
        let auth = AuthState::new(&methods, Arc::new(tokens));
        let router = grpc_routes
            .routes()
            .into_axum_router()
            .merge(crate::http::router(meta, metrics))
            .fallback(crate::http::fallback)
            .layer(axum::middleware::from_fn_with_state(auth, grpc::auth::enforce));

        Ok(Self {
            listener,
            local_addr,
            router,
            readiness,
            health,
            observations,
            store,
            generated_token_path,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            observe_interval: Duration::from_secs(args.observe_interval_secs),
            stop,
            rollouts,
            watchdog,
            watchdog_interval: Duration::from_secs(args.watchdog_interval_secs),
            leader: reconcile_leader.then_some(leader),
        })
    }

    /// Returns the bound address (the real port when built with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the path of the generated operator token, when one was generated or reused.
    pub fn generated_token_path(&self) -> Option<&Path> {
        self.generated_token_path.as_deref()
    }

    /// Serves until `shutdown` resolves. Then health turns NOT_SERVING at once, new
    /// connections are refused, and in-flight calls get the grace period to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        // One token ends the observation loop and every watch stream when shutdown begins.
        let stop = self.stop.clone();
        let observer = self.observations.clone();
        let rollouts = self.rollouts.clone();
        let (loop_stop, interval) = (stop.child_token(), self.observe_interval);
        let background = async move {
            // Interrupted rollouts are resolved before anything else touches the runtime.
            if let Err(error) = rollouts.recover_unfinished().await {
                tracing::error!(%error, "resolving interrupted rollouts failed; they stay as recorded");
            }
            observer.run_loop(interval, loop_stop).await
        };
        tokio::spawn(background.instrument(tracing::info_span!("observation_loop")));
        let (watchdog, watchdog_stop, watchdog_interval) =
            (self.watchdog.clone(), stop.child_token(), self.watchdog_interval);
        tokio::spawn(
            async move { watchdog.run_loop(watchdog_interval, watchdog_stop).await }
                .instrument(tracing::info_span!("watchdog")),
        );

        let leader_task = self.leader.clone().map(|leader| {
            let leader_stop = stop.child_token();
            tokio::spawn(
                async move { leader.run(leader_stop).await }
                    .instrument(tracing::info_span!("reconcile_leader")),
            )
        });

        let (readiness, health, stopping) = (self.readiness.clone(), self.health.clone(), stop.clone());
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining");
            readiness.begin_shutdown();
            grpc::health::mark_not_serving(&health).await;
            stopping.cancel();
        };
        tracing::info!(addr = %self.local_addr, "serving gRPC and HTTP");
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(self.router))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), signal);
        let grace = self.shutdown_grace;
        tokio::select! {
            result = server => result?,
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs(), "drain grace elapsed; closing remaining connections");
            }
        }
        // The leader releases its lease on the way out so another replica takes over at once.
        if let Some(task) = leader_task {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        if let Err(error) = self.store.close().await {
            tracing::warn!(%error, "closing the store failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn prepare_runtime(args: &ServeArgs, data_dir: &Path) -> Result<Arc<dyn RuntimeAdapter>, StartupError> {
    let address = args.runtime.to_string();
    let runtime: Arc<dyn RuntimeAdapter> = match &args.runtime {
        RuntimeAddress::Fixture { name } => {
            let fixture = FixtureRuntime::prepare(&args.fixtures_dir(), name, data_dir).await?;
            tracing::info!(runtime = %address, state_dir = %fixture.state_dir().display(), "runtime adapter ready");
            Arc::new(fixture)
        }
        RuntimeAddress::Local { state_dir } => {
            let shell = Arc::new(LocalShell);
            Arc::new(
                CliRuntime::connect(
                    address.clone(),
                    RuntimeMode::Local,
                    shell,
                    state_dir.clone(),
                    args.openclaw_bin.clone(),
                )
                .await?,
            )
        }
        RuntimeAddress::Ssh { user, host, port, state_dir } => {
            let shell = Arc::new(SshShell {
                destination: match user {
                    Some(user) => format!("{user}@{host}"),
                    None => host.clone(),
                },
                port: *port,
                identity: args.ssh_identity.clone(),
                known_hosts: args.ssh_known_hosts.clone(),
                connect_timeout: Duration::from_secs(args.ssh_connect_timeout_secs),
            });
            Arc::new(
                CliRuntime::connect(
                    address.clone(),
                    RuntimeMode::Ssh,
                    shell,
                    state_dir.clone(),
                    args.openclaw_bin.clone(),
                )
                .await?,
            )
        }
    };
    if let Some(reason) = runtime.read_only_reason() {
        tracing::warn!(runtime = %address, %reason, "runtime adapter is read-only");
    }
    Ok(runtime)
}

/// Loads the classification rules: the embedded defaults, or the file given (refused with
/// every problem named, so a bad file stops start-up).
fn load_rules(path: Option<&Path>) -> Result<crate::domain::classify::Rules, StartupError> {
    use crate::domain::classify::Rules;
    let Some(path) = path else { return Ok(Rules::default_rules()) };
    let text = std::fs::read_to_string(path)
        .map_err(|source| StartupError::RulesFile { path: path.to_owned(), source })?;
    let rules =
        Rules::parse(&text).map_err(|source| StartupError::Rules { path: path.to_owned(), source })?;
    tracing::info!(path = %path.display(), version = %rules.version, "classification rules loaded");
    Ok(rules)
}

/// Loads the identity registry: `{"references": ["identity://team/payments", …]}`. Each entry
/// must itself be a well-formed business link.
fn load_identity_registry(
    path: Option<&Path>,
) -> Result<Option<std::collections::BTreeSet<String>>, StartupError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RegistryFile {
        references: Vec<String>,
    }
    let Some(path) = path else { return Ok(None) };
    let fail = |detail: String| StartupError::IdentityRegistry { path: path.to_owned(), detail };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let file: RegistryFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    for reference in &file.references {
        crate::domain::persistent::check_business_link(reference, None)
            .map_err(|v| fail(format!("{reference}: {}", v.description)))?;
    }
    tracing::info!(path = %path.display(), entries = file.references.len(), "identity registry loaded");
    Ok(Some(file.references.into_iter().collect()))
}

fn standing_warnings(address: &RuntimeAddress, runtime: &dyn RuntimeAdapter) -> Vec<String> {
    let mut warnings = Vec::new();
    if let RuntimeAddress::Fixture { name } = address {
        warnings.push(format!(
            "runtime adapter in fixture mode ({address}): reading a copy of fixtures/openclaw/{name}, not a real OpenClaw installation"
        ));
    }
    if let Some(reason) = runtime.read_only_reason() {
        warnings.push(format!("runtime adapter is read-only: {reason}"));
    }
    warnings
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // A failing OS RNG is a broken host; an all-zero key would still be refused by nothing,
    // so fall back to time-derived entropy rather than a constant.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    hex::encode(bytes)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
