//! EKS Auto Mode, the rules across kinds. An Auto Mode cluster (`auto_mode = true`) runs
//! its nodes itself and reads no ENIConfig: custom networking, the `aws-node` settings and
//! ENIConfigs do not apply to it ("Auto Mode doesn't support … custom networking", EKS user
//! guide `automode/auto-networking.adoc`); pods go to other subnets through a NodeClass's
//! pod subnets instead (`auto_mode_node_class`). Its cluster role needs the Auto Mode managed
//! policies and a trust that allows `sts:TagSession` (`automode/auto-cluster-iam-role.adoc`).
//! A NodeClass's pod subnets must cover its node subnets' zones: a node in a zone without a
//! pod subnet gets no pod address ("failed to assign an IP address", awsdocs
//! amazon-eks-user-guide #1088).

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::value;
use crate::resources::cluster::AUTO_MODE_CLUSTER_POLICIES;
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use serde_json::Value;
use std::collections::BTreeSet;

/// The EKS service principal, which Auto Mode's cluster role trusts with `sts:TagSession` too.
const EKS_PRINCIPAL: &str = "eks.amazonaws.com";

/// The node role's IAM policies, each with the managed policy that also covers it
/// (`automode/auto-create-node-role.adoc`: AmazonEKSWorkerNodeMinimalPolicy and
/// AmazonEC2ContainerRegistryPullOnly).
const NODE_POLICIES: &[(&str, &str)] = &[
    (
        "AmazonEKSWorkerNodeMinimalPolicy",
        "AmazonEKSWorkerNodePolicy",
    ),
    (
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonEC2ContainerRegistryReadOnly",
    ),
];

/// The resolved names of the spec's Auto Mode clusters, with their addresses.
fn auto_mode_clusters(spec: &Spec) -> Vec<(&ResourceAddr, String)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::Cluster(c) if c.auto_mode => {
                Some((&r.addr, spec.resolved_name(&c.name)))
            }
            _ => None,
        })
        .collect()
}

/// The spec's role a reference names (`${iam_role.X.arn}` or `${iam_role.X.name}`).
fn role_of(spec: &Spec, field: &str) -> Option<ResourceAddr> {
    let r = value::whole_reference(field)?;
    (r.addr.kind == Kind::IamRole && spec.get(&r.addr).is_some()).then_some(r.addr)
}

fn has_policy(spec: &Spec, role: &ResourceAddr, name: &str) -> bool {
    spec.get(role).is_some_and(|r| {
        resources::str_list(&r.attrs, "managed_policy_arns")
            .iter()
            .any(|arn| arn.ends_with(&format!(":policy/{name}")))
    })
}

/// The trust policy of a spec's role, as an object.
fn trust_of(spec: &Spec, role: &ResourceAddr) -> Option<Value> {
    match spec.get(role)?.attrs.get("assume_role_policy")? {
        Value::String(text) => serde_json::from_str(text).ok(),
        v => Some(v.clone()),
    }
}

fn check_cluster_roles(spec: &Spec, d: &mut Diagnostics) {
    for r in spec.resources.values() {
        let ResourceConfig::Cluster(c) = &r.config else {
            continue;
        };
        if !c.auto_mode {
            continue;
        }
        let Some(role) = role_of(spec, &c.role_arn) else {
            d.push(spec.warning_at(
                format!("{}.role_arn", r.addr),
                format!("not checked: whether the role `{}` (not in the spec) has the Auto Mode policies {} and trusts eks.amazonaws.com with sts:TagSession", c.role_arn, AUTO_MODE_CLUSTER_POLICIES.join(", ")),
            ));
            continue;
        };
        let missing: Vec<&str> = AUTO_MODE_CLUSTER_POLICIES
            .iter()
            .copied()
            .filter(|p| !has_policy(spec, &role, p))
            .collect();
        if !missing.is_empty() {
            d.push(spec.error_at(
                format!("{role}.managed_policies"),
                format!("cluster `{}` has `auto_mode = true`, but its role `{role}` lacks {}: with Auto Mode EKS launches the nodes, and manages their storage, load balancers and network interfaces, under the cluster role (EKS user guide, auto-cluster-iam-role); add them to `managed_policies`", r.addr, missing.join(", ")),
            ));
        }
        let tags = trust_of(spec, &role).is_some_and(|t| {
            resources::iam_role::trusts_service(
                &t,
                EKS_PRINCIPAL,
                &["sts:AssumeRole", "sts:TagSession"],
            )
        });
        if !tags {
            d.push(spec.error_at(
                role.to_string(),
                format!("cluster `{}` has `auto_mode = true`: its role `{role}` must trust eks.amazonaws.com with both sts:AssumeRole and sts:TagSession (EKS user guide, auto-cluster-iam-role); `assume_role_service` gives sts:AssumeRole only, so write the trust as `assume_role_policy = '{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Effect\": \"Allow\", \"Principal\": {{\"Service\": \"eks.amazonaws.com\"}}, \"Action\": [\"sts:AssumeRole\", \"sts:TagSession\"]}}]}}'`", r.addr),
            ));
        }
    }
}

/// ENIConfigs, `aws_node` and the add-on's custom networking on an Auto Mode cluster.
fn check_custom_networking_refused(spec: &Spec, d: &mut Diagnostics) {
    let clusters = auto_mode_clusters(spec);
    for r in spec.resources.values() {
        let (what, key) = match &r.config {
            ResourceConfig::EniConfig(_) => ("an ENIConfig", String::new()),
            ResourceConfig::AwsNode(_) => ("the `aws-node` settings", String::new()),
            ResourceConfig::Addon(a) if resources::addon::turns_on_custom_networking(a) => (
                "the `vpc-cni` add-on's custom networking",
                ".custom_network".to_string(),
            ),
            _ => continue,
        };
        let Some(cluster) = resources::str_attr(&r.attrs, "cluster_name")
            .map(|n| spec.resolved_name(n))
            .filter(|n| clusters.iter().any(|(_, c)| c == n))
        else {
            continue;
        };
        d.push(spec.error_at(
            format!("{}{key}", r.addr),
            format!("cluster `{cluster}` has `auto_mode = true`, and Auto Mode reads no ENIConfig and takes no VPC CNI settings (EKS user guide, auto-networking: custom networking is not supported), so {what} would do nothing; pods go to other subnets through an `[auto_mode_node_class.NAME]` with `pod_subnet_ids` and `pod_security_group_ids`"),
        ));
    }
}

/// The zone of a subnet the spec declares with a known zone.
fn zone(spec: &Spec, id: &str) -> Option<String> {
    let r = value::whole_reference(id)?;
    (r.addr.kind == Kind::Subnet)
        .then(|| spec.static_value(&format!("${{{}.availability_zone}}", r.addr)))
        .flatten()
        .filter(|az| !value::is_ref(az))
}

fn check_node_classes(spec: &Spec, d: &mut Diagnostics) {
    let auto = auto_mode_clusters(spec);
    for r in spec.resources.values() {
        let ResourceConfig::AutoModeNodeClass(n) = &r.config else {
            continue;
        };
        let addr = &r.addr;
        let cluster = spec.resolved_name(&n.cluster_name);
        let declared = spec.resources.values().find_map(|c| match &c.config {
            ResourceConfig::Cluster(cc) if spec.resolved_name(&cc.name) == cluster => Some(cc),
            _ => None,
        });
        match declared {
            Some(c) if c.existing => d.push(spec.warning_at(
                format!("{addr}.cluster_name"),
                format!("not checked: whether the existing cluster `{cluster}` runs EKS Auto Mode; a NodeClass does nothing on a cluster without it"),
            )),
            Some(_) if !auto.iter().any(|(_, c)| *c == cluster) => d.push(spec.error_at(
                format!("{addr}.cluster_name"),
                format!("cluster `{cluster}` does not have `auto_mode = true`: only EKS Auto Mode reads a NodeClass (without it the API server has no NodeClass resource); set `auto_mode = true` on the cluster, or give pods their subnets with ENIConfigs"),
            )),
            _ => {}
        }
        if let Some(role) = role_of(spec, &n.role) {
            for (policy, broader) in NODE_POLICIES {
                if !has_policy(spec, &role, policy) && !has_policy(spec, &role, broader) {
                    d.push(spec.error_at(
                        format!("{role}.managed_policies"),
                        format!("`{role}` is the node role of `{addr}` and lacks {policy} (or {broader}): Auto Mode nodes need it (EKS user guide, auto-create-node-role)"),
                    ));
                }
            }
        }
        if n.pod_subnet_ids.is_empty() {
            continue;
        }
        let node_zones: Option<BTreeSet<String>> =
            n.subnet_ids.iter().map(|s| zone(spec, s)).collect();
        let pod_zones: Option<BTreeSet<String>> =
            n.pod_subnet_ids.iter().map(|s| zone(spec, s)).collect();
        let (Some(node_zones), Some(pod_zones)) = (node_zones, pod_zones) else {
            continue;
        };
        let uncovered: Vec<&String> = node_zones.difference(&pod_zones).collect();
        if !uncovered.is_empty() {
            d.push(spec.error_at(
                format!("{addr}.pod_subnet_ids"),
                format!("no pod subnet in {}: Auto Mode launches nodes in every zone of `subnet_ids`, and a node in a zone without a pod subnet gives its pods no address (\"failed to assign an IP address\", awsdocs amazon-eks-user-guide #1088); add a pod subnet there, or drop that zone's node subnet", uncovered.iter().map(|z| format!("`{z}`")).collect::<Vec<_>>().join(", ")),
            ));
        }
    }
}

/// The spec's side (`validate`, no call).
pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    check_cluster_roles(spec, d);
    check_custom_networking_refused(spec, d);
    check_node_classes(spec, d);
}
