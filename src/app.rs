//! Building and running the service: `App::build` binds the listener (port 0 allowed),
//! connects and migrates the store, prepares the runtime adapter and wires the transports;
//! `run_until_stopped` serves until the shutdown future resolves, then drains.

mod background;
mod loaders;
mod routes;
mod shutdown;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

use crate::auth::{AuthSetupError, TokenStore};
use crate::config::ServeArgs;
use crate::control::clock::{Clock, SystemClock};
use crate::control::events::EventBus;
use crate::control::failpoints::Failpoints;
use crate::control::fleet::registry::{RegistryService, RuntimesSource};
use crate::control::fleet::rollouts::FleetRollouts;
use crate::control::fleet::{Fleet, RuntimeFactory};
use crate::control::snapshot::Snapshot;
use crate::control::{Classifier, Ctx, Globals, Readiness, RuntimeSettings};
use crate::domain::fleet::DEFAULT_RUNTIME;
use crate::domain::page_token::PageTokenCodec;
use crate::grpc::descriptor;

/// How long the background loops get to finish their step after the drain (a rollout step in
/// flight, a lease release) before they are aborted; whatever is cut short is resumable.
const LOOPS_DRAIN: Duration = Duration::from_secs(5);
use crate::random::RandomUnavailable;
use crate::runtime::RuntimeError;
use crate::store::StoreError;

pub use shutdown::shutdown_signal;

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
    #[error(transparent)]
    Reflection(#[from] routes::ReflectionError),
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
    #[error("loading the snapshot of hot state: {0}")]
    Snapshot(String),
    #[error("server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("event sinks: {0}")]
    Sinks(String),
    #[error("{0}")]
    Runtimes(String),
}

/// A built, not yet running service.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    health: HealthReporter,
    api: crate::grpc::Api,
    generated_token_path: Option<PathBuf>,
    shutdown_grace: Duration,
    intervals: background::Intervals,
    retention: crate::control::retention::Retention,
    transport: TransportSettings,
    tls: Option<(Arc<tls::Tls>, Duration)>,
    stop: CancellationToken,
    run_leader: bool,
}

/// HTTP/2 and TCP settings of the server.
#[derive(Debug, Clone, Copy)]
struct TransportSettings {
    max_concurrent_streams: u32,
    http2_keepalive: Option<Duration>,
}

impl From<&crate::config::ServingArgs> for TransportSettings {
    fn from(args: &crate::config::ServingArgs) -> Self {
        Self {
            max_concurrent_streams: args.max_concurrent_streams,
            http2_keepalive: (args.http2_keepalive_secs > 0)
                .then(|| Duration::from_secs(args.http2_keepalive_secs)),
        }
    }
}

/// Wraps the listener so every accepted connection gets TCP_NODELAY (responses are small
/// writes: with Nagle on, one larger than a segment waits ~40 ms for the client's delayed ACK)
/// and TCP keepalive (dead peers are noticed); accept errors are logged, not fatal.
fn accepting(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(60)))
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

/// The TLS identity and its reload period, when a certificate is configured.
fn load_tls(args: &ServeArgs) -> Result<Option<(Arc<tls::Tls>, Duration)>, StartupError> {
    match (&args.tls.tls_cert, &args.tls.tls_key) {
        (Some(cert), Some(key)) => {
            let files = tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls.tls_client_ca.clone(),
            };
            tracing::info!(cert = %cert.display(), mutual = files.client_ca.is_some(), "TLS on");
            Ok(Some((tls::Tls::load(files)?, Duration::from_secs(args.tls.tls_reload_secs))))
        }
        _ => {
            if !args.listen.ip().is_loopback() {
                tracing::warn!(addr = %args.listen, "listening beyond loopback without TLS: bearer tokens cross the network in clear (set --tls-cert and --tls-key)");
            }
            Ok(None)
        }
    }
}

/// The fleet with its runtimes loaded (the runtimes file, or `--runtime` as `default`).
async fn load_fleet(
    args: &ServeArgs,
    globals: Globals,
    runtime_settings: RuntimeSettings,
    telemetry: crate::telemetry::Telemetry,
) -> Result<(Fleet, RegistryService), StartupError> {
    let factory: Arc<dyn RuntimeFactory> =
        Arc::new(loaders::AdapterFactory::new(args, &args.store.data_dir, telemetry));
    let fleet = Fleet::new(globals, runtime_settings, factory.clone());
    let source = match &args.runtimes_file {
        Some(path) => RuntimesSource::File(path.clone()),
        None => RuntimesSource::Single(Box::new(loaders::single_runtime(args))),
    };
    let registry = RegistryService::new(fleet.clone(), factory, source);
    registry.load().await.map_err(|e| StartupError::Runtimes(e.to_string()))?;
    if args.runtimes_file.is_none()
        && let Some(reason) =
            fleet.cell(DEFAULT_RUNTIME).and_then(|cell| cell.services.ctx.runtime.read_only_reason())
    {
        fleet.ctx().readiness.add_warning(format!("runtime adapter is read-only: {reason}"));
    }
    Ok((fleet, registry))
}

impl App {
    /// Prepares everything the service needs; nothing is served until `run_until_stopped`.
    pub async fn build(args: ServeArgs) -> Result<Self, StartupError> {
        Self::build_with(args, Hooks::default()).await
    }

    /// Like [`App::build`], with test hooks (a clock tests drive, failpoints).
    pub async fn build_with(args: ServeArgs, hooks: Hooks) -> Result<Self, StartupError> {
        let data_dir = args.store.data_dir.clone();
        loaders::private_data_dir(&data_dir)?;
        let methods = descriptor::classified_methods()?;
        let classifier = Classifier::new(Arc::new(loaders::load_rules(args.rules.as_deref())?));
        let identity_registry = loaders::load_identity_registry(args.identity_registry.as_deref())?;
        let (tokens, generated_token_path) =
            TokenStore::load(args.token_file.as_deref(), args.tokens.as_deref(), &data_dir)?;
        if let Some(path) = &generated_token_path {
            tracing::info!(path = %path.display(), "no tokens configured; operator token is in this file");
        }
        let tls = load_tls(&args)?;
        let bind_error = |source| StartupError::Bind { addr: args.listen, source };
        let listener = TcpListener::bind(args.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;

        let telemetry = crate::telemetry::Telemetry::new();
        let readiness = Readiness::new(loaders::standing_warnings(&args, identity_registry.is_some()));
        let store = loaders::open_store(&args, hooks.db_clock_skew_ms, &readiness).await?;
        let page_key = store.server_secret("page_token", crate::random::random_hex(32)?).await?;
        let ctx = Ctx {
            store,
            clock: hooks.clock,
            events: EventBus::default(),
            page_tokens: PageTokenCodec::new(page_key.into_bytes()),
            readiness,
            runtime: Arc::new(crate::runtime::UnavailableRuntime::none()),
            runtime_name: Arc::from(""),
            leases: crate::control::lease_cache::LeaseCache::default(),
            failpoints: hooks.failpoints,
            snapshot: Snapshot::new(""),
            telemetry: telemetry.clone(),
        };
        ctx.leases.reload(&ctx.store).await.map_err(|e| StartupError::Snapshot(e.to_string()))?;
        let (global_settings, runtime_settings) =
            loaders::service_settings(&args, classifier, identity_registry)?;
        let globals = Globals::new(&ctx, global_settings);
        let (fleet, registry) = load_fleet(&args, globals, runtime_settings, telemetry).await?;
        let fleet_rollouts = FleetRollouts::new(fleet.clone());
        // Before serving: an event written by the first request must find its sinks' cursors.
        fleet.globals().outbound.register_sinks().await?;
        let stop = CancellationToken::new();
        let api = crate::grpc::Api { fleet: fleet.clone(), registry, fleet_rollouts: fleet_rollouts.clone() };
        let transport = routes::build(&api, methods, tokens, &stop, &args.serving)?;
        Ok(Self {
            listener,
            local_addr,
            router: transport.router,
            health: transport.health,
            api,
            generated_token_path,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            intervals: background::Intervals {
                lease: Duration::from_secs(args.reconcile.reconciler_lease_secs),
                runtimes_file: Duration::from_secs(2),
                observe: Duration::from_secs(args.observe_interval_secs),
                watchdog: Duration::from_secs(args.watchdog_interval_secs),
                store_probe: Duration::from_secs(args.serving.store_probe_secs),
                snapshot_recheck: Duration::from_millis(args.serving.snapshot_recheck_ms),
                retention_sweep: Duration::from_secs(args.retention_sweep_secs),
            },
            retention: crate::control::retention::Retention {
                pre_images: chrono::TimeDelta::days(i64::from(args.pre_image_retention_days)),
                idempotency: chrono::TimeDelta::days(i64::from(args.idempotency_retention_days)),
                outbound: chrono::TimeDelta::days(i64::from(args.events.event_retention_days)),
            },
            transport: TransportSettings::from(&args.serving),
            tls,
            stop,
            run_leader: hooks.reconcile_leader,
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
        let loops = background::spawn(&self.api, self.intervals, self.retention, self.run_leader, &self.stop);
        let signal = shutdown::begin_on(
            shutdown,
            self.api.fleet.ctx().readiness.clone(),
            self.health.clone(),
            self.stop.clone(),
        );
        tracing::info!(addr = %self.local_addr, tls = self.tls.is_some(), "serving gRPC and HTTP");
        let builder = tonic::transport::Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(self.transport.max_concurrent_streams)
            .http2_keepalive_interval(self.transport.http2_keepalive)
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_routes(Routes::from(self.router));
        let server: std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
            match self.tls {
                Some((tls, reload)) => {
                    tokio::spawn(tls.clone().watch(reload, self.stop.child_token()));
                    Box::pin(
                        builder.serve_with_incoming_shutdown(tls.incoming(accepting(self.listener)), signal),
                    )
                }
                None => Box::pin(builder.serve_with_incoming_shutdown(accepting(self.listener), signal)),
            };
        tokio::select! {
            result = server => result?,
            () = shutdown::grace_elapsed(self.stop.clone(), self.shutdown_grace) => {}
        }
        shutdown::stop_loops(loops, LOOPS_DRAIN).await;
        if let Err(error) = self.api.fleet.ctx().store.clone().close().await {
            tracing::warn!(%error, "closing the store failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}
