//! JSON merge patch (RFC 7396) as OpenClaw's `config patch` applies it: objects merge,
//! arrays and scalars replace, `null` deletes.

use serde_json::{Map, Value};

/// Applies `patch` to `target` in place.
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        for (key, value) in patch {
            if value.is_null() {
                object.remove(key);
            } else {
                apply(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Returns the merge patch that turns `from` into `to` (`None` when they are equal).
/// A JSON `null` inside `to` cannot be expressed (it means "delete"); configs hold none.
pub fn diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) => {
                        if let Some(change) = diff(previous, value) {
                            patch.insert(key.clone(), change);
                        }
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (old, new) if old == new => None,
        (_, new) => Some(new.clone()),
    }
}

/// Returns the dotted paths of arrays that lose elements between `from` and `to`; the gateway
/// needs them in `replacePaths` to accept the shrink.
pub fn shrinking_arrays(from: &Value, to: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    collect_shrinking(from, to, "", &mut paths);
    paths
}

fn collect_shrinking(from: &Value, to: &Value, prefix: &str, out: &mut Vec<String>) {
    match (from, to) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, value) in new {
                if let Some(previous) = old.get(key) {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    collect_shrinking(previous, value, &path, out);
                }
            }
        }
        (Value::Array(old), Value::Array(new)) if old.iter().any(|item| !new.contains(item)) => {
            out.push(prefix.to_owned());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn apply_merges_objects_replaces_arrays_and_deletes_nulls() {
        let mut doc = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        apply(&mut doc, &json!({"a": {"c": [3], "e": true}, "d": null}));
        assert_eq!(doc, json!({"a": {"b": 1, "c": [3], "e": true}}));
    }

    #[test]
    fn diff_round_trips_through_apply() {
        let from =
            json!({"agents": {"entries": {"a": {"x": 1}, "b": {}}}, "bindings": [1, 2], "keep": "same"});
        let to =
            json!({"agents": {"entries": {"a": {"x": 2}, "c": {"y": []}}}, "bindings": [1], "keep": "same"});
        let patch = diff(&from, &to).unwrap();
        assert_eq!(
            patch,
            json!({"agents": {"entries": {"a": {"x": 2}, "b": null, "c": {"y": []}}}, "bindings": [1]})
        );
        let mut applied = from.clone();
        apply(&mut applied, &patch);
        assert_eq!(applied, to);
        assert_eq!(diff(&to, &to), None);
    }

    #[test]
    fn shrinking_arrays_are_listed_by_path() {
        let from =
            json!({"bindings": [1, 2], "tools": {"agentToAgent": {"allow": ["a", "b"]}, "deny": ["x"]}});
        let to =
            json!({"bindings": [1], "tools": {"agentToAgent": {"allow": ["b", "a"]}, "deny": ["x", "y"]}});
        assert_eq!(shrinking_arrays(&from, &to), ["bindings"]);
    }
}
