//! The DaemonSet controller's rolling update and status (kubernetes
//! `pkg/controller/daemon/update.go`, `daemon_controller.go`): a pod made from an older pod
//! template (its `controller-revision-hash` label differs from the template's) is replaced,
//! at most `updateStrategy.rollingUpdate.maxUnavailable` nodes without an available pod at a
//! time (a count, or a percentage of the scheduled nodes rounded up; default 1; the VPC CNI's
//! is 10%, `config/master/aws-k8s-cni.yaml`); an old pod that is not available goes at once.
//! `OnDelete` rolls nothing. The status says how far a rollout is: `desiredNumberScheduled`,
//! `currentNumberScheduled`, `updatedNumberScheduled`, `numberReady`, `numberAvailable`,
//! `numberUnavailable`, `observedGeneration` — what `kubectl rollout status` (and eksnet)
//! wait on. The creation of the new pods is the controller's in `pods.rs`.

use serde_json::{json, Value};

use super::kube::Kube;
use super::objects::{controller_uid, node_name_of, pod_path};

/// The label the controller puts on each pod: its template's hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// A hash of the pod template (FNV-1a of its JSON, keys sorted), as the label's value.
pub fn template_hash(ds: &Value) -> String {
    let text = ds
        .pointer("/spec/template")
        .map(super::workloads::canonical)
        .unwrap_or_default();
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// Whether a pod is available: Ready (a DaemonSet's `minReadySeconds` is 0 by default).
fn available(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// `maxUnavailable` for `desired` scheduled nodes.
fn max_unavailable(ds: &Value, desired: usize) -> usize {
    let n = match ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<usize>().ok()) {
            Some(pct) => (desired * pct).div_ceil(100),
            None => s.parse().unwrap_or(1),
        },
        _ => 1,
    };
    // With no surge, at least one at a time (`update.go`).
    n.max(1)
}

/// The pods of `ds` (by its uid) on `node` that are not being deleted.
fn on_node<'a>(pods: &'a [Value], uid: &str, node: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| {
            controller_uid(p).as_deref() == Some(uid)
                && node_name_of(p) == Some(node)
                && p.pointer("/metadata/deletionTimestamp").is_none()
        })
        .collect()
}

fn of_template(pod: &Value, hash: &str) -> bool {
    pod.pointer(&format!("/metadata/labels/{HASH_LABEL}")) == Some(&json!(hash))
}

/// Which old pods to delete now, given the nodes the DaemonSet runs on (`nodes`).
fn to_replace(ds: &Value, uid: &str, pods: &[Value], nodes: &[String]) -> Vec<String> {
    if ds
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Vec::new();
    }
    let hash = template_hash(ds);
    let mut unavailable = nodes
        .iter()
        .filter(|n| !on_node(pods, uid, n).into_iter().any(available))
        .count();
    let budget = max_unavailable(ds, nodes.len());
    let mut out = Vec::new();
    for node in nodes {
        for pod in on_node(pods, uid, node)
            .into_iter()
            .filter(|p| !of_template(p, &hash))
        {
            if !available(pod) {
                out.push(pod_path(pod));
            } else if unavailable < budget {
                unavailable += 1;
                out.push(pod_path(pod));
            }
        }
    }
    out
}

/// One step of the rolling update: deletes the old pods the budget allows (and takes them out
/// of `pods`); the controller then makes their replacements.
pub async fn roll(
    kube: &Kube<'_>,
    ds: &Value,
    uid: &str,
    pods: &mut Vec<Value>,
    nodes: &[String],
) -> Result<(), String> {
    for path in to_replace(ds, uid, pods, nodes) {
        kube.delete(&path).await?;
        pods.retain(|p| pod_path(p) != path);
    }
    Ok(())
}

/// The status the controller reports, for the nodes the DaemonSet runs on.
pub fn status(ds: &Value, uid: &str, pods: &[Value], nodes: &[String]) -> Value {
    let hash = template_hash(ds);
    let count = |f: &dyn Fn(&Value) -> bool| {
        nodes
            .iter()
            .filter(|n| on_node(pods, uid, n).into_iter().any(f))
            .count()
    };
    let desired = nodes.len();
    let current = count(&|_| true);
    let updated = count(&|p| of_template(p, &hash));
    let ready = count(&|p| available(p));
    json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": 0,
        "updatedNumberScheduled": updated,
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": desired - ready,
        "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    })
}

/// Writes the status when it changed.
pub async fn report(kube: &Kube<'_>, ds: &Value, status: &Value) -> Result<(), String> {
    let now = ds.get("status").cloned().unwrap_or(Value::Null);
    let same = status
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| now.get(k) == Some(v)));
    if same {
        return Ok(());
    }
    let ns = ds
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = super::objects::name_of(ds);
    let path = format!(
        "/apis/apps/v1/namespaces/{}/daemonsets/{}/status",
        crate::shared::form_encode(ns),
        crate::shared::form_encode(&name)
    );
    kube.merge_patch(&path, &json!({ "status": status })).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(template: Value, max_unavailable: Value) -> Value {
        json!({"metadata": {"uid": "u", "generation": 3},
            "spec": {"template": template,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}}})
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "kube-system", "labels": {HASH_LABEL: hash},
                "ownerReferences": [{"uid": "u", "controller": true}]},
            "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    /// One node at a time with 10% of few nodes; an old pod that is not available goes at
    /// once; nothing when every pod is of the template; the status counts the rollout.
    #[test]
    fn old_pods_are_replaced_within_max_unavailable_and_the_status_says_how_far() {
        let new = ds(
            json!({"metadata": {"annotations": {"r": "2"}}}),
            json!("10%"),
        );
        let h = template_hash(&new);
        assert_ne!(h, template_hash(&ds(json!({}), json!("10%"))));
        let nodes = vec!["n1".to_string(), "n2".to_string(), "n3".to_string()];
        let old = vec![
            pod("a", "n1", "old", true),
            pod("b", "n2", "old", true),
            pod("c", "n3", "old", false),
        ];
        let gone = to_replace(&new, "u", &old, &nodes);
        // n3's pod is not available (1 unavailable already): it goes; the budget (1) is used.
        assert_eq!(gone, ["/api/v1/namespaces/kube-system/pods/c"]);
        let ready = vec![
            pod("a", "n1", "old", true),
            pod("b", "n2", "old", true),
            pod("c", "n3", &h, true),
        ];
        assert_eq!(
            to_replace(&new, "u", &ready, &nodes),
            ["/api/v1/namespaces/kube-system/pods/a"]
        );
        let st = status(&new, "u", &ready, &nodes);
        assert_eq!(
            (
                st["updatedNumberScheduled"].clone(),
                st["numberAvailable"].clone()
            ),
            (json!(1), json!(3))
        );
        assert_eq!(st["observedGeneration"], 3);
        let done = vec![
            pod("a", "n1", &h, true),
            pod("b", "n2", &h, true),
            pod("c", "n3", &h, true),
        ];
        assert!(to_replace(&new, "u", &done, &nodes).is_empty());
        assert_eq!(
            status(&new, "u", &done, &nodes)["updatedNumberScheduled"],
            3
        );
        let mut on_delete = new.clone();
        on_delete["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert!(to_replace(&on_delete, "u", &old, &nodes).is_empty());
        assert_eq!(max_unavailable(&ds(json!({}), json!("10%")), 25), 3);
        assert_eq!(max_unavailable(&ds(json!({}), json!(2)), 25), 2);
    }
}
