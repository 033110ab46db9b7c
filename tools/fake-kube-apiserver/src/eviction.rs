//! The judgement behind the Eviction API (`POST .../pods/NAME/eviction`), as
//! kube-apiserver's eviction REST (`pkg/registry/core/pod/storage/eviction.go`) and the
//! disruption controller (`pkg/controller/disruption`) make it. The fake runs no disruption
//! controller, so a budget is computed from the pods when an eviction asks for it.

use serde_json::Value;

/// A PodDisruptionBudget's numbers, as the disruption controller writes them into `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget expects: with `maxUnavailable` or a percentage `minAvailable`, the
    /// scale of the pods' controllers (see [`budget`]); with an integer `minAvailable`, the
    /// number of pods the selector matches (as the real controller does).
    pub expected: i64,
    /// Matching pods that are Ready and not being deleted.
    pub current_healthy: i64,
    pub desired_healthy: i64,
    /// `current_healthy - desired_healthy`, or 0 when that is negative or nothing is expected.
    pub disruptions_allowed: i64,
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn being_deleted(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `podutil.IsPodReady`: the `Ready` condition is `True`.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// `canIgnorePDB`: a pod that is not running (Pending, Succeeded, Failed) or is already being
/// deleted is evicted without looking at budgets.
pub fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(phase(pod), "Pending" | "Succeeded" | "Failed") || being_deleted(pod)
}

/// Whether a PDB's `spec.selector` selects a pod with these labels. As in the eviction REST,
/// a missing or empty selector, or one that does not parse, selects nothing.
pub fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector").filter(|s| s.is_object()) else {
        return false;
    };
    let labels = pod.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let exprs = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if match_labels.is_empty() && exprs.is_empty() {
        return false;
    }
    let labels_ok = match_labels
        .iter()
        .all(|(k, v)| v.as_str().is_some_and(|v| label(k) == Some(v)));
    labels_ok
        && exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let got = label(key);
            match e["operator"].as_str().unwrap_or_default() {
                "In" => got.is_some_and(|g| values.contains(&g)),
                "NotIn" => got.is_none_or(|g| !values.contains(&g)),
                "Exists" => got.is_some(),
                "DoesNotExist" => got.is_none(),
                // An invalid selector makes the PDB match nothing.
                _ => false,
            }
        })
}

/// `intstr.GetScaledValueFromIntOrPercent(v, total, roundUp)`: an integer, or `"N%"` of
/// `total` rounded up or down. `None` for anything else.
fn scaled(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let x = pct * total;
            Some(if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            })
        }
        _ => None,
    }
}

/// The pod's controller (`ownerReferences` entry with `controller: true`): kind and name.
fn controller_ref(pod: &Value) -> Option<(&str, &str)> {
    let refs = pod.pointer("/metadata/ownerReferences")?.as_array()?;
    let c = refs.iter().find(|r| r["controller"] == true)?;
    Some((c["kind"].as_str()?, c["name"].as_str()?))
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// `getExpectedScale`: the sum of `spec.replicas` over the pods' distinct controllers, a
/// ReplicaSet that a Deployment controls counting as that Deployment. `lookup(kind, name)`
/// finds an object in the PDB's namespace. Where the real controller gives up (a pod
/// without a controller, or one of a kind the fake does not serve, such as a StatefulSet,
/// or a controller that is not in the store) the pod counts as one.
fn expected_scale(pods: &[&&Value], lookup: &dyn Fn(&str, &str) -> Option<Value>) -> i64 {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut total = 0;
    for p in pods {
        let top = controller_ref(p).and_then(|(kind, name)| match kind {
            "ReplicaSet" => {
                let rs = lookup("ReplicaSet", name)?;
                let deploy = controller_ref(&rs)
                    .filter(|(k, _)| *k == "Deployment")
                    .and_then(|(_, d)| Some((d.to_string(), lookup("Deployment", d)?)));
                Some(match deploy {
                    Some((d, obj)) => (("Deployment".to_string(), d), replicas(&obj)),
                    None => (("ReplicaSet".to_string(), name.to_string()), replicas(&rs)),
                })
            }
            "Deployment" => {
                let obj = lookup("Deployment", name)?;
                Some((("Deployment".to_string(), name.to_string()), replicas(&obj)))
            }
            _ => None,
        });
        match top {
            Some((key, _)) if seen.contains(&key) => {}
            Some((key, n)) => {
                seen.push(key);
                total += n;
            }
            None => total += 1,
        }
    }
    total
}

/// The budget of `pdb` over `pods` (the pods of its namespace), as the disruption
/// controller's `trySync` computes it. `lookup(kind, name)` finds the pods' controllers.
pub fn budget(
    pdb: &Value,
    pods: &[&Value],
    lookup: &dyn Fn(&str, &str) -> Option<Value>,
) -> Budget {
    let matching: Vec<&&Value> = pods.iter().filter(|p| selects(pdb, p)).collect();
    let count = matching.len() as i64;
    let current_healthy = matching
        .iter()
        .filter(|p| pod_ready(p) && !being_deleted(p))
        .count() as i64;
    let spec = pdb.get("spec");
    let max_unavailable = spec
        .and_then(|s| s.get("maxUnavailable"))
        .filter(|v| !v.is_null());
    let min_available = spec
        .and_then(|s| s.get("minAvailable"))
        .filter(|v| !v.is_null());
    // A value that does not parse (the real server's validation would refuse it) leaves the
    // budget with nothing to spare.
    let (expected, desired) = match (max_unavailable, min_available) {
        (Some(mu), _) => {
            let scale = expected_scale(&matching, lookup);
            match scaled(mu, scale, true) {
                Some(mu) => (scale, (scale - mu).max(0)),
                None => (scale, scale),
            }
        }
        (None, Some(Value::Number(n))) => (count, n.as_i64().unwrap_or(count)),
        (None, Some(ma)) => {
            let scale = expected_scale(&matching, lookup);
            (scale, scaled(ma, scale, true).unwrap_or(scale))
        }
        // Neither: the controller expects nothing, so nothing may be disrupted.
        (None, None) => (0, 0),
    };
    let mut allowed = current_healthy - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    Budget {
        expected,
        current_healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value, ready: bool) -> Value {
        json!({"metadata": {"labels": labels}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn budgets_follow_the_disruption_controller() {
        let a = json!({"app": "a"});
        let pods = [
            pod(a.clone(), true),
            pod(a.clone(), true),
            pod(a.clone(), false),
            pod(json!({"app": "b"}), true),
        ];
        let refs: Vec<&Value> = pods.iter().collect();
        let budget = |pdb: &Value, pods: &[&Value]| budget(pdb, pods, &|_, _| None);
        let pdb = |spec: Value| {
            let mut s = spec;
            s["selector"] = json!({"matchLabels": {"app": "a"}});
            json!({"spec": s})
        };
        let b = budget(&pdb(json!({"maxUnavailable": 1})), &refs);
        assert_eq!(
            b,
            Budget {
                expected: 3,
                current_healthy: 2,
                desired_healthy: 2,
                disruptions_allowed: 0
            }
        );
        let b = budget(&pdb(json!({"minAvailable": 1})), &refs);
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (1, 1));
        // 50% of 3 rounds up to 2.
        let b = budget(&pdb(json!({"minAvailable": "50%"})), &refs);
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (2, 0));
        let b = budget(&pdb(json!({"maxUnavailable": "34%"})), &refs);
        assert_eq!((b.desired_healthy, b.disruptions_allowed), (1, 1));
        let b = budget(&pdb(json!({})), &refs);
        assert_eq!((b.expected, b.disruptions_allowed), (0, 0));
    }

    #[test]
    fn expected_pods_come_from_the_controllers_scale() {
        let owned = |kind: &str, name: &str| {
            let mut p = pod(json!({"app": "a"}), true);
            p["metadata"]["ownerReferences"] =
                json!([{"kind": kind, "name": name, "controller": true}]);
            p
        };
        let pods = [owned("ReplicaSet", "a-1"), owned("ReplicaSet", "a-1")];
        let refs: Vec<&Value> = pods.iter().collect();
        let pdb = json!({"spec": {"maxUnavailable": 1,
            "selector": {"matchLabels": {"app": "a"}}}});
        let lookup = |kind: &str, name: &str| match (kind, name) {
            ("ReplicaSet", "a-1") => Some(json!({"metadata": {"ownerReferences":
                [{"kind": "Deployment", "name": "a", "controller": true}]},
                "spec": {"replicas": 2}})),
            ("Deployment", "a") => Some(json!({"spec": {"replicas": 3}})),
            _ => None,
        };
        let b = budget(&pdb, &refs, &lookup);
        assert_eq!(
            (b.expected, b.desired_healthy, b.disruptions_allowed),
            (3, 2, 0)
        );
        // Without the Deployment, the ReplicaSet's scale; without either, the pod count.
        let b = budget(&pdb, &refs, &|k, n| {
            lookup(k, n).filter(|_| k == "ReplicaSet")
        });
        assert_eq!((b.expected, b.disruptions_allowed), (2, 1));
        let b = budget(&pdb, &refs[..1], &|_, _| None);
        assert_eq!((b.expected, b.disruptions_allowed), (1, 1));
    }

    #[test]
    fn selectors_as_the_eviction_rest_reads_them() {
        let p = pod(json!({"app": "a", "tier": "x"}), true);
        let sel = |s: Value| json!({"spec": {"selector": s}});
        assert!(selects(&sel(json!({"matchLabels": {"app": "a"}})), &p));
        assert!(!selects(&sel(json!({"matchLabels": {"app": "b"}})), &p));
        assert!(!selects(&sel(json!({})), &p), "empty selects nothing");
        assert!(!selects(&json!({"spec": {}}), &p), "nil selects nothing");
        let expr = |op: &str, values: Value| {
            sel(json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}))
        };
        assert!(selects(&expr("In", json!(["x", "y"])), &p));
        assert!(!selects(&expr("NotIn", json!(["x"])), &p));
        assert!(selects(&expr("Exists", json!([])), &p));
        assert!(!selects(&expr("DoesNotExist", json!([])), &p));
        assert!(!selects(&expr("Bogus", json!([])), &p));
    }

    #[test]
    fn terminal_pending_and_deleting_pods_skip_budgets() {
        for phase in ["Pending", "Succeeded", "Failed"] {
            assert!(can_ignore_pdb(&json!({"status": {"phase": phase}})));
        }
        assert!(!can_ignore_pdb(&json!({"status": {"phase": "Running"}})));
        assert!(can_ignore_pdb(
            &json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"},
                "status": {"phase": "Running"}})
        ));
    }
}
