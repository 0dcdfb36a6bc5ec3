//! How far an interrupted write got: recovery's view of a runtime config after a crash or a
//! take-over in the middle of a rollout's write.
//!
//! A write is staged on every adapter that changes a real OpenClaw: first the narrowing patch
//! (everything but the roster deletions), then one `agents delete` per removed agent (each also
//! prunes the agent from the roster and from the lists that name it, which the patch already
//! did). A writer killed between the stages leaves a config that is neither the pre-image nor
//! the planned result, yet is exactly "the patch is in place, these deletions are pending" —
//! which recovery must finish rather than abandon. OpenClaw also stamps its own bookkeeping
//! under `meta` (`lastTouchedVersion`, `migrations`) on every write; it is not part of any
//! team, so it is left out of the comparison.

use serde_json::Value;

use super::merge;
use crate::domain::openclaw::parse_json5_bounded;

/// The planned write as found in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteProgress {
    /// Removed agents still in the roster: their deletions have not run yet (empty: the write
    /// is complete).
    pub pending_removals: Vec<String>,
}

/// Compares `current` with `pre_image` plus `merge_patch` (formatting, comments, key order and
/// OpenClaw's `meta` aside), treating the roster entries of `remove_agents` as the deletions'
/// business: `Some` when the patch is in place, with the deletions still to run; `None` when
/// `current` is something else.
pub fn write_progress(
    pre_image: &str,
    merge_patch: &Value,
    remove_agents: &[String],
    current: &str,
) -> Option<WriteProgress> {
    let (Ok(mut expected), Ok(mut actual)) = (parse_json5_bounded(pre_image), parse_json5_bounded(current))
    else {
        return None;
    };
    merge::apply(&mut expected, merge_patch);
    let pending_removals: Vec<String> =
        remove_agents.iter().filter(|id| in_roster(&actual, id)).cloned().collect();
    for config in [&mut expected, &mut actual] {
        if let Some(root) = config.as_object_mut() {
            root.remove("meta");
        }
        for id in remove_agents {
            drop_from_roster(config, id);
        }
    }
    (expected == actual).then_some(WriteProgress { pending_removals })
}

/// Whether agent `id` is in the roster (`agents.entries` map or `agents.list` array).
fn in_roster(config: &Value, id: &str) -> bool {
    let agents = config.get("agents");
    let in_entries =
        agents.and_then(|a| a.get("entries")).and_then(|e| e.get(id)).is_some_and(|e| !e.is_null());
    let in_list = agents
        .and_then(|a| a.get("list"))
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|entry| entry.get("id").and_then(Value::as_str) == Some(id)));
    in_entries || in_list
}

fn drop_from_roster(config: &mut Value, id: &str) {
    let Some(agents) = config.get_mut("agents").and_then(Value::as_object_mut) else { return };
    if let Some(entries) = agents.get_mut("entries").and_then(Value::as_object_mut) {
        entries.remove(id);
        if entries.is_empty() {
            agents.remove("entries");
        }
    }
    if let Some(list) = agents.get_mut("list").and_then(Value::as_array_mut) {
        list.retain(|entry| entry.get("id").and_then(Value::as_str) != Some(id));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PRE: &str = r#"// the team
    {
      agents: { entries: { lead: { name: "Lead" }, writer: { name: "Writer" } } },
      tools: { agentToAgent: { allow: ["lead", "writer"] } },
    }"#;

    fn patch() -> Value {
        json!({"agents": {"entries": {"writer": null, "qa": {"name": "QA"}}}, "tools": {"agentToAgent": {"allow": ["lead", "qa"]}}})
    }

    fn removed() -> Vec<String> {
        vec!["writer".to_owned()]
    }

    #[test]
    fn a_complete_write_has_nothing_pending_whatever_openclaw_stamped_under_meta() {
        let done = json!({
            "agents": {"entries": {"lead": {"name": "Lead"}, "qa": {"name": "QA"}}},
            "tools": {"agentToAgent": {"allow": ["lead", "qa"]}},
            "meta": {"lastTouchedVersion": "2026.9.6", "migrations": {"x": true}},
        });
        let progress = write_progress(PRE, &patch(), &removed(), &done.to_string());
        assert_eq!(progress, Some(WriteProgress { pending_removals: vec![] }));
    }

    #[test]
    fn a_write_stopped_between_the_patch_and_the_deletions_names_the_deletions_left() {
        let patched = json!({
            "agents": {"entries": {"lead": {"name": "Lead"}, "writer": {"name": "Writer"}, "qa": {"name": "QA"}}},
            "tools": {"agentToAgent": {"allow": ["lead", "qa"]}},
            "meta": {"lastTouchedVersion": "2026.9.6"},
        });
        let progress = write_progress(PRE, &patch(), &removed(), &patched.to_string());
        assert_eq!(progress, Some(WriteProgress { pending_removals: removed() }));
    }

    #[test]
    fn anything_else_is_not_the_planned_write() {
        for other in [
            // The pre-image: nothing was written (recovery tells this apart by hash first).
            json!({"agents": {"entries": {"lead": {"name": "Lead"}, "writer": {"name": "Writer"}}}, "tools": {"agentToAgent": {"allow": ["lead", "writer"]}}}),
            // A foreign edit on top of the patch.
            json!({"agents": {"entries": {"lead": {"name": "Lead!"}, "qa": {"name": "QA"}}}, "tools": {"agentToAgent": {"allow": ["lead", "qa"]}}}),
            // The deletion ran but the narrowing patch did not.
            json!({"agents": {"entries": {"lead": {"name": "Lead"}}}, "tools": {"agentToAgent": {"allow": ["lead"]}}}),
        ] {
            assert_eq!(write_progress(PRE, &patch(), &removed(), &other.to_string()), None, "{other}");
        }
        assert_eq!(write_progress(PRE, &patch(), &removed(), "{ not json"), None);
    }

    #[test]
    fn a_roster_kept_as_a_list_is_understood_too() {
        let pre = r#"{ agents: { list: [{ id: "lead" }, { id: "writer" }] } }"#;
        let patch = json!({"agents": {"list": [{"id": "lead"}, {"id": "writer"}, {"id": "qa"}]}});
        let half = json!({"agents": {"list": [{"id": "lead"}, {"id": "writer"}, {"id": "qa"}]}});
        let done = json!({"agents": {"list": [{"id": "lead"}, {"id": "qa"}]}});
        let progress = |current: &Value| write_progress(pre, &patch, &removed(), &current.to_string());
        assert_eq!(progress(&half), Some(WriteProgress { pending_removals: removed() }));
        assert_eq!(progress(&done), Some(WriteProgress { pending_removals: vec![] }));
    }
}
