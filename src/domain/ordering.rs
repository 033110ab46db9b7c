//! Orderings AWS and Kubernetes need that a spec need not state (the graph's domain edges),
//! in one place: a subnet after the CIDR block that contains it, what uses a role after the
//! role named in its literal ARN, what runs in a cluster after the cluster named literally,
//! nodes after the pod subnets and after their cluster's CNI settings and ENIConfigs (the
//! point of custom networking) and after the route tables of their pod subnets, ENIConfigs
//! after the `vpc-cni` add-on that installs their CRD, and add-ons whose pods are
//! Deployments after their cluster's nodes.
//!
//! Works on each resource's kind and desired attributes, so it names no stage; the graph
//! turns the pairs into labelled edges.

use crate::base::addr::{Kind, ResourceAddr};
use crate::domain::cni;
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
            Kind::Nodegroup => {
                // Nodes pick up pod subnets only if those exist when the nodes register;
                // on destroy, pods' ENIs go with the nodes before their subnets can go.
                for (pod, _) in of_kind(Kind::Subnet) {
                    push(pod, addr, "pod subnets before nodes");
                }
                if let Some(r) = role(attr(v, "node_role_arn")) {
                    push(r, addr, "node role");
                }
                if let Some(c) = cluster {
                    push(c, addr, "nodegroup's cluster");
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
                for (other, _) in resources {
                    let why = if settings.contains(other) {
                        "CNI settings before nodes"
                    } else if enis.contains(other) {
                        "ENIConfigs before nodes"
                    } else if addons.contains(other) {
                        // Nodes need the CNI to become Ready at all, and with it the
                        // custom-networking values.
                        "CNI add-on before nodes"
                    } else {
                        continue;
                    };
                    push(other, addr, why);
                }
            }
            Kind::AwsNode => {
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
                if ADDONS_NEEDING_NODES.contains(&attr(v, "name")) {
                    let ours = resolved_name(attr(v, "cluster_name"));
                    for n in on_cluster(Kind::Nodegroup, &ours) {
                        push(n, addr, "its pods need nodes");
                    }
                }
            }
            _ => {}
        }
    }
    edges
}
