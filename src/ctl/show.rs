//! Reading commands of `ctl` and the text they print.

use std::collections::BTreeSet;
use std::process::ExitCode;

use super::{Clients, CtlError, print_json};
use crate::pb::v1 as pb;

/// `ROLLOUT_STATE_SUCCEEDED` → `SUCCEEDED`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

pub fn state_name(state: i32) -> String {
    pb::RolloutState::try_from(state)
        .map(|s| short(s.as_str_name(), "ROLLOUT_STATE_"))
        .unwrap_or_else(|_| state.to_string())
}

pub fn is_final(state: i32) -> bool {
    matches!(
        pb::RolloutState::try_from(state),
        Ok(pb::RolloutState::Succeeded | pb::RolloutState::Failed | pb::RolloutState::RolledBack)
    )
}

fn time(value: Option<&pbjson_types::Timestamp>) -> String {
    value
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".to_owned())
}

/// `12:00:01  APPLYING    message`.
pub fn step_line(step: &pb::RolloutStep) -> String {
    format!("{}  {:<12} {}", time(step.time.as_ref()), state_name(step.state), step.message)
}

pub fn print_plan(plan: &pb::PatchPlan) {
    let kind =
        pb::PlanKind::try_from(plan.kind).map(|k| short(k.as_str_name(), "PLAN_KIND_")).unwrap_or_default();
    println!(
        "plan {} ({kind}, desired generation {}, base {})",
        plan.id, plan.desired_generation, plan.base_hash
    );
    if plan.operations.is_empty() {
        println!("  no operations: the runtime already matches");
    }
    for operation in &plan.operations {
        println!("  - {operation}");
    }
    for warning in &plan.warnings {
        println!("  ! {warning}");
    }
}

fn edge_kind(kind: i32) -> String {
    pb::EdgeKind::try_from(kind).map(|k| short(k.as_str_name(), "EDGE_KIND_")).unwrap_or_default()
}

fn trust(level: i32) -> String {
    pb::TrustLevel::try_from(level)
        .map(|t| short(t.as_str_name(), "TRUST_LEVEL_").to_lowercase())
        .unwrap_or_default()
}

fn edges(topology: &pb::Topology) -> BTreeSet<String> {
    topology
        .edges
        .iter()
        .map(|e| format!("{} -{}-> {}", e.from_agent_id, edge_kind(e.kind), e.to_agent_id))
        .collect()
}

fn routes(topology: &pb::Topology) -> BTreeSet<String> {
    topology
        .routes
        .iter()
        .map(|r| {
            let m = r.r#match.clone().unwrap_or_default();
            let account =
                if m.account_id.is_empty() { String::new() } else { format!(" account={}", m.account_id) };
            format!("{}{account} -> {}", m.channel, r.agent_id)
        })
        .collect()
}

/// The differences between two topologies as readable lines (`+`, `-`, `~`).
pub fn topology_changes(before: &pb::Topology, after: &pb::Topology) -> Vec<String> {
    let mut lines = Vec::new();
    let nodes = |t: &pb::Topology| {
        t.nodes.iter().map(|n| (n.agent_id.clone(), n.clone())).collect::<std::collections::BTreeMap<_, _>>()
    };
    let (old, new) = (nodes(before), nodes(after));
    for (id, node) in &new {
        match old.get(id) {
            None => lines.push(format!(
                "+ agent {id} ({}, {})",
                if node.role.is_empty() { "-" } else { &node.role },
                trust(node.trust)
            )),
            Some(previous) if previous != node => lines.push(format!("~ agent {id}")),
            _ => {}
        }
    }
    lines.extend(old.keys().filter(|id| !new.contains_key(*id)).map(|id| format!("- agent {id}")));
    let (old_edges, new_edges) = (edges(before), edges(after));
    lines.extend(new_edges.difference(&old_edges).map(|e| format!("+ edge {e}")));
    lines.extend(old_edges.difference(&new_edges).map(|e| format!("- edge {e}")));
    let (old_routes, new_routes) = (routes(before), routes(after));
    lines.extend(new_routes.difference(&old_routes).map(|r| format!("+ route {r}")));
    lines.extend(old_routes.difference(&new_routes).map(|r| format!("- route {r}")));
    lines
}

/// The domain topology of a wire topology (what a picture needs: agents, trust, edges).
fn domain_topology(topology: &pb::Topology) -> crate::domain::Topology {
    use crate::domain::model::TrustLevel;
    use crate::domain::topology::{EdgeKind, TopologyEdge, TopologyNode};
    let nodes = topology
        .nodes
        .iter()
        .map(|n| TopologyNode {
            agent_id: n.agent_id.clone(),
            role: n.role.clone(),
            trust: match pb::TrustLevel::try_from(n.trust) {
                Ok(pb::TrustLevel::Elevated) => TrustLevel::Elevated,
                Ok(pb::TrustLevel::Standard) => TrustLevel::Standard,
                _ => TrustLevel::Restricted,
            },
            model: None,
            tools_profile: None,
            workspace: String::new(),
            pins: Default::default(),
        })
        .collect();
    let edges = topology
        .edges
        .iter()
        .filter_map(|e| {
            let kind = match pb::EdgeKind::try_from(e.kind) {
                Ok(pb::EdgeKind::Send) => EdgeKind::Send,
                Ok(pb::EdgeKind::Spawn) => EdgeKind::Spawn,
                _ => return None,
            };
            Some(TopologyEdge { from: e.from_agent_id.clone(), to: e.to_agent_id.clone(), kind })
        })
        .collect();
    crate::domain::Topology::new(nodes, edges, Vec::new())
}

/// `topology show --format mermaid|dot|svg`: drawn here from what the server answers.
pub async fn picture(
    clients: &Clients,
    format: super::TopologyFormat,
    source: crate::domain::picture::Source,
) -> Result<ExitCode, CtlError> {
    use crate::domain::picture;
    let observed = clients
        .topology()
        .get_topology(pb::GetTopologyRequest { runtime: clients.runtime(), ..Default::default() })
        .await?
        .into_inner()
        .topology;
    let desired = match clients
        .topology()
        .get_desired_topology(pb::GetDesiredTopologyRequest { generation: 0, runtime: clients.runtime() })
        .await
    {
        Ok(answer) => answer.into_inner().desired.and_then(|d| d.topology),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return Err(status.into()),
    };
    let (desired, observed) = (desired.as_ref().map(domain_topology), observed.as_ref().map(domain_topology));
    let mut drawn = picture::build(desired.as_ref(), observed.as_ref(), source);
    if source != picture::Source::Desired {
        let catalog = clients
            .topology()
            .get_agent_catalog(pb::GetAgentCatalogRequest { runtime: clients.runtime() })
            .await?
            .into_inner();
        let reach = catalog
            .agents
            .iter()
            .map(|agent| {
                let reach = picture::Reach {
                    woken_by: agent.woken_by.clone(),
                    inbound: agent.inbound.iter().map(|r| format!("{}/{}", r.channel, r.account)).collect(),
                    open_dm: agent.inbound.iter().any(|r| r.dm_policy == "open"),
                };
                (agent.agent_id.clone(), reach)
            })
            .collect();
        drawn = drawn.with_reach(&reach);
    }
    let text = match format {
        super::TopologyFormat::Mermaid => picture::mermaid(&drawn),
        super::TopologyFormat::Dot => picture::dot(&drawn),
        _ => picture::svg(&drawn),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub async fn status(clients: &Clients, json: bool) -> Result<ExitCode, CtlError> {
    let version = clients.meta().get_version(pb::GetVersionRequest {}).await?.into_inner();
    let readiness = clients.meta().get_readiness(pb::GetReadinessRequest {}).await?.into_inner();
    let drift = clients
        .drift()
        .get_drift_summary(pb::GetDriftSummaryRequest { runtime: clients.runtime() })
        .await?
        .into_inner();
    if json {
        print_json(&serde_json::json!({"version": version, "readiness": readiness, "drift": drift}));
    } else {
        println!("{} {} ({})", version.service, version.version, version.git_sha);
        println!("ready: {}", if readiness.ready { "yes" } else { "NO" });
        for component in &readiness.components {
            println!(
                "  {:<10} {:<5} {}",
                component.name,
                if component.ready { "ok" } else { "NOT" },
                component.detail
            );
        }
        println!(
            "drift: {} (desired generation {}, {} need attention)",
            if drift.in_sync { "in sync" } else { "drifted" },
            drift.desired_generation,
            drift.needs_attention
        );
    }
    Ok(if readiness.ready { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub async fn topology(clients: &Clients, desired: bool, json: bool) -> Result<ExitCode, CtlError> {
    let topology = if desired {
        clients
            .topology()
            .get_desired_topology(pb::GetDesiredTopologyRequest { generation: 0, runtime: clients.runtime() })
            .await?
            .into_inner()
            .desired
            .and_then(|d| d.topology)
    } else {
        clients
            .topology()
            .get_topology(pb::GetTopologyRequest { runtime: clients.runtime(), ..Default::default() })
            .await?
            .into_inner()
            .topology
    }
    .unwrap_or_default();
    if json {
        print_json(&topology);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:<20} {:<11} MODEL", "AGENT", "ROLE", "TRUST");
    for node in &topology.nodes {
        println!("{:<24} {:<20} {:<11} {}", node.agent_id, node.role, trust(node.trust), node.model);
    }
    println!();
    println!("EDGES");
    for edge in edges(&topology) {
        println!("  {edge}");
    }
    println!("ROUTES");
    for route in routes(&topology) {
        println!("  {route}");
    }
    Ok(ExitCode::SUCCESS)
}

fn drift_line(item: &pb::DriftItem) -> String {
    let state = pb::DriftState::try_from(item.state)
        .map(|s| short(s.as_str_name(), "DRIFT_STATE_"))
        .unwrap_or_default();
    let explanation = item.difference.as_ref().map(|d| d.explanation.as_str()).unwrap_or("");
    format!("{:<10} {:<48} {explanation}", state, item.key)
}

pub async fn drift_list(clients: &Clients, filter: &str, json: bool) -> Result<ExitCode, CtlError> {
    let mut page_token = String::new();
    let mut items = Vec::new();
    loop {
        let request = pb::ListDriftItemsRequest {
            page_size: 200,
            page_token: page_token.clone(),
            filter: filter.to_owned(),
            runtime: clients.runtime(),
        };
        let page = clients.drift().list_drift_items(request).await?.into_inner();
        items.extend(page.items);
        if page.next_page_token.is_empty() || items.len() >= 10_000 {
            break;
        }
        page_token = page.next_page_token;
    }
    if json {
        print_json(&items);
    } else if items.is_empty() {
        println!("no drift items");
    } else {
        for item in &items {
            println!("{}", drift_line(item));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn drift_watch(clients: &Clients, json: bool) -> Result<ExitCode, CtlError> {
    let mut stream =
        clients.drift().watch_drift(pb::WatchDriftRequest { runtime: clients.runtime() }).await?.into_inner();
    while let Some(event) = stream.message().await? {
        let Some(item) = event.item.as_ref() else { continue };
        if json {
            if let Ok(line) = serde_json::to_string(&event) {
                println!("{line}");
            }
        } else {
            println!("{}", drift_line(item));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> pb::TopologyNode {
        pb::TopologyNode { agent_id: id.to_owned(), ..Default::default() }
    }

    #[test]
    fn changes_name_agents_edges_and_routes() {
        let before = pb::Topology {
            nodes: vec![node("lead"), node("writer")],
            edges: vec![pb::TopologyEdge {
                from_agent_id: "lead".into(),
                to_agent_id: "writer".into(),
                kind: pb::EdgeKind::Send.into(),
            }],
            ..Default::default()
        };
        let after = pb::Topology { nodes: vec![node("lead"), node("qa")], ..Default::default() };
        let lines = topology_changes(&before, &after);
        assert_eq!(lines, ["+ agent qa (-, unspecified)", "- agent writer", "- edge lead -SEND-> writer"]);
        assert!(topology_changes(&after, &after).is_empty());
    }
}
