//! The server's configuration: every flag of `serve`, `migrate` and `healthcheck` (the root
//! command line is in `cli.rs`). Every flag also reads a `JHF_WARP_*` variable;
//! `jhf-warp --help` and `jhf-warp serve --help` are the reference.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::runtime::RuntimeAddress;

/// `jhf-warp healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The readiness URL to probe.
    #[arg(long, env = "JHF_WARP_HEALTHCHECK_URL", default_value = "http://127.0.0.1:18086/ready")]
    pub url: String,
    /// Seconds the probe may take.
    #[arg(long, env = "JHF_WARP_HEALTHCHECK_TIMEOUT_SECS", default_value_t = 3)]
    pub timeout_secs: u64,
}

/// Logging.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter in tracing-subscriber EnvFilter syntax (e.g. `info,jhf_warp=debug`).
    #[arg(long, env = "JHF_WARP_LOG", default_value = "info", global = true)]
    pub log_filter: String,
    /// Log line format.
    #[arg(long, env = "JHF_WARP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

pub use crate::telemetry::LogFormat;

/// Where data lives.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded database, the generated operator token and fixture copies.
    #[arg(long, env = "JHF_WARP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Database URL (`postgres://…` or `sqlite://…`); default: SQLite at `<data-dir>/warp.db`.
    #[arg(long, env = "JHF_WARP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// Returns the configured URL or the embedded SQLite default.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("warp.db").display()))
    }
}

/// `jhf-warp serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address for gRPC (h2c) and the HTTP/1.1 shim; port 0 picks a free port.
    #[arg(long, env = "JHF_WARP_LISTEN", default_value = "127.0.0.1:18086")]
    pub listen: SocketAddr,
    /// OpenClaw runtime: `fixture:<name>`, `local[:<state-dir>]`, `ssh://[user@]host[:port][/state-dir]`
    /// or `gateway:ws://host:port` (`wss://` for TLS).
    #[arg(long, env = "JHF_WARP_RUNTIME", default_value = "fixture:trio")]
    pub runtime: RuntimeAddress,
    /// A fleet: YAML file listing the runtimes to manage (name, address, token_file|token_env,
    /// labels, observe_interval_seconds, paused); reread when it changes and on SIGHUP. With it,
    /// `--runtime` is not used.
    #[arg(long, env = "JHF_WARP_RUNTIMES_FILE")]
    pub runtimes_file: Option<PathBuf>,
    /// Directory holding the fixture trees; default `fixtures/openclaw` (of the working dir, else of the source tree).
    #[arg(long, env = "JHF_WARP_FIXTURES_DIR")]
    pub fixtures_dir: Option<PathBuf>,
    /// JSON token file: `{"tokens":[{"name","role","token"|"sha256"}]}`; roles reader, operator, control-agent.
    #[arg(long, env = "JHF_WARP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Tokens as `name:role:token[,…]` (prefer the env var or --token-file: flags show in `ps`).
    #[arg(long, env = "JHF_WARP_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,
    /// Largest `openclaw.json` read, in bytes (a larger one is a CONFIG_UNREADABLE finding).
    /// At most 32 MiB: a runtime command's whole output is capped at 64 MiB.
    #[arg(long, env = "JHF_WARP_MAX_CONFIG_BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1024..=(32 << 20)))]
    pub max_config_bytes: u64,
    /// Directories besides the state dir where agent workspaces may live (comma-separated
    /// absolute paths on the runtime host); jhf-warp creates and writes workspaces nowhere else.
    #[arg(long = "workspace-root", env = "JHF_WARP_WORKSPACE_ROOTS", value_delimiter = ',')]
    pub workspace_roots: Vec<PathBuf>,
    /// The `openclaw` CLI used by the local and ssh runtimes (on the runtime host's PATH by default).
    #[arg(long, env = "JHF_WARP_OPENCLAW_BIN", default_value = "openclaw")]
    pub openclaw_bin: String,
    /// SSH identity file for ssh:// runtimes (default: the ssh client's own).
    #[arg(long, env = "JHF_WARP_SSH_IDENTITY")]
    pub ssh_identity: Option<PathBuf>,
    /// SSH known-hosts file for ssh:// runtimes (host keys are always checked).
    #[arg(long, env = "JHF_WARP_SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Seconds an ssh connection may take to establish.
    #[arg(long, env = "JHF_WARP_SSH_CONNECT_TIMEOUT_SECS", default_value_t = 5)]
    pub ssh_connect_timeout_secs: u64,
    /// File holding the Gateway's shared token (gateway: runtimes; owner-only, not a symlink).
    #[arg(long, env = "JHF_WARP_GATEWAY_TOKEN_FILE")]
    pub gateway_token_file: Option<PathBuf>,
    /// The Gateway's shared token itself (prefer the file; never pass it as a flag).
    #[arg(long, env = "JHF_WARP_GATEWAY_TOKEN", hide_env_values = true, hide = true)]
    pub gateway_token: Option<String>,
    /// PEM certificates trusted for `gateway:wss://` besides the system's roots.
    #[arg(long, env = "JHF_WARP_GATEWAY_CA_FILE")]
    pub gateway_ca_file: Option<PathBuf>,
    /// Stored observations kept per runtime (older ones are pruned).
    #[arg(long, env = "JHF_WARP_OBSERVATION_HISTORY", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub observation_history: u64,
    /// Seconds one read of the runtime may take before it counts as failed.
    #[arg(long, env = "JHF_WARP_RUNTIME_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub runtime_timeout_secs: u64,
    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT before connections are closed.
    #[arg(long, env = "JHF_WARP_SHUTDOWN_GRACE_SECS", default_value_t = 4)]
    pub shutdown_grace_secs: u64,
    /// Seconds between periodic observations of the runtime.
    #[arg(long = "observe-interval", env = "JHF_WARP_OBSERVE_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub observe_interval_secs: u64,
    /// Task classification rules (TOML, format version 1); default: the rules embedded in the binary.
    #[arg(long, env = "JHF_WARP_RULES")]
    pub rules: Option<PathBuf>,
    /// Identity registry (JSON `{"references": ["identity://team/payments", …]}`): business links of
    /// persistent agents must be in it; unset = syntax check only (a readiness warning says so).
    #[arg(long, env = "JHF_WARP_IDENTITY_REGISTRY")]
    pub identity_registry: Option<PathBuf>,
    /// Seconds a setup preview stays addressable (PreviewSetup → ApplySetup).
    #[arg(long, env = "JHF_WARP_SETUP_PREVIEW_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub setup_preview_ttl_secs: u64,
    /// Seconds between watchdog evaluations (the watchdog never changes the runtime).
    #[arg(long, env = "JHF_WARP_WATCHDOG_INTERVAL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub watchdog_interval_secs: u64,
    /// Days a finished rollout keeps its pre-image (the config before the write, which may
    /// carry inline secrets); past that it can no longer be rolled back.
    #[arg(long, env = "JHF_WARP_PRE_IMAGE_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub pre_image_retention_days: u32,
    /// Days a request id is remembered: a retry within them gets the first answer.
    #[arg(long, env = "JHF_WARP_IDEMPOTENCY_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub idempotency_retention_days: u32,
    /// Seconds between retention sweeps.
    #[arg(long, env = "JHF_WARP_RETENTION_SWEEP_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_sweep_secs: u64,
    #[command(flatten)]
    pub drift: DriftArgs,
    #[command(flatten)]
    pub events: EventArgs,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub serving: ServingArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Outbound events (CloudEvents over HTTP to the sinks of a sinks file).
#[derive(Debug, Clone, Args)]
pub struct EventArgs {
    /// YAML/JSON file naming the event sinks (name, url, secret_file or secret_env, types);
    /// without it no event is delivered (they are still written to the outbox). Every replica
    /// should be given the same file.
    #[arg(long, env = "JHF_WARP_EVENT_SINKS_FILE")]
    pub event_sinks_file: Option<PathBuf>,
    /// Extra PEM roots trusted for `https://` sinks (besides the system's).
    #[arg(long, env = "JHF_WARP_EVENT_CA_FILE")]
    pub event_ca_file: Option<PathBuf>,
    /// Attempts per event and sink before the delivery is dead-lettered.
    #[arg(long, env = "JHF_WARP_EVENT_MAX_ATTEMPTS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub event_max_attempts: u32,
    /// Delay after the first failed attempt (doubling, with jitter, up to the maximum).
    #[arg(long, env = "JHF_WARP_EVENT_RETRY_INITIAL_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub event_retry_initial_ms: u64,
    /// Longest delay between two attempts.
    #[arg(long, env = "JHF_WARP_EVENT_RETRY_MAX_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    pub event_retry_max_ms: u64,
    /// Longest time one attempt (connect, send, answer) may take.
    #[arg(long, env = "JHF_WARP_EVENT_ATTEMPT_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub event_attempt_timeout_ms: u64,
    /// Days finished deliveries (and events no sink still needs) are kept.
    #[arg(long, env = "JHF_WARP_EVENT_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub event_retention_days: u32,
}

/// TLS on the serving port (gRPC and the HTTP shim alike).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain of the server; with --tls-key it turns TLS on.
    #[arg(long, env = "JHF_WARP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the server certificate.
    #[arg(long, env = "JHF_WARP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): every client must present a certificate that chains to one (mutual TLS).
    #[arg(long, env = "JHF_WARP_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Seconds between checks of the TLS files; changed files take effect for new connections.
    #[arg(long, env = "JHF_WARP_TLS_RELOAD_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub tls_reload_secs: u64,
}

/// The serving path: transport settings, load shedding, the request path's use of the store.
#[derive(Debug, Clone, Args)]
pub struct ServingArgs {
    /// Async worker threads (default: one per core).
    #[arg(long, env = "JHF_WARP_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// Requests in flight on this replica before new ones are refused at once with
    /// RESOURCE_EXHAUSTED and a retry delay (health, readiness and reflection are never refused).
    #[arg(long, env = "JHF_WARP_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Log every call at INFO. By default a READ-class call that succeeds logs at DEBUG (its
    /// metrics count it either way); changes, refusals and errors always log at INFO.
    #[arg(long, env = "JHF_WARP_LOG_EVERY_CALL", default_value_t = false)]
    pub log_every_call: bool,
    /// Concurrent HTTP/2 streams one connection may open.
    #[arg(long, env = "JHF_WARP_MAX_CONCURRENT_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_streams: u32,
    /// Seconds between HTTP/2 keepalive pings (a peer that does not answer within 10 s is dropped); 0 turns them off.
    #[arg(long, env = "JHF_WARP_HTTP2_KEEPALIVE_SECS", default_value_t = 30)]
    pub http2_keepalive_secs: u64,
    /// Milliseconds a request waits for a database connection before it fails with UNAVAILABLE.
    #[arg(long, env = "JHF_WARP_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub db_acquire_timeout_ms: u64,
    /// Seconds between probes of the database; readiness (`store`, `/ready`, health `""`) follows them.
    #[arg(long, env = "JHF_WARP_STORE_PROBE_SECS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub store_probe_secs: u64,
    /// Shortest time in milliseconds between two runtime reads that READ callers cause
    /// (FRESH reads within it share the read in flight or just finished).
    #[arg(long, env = "JHF_WARP_FRESH_READ_MIN_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub fresh_read_min_interval_ms: u64,
    /// Milliseconds between checks that the in-memory snapshot of hot state matches the store
    /// (the staleness bound when a change notification is lost, and on SQLite shared by
    /// several processes).
    #[arg(long, env = "JHF_WARP_SNAPSHOT_RECHECK_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub snapshot_recheck_ms: u64,
}

/// The periodic reconcile loop and its leader election.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// This replica's holder name in lease `warp/reconciler` (default: `<pid>-<random>`).
    #[arg(long, env = "JHF_WARP_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Seconds the `warp/reconciler` lease lasts; the leader renews it every third of that.
    #[arg(long, env = "JHF_WARP_RECONCILER_LEASE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub reconciler_lease_secs: u64,
    /// Seconds the runtime lease (`warp/runtime/<address>`) lasts: every change to the runtime
    /// runs under it, and a replica resumes another's unfinished rollout only after it expired.
    #[arg(long, env = "JHF_WARP_RUNTIME_LEASE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub runtime_lease_secs: u64,
    /// Seconds between scheduled cycles until the schedule is changed through the API.
    #[arg(long, env = "JHF_WARP_RECONCILE_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub reconcile_interval_secs: u64,
    /// Mode of scheduled cycles until changed through the API: observe, plan or heal.
    #[arg(long, env = "JHF_WARP_RECONCILE_MODE", default_value = "observe", value_parser = ["observe", "plan", "heal"])]
    pub reconcile_mode: String,
    /// Start with the schedule paused (until changed through the API).
    #[arg(long, env = "JHF_WARP_RECONCILE_PAUSED", default_value_t = false)]
    pub reconcile_paused: bool,
}

impl ReconcileArgs {
    /// Returns the schedule that applies until the first update.
    pub fn default_schedule(&self) -> crate::domain::schedule::Schedule {
        use crate::domain::reconcile::ReconcileMode;
        crate::domain::schedule::Schedule {
            interval_secs: self.reconcile_interval_secs as i64,
            mode: match self.reconcile_mode.as_str() {
                "heal" => ReconcileMode::Heal,
                "plan" => ReconcileMode::Plan,
                _ => ReconcileMode::Observe,
            },
            paused: self.reconcile_paused,
            generation: 0,
            updated_at: None,
            updated_by: "configuration".to_owned(),
        }
    }
}

/// Anti-flap thresholds of drift tracking.
#[derive(Debug, Clone, Args)]
pub struct DriftArgs {
    /// Consecutive observations that must see a drift item before it is CONFIRMED.
    #[arg(long, env = "JHF_WARP_DRIFT_CONFIRM_OBSERVATIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub drift_confirm_observations: u32,
    /// Seconds those consecutive observations must span before an item is CONFIRMED.
    #[arg(long, env = "JHF_WARP_DRIFT_CONFIRM_SECS", default_value_t = 60)]
    pub drift_confirm_secs: u32,
    /// Consecutive observations without an item before it is RESOLVED.
    #[arg(long, env = "JHF_WARP_DRIFT_RESOLVE_ABSENCES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub drift_resolve_absences: u32,
    /// Reopenings (resolved → open) within the flap window that make an item FLAPPING.
    #[arg(long, env = "JHF_WARP_DRIFT_FLAP_REOPENINGS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub drift_flap_reopenings: u32,
    /// Seconds of the flap window.
    #[arg(long, env = "JHF_WARP_DRIFT_FLAP_WINDOW_SECS", default_value_t = 1800, value_parser = clap::value_parser!(u32).range(1..))]
    pub drift_flap_window_secs: u32,
}

impl DriftArgs {
    /// Returns the tracker thresholds.
    pub fn tracker_config(&self) -> crate::domain::drift::tracker::TrackerConfig {
        use chrono::TimeDelta;
        crate::domain::drift::tracker::TrackerConfig {
            confirm_observations: self.drift_confirm_observations,
            confirm_span: TimeDelta::seconds(i64::from(self.drift_confirm_secs)),
            resolve_absences: self.drift_resolve_absences,
            flap_reopenings: self.drift_flap_reopenings,
            flap_window: TimeDelta::seconds(i64::from(self.drift_flap_window_secs)),
        }
    }
}

impl ServeArgs {
    /// Returns the defaults (flags and `JHF_WARP_*` variables applied), for embedding and tests.
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        <Wrapper as clap::Parser>::try_parse_from(["jhf-warp"]).map(|wrapper| wrapper.args)
    }

    /// Returns the fixtures directory to use.
    pub fn fixtures_dir(&self) -> PathBuf {
        if let Some(dir) = &self.fixtures_dir {
            return dir.clone();
        }
        let relative = PathBuf::from("fixtures/openclaw");
        if relative.is_dir() {
            return relative;
        }
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/openclaw")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_help_and_an_env_var() {
        // Configuration reads the environment; the per-invocation arguments of the `ctl`
        // client's commands (an id, a file, --watch) need help only.
        fn check(command: &clap::Command, configuration: bool) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "--{id} has no help");
                if configuration && !arg.is_positional() {
                    let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
                    assert!(env.starts_with("JHF_WARP_"), "--{id} reads no JHF_WARP_ variable");
                }
            }
            for sub in command.get_subcommands() {
                let ctl_command = command.get_name() == "ctl" || !configuration;
                check(sub, !ctl_command);
            }
        }
        check(&Cli::command(), true);
    }

    #[test]
    fn the_example_environment_names_every_variable() {
        let example = include_str!("../.env.example");
        let mut missing = Vec::new();
        fn collect(command: &clap::Command, example: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if let Some(env) = arg.get_env().and_then(|e| e.to_str())
                    && !example.contains(&format!("{env}="))
                {
                    missing.push(env.to_owned());
                }
            }
            for sub in command.get_subcommands() {
                collect(sub, example, missing);
            }
        }
        collect(&Cli::command(), example, &mut missing);
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let store = StoreArgs { data_dir: PathBuf::from("/tmp/x"), database_url: None };
        assert_eq!(store.database_url(), "sqlite:///tmp/x/warp.db?mode=rwc");
    }
}
