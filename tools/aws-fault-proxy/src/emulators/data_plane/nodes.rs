//! Node objects, as a node's kubelet registers them, and which Nodes go when their
//! instance does.
//!
//! - Name: the instance's private DNS name; `spec.providerID` `aws:///<zone>/<instance-id>`
//!   (amazon-eks-ami `nodeadm/internal/kubelet/config.go`).
//! - Labels: the well-known ones (`kubernetes.io/hostname|os|arch`,
//!   `node.kubernetes.io/instance-type`, `topology.kubernetes.io/zone|region`; Karpenter's
//!   `docs/concepts/scheduling.md` lists them); on a managed node also
//!   `eks.amazonaws.com/nodegroup`, `…/nodegroup-image`, `…/capacityType`, with a launch
//!   template `…/sourceLaunchTemplateId|Version` (EKS user guide,
//!   `nodes/managed-node-groups.adoc`, `nodes/managed-node-update-behavior.adoc`), and the
//!   nodegroup's own `labels`; its `taints` become the Node's, with Kubernetes' names for the
//!   effects (`nodes/node-taints-managed-node-groups.adoc`).
//! - `status.capacity.pods` = `status.allocatable.pods` = max pods (`max_pods.rs`);
//!   addresses InternalIP, InternalDNS, Hostname; condition `Ready` True.
//! - A Node whose instance is terminated, or that EC2 does not know, is deleted, as the
//!   cloud node lifecycle controller does (kubernetes/cloud-provider `node_lifecycle_controller`,
//!   `InstanceExistsByProviderID`), for the regions the pass looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// What a Node is made from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    /// The private DNS name.
    pub name: String,
    pub instance_id: String,
    pub zone: String,
    pub region: String,
    pub private_ip: String,
    pub instance_type: String,
    /// Kubernetes' name (`amd64`, `arm64`).
    pub arch: String,
    pub max_pods: u32,
    /// Labels beyond the well-known ones (the managed nodegroup's).
    pub labels: BTreeMap<String, String>,
    /// The nodegroup's taints, as EKS gives them (`{key, value, effect: NO_SCHEDULE}`).
    pub taints: Vec<Value>,
}

/// Kubernetes' architecture name for EC2's (`SupportedArchitectures`).
pub fn kubernetes_arch(ec2: &[String]) -> String {
    if ec2.iter().any(|a| a == "x86_64") {
        "amd64".to_string()
    } else if ec2.iter().any(|a| a == "arm64") {
        "arm64".to_string()
    } else {
        ec2.first().cloned().unwrap_or_else(|| "amd64".to_string())
    }
}

/// `aws:///<zone>/<instance-id>`
pub fn provider_id(zone: &str, instance_id: &str) -> String {
    format!("aws:///{zone}/{instance_id}")
}

/// (zone, instance id) of an `aws://` provider ID.
pub fn parse_provider_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("aws:///")?;
    let (zone, instance) = rest.split_once('/')?;
    (instance.starts_with("i-") && !instance.contains('/')).then_some((zone, instance))
}

/// The region of a Node: its `topology.kubernetes.io/region` label, else its provider ID's
/// zone without the zone letter.
pub fn node_region(node: &Value) -> Option<String> {
    if let Some(r) = node
        .pointer("/metadata/labels/topology.kubernetes.io~1region")
        .and_then(Value::as_str)
    {
        return Some(r.to_string());
    }
    let (zone, _) = parse_provider_id(node.pointer("/spec/providerID")?.as_str()?)?;
    let region = zone.trim_end_matches(|c: char| c.is_ascii_lowercase());
    (!region.is_empty() && region != zone).then(|| region.to_string())
}

/// The Node object a kubelet registers.
pub fn node_object(facts: &NodeFacts) -> Value {
    let mut labels = Map::new();
    for (k, v) in &facts.labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in [
        ("kubernetes.io/hostname", facts.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", facts.arch.as_str()),
        (
            "node.kubernetes.io/instance-type",
            facts.instance_type.as_str(),
        ),
        ("topology.kubernetes.io/zone", facts.zone.as_str()),
        ("topology.kubernetes.io/region", facts.region.as_str()),
    ] {
        labels.insert(k.to_string(), Value::String(v.to_string()));
    }
    let taints: Vec<Value> = facts.taints.iter().filter_map(taint).collect();
    let pods = facts.max_pods.to_string();
    let mut spec = json!({"providerID": provider_id(&facts.zone, &facts.instance_id)});
    if !taints.is_empty() {
        spec["taints"] = Value::Array(taints);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": facts.name, "labels": labels},
        "spec": spec,
        "status": {
            "capacity": {"pods": pods},
            "allocatable": {"pods": pods},
            "addresses": [
                {"type": "InternalIP", "address": facts.private_ip},
                {"type": "InternalDNS", "address": facts.name},
                {"type": "Hostname", "address": facts.name},
            ],
            "conditions": [ready_condition(false)],
            "nodeInfo": {"architecture": facts.arch, "operatingSystem": "linux"},
        },
    })
}

/// An EKS taint (`NO_SCHEDULE`, ...) as a Node taint (`NoSchedule`, ...).
fn taint(t: &Value) -> Option<Value> {
    let effect = match t["effect"].as_str()? {
        "NO_SCHEDULE" => "NoSchedule",
        "NO_EXECUTE" => "NoExecute",
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
        _ => return None,
    };
    let mut out = json!({"key": t["key"].as_str()?, "effect": effect});
    if let Some(v) = t["value"].as_str() {
        out["value"] = Value::String(v.to_string());
    }
    Some(out)
}

/// The names of the Nodes to delete: those of the `regions` looked at whose instance is
/// among `ending` (shutting down or terminated) or not in `known` (every instance EC2
/// reported; the pass does not ask for terminated ones).
pub fn stale_nodes(
    nodes: &[Value],
    regions: &BTreeSet<String>,
    known: &BTreeSet<String>,
    ending: &BTreeSet<String>,
) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|node| {
            let name = node.pointer("/metadata/name")?.as_str()?;
            let (_, instance) = parse_provider_id(node.pointer("/spec/providerID")?.as_str()?)?;
            let region = node_region(node)?;
            let gone = ending.contains(instance) || !known.contains(instance);
            (regions.contains(&region) && gone).then(|| name.to_string())
        })
        .collect()
}

/// The Node's `Ready` condition as the kubelet reports it: `False` with
/// `NetworkPluginNotReady` until the CNI has initialised (amazon-vpc-cni-k8s
/// `cmd/aws-vpc-cni/main.go` writes the CNI config only then; karpenter-provider-aws #1391).
pub fn ready_condition(ready: bool) -> Value {
    let now = rfc3339(SystemTime::now());
    if ready {
        json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": super::cni::NOT_READY_MESSAGE,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    }
}

/// RFC 3339 in UTC, seconds precision (`2026-01-02T03:04:05Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn node_object_shape() {
        let facts = NodeFacts {
            name: "ip-10-0-1-5.ec2.internal".into(),
            instance_id: "i-1".into(),
            zone: "us-east-1a".into(),
            region: "us-east-1".into(),
            private_ip: "10.0.1.5".into(),
            instance_type: "t3.medium".into(),
            arch: "amd64".into(),
            max_pods: 17,
            labels: [("eks.amazonaws.com/nodegroup".to_string(), "ng".to_string())].into(),
            taints: vec![json!({"key": "k", "value": "v", "effect": "NO_SCHEDULE"})],
        };
        let n = node_object(&facts);
        assert_eq!(n["spec"]["providerID"], "aws:///us-east-1a/i-1");
        assert_eq!(n["status"]["allocatable"]["pods"], "17");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"], "ng");
        assert_eq!(
            n["spec"]["taints"],
            json!([{"key": "k", "value": "v", "effect": "NoSchedule"}])
        );
        assert_eq!(node_region(&n).as_deref(), Some("us-east-1"));
    }

    #[test]
    fn stale_nodes_are_those_whose_instance_is_gone() {
        let node = |name: &str, id: &str| json!({"metadata": {"name": name}, "spec": {"providerID": format!("aws:///us-east-1a/{id}")}});
        let nodes = vec![
            node("a", "i-1"),
            node("b", "i-2"),
            node("c", "i-3"),
            json!({"metadata": {"name": "d"}, "spec": {"providerID": "aws:///eu-west-1b/i-9"}}),
            json!({"metadata": {"name": "e"}}),
        ];
        let regions: BTreeSet<String> = ["us-east-1".to_string()].into();
        let known: BTreeSet<String> = ["i-1".to_string(), "i-2".to_string()].into();
        let ending: BTreeSet<String> = ["i-2".to_string()].into();
        assert_eq!(
            stale_nodes(&nodes, &regions, &known, &ending),
            vec!["b", "c"]
        );
        assert_eq!(parse_provider_id("aws:///z/i-1"), Some(("z", "i-1")));
        assert_eq!(parse_provider_id("gce://p/z/n"), None);
        assert_eq!(kubernetes_arch(&["arm64".into()]), "arm64");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
    }
}
