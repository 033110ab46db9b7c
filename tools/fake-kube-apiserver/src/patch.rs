//! Strategic merge patch: the Kubernetes-specific patch kubectl sends for built-in kinds.
//!
//! The real server derives list merge keys from Go struct tags; the fake keys them by
//! field name, which is unambiguous for the resources it serves.

use serde_json::{Map, Value};

/// Key fields of the lists that are merged element by element rather than replaced: the
/// `listMapKeys` of the real types (the first one is the strategic-merge `patchMergeKey`).
/// All other lists of built-in kinds are atomic.
pub(crate) fn list_map_keys(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "ports" => &["containerPort", "protocol"],
        "conditions" | "addresses" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        _ => return None,
    })
}

/// Merge key of list fields whose patch strategy is `merge`; all other lists are replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    list_map_keys(field).and_then(|keys| keys.first().copied())
}

fn directive(m: &Map<String, Value>) -> Option<&str> {
    m.get("$patch").and_then(Value::as_str)
}

/// Applies `patch` to `target` in place. Errors are messages for a 400 `BadRequest`.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(pm) = patch else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    match target {
        Value::Object(tm) => merge_map(tm, pm),
        _ => Ok(()),
    }
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<(), String> {
    match directive(patch) {
        Some("replace") => target.clear(),
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("Unknown patch type: {other}")),
    }
    for (k, pv) in patch {
        // Ordering hints are accepted and ignored: new list entries are appended.
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop = pv
                .as_array()
                .ok_or("$deleteFromPrimitiveList must be a list")?;
            if let Some(Value::Array(list)) = target.get_mut(field) {
                list.retain(|v| !drop.contains(v));
            }
            continue;
        }
        match pv {
            Value::Null => {
                target.shift_remove(k);
            }
            Value::Object(pm) if directive(pm) == Some("delete") => {
                target.shift_remove(k);
            }
            Value::Object(pm) => {
                let slot = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(tm) = slot {
                    merge_map(tm, pm)?;
                }
            }
            Value::Array(pl) => {
                let existing = target.get_mut(k).map(Value::take);
                let merged = merge_list(k, existing, pl)?;
                target.insert(k.clone(), merged);
            }
            scalar => {
                target.insert(k.clone(), scalar.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        target.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Ok(())
}

/// A patch value with directives and `null`s stripped, as stored for new entries.
fn clean(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            merge_map(&mut out, m)?;
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn merge_list(field: &str, existing: Option<Value>, patch: &[Value]) -> Result<Value, String> {
    let is_replace_marker = |e: &Value| {
        e.as_object()
            .is_some_and(|m| m.len() == 1 && directive(m) == Some("replace"))
    };
    let replace = patch.iter().any(is_replace_marker);
    let items = patch.iter().filter(|e| !is_replace_marker(e));
    let mut out = match existing {
        Some(Value::Array(a)) if !replace => a,
        _ => Vec::new(),
    };
    let Some(key) = merge_key(field).filter(|_| !replace) else {
        if field == "finalizers" && !replace {
            // metadata.finalizers uses the `merge` strategy on a primitive list: a union.
            for v in items {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            return Ok(Value::Array(out));
        }
        return items.map(clean).collect::<Result<_, _>>().map(Value::Array);
    };
    for item in items {
        let Value::Object(pm) = item else {
            return Err(format!(
                "{field}: list entries must be objects with merge key {key}"
            ));
        };
        let kv = pm
            .get(key)
            .ok_or_else(|| format!("map: {item} does not contain declared merge key: {key}"))?;
        if directive(pm) == Some("delete") {
            out.retain(|x| x.get(key) != Some(kv));
            continue;
        }
        match out.iter_mut().find(|x| x.get(key) == Some(kv)) {
            Some(Value::Object(tm)) => merge_map(tm, pm)?,
            _ => out.push(clean(item)?),
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_merges_by_name_and_delete_directive_removes() {
        let mut t = json!({"containers": [{"name": "a", "image": "i",
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]});
        let p = json!({"$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "env": [{"name": "Z", "value": "3"},
                {"name": "X", "$patch": "delete"}, {"name": "Y", "value": "9"}]}]});
        strategic_merge(&mut t, &p).unwrap();
        assert_eq!(
            t,
            json!({"containers": [{"name": "a", "image": "i",
            "env": [{"name": "Y", "value": "9"}, {"name": "Z", "value": "3"}]}]})
        );
    }

    #[test]
    fn replace_directives_nulls_and_plain_lists() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "tolerations": [{"key": "x"}], "d": 1,
            "finalizers": ["f1"], "volumes": [{"name": "v"}]});
        let p = json!({"a": {"$patch": "replace", "z": 0}, "tolerations": [{"key": "y"}],
            "d": null, "finalizers": ["f2"], "volumes": [{"$patch": "replace"}, {"name": "w"}]});
        strategic_merge(&mut t, &p).unwrap();
        assert_eq!(
            t,
            json!({"a": {"z": 0}, "tolerations": [{"key": "y"}],
            "finalizers": ["f1", "f2"], "volumes": [{"name": "w"}]})
        );
        assert!(strategic_merge(&mut t, &json!({"volumes": [{"x": 1}]})).is_err());
    }
}
