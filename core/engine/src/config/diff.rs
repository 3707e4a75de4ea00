//! What changed between two versions of a policy file, field by field, for the audit trail of
//! a live reload.

use serde::Serialize;
use serde_json::Value;

use super::PolicyFile;

/// One changed field of the effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigChange {
    /// Where, as a path into the file (`groups[api].max`, `providers.sim.simulated.seed`).
    /// Groups are named by their `name` rather than their position, so reordering them is no
    /// change.
    pub path: String,
    /// The value before; absent when the field was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after; absent when the field was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The fields of the effective configuration (defaults filled in) that differ between
/// `before` and `after`, in path order.
pub fn diff(before: &PolicyFile, after: &PolicyFile) -> Vec<ConfigChange> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(before), serde_json::to_value(after)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(String::new(), Some(&keyed(a)), Some(&keyed(b)), &mut out);
    out
}

/// The file's JSON with `groups` as a map by name, so groups are matched by name.
fn keyed(mut value: Value) -> Value {
    if let Some(groups) = value.get_mut("groups")
        && let Value::Array(list) = groups.take()
    {
        let mut by_name = serde_json::Map::new();
        for (index, group) in list.into_iter().enumerate() {
            let name = group
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{index}"), str::to_owned);
            by_name.insert(name, group);
        }
        *groups = Value::Object(by_name);
    }
    value
}

fn join(path: &str, key: &str, in_groups: bool) -> String {
    match (path.is_empty(), in_groups) {
        (_, true) => format!("{path}[{key}]"),
        (true, false) => key.to_owned(),
        (false, false) => format!("{path}.{key}"),
    }
}

fn walk(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<ConfigChange>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let in_groups = path == "groups";
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(join(&path, key, in_groups), x.get(key), y.get(key), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for index in 0..x.len().max(y.len()) {
                walk(format!("{path}[{index}]"), x.get(index), y.get(index), out);
            }
        }
        (Some(x), Some(y)) if x == y => {}
        (Some(Value::Null), None) | (None, Some(Value::Null)) | (None, None) => {}
        (x, y) => out.push(ConfigChange {
            path: if path.is_empty() { ".".into() } else { path },
            before: x.cloned(),
            after: y.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file(text: &str) -> PolicyFile {
        crate::config::parse_str(Path::new("p.yml"), text)
            .expect("policy")
            .policy
    }

    const BASE: &str = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: api\n    provider: sim\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n  - name: web\n    provider: sim\n    min: 1\n    max: 5\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";

    #[test]
    fn changed_fields_are_named_by_group_and_field() {
        let after = BASE.replace("max: 10", "max: 20").replace(
            "target: 0.6 }\n  - name: web",
            "target: 0.5 }\n  - name: web",
        );
        let changes = diff(&file(BASE), &file(&after));
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "groups[api].max",
                "groups[api].policies[0].target_tracking.target"
            ]
        );
        assert_eq!(changes[0].before, Some(serde_json::json!(10)));
        assert_eq!(changes[0].after, Some(serde_json::json!(20)));
        assert_eq!(changes[1].after, Some(serde_json::json!(0.5)));
    }

    #[test]
    fn reordering_groups_is_no_change_and_a_removed_group_is_one() {
        let web_first = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: web\n    provider: sim\n    min: 1\n    max: 5\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n  - name: api\n    provider: sim\n    min: 1\n    max: 10\n    policies:\n      - target_tracking: { metric: utilization, target: 0.6 }\n";
        assert!(diff(&file(BASE), &file(web_first)).is_empty());
        let api_only = BASE.split("  - name: web").next().unwrap();
        let changes = diff(&file(BASE), &file(api_only));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].path, "groups[web]");
        assert!(changes[0].after.is_none());
    }
}
