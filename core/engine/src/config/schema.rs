//! The JSON Schema of the policy file, for editors. The engine names no provider kind: with a
//! registry, each provider factory supplies the schema of its own settings
//! ([`hoist_api::registry::ProviderFactory::settings_schema`]).

use hoist_api::registry::ProviderRegistry;
use serde_json::{Map, Value, json};

use super::{PLUGIN_KIND, PolicyFile};

/// The name of the providers' definition in the schema's `$defs` (see `ProviderConfig`'s
/// `JsonSchema`).
const PROVIDER_DEF: &str = "Provider";

/// The JSON Schema of the policy file with providers and metrics sources as generic objects of
/// one kind key.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(PolicyFile);
    serde_json::to_value(schema).unwrap_or_default()
}

/// The JSON Schema of the policy file for the provider kinds of `registry`: a provider (under
/// `providers` or `metrics_sources`) is one of the kinds, `{KIND: settings}` with the settings
/// schema the kind's factory supplies (the `plugin` kind's schema describes the provider's whole
/// map, `plugin: PATH` and `config:`). Definitions a factory's schema carries (`$defs`) move to the
/// document's `$defs` under `KIND.NAME`, with its references rewritten to match.
pub fn json_schema_for(registry: &ProviderRegistry) -> Value {
    let mut schema = json_schema();
    let Some(root) = schema.as_object_mut() else {
        return schema;
    };
    let defs = root
        .entry("$defs")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(defs) = defs.as_object_mut() else {
        return schema;
    };
    let mut kinds = Vec::new();
    let mut branches = Vec::new();
    for factory in registry.factories() {
        let kind = factory.kind();
        kinds.push(format!("`{kind}`"));
        let settings = embed(kind, factory.settings_schema(), defs);
        branches.push(if kind == PLUGIN_KIND {
            settings
        } else {
            json!({
                "type": "object",
                "properties": { kind: settings },
                "required": [kind],
                "additionalProperties": false
            })
        });
    }
    let description = format!(
        "A provider: exactly one kind key with that kind's settings. Kinds of this build: {}.",
        kinds.join(", ")
    );
    defs.insert(
        PROVIDER_DEF.to_owned(),
        json!({ "description": description, "oneOf": branches }),
    );
    schema
}

/// Makes a factory's schema a subschema of the policy file's: its `$defs` (or `definitions`) go
/// to `defs` as `KIND.NAME`, and its references to them follow.
fn embed(kind: &str, mut fragment: Value, defs: &mut Map<String, Value>) -> Value {
    let Some(object) = fragment.as_object_mut() else {
        // `true` / `false` schemas.
        return fragment;
    };
    object.remove("$schema");
    object.remove("$id");
    let mut own = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(found)) = object.remove(key) {
            own.extend(found);
        }
    }
    let prefix = format!("#/$defs/{}.", escape_pointer(kind));
    rewrite_refs(&mut fragment, &prefix);
    for (name, mut def) in own {
        rewrite_refs(&mut def, &prefix);
        defs.insert(format!("{kind}.{name}"), def);
    }
    fragment
}

/// Rewrites `#/$defs/NAME` and `#/definitions/NAME` references to `PREFIX NAME`.
fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = child
                {
                    let name = target
                        .strip_prefix("#/$defs/")
                        .or_else(|| target.strip_prefix("#/definitions/"));
                    if let Some(name) = name {
                        *target = format!("{prefix}{name}");
                    }
                } else {
                    rewrite_refs(child, prefix);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

/// Escapes a JSON Pointer token (RFC 6901).
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
