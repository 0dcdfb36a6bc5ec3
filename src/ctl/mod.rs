//! `jhf-warp ctl`: the operator CLI, a client of the gRPC API (the generated clients of the
//! `jhf-warp-api` crate); it shares the pure domain (pictures, rules) and nothing of the
//! server's use cases or store.
//!
//! Every command prints readable text, or with `--output json` the proto3 JSON of what the
//! server answered (one document per line for streams). A refused call prints its gRPC code,
//! reason and details on one line and exits 1. `rollout create --watch` exits with how the
//! rollout ended: 0 SUCCEEDED, 2 FAILED, 3 ROLLED_BACK.

mod args;
mod client;
mod commands;
mod fleet;
mod health;
mod show;

pub use args::*;
use client::connect;
pub use client::{Clients, CtlError, describe_status};
pub use commands::read_team_file;
pub use health::healthcheck;

use std::io::BufRead;
use std::process::ExitCode;

use crate::pb::v1 as pb;

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
        CtlCommand::Token { command: TokenCommand::Hash } => token_hash(json),
        CtlCommand::Rules { command: RulesCommand::Check { file } } => rules_check(file, json),
        CtlCommand::Status => show::status(&connect(args).await?, json).await,
        CtlCommand::Topology { command: TopologyCommand::Show { desired, format, source } } => {
            let clients = connect(args).await?;
            match format {
                TopologyFormat::Mermaid | TopologyFormat::Dot | TopologyFormat::Svg => {
                    let source = source.parse().map_err(CtlError::Usage)?;
                    show::picture(&clients, *format, source).await
                }
                _ => show::topology(&clients, *desired, json || *format == TopologyFormat::Json).await,
            }
        }
        CtlCommand::Desired { command: DesiredCommand::Apply { file, yes } } => {
            commands::desired_apply(&connect(args).await?, file, *yes, json).await
        }
        CtlCommand::Drift { command: DriftCommand::List { filter } } => {
            show::drift_list(&connect(args).await?, filter, json).await
        }
        CtlCommand::Drift { command: DriftCommand::Watch } => {
            show::drift_watch(&connect(args).await?, json).await
        }
        CtlCommand::Plan { repair } => {
            let plan = commands::plan(&connect(args).await?, *repair).await?;
            if json {
                print_json(&plan)
            } else {
                show::print_plan(&plan)
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Rollout { command } => commands::rollout(&connect(args).await?, command, json).await,
        CtlCommand::Events { command } => commands::events(&connect(args).await?, command, json).await,
        CtlCommand::Audit { command: AuditCommand::Verify } => {
            audit_verify(&connect(args).await?, json).await
        }
        CtlCommand::Fleet { command } => fleet::run(&connect(args).await?, command, json).await,
    }
}

/// `token hash`: the sha256 form of the token on stdin (for a token file).
fn token_hash(json: bool) -> Result<ExitCode, CtlError> {
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
    Ok(ExitCode::SUCCESS)
}

/// `rules check`: whether a rules file compiles (no server needed).
fn rules_check(file: &std::path::Path, json: bool) -> Result<ExitCode, CtlError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    match crate::domain::classify::Rules::parse(&text) {
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
    }
}

/// `audit verify`: exit 2 when the chain is broken.
async fn audit_verify(clients: &Clients, json: bool) -> Result<ExitCode, CtlError> {
    let answer = clients.control().verify_audit_chain(pb::VerifyAuditChainRequest {}).await?.into_inner();
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
