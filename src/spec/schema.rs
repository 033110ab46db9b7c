//! The JSON Schema of a spec (`eksnet schema`), made from the definitions `parse` reads a spec
//! with: `[settings]`, `[state]`, the config of every kind a spec may write, and the
//! `lifecycle` table every resource may have. Each field's doc comment is its description;
//! its type, default and allowed values are those serde and the kinds' checks use. Editors
//! that check TOML against a JSON Schema (Taplo, Even Better TOML) then complete and check a
//! spec as it is typed.
//!
//! What the schema cannot say stays with `validate`: rules between fields and between
//! resources (`id` or `stack_name`, a subnet inside a declared block, one `aws_node` per
//! cluster), the shapes of ids, names and CIDRs, and whether a reference names an output.
//! Draft 7, the draft Taplo reads.

use super::{derived_kind, Lifecycle, Settings, StateTable, MAX_TIMEOUT_SECS};
use crate::base::addr::{Kind, RESOURCE_NAME_PATTERN};
use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// The spec's JSON Schema, as `eksnet schema` prints it.
pub fn spec_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<SpecFile>().to_value();
    tidy(&mut schema);
    // What a reader looks for first, first.
    if let Value::Object(map) = &mut schema {
        for key in ["description", "title", "$schema"] {
            if let Some(v) = map.shift_remove(key) {
                map.shift_insert(0, key.into(), v);
            }
        }
    }
    schema
}

/// A whole spec file, as `parse` reads it.
struct SpecFile;

impl JsonSchema for SpecFile {
    fn schema_name() -> Cow<'static, str> {
        "eksnet spec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut properties = Map::new();
        properties.insert(
            "settings".into(),
            Settings::json_schema(generator).to_value(),
        );
        properties.insert(
            "state".into(),
            StateTable::json_schema(generator).to_value(),
        );
        let lifecycle = json!({
            "$ref": generator.subschema_for::<Lifecycle>().get("$ref"),
            "description": description(&Lifecycle::json_schema(generator)),
        });
        for kind in Kind::ALL.iter().copied().filter(|k| !derived_kind(*k)) {
            let mut resource = crate::resources::config_schema(kind, generator);
            let what = description(&resource);
            if let Some(fields) = resource
                .get_mut("properties")
                .and_then(Value::as_object_mut)
            {
                // `parse` takes `lifecycle` out of every block before the kind reads it.
                fields.insert("lifecycle".into(), lifecycle.clone());
            }
            properties.insert(
                kind.as_str().into(),
                json!({
                    "type": "object",
                    "description": format!("{what} One `[{kind}.NAME]` table each; NAME is letters, digits, `_` and `-`."),
                    "propertyNames": { "pattern": RESOURCE_NAME_PATTERN },
                    "additionalProperties": resource,
                }),
            );
        }
        json_schema!({
            "title": "eksnet spec",
            "description": "An eksnet spec: EKS custom networking as resources, one `[KIND.NAME]` table each, with an optional `[settings]` and `[state]` (see docs/spec.md). Printed by `eksnet schema`; what spans fields or resources is checked by `eksnet validate`.",
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

/// `[settings.timeouts]`: one key per kind, with the kind's default wait. Any kind, as
/// `validate` allows; 0 would fail every wait at once, more than `MAX_TIMEOUT_SECS` is
/// milliseconds written by mistake.
pub(super) fn timeouts(_: &mut SchemaGenerator) -> Schema {
    let kinds: Map<String, Value> = Kind::ALL
        .iter()
        .map(|kind| {
            let secs = crate::resources::facts(*kind).default_timeout.as_secs();
            let key = kind.as_str().to_string();
            let schema = json!({
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TIMEOUT_SECS,
                "default": secs,
                "description": format!("`{key}`: seconds eksnet waits for a create, update or delete to finish."),
            });
            (key, schema)
        })
        .collect();
    json_schema!({
        "type": "object",
        "properties": kinds,
        "additionalProperties": false,
    })
}

fn description(schema: &Schema) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// What the derived schemas say that a TOML file has no use for, or says awkwardly: a doc
/// comment's line breaks (a paragraph is one line in an editor's hover), `null` beside an
/// optional field's type (TOML has no null: an absent key is how a field is left out), the
/// integer formats of Rust's types (`int64`, `uint32`: no JSON Schema format), and
/// `writeOnly` on the fields eksnet reads but never writes back (`max_pods`).
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get_mut("description") {
                *text = join_lines(text);
            }
            if let Some(Value::Array(types)) = map.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                let kept = match kept.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(kept),
                };
                map.insert("type".into(), kept);
            }
            if map.get("type").is_some_and(|t| t == "integer") {
                map.remove("format");
            }
            if map.get("writeOnly") == Some(&Value::Bool(true)) {
                map.remove("writeOnly");
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(choices)) = map.get_mut(key) {
                    choices.retain(|c| c.get("type").is_none_or(|t| t != "null"));
                    if let [only] = choices.as_slice() {
                        let only = only.clone();
                        map.remove(key);
                        map.insert("allOf".into(), json!([only]));
                    }
                }
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// A doc comment's text with the lines of each paragraph joined by spaces.
fn join_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::addr::valid_resource_name;
    use crate::base::value::{is_ref, REFERENCE_PATTERN};

    /// The schema's patterns, as a JSON Schema validator applies them, say what the parser's
    /// functions say.
    #[test]
    fn the_patterns_match_what_the_parser_accepts() {
        let matches = |pattern: &str, text: &str| {
            jsonschema::is_valid(
                &json!({ "type": "string", "pattern": pattern }),
                &json!(text),
            )
        };
        for text in [
            "${iam_role.node.arn}",
            "${cluster.main.name}-pods",
            "arn:${vpc.main.id}",
            "${_x.y.z}",
            "${subnet.a",
            "${AWS::Region}",
            "${ vpc.main.id}",
            "$ {vpc.main.id}",
            "${vpc}",
            "${9vpc.main.id}",
            "ON_DEMAND",
            "",
        ] {
            assert_eq!(matches(REFERENCE_PATTERN, text), is_ref(text), "{text:?}");
        }
        for name in [
            "main", "pod_a", "pod-a", "A9", "", "pod.a", "pod a", "é", "x/y",
        ] {
            assert_eq!(
                matches(RESOURCE_NAME_PATTERN, name),
                valid_resource_name(name),
                "{name:?}"
            );
        }
    }

    #[test]
    fn descriptions_are_joined_per_paragraph_and_null_is_dropped() {
        let mut v = json!({
            "description": "One\nsentence.\n\nTwo.",
            "properties": {
                "a": { "type": ["string", "null"], "description": "x" },
                "b": { "anyOf": [{ "$ref": "#/definitions/B" }, { "type": "null" }] },
                "c": { "type": "integer", "format": "uint32", "writeOnly": true }
            }
        });
        tidy(&mut v);
        assert_eq!(
            v,
            json!({
                "description": "One sentence.\n\nTwo.",
                "properties": {
                    "a": { "type": "string", "description": "x" },
                    "b": { "allOf": [{ "$ref": "#/definitions/B" }] },
                    "c": { "type": "integer" }
                }
            })
        );
    }
}
