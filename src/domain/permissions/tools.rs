//! The tool policy pipeline: which tools an agent's main session ends up with.
//!
//! Mirrors OpenClaw 2026.9.6 (`dist/tool-policy-shared-*.mjs`, `tool-policy-match-*.mjs`,
//! `tool-policy-*.mjs`, `tool-policy-pipeline-*.mjs`, `agent-tools.policy-*.mjs`,
//! `sandbox-tool-policy-*.mjs`, `sandbox/tool-policy` in `tool-policy-C8ci7WKM.mjs`):
//! - a tool name is trimmed, lower-cased and de-aliased (`bash` → `exec`, `apply-patch` →
//!   `apply_patch`, `cron` → `automations`); `update_plan` means `progress_card`, and `canvas`
//!   also means `show_widget`;
//! - `group:<section>` expands to the catalog section's core tools, `group:openclaw` to the
//!   core tools flagged for it, `group:plugins` to every plugin tool present, a plugin id to
//!   that plugin's tools;
//! - patterns are globs with `*` only (no `?`), matched against the normalised name;
//! - one layer keeps a tool when no deny pattern matches and either the allow list is empty
//!   or a pattern matches (`apply_patch` also passes when `write` is allowed);
//! - the layers, in order: the profile (`tools.profile` of the agent, else global, plus the
//!   agent's `alsoAllow`, else the global one), the provider profile (`byProvider`), global
//!   `allow`/`alsoAllow`/`deny`, global `byProvider`, the agent's, the agent's `byProvider`, and
//!   — when the main session is sandboxed — the sandbox tool policy
//!   (`tools.sandbox.tools`, the agent's overriding the global list by list, default allow
//!   list and deny list from `dist/constants-*.mjs`).
//!
//! # Assumptions
//! - The agent's model decides its `byProvider` entry: `provider/model` from the agent's
//!   `model` (string or `primary`), else `agents.defaults.model`, else OpenClaw's default
//!   `openai/gpt-6-astra`. Model aliases are not resolved.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::catalog::{Availability, CatalogTool, ToolCatalog};

/// Tools a sandboxed session keeps by default (`DEFAULT_TOOL_ALLOW`).
const SANDBOX_DEFAULT_ALLOW: &[&str] = &[
    "exec",
    "process",
    "read",
    "ls",
    "write",
    "edit",
    "apply_patch",
    "view_image",
    "sessions_list",
    "sessions_history",
    "sessions_search",
    "sessions_send",
    "sessions_spawn",
    "sessions_yield",
    "subagents",
    "session_status",
];

/// Tools a sandboxed session loses by default (`DEFAULT_TOOL_DENY`, without the channel ids,
/// which name no tool of the catalog).
const SANDBOX_DEFAULT_DENY: &[&str] =
    &["browser", "canvas", "computer", "mobile_ui", "nodes", "automations", "gateway"];

/// Returns a tool name as OpenClaw's policy compares it; empty for blank or non-string input.
pub fn normalise(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "bash" => "exec".to_owned(),
        "apply-patch" => "apply_patch".to_owned(),
        "cron" => "automations".to_owned(),
        _ => lower,
    }
}

/// A compiled glob: exact text, everything, or `*`-separated literal parts.
#[derive(Debug, Clone)]
enum Pattern {
    All,
    Exact(String),
    Glob(Vec<String>),
}

impl Pattern {
    fn compile(normalised: &str) -> Option<Self> {
        if normalised.is_empty() {
            return None;
        }
        if normalised == "*" {
            return Some(Self::All);
        }
        if !normalised.contains('*') {
            return Some(Self::Exact(normalised.to_owned()));
        }
        Some(Self::Glob(normalised.split('*').map(str::to_owned).collect()))
    }

    /// Anchored match of `^p0.*p1.*…pn$` without backtracking: the first part is a prefix,
    /// the last a suffix, the middle ones are found left to right.
    fn matches(&self, text: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(value) => value == text,
            Self::Glob(parts) => glob_parts_match(parts, text),
        }
    }
}

/// Matches `parts` (a pattern split at `*`, at least two parts) against `text`, anchored.
pub(super) fn glob_parts_match(parts: &[String], text: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else { return false };
    if !text.starts_with(first.as_str()) || text.len() < first.len() + last.len() {
        return false;
    }
    if !text.ends_with(last.as_str()) {
        return false;
    }
    let end = text.len() - last.len();
    let mut position = first.len();
    for part in &parts[1..parts.len() - 1] {
        match text[position..end].find(part.as_str()) {
            Some(offset) => position += offset + part.len(),
            None => return false,
        }
    }
    true
}

/// An allow/deny layer as written (before group expansion).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// `None` = no allow list (everything not denied passes).
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
    /// The allow list is `*` only because the scope set `alsoAllow` without `allow`
    /// (`IMPLICIT_ALLOW_ALL_FROM_ALSO_ALLOW`): it keeps the default plugin tools, not all.
    pub implicit_all: bool,
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().map(|item| item.as_str().map(str::to_owned).unwrap_or_default()).collect())
}

/// `pickSandboxToolPolicy`: a scope's `allow`, `alsoAllow` and `deny` as one layer; `None`
/// when the scope sets none of them.
pub fn pick_layer(scope: Option<&Map<String, Value>>) -> Option<Layer> {
    let scope = scope?;
    let allow = strings(scope.get("allow"));
    let also_allow = strings(scope.get("alsoAllow")).unwrap_or_default();
    let deny = strings(scope.get("deny"));
    let implicit_all =
        allow.is_none() && !also_allow.is_empty() && !also_allow.iter().any(|e| e.trim() == "*");
    let allow = match allow {
        Some(base) if base.is_empty() && !also_allow.is_empty() => {
            Some(unique(std::iter::once("*".to_owned()).chain(also_allow)))
        }
        Some(base) => Some(unique(base.into_iter().chain(also_allow))),
        None if !also_allow.is_empty() => Some(unique(std::iter::once("*".to_owned()).chain(also_allow))),
        None => None,
    };
    if allow.is_none() && deny.is_none() {
        return None;
    }
    Some(Layer { allow, deny: deny.unwrap_or_default(), implicit_all })
}

fn unique(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

/// The ids of a built-in profile (`full` is `*`); `None` for no profile or an unknown one.
fn profile_allow(catalog: &ToolCatalog, profile: Option<&str>) -> Option<Vec<String>> {
    let profile = profile?;
    match profile {
        "full" => Some(vec!["*".to_owned()]),
        "minimal" | "coding" | "messaging" => {
            let mut ids: Vec<String> = catalog
                .tools
                .iter()
                .filter(|t| t.profiles.iter().any(|p| p == profile))
                .map(|t| t.id.clone())
                .collect();
            if profile != "minimal" {
                ids.push("bundle-mcp".to_owned());
            }
            Some(ids)
        }
        _ => None,
    }
}

/// The policy context of one agent's main session.
pub struct ToolContext<'a> {
    pub catalog: &'a ToolCatalog,
    pub root: &'a Map<String, Value>,
    /// The agent's `tools` object (or `agents.defaults.tools` without a roster).
    pub agent_tools: Option<&'a Map<String, Value>>,
    /// The agent's sandbox tool policy scope (`agents.entries.<id>.tools.sandbox.tools`).
    pub sandboxed: bool,
    /// `provider`, `provider/model` of the agent's model, lower-cased.
    pub model: (String, String),
}

/// The policy layers of a main session, in pipeline order, with the profile's name.
pub struct Pipeline {
    pub layers: Vec<Layer>,
    pub profile: Option<String>,
}

fn by_provider<'a>(
    tools: Option<&'a Map<String, Value>>,
    model: &(String, String),
) -> Option<&'a Map<String, Value>> {
    let entries = tools?.get("byProvider")?.as_object()?;
    let key_of = |key: &str| {
        let lower = key.trim().to_lowercase();
        match lower.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
                format!("{provider}/{model}")
            }
            Some((provider, _)) if !provider.is_empty() => provider.to_owned(),
            _ => lower,
        }
    };
    let full = format!("{}/{}", model.0, model.1);
    [full.as_str(), model.0.as_str()].into_iter().find_map(|wanted| {
        entries
            .iter()
            .find(|(key, value)| key_of(key) == wanted && value.is_object())
            .and_then(|(_, v)| v.as_object())
    })
}

impl ToolContext<'_> {
    fn global_tools(&self) -> Option<&Map<String, Value>> {
        self.root.get("tools").and_then(Value::as_object)
    }

    /// Builds the layers OpenClaw filters the main session's tools through.
    pub fn pipeline(&self) -> Pipeline {
        let global = self.global_tools();
        let agent = self.agent_tools;
        let text = |scope: Option<&Map<String, Value>>, key: &str| {
            scope.and_then(|s| s.get(key)).and_then(Value::as_str).map(str::to_owned)
        };
        let profile = text(agent, "profile").or_else(|| text(global, "profile"));
        let also_allow = strings(agent.and_then(|a| a.get("alsoAllow")))
            .or_else(|| strings(global.and_then(|g| g.get("alsoAllow"))));
        let mut layers = Vec::new();
        if let Some(mut allow) = profile_allow(self.catalog, profile.as_deref()) {
            allow.extend(also_allow.unwrap_or_default());
            layers.push(Layer { allow: Some(unique(allow)), ..Layer::default() });
        }
        let global_provider = by_provider(global, &self.model);
        let agent_provider = by_provider(agent, &self.model);
        let provider_profile = text(agent_provider, "profile").or_else(|| text(global_provider, "profile"));
        if let Some(mut allow) = profile_allow(self.catalog, provider_profile.as_deref()) {
            let provider_also = strings(agent_provider.and_then(|a| a.get("alsoAllow")))
                .or_else(|| strings(global_provider.and_then(|g| g.get("alsoAllow"))));
            allow.extend(provider_also.unwrap_or_default());
            layers.push(Layer { allow: Some(unique(allow)), ..Layer::default() });
        }
        layers.extend([global, global_provider, agent, agent_provider].into_iter().filter_map(pick_layer));
        if self.sandboxed {
            layers.push(self.sandbox_layer());
        }
        Pipeline { layers, profile }
    }

    /// `resolveSandboxToolPolicyForAgent`: each of `allow`, `alsoAllow` and `deny` from the
    /// agent's `tools.sandbox.tools`, else the global one, else the defaults; explicit allows
    /// take their tools out of the default deny list; `view_image` follows `image`.
    fn sandbox_layer(&self) -> Layer {
        fn scope(tools: Option<&Map<String, Value>>) -> Option<&Map<String, Value>> {
            tools.and_then(|t| t.get("sandbox")).and_then(|s| s.get("tools")).and_then(Value::as_object)
        }
        let (agent, global) = (scope(self.agent_tools), scope(self.global_tools()));
        let list = |key: &str| {
            strings(agent.and_then(|a| a.get(key))).or_else(|| strings(global.and_then(|g| g.get(key))))
        };
        let (allow, also_allow, deny) = (list("allow"), list("alsoAllow"), list("deny"));
        let defaults = || SANDBOX_DEFAULT_ALLOW.iter().map(|s| (*s).to_owned());
        let merged_allow: Vec<String> = match (&allow, &also_allow) {
            (Some(base), _) if base.is_empty() => Vec::new(),
            (Some(base), Some(extra)) if !extra.is_empty() => unique(base.iter().chain(extra).cloned()),
            (Some(base), _) => base.clone(),
            (None, Some(extra)) if !extra.is_empty() => unique(defaults().chain(extra.iter().cloned())),
            (None, _) => defaults().collect(),
        };
        let explicit: Vec<String> = allow.iter().chain(also_allow.iter()).flatten().cloned().collect();
        let deny = match deny {
            Some(deny) => deny,
            None => {
                let patterns = self.compile(&explicit);
                SANDBOX_DEFAULT_DENY
                    .iter()
                    .filter(|tool| {
                        patterns.is_empty() || !patterns.iter().any(|p| p.matches(&normalise(tool)))
                    })
                    .map(|s| (*s).to_owned())
                    .collect()
            }
        };
        // `expandResolvedPolicy`: denying `image` denies `view_image`; a non-empty allow
        // list always lets `view_image` through unless it is denied.
        let mut deny = self.expand_groups(&deny);
        let deny_patterns = self.compile(&deny);
        if deny_patterns.iter().any(|p| p.matches("image"))
            && !deny_patterns.iter().any(|p| p.matches("view_image"))
        {
            deny.push("view_image".to_owned());
        }
        let mut allow = self.expand_groups(&merged_allow);
        let lower = |list: &[String]| list.iter().any(|entry| entry.trim().to_lowercase() == "view_image");
        if !allow.is_empty() && !lower(&deny) && !lower(&allow) {
            allow.push("view_image".to_owned());
        }
        Layer { allow: Some(allow), deny, implicit_all: false }
    }

    fn expand_groups(&self, list: &[String]) -> Vec<String> {
        expand_groups(self.catalog, list)
    }

    fn compile(&self, list: &[String]) -> Vec<Pattern> {
        compile(self.catalog, list)
    }

    /// Returns whether OpenClaw builds `tool` for this session at all.
    fn built(&self, tool: &CatalogTool) -> bool {
        let off = |path: &[&str]| {
            crate::domain::openclaw::value_at(self.root, path).and_then(Value::as_bool) == Some(false)
        };
        let available = match tool.availability {
            Availability::Always => true,
            Availability::Unsandboxed => !self.sandboxed,
            Availability::NotBuilt => false,
        };
        available
            && match tool.id.as_str() {
                "web_search" => !off(&["tools", "web", "search", "enabled"]),
                "web_fetch" => !off(&["tools", "web", "fetch", "enabled"]),
                _ => true,
            }
            && tool.plugin.as_deref().is_none_or(|plugin| plugin_enabled(self.root, plugin))
    }

    /// Returns the sorted ids of the tools the main session has.
    pub fn effective_tools(&self) -> Vec<String> {
        let layers = self.pipeline().layers;
        let factory_allow = PluginAllowlist::of(&layers);
        let built: Vec<&CatalogTool> = self
            .catalog
            .tools
            .iter()
            .filter(|t| {
                self.built(t) && t.plugin.as_deref().is_none_or(|plugin| factory_allow.allows(plugin, &t.id))
            })
            .collect();
        let plugin_tools: Vec<&CatalogTool> = built.iter().copied().filter(|t| t.plugin.is_some()).collect();
        let mut kept = built;
        for layer in layers {
            let allow = layer.allow.as_deref().map(|list| self.expand_plugins(list, &plugin_tools));
            let deny = self.expand_plugins(&layer.deny, &plugin_tools);
            let allow_patterns = allow.as_deref().map(|list| self.compile(list)).unwrap_or_default();
            let deny_patterns = self.compile(&deny);
            kept.retain(|tool| {
                let name = normalise(&tool.id);
                if deny_patterns.iter().any(|p| p.matches(&name)) {
                    return false;
                }
                if allow_patterns.is_empty() || allow_patterns.iter().any(|p| p.matches(&name)) {
                    return true;
                }
                name == "apply_patch" && allow_patterns.iter().any(|p| p.matches("write"))
            });
        }
        let mut ids: Vec<String> = kept.into_iter().map(|t| t.id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// `expandShippedCoreToolPolicyNames` + `expandPluginGroups`: renames, the canvas family,
    /// `group:plugins` and plugin ids replaced by the plugin tools present.
    fn expand_plugins(&self, list: &[String], plugin_tools: &[&CatalogTool]) -> Vec<String> {
        let mut out = Vec::new();
        for entry in list {
            let name = normalise(entry);
            let renamed = if name == "update_plan" { "progress_card".to_owned() } else { name };
            let mut names = vec![renamed.clone()];
            if renamed == "canvas" {
                names.push("show_widget".to_owned());
            }
            for name in names {
                if name == "group:plugins" {
                    if plugin_tools.is_empty() {
                        out.push(name);
                    } else {
                        out.extend(plugin_tools.iter().map(|t| t.id.clone()));
                    }
                    continue;
                }
                let of_plugin: Vec<String> = plugin_tools
                    .iter()
                    .filter(|t| t.plugin.as_deref().map(str::to_lowercase).as_deref() == Some(name.as_str()))
                    .map(|t| t.id.clone())
                    .collect();
                if of_plugin.is_empty() {
                    out.push(name);
                } else {
                    out.extend(of_plugin);
                }
            }
        }
        unique(out)
    }
}

/// Which plugin tools get built at all (`createPluginToolAllowlist`,
/// `dist/tool-grant-allowlist-*.mjs`): the allow entries of every layer, taken literally — a
/// plugin tool is built when no layer has an allow list, or an entry is `*`, `group:plugins`,
/// its plugin's id or a glob matching its name. `group:*` entries are *not* expanded here, so
/// `allow: ["group:ui"]` keeps `browser` (a plugin's tool) out even though the group names it.
struct PluginAllowlist {
    entries: BTreeSet<String>,
    patterns: Vec<Pattern>,
    defaults: bool,
}

impl PluginAllowlist {
    fn of(layers: &[Layer]) -> Self {
        let mut entries = BTreeSet::new();
        let mut defaults = false;
        for layer in layers {
            let Some(allow) = &layer.allow else { continue };
            for entry in allow.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
                if entry == "*" && layer.implicit_all {
                    continue;
                }
                entries.insert(normalise(entry));
            }
            defaults |= layer.implicit_all;
        }
        let patterns = entries.iter().filter_map(|e| Pattern::compile(e)).collect();
        Self { defaults: defaults || entries.is_empty(), entries, patterns }
    }

    fn allows(&self, plugin: &str, tool: &str) -> bool {
        self.defaults
            || self.entries.contains("*")
            || self.entries.contains("group:plugins")
            || self.entries.contains(&normalise(plugin))
            || self.patterns.iter().any(|p| p.matches(&normalise(tool)))
    }
}

/// Whether a bundled plugin is enabled: `plugins.enabled` not false, not in `plugins.deny`,
/// in `plugins.allow` when that list exists, and `plugins.entries.<id>.enabled` not false.
fn plugin_enabled(root: &Map<String, Value>, plugin: &str) -> bool {
    let Some(plugins) = root.get("plugins").and_then(Value::as_object) else { return true };
    let listed = |key: &str| {
        plugins.get(key).and_then(Value::as_array).map(|items| {
            items.iter().filter_map(Value::as_str).any(|item| item.trim().eq_ignore_ascii_case(plugin))
        })
    };
    plugins.get("enabled").and_then(Value::as_bool) != Some(false)
        && listed("deny") != Some(true)
        && listed("allow") != Some(false)
        && plugins
            .get("entries")
            .and_then(|e| e.get(plugin))
            .and_then(|p| p.get("enabled"))
            .and_then(Value::as_bool)
            != Some(false)
}

/// `expandToolGroups`: `group:*` entries replaced by their core members.
fn expand_groups(catalog: &ToolCatalog, list: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for entry in list {
        let name = normalise(entry);
        if name.is_empty() {
            continue;
        }
        match catalog.group(&name) {
            Some(members) => out.extend(members.into_iter().map(str::to_owned)),
            None => out.push(name),
        }
    }
    unique(out)
}

fn compile(catalog: &ToolCatalog, list: &[String]) -> Vec<Pattern> {
    expand_groups(catalog, list).iter().filter_map(|name| Pattern::compile(&normalise(name))).collect()
}

/// Whether an allow list (or one deny entry) names `tool`, as OpenClaw matches it: groups of
/// the current table expanded, `*` globs, aliases, and `apply_patch` riding on `write`.
pub fn list_grants(list: &[String], tool: &str) -> bool {
    static TABLE: std::sync::LazyLock<ToolCatalog> =
        std::sync::LazyLock::new(|| ToolCatalog::for_version(Some(super::TABLE_VERSION)));
    let patterns = compile(&TABLE, list);
    let name = normalise(tool);
    patterns.iter().any(|p| p.matches(&name))
        || (name == "apply_patch" && patterns.iter().any(|p| p.matches("write")))
}

/// Returns `(provider, model)` of a model reference, lower-cased.
pub fn model_ref(reference: Option<&str>) -> (String, String) {
    let reference = reference.map(str::trim).filter(|r| !r.is_empty()).unwrap_or("openai/gpt-6-astra");
    match reference.split_once('/') {
        Some((provider, model)) => (provider.to_lowercase(), model.to_lowercase()),
        None => ("openai".to_owned(), reference.to_lowercase()),
    }
}
