//! `ctl fleet …`: the runtimes of the fleet (status, runtimes, drift) and fleet rollouts.

use std::process::ExitCode;

use super::args::{FleetCommand, FleetRolloutCommand};
use super::client::{Clients, CtlError};
use super::{print_json, read_team_file, request_id};
use crate::pb::v1 as pb;

pub async fn run(clients: &Clients, command: &FleetCommand, json: bool) -> Result<ExitCode, CtlError> {
    match command {
        FleetCommand::Status { selector } => status(clients, selector, json).await,
        FleetCommand::Runtimes { selector } => runtimes(clients, selector, false, json).await,
        FleetCommand::Drift { selector } => runtimes(clients, selector, true, json).await,
        FleetCommand::Rollout { command } => rollout(clients, command, json).await,
    }
}

fn health_name(value: i32) -> String {
    pb::RuntimeHealth::try_from(value)
        .map(|h| h.as_str_name().trim_start_matches("RUNTIME_HEALTH_").to_owned())
        .unwrap_or_else(|_| value.to_string())
}

async fn status(clients: &Clients, selector: &str, json: bool) -> Result<ExitCode, CtlError> {
    let request = pb::GetFleetSummaryRequest { selector: selector.to_owned() };
    let summary = clients.control().get_fleet_summary(request).await?.into_inner();
    if json {
        print_json(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    let line = |counts: &pb::FleetCounts| {
        let health: Vec<String> = counts
            .by_health
            .iter()
            .filter(|h| h.runtimes > 0)
            .map(|h| format!("{} {}", h.runtimes, health_name(h.health).to_lowercase()))
            .collect();
        format!(
            "{} runtime(s): {}; {} in sync, {} drifting ({} need attention), {} rolling out",
            counts.runtimes,
            if health.is_empty() { "none".to_owned() } else { health.join(", ") },
            counts.in_sync,
            counts.drifting,
            counts.needs_attention,
            counts.rollouts_in_flight
        )
    };
    let total = summary.total.unwrap_or_default();
    let selected =
        if summary.selector.is_empty() { String::new() } else { format!(" ({})", summary.selector) };
    println!("fleet{selected}: {}", line(&total));
    for label in &summary.by_label {
        println!(
            "  {}={}: {}",
            label.key,
            label.value,
            line(label.counts.as_ref().unwrap_or(&pb::FleetCounts::default()))
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn runtimes(
    clients: &Clients,
    selector: &str,
    drifting_only: bool,
    json: bool,
) -> Result<ExitCode, CtlError> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListRuntimesRequest { selector: selector.to_owned(), page_size: 1000, page_token };
        let page = clients.control().list_runtimes(request).await?.into_inner();
        all.extend(page.runtimes);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if drifting_only {
        all.retain(|r| r.drift_open > 0);
    }
    if json {
        print_json(&all);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<12} {:<16} {:>6} {:>6} {:>9}  {:<28} ROLLOUT",
        "RUNTIME", "HEALTH", "OWNER", "AGENTS", "DRIFT", "ATTENTION", "ADDRESS"
    );
    for runtime in &all {
        let spec = runtime.spec.clone().unwrap_or_default();
        let rollout = if runtime.active_rollout_id.is_empty() {
            "-".to_owned()
        } else {
            format!("{} {}", runtime.active_rollout_id, runtime.active_rollout_state)
        };
        println!(
            "{:<24} {:<12} {:<16} {:>6} {:>6} {:>9}  {:<28} {rollout}",
            spec.name,
            health_name(runtime.health),
            if runtime.owner.is_empty() { "-" } else { &runtime.owner },
            runtime.agents,
            runtime.drift_open,
            runtime.drift_needs_attention,
            spec.address,
        );
    }
    if all.is_empty() {
        println!("(no runtime matches)");
    }
    Ok(ExitCode::SUCCESS)
}

fn state_name(value: i32) -> String {
    pb::FleetRolloutState::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("FLEET_ROLLOUT_STATE_").to_owned())
        .unwrap_or_else(|_| value.to_string())
}

fn target_state(value: i32) -> String {
    pb::FleetTargetState::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("FLEET_TARGET_STATE_").to_owned())
        .unwrap_or_else(|_| value.to_string())
}

fn is_final(state: i32) -> bool {
    [pb::FleetRolloutState::Succeeded, pb::FleetRolloutState::Failed, pb::FleetRolloutState::Cancelled]
        .iter()
        .any(|s| *s as i32 == state)
}

fn print_rollout(rollout: &pb::FleetRollout) {
    println!(
        "fleet rollout {}: {} — wave {} of {} (selector {:?}, revision {})",
        rollout.id,
        state_name(rollout.state),
        rollout.current_wave + 1,
        rollout.waves,
        rollout.selector,
        rollout.revision
    );
    for target in &rollout.targets {
        let detail = [target.rollout_id.as_str(), target.error.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "  wave {}  {:<24} {:<10} {detail}",
            target.wave + 1,
            target.runtime,
            target_state(target.state)
        );
    }
    if !rollout.error.is_empty() {
        println!("  {}", rollout.error);
    }
}

/// Names separated by commas, blanks dropped.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn create_request(
    file: &std::path::Path,
    selector: &str,
    waves: &str,
    wave: &[String],
) -> Result<pb::CreateFleetRolloutRequest, CtlError> {
    Ok(pb::CreateFleetRolloutRequest {
        topology: Some(read_team_file(file)?),
        selector: selector.to_owned(),
        wave_steps: comma_list(waves),
        waves: wave.iter().map(|w| pb::Wave { runtimes: comma_list(w) }).collect(),
        request_id: request_id(),
        validate_only: false,
    })
}

async fn rollout(clients: &Clients, command: &FleetRolloutCommand, json: bool) -> Result<ExitCode, CtlError> {
    let show = |rollout: Option<pb::FleetRollout>| {
        let rollout = rollout.unwrap_or_default();
        if json {
            print_json(&rollout)
        } else {
            print_rollout(&rollout)
        }
        Ok(ExitCode::SUCCESS)
    };
    let mut drift = clients.drift();
    match command {
        FleetRolloutCommand::Create { file, selector, waves, wave, watch } => {
            let request = create_request(file, selector, waves, wave)?;
            let created = drift.create_fleet_rollout(request).await?.into_inner().fleet_rollout;
            match created {
                Some(rollout) if *watch => follow(clients, &rollout.id, json).await,
                created => show(created),
            }
        }
        FleetRolloutCommand::Show { id } => {
            let request = pb::GetFleetRolloutRequest { fleet_rollout_id: id.clone() };
            show(drift.get_fleet_rollout(request).await?.into_inner().fleet_rollout)
        }
        FleetRolloutCommand::Watch { id } => follow(clients, id, json).await,
        FleetRolloutCommand::List => {
            let request = pb::ListFleetRolloutsRequest { page_size: 20, page_token: String::new() };
            let page = drift.list_fleet_rollouts(request).await?.into_inner();
            if json {
                print_json(&page.fleet_rollouts);
            } else {
                for rollout in &page.fleet_rollouts {
                    println!(
                        "{}  {:<10} wave {}/{}  {} runtime(s)  {}",
                        rollout.id,
                        state_name(rollout.state),
                        rollout.current_wave + 1,
                        rollout.waves,
                        rollout.targets.len(),
                        rollout.selector
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FleetRolloutCommand::Pause { id } => {
            let request =
                pb::PauseFleetRolloutRequest { fleet_rollout_id: id.clone(), request_id: request_id() };
            show(drift.pause_fleet_rollout(request).await?.into_inner().fleet_rollout)
        }
        FleetRolloutCommand::Resume { id } => {
            let request =
                pb::ResumeFleetRolloutRequest { fleet_rollout_id: id.clone(), request_id: request_id() };
            show(drift.resume_fleet_rollout(request).await?.into_inner().fleet_rollout)
        }
        FleetRolloutCommand::Cancel { id } => {
            let request =
                pb::CancelFleetRolloutRequest { fleet_rollout_id: id.clone(), request_id: request_id() };
            show(drift.cancel_fleet_rollout(request).await?.into_inner().fleet_rollout)
        }
    }
}

/// Follows a fleet rollout live until it ends: each runtime's change as it happens; exit 0
/// only when it SUCCEEDED.
async fn follow(clients: &Clients, id: &str, json: bool) -> Result<ExitCode, CtlError> {
    let request = pb::WatchFleetRolloutRequest { fleet_rollout_id: id.to_owned() };
    let mut stream = clients.drift().watch_fleet_rollout(request).await?.into_inner();
    let mut shown: std::collections::BTreeMap<String, (i32, String)> = std::collections::BTreeMap::new();
    let mut last = None;
    while let Some(message) = stream.message().await? {
        let Some(rollout) = message.fleet_rollout else { continue };
        if json {
            print_json(&rollout);
        } else {
            for target in &rollout.targets {
                let now = (target.state, target.rollout_id.clone());
                if shown.get(&target.runtime) != Some(&now) {
                    println!(
                        "wave {}  {:<24} {:<10} {}{}",
                        target.wave + 1,
                        target.runtime,
                        target_state(target.state),
                        target.rollout_id,
                        if target.error.is_empty() {
                            String::new()
                        } else {
                            format!(" — {}", target.error)
                        }
                    );
                    shown.insert(target.runtime.clone(), now);
                }
            }
        }
        let state = rollout.state;
        last = Some(rollout);
        if is_final(state) {
            break;
        }
    }
    let Some(rollout) = last else { return Ok(ExitCode::FAILURE) };
    if !json {
        println!("fleet rollout {} ended {}", rollout.id, state_name(rollout.state));
        if !rollout.error.is_empty() {
            println!("  {}", rollout.error);
        }
    }
    Ok(if rollout.state == pb::FleetRolloutState::Succeeded as i32 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
