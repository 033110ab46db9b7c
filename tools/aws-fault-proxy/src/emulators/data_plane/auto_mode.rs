//! Pod networking on an EKS Auto Mode node (Node label `eks.amazonaws.com/compute-type=auto`):
//! pure decisions, carried out in moto by the CNI stand-in's ENI and address code (`pods.rs`).
//!
//! - **No aws-node.** Auto Mode's networking is part of the node: "Configuration options for
//!   the previous Amazon VPC CNI will not apply to EKS Auto Mode", and custom networking with
//!   ENIConfig, warm IP/prefix/ENI settings and toggling prefix delegation are unsupported
//!   (EKS user guide, `automode/auto-networking.adoc`). The node reads neither the `aws-node`
//!   DaemonSet's env nor ENIConfigs, and the DaemonSet's own node affinity
//!   (`eks.amazonaws.com/compute-type NotIn [fargate, hybrid, auto]`) keeps its pods off the
//!   node (`pods.rs`, the DaemonSet controller).
//! - **Where pods go** is the node's NodeClass (label `eks.amazonaws.com/nodeclass`): with
//!   `podSubnetSelectorTerms`, the selected subnet in the node's zone, on secondary interfaces
//!   with the `podSecurityGroupSelectorTerms` groups, the primary interface carrying no pods;
//!   without them, the node's own subnet and groups, the primary interface included
//!   (`automode/create-node-class.adoc`, "Subnet selection for pods"). A NodeClass selecting no
//!   pod subnet in the node's zone leaves its pods without an address: the kubelet reports
//!   `failed to assign an IP address to container` (awsdocs/amazon-eks-user-guide #1088).
//!   Terms by tag are not read (eksnet writes terms by id).
//! - **Prefixes.** Auto Mode always gives pods /28 IPv4 prefixes and keeps a warm pool that
//!   grows with the pods scheduled (`auto-networking.adoc`, "Prefix Delegation"); its size is
//!   not documented: here one free /28. Max pods is 110 at most
//!   (`choosing-instance-type.adoc`), and no more than the prefixes fit on the interfaces that
//!   carry pods ([`max_pods`]).
//!
//! moto 5.2.5 has no `Ipv4Prefix` on network interfaces: a /28 is assigned as its 16
//! addresses, as the stand-in does for the VPC CNI's prefix delegation.

use serde_json::Value;

use super::cni::Settings;
use super::ec2::{InstanceType, Subnet};

/// Auto Mode's node labels (`automode/create-node-pool.adoc`): which nodes are Auto Mode's,
/// and their NodeClass. The provisioner sets them; the node's networking reads them.
pub const COMPUTE_TYPE: &str = "eks.amazonaws.com/compute-type";
pub const AUTO_NODE_CLASS: &str = "eks.amazonaws.com/nodeclass";

/// Auto Mode's `eks.amazonaws.com/compute-type`.
const AUTO: &str = "auto";

/// Max pods on an Auto Mode node whatever its interfaces (`choosing-instance-type.adoc`).
const MAX_PODS_CAP: u32 = 110;
/// Addresses in a /28 prefix.
const PREFIX: u32 = 16;

/// The NodeClass an Auto Mode node uses; `None` for any other node.
pub fn node_class(node: &Value) -> Option<String> {
    let labels = node.pointer("/metadata/labels")?;
    if labels.get(COMPUTE_TYPE).and_then(Value::as_str) != Some(AUTO) {
        return None;
    }
    Some(
        labels
            .get(AUTO_NODE_CLASS)
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string(),
    )
}

/// The pod side of a NodeClass: its pod subnets and pod security groups, by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodTerms {
    pub subnets: Vec<String>,
    pub groups: Vec<String>,
}

impl PodTerms {
    pub fn of(class: &Value) -> PodTerms {
        let ids = |key: &str| -> Vec<String> {
            class
                .pointer(&format!("/spec/{key}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        PodTerms {
            subnets: ids("podSubnetSelectorTerms"),
            groups: ids("podSecurityGroupSelectorTerms"),
        }
    }

    /// Whether pods go to subnets of their own (the primary interface then carries none).
    pub fn separate(&self) -> bool {
        !self.subnets.is_empty()
    }
}

/// Where an Auto Mode node's pods get their addresses.
#[derive(Clone, Debug, PartialEq)]
pub enum PodPlacement {
    /// Interfaces in this subnet with these groups.
    In { subnet: String, groups: Vec<String> },
    /// The NodeClass selects no pod subnet in the node's zone: no address for its pods.
    NoSubnetInZone,
}

/// Where the pods of a node in `zone` go: `pod_subnets` are the NodeClass's pod subnets as
/// EC2 describes them (those it does not know left out); `node` the node's own subnet and
/// the groups of its primary interface.
pub fn placement(
    terms: &PodTerms,
    pod_subnets: &[Subnet],
    zone: &str,
    node: (&str, &[String]),
) -> PodPlacement {
    if !terms.separate() {
        return PodPlacement::In {
            subnet: node.0.to_string(),
            groups: node.1.to_vec(),
        };
    }
    // More than one in the zone: the first named (which one EKS picks is not documented).
    match terms
        .subnets
        .iter()
        .find_map(|id| pod_subnets.iter().find(|s| &s.id == id && s.zone == zone))
    {
        Some(s) => PodPlacement::In {
            subnet: s.id.clone(),
            groups: terms.groups.clone(),
        },
        None => PodPlacement::NoSubnetInZone,
    }
}

/// What the node's pod networking does, in the CNI stand-in's terms: prefixes always, one
/// free /28 kept warm, the primary interface left out when pods have subnets of their own.
pub fn settings(terms: &PodTerms) -> Settings {
    Settings {
        custom_networking: terms.separate(),
        label_def: String::new(),
        annotation_def: String::new(),
        prefix_delegation: true,
        warm_eni_target: 0,
        warm_ip_target: Some(PREFIX),
        minimum_ip_target: None,
        pod_eni: false,
    }
}

/// Max pods of an Auto Mode node of type `t`: the /28 prefixes that fit on the interfaces
/// carrying pods (each interface's slots but its primary address; all interfaces but the
/// primary when pods have subnets of their own), at most 110.
pub fn max_pods(t: &InstanceType, terms: &PodTerms) -> u32 {
    let enis = t
        .default_card_enis
        .unwrap_or(t.max_enis)
        .saturating_sub(u32::from(terms.separate()));
    let slots = t.ipv4_per_eni.saturating_sub(1);
    (enis * slots * PREFIX).min(MAX_PODS_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subnet(id: &str, zone: &str) -> Subnet {
        Subnet {
            id: id.into(),
            cidr: "100.64.0.0/19".into(),
            zone: zone.into(),
        }
    }

    fn class() -> Value {
        json!({"spec": {
            "subnetSelectorTerms": [{"id": "subnet-node-a"}],
            "podSubnetSelectorTerms": [{"id": "subnet-pod-a"}, {"id": "subnet-pod-b"}],
            "podSecurityGroupSelectorTerms": [{"id": "sg-pods"}, {"tags": {"x": "y"}}]}})
    }

    #[test]
    fn only_auto_mode_nodes_have_a_node_class() {
        let auto = json!({"metadata": {"labels": {COMPUTE_TYPE: "auto",
            AUTO_NODE_CLASS: "custom-networking"}}});
        assert_eq!(node_class(&auto).as_deref(), Some("custom-networking"));
        let builtin = json!({"metadata": {"labels": {COMPUTE_TYPE: "auto"}}});
        assert_eq!(node_class(&builtin).as_deref(), Some("default"));
        let managed = json!({"metadata": {"labels": {AUTO_NODE_CLASS: "x",
            "eks.amazonaws.com/nodegroup": "ng"}}});
        assert_eq!(node_class(&managed), None);
        assert_eq!(node_class(&json!({})), None);
    }

    #[test]
    fn pods_go_to_the_pod_subnet_of_the_node_zone_with_the_pod_groups() {
        let terms = PodTerms::of(&class());
        assert_eq!(terms.groups, ["sg-pods"], "terms by tag are not read");
        let subnets = [
            subnet("subnet-pod-a", "us-west-2a"),
            subnet("subnet-pod-b", "us-west-2b"),
        ];
        let node_groups = ["sg-node".to_string()];
        let node = ("subnet-node-b", &node_groups[..]);
        assert_eq!(
            placement(&terms, &subnets, "us-west-2b", node),
            PodPlacement::In {
                subnet: "subnet-pod-b".into(),
                groups: vec!["sg-pods".into()]
            }
        );
        // The zone's pod subnet removed from the NodeClass (or from EC2): no address.
        assert_eq!(
            placement(&terms, &subnets[..1], "us-west-2b", node),
            PodPlacement::NoSubnetInZone
        );
        assert_eq!(
            placement(&terms, &subnets, "us-west-2c", node),
            PodPlacement::NoSubnetInZone
        );
    }

    #[test]
    fn without_pod_subnet_terms_pods_share_the_node_subnet_and_groups() {
        let terms = PodTerms::of(&json!({"spec": {"subnetSelectorTerms": [{"id": "s"}]}}));
        assert!(!terms.separate());
        let groups = ["sg-node".to_string()];
        assert_eq!(
            placement(&terms, &[], "us-west-2a", ("subnet-node-a", &groups[..])),
            PodPlacement::In {
                subnet: "subnet-node-a".into(),
                groups: vec!["sg-node".into()]
            }
        );
        let s = settings(&terms);
        assert!(
            s.prefix_delegation && !s.custom_networking,
            "primary ENI carries pods"
        );
        let s = settings(&PodTerms::of(&class()));
        assert!(
            s.prefix_delegation && s.custom_networking,
            "primary ENI carries none"
        );
        assert_eq!(s.warm_ip_target, Some(16), "one /28 warm");
    }

    #[test]
    fn max_pods_is_the_prefixes_on_pod_interfaces_capped_at_110() {
        let t = |enis: u32, ips: u32| InstanceType {
            name: "t".into(),
            max_enis: enis,
            ipv4_per_eni: ips,
            ..InstanceType::default()
        };
        let separate = PodTerms::of(&class());
        let shared = PodTerms::default();
        // m5.large: 3 interfaces of 10 addresses: far above the cap.
        assert_eq!(max_pods(&t(3, 10), &separate), 110);
        // t3.nano: 2 interfaces of 2 addresses: one slot each.
        assert_eq!(max_pods(&t(2, 2), &shared), 32);
        assert_eq!(
            max_pods(&t(2, 2), &separate),
            16,
            "the primary carries no pods"
        );
        assert_eq!(max_pods(&t(1, 2), &separate), 0);
    }
}
