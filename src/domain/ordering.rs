//! Orderings AWS and Kubernetes need that a spec need not state (the graph's domain edges),
//! in one place: a subnet after the CIDR block that contains it, what uses a role after the
//! role named in its literal ARN, what runs in a cluster after the cluster named literally,
//! nodes (managed and self-managed groups, Karpenter node classes and pools: one list,
//! `resources::NODE_SOURCES`) after the pod subnets and
//! after their cluster's CNI settings and ENIConfigs (the
//! point of custom networking), SecurityGroupPolicies and the route tables of their pod
//! subnets, ENIConfigs after the `vpc-cni` add-on that installs their CRD, and add-ons whose
//! pods are Deployments after their cluster's nodes; an add-on with Pod Identity associations
//! after its cluster's Pod Identity Agent and the roles it names, and a node role without the
//! CNI policy after the CNI add-on that has a role of its own.
//!
//! Works on each resource's kind and desired attributes, so it names no stage; the graph
//! turns the pairs into labelled edges.

use crate::base::addr::{Kind, ResourceAddr};
use crate::domain::{cni, identity};
use crate::resources::NODE_SOURCES;
use ipnet::Ipv4Net;
use serde_json::Value;
use std::collections::HashMap;

/// Add-ons whose pods are Deployments: without a node to run on they stay `DEGRADED`, so
/// they are created after their cluster's nodegroups (a wait for `ACTIVE` before that times
/// out, a common trap with other tools).
pub const ADDONS_NEEDING_NODES: &[&str] = &[
    "coredns",
    "aws-ebs-csi-driver",
    "aws-efs-csi-driver",
    "aws-mountpoint-s3-csi-driver",
    "snapshot-controller",
    "metrics-server",
];

fn attr<'a>(attrs: &'a Value, key: &str) -> &'a str {
    attrs.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The role name in a role ARN (`arn:aws:iam::1:role/path/NAME` → `NAME`).
fn role_of(arn: &str) -> Option<String> {
    arn.rsplit_once(":role/")
        .map(|(_, n)| n.rsplit('/').next().unwrap_or(n).to_string())
}

/// A node source's role as an ARN or a reference: a managed or self-managed group names
/// its role by ARN, a Karpenter node class by name.
fn node_role_arn(v: &Value) -> String {
    match attr(v, "node_role_arn") {
        "" => match attr(v, "role") {
            "" => String::new(),
            r if r.contains("${") => r.to_string(),
            name => format!("arn:aws:iam::0:role/{name}"),
        },
        arn => arn.to_string(),
    }
}

/// The node roles of cluster `ours` (named by its nodegroups' `node_role_arn`) that do not
/// attach the CNI policy, leaving out a role the CNI add-on (`cni`) itself uses or the
/// cluster's role: ordering those after the add-on would close a cycle.
fn node_roles_without_cni_policy<'a>(
    resources: &[(&'a ResourceAddr, &'a Value)],
    ours: &str,
    cni: &Value,
    resolved_name: &dyn Fn(&str) -> String,
) -> Vec<&'a ResourceAddr> {
    let named = |arn: &str| identity::role_named(resources.iter().copied(), arn);
    let mut own: Vec<&ResourceAddr> = cni
        .get(crate::resources::addon::ASSOCIATIONS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| named(attr(a, "role_arn")))
        .collect();
    own.extend(named(attr(cni, "service_account_role_arn")));
    own.extend(
        resources
            .iter()
            .filter(|(a, v)| a.kind == Kind::Cluster && resolved_name(attr(v, "name")) == ours)
            .filter_map(|(_, v)| named(attr(v, "role_arn"))),
    );
    let mut out: Vec<&ResourceAddr> = Vec::new();
    for (_, ng) in resources.iter().filter(|(a, v)| {
        NODE_SOURCES.contains(&a.kind) && resolved_name(attr(v, "cluster_name")) == ours
    }) {
        let Some(r) = named(&node_role_arn(ng)) else {
            continue;
        };
        let attrs = resources.iter().find(|(a, _)| *a == r).map(|(_, v)| *v);
        let lacks = attrs.is_some_and(|a| !identity::has_cni_policy(a));
        if lacks && !own.contains(&r) && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// The orderings among `resources` (address, desired attributes): (before, after, why).
/// `resolved_name` makes `${cluster.X.name}` and the literal name one cluster.
pub fn edges(
    resources: &[(&ResourceAddr, &Value)],
    resolved_name: &dyn Fn(&str) -> String,
) -> Vec<(ResourceAddr, ResourceAddr, &'static str)> {
    let of_kind = |k: Kind| resources.iter().filter(move |(a, _)| a.kind == k);
    let blocks: Vec<(&ResourceAddr, &str, Option<Ipv4Net>)> = of_kind(Kind::CidrBlock)
        .map(|(a, v)| (*a, attr(v, "vpc_id"), attr(v, "cidr_block").parse().ok()))
        .collect();
    let role_names: HashMap<&str, &ResourceAddr> = of_kind(Kind::IamRole)
        .map(|(a, v)| (attr(v, "name"), *a))
        .collect();
    let cluster_names: HashMap<&str, &ResourceAddr> = of_kind(Kind::Cluster)
        .map(|(a, v)| (attr(v, "name"), *a))
        .collect();
    let role = |arn: &str| role_of(arn).and_then(|n| role_names.get(n.as_str()).copied());
    // Everything of `kind` on the cluster `ours` (names resolved).
    let on_cluster = |kind: Kind, ours: &str| -> Vec<&ResourceAddr> {
        of_kind(kind)
            .filter(|(_, v)| resolved_name(attr(v, "cluster_name")) == ours)
            .map(|(a, _)| *a)
            .collect()
    };
    let cni_addons = |ours: &str| -> Vec<&ResourceAddr> {
        of_kind(Kind::Addon)
            .filter(|(_, v)| cni::is_addon(v) && resolved_name(attr(v, "cluster_name")) == ours)
            .map(|(a, _)| *a)
            .collect()
    };
    // What every source of nodes (a nodegroup, a Karpenter node class or pool) comes after:
    // one list, so a new source cannot miss an edge.
    let before_nodes =
        |addr: &ResourceAddr,
         v: &Value,
         push: &mut dyn FnMut(&ResourceAddr, &ResourceAddr, &'static str)| {
            // Nodes pick up pod subnets only if those exist when the nodes register;
            // on destroy, pods' ENIs go with the nodes before their subnets can go.
            for (pod, _) in of_kind(Kind::Subnet) {
                push(pod, addr, "pod subnets before nodes");
            }
            // The point of custom networking: nodes must register after the CNI
            // settings and every ENIConfig of their cluster exist, or their pods get
            // IPs from the primary subnet. Spec references need not say so. The
            // settings, ENIConfigs and the add-on are pushed in the spec's order.
            let ours = resolved_name(attr(v, "cluster_name"));
            let settings = on_cluster(Kind::AwsNode, &ours);
            let enis = on_cluster(Kind::EniConfig, &ours);
            // Pods must reach what they need from the first pod on: the route tables
            // of the pod subnets these nodes' ENIConfigs use are associated first (a
            // new subnet otherwise routes as the VPC's main table does).
            let pod_subnets: Vec<&str> = of_kind(Kind::EniConfig)
                .filter(|(a, _)| enis.contains(a))
                .map(|(_, e)| attr(e, "subnet_id"))
                .collect();
            for (table, t) in of_kind(Kind::RouteTable) {
                let associates = t
                    .get("subnet_ids")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|s| pod_subnets.contains(&s));
                if associates {
                    push(table, addr, "pod subnets' routes before nodes");
                }
            }
            let addons = cni_addons(&ours);
            let policies = on_cluster(Kind::SecurityGroupPolicy, &ours);
            // A node whose role has no access entry yet is refused by the API server and
            // never joins; with the entries first, the nodes join at their first try.
            let entries = on_cluster(Kind::AccessEntry, &ours);
            for (other, _) in resources {
                let why = if entries.contains(other) {
                    "access entries before nodes"
                } else if settings.contains(other) {
                    "CNI settings before nodes"
                } else if enis.contains(other) {
                    "ENIConfigs before nodes"
                } else if policies.contains(other) {
                    // The VPC resource controller's webhook reads the policies when a
                    // pod is created: with them in place before any node, no selected
                    // pod can start on a node with the node's groups instead.
                    "SecurityGroupPolicies before nodes"
                } else if addons.contains(other) {
                    // Nodes need the CNI to become Ready at all, and with it the
                    // custom-networking values.
                    "CNI add-on before nodes"
                } else {
                    continue;
                };
                push(other, addr, why);
            }
        };
    let mut edges = Vec::new();
    let mut push = |before: &ResourceAddr, after: &ResourceAddr, why: &'static str| {
        edges.push((before.clone(), after.clone(), why));
    };
    for (addr, v) in resources {
        let cluster = cluster_names.get(attr(v, "cluster_name")).copied();
        match addr.kind {
            Kind::Subnet => {
                let Ok(net) = attr(v, "cidr_block").parse::<Ipv4Net>() else {
                    continue;
                };
                for (b, vpc, block) in &blocks {
                    if *vpc == attr(v, "vpc_id") && block.is_some_and(|bl| bl.contains(&net)) {
                        push(b, addr, "subnet inside secondary CIDR block");
                    }
                }
            }
            Kind::Cluster => {
                if let Some(r) = role(attr(v, "role_arn")) {
                    push(r, addr, "cluster role");
                }
            }
            k if NODE_SOURCES.contains(&k) => {
                if let Some(r) = role(&node_role_arn(v)) {
                    push(r, addr, "node role");
                }
                if let Some(c) = cluster {
                    push(c, addr, "nodegroup's cluster");
                }
                // Karpenter launches nodes as soon as a pool and its class exist and a pod
                // is unschedulable: the pool waits for its class too.
                if k == Kind::KarpenterNodePool {
                    let ours = resolved_name(attr(v, "cluster_name"));
                    for (class, _) in of_kind(Kind::KarpenterNodeClass).filter(|(_, c)| {
                        resolved_name(attr(c, "cluster_name")) == ours
                            && attr(c, "name") == attr(v, "node_class")
                    }) {
                        push(class, addr, "the pool's node class");
                    }
                }
                before_nodes(addr, v, &mut push);
            }
            Kind::AccessEntry => {
                if let Some(c) = cluster {
                    push(c, addr, "the entry's cluster");
                }
                if let Some(r) = role(attr(v, "principal_arn")) {
                    push(r, addr, "the entry's role");
                }
            }
            Kind::AwsNode | Kind::SecurityGroupPolicy => {
                if let Some(c) = cluster {
                    push(c, addr, "runs in the cluster");
                }
            }
            Kind::EniConfig => {
                if let Some(c) = cluster {
                    push(c, addr, "runs in the cluster");
                }
                // The ENIConfig CRD comes with the VPC CNI: on a cluster made without
                // self-managed add-ons it exists only once the add-on does.
                for a in cni_addons(&resolved_name(attr(v, "cluster_name"))) {
                    push(a, addr, "the CNI add-on installs the ENIConfig CRD");
                }
            }
            Kind::Addon => {
                if let Some(c) = cluster {
                    push(c, addr, "runs in the cluster");
                }
                if let Some(r) = role(attr(v, "service_account_role_arn")) {
                    push(r, addr, "service account role");
                }
                let ours = resolved_name(attr(v, "cluster_name"));
                let associations: Vec<&str> = v
                    .get(crate::resources::addon::ASSOCIATIONS)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|a| attr(a, "role_arn"))
                    .collect();
                for r in associations.iter().filter_map(|arn| role(arn)) {
                    push(r, addr, "pod identity role");
                }
                // The agent serves the associations' credentials on the nodes: the add-on's
                // pods get them only once it runs (EKS user guide, add-ons-iam).
                if !associations.is_empty() && attr(v, "name") != identity::POD_IDENTITY_AGENT {
                    for (agent, _) in of_kind(Kind::Addon).filter(|(_, a)| {
                        attr(a, "name") == identity::POD_IDENTITY_AGENT
                            && resolved_name(attr(a, "cluster_name")) == ours
                    }) {
                        push(
                            agent,
                            addr,
                            "Pod Identity Agent before the add-on's associations",
                        );
                    }
                }
                // Moving the CNI policy off the node role: the node role loses it only after
                // the CNI runs with its own role (EKS user guide, `networking/cni-iam-role.adoc`:
                // the role, the pods re-created with it, then the policy detached).
                if identity::cni_own_role(v).is_some() {
                    for r in node_roles_without_cni_policy(resources, &ours, v, resolved_name) {
                        push(addr, r, "the CNI runs with its own role before the node role loses AmazonEKS_CNI_Policy");
                    }
                }
                if ADDONS_NEEDING_NODES.contains(&attr(v, "name")) {
                    let ours = resolved_name(attr(v, "cluster_name"));
                    for n in NODE_SOURCES.iter().flat_map(|k| on_cluster(*k, &ours)) {
                        push(n, addr, "its pods need nodes");
                    }
                }
            }
            _ => {}
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addr(s: &str) -> ResourceAddr {
        s.parse().expect("address")
    }

    /// The production form: the CNI add-on with its own role, the node role without the CNI
    /// policy. The policy comes off the node role only after the add-on, and the add-on waits
    /// for the agent and its role; with the policy still on the node role (or no own role)
    /// nothing holds the node role back, and its update could come first.
    fn resources(node_policies: &[&str], association: bool) -> Vec<(ResourceAddr, Value)> {
        let mut cni = json!({"cluster_name": "${cluster.main.name}", "name": "vpc-cni"});
        if association {
            cni["pod_identity_associations"] =
                json!([{"service_account": "aws-node", "role_arn": "${iam_role.cni.arn}"}]);
        }
        vec![
            (
                addr("cluster.main"),
                json!({"name": "demo", "role_arn": "${iam_role.cluster.arn}"}),
            ),
            (
                addr("iam_role.cluster"),
                json!({"name": "c", "managed_policy_arns": ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]}),
            ),
            (
                addr("iam_role.cni"),
                json!({"name": "cni", "managed_policy_arns": ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]}),
            ),
            (
                addr("iam_role.node"),
                json!({"name": "node", "managed_policy_arns": node_policies}),
            ),
            (
                addr("addon.agent"),
                json!({"cluster_name": "${cluster.main.name}", "name": "eks-pod-identity-agent"}),
            ),
            (addr("addon.vpc_cni"), cni),
            (
                addr("nodegroup.main"),
                json!({"cluster_name": "${cluster.main.name}", "name": "ng", "node_role_arn": "${iam_role.node.arn}"}),
            ),
        ]
    }

    fn edges_of(r: &[(ResourceAddr, Value)]) -> Vec<(String, String, &'static str)> {
        let pairs: Vec<(&ResourceAddr, &Value)> = r.iter().map(|(a, v)| (a, v)).collect();
        let resolve = |n: &str| {
            if n == "${cluster.main.name}" {
                "demo".to_string()
            } else {
                n.to_string()
            }
        };
        edges(&pairs, &resolve)
            .into_iter()
            .map(|(a, b, why)| (a.to_string(), b.to_string(), why))
            .collect()
    }

    const WORKER: &str = "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy";
    const CNI: &str = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy";

    #[test]
    fn the_cni_policy_leaves_the_node_role_only_after_the_cni_has_its_own_role() {
        let moved = edges_of(&resources(&[WORKER], true));
        let has = |e: &[(String, String, &str)], a: &str, b: &str| {
            e.iter().any(|(x, y, _)| x == a && y == b)
        };
        assert!(has(&moved, "addon.vpc_cni", "iam_role.node"), "{moved:?}");
        assert!(has(&moved, "addon.agent", "addon.vpc_cni"), "{moved:?}");
        assert!(has(&moved, "addon.vpc_cni", "nodegroup.main"), "{moved:?}");
        // Neither the CNI's own role nor the cluster role is held back (that would be a cycle).
        assert!(!has(&moved, "addon.vpc_cni", "iam_role.cni"), "{moved:?}");
        assert!(
            !has(&moved, "addon.vpc_cni", "iam_role.cluster"),
            "{moved:?}"
        );
        // The policy still on the node role, or no role of the CNI's own: no such edge, and
        // the node role's update may run before the add-on's.
        let kept = edges_of(&resources(&[WORKER, CNI], true));
        assert!(!has(&kept, "addon.vpc_cni", "iam_role.node"), "{kept:?}");
        let no_own_role = edges_of(&resources(&[WORKER], false));
        assert!(
            !has(&no_own_role, "addon.vpc_cni", "iam_role.node"),
            "{no_own_role:?}"
        );
        assert!(
            !has(&no_own_role, "addon.agent", "addon.vpc_cni"),
            "{no_own_role:?}"
        );
    }

    #[test]
    fn a_self_managed_group_is_ordered_as_a_nodegroup_is() {
        let mut r = resources(&[WORKER, CNI], false);
        // The managed nodegroup swapped for a self-managed group, with what nodes wait for.
        r.retain(|(a, _)| a.kind != Kind::Nodegroup);
        r.extend([
            (
                addr("self_managed_node_group.main"),
                // The cluster named literally: the reference would order it anyway.
                json!({"cluster_name": "demo", "name": "ng", "node_role_arn": "arn:aws:iam::1:role/node"}),
            ),
            (
                addr("eni_config.a"),
                json!({"cluster_name": "${cluster.main.name}", "subnet_id": "${subnet.pod_a.id}"}),
            ),
            (
                addr("aws_node.main"),
                json!({"cluster_name": "demo"}),
            ),
            (addr("subnet.pod_a"), json!({"cidr_block": "100.64.0.0/19"})),
            (
                addr("addon.coredns"),
                json!({"cluster_name": "${cluster.main.name}", "name": "coredns"}),
            ),
        ]);
        let e = edges_of(&r);
        let why = |a: &str, b: &str| {
            e.iter()
                .find(|(x, y, _)| x == a && y == b)
                .map(|(_, _, w)| *w)
        };
        let group = "self_managed_node_group.main";
        assert_eq!(why("eni_config.a", group), Some("ENIConfigs before nodes"));
        assert_eq!(
            why("aws_node.main", group),
            Some("CNI settings before nodes")
        );
        assert_eq!(why("addon.vpc_cni", group), Some("CNI add-on before nodes"));
        assert_eq!(why("subnet.pod_a", group), Some("pod subnets before nodes"));
        assert_eq!(why("iam_role.node", group), Some("node role"));
        assert_eq!(why("cluster.main", group), Some("nodegroup's cluster"));
        assert_eq!(why(group, "addon.coredns"), Some("its pods need nodes"));
    }

    /// A Karpenter pool and its class wait for everything a nodegroup waits for (the CNI
    /// settings, every ENIConfig, the pod subnets) and the pool for its class; a class of
    /// another cluster holds no pool back.
    #[test]
    fn karpenter_pools_and_classes_come_after_the_cni_settings_and_enis() {
        let on = |kind: &str, extra: Value| {
            let mut v = json!({"cluster_name": "${cluster.main.name}"});
            if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            (addr(kind), v)
        };
        let mut r = vec![
            (addr("cluster.main"), json!({"name": "demo"})),
            (addr("iam_role.node"), json!({"name": "node"})),
            (addr("subnet.pod_a"), json!({"cidr_block": "100.64.0.0/19"})),
            on("addon.vpc_cni", json!({"name": "vpc-cni"})),
            on(
                "eni_config.pod_a",
                json!({"name": "us-west-2a", "subnet_id": "${subnet.pod_a.id}"}),
            ),
            on(
                "karpenter_node_class.default",
                json!({"name": "default", "role": "node"}),
            ),
            on(
                "karpenter_node_pool.default",
                json!({"name": "default", "node_class": "default"}),
            ),
        ];
        let e = edges_of(&r);
        let why = |a: &str, b: &str| {
            e.iter()
                .find(|(x, y, _)| x == a && y == b)
                .map(|(_, _, w)| *w)
        };
        for node in [
            "karpenter_node_class.default",
            "karpenter_node_pool.default",
        ] {
            assert_eq!(
                why("eni_config.pod_a", node),
                Some("ENIConfigs before nodes"),
                "{e:?}"
            );
            assert_eq!(
                why("addon.vpc_cni", node),
                Some("CNI add-on before nodes"),
                "{e:?}"
            );
            assert_eq!(
                why("subnet.pod_a", node),
                Some("pod subnets before nodes"),
                "{e:?}"
            );
        }
        assert_eq!(
            why(
                "karpenter_node_class.default",
                "karpenter_node_pool.default"
            ),
            Some("the pool's node class")
        );
        assert_eq!(
            why("iam_role.node", "karpenter_node_class.default"),
            Some("node role")
        );
        r[5].1["cluster_name"] = json!("other");
        let e = edges_of(&r);
        assert!(
            !e.iter().any(|(x, y, _)| x == "karpenter_node_class.default"
                && y == "karpenter_node_pool.default"),
            "{e:?}"
        );
    }
}
