use serde_json::json;

use super::*;
use crate::domain::inventory::{RuntimeFacts, build_inventory};

fn inventory(raw: &str) -> crate::domain::inventory::Inventory {
    let facts = RuntimeFacts { openclaw_version: Some(TABLE_VERSION.to_owned()), ..RuntimeFacts::default() };
    build_inventory(raw, &facts)
}

fn access<'a>(inventory: &'a crate::domain::inventory::Inventory, id: &str) -> &'a AgentAccess {
    &inventory.agent(id).unwrap_or_else(|| panic!("agent {id}")).access
}

/// Prints jhf-warp's resolution of the config at `JHF_WARP_RESOLVE_CONFIG` as JSON (a tool for
/// comparing with a live Gateway by hand: `cargo test --lib print_resolution -- --ignored`).
#[test]
#[ignore]
fn print_resolution() {
    let path = std::env::var("JHF_WARP_RESOLVE_CONFIG").expect("JHF_WARP_RESOLVE_CONFIG");
    let raw = std::fs::read_to_string(path).expect("config");
    let inventory = inventory(&raw);
    let agents: serde_json::Map<String, serde_json::Value> = inventory
        .agents
        .iter()
        .map(|a| (a.id.clone(), serde_json::to_value(&a.access).unwrap_or_default()))
        .collect();
    println!(
        "RESOLUTION {}",
        json!({ "agents": agents, "findings": inventory.findings.iter().map(|f| &f.key).collect::<Vec<_>>() })
    );
}

#[test]
fn a_config_without_a_tools_block_lets_every_agent_message_every_other() {
    let inventory = inventory(r#"{ agents: { ownership: "explicit", entries: { a: {}, b: {}, c: {} } } }"#);
    assert_eq!(access(&inventory, "a").may_send_to, ["b", "c"]);
    assert_eq!(access(&inventory, "c").may_send_to, ["a", "b"]);
    assert!(inventory.agent_to_agent.enabled);
    assert_eq!(inventory.agent_to_agent.sessions_visibility, "all");
    assert_eq!(inventory.subagent_limits.max_spawn_depth, 5);
}

#[test]
fn an_allow_list_without_visibility_opens_every_listed_pair() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit", entries: { a: {}, b: {}, c: {} } },
             tools: { agentToAgent: { allow: ["a", "b"] } } }"#,
    );
    assert_eq!(access(&inventory, "a").may_send_to, ["b"]);
    assert_eq!(access(&inventory, "b").may_send_to, ["a"]);
    assert!(access(&inventory, "c").may_send_to.is_empty());
}

#[test]
fn allow_entries_follow_openclaw_matching() {
    let policy = |allow: serde_json::Value| {
        let root = json!({ "tools": { "agentToAgent": { "allow": allow } } });
        AgentToAgentPolicy::read(root.as_object().unwrap())
    };
    assert!(policy(json!([])).allows("a", "b"), "an empty list matches everyone");
    assert!(!policy(json!([""])).allows("a", "b"), "a blank-only list matches nobody");
    assert!(policy(json!([""])).allows("a", "a"), "an agent always reaches itself");
    assert!(policy(json!(["*"])).allows("a", "b"));
    assert!(!policy(json!(["Lead", "b"])).allows("lead", "b"), "exact entries are case-sensitive");
    assert!(policy(json!(["Res*", "w*r"])).allows("research", "writer"), "globs are not");
    assert!(!policy(json!(["w?iter", "a"])).allows("writer", "a"), "? is no wildcard");
    assert!(!policy(json!(["a*b*b"])).matches("ab"));
}

#[test]
fn profiles_and_denies_decide_who_holds_sessions_send() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit", entries: {
               lead: { tools: { profile: "coding" } },
               quiet: { tools: { profile: "minimal" } },
               muted: { tools: { deny: ["group:sessions"] } },
               chat: { tools: { profile: "messaging", deny: ["sessions_*"] } },
           } } }"#,
    );
    assert_eq!(access(&inventory, "lead").may_send_to, ["chat", "muted", "quiet"]);
    assert!(access(&inventory, "quiet").may_send_to.is_empty());
    assert!(access(&inventory, "muted").may_send_to.is_empty());
    assert!(access(&inventory, "chat").may_send_to.is_empty());
    assert_eq!(access(&inventory, "quiet").effective_tools, ["gateway", "session_status"]);
}

#[test]
fn a_sandboxed_requester_is_clamped_to_tree_and_keeps_only_sandbox_tools() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit", entries: {
               boxed: { sandbox: { mode: "all" }, tools: { profile: "messaging" } },
               free: {} } } }"#,
    );
    let boxed = access(&inventory, "boxed");
    assert_eq!(boxed.session_visibility, "tree");
    assert!(boxed.may_send_to.is_empty());
    assert!(!boxed.effective_tools.contains(&"theme".to_owned()));
    assert!(boxed.effective_tools.contains(&"sessions_send".to_owned()));
    assert_eq!(access(&inventory, "free").may_send_to, ["boxed"]);
}

#[test]
fn spawn_targets_follow_allow_agents_and_the_sandbox_rule() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit",
               defaults: { subagents: { allowAgents: ["*"] } },
               entries: {
                 lead: { subagents: { allowAgents: ["Worker", "ghost"] } },
                 worker: {},
                 boxed: { sandbox: { mode: "all" } },
                 half: { sandbox: { mode: "non-main" } },
                 none: { subagents: { allowAgents: [] } } } } }"#,
    );
    assert_eq!(access(&inventory, "lead").may_spawn, ["worker"]);
    assert_eq!(access(&inventory, "worker").may_spawn, ["boxed", "half", "lead", "none"]);
    assert_eq!(
        access(&inventory, "boxed").may_spawn,
        ["half"],
        "a sandboxed requester skips unsandboxed targets"
    );
    assert!(access(&inventory, "none").may_spawn.is_empty());
}

#[test]
fn elevated_needs_both_gates_and_a_sender() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit", entries: {
               open: {},
               off: { tools: { elevated: { enabled: false } } },
               picky: { tools: { elevated: { allowFrom: { telegram: ["42"] } } } } } },
             tools: { elevated: { allowFrom: { telegram: ["41", "42"], discord: ["*"] } } } }"#,
    );
    let open = &access(&inventory, "open").elevated;
    assert!(open.usable);
    assert_eq!(open.allow_from, ["discord:*", "telegram:41", "telegram:42"]);
    assert!(!access(&inventory, "off").elevated.usable);
    assert_eq!(access(&inventory, "picky").elevated.allow_from, ["telegram:42"]);
    let quiet = inventory_without_senders();
    assert!(quiet.elevated.enabled && !quiet.elevated.usable);
}

fn inventory_without_senders() -> AgentAccess {
    let inventory = inventory(r#"{ agents: { entries: { solo: {} } } }"#);
    access(&inventory, "solo").clone()
}

#[test]
fn trust_follows_the_documented_table() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit", entries: {
               host: { tools: { profile: "coding" } },
               boxed: { sandbox: { mode: "all" }, tools: { profile: "coding" } },
               rw: { sandbox: { mode: "all", workspaceAccess: "rw" }, tools: { profile: "coding" } },
               talker: { tools: { profile: "messaging" } } } } }"#,
    );
    assert_eq!(access(&inventory, "host").trust, TrustLevel::Elevated);
    assert_eq!(access(&inventory, "boxed").trust, TrustLevel::Restricted);
    assert_eq!(access(&inventory, "rw").trust, TrustLevel::Standard);
    assert_eq!(access(&inventory, "talker").trust, TrustLevel::Restricted);
}

#[test]
fn heartbeat_owners_and_open_dms_are_reported() {
    let inventory = inventory(
        r#"{ agents: { ownership: "explicit",
               defaults: { systemAgent: { agentId: "lead" } },
               entries: { lead: {}, helper: { tools: { profile: "minimal" } } } },
             channels: { telegram: { dmPolicy: "open", allowFrom: ["*"], accounts: { a: {}, b: {} } } },
             bindings: [ { agentId: "helper", match: { channel: "telegram", accountId: "b" } } ] }"#,
    );
    let lead = access(&inventory, "lead");
    assert_eq!(lead.wakeups.len(), 1);
    assert_eq!(lead.wakeups[0].kind, WakeupKind::Heartbeat);
    assert_eq!(lead.inbound.iter().map(|r| r.account.as_str()).collect::<Vec<_>>(), ["a"]);
    assert!(inventory.findings.iter().any(|f| f.key == "open_dm_to_privileged_agent/lead:telegram/a"));
    assert!(!inventory.findings.iter().any(|f| f.key.starts_with("open_dm_to_privileged_agent/helper")));
}

#[test]
fn a_version_without_a_table_is_a_finding() {
    let facts = RuntimeFacts { openclaw_version: Some("2027.1.0".to_owned()), ..RuntimeFacts::default() };
    let inventory = build_inventory(r#"{ agents: { entries: { solo: {} } } }"#, &facts);
    assert!(inventory.findings.iter().any(|f| f.key == "tool_table_missing/2027.1.0->2026.9.6"));
}
