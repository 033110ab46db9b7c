//! Security groups for pods, the rules across kinds: a `security_group_policy` does something
//! only where the cluster's VPC CNI has `ENABLE_POD_ENI=true` (`pod_security_groups` on the
//! `aws_node` or `vpc-cni` add-on); the cluster's role then needs the managed policy
//! `AmazonEKSVPCResourceController`, with which the VPC resource controller attaches the
//! trunk and branch interfaces (EKS user guide, `networking/security-groups-pods-deployment.adoc`);
//! the cluster's nodes must be of types that can have a trunk interface
//! (`base::instance_types::can_have_trunk`); and for the pods a policy selects, its groups
//! replace the ENIConfig's (`networking/security-groups-for-pods.adoc`), which the plan says.

use super::{cni, ChangeView};
use crate::base::action::Action;
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use serde_json::Value;

pub use crate::resources::eks::VPC_CNI_POD_ENI_ENV as POD_ENI_ENV;

/// The AWS managed policy the cluster role needs for security groups for pods.
pub const CONTROLLER_POLICY: &str = "AmazonEKSVPCResourceController";

/// Whether these settings' env turns security groups for pods on, as the CNI reads its
/// switches (Go's `strconv.ParseBool`).
fn pod_eni_on(settings: &Value) -> bool {
    cni::env(Some(settings))
        .and_then(|e| e.get(POD_ENI_ENV))
        .and_then(Value::as_str)
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True"))
}

/// The resources carrying a cluster's VPC CNI settings (an `aws_node`, the `vpc-cni` add-on).
fn settings_of<'s>(spec: &'s Spec, cluster: &str) -> Vec<(&'s ResourceAddr, &'s Value)> {
    spec.resources
        .values()
        .filter(|r| cni::carries_settings(r.addr.kind, &[Some(&r.attrs)]))
        .filter(|r| {
            resources::str_attr(&r.attrs, "cluster_name").map(|n| spec.resolved_name(n))
                == Some(cluster.to_string())
        })
        .map(|r| (&r.addr, &r.attrs))
        .collect()
}

/// The spec's cluster of that (resolved) name, with its config.
fn cluster_in_spec<'s>(
    spec: &'s Spec,
    cluster: &str,
) -> Option<(&'s ResourceAddr, &'s resources::cluster::ClusterConfig)> {
    spec.resources.values().find_map(|r| match &r.config {
        ResourceConfig::Cluster(c) if spec.resolved_name(&c.name) == cluster => Some((&r.addr, c)),
        _ => None,
    })
}

/// The spec's role behind a role ARN: `${iam_role.X.arn}`, or a literal ARN naming a role
/// the spec declares.
fn role_in_spec<'s>(spec: &'s Spec, role_arn: &str) -> Option<&'s ResourceAddr> {
    if let Some(r) = crate::base::value::whole_reference(role_arn) {
        return (r.addr.kind == Kind::IamRole && r.path == ["arn"])
            .then(|| spec.resources.get(&r.addr).map(|found| &found.addr))
            .flatten();
    }
    let name = role_arn.rsplit_once(":role/")?.1.rsplit('/').next()?;
    spec.resources.values().find_map(|r| match &r.config {
        ResourceConfig::IamRole(c) if spec.resolved_name(&c.name) == name => Some(&r.addr),
        _ => None,
    })
}

/// The policies of the spec, each with its cluster's resolved name.
fn policies(spec: &Spec) -> Vec<(&ResourceAddr, String)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::SecurityGroupPolicy(p) => {
                Some((&r.addr, spec.resolved_name(&p.cluster_name)))
            }
            _ => None,
        })
        .collect()
}

/// Every policy's cluster turns pod ENIs on (or cannot be judged: an existing cluster whose
/// CNI settings the spec does not hold).
fn check_policies_have_pod_eni(spec: &Spec, d: &mut Diagnostics) {
    for (addr, cluster) in policies(spec) {
        let settings = settings_of(spec, &cluster);
        if settings.iter().any(|(_, attrs)| pod_eni_on(attrs)) {
            continue;
        }
        if let Some((settings_addr, _)) = settings.first() {
            d.push(spec.error_at(
                addr.to_string(),
                format!("the policy would do nothing: cluster `{cluster}`'s VPC CNI settings (`{settings_addr}`) do not turn security groups for pods on, so no node gets a trunk interface and no pod a branch ENI with the policy's groups; set `{settings_addr}.pod_security_groups = true` (ENABLE_POD_ENI)"),
            ));
            continue;
        }
        match cluster_in_spec(spec, &cluster) {
            Some((cluster_addr, c)) if !c.existing => d.push(spec.error_at(
                addr.to_string(),
                format!("the policy would do nothing: the spec holds no VPC CNI settings for cluster `{cluster}` (`{cluster_addr}`), whose CNI then runs with ENABLE_POD_ENI=false; add `pod_security_groups = true` to an `[aws_node.NAME]` or to the `vpc-cni` add-on of the cluster"),
            )),
            _ => d.push(spec.warning_at(
                addr.to_string(),
                format!("not checked: whether cluster `{cluster}`'s VPC CNI has ENABLE_POD_ENI=true (its settings are not in the spec); without it `{addr}` does nothing"),
            )),
        }
    }
}

/// The managed policies (ARNs) of a spec's role.
fn managed_policies(spec: &Spec, role: &ResourceAddr) -> Vec<String> {
    spec.get(role)
        .map(|r| resources::str_list(&r.attrs, "managed_policy_arns"))
        .unwrap_or_default()
}

/// A cluster turning pod ENIs on has a role with `AmazonEKSVPCResourceController`, and nodes
/// that can have a trunk interface.
fn check_pod_eni_clusters(spec: &Spec, d: &mut Diagnostics) {
    for r in spec.resources.values() {
        if !cni::carries_settings(r.addr.kind, &[Some(&r.attrs)]) || !pod_eni_on(&r.attrs) {
            continue;
        }
        let settings = &r.addr;
        let Some(cluster) =
            resources::str_attr(&r.attrs, "cluster_name").map(|n| spec.resolved_name(n))
        else {
            continue;
        };
        check_cluster_role(spec, settings, &cluster, d);
        check_trunk_types(spec, settings, &cluster, d);
    }
}

fn check_cluster_role(spec: &Spec, settings: &ResourceAddr, cluster: &str, d: &mut Diagnostics) {
    let role = cluster_in_spec(spec, cluster)
        .filter(|(_, c)| !c.existing)
        .map(|(addr, c)| (addr, c.role_arn.as_str(), role_in_spec(spec, &c.role_arn)));
    match role {
        Some((_, _, Some(role))) => {
            let has = managed_policies(spec, role)
                .iter()
                .any(|arn| arn.ends_with(&format!(":policy/{CONTROLLER_POLICY}")));
            if !has {
                d.push(spec.error_at(
                    format!("{role}.managed_policies"),
                    format!("cluster `{cluster}` turns security groups for pods on (`{settings}.pod_security_groups`), but its role `{role}` lacks the managed policy {CONTROLLER_POLICY}: the VPC resource controller needs it to create and attach the trunk and branch ENIs (EKS user guide, security-groups-pods-deployment); add \"{CONTROLLER_POLICY}\" to `managed_policies`"),
                ));
            }
        }
        Some((cluster_addr, arn, None)) => d.push(spec.warning_at(
            format!("{cluster_addr}.role_arn"),
            format!("not checked: whether the role `{arn}` of cluster `{cluster}` (not in the spec) has the managed policy {CONTROLLER_POLICY}, which security groups for pods (`{settings}`) need: without it the VPC resource controller attaches no trunk ENI"),
        )),
        None => d.push(spec.warning_at(
            settings.to_string(),
            format!("not checked: whether cluster `{cluster}`'s role (the cluster is not created by this spec) has the managed policy {CONTROLLER_POLICY}, which security groups for pods need: without it the VPC resource controller attaches no trunk ENI"),
        )),
    }
}

/// Nodegroups of types that cannot have a trunk interface are refused on a pod-ENI cluster.
fn check_trunk_types(spec: &Spec, settings: &ResourceAddr, cluster: &str, d: &mut Diagnostics) {
    for r in spec.resources.values() {
        let ResourceConfig::Nodegroup(n) = &r.config else {
            continue;
        };
        if spec.resolved_name(&n.cluster_name) != cluster {
            continue;
        }
        for (i, t) in n.instance_types.iter().enumerate() {
            if crate::base::instance_types::trunk_by_name(t) != Some(false) {
                continue;
            }
            d.push(spec.error_at(
                format!("{}.instance_types.{i}", r.addr),
                format!("`{t}` cannot have a trunk interface, and cluster `{cluster}` turns security groups for pods on (`{settings}.pod_security_groups`): the VPC resource controller attaches trunks only to Nitro types outside the burstable t families (its IsTrunkingCompatible table), so pods a SecurityGroupPolicy selects could never run on these nodes; choose such a type (m5.large, c5.xlarge, m6i.large, …)"),
            ));
        }
    }
}

/// The spec's side (`validate`, no call).
pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    check_policies_have_pod_eni(spec, d);
    check_pod_eni_clusters(spec, d);
}

/// Once the plan is known: each policy created or changed says whose groups its own replace
/// for the pods it selects, the ENIConfig's under custom networking, else the node's.
pub fn check_plan(spec: &Spec, changes: &[ChangeView<'_>], diags: &mut Diagnostics) {
    for c in changes.iter().filter(|c| {
        c.addr.kind == Kind::SecurityGroupPolicy
            && matches!(c.action, Action::Create | Action::Update | Action::Replace)
    }) {
        let Some(after) = c.after else { continue };
        let cluster = resources::str_attr(after, "cluster_name").unwrap_or_default();
        let custom = changes
            .iter()
            .filter(|s| cni::carries_settings(s.addr.kind, &[s.after]))
            .filter(|s| {
                s.after.and_then(|a| resources::str_attr(a, "cluster_name")) == Some(cluster)
            })
            .any(|s| {
                cni::env(s.after)
                    .and_then(|e| e.get(cni::CUSTOM_NETWORK_ENV))
                    .and_then(Value::as_str)
                    == Some("true")
            });
        let groups = resources::str_list(after, "security_group_ids").join(", ");
        let namespace = resources::str_attr(after, "namespace").unwrap_or("default");
        let replaced = if custom {
            "the ENIConfig's groups (the branch ENIs are still made in the ENIConfig's subnet)"
        } else {
            "the node's groups"
        };
        diags.push(spec.warning_at(
            c.addr.to_string(),
            format!("for the pods `{}` selects in namespace `{namespace}`, its security groups ({groups}) replace {replaced} (EKS user guide, security-groups-for-pods); pods it does not select keep them", c.addr),
        ));
    }
}
