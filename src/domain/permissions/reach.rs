//! Who reaches an agent from outside and what wakes it unattended.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RosterAgent;
use crate::domain::openclaw::value_at;

/// A channel account whose messages land at an agent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InboundRoute {
    pub agent_id: String,
    pub channel: String,
    /// The account id (`default` for a channel without accounts).
    pub account: String,
    /// `pairing`, `allowlist`, `open` or `disabled`.
    pub dm_policy: String,
    /// `allowlist`, `open` or `disabled`.
    pub group_policy: String,
    /// Whether the route is a binding's (false: the default agent takes unbound traffic).
    pub bound: bool,
}

impl InboundRoute {
    /// Whether anyone may start a direct conversation through this route.
    pub fn open_dm(&self) -> bool {
        self.dm_policy == "open"
    }
}

/// What wakes an agent without a person writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WakeupKind {
    Heartbeat,
    Cron,
    Hook,
}

/// One thing that wakes an agent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Wakeup {
    pub agent_id: String,
    pub kind: WakeupKind,
    /// Human-readable: `every 30m`, the cron job's name and schedule, `hooks ingress`.
    pub detail: String,
}

/// A cron job as the runtime lists it (`cron.list` / `openclaw cron list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronJob {
    pub id: String,
    pub name: String,
    /// Lower-cased agent id; empty for an agent-less job.
    pub agent_id: String,
    pub enabled: bool,
    /// `every 7d`, `cron 0 9 * * *`, `at …`.
    pub schedule: String,
    /// Declared by OpenClaw itself (a `declarationKey`), not by a person.
    pub system: bool,
}

impl CronJob {
    /// Reads one job of a `cron.list` answer; `None` when it has no id.
    pub fn from_json(job: &Value) -> Option<Self> {
        let text = |key: &str| job.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let id = text("id");
        if id.is_empty() {
            return None;
        }
        let schedule = job.get("schedule");
        let kind = schedule.and_then(|s| s.get("kind")).and_then(Value::as_str).unwrap_or("");
        let schedule = match kind {
            "every" => {
                let ms = schedule.and_then(|s| s.get("everyMs")).and_then(Value::as_i64).unwrap_or(0);
                format!("every {}", duration_text(ms))
            }
            "cron" => format!(
                "cron {}",
                schedule
                    .and_then(|s| s.get("expr").or_else(|| s.get("cron")))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            "at" => "once".to_owned(),
            other => other.to_owned(),
        };
        Some(Self {
            name: job
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| text("name")),
            agent_id: text("agentId").to_lowercase(),
            enabled: job.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            system: job.get("declarationKey").and_then(Value::as_str).is_some_and(|k| !k.is_empty()),
            schedule,
            id,
        })
    }
}

fn duration_text(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    UNITS
        .iter()
        .find(|(size, _)| ms >= *size && ms % size == 0)
        .map(|(size, unit)| format!("{}{unit}", ms / size))
        .unwrap_or_else(|| format!("{ms}ms"))
}

fn text_at<'a>(scope: Option<&'a Value>, key: &str) -> Option<&'a str> {
    scope.and_then(|s| s.get(key)).and_then(Value::as_str)
}

/// Channel keys of `channels` that configure a channel (not `defaults` or `modelByChannel`).
fn configured_channels(root: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let Some(channels) = root.get("channels").and_then(Value::as_object) else { return Vec::new() };
    channels
        .iter()
        .filter(|(name, value)| {
            !matches!(name.as_str(), "defaults" | "modelByChannel")
                && value.is_object()
                && value.get("enabled") != Some(&Value::Bool(false))
        })
        .collect()
}

/// Every configured channel account with the agent its messages reach.
pub fn inbound_routes(
    root: &Map<String, Value>,
    agents: &[&str],
    default_agent: Option<&str>,
) -> Vec<InboundRoute> {
    let bindings: Vec<&Value> =
        root.get("bindings").and_then(Value::as_array).into_iter().flatten().collect();
    let group_default = value_at(root, &["channels", "defaults", "groupPolicy"]).and_then(Value::as_str);
    let mut routes = Vec::new();
    for (channel, config) in configured_channels(root) {
        let accounts: Vec<(String, Option<&Value>)> = match config.get("accounts").and_then(Value::as_object)
        {
            Some(accounts) if !accounts.is_empty() => {
                accounts.iter().map(|(id, account)| (id.clone(), Some(account))).collect()
            }
            _ => vec![("default".to_owned(), None)],
        };
        for (account, account_config) in accounts {
            let pick = |key: &str| text_at(account_config, key).or_else(|| text_at(Some(config), key));
            let dm_policy = pick("dmPolicy").unwrap_or("pairing").to_owned();
            let group_policy = pick("groupPolicy").or(group_default).unwrap_or("allowlist").to_owned();
            let mut targets: Vec<(String, bool)> = Vec::new();
            let mut whole_account_bound = false;
            for binding in &bindings {
                if binding.get("type").and_then(Value::as_str).is_some_and(|t| t != "route") {
                    continue;
                }
                let matcher = binding.get("match");
                if text_at(matcher, "channel").map(str::to_lowercase).as_deref()
                    != Some(channel.to_lowercase().as_str())
                {
                    continue;
                }
                let account_matches = match text_at(matcher, "accountId") {
                    None => account == "default",
                    Some("*") => true,
                    Some(id) => id == account,
                };
                let agent = binding.get("agentId").and_then(Value::as_str).unwrap_or("").to_lowercase();
                if !account_matches || !agents.contains(&agent.as_str()) {
                    continue;
                }
                let narrowed = ["peer", "guildId", "teamId", "roles"]
                    .iter()
                    .any(|key| matcher.and_then(|m| m.get(*key)).is_some_and(|v| !v.is_null()));
                if !targets.iter().any(|(a, _)| *a == agent) {
                    targets.push((agent, true));
                }
                if !narrowed {
                    whole_account_bound = true;
                    break;
                }
            }
            if !whole_account_bound
                && let Some(default) = default_agent.filter(|d| agents.contains(d))
                && !targets.iter().any(|(a, _)| a == default)
            {
                targets.push((default.to_owned(), false));
            }
            for (agent_id, bound) in targets {
                routes.push(InboundRoute {
                    agent_id,
                    channel: channel.clone(),
                    account: account.clone(),
                    dm_policy: dm_policy.clone(),
                    group_policy: group_policy.clone(),
                    bound,
                });
            }
        }
    }
    routes.sort();
    routes
}

/// Heartbeats, cron jobs and hook ingress per agent.
pub fn wakeups(
    root: &Map<String, Value>,
    roster: &[RosterAgent<'_>],
    default_agent: Option<&str>,
    cron_jobs: Option<&[CronJob]>,
) -> Vec<Wakeup> {
    let ids: Vec<&str> = roster.iter().map(|a| a.id).collect();
    let mut out = Vec::new();
    let defaults_heartbeat = value_at(root, &["agents", "defaults", "heartbeat"]).filter(|v| !v.is_null());
    let explicit: Vec<&RosterAgent<'_>> = roster
        .iter()
        .filter(|a| a.settings.get("heartbeat").is_some_and(|v| !v.is_null() && v != &Value::Bool(false)))
        .collect();
    let owners: Vec<&str> = if !explicit.is_empty() {
        explicit.iter().map(|a| a.id).collect()
    } else if let Some(id) = text_at(defaults_heartbeat, "agentId").map(str::trim).filter(|s| !s.is_empty()) {
        ids.iter().copied().filter(|a| a.eq_ignore_ascii_case(id)).collect()
    } else if defaults_heartbeat.is_some() {
        ids.clone()
    } else {
        let system =
            value_at(root, &["agents", "defaults", "systemAgent", "agentId"]).and_then(Value::as_str);
        match system.map(str::to_lowercase) {
            Some(id) => ids.iter().copied().filter(|a| *a == id).collect(),
            None if ids.len() == 1 => ids.clone(),
            None => default_agent
                .filter(|_| roster.iter().any(|a| a.settings.get("default") == Some(&Value::Bool(true))))
                .into_iter()
                .collect(),
        }
    };
    for owner in owners {
        let own = roster.iter().find(|a| a.id == owner).and_then(|a| a.settings.get("heartbeat"));
        let every =
            text_at(own, "every").or_else(|| text_at(defaults_heartbeat, "every")).unwrap_or("30m").trim();
        let number: String = every.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let disabled = every.is_empty() || number.parse::<f64>().is_ok_and(|n| n == 0.0);
        let cron_off = value_at(root, &["cron", "enabled"]) == Some(&Value::Bool(false));
        let detail = match (disabled, cron_off) {
            (true, _) => "heartbeat: no recurring cadence (event wakes only)".to_owned(),
            (false, true) => format!("heartbeat every {every} (not scheduled: cron.enabled is false)"),
            (false, false) => format!("heartbeat every {every}"),
        };
        out.push(Wakeup { agent_id: owner.to_owned(), kind: WakeupKind::Heartbeat, detail });
    }
    for job in cron_jobs.into_iter().flatten().filter(|j| j.enabled) {
        let agent = if job.agent_id.is_empty() { default_agent.unwrap_or("") } else { job.agent_id.as_str() };
        if ids.contains(&agent) {
            let origin = if job.system { "system job" } else { "job" };
            out.push(Wakeup {
                agent_id: agent.to_owned(),
                kind: WakeupKind::Cron,
                detail: format!("cron {origin} \"{}\" {}", job.name, job.schedule),
            });
        }
    }
    let hooks = root.get("hooks");
    if hooks.and_then(|h| h.get("enabled")) == Some(&Value::Bool(true)) {
        let allowed = hooks.and_then(|h| h.get("allowedAgentIds")).and_then(Value::as_array);
        for id in &ids {
            let admitted = match allowed {
                None => true,
                Some(list) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|entry| entry.trim() == "*" || entry.trim().eq_ignore_ascii_case(id)),
            };
            if admitted {
                out.push(Wakeup {
                    agent_id: (*id).to_owned(),
                    kind: WakeupKind::Hook,
                    detail: "hooks ingress (/hooks)".to_owned(),
                });
            }
        }
    }
    out.sort();
    out
}
