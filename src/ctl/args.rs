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
