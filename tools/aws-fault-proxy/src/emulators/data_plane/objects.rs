//! Small readers of Kubernetes objects shared by the pod-side controllers (`pods.rs`,
//! `workloads.rs`).

use std::time::SystemTime;

use serde_json::Value;

use crate::shared::form_encode;

pub fn name_of(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn pod_path(pod: &Value) -> String {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    format!(
        "/api/v1/namespaces/{}/pods/{}",
        form_encode(ns),
        form_encode(&name_of(pod))
    )
}

pub fn node_name_of(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// The uid of a pod's controller (its owner with `controller: true`).
pub fn controller_uid(pod: &Value) -> Option<String> {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o["controller"] == true)
        .and_then(|o| o["uid"].as_str())
        .map(str::to_string)
}

pub fn now_rfc3339() -> String {
    super::nodes::rfc3339(SystemTime::now())
}

/// Whether a DaemonSet owns the pod (its controller places it; the scheduler does not).
pub fn owned_by_daemonset(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|os| os.iter().any(|o| o["kind"] == "DaemonSet"))
}
