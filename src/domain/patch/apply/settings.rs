//! Reading and editing one agent's settings inside a config document, whichever roster shape
//! the document uses.

use serde_json::{Map, Value, json};

use crate::domain::openclaw::string_list;
use crate::domain::permissions::tools::normalise;

/// Returns the object at `key`, creating (or replacing a non-object with) an empty one.
pub(in crate::domain::patch) fn object_at<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), Value::Object(Map::new()));
    }
    match map.get_mut(key) {
        Some(Value::Object(inner)) => inner,
        _ => unreachable!("an object was inserted above"),
    }
}

/// Returns the settings object of agent `id` (keyed `agents.entries` or legacy `agents.list`).
pub(super) fn agent_mut<'a>(
    root: &'a mut Map<String, Value>,
    id: &str,
) -> Option<&'a mut Map<String, Value>> {
    let agents = root.get_mut("agents")?.as_object_mut()?;
    if agents.get("entries").is_some_and(Value::is_object) {
        let entries = agents.get_mut("entries")?.as_object_mut()?;
        return entries
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(id))
            .and_then(|(_, v)| v.as_object_mut());
    }
    agents.get_mut("list")?.as_array_mut()?.iter_mut().find_map(|item| {
        let matches = item.get("id").and_then(Value::as_str).is_some_and(|i| i.eq_ignore_ascii_case(id));
        if matches { item.as_object_mut() } else { None }
    })
}

/// The `tools` object of an agent, created when absent.
pub(super) fn tools_of(settings: &mut Map<String, Value>) -> &mut Map<String, Value> {
    object_at(settings, "tools")
}

/// Adds `tool` to the agent's own `tools.deny` (when no entry there names it exactly).
pub(super) fn deny_tool(settings: &mut Map<String, Value>, tool: &str) -> bool {
    let tools = tools_of(settings);
    let mut deny = string_list(tools.get("deny"));
    if deny.iter().any(|entry| normalise(entry) == tool) {
        return false;
    }
    deny.push(tool.to_owned());
    tools.insert("deny".to_owned(), json!(deny));
    true
}

/// How an agent's own policy can be made to grant a tool its layers filter out.
pub(super) enum Grant {
    /// The agent's own deny names the tool exactly: drop that entry.
    DropDeny,
    /// The agent has an `allow` list: add the tool to it.
    Allow,
    /// Add the tool to the agent's `alsoAllow` (starting from the global one it would replace).
    AlsoAllow,
    /// The agent's deny takes the tool away through a group or a pattern: granting it would
    /// grant the rest of that group too.
    DeniedByPattern(String),
}

/// Decides how to grant `tool` through the agent's own settings.
pub(super) fn grant_route(settings: &Map<String, Value>, tool: &str) -> Grant {
    let tools = settings.get("tools");
    let deny = string_list(tools.and_then(|t| t.get("deny")));
    if deny.iter().any(|entry| normalise(entry) == tool) {
        return Grant::DropDeny;
    }
    if let Some(entry) = deny.iter().find(|entry| {
        let name = normalise(entry);
        name.starts_with("group:") || name.contains('*')
    }) {
        return Grant::DeniedByPattern(entry.clone());
    }
    if tools.and_then(|t| t.get("allow")).is_some_and(Value::is_array) {
        Grant::Allow
    } else {
        Grant::AlsoAllow
    }
}

/// Applies a grant route; `global_also_allow` is `tools.alsoAllow`, which an agent's own
/// `alsoAllow` replaces in the profile layer (so it is carried over, not lost).
pub(super) fn grant(
    settings: &mut Map<String, Value>,
    tool: &str,
    route: &Grant,
    global_also_allow: &[String],
) {
    let tools = tools_of(settings);
    match route {
        Grant::DropDeny => {
            let deny: Vec<String> =
                string_list(tools.get("deny")).into_iter().filter(|entry| normalise(entry) != tool).collect();
            tools.insert("deny".to_owned(), json!(deny));
        }
        Grant::Allow => {
            let mut allow = string_list(tools.get("allow"));
            allow.push(tool.to_owned());
            tools.insert("allow".to_owned(), json!(allow));
        }
        Grant::AlsoAllow => {
            let mut also = if tools.get("alsoAllow").is_some_and(Value::is_array) {
                string_list(tools.get("alsoAllow"))
            } else {
                global_also_allow.to_vec()
            };
            if !also.iter().any(|entry| normalise(entry) == tool) {
                also.push(tool.to_owned());
            }
            tools.insert("alsoAllow".to_owned(), json!(also));
        }
        Grant::DeniedByPattern(_) => {}
    }
}
