//! The pure parts of what an add-on does in the cluster: the server-side apply body EKS
//! sends (field manager `eks`), reading a field-manager conflict out of the API server's
//! `Status`, and leaving conflicting fields out of the body (`resolveConflicts=PRESERVE`).
//! `addons.rs` sends the requests.

use serde_json::{json, Value};

use super::catalogue::KubeTarget;

/// The field manager EKS applies add-ons with.
pub const FIELD_MANAGER: &str = "eks";
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The add-on's env for its main container: EKS's defaults, with each variable of
/// `configurationValues.env` replacing the default of that name or, if there is none,
/// appended (in name order, so the body does not depend on the JSON map's order).
pub fn env(target: &KubeTarget, config: Option<&Value>) -> Vec<Value> {
    let mut env = target.env.clone();
    let Some(overrides) = config.and_then(|c| c.get("env")).and_then(Value::as_object) else {
        return env;
    };
    let mut extra: Vec<(&String, &Value)> = Vec::new();
    for (name, value) in overrides {
        let entry = json!({"name": name, "value": value});
        match env.iter_mut().find(|e| e["name"] == name.as_str()) {
            Some(slot) => *slot = entry,
            None => extra.push((name, value)),
        }
    }
    extra.sort_by(|a, b| a.0.cmp(b.0));
    env.extend(
        extra
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value})),
    );
    env
}

/// The apply body. `full` sends the whole manifest (when the workload is missing, or EKS
/// created it earlier and so owns all of it); otherwise only what the add-on manages on an
/// existing workload: the main container's image and env.
pub fn apply_body(
    target: &KubeTarget,
    region: &str,
    version: &str,
    config: Option<&Value>,
    full: bool,
) -> Value {
    let env = env(target, config);
    if !full {
        let mut container = json!({"name": target.container, "env": env});
        if let Some(image) = target.image(&target.container, region, version) {
            container["image"] = Value::String(image);
        }
        return json!({
            "apiVersion": target.api_version(),
            "kind": target.kind(),
            "metadata": {"name": target.name(), "namespace": target.namespace()},
            "spec": {"template": {"spec": {"containers": [container]}}},
        });
    }
    let mut manifest = target.manifest.clone();
    for list in ["containers", "initContainers"] {
        let pointer = format!("/spec/template/spec/{list}");
        let Some(containers) = manifest.pointer_mut(&pointer).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut() {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if let Some(image) = target.image(&name, region, version) {
                c["image"] = Value::String(image);
            }
            if name == target.container {
                c["env"] = Value::Array(env.clone());
            }
        }
    }
    manifest
}

/// The fields of a field-manager conflict: a 409 `Status` with reason `Conflict` and
/// `details.causes[].field` (`.spec.template.spec.containers[name="aws-node"].image`).
/// Empty for any other answer, including a 409 that is not about field ownership.
pub fn conflict_fields(status: &Value) -> Vec<String> {
    if status["reason"] != "Conflict" {
        return Vec::new();
    }
    status
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .map(|causes| {
            causes
                .iter()
                .filter_map(|c| c["field"].as_str())
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// EKS's message for an apply refused over conflicts (`resolveConflicts` NONE), one line
/// per conflicting field.
pub fn conflict_message(target: &KubeTarget, fields: &[String]) -> String {
    let mut message = String::from(
        "Conflicts found when trying to apply. Will not continue due to resolve conflicts mode. \
         Conflicts:",
    );
    for field in fields {
        message.push_str(&format!(
            "\n{} {} - {field}",
            target.kind_and_group(),
            target.name()
        ));
    }
    message
}

/// One step of a managed-fields path.
#[derive(Debug, PartialEq)]
enum Step {
    /// `.name`
    Field(String),
    /// `[k="v",k2=1]`: the list item whose keys have these values.
    Keys(Vec<(String, Value)>),
    /// `[="v"]`: the item of a set of scalars.
    Value(Value),
    /// `[3]`
    Index(usize),
}

/// Parses a path as the API server prints it (sigs.k8s.io/structured-merge-diff):
/// `.spec.template.spec.containers[name="aws-node"].env[name="X"].value`.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Field(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let (step, remaining) = parse_selector(after)?;
            steps.push(step);
            rest = remaining;
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Parses what follows a `[` up to and including its `]`.
fn parse_selector(s: &str) -> Option<(Step, &str)> {
    if let Some(value) = s.strip_prefix('=') {
        let (v, rest) = json_prefix(value)?;
        return Some((Step::Value(v), rest.strip_prefix(']')?));
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && s[digits..].starts_with(']') {
        return Some((Step::Index(s[..digits].parse().ok()?), &s[digits + 1..]));
    }
    let mut keys = Vec::new();
    let mut rest = s;
    loop {
        let eq = rest.find('=')?;
        let key = rest[..eq].to_string();
        let (value, after) = json_prefix(&rest[eq + 1..])?;
        keys.push((key, value));
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else {
            return Some((Step::Keys(keys), after.strip_prefix(']')?));
        }
    }
}

/// The JSON value at the start of `s` (a string, number, bool or null) and what follows.
fn json_prefix(s: &str) -> Option<(Value, &str)> {
    let end = if s.starts_with('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                _ => {}
            }
        }
        end?
    } else {
        s.find([',', ']']).unwrap_or(s.len())
    };
    let value = serde_json::from_str(&s[..end]).ok()?;
    Some((value, &s[end..]))
}

fn item_matches(item: &Value, step: &Step) -> bool {
    match step {
        Step::Keys(keys) => keys.iter().all(|(k, v)| item.get(k) == Some(v)),
        Step::Value(v) => item == v,
        _ => false,
    }
}

/// Removes the field at `path` from an apply body, and whatever that leaves without
/// meaning: an empty object, or a list item with nothing but its keys (applying it would
/// still claim the item). `false` if the path is not in the body or cannot be read, in
/// which case the body is unchanged.
pub fn remove_field(body: &mut Value, path: &str) -> bool {
    match parse_path(path) {
        Some(steps) if !steps.is_empty() => remove(body, &steps),
        _ => false,
    }
}

fn remove(node: &mut Value, steps: &[Step]) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return false;
    };
    match (step, node) {
        (Step::Field(name), Value::Object(obj)) => {
            if rest.is_empty() {
                return obj.remove(name).is_some();
            }
            let Some(child) = obj.get_mut(name) else {
                return false;
            };
            if !remove(child, rest) {
                return false;
            }
            if is_empty(child) {
                obj.remove(name);
            }
            true
        }
        (Step::Index(i), Value::Array(list)) => {
            if *i >= list.len() {
                return false;
            }
            if rest.is_empty() {
                list.remove(*i);
                return true;
            }
            let removed = list.get_mut(*i).is_some_and(|item| remove(item, rest));
            if removed && list.get(*i).is_some_and(is_empty) {
                list.remove(*i);
            }
            removed
        }
        (selector @ (Step::Keys(_) | Step::Value(_)), Value::Array(list)) => {
            let Some(i) = list.iter().position(|item| item_matches(item, selector)) else {
                return false;
            };
            if rest.is_empty() {
                list.remove(i);
                return true;
            }
            let removed = list.get_mut(i).is_some_and(|item| remove(item, rest));
            let only_keys = match (selector, list.get(i)) {
                (Step::Keys(keys), Some(Value::Object(item))) => {
                    item.keys().all(|k| keys.iter().any(|(key, _)| key == k))
                }
                _ => false,
            };
            if removed && only_keys {
                list.remove(i);
            }
            removed
        }
        _ => false,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `Status.message` of an API server answer, or its raw text.
pub fn status_message(status: u16, body: &Value, raw: &str) -> String {
    match body["message"].as_str() {
        Some(m) => format!("{status}: {m}"),
        None if raw.is_empty() => format!("HTTP {status}"),
        None => format!("{status}: {}", raw.chars().take(300).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulators::addons::catalogue::catalogue;

    fn target() -> &'static KubeTarget {
        catalogue()
            .find("vpc-cni")
            .and_then(|a| a.kube.as_ref())
            .unwrap()
    }

    #[test]
    fn env_overlays_defaults_and_appends_new_names_in_order() {
        let config = json!({"env": {
            "WARM_ENI_TARGET": "2",
            "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone",
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
            "ENI_CONFIG_ANNOTATION_DEF": "k8s.amazonaws.com/eniConfig"
        }});
        let env = env(target(), Some(&config));
        let get = |n: &str| env.iter().find(|e| e["name"] == n).cloned();
        assert_eq!(get("WARM_ENI_TARGET").unwrap()["value"], "2");
        assert_eq!(
            get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG").unwrap()["value"],
            "true"
        );
        assert_eq!(
            get("AWS_VPC_K8S_CNI_EXTERNALSNAT").unwrap()["value"],
            "false"
        );
        assert!(get("MY_NODE_NAME").unwrap()["valueFrom"].is_object());
        assert_eq!(env.len(), target().env.len() + 2);
        let n = env.len();
        assert_eq!(env[n - 2]["name"], "ENI_CONFIG_ANNOTATION_DEF");
        assert_eq!(env[n - 1]["name"], "ENI_CONFIG_LABEL_DEF");
        assert_eq!(super::env(target(), None), target().env);
    }

    #[test]
    fn partial_and_full_bodies() {
        let body = apply_body(target(), "us-west-2", "v1.19.2-eksbuild.1", None, false);
        assert_eq!(body["apiVersion"], "apps/v1");
        assert_eq!(body["kind"], "DaemonSet");
        assert_eq!(
            body["metadata"],
            json!({"name": "aws-node", "namespace": "kube-system"})
        );
        let c = &body["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 1);
        assert_eq!(c[0]["name"], "aws-node");
        assert_eq!(
            c[0]["image"],
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1"
        );
        assert!(body["spec"].get("selector").is_none());

        let full = apply_body(target(), "us-west-2", "v1.19.2-eksbuild.1", None, true);
        assert_eq!(
            full["spec"]["selector"]["matchLabels"]["k8s-app"],
            "aws-node"
        );
        let spec = &full["spec"]["template"]["spec"];
        assert_eq!(
            full["spec"]["template"]["metadata"]["labels"]["k8s-app"],
            "aws-node"
        );
        assert_eq!(
            spec["initContainers"][0]["image"],
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni-init:v1.19.2-eksbuild.1"
        );
        assert_eq!(spec["containers"][0]["env"], json!(target().env));
        assert!(spec["containers"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with("/amazon-k8s-cni:v1.19.2-eksbuild.1"));
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path(r#".spec.template.spec.containers[name="aws-node"].env[name="A,]"].value"#),
            Some(vec![
                Step::Field("spec".into()),
                Step::Field("template".into()),
                Step::Field("spec".into()),
                Step::Field("containers".into()),
                Step::Keys(vec![("name".into(), json!("aws-node"))]),
                Step::Field("env".into()),
                Step::Keys(vec![("name".into(), json!("A,]"))]),
                Step::Field("value".into()),
            ])
        );
        assert_eq!(
            parse_path(r#".ports[containerPort=61678,protocol="TCP"].name"#),
            Some(vec![
                Step::Field("ports".into()),
                Step::Keys(vec![
                    ("containerPort".into(), json!(61678)),
                    ("protocol".into(), json!("TCP"))
                ]),
                Step::Field("name".into()),
            ])
        );
        assert_eq!(
            parse_path(r#".finalizers[="a"]"#),
            Some(vec![
                Step::Field("finalizers".into()),
                Step::Value(json!("a"))
            ])
        );
        assert_eq!(
            parse_path(".args[2]"),
            Some(vec![Step::Field("args".into()), Step::Index(2)])
        );
        assert_eq!(parse_path("spec"), None);
        assert_eq!(parse_path(".a[name="), None);
        assert_eq!(parse_path(".a..b"), None);
    }

    #[test]
    fn removing_conflicts_prunes_what_is_left_empty() {
        let mut body = apply_body(target(), "us-west-2", "v1.19.2-eksbuild.1", None, false);
        let image = r#".spec.template.spec.containers[name="aws-node"].image"#;
        assert!(remove_field(&mut body, image));
        let c = &body["spec"]["template"]["spec"]["containers"][0];
        assert!(c.get("image").is_none());
        assert!(c["env"].is_array());
        // A value removed from an env entry removes the entry: `{name}` alone would still
        // claim the variable.
        let warm =
            r#".spec.template.spec.containers[name="aws-node"].env[name="WARM_ENI_TARGET"].value"#;
        assert!(remove_field(&mut body, warm));
        let env = body["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        assert!(env.iter().all(|e| e["name"] != "WARM_ENI_TARGET"));
        assert!(!remove_field(&mut body, warm), "already gone");
        assert!(!remove_field(&mut body, ".spec.nothing"));
        assert!(!remove_field(&mut body, "garbage"));
        // The whole container: nothing of the spec is left to apply.
        assert!(remove_field(
            &mut body,
            r#".spec.template.spec.containers[name="aws-node"]"#
        ));
        assert!(body.get("spec").is_none(), "{body}");
        assert_eq!(body["metadata"]["name"], "aws-node");
    }

    #[test]
    fn conflicts_from_a_status() {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
            "reason": "Conflict",
            "message": "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.template.spec.containers[name=\"aws-node\"].image",
            "details": {"name": "aws-node", "group": "apps", "kind": "daemonsets", "causes": [
                {"type": "FieldManagerConflict", "message": "conflict with \"kubectl\" using apps/v1",
                 "field": ".spec.template.spec.containers[name=\"aws-node\"].image"}
            ]}
        });
        let fields = conflict_fields(&status);
        assert_eq!(
            fields,
            vec![r#".spec.template.spec.containers[name="aws-node"].image"#.to_string()]
        );
        assert_eq!(
            conflict_message(target(), &fields),
            "Conflicts found when trying to apply. Will not continue due to resolve conflicts \
             mode. Conflicts:\nDaemonSet.apps aws-node - \
             .spec.template.spec.containers[name=\"aws-node\"].image"
        );
        let stale = json!({"reason": "Conflict", "message": "the object has been modified"});
        assert!(conflict_fields(&stale).is_empty());
        assert!(conflict_fields(&json!({"reason": "AlreadyExists"})).is_empty());
        assert_eq!(
            status_message(409, &stale, ""),
            "409: the object has been modified"
        );
        assert_eq!(status_message(502, &json!({}), ""), "HTTP 502");
    }
}
