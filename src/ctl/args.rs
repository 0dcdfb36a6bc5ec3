//! The operator CLI's arguments (clap): `jhf-warp ctl <command>`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// `jhf-warp ctl`.
#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// The server: `http://host:port` or `https://host:port`.
    #[arg(long, env = "JHF_WARP_SERVER", default_value = "http://127.0.0.1:18086", global = true)]
    pub server: String,
    /// File holding the bearer token (owner-only); else `JHF_WARP_TOKEN`.
    #[arg(long, env = "JHF_WARP_TOKEN_FILE_CTL", global = true)]
    pub token_file: Option<PathBuf>,
    /// The bearer token itself (prefer the file).
    #[arg(long = "token", env = "JHF_WARP_TOKEN", hide_env_values = true, hide = true, global = true)]
    pub token: Option<String>,
    /// PEM roots for `https://` besides the system's.
    #[arg(long, env = "JHF_WARP_CTL_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for a server that requires mutual TLS.
    #[arg(long, env = "JHF_WARP_CTL_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM), with `--tls-cert`.
    #[arg(long, env = "JHF_WARP_CTL_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Text for people, JSON for scripts.
    #[arg(long, env = "JHF_WARP_CTL_OUTPUT", value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// The runtime a command is about (`fleet runtimes` lists them); empty: the only one.
    #[arg(long, env = "JHF_WARP_CTL_RUNTIME", default_value = "", global = true)]
    pub runtime: String,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The commands of `ctl`.
#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Version, readiness and drift at a glance.
    Status,
    /// The team's topology.
    Topology {
        #[command(subcommand)]
        command: TopologyCommand,
    },
    /// The desired topology.
    Desired {
        #[command(subcommand)]
        command: DesiredCommand,
    },
    /// Drift between desired and observed.
    Drift {
        #[command(subcommand)]
        command: DriftCommand,
    },
    /// Plans a patch against the runtime as it is now.
    Plan {
        /// A repair plan (fix findings) instead of an apply plan (reach the desired topology).
        #[arg(long)]
        repair: bool,
    },
    /// Rollouts of plans.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Outbound event deliveries to the sinks.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Classification rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The fleet: its runtimes, their health and drift, fleet rollouts.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum FleetCommand {
    /// Counts by health and drift, in total and by label.
    Status {
        /// Label selector, e.g. `env=prod,team!=ops`.
        #[arg(long, default_value = "")]
        selector: String,
    },
    /// The runtimes: owner replica, health, drift, active rollout.
    Runtimes {
        /// Label selector, e.g. `env=prod,team!=ops`.
        #[arg(long, default_value = "")]
        selector: String,
    },
    /// The runtimes with open drift.
    Drift {
        /// Label selector, e.g. `env=prod,team!=ops`.
        #[arg(long, default_value = "")]
        selector: String,
    },
    /// Fleet rollouts.
    Rollout {
        #[command(subcommand)]
        command: FleetRolloutCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum FleetRolloutCommand {
    /// Applies a team file to every runtime the selector matches, in waves.
    Create {
        /// The team file (YAML or JSON: the proto JSON of a Topology).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Label selector of the runtimes (empty: all).
        #[arg(long, default_value = "")]
        selector: String,
        /// Cumulative wave steps, e.g. `1,25%,100%` (one canary, then a quarter, then the rest).
        #[arg(long, default_value = "")]
        waves: String,
        /// A wave named explicitly (repeat for each wave, in order): `--wave a,b --wave c`.
        #[arg(long = "wave")]
        wave: Vec<String>,
        /// Follow it until it ends; the exit code says how.
        #[arg(long)]
        watch: bool,
    },
    /// Shows a fleet rollout.
    Show {
        /// The fleet rollout's id.
        id: String,
    },
    /// Follows a fleet rollout until it ends.
    Watch {
        /// The fleet rollout's id.
        id: String,
    },
    /// Lists recent fleet rollouts.
    List,
    /// Pauses a fleet rollout (in-flight rollouts finish; no wave starts).
    Pause {
        /// The fleet rollout's id.
        id: String,
    },
    /// Resumes a paused fleet rollout.
    Resume {
        /// The fleet rollout's id.
        id: String,
    },
    /// Cancels a fleet rollout.
    Cancel {
        /// The fleet rollout's id.
        id: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TopologyCommand {
    /// Shows the observed topology (or the desired one); `mermaid`, `dot` and `svg` draw the
    /// team (by default desired and observed overlaid, drift marked).
    Show {
        /// The desired topology instead of the observed one (table and json).
        #[arg(long)]
        desired: bool,
        /// table or json, or a picture: mermaid, dot, svg.
        #[arg(long, value_enum, default_value_t = TopologyFormat::Table)]
        format: TopologyFormat,
        /// What a picture shows: observed, desired or overlay.
        #[arg(long, default_value = "overlay")]
        source: String,
    },
}

/// Formats of `topology show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopologyFormat {
    Table,
    Json,
    Mermaid,
    Dot,
    Svg,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DesiredCommand {
    /// Stores a team file (YAML or JSON: the proto JSON of a Topology) as the desired topology,
    /// after showing what changes.
    Apply {
        /// The team file (YAML or JSON).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DriftCommand {
    /// Lists drift items.
    List {
        /// A filter, e.g. `state = CONFIRMED`.
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Follows drift items as they change (Ctrl-C to stop).
    Watch,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RolloutCommand {
    /// Rolls out a plan (a fresh apply plan when `--plan` is not given).
    Create {
        /// A stored plan's id (default: plan now against the runtime as it is).
        #[arg(long)]
        plan: Option<String>,
        /// Check the change against the runtime without writing it.
        #[arg(long)]
        dry_run: bool,
        /// Follow each step until the rollout ends; the exit code says how.
        #[arg(long)]
        watch: bool,
    },
    /// Restores a succeeded rollout's pre-image.
    Rollback {
        /// The rollout to roll back.
        rollout_id: String,
    },
    /// Follows a rollout until it ends.
    Watch {
        /// The rollout to follow.
        rollout_id: String,
    },
    /// Lists recent rollouts.
    List,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Lists deliveries, newest event first (up to 100).
    List {
        /// Only this sink's deliveries.
        #[arg(long, default_value = "")]
        sink: String,
        /// Only deliveries in this state.
        #[arg(long, value_enum)]
        state: Option<DeliveryStateArg>,
    },
    /// Queues an event for a sink again (e.g. a dead letter once the sink is fixed).
    Redeliver {
        /// The sink's name.
        sink: String,
        /// The event's CloudEvents id.
        event_id: String,
    },
}

/// A delivery state on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeliveryStateArg {
    Pending,
    Delivered,
    Dead,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Verifies the hash chain of the audit log.
    Verify,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Reads a token on stdin and prints its sha256 (the `sha256` form of a token file entry).
    Hash,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RulesCommand {
    /// Checks a classification rules file (TOML) without a server.
    Check {
        /// The rules file.
        file: PathBuf,
    },
}
