//! Who may do what, asked of a live Gateway 2026.9.6 and of jhf-warp on the same files.
//!
//! One Gateway runs on a scratch state dir; each generated config is applied to it
//! (`config.apply`, hot-reloaded), every agent's main session is created
//! (`sessions.create`), and the Gateway answers: `tools.effective` per agent, and
//! `tools.invoke` of `sessions_send` / `sessions_spawn` from A's main session toward B for
//! every ordered pair (`gateway.tools.allow` exposes both to the invoke API). jhf-warp observes
//! the same installation twice — as a local runtime through the real CLI, and as a Gateway
//! runtime — and its SEND/SPAWN edges and effective tools must equal the Gateway's answers.
//!
//! The two Gateway calls each leave one layer out, so the truth is where they agree:
//! `tools.invoke` skips the `byProvider` layer (it resolves no model) and `tools.effective`
//! skips the sandbox tool layer (it builds no sandbox context). So a pair counts as allowed
//! when the invoke is accepted *and* the tool is among the requester's `tools.effective`; a
//! sandboxed agent's tools are `tools.effective` with the sandbox layer, checked tool by tool
//! with `tools.invoke` where a probe is harmless. Needs `JHF_WARP_TEST_OPENCLAW_BIN`; the
//! tests are `#[ignore]`d because they keep a Gateway busy for minutes, which would starve
//! the timing-sensitive tests running beside them: `.ci/run` runs them in a step of their own
//! (`cargo test --test api real_permissions -- --ignored --test-threads 1`).

use std::collections::BTreeMap;
use std::time::Duration;

use jhf_warp::pb::v1::{self as pb, RolloutState};
use jhf_warp::runtime::{DeviceKey, GatewayClient};
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, eventually_within, spawn_app_with, with_token,
};
use crate::real_cli::{cli_json, follow_slowly, openclaw_bin};
use crate::real_gateway::{GATEWAY_TOKEN, Gateway};

const AGENTS: [&str; 5] = ["a", "b", "c", "d", "e"];
const CALL: Duration = Duration::from_secs(60);
/// OpenClaw tools a probe may invoke without side effects (list/read actions only).
const PROBES: [(&str, &str); 6] = [
    ("theme", r#"{"action":"list"}"#),
    ("secrets", r#"{"action":"list"}"#),
    ("session_status", "{}"),
    ("sessions_list", "{}"),
    ("agents_list", "{}"),
    ("dashboard", r#"{"action":"get"}"#),
];

/// The generated configs: every permission layer this module resolves, on agents a..e.
fn configs() -> Vec<(&'static str, Value)> {
    let with = |entries: Value, tools: Value, defaults: Value| {
        let mut entries = entries;
        for (id, entry) in entries.as_object_mut().unwrap() {
            // Names pad the file: the Gateway refuses a write that halves the config's size.
            entry["name"] = json!(format!("Agent {id} {}", ".".repeat(160)));
        }
        let mut defaults = defaults;
        defaults["model"] = json!("claude-cli/claude-sonnet-4-6");
        json!({
            "agents": { "ownership": "explicit", "defaults": defaults, "entries": entries },
            "tools": tools,
            "gateway": { "tools": { "allow": ["sessions_send", "sessions_spawn"] } },
            "models": { "catalogRefresh": { "enabled": false } },
        })
    };
    let plain = json!({"a": {}, "b": {}, "c": {}, "d": {}, "e": {}});
    vec![
        ("no tools block: every pair", with(plain.clone(), json!({}), json!({}))),
        (
            "allow list without visibility, profiles",
            with(
                json!({"a": {"tools": {"profile": "coding"}}, "b": {"tools": {"profile": "messaging"}}, "c": {},
                       "d": {"tools": {"profile": "minimal"}}, "e": {"sandbox": {"mode": "non-main"}}}),
                json!({"agentToAgent": {"allow": ["a", "b", "d", "e"]}}),
                json!({"subagents": {"allowAgents": ["*"]}}),
            ),
        ),
        (
            "group denies, alsoAllow, sandbox all, plugin groups",
            with(
                json!({
                    "a": {"tools": {"profile": "coding", "deny": ["group:runtime", "group:web"]}, "subagents": {"allowAgents": ["b", "c", "D"]}},
                    "b": {"tools": {"profile": "coding", "alsoAllow": ["browser", "group:nodes"], "deny": ["sessions_send"]}},
                    "c": {"sandbox": {"mode": "all"}, "tools": {"profile": "coding"}, "subagents": {"allowAgents": ["*"]}},
                    "d": {"sandbox": {"mode": "non-main"}, "tools": {"allow": ["group:sessions", "read", "write"]}},
                    "e": {"tools": {"deny": ["group:plugins", "sessions_s*"]}},
                }),
                json!({"sessions": {"visibility": "all"}, "agentToAgent": {"enabled": true, "allow": ["*"]}, "deny": ["canvas"]}),
                json!({}),
            ),
        ),
        (
            "visibility tree, blank-only allow, aliases",
            with(
                json!({"a": {}, "b": {"subagents": {"allowAgents": []}}, "c": {"tools": {"profile": "full", "deny": ["bash"]}}, "d": {}, "e": {}}),
                json!({"sessions": {"visibility": "tree"}, "agentToAgent": {"allow": [""]}}),
                json!({"subagents": {"allowAgents": ["b"]}}),
            ),
        ),
        (
            "byProvider, global profile, exact-case and glob allow entries",
            with(
                json!({
                    "a": {"tools": {"byProvider": {"claude-cli": {"deny": ["exec", "sessions_spawn"]}}}},
                    "b": {"model": "openai/gpt-5.4", "tools": {"byProvider": {"claude-cli": {"deny": ["write"]}, "openai": {"profile": "minimal"}}}},
                    "c": {"tools": {"alsoAllow": ["message"]}},
                    "d": {"tools": {"profile": "messaging", "alsoAllow": ["write", "update_plan", "cron"]}},
                    "e": {"tools": {"allow": ["write", "sessions_*", "bash"]}},
                }),
                json!({"profile": "coding", "byProvider": {"claude-cli/claude-sonnet-4-6": {"alsoAllow": ["nodes"], "deny": ["theme"]}},
                       "agentToAgent": {"allow": ["A", "b*", "c", "d", "e"]}}),
                json!({}),
            ),
        ),
        (
            "sandbox tool layer, unclamped sandbox visibility",
            with(
                json!({
                    "a": {"tools": {"sandbox": {"tools": {"alsoAllow": ["theme", "gateway"]}}}},
                    "b": {"tools": {"sandbox": {"tools": {"allow": ["group:sessions"], "deny": ["sessions_spawn"]}}}},
                    "c": {"sandbox": {"mode": "off"}},
                    "d": {"sandbox": {"mode": "non-main"}, "tools": {"deny": ["image"]}},
                    "e": {"tools": {"sandbox": {"tools": {"allow": []}}}},
                }),
                json!({"sandbox": {"tools": {"deny": ["exec"]}}}),
                json!({"subagents": {"allowAgents": ["*"]}, "sandbox": {"mode": "all", "sessionToolsVisibility": "all"}}),
            ),
        ),
        (
            "agent-to-agent disabled, web tools off, plugin ids, group:openclaw",
            with(
                json!({"a": {"subagents": {"allowAgents": ["*"]}}, "b": {"tools": {"deny": ["file-transfer", "memory-core"]}},
                       "c": {"tools": {"allow": ["group:openclaw"]}}, "d": {"tools": {"allow": ["group:fs", "group:ui"]}},
                       "e": {"tools": {"profile": "coding", "deny": ["group:agents", "group:media"]}}}),
                json!({"agentToAgent": {"enabled": false, "allow": ["*"]}, "web": {"search": {"enabled": false}, "fetch": {"enabled": false}}}),
                json!({"subagents": {"allowAgents": ["a", "b", "c", "d", "e"], "maxSpawnDepth": 1}}),
            ),
        ),
        (
            "self visibility with sandboxed requesters",
            with(
                json!({"a": {"sandbox": {"mode": "all"}, "subagents": {"allowAgents": ["b", "c"]}}, "b": {"sandbox": {"mode": "non-main"}},
                       "c": {}, "d": {"sandbox": {"mode": "all"}}, "e": {}}),
                json!({"sessions": {"visibility": "self"}, "agentToAgent": {"allow": ["a", "b", "c", "d", "e", ""]}}),
                json!({}),
            ),
        ),
    ]
}

/// The live Gateway's answers about one config.
#[derive(Debug, Default)]
struct Truth {
    tools: BTreeMap<String, Vec<String>>,
    send: BTreeMap<String, Vec<String>>,
    spawn: BTreeMap<String, Vec<String>>,
    /// `(agent, tool) -> callable?` for the harmless probes.
    probes: BTreeMap<(String, String), bool>,
}

struct Oracle {
    gateway: Gateway,
    client: GatewayClient,
    http: reqwest::Client,
    _device_dir: tempfile::TempDir,
}

impl Oracle {
    async fn start(bin: &str, first: &Value) -> Self {
        let text = serde_json::to_string_pretty(first).unwrap();
        let gateway = Gateway::start_in(bin, |state| {
            std::fs::write(state.join("openclaw.json"), &text).unwrap();
        })
        .await;
        let device_dir = tempfile::tempdir().unwrap();
        let device = DeviceKey::load_or_create(device_dir.path()).unwrap();
        let url = format!("ws://127.0.0.1:{}", gateway.port);
        let client = GatewayClient::start(url, GATEWAY_TOKEN.to_owned(), device, None);
        // No idle connections kept: one kept across a config change may be one the Gateway closed.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let oracle = Self { gateway, client, http, _device_dir: device_dir };
        eventually_within("the gateway to answer", Duration::from_secs(120), async || {
            oracle.client.call("health", json!({}), Duration::from_secs(5)).await.ok().map(drop)
        })
        .await;
        oracle
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.client.call(method, params, CALL).await.unwrap_or_else(|e| panic!("{method}: {e:?}"))
    }

    /// Replaces the whole config; the Gateway answers once it applied it.
    async fn apply(&self, config: &Value) {
        let hash = self.call("config.get", json!({})).await["hash"].as_str().unwrap().to_owned();
        let raw = serde_json::to_string_pretty(config).unwrap();
        let answer = self.call("config.apply", json!({"raw": raw, "baseHash": hash})).await;
        assert_eq!(answer["ok"], true, "config.apply: {answer}");
    }

    /// `(status code, answer)` of `POST /tools/invoke` from `agent`'s main session. A
    /// connection the Gateway closed before answering (it restarts its HTTP side when some
    /// config changes apply) is retried on a new one; an answer is never retried.
    async fn invoke(&self, tool: &str, agent: &str, args: Value) -> (u16, Value) {
        let body = json!({"tool": tool, "sessionKey": format!("agent:{agent}:main"), "args": args});
        let url = format!("http://127.0.0.1:{}/tools/invoke", self.gateway.port);
        let mut tries = 0;
        let response = loop {
            tries += 1;
            match self.http.post(&url).bearer_auth(GATEWAY_TOKEN).json(&body).send().await {
                Ok(response) => break response,
                Err(error) if tries < 5 && !error.is_status() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("tools.invoke {tool} from {agent}: {error}"),
            }
        };
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Whether an invoke was accepted (anything else: forbidden, unavailable).
    async fn accepted(&self, tool: &str, from: &str, args: Value) -> bool {
        let (status, answer) = self.invoke(tool, from, args).await;
        status == 200 && answer["result"]["details"]["status"] == "accepted"
    }

    /// Whether `from` may spawn `to`. A requester's active children are capped
    /// (`maxChildrenPerAgent`, 5 by default) and the pings of earlier configs may still run:
    /// that refusal is a load limit, not a permission, so it is asked again once they ended.
    async fn may_spawn(&self, from: &str, to: &str) -> bool {
        for _ in 0..60 {
            let (status, answer) =
                self.invoke("sessions_spawn", from, json!({"agentId": to, "task": "ping"})).await;
            let details = &answer["result"]["details"];
            let at_capacity = details["status"] == "forbidden"
                && details["error"].as_str().is_some_and(|e| e.contains("max active children"));
            if !at_capacity {
                return status == 200 && details["status"] == "accepted";
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{from} stayed at its active children cap for 30 s");
    }

    /// The Gateway's answers, asked one at a time: asked at once, under the CPU load of 60
    /// parallel runs, the Gateway refused some sends it accepts otherwise.
    async fn truth(&self) -> Truth {
        let mut truth = Truth::default();
        for agent in AGENTS {
            self.call("sessions.create", json!({"key": format!("agent:{agent}:main"), "agentId": agent}))
                .await;
        }
        for agent in AGENTS {
            let answer =
                self.call("tools.effective", json!({"sessionKey": format!("agent:{agent}:main")})).await;
            let mut tools: Vec<String> = answer["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| {
                    g["tools"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned())
                })
                .collect();
            tools.sort();
            truth.tools.insert(agent.to_owned(), tools);
        }
        for from in AGENTS {
            let holds = |tool: &str| truth.tools[from].iter().any(|t| t == tool);
            let (may_send, may_spawn) = (holds("sessions_send"), holds("sessions_spawn"));
            let (mut send, mut spawn) = (Vec::new(), Vec::new());
            for to in AGENTS.iter().filter(|to| **to != from) {
                let message =
                    json!({"sessionKey": format!("agent:{to}:main"), "message": "ping", "timeoutSeconds": 0});
                if self.accepted("sessions_send", from, message).await && may_send {
                    send.push((*to).to_owned());
                }
                if self.may_spawn(from, to).await && may_spawn {
                    spawn.push((*to).to_owned());
                }
            }
            truth.send.insert(from.to_owned(), send);
            truth.spawn.insert(from.to_owned(), spawn);
            for (tool, args) in PROBES {
                let (status, _) = self.invoke(tool, from, serde_json::from_str(args).unwrap()).await;
                truth.probes.insert((from.to_owned(), tool.to_owned()), status != 404);
            }
        }
        truth
    }
}

/// What one jhf-warp runtime reports, by agent.
async fn reported(app: &TestApp, request_id: &str) -> BTreeMap<String, pb::CatalogAgent> {
    let observe = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    app.drift().await.observe_now(with_token(observe, OPERATOR_TOKEN)).await.unwrap();
    let catalog = app
        .topology()
        .await
        .get_agent_catalog(with_token(pb::GetAgentCatalogRequest { runtime: String::new() }, READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    catalog.agents.into_iter().map(|a| (a.agent_id.clone(), a)).collect()
}

/// Compares one runtime's report with the Gateway's truth; returns the differences.
fn compare(runtime: &str, truth: &Truth, report: &BTreeMap<String, pb::CatalogAgent>) -> Vec<String> {
    let mut problems = Vec::new();
    for agent in AGENTS {
        let Some(ours) = report.get(agent) else {
            problems.push(format!("{runtime}: agent {agent} missing"));
            continue;
        };
        if ours.may_send_to != truth.send[agent] {
            problems.push(format!(
                "{runtime}: SEND {agent}: ours {:?}, gateway {:?}",
                ours.may_send_to, truth.send[agent]
            ));
        }
        if ours.may_spawn != truth.spawn[agent] {
            problems.push(format!(
                "{runtime}: SPAWN {agent}: ours {:?}, gateway {:?}",
                ours.may_spawn, truth.spawn[agent]
            ));
        }
        let gateway_tools = &truth.tools[agent];
        if ours.sandbox_mode == "all" {
            let extra: Vec<&String> =
                ours.effective_tools.iter().filter(|t| !gateway_tools.contains(t)).collect();
            if !extra.is_empty() {
                problems
                    .push(format!("{runtime}: tools {agent} (sandboxed): {extra:?} not in tools.effective"));
            }
            for (tool, _) in PROBES {
                let callable = truth.probes[&(agent.to_owned(), tool.to_owned())];
                if callable != ours.effective_tools.iter().any(|t| t == tool) {
                    problems.push(format!(
                        "{runtime}: tool {tool} of sandboxed {agent}: gateway invoke says {callable}"
                    ));
                }
            }
        } else if &ours.effective_tools != gateway_tools {
            problems.push(format!(
                "{runtime}: tools {agent}: ours {:?}, gateway {:?}",
                ours.effective_tools, gateway_tools
            ));
        }
    }
    problems
}

#[tokio::test]
#[ignore = "minutes of a live Gateway; .ci/run runs it in a step of its own"]
async fn edges_and_effective_tools_equal_the_gateways_own_answers_on_both_runtimes() {
    let Some(bin) = openclaw_bin() else { return };
    let configs = configs();
    let oracle = Oracle::start(&bin, &configs[0].1).await;
    let local = spawn_app_with(AppOptions {
        runtime: Some(format!("local:{}", oracle.gateway.state.display())),
        openclaw_bin: Some(bin.clone()),
        ..AppOptions::default()
    })
    .await;
    let remote = oracle.gateway.app().await;
    let mut failures = Vec::new();
    for (index, (name, config)) in configs.iter().enumerate() {
        let started = std::time::Instant::now();
        oracle.apply(config).await;
        let applied = started.elapsed();
        let truth = oracle.truth().await;
        let (local_report, remote_report) = (
            reported(&local, &format!("local-{index}")).await,
            reported(&remote, &format!("remote-{index}")).await,
        );
        eprintln!(
            "  timing: apply {:.1} s, then the gateway's answers and jhf-warp's reads {:.1} s",
            applied.as_secs_f64(),
            (started.elapsed() - applied).as_secs_f64()
        );
        let mut problems = compare("local", &truth, &local_report);
        problems.extend(compare("gateway", &truth, &remote_report));
        let count = |edges: &BTreeMap<String, Vec<String>>| edges.values().map(Vec::len).sum::<usize>();
        let tools: Vec<String> = AGENTS.iter().map(|a| format!("{a}:{}", truth.tools[*a].len())).collect();
        eprintln!(
            "config {index} ({name}): gateway SEND {} SPAWN {} tools [{}] — jhf-warp local and gateway runtimes: {}",
            count(&truth.send),
            count(&truth.spawn),
            tools.join(" "),
            if problems.is_empty() {
                "equal".to_owned()
            } else {
                format!("{} difference(s)", problems.len())
            }
        );
        failures.extend(problems.into_iter().map(|p| format!("config {index} ({name}): {p}")));
    }
    remote.stop().await;
    local.stop().await;
    assert!(failures.is_empty(), "jhf-warp differs from the Gateway:\n{}", failures.join("\n"));
}

/// A team whose `allow` list names only the agents a rollout removes: OpenClaw would read the
/// emptied list as "every pair"; the plan writes `enabled: false` instead, patches before it
/// deletes, and the Gateway afterwards refuses the remaining pair.
#[tokio::test]
#[ignore = "a live Gateway and the real CLI; .ci/run runs it in a step of its own"]
async fn removing_the_agents_of_an_allow_list_through_the_real_cli_never_opens_it() {
    let Some(bin) = openclaw_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = json!({
        "agents": { "ownership": "explicit", "defaults": { "model": "claude-cli/claude-sonnet-4-6" },
                    "entries": { "lead": {}, "scout": {}, "research": {}, "writer": {} } },
        "tools": { "agentToAgent": { "allow": ["research", "writer"] } },
        "gateway": { "tools": { "allow": ["sessions_send", "sessions_spawn"] } },
        "models": { "catalogRefresh": { "enabled": false } },
    });
    std::fs::write(state.join("openclaw.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    for id in ["lead", "scout", "research", "writer"] {
        std::fs::create_dir_all(state.join(format!("workspace-{id}"))).unwrap();
    }
    let app = spawn_app_with(AppOptions {
        runtime: Some(format!("local:{}", state.display())),
        openclaw_bin: Some(bin.clone()),
        ..AppOptions::default()
    })
    .await;
    let observed = crate::desired::observed(&app).await;
    let sends = observed.edges.iter().filter(|e| e.kind == pb::EdgeKind::Send as i32).count();
    assert_eq!(sends, 2, "research and writer message each other");
    let mut desired = observed.clone();
    desired.nodes.retain(|n| n.agent_id == "lead" || n.agent_id == "scout");
    desired.edges.clear();
    crate::desired::put(&app, desired, "", "desired-1").await.unwrap();
    let plan = crate::rollout::plan(&app, pb::PlanKind::Apply).await.unwrap();
    let patch: Value = serde_json::from_str(&plan.merge_patch_json).unwrap_or_default();
    eprintln!("removal plan: {:?}\npatch: {patch}", plan.operations);
    let rollout = crate::rollout::start(&app, &plan.id, false, "rollout-1").await.unwrap();
    let done = follow_slowly(&app, &rollout.id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:#?}");
    app.stop().await;
    let written: Value =
        json5::from_str(&std::fs::read_to_string(state.join("openclaw.json")).unwrap()).unwrap();
    assert_eq!(written["tools"]["agentToAgent"]["enabled"], false, "{written}");
    let validate = cli_json(&bin, &state, &["config", "validate", "--json"], None);
    assert_eq!(validate["valid"], true, "{validate}");

    // The Gateway itself, on the state the rollout left.
    let oracle = Oracle::start(&bin, &written).await;
    for agent in ["lead", "scout"] {
        oracle.call("sessions.create", json!({"key": format!("agent:{agent}:main"), "agentId": agent})).await;
    }
    for (from, to) in [("lead", "scout"), ("scout", "lead")] {
        let message =
            json!({"sessionKey": format!("agent:{to}:main"), "message": "ping", "timeoutSeconds": 0});
        let (status, answer) = oracle.invoke("sessions_send", from, message).await;
        eprintln!(
            "after the removal, gateway sessions_send {from} → {to}: {status} {}",
            answer["result"]["details"]["status"]
        );
        assert!(
            !oracle
                .accepted(
                    "sessions_send",
                    from,
                    json!({"sessionKey": format!("agent:{to}:main"), "message": "ping", "timeoutSeconds": 0})
                )
                .await
        );
    }
}
