//! Start-up loaders: the runtime adapter, classification rules, the identity registry, the
//! store, and the settings the services are built with — each refusing bad input with a
//! message that names it, so a misconfigured replica never starts half-right.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use super::StartupError;
use crate::config::ServeArgs;
use crate::control::{
    Classifier, GlobalSettings, LeaderSettings, ObserverSettings, Readiness, RuntimeSettings,
};
use crate::domain::classify::Rules;
use crate::domain::fleet::{Credential, DEFAULT_RUNTIME, RuntimeSpec};
use crate::domain::watchdog::WatchdogThresholds;
use crate::runtime::{
    CliRuntime, FixtureRuntime, GatewayRuntime, LocalShell, RuntimeAdapter, RuntimeAddress, RuntimeLimits,
    RuntimeMode, SshShell,
};
use crate::store::{Store, StoreOptions};

/// Builds runtime adapters for the fleet from their definitions and this process's settings
/// (the CLI path, the SSH identity, limits, the data dir, the Gateway CA).
pub struct AdapterFactory {
    args: ServeArgs,
    data_dir: std::path::PathBuf,
    telemetry: crate::telemetry::Telemetry,
}

impl AdapterFactory {
    pub fn new(args: &ServeArgs, data_dir: &Path, telemetry: crate::telemetry::Telemetry) -> Self {
        Self { args: args.clone(), data_dir: data_dir.to_owned(), telemetry }
    }

    /// Where a runtime keeps its files under the data dir: the data dir itself for `default`
    /// (as before fleets), `runtimes/<name>/` for the others, so two fixture runtimes of the
    /// same fixture never share a copy.
    fn data_dir_of(&self, name: &str) -> std::path::PathBuf {
        if name == DEFAULT_RUNTIME {
            self.data_dir.clone()
        } else {
            self.data_dir.join("runtimes").join(name)
        }
    }

    /// The token a credential refers to (never logged or returned).
    fn token(&self, credential: &Credential) -> Result<String, String> {
        let token = match credential {
            Credential::None => {
                return Err("a gateway runtime needs its token: token_file or token_env".to_owned());
            }
            Credential::File(path) => {
                crate::auth::read_secret_file(Path::new(path)).map_err(|e| e.to_string())?.trim().to_owned()
            }
            // `--gateway-token`/JHF_WARP_GATEWAY_TOKEN as clap read it (flag or environment).
            Credential::Env(var) if var == GATEWAY_TOKEN_ENV && self.args.gateway_token.is_some() => {
                self.args.gateway_token.clone().unwrap_or_default().trim().to_owned()
            }
            Credential::Env(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set"))?
                .trim()
                .to_owned(),
        };
        if token.is_empty() {
            return Err("the token is empty".to_owned());
        }
        Ok(token)
    }
}

/// The variable `--runtime`'s gateway token comes from when no token file is given.
const GATEWAY_TOKEN_ENV: &str = "JHF_WARP_GATEWAY_TOKEN";

#[async_trait::async_trait]
impl crate::control::fleet::RuntimeFactory for AdapterFactory {
    async fn build(&self, spec: &RuntimeSpec) -> Result<Arc<dyn RuntimeAdapter>, String> {
        let address = spec.parsed_address().map_err(|e| e.to_string())?;
        let data_dir = self.data_dir_of(&spec.name);
        if data_dir != self.data_dir {
            private_data_dir(&data_dir).map_err(|e| e.to_string())?;
        }
        let token = match address {
            RuntimeAddress::Gateway { .. } => Some(self.token(&spec.credential)?),
            _ => None,
        };
        let adapter = prepare_runtime(&self.args, &spec.address, &address, token, &data_dir)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(crate::runtime::MeasuredRuntime::new(adapter, &spec.name, self.telemetry.clone())))
    }

    fn check_credential(&self, spec: &RuntimeSpec) -> Result<(), String> {
        match &spec.credential {
            Credential::None => Ok(()),
            credential => self.token(credential).map(drop),
        }
    }
}

/// The definition `--runtime` stands for (its gateway token from `--gateway-token-file` or
/// the environment).
pub fn single_runtime(args: &ServeArgs) -> RuntimeSpec {
    let credential = match (&args.runtime, &args.gateway_token_file) {
        (RuntimeAddress::Gateway { .. }, Some(path)) => Credential::File(path.display().to_string()),
        (RuntimeAddress::Gateway { .. }, None) => Credential::Env(GATEWAY_TOKEN_ENV.to_owned()),
        _ => Credential::None,
    };
    crate::control::fleet::registry::single_runtime(&args.runtime.to_string(), credential)
}

/// Prepares one runtime adapter.
async fn prepare_runtime(
    args: &ServeArgs,
    address_text: &str,
    address: &RuntimeAddress,
    token: Option<String>,
    data_dir: &Path,
) -> Result<Arc<dyn RuntimeAdapter>, StartupError> {
    let address_text = address_text.to_owned();
    let limits = RuntimeLimits {
        config_max_bytes: args.max_config_bytes,
        workspace_roots: args.workspace_roots.clone(),
    };
    let cli = |mode, shell, state_dir: &Option<String>| {
        CliRuntime::connect(
            address_text.clone(),
            mode,
            shell,
            state_dir.clone(),
            args.openclaw_bin.clone(),
            limits.clone(),
        )
    };
    let runtime: Arc<dyn RuntimeAdapter> = match address {
        RuntimeAddress::Fixture { name } => {
            let fixture =
                FixtureRuntime::prepare(&args.fixtures_dir(), name, data_dir, limits.clone()).await?;
            tracing::info!(runtime = %address_text, state_dir = %fixture.state_dir().display(), "runtime adapter ready");
            Arc::new(fixture)
        }
        RuntimeAddress::Local { state_dir } => {
            Arc::new(cli(RuntimeMode::Local, Arc::new(LocalShell), state_dir).await?)
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
            Arc::new(cli(RuntimeMode::Ssh, shell, state_dir).await?)
        }
        RuntimeAddress::Gateway { url } => Arc::new(GatewayRuntime::start(
            address_text.clone(),
            url.clone(),
            token.unwrap_or_default(),
            data_dir,
            address.gateway_tls().then(|| gateway_tls(args)).transpose()?,
            limits,
            Duration::from_secs(args.runtime_timeout_secs),
        )?),
    };
    if let Some(reason) = runtime.read_only_reason() {
        tracing::warn!(runtime = %address_text, %reason, "runtime adapter is read-only");
    }
    Ok(runtime)
}

/// TLS trust for `gateway:wss://`: the system's roots plus `--gateway-ca-file`.
fn gateway_tls(args: &ServeArgs) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, StartupError> {
    client_tls(args.gateway_ca_file.as_deref(), "gateway:wss://", "--gateway-ca-file")
        .map_err(|detail| StartupError::Runtime(crate::runtime::RuntimeError::Setup { detail }))
}

/// TLS trust for outgoing connections (`what`): the system's roots plus the PEM file `extra`
/// (given by the flag `flag`).
fn client_tls(
    extra: Option<&Path>,
    what: &str,
    flag: &str,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls;
    let fail = |detail: String| detail;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| fail(format!("{}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(format!("no trusted roots for {what} (set {flag})"));
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The event sinks of `--event-sinks-file` (none without it) and the delivery settings.
pub fn outbound_settings(args: &ServeArgs) -> Result<crate::control::OutboundSettings, StartupError> {
    let events = &args.events;
    let fail = StartupError::Sinks;
    let sinks = match &events.event_sinks_file {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            if text.len() > 1 << 20 {
                return Err(fail(format!("{}: larger than 1 MiB", path.display())));
            }
            let secret = |entry: &crate::delivery::SinkEntry| -> Result<Vec<u8>, String> {
                let text = match (&entry.secret_file, &entry.secret_env) {
                    (Some(file), None) => crate::auth::read_secret_file(file).map_err(|e| e.to_string())?,
                    (None, Some(var)) => std::env::var(var)
                        .map_err(|_| format!("sink {}: environment variable {var} is not set", entry.name))?,
                    _ => {
                        return Err(format!(
                            "sink {}: give exactly one of secret_file, secret_env",
                            entry.name
                        ));
                    }
                };
                Ok(text.trim().as_bytes().to_vec())
            };
            let trust = || client_tls(events.event_ca_file.as_deref(), "https:// sinks", "--event-ca-file");
            crate::delivery::parse_sinks(&text, secret, trust)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?
        }
    };
    for sink in &sinks {
        tracing::info!(sink = %sink.name, url = %sink.url(), "outbound event sink");
    }
    Ok(crate::control::OutboundSettings {
        sinks,
        retry: crate::domain::outbound::RetryPolicy {
            max_attempts: events.event_max_attempts,
            initial: Duration::from_millis(events.event_retry_initial_ms),
            max: Duration::from_millis(events.event_retry_max_ms.max(events.event_retry_initial_ms)),
        },
        attempt_timeout: Duration::from_millis(events.event_attempt_timeout_ms),
    })
}

/// Creates the data dir (if needed) and makes it private (0700): it holds the database, the
/// generated operator token and the fixture copies.
pub fn private_data_dir(data_dir: &Path) -> Result<(), StartupError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |source| StartupError::DataDir { path: data_dir.to_owned(), source };
    std::fs::create_dir_all(data_dir).map_err(fail)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)
}

/// Makes an embedded SQLite database private (0600) before the driver opens it, so its WAL and
/// shared-memory files (which SQLite creates with the database's mode) are private too.
fn private_sqlite_file(url: &str) -> Result<(), StartupError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Some(rest) = url.strip_prefix("sqlite://") else { return Ok(()) };
    let path = Path::new(rest.split('?').next().unwrap_or(rest));
    if path.as_os_str().is_empty() || rest.starts_with(":memory:") {
        return Ok(());
    }
    let fail = |source| StartupError::DataDir { path: path.to_owned(), source };
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)
        }
        Err(error) => Err(fail(error)),
    }
}

/// Connects and migrates the store; readiness then says so.
pub async fn open_store(
    args: &ServeArgs,
    clock_skew_ms: Arc<AtomicI64>,
    readiness: &Readiness,
) -> Result<Store, StartupError> {
    private_sqlite_file(&args.store.database_url())?;
    let options = StoreOptions { acquire_timeout: Duration::from_millis(args.serving.db_acquire_timeout_ms) };
    let store = Store::connect(&args.store.database_url(), options).await?.with_clock_skew(clock_skew_ms);
    store.migrate().await?;
    readiness.set_store(true, format!("migrated ({})", store.backend_name()));
    Ok(store)
}

/// Loads the classification rules: the embedded defaults, or the file given (refused with
/// every problem named, so a bad file stops start-up).
pub fn load_rules(path: Option<&Path>) -> Result<Rules, StartupError> {
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
pub fn load_identity_registry(path: Option<&Path>) -> Result<Option<BTreeSet<String>>, StartupError> {
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

/// Warnings readiness carries for as long as the process runs.
pub fn standing_warnings(args: &ServeArgs, has_identity_registry: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if args.runtimes_file.is_none()
        && let RuntimeAddress::Fixture { name } = &args.runtime
    {
        warnings.push(format!(
            "runtime adapter in fixture mode ({}): reading a copy of fixtures/openclaw/{name}, not a real OpenClaw installation",
            args.runtime
        ));
    }
    if !has_identity_registry {
        warnings.push(
            "no identity registry configured (--identity-registry): business links of persistent agents are checked for syntax only".to_owned(),
        );
    }
    warnings
}

/// Maps the command line onto the services' settings: the deployment-wide ones and those every
/// runtime's services share.
pub fn service_settings(
    args: &ServeArgs,
    classifier: Classifier,
    identity_registry: Option<BTreeSet<String>>,
) -> Result<(GlobalSettings, RuntimeSettings), StartupError> {
    let replica_id = match &args.reconcile.replica_id {
        Some(id) => id.clone(),
        None => format!("{}-{}", std::process::id(), crate::random::random_hex(4)?),
    };
    tracing::info!(replica_id = %replica_id, "holder name of this replica in the replica leases");
    let globals = GlobalSettings {
        replica_id: replica_id.clone(),
        identity_registry,
        classifier,
        outbound: outbound_settings(args)?,
    };
    let runtimes = RuntimeSettings {
        observer: ObserverSettings {
            tracker_min_gap: chrono::TimeDelta::seconds(args.observe_interval_secs as i64),
            history_limit: args.observation_history,
            runtime_timeout: Duration::from_secs(args.runtime_timeout_secs),
            tracker: args.drift.tracker_config(),
            fresh_read_min_interval: Duration::from_millis(args.serving.fresh_read_min_interval_ms),
        },
        schedule_defaults: args.reconcile.default_schedule(),
        watchdog: WatchdogThresholds {
            observation_overdue: chrono::TimeDelta::seconds(
                3 * args.observe_interval_secs.min(86_400) as i64,
            ),
            ..WatchdogThresholds::default()
        },
        leader: LeaderSettings { replica_id, lease_secs: args.reconcile.reconciler_lease_secs as i64 },
        runtime_lease: std::time::Duration::from_secs(args.reconcile.runtime_lease_secs),
        setup_preview_ttl: chrono::TimeDelta::seconds(args.setup_preview_ttl_secs.min(7 * 86_400) as i64),
    };
    Ok((globals, runtimes))
}
