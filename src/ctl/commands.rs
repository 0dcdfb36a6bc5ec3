//! The commands that change things or follow them: desired apply, rollouts, event deliveries.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use super::args::{DeliveryStateArg, EventsCommand, RolloutCommand};
use super::client::Clients;
use super::{CtlError, print_json, request_id, show};
use crate::pb::v1 as pb;

pub async fn plan(clients: &Clients, repair: bool) -> Result<pb::PatchPlan, CtlError> {
    let kind = if repair { pb::PlanKind::Repair } else { pb::PlanKind::Apply };
    let answer = clients
        .drift()
        .plan_patch(pb::PlanPatchRequest { kind: kind.into(), runtime: clients.runtime() })
        .await?
        .into_inner();
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

pub async fn desired_apply(
    clients: &Clients,
    file: &std::path::Path,
    yes: bool,
    json: bool,
) -> Result<ExitCode, CtlError> {
    let topology = read_team_file(file)?;
    let current = match clients
        .topology()
        .get_desired_topology(pb::GetDesiredTopologyRequest { generation: 0, runtime: clients.runtime() })
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
        runtime: clients.runtime(),
    };
    let stored = clients.topology().put_desired_topology(request).await?.into_inner();
    if json {
        print_json(&stored);
    } else if let Some(desired) = stored.desired {
        println!("stored as generation {} (etag {})", desired.generation, desired.etag);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rollout(clients: &Clients, command: &RolloutCommand, json: bool) -> Result<ExitCode, CtlError> {
    match command {
        RolloutCommand::Create { plan: plan_id, dry_run, watch } => {
            let plan = match plan_id {
                Some(id) => clients
                    .drift()
                    .get_patch_plan(pb::GetPatchPlanRequest {
                        plan_id: id.clone(),
                        runtime: clients.runtime(),
                    })
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
            if plan.operations.is_empty() {
                // Nothing is created, whatever the output format.
                if json {
                    print_json(
                        &serde_json::json!({"created": false, "plan_id": plan.id, "reason": "nothing to roll out"}),
                    );
                } else {
                    println!("nothing to roll out: the runtime already matches");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let request = pb::CreateRolloutRequest {
                plan_id: plan.id.clone(),
                dry_run: *dry_run,
                request_id: request_id(),
                validate_only: false,
                runtime: clients.runtime(),
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
                runtime: clients.runtime(),
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
                .list_rollouts(pb::ListRolloutsRequest {
                    page_size: 50,
                    page_token: String::new(),
                    runtime: clients.runtime(),
                })
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

pub async fn events(clients: &Clients, command: &EventsCommand, json: bool) -> Result<ExitCode, CtlError> {
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
        .watch_rollout(pb::WatchRolloutRequest {
            rollout_id: rollout_id.to_owned(),
            runtime: clients.runtime(),
        })
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
