//! The VPC resource controller (aws/amazon-vpc-resource-controller-k8s, run by EKS in the
//! control plane), for security groups for pods: pure decisions; the data plane carries them
//! out in moto and the API server (`pods.rs`).
//!
//! - **Trunk** (`pkg/provider/branch/trunk/trunk.go`, `docs/sgp/workflow.md`): on a node
//!   whose VPC CNI runs with `ENABLE_POD_ENI=true` and has room for one more ENI (ipamd keeps
//!   the slot, amazon-vpc-cni-k8s `pkg/ipamd/ipamd.go` `hasRoomForEni`), of a type its table
//!   marks `IsTrunkingCompatible` (`pkg/aws/vpc/limits.go`; [`branch_interfaces`]), one
//!   interface described `aws-k8s-trunk-eni` (`pkg/aws/ec2/api/helper.go` prefixes
//!   `aws-k8s-`) is created and attached, in the node's ENIConfig subnet with its groups under
//!   custom networking, else the node's subnet and groups (`pkg/aws/ec2/instance.go`),
//!   DeleteOnTermination set. The Node is labelled `vpc.amazonaws.com/has-trunk-attached=true`
//!   and advertises `vpc.amazonaws.com/pod-eni` = the type's branch interfaces in its capacity
//!   (`pkg/provider/branch/provider.go`, `UpdateResourceCapacity`).
//! - **Webhook** (`webhooks/core/pod_webhook.go`): a pod (not on the host network) that a
//!   SecurityGroupPolicy of its namespace selects gets `vpc.amazonaws.com/pod-eni: 1` in its
//!   first container's limits and requests, so the scheduler puts it only where a branch
//!   interface is free ("The Pod is scheduled on a Node which has capacity to provide 1 Branch
//!   ENI", `docs/sgp/workflow.md`); with no such node it stays unschedulable.
//! - **Branch** (`trunk.go`, `CreateAndAssociateBranchENIs`): for such a pod bound to a node
//!   with a trunk, an interface described `aws-k8s-branch-eni` in the trunk's subnet with the
//!   groups of every policy that selects it ([`matching_groups`], `pkg/utils/helper.go`), not
//!   attached to the instance, tagged with its VLAN and trunk; the pod is annotated
//!   `vpc.amazonaws.com/pod-eni` with its details ([`pod_eni_annotation`]) and the CNI gives
//!   the pod that address. When the pod is gone its branch is deleted after the cool-down
//!   (`pkg/provider/branch/cooldown`, 60 s by default: `branch_cooldown_ms` here).
//!
//! Not modelled: the association to the trunk (moto has no `AssociateTrunkInterface`; the
//! VLAN and trunk are in the branch's tags, as the controller itself tags them, and the
//! annotation's `associationID` is empty), `matchNames` of service accounts, Windows and
//! Fargate pods, the webhook for pods a DaemonSet creates bound to their node.

use serde_json::{json, Value};

pub const TRUNK_DESCRIPTION: &str = "aws-k8s-trunk-eni";
pub const BRANCH_DESCRIPTION: &str = "aws-k8s-branch-eni";
/// The controller's description prefix (`pkg/aws/ec2/api/helper.go`); the CNI's is
/// `aws-K8S-`.
pub const DESCRIPTION_PREFIX: &str = "aws-k8s-";
pub const HAS_TRUNK_LABEL: &str = "vpc.amazonaws.com/has-trunk-attached";
/// The extended resource of branch interfaces, and the pod annotation with the branch's
/// details (`pkg/config/type.go`, `ResourceNamePodENI`).
pub const POD_ENI: &str = "vpc.amazonaws.com/pod-eni";
/// Tags of the controller's interfaces (`pkg/config/type.go`).
pub const TAG_VLAN: &str = "vpcresources.k8s.aws/vlan-id";
pub const TAG_TRUNK: &str = "vpcresources.k8s.aws/trunk-eni-id";
pub const TAG_OWNER: &str = "eks:eni:owner";
pub const OWNER: &str = "eks-vpc-resource-controller";
pub const POLICIES: &str = "/apis/vpcresources.k8s.aws/v1beta1/securitygrouppolicies";
/// VLAN ids a trunk gives its branches: 1 to 120 (`trunk.go`, `MaxAllocatableVlanIds` 121,
/// 0 never assigned).
const MAX_VLAN: u32 = 120;

/// The branch interfaces of a type whose table entry is `IsTrunkingCompatible`, from the
/// controller's `pkg/aws/vpc/limits.go` (2026-08) for the types the sandbox runs; `None`:
/// not trunk-compatible, or not in this excerpt (the controller attaches no trunk to a type
/// its table lacks).
pub fn branch_interfaces(instance_type: &str) -> Option<u32> {
    const TABLE: &[(&str, u32)] = &[
        ("a1.large", 9),
        ("c5.large", 9),
        ("c5.xlarge", 18),
        ("c5.4xlarge", 54),
        ("c7g.large", 9),
        ("m5.large", 9),
        ("m5.xlarge", 18),
        ("m5.2xlarge", 38),
        ("m5.4xlarge", 54),
        ("m5.24xlarge", 107),
        ("m6i.large", 9),
        ("m6i.xlarge", 18),
        ("m7g.large", 9),
        ("r5.large", 9),
    ];
    TABLE
        .iter()
        .find(|(t, _)| *t == instance_type)
        .map(|(_, n)| *n)
}

/// Whether labels match a Kubernetes label selector (`metav1.LabelSelectorAsSelector`):
/// every `matchLabels` entry and every `matchExpressions` requirement (`In`, `NotIn`,
/// `Exists`, `DoesNotExist`). A null selector matches nothing, an empty one everything.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if selector.is_null() {
        return false;
    }
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match (e["operator"].as_str(), label(key)) {
                (Some("In"), Some(v)) => values.contains(&v),
                (Some("NotIn"), v) => v.is_none_or(|v| !values.contains(&v)),
                (Some("Exists"), v) => v.is_some(),
                (Some("DoesNotExist"), v) => v.is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// The security groups the policies of a pod's namespace give it (`filterPodSecurityGroups`):
/// a policy without a selector or without groups is ignored; one with both selectors needs
/// both to match; the groups of every matching policy, without repeats, in order.
pub fn matching_groups(policies: &[Value], pod: &Value, service_account: &Value) -> Vec<String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let pod_labels = &pod["metadata"]["labels"];
    let sa_labels = &service_account["metadata"]["labels"];
    let mut groups: Vec<String> = Vec::new();
    for p in policies {
        if p["metadata"]["namespace"].as_str().unwrap_or("default") != namespace {
            continue;
        }
        let spec = &p["spec"];
        let (pods, accounts) = (&spec["podSelector"], &spec["serviceAccountSelector"]);
        let ids: Vec<&str> = spec["securityGroups"]["groupIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if (pods.is_null() && accounts.is_null()) || ids.is_empty() {
            continue;
        }
        if (!pods.is_null() && !selector_matches(pods, pod_labels))
            || (!accounts.is_null() && !selector_matches(accounts, sa_labels))
        {
            continue;
        }
        for id in ids {
            if !groups.iter().any(|g| g == id) {
                groups.push(id.to_string());
            }
        }
    }
    groups
}

/// Whether a pod asks for a branch interface (the webhook's limit, or written by hand).
pub fn requests_pod_eni(pod: &Value) -> bool {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            !c["resources"]["limits"][POD_ENI].is_null()
                || !c["resources"]["requests"][POD_ENI].is_null()
        })
}

/// The strategic merge patch by which the webhook asks for one branch interface in the
/// pod's first container.
pub fn pod_eni_request(pod: &Value) -> Option<Value> {
    let first = pod["spec"]["containers"].as_array()?.first()?;
    let one = json!({ POD_ENI: "1" });
    Some(json!({"spec": {"containers": [{
        "name": first["name"],
        "resources": {"limits": one, "requests": one},
    }]}}))
}

/// How many pods bound to a node ask for a branch interface: what the scheduler counts
/// against the node's `vpc.amazonaws.com/pod-eni`.
pub fn branch_pods_on(pods: &[Value], node: &str) -> usize {
    pods.iter()
        .filter(|p| p["spec"]["nodeName"].as_str() == Some(node) && requests_pod_eni(p))
        .count()
}

/// A node's `vpc.amazonaws.com/pod-eni` allocatable (0 when it advertises none).
pub fn node_branches(node: &Value) -> usize {
    node["status"]["allocatable"][POD_ENI]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The branch a pod's annotation names: (ENI id, address).
pub fn annotated_branch(pod: &Value) -> Option<(String, String)> {
    let text = pod["metadata"]["annotations"][POD_ENI].as_str()?;
    let list: Value = serde_json::from_str(text).ok()?;
    let first = list.as_array()?.first()?;
    Some((
        first["eniId"].as_str()?.to_string(),
        first["privateIp"].as_str()?.to_string(),
    ))
}

/// The annotation's value: the JSON list of `ENIDetails` (`trunk.go`), in Go's field order
/// with every field present, as `encoding/json` writes them (written out here, so that the
/// order holds whatever map `serde_json` is built with).
pub fn pod_eni_annotation(eni: &str, mac: &str, ip: &str, vlan: u32, subnet_cidr: &str) -> String {
    let s = |v: &str| Value::from(v).to_string();
    format!(
        r#"[{{"eniId":{},"ifAddress":{},"privateIp":{},"ipv6Addr":"","vlanId":{vlan},"subnetCidr":{},"subnetV6Cidr":"","associationID":""}}]"#,
        s(eni),
        s(mac),
        s(ip),
        s(subnet_cidr)
    )
}

/// The lowest VLAN id none of `used` has, if the trunk has one left.
pub fn free_vlan(used: &[u32]) -> Option<u32> {
    (1..=MAX_VLAN).find(|v| !used.contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_selectors() {
        assert_eq!(branch_interfaces("m5.large"), Some(9));
        assert_eq!(branch_interfaces("c5.4xlarge"), Some(54));
        assert_eq!(branch_interfaces("t3.medium"), None);
        let labels = json!({"app": "web", "tier": "front"});
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            &labels
        ));
        assert!(selector_matches(&json!({}), &labels));
        assert!(!selector_matches(&Value::Null, &labels));
        let expr = |op: &str, values: Value| json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]});
        assert!(selector_matches(
            &expr("In", json!(["front", "x"])),
            &labels
        ));
        assert!(!selector_matches(&expr("NotIn", json!(["front"])), &labels));
        assert!(selector_matches(&expr("Exists", json!([])), &labels));
        assert!(!selector_matches(&expr("DoesNotExist", json!([])), &labels));
        assert_eq!(free_vlan(&[1, 2, 4]), Some(3));
        assert_eq!(free_vlan(&(1..=120).collect::<Vec<_>>()), None);
    }

    #[test]
    fn policies_of_the_namespace_both_selectors_and_no_repeats() {
        let policy = |ns: &str, spec: Value| json!({"metadata": {"namespace": ns}, "spec": spec});
        let groups = |ids: &[&str]| json!({"groupIds": ids});
        let policies = vec![
            policy(
                "default",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "securityGroups": groups(&["sg-1", "sg-2"])}),
            ),
            policy(
                "default",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                "serviceAccountSelector": {"matchLabels": {"team": "a"}}, "securityGroups": groups(&["sg-3"])}),
            ),
            policy(
                "default",
                json!({"serviceAccountSelector": {"matchLabels": {"team": "b"}}, "securityGroups": groups(&["sg-2", "sg-4"])}),
            ),
            policy(
                "other",
                json!({"podSelector": {}, "securityGroups": groups(&["sg-9"])}),
            ),
            // Ignored: no groups, or no selector.
            policy(
                "default",
                json!({"podSelector": {}, "securityGroups": groups(&[])}),
            ),
            policy("default", json!({"securityGroups": groups(&["sg-8"])})),
        ];
        let pod = json!({"metadata": {"namespace": "default", "labels": {"app": "web"}}});
        let sa = |team: &str| json!({"metadata": {"labels": {"team": team}}});
        assert_eq!(
            matching_groups(&policies, &pod, &sa("a")),
            ["sg-1", "sg-2", "sg-3"]
        );
        assert_eq!(
            matching_groups(&policies, &pod, &sa("b")),
            ["sg-1", "sg-2", "sg-4"]
        );
        let other = json!({"metadata": {"namespace": "default", "labels": {"app": "db"}}});
        assert!(matching_groups(&policies, &other, &json!({})).is_empty());
    }

    #[test]
    fn the_request_and_the_annotation() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "d"}]}});
        assert!(!requests_pod_eni(&pod));
        let patch = pod_eni_request(&pod).unwrap();
        assert_eq!(patch["spec"]["containers"][0]["name"], "c");
        let asked = json!({"spec": {"containers": [patch["spec"]["containers"][0]]}});
        assert!(requests_pod_eni(&asked));
        let text = pod_eni_annotation("eni-1", "02:00:00:00:00:01", "10.0.64.9", 1, "10.0.64.0/24");
        assert_eq!(
            text,
            r#"[{"eniId":"eni-1","ifAddress":"02:00:00:00:00:01","privateIp":"10.0.64.9","ipv6Addr":"","vlanId":1,"subnetCidr":"10.0.64.0/24","subnetV6Cidr":"","associationID":""}]"#
        );
        let annotated = json!({"metadata": {"annotations": {POD_ENI: text}}});
        assert_eq!(
            annotated_branch(&annotated),
            Some(("eni-1".to_string(), "10.0.64.9".to_string()))
        );
    }
}
