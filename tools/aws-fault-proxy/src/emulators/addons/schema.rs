//! A validator for the part of JSON Schema the add-on schemas use: `type` (a name or a list),
//! `properties`, `additionalProperties` (false or a schema), `required`, `enum`, `pattern`,
//! `items` and `minimum`. Other keywords (`description`, `$schema`, ...) are ignored.
//!
//! Messages follow the validator EKS uses (networknt's), e.g.
//! `$.env.FOO: is not defined in the schema and the schema does not allow additional
//! properties`, so a client sees the text EKS would give it.

use serde_json::Value;

/// Every violation of `schema` by `value`, in document order; empty when it validates.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "$", &mut errors);
    errors
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    let found = type_name(value);
    found == expected || (expected == "number" && found == "integer")
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        // `true`, `{}`-like or unknown: anything goes.
        return;
    };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|n| type_matches(n, value)) {
            errors.push(format!(
                "{path}: {} found, {} expected",
                type_name(value),
                names.join(", ")
            ));
            // The other keywords would only repeat the same mistake.
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            let shown: Vec<String> = allowed
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            errors.push(format!(
                "{path}: does not have a value in the enumeration [{}]",
                shown.join(", ")
            ));
        }
    }
    if let (Some(Value::String(pattern)), Value::String(text)) = (schema.get("pattern"), value) {
        match regex_lite::Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => errors.push(format!(
                "{path}: does not match the regex pattern {pattern}"
            )),
            Err(e) => errors.push(format!("{path}: schema pattern {pattern} is invalid: {e}")),
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            errors.push(format!("{path}: must have a minimum value of {min}"));
        }
    }
    if let Value::Object(obj) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    errors.push(format!("{path}.{key}: is missing but it is required"));
                }
            }
        }
        // Sorted, so that the messages come in the same order whatever the map's order
        // (serde_json's `preserve_order` may be on in a workspace build).
        let mut keys: Vec<&String> = obj.keys().collect();
        keys.sort();
        for key in keys {
            let Some(child) = obj.get(key) else { continue };
            let child_path = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check(sub, child, &child_path, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!(
                        "{child_path}: is not defined in the schema and the schema does not \
                         allow additional properties"
                    )),
                    Some(sub @ Value::Object(_)) => check(sub, child, &child_path, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Value::Array(list)) = (schema.get("items"), value) {
        for (i, item) in list.iter().enumerate() {
            check(items, item, &format!("{path}[{i}]"), errors);
        }
    }
}

/// Whether every `pattern` in the schema is a valid regex (for the catalogue's tests).
#[cfg(test)]
pub fn patterns_compile(schema: &Value) -> bool {
    match schema {
        Value::Object(obj) => obj.iter().all(|(k, v)| match (k.as_str(), v) {
            ("pattern", Value::String(p)) => regex_lite::Regex::new(p).is_ok(),
            _ => patterns_compile(v),
        }),
        Value::Array(list) => list.iter().all(patterns_compile),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "env": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "WARM_ENI_TARGET": {"type": "string", "pattern": "^[0-9]+$"},
                        "LOGLEVEL": {"type": "string", "enum": ["DEBUG", "INFO"]}
                    }
                },
                "subnets": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "string"},
                            "securityGroups": {"type": "array", "items": {"type": "string"}}
                        }
                    }
                },
                "count": {"type": "integer", "minimum": 1},
                "either": {"type": ["integer", "string"]}
            }
        })
    }

    #[test]
    fn valid_documents_pass() {
        let ok = json!({
            "env": {"WARM_ENI_TARGET": "2", "LOGLEVEL": "INFO"},
            "subnets": {"us-east-1a": {"id": "subnet-1", "securityGroups": ["sg-1"]}},
            "count": 3,
            "either": "25%"
        });
        assert_eq!(validate(&schema(), &ok), Vec::<String>::new());
        assert!(validate(&schema(), &json!({})).is_empty());
    }

    #[test]
    fn violations_are_named_like_eks_does() {
        let bad = json!({
            "env": {"NOT_A_KNOB": "1", "WARM_ENI_TARGET": "two", "LOGLEVEL": "LOUD"},
            "subnets": {"a": {"securityGroups": ["sg-1", 2]}},
            "count": 0,
            "either": true,
            "extra": {}
        });
        let errors = validate(&schema(), &bad);
        for expected in [
            "$.env.NOT_A_KNOB: is not defined in the schema and the schema does not allow \
             additional properties",
            "$.env.WARM_ENI_TARGET: does not match the regex pattern ^[0-9]+$",
            "$.env.LOGLEVEL: does not have a value in the enumeration [DEBUG, INFO]",
            "$.subnets.a.id: is missing but it is required",
            "$.subnets.a.securityGroups[1]: integer found, string expected",
            "$.count: must have a minimum value of 1",
            "$.either: boolean found, integer, string expected",
            "$.extra: is not defined in the schema and the schema does not allow additional \
             properties",
        ] {
            assert!(
                errors.iter().any(|e| e == expected),
                "{expected}\n{errors:#?}"
            );
        }
        assert_eq!(errors.len(), 8, "{errors:#?}");
        assert_eq!(
            validate(&schema(), &json!("text")),
            vec!["$: string found, object expected".to_string()]
        );
    }
}
