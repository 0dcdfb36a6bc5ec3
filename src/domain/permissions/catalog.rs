//! Which tools an OpenClaw version has, which profiles include them, and which of them it
//! builds for an agent's main session.
//!
//! The table below is OpenClaw 2026.9.6's, read from three places of the installed package and
//! the live Gateway: `CORE_TOOL_DEFINITIONS` in `dist/tool-catalog-*.mjs` (ids, sections, the
//! profiles that include each tool, the `group:openclaw` flag), the Gateway's `tools.catalog`
//! (the same plus the bundled plugins' tools), and the Gateway's `tools.effective` for an agent
//! with no tool policy at all (what `createOpenClawTools` really constructs in a Gateway with
//! no model provider credentials, nodes or canvas host). `.ci/run` checks the table against a
//! live Gateway's `tools.catalog` and `tools.effective` (`tests/api/real_permissions.rs`), so a
//! new OpenClaw version that changes any of it fails CI instead of drifting silently.
//!
//! # Caveats
//! - Tools that need model-provider credentials or hardware (`code_execution`, `x_search`,
//!   media generation, `pdf`, `view_image`) are recorded as not built; an installation with
//!   such credentials may expose them even though the table says otherwise. The policy that
//!   would filter them is still resolved exactly; only their construction is assumed.
//! - MCP server tools (`bundle-mcp`) are not modelled.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether OpenClaw builds a tool for an agent's main session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// Built for every main session.
    Always,
    /// Built only when the session is not sandboxed (`terminal`, `portal`: they drive the host).
    Unsandboxed,
    /// Not built without something the table does not model (credentials, a node, a trigger).
    NotBuilt,
}

/// One tool of a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTool {
    /// The tool id the policy matches (`exec`, `sessions_send`, `file_fetch`, …).
    pub id: String,
    /// The catalog section; `group:<section>` names it in policies. Plugin tools carry their
    /// plugin's section (`plugin:<id>`), which no `group:` entry names.
    pub section: String,
    /// Built-in profiles that include the tool (`minimal`, `coding`, `messaging`; `full` is all).
    pub profiles: Vec<String>,
    /// The plugin that provides the tool, when it is not core.
    pub plugin: Option<String>,
    /// Whether the tool is part of `group:openclaw`.
    pub in_openclaw_group: bool,
    /// Whether OpenClaw builds the tool for a main session.
    pub availability: Availability,
}

/// Where a catalog came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogSource {
    /// jhf-warp's table for the runtime's OpenClaw version.
    VersionTable { version: String },
    /// The runtime's version has no table; the newest table was used.
    NearestTable { runtime_version: Option<String>, table_version: String },
    /// The Gateway's `tools.catalog`, with the table's knowledge of what is built.
    Gateway { version: Option<String> },
}

/// The tools of one OpenClaw installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCatalog {
    pub source: CatalogSource,
    pub tools: Vec<CatalogTool>,
}

/// The newest OpenClaw version jhf-warp has a table for.
pub const TABLE_VERSION: &str = "2026.9.6";

/// `(id, section, profiles, availability)` of every core tool of 2026.9.6, in catalog order.
/// `M`/`C`/`G` = minimal/coding/messaging.
const CORE_2026_9_6: &[(&str, &str, &str, Availability)] = {
    use Availability::{Always as A, NotBuilt as N, Unsandboxed as U};
    &[
        ("ls", "fs", "C", A),
        ("read", "fs", "C", A),
        ("write", "fs", "C", A),
        ("edit", "fs", "C", A),
        ("apply_patch", "fs", "C", A),
        ("exec", "runtime", "C", A),
        ("process", "runtime", "C", A),
        ("code_execution", "runtime", "C", N),
        ("secrets", "runtime", "CG", A),
        ("web_search", "web", "C", A),
        ("web_fetch", "web", "C", A),
        ("x_search", "web", "C", N),
        ("memory_search", "memory", "C", A),
        ("memory_get", "memory", "C", A),
        ("sessions", "sessions", "CG", A),
        ("sessions_list", "sessions", "CG", A),
        ("sessions_history", "sessions", "CG", A),
        ("sessions_search", "sessions", "CG", A),
        ("conversations_list", "sessions", "CG", A),
        ("conversations_send", "sessions", "CG", A),
        ("conversations_turn", "sessions", "CG", A),
        ("sessions_send", "sessions", "CG", A),
        ("sessions_spawn", "sessions", "CG", A),
        ("github_identity_status", "sessions", "C", N),
        ("github_publish", "sessions", "C", N),
        ("agents_wait", "sessions", "C", A),
        ("sessions_yield", "sessions", "CG", A),
        ("subagents", "sessions", "CG", A),
        ("session_status", "sessions", "MCG", A),
        ("suggest_task", "sessions", "C", N),
        ("dismiss_task", "sessions", "C", N),
        ("browser", "ui", "", A),
        ("screen", "ui", "C", N),
        ("theme", "ui", "CG", A),
        ("dashboard", "ui", "C", A),
        ("terminal", "ui", "C", U),
        ("portal", "ui", "C", U),
        ("canvas", "ui", "", A),
        ("show_widget", "ui", "", N),
        ("message", "messaging", "G", A),
        ("heartbeat_respond", "automation", "", N),
        ("automations", "automation", "C", A),
        ("gateway", "automation", "MCG", A),
        ("plugins", "automation", "C", A),
        ("openclaw", "automation", "", A),
        ("nodes", "nodes", "", A),
        ("computer", "nodes", "", A),
        ("mobile_ui", "nodes", "", A),
        ("agents_list", "agents", "", A),
        ("get_goal", "agents", "C", A),
        ("create_goal", "agents", "C", A),
        ("update_goal", "agents", "C", A),
        ("progress_card", "agents", "C", A),
        ("ask_user", "agents", "CG", A),
        ("skill_workshop", "agents", "C", U),
        ("view_image", "media", "C", N),
        ("image_generate", "media", "C", N),
        ("music_generate", "media", "C", N),
        ("video_generate", "media", "C", N),
        ("tts", "media", "", A),
        ("pdf", "media", "", N),
    ]
};

/// Core tools that are not part of `group:openclaw` (the file and runtime primitives, canvas).
const OUTSIDE_OPENCLAW_GROUP: &[&str] =
    &["ls", "read", "write", "edit", "apply_patch", "exec", "process", "canvas"];

/// Core tools a bundled plugin provides at runtime (the catalog lists them as core).
const CORE_FROM_PLUGIN: &[(&str, &str)] = &[
    ("memory_search", "memory-core"),
    ("memory_get", "memory-core"),
    ("browser", "browser"),
    ("canvas", "canvas"),
];

/// `(id, plugin, availability)` of the bundled plugins' own tools in 2026.9.6.
const PLUGIN_2026_9_6: &[(&str, &str, Availability)] = &[
    ("dir_fetch", "file-transfer", Availability::Always),
    ("dir_list", "file-transfer", Availability::Always),
    ("file_fetch", "file-transfer", Availability::Always),
    ("file_write", "file-transfer", Availability::Always),
    ("node_inference", "ollama", Availability::Always),
    ("intent", "memory-core", Availability::NotBuilt),
    ("talk_voice", "talk-voice", Availability::Always),
];

fn profiles_of(code: &str) -> Vec<String> {
    let names = [('M', "minimal"), ('C', "coding"), ('G', "messaging")];
    names.iter().filter(|(c, _)| code.contains(*c)).map(|(_, name)| (*name).to_owned()).collect()
}

impl ToolCatalog {
    /// Returns the table of 2026.9.6.
    pub fn table() -> Vec<CatalogTool> {
        let core = CORE_2026_9_6.iter().map(|(id, section, profiles, availability)| CatalogTool {
            id: (*id).to_owned(),
            section: (*section).to_owned(),
            profiles: profiles_of(profiles),
            plugin: CORE_FROM_PLUGIN.iter().find(|(tool, _)| tool == id).map(|(_, p)| (*p).to_owned()),
            in_openclaw_group: !OUTSIDE_OPENCLAW_GROUP.contains(id),
            availability: *availability,
        });
        let plugins = PLUGIN_2026_9_6.iter().map(|(id, plugin, availability)| CatalogTool {
            id: (*id).to_owned(),
            section: format!("plugin:{plugin}"),
            profiles: Vec::new(),
            plugin: Some((*plugin).to_owned()),
            in_openclaw_group: false,
            availability: *availability,
        });
        core.chain(plugins).collect()
    }

    /// Returns the catalog for a runtime whose `openclaw --version` is `version` (the bare
    /// version, e.g. `2026.9.6`), falling back to the newest table when there is none.
    pub fn for_version(version: Option<&str>) -> Self {
        let source = match version {
            Some(TABLE_VERSION) => CatalogSource::VersionTable { version: TABLE_VERSION.to_owned() },
            other => CatalogSource::NearestTable {
                runtime_version: other.map(str::to_owned),
                table_version: TABLE_VERSION.to_owned(),
            },
        };
        Self { source, tools: Self::table() }
    }

    /// Builds the catalog from a Gateway's `tools.catalog` answer. Ids and profiles come from
    /// the Gateway; whether a tool is built comes from the table (a tool the table does not
    /// know counts as built, so a new tool is never hidden).
    pub fn from_gateway(answer: &Value, version: Option<&str>) -> Option<Self> {
        let table = Self::table();
        let groups = answer.get("groups")?.as_array()?;
        let mut tools = Vec::new();
        for group in groups {
            let section_id = group.get("id").and_then(Value::as_str).unwrap_or_default();
            let is_plugin = group.get("source").and_then(Value::as_str) == Some("plugin");
            for tool in group.get("tools").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = tool.get("id").and_then(Value::as_str) else { continue };
                let known = table.iter().find(|t| t.id == id);
                let profiles = tool
                    .get("defaultProfiles")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let plugin = tool
                    .get("pluginId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| known.and_then(|t| t.plugin.clone()));
                tools.push(CatalogTool {
                    id: id.to_owned(),
                    section: section_id.to_owned(),
                    profiles,
                    plugin,
                    in_openclaw_group: known.map(|t| t.in_openclaw_group).unwrap_or(!is_plugin),
                    availability: known.map(|t| t.availability).unwrap_or(Availability::Always),
                });
            }
        }
        if tools.is_empty() {
            return None;
        }
        // Core tools the Gateway leaves out of its listing (e.g. `github_*` when GitHub
        // publication is not configured) are not built either; keep them for group expansion.
        for known in table {
            if !tools.iter().any(|t| t.id == known.id) && known.plugin.is_none() {
                tools.push(CatalogTool { availability: Availability::NotBuilt, ..known });
            }
        }
        Some(Self { source: CatalogSource::Gateway { version: version.map(str::to_owned) }, tools })
    }

    /// Returns the ids a `group:<name>` entry expands to (core groups only, as OpenClaw's
    /// `TOOL_GROUPS`); `None` when the name is no core group.
    pub fn group(&self, name: &str) -> Option<Vec<&str>> {
        let section = name.strip_prefix("group:")?;
        if section == "plugins" {
            return None;
        }
        let core = self.tools.iter().filter(|t| !t.section.starts_with("plugin:"));
        let members: Vec<&str> = if section == "openclaw" {
            core.filter(|t| t.in_openclaw_group).map(|t| t.id.as_str()).collect()
        } else {
            core.filter(|t| t.section == section).map(|t| t.id.as_str()).collect()
        };
        (!members.is_empty()).then_some(members)
    }
}
