//! `jhf-warp ctl`: the operator CLI, a client of the gRPC API through the `jhf-warp-api` crate.
//!
//! Every command prints readable text, or with `--output json` the proto3 JSON of what the
//! server answered (one document per line for streams). A refused call prints its gRPC code,
//! reason and details on one line and exits 1. `rollout create --watch` exits with how the
//! rollout ended: 0 SUCCEEDED, 2 FAILED, 3 ROLLED_BACK.

mod client;
mod health;
mod show;

use client::connect;
pub use client::{Clients, CtlError, describe_status};
pub use health::healthcheck;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::pb::v1 as pb;

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

fn request_id() -> String {
    format!("ctl-{}", crate::random::random_hex(12).unwrap_or_else(|_| "0".repeat(24)))
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("cannot print JSON: {error}"),
    }
}

/// Runs `ctl` and returns the exit code.
pub async fn run(args: CtlArgs) -> ExitCode {
    match dispatch(&args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: &CtlArgs) -> Result<ExitCode, CtlError> {
    let json = args.output == Output::Json;
    match &args.command {
        CtlCommand::Token { command: TokenCommand::Hash } => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| CtlError::Usage(e.to_string()))?;
            let token = line.trim();
            if token.is_empty() {
                return Err(CtlError::Usage("no token on stdin".to_owned()));
            }
            use sha2::Digest;
            let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
            if json {
                print_json(&serde_json::json!({"sha256": digest}))
            } else {
                println!("{digest}")
            }
            return Ok(ExitCode::SUCCESS);
        }
        CtlCommand::Rules { command: RulesCommand::Check { file } } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
            return match crate::domain::classify::Rules::parse(&text) {
                Ok(rules) => {
                    if json {
                        print_json(&serde_json::json!({"valid": true, "version": rules.version}));
                    } else {
                        println!("{}: valid (rules version {})", file.display(), rules.version);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    if json {
                        print_json(&serde_json::json!({"valid": false, "error": error.to_string()}));
                    } else {
                        eprintln!("{}: invalid: {error}", file.display());
                    }
                    Ok(ExitCode::FAILURE)
                }
            };
        }
        _ => {}
    }
    let clients = connect(args).await?;
    match &args.command {
        CtlCommand::Status => show::status(&clients, json).await,
        CtlCommand::Topology { command: TopologyCommand::Show { desired, format, source } } => match format {
            TopologyFormat::Mermaid | TopologyFormat::Dot | TopologyFormat::Svg => {
                let source = source.parse().map_err(CtlError::Usage)?;
                show::picture(&clients, *format, source).await
            }
            _ => show::topology(&clients, *desired, json || *format == TopologyFormat::Json).await,
        },
        CtlCommand::Desired { command: DesiredCommand::Apply { file, yes } } => {
            desired_apply(&clients, file, *yes, json).await
        }
        CtlCommand::Drift { command: DriftCommand::List { filter } } => {
            show::drift_list(&clients, filter, json).await
        }
        CtlCommand::Drift { command: DriftCommand::Watch } => show::drift_watch(&clients, json).await,
        CtlCommand::Plan { repair } => {
            let plan = plan(&clients, *repair).await?;
            if json {
                print_json(&plan)
            } else {
                show::print_plan(&plan)
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Rollout { command } => rollout(&clients, command, json).await,
        CtlCommand::Events { command } => events(&clients, command, json).await,
        CtlCommand::Audit { command: AuditCommand::Verify } => {
            let answer =
                clients.control().verify_audit_chain(pb::VerifyAuditChainRequest {}).await?.into_inner();
            if json {
                print_json(&answer);
            } else if answer.intact {
                println!(
                    "audit chain intact: {} events checked, sealed up to #{}",
                    answer.events_checked, answer.sealed_seq
                );
            } else {
                println!("audit chain BROKEN at #{}: {}", answer.first_broken_seq, answer.reason);
            }
            Ok(if answer.intact { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        CtlCommand::Token { .. } | CtlCommand::Rules { .. } => Ok(ExitCode::SUCCESS),
    }
}

async fn plan(clients: &Clients, repair: bool) -> Result<pb::PatchPlan, CtlError> {
    let kind = if repair { pb::PlanKind::Repair } else { pb::PlanKind::Apply };
    let answer = clients.drift().plan_patch(pb::PlanPatchRequest { kind: kind.into() }).await?.into_inner();
    answer.plan.ok_or_else(|| CtlError::Usage("the server returned no plan".to_owned()))
}

/// Reads a team file: YAML or JSON, either a Topology or `{topology: …}`.
pub fn read_team_file(path: &std::path::Path) -> Result<pb::Topology, CtlError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CtlError::Usage(format!("{}: {e}", path.display())))?;
    if text.len() > 16 << 20 {
        return Err(CtlError::Usage(format!("{}: larger than 16 MiB", path.display())));
    }
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(_) => serde_yaml_ng::from_str(&text)
            .map_err(|e| CtlError::Usage(format!("{}: neither JSON nor YAML: {e}", path.display())))?,
    };
    let value = match value.get("topology") {
        Some(inner) if value.as_object().is_some_and(|o| o.len() == 1) => inner.clone(),
        _ => value,
    };
    serde_json::from_value(value)
        .map_err(|e| CtlError::Usage(format!("{}: not a topology: {e}", path.display())))
}

async fn desired_apply(
    clients: &Clients,
    file: &std::path::Path,
    yes: bool,
    json: bool,
) -> Result<ExitCode, CtlError> {
    let topology = read_team_file(file)?;
    let current = match clients
        .topology()
        .get_desired_topology(pb::GetDesiredTopologyRequest { generation: 0 })
        .await
    {
        Ok(answer) => answer.into_inner().desired,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return Err(status.into()),
    };
    let empty = pb::Topology::default();
    let before = current.as_ref().and_then(|c| c.topology.as_ref()).unwrap_or(&empty);
    let changes = show::topology_changes(before, &topology);
    if changes.is_empty() {
        if !json {
            println!("no change: the desired topology already is {}", file.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        println!("desired topology changes ({}):", file.display());
        for line in &changes {
            println!("  {line}");
        }
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CtlError::Usage("not applied: pass --yes to apply without a terminal".to_owned()));
        }
        print!("apply? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not applied");
            return Ok(ExitCode::FAILURE);
        }
    }
    let request = pb::PutDesiredTopologyRequest {
        topology: Some(topology),
        etag: current.map(|c| c.etag).unwrap_or_default(),
        request_id: request_id(),
        validate_only: false,
    };
    let stored = clients.topology().put_desired_topology(request).await?.into_inner();
    if json {
        print_json(&stored);
    } else if let Some(desired) = stored.desired {
        println!("stored as generation {} (etag {})", desired.generation, desired.etag);
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollout(clients: &Clients, command: &RolloutCommand, json: bool) -> Result<ExitCode, CtlError> {
    match command {
        RolloutCommand::Create { plan: plan_id, dry_run, watch } => {
            let plan = match plan_id {
                Some(id) => clients
                    .drift()
                    .get_patch_plan(pb::GetPatchPlanRequest { plan_id: id.clone() })
                    .await?
                    .into_inner()
                    .plan
                    .ok_or_else(|| CtlError::Usage("the server returned no plan".to_owned()))?,
                None => plan(clients, false).await?,
            };
            if !json {
                println!("planned   {} ({} operation(s))", plan.id, plan.operations.len());
                for operation in &plan.operations {
                    println!("            {operation}");
                }
            }
            if plan.operations.is_empty() && !json {
                println!("nothing to roll out: the runtime already matches");
                return Ok(ExitCode::SUCCESS);
            }
            let request = pb::CreateRolloutRequest {
                plan_id: plan.id.clone(),
                dry_run: *dry_run,
                request_id: request_id(),
                validate_only: false,
            };
            let rollout =
                clients.drift().create_rollout(request).await?.into_inner().rollout.unwrap_or_default();
            if !*watch {
                if json {
                    print_json(&rollout)
                } else {
                    println!("rollout   {} created ({})", rollout.id, show::state_name(rollout.state))
                }
                return Ok(ExitCode::SUCCESS);
            }
            follow(clients, &rollout.id, json).await
        }
        RolloutCommand::Watch { rollout_id } => follow(clients, rollout_id, json).await,
        RolloutCommand::Rollback { rollout_id } => {
            let request = pb::RollbackRolloutRequest {
                rollout_id: rollout_id.clone(),
                request_id: request_id(),
                validate_only: false,
            };
            let answer = clients.drift().rollback_rollout(request).await?.into_inner();
            let rollout = answer.rollout.unwrap_or_default();
            if json {
                print_json(&rollout)
            } else {
                println!("rollout {} is {}", rollout.id, show::state_name(rollout.state))
            }
            Ok(exit_for(rollout.state))
        }
        RolloutCommand::List => {
            let answer = clients
                .drift()
                .list_rollouts(pb::ListRolloutsRequest { page_size: 50, page_token: String::new() })
                .await?
                .into_inner();
            if json {
                print_json(&answer);
            } else {
                for rollout in &answer.rollouts {
                    println!(
                        "{:<40} {:<12} plan {}",
                        rollout.id,
                        show::state_name(rollout.state),
                        rollout.plan_id
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn events(clients: &Clients, command: &EventsCommand, json: bool) -> Result<ExitCode, CtlError> {
    let print = |delivery: &pb::Delivery| {
        let state = pb::DeliveryState::try_from(delivery.state)
            .map(|s| s.as_str_name().trim_start_matches("DELIVERY_STATE_").to_owned())
            .unwrap_or_default();
        println!(
            "{:>6} {:<16} {:<10} {:>3} {:<36} {:<32} {}",
            delivery.sequence,
            delivery.sink,
            state,
            delivery.attempts,
            delivery.event_id,
            delivery.event_type.trim_start_matches("dev.jhf.warp."),
            delivery.last_error
        );
    };
    match command {
        EventsCommand::List { sink, state } => {
            let state = match state {
                None => pb::DeliveryState::Unspecified,
                Some(DeliveryStateArg::Pending) => pb::DeliveryState::Pending,
                Some(DeliveryStateArg::Delivered) => pb::DeliveryState::Delivered,
                Some(DeliveryStateArg::Dead) => pb::DeliveryState::Dead,
            };
            let request = pb::ListDeliveriesRequest {
                sink: sink.clone(),
                state: state.into(),
                page_size: 100,
                page_token: String::new(),
            };
            let answer = clients.control().list_deliveries(request).await?.into_inner();
            if json {
                print_json(&answer);
            } else {
                answer.deliveries.iter().for_each(print);
            }
        }
        EventsCommand::Redeliver { sink, event_id } => {
            let request = pb::RedeliverEventRequest {
                sink: sink.clone(),
                event_id: event_id.clone(),
                request_id: request_id(),
                validate_only: false,
            };
            let answer = clients.control().redeliver_event(request).await?.into_inner();
            let delivery = answer.delivery.unwrap_or_default();
            if json {
                print_json(&delivery);
            } else {
                print(&delivery);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit code of a finished rollout: 0 SUCCEEDED, 2 FAILED, 3 ROLLED_BACK (1 is a refused call).
fn exit_for(state: i32) -> ExitCode {
    match pb::RolloutState::try_from(state) {
        Ok(pb::RolloutState::Succeeded) => ExitCode::SUCCESS,
        Ok(pb::RolloutState::RolledBack) => ExitCode::from(3),
        _ => ExitCode::from(2),
    }
}

/// Prints each step as the server reports it, until the rollout is final.
async fn follow(clients: &Clients, rollout_id: &str, json: bool) -> Result<ExitCode, CtlError> {
    let mut stream = clients
        .drift()
        .watch_rollout(pb::WatchRolloutRequest { rollout_id: rollout_id.to_owned() })
        .await?
        .into_inner();
    let mut shown = 0;
    let mut last = None;
    while let Some(event) = stream.message().await? {
        let Some(rollout) = event.rollout else { continue };
        if json {
            if let Ok(line) = serde_json::to_string(&rollout) {
                println!("{line}");
            }
        } else {
            for step in rollout.steps.iter().skip(shown) {
                println!("{}", show::step_line(step));
            }
        }
        shown = rollout.steps.len();
        let finished = show::is_final(rollout.state);
        last = Some(rollout);
        if finished {
            break;
        }
    }
    let rollout = last.ok_or_else(|| CtlError::Usage("the watch ended without a rollout".to_owned()))?;
    if !json {
        let error = if rollout.error.is_empty() { String::new() } else { format!(": {}", rollout.error) };
        println!("rollout   {} ended {}{error}", rollout.id, show::state_name(rollout.state));
    }
    Ok(exit_for(rollout.state))
}
