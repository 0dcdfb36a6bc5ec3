//! Synthetic OpenClaw installations for benchmarks and tests of scale: a real state tree
//! (config, workspaces, agent dirs) of any size, in the current keyed roster shape.
//!
//! Not part of the service; public so benches and integration tests can share it.

use std::path::Path;

use serde_json::{Value, json};

/// Returns the id of synthetic agent `index`.
pub fn agent_id(index: usize) -> String {
    format!("agent-{index:05}")
}

/// Returns a valid `openclaw.json` for `agents` agents: the first `clique` may message each
/// other (visibility `all`; sandboxed sessions are not clamped to their spawn tree), every agent
/// may spawn the next two, every agent has one telegram route, and every third agent is
/// sandboxed.
pub fn team_config(agents: usize, clique: usize) -> String {
    let mut entries = serde_json::Map::new();
    for index in 0..agents {
        let spawn: Vec<String> =
            (1..=2).map(|step| index + step).filter(|&i| i < agents).map(agent_id).collect();
        let mut entry = json!({
            "name": format!("Agent {index}"),
            "model": "claude-cli/claude-sonnet-4-5",
            "subagents": { "allowAgents": spawn },
        });
        if index % 3 == 0 {
            entry["sandbox"] = json!({ "mode": "all" });
        }
        entries.insert(agent_id(index), entry);
    }
    let allow: Vec<String> = (0..clique.min(agents)).map(agent_id).collect();
    let bindings: Vec<Value> = (0..agents)
        .map(|index| {
            json!({ "agentId": agent_id(index), "match": { "channel": "telegram", "accountId": agent_id(index) } })
        })
        .collect();
    let config = json!({
        "agents": {
            "ownership": "explicit",
            "defaults": {
                "subagents": { "maxSpawnDepth": 2 },
                "sandbox": { "sessionToolsVisibility": "all" },
            },
            "entries": entries,
        },
        "tools": { "sessions": { "visibility": "all" }, "agentToAgent": { "enabled": true, "allow": allow } },
        "bindings": bindings,
    });
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes a state tree under `root/state` (and `root/cli/version.txt`, as fixtures have) with
/// every agent's workspace and agent dir.
pub fn write_state_tree(root: &Path, agents: usize, clique: usize) -> std::io::Result<()> {
    let state = root.join("state");
    std::fs::create_dir_all(&state)?;
    std::fs::write(state.join("openclaw.json"), team_config(agents, clique))?;
    for index in 0..agents {
        let id = agent_id(index);
        std::fs::create_dir_all(state.join(format!("workspace-{id}")))?;
        std::fs::create_dir_all(state.join("agents").join(&id).join("agent"))?;
    }
    std::fs::create_dir_all(root.join("cli"))?;
    std::fs::write(root.join("cli/version.txt"), "OpenClaw 2026.9.6 (synthetic)\n")
}
