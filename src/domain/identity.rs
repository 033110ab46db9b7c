//! Who the VPC CNI acts as in AWS. It needs `AmazonEKS_CNI_Policy`'s permissions; by default
//! it has them through the node role (the instance profile every pod on the node can reach),
//! and the EKS user guide recommends a role of its own instead (`networking/cni-iam-role.adoc`):
//! through EKS Pod Identity (an association for `kube-system/aws-node`, served by the
//! `eks-pod-identity-agent` add-on; `workloads/add-ons-iam.adoc`) or IRSA (the service
//! account's role, `service_account_role_arn`). Sources of each rule are in its comment.
//!
//! Here: which add-on gives the CNI its own role, which role is a cluster's node role, the
//! spec checks (a role named by a Pod Identity association trusts Pod Identity; the agent is
//! there; `service_account_role_arn` is ignored beside associations) and the plan's warning
//! while a node role still carries the CNI policy. The ordering that moves the policy without
//! a gap is `ordering`'s, on the predicates below.

use super::ChangeView;
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::value;
use crate::resources::addon::ASSOCIATIONS;
use crate::resources::iam_role::{trusts_service, POD_IDENTITY_PRINCIPAL};
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use serde_json::Value;

/// The EKS add-on that runs the EKS Pod Identity Agent on every node.
pub const POD_IDENTITY_AGENT: &str = "eks-pod-identity-agent";
/// The AWS managed policy with the VPC CNI's permissions (IPv4).
pub const CNI_POLICY: &str = "AmazonEKS_CNI_Policy";
/// The VPC CNI's Kubernetes service account (in `kube-system`).
pub const CNI_SERVICE_ACCOUNT: &str = "aws-node";

fn attr<'a>(attrs: &'a Value, key: &str) -> &'a str {
    attrs.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Whether a role's attributes attach `AmazonEKS_CNI_Policy` (by its ARN in any partition).
pub fn has_cni_policy(role_attrs: &Value) -> bool {
    resources::str_list(role_attrs, "managed_policy_arns")
        .iter()
        .any(|a| a.ends_with(&format!(":policy/{CNI_POLICY}")))
}

/// The `vpc-cni` add-on's own role, when it has one, in words: its Pod Identity association
/// for `aws-node`, else its IRSA role (`service_account_role_arn`).
pub fn cni_own_role(addon_attrs: &Value) -> Option<String> {
    if !super::cni::is_addon(addon_attrs) {
        return None;
    }
    let association = addon_attrs
        .get(ASSOCIATIONS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| attr(a, "service_account") == CNI_SERVICE_ACCOUNT);
    // A role of the spec is named by its address rather than by a reference's text.
    let shown = |arn: &str| {
        value::whole_reference(arn)
            .map(|r| r.addr.to_string())
            .unwrap_or_else(|| arn.to_string())
    };
    if let Some(a) = association {
        return Some(format!(
            "a Pod Identity association for aws-node, role `{}`",
            shown(attr(a, "role_arn"))
        ));
    }
    let irsa = attr(addon_attrs, "service_account_role_arn");
    (!irsa.is_empty()).then(|| format!("the IRSA role `{}`", shown(irsa)))
}

/// The roles of the spec an ARN names: `${iam_role.X.arn}` (or any output of `iam_role.X`),
/// or a literal role ARN whose name is a spec role's `name`.
pub fn role_named<'a>(
    roles: impl Iterator<Item = (&'a ResourceAddr, &'a Value)>,
    arn: &str,
) -> Option<&'a ResourceAddr> {
    let by_ref = value::whole_reference(arn)
        .filter(|r| r.addr.kind == Kind::IamRole)
        .map(|r| r.addr);
    let literal = arn
        .rsplit_once(":role/")
        .map(|(_, n)| n.rsplit('/').next().unwrap_or(n).to_string());
    roles
        .filter(|(a, _)| a.kind == Kind::IamRole)
        .find(|(a, v)| {
            by_ref.as_ref() == Some(*a) || literal.as_deref().is_some_and(|n| n == attr(v, "name"))
        })
        .map(|(a, _)| a)
}

fn roles(spec: &Spec) -> impl Iterator<Item = (&ResourceAddr, &Value)> {
    spec.resources.iter().map(|(a, r)| (a, &r.attrs))
}

/// The spec's checks (`validate`): a role a Pod Identity association names lets Pod Identity
/// assume it; a cluster of the spec with associations runs the agent; and
/// `service_account_role_arn` beside associations is ignored by EKS.
pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    for (addr, r) in &spec.resources {
        let ResourceConfig::Addon(a) = &r.config else {
            continue;
        };
        if a.pod_identity_associations.is_empty() || a.existing {
            continue;
        }
        for (i, p) in a.pod_identity_associations.iter().enumerate() {
            let Some(role) = role_named(roles(spec), &p.role_arn) else {
                continue;
            };
            let trust = spec.resources[role].attrs.get("assume_role_policy");
            let trusted = trust.is_some_and(|t| {
                trusts_service(
                    t,
                    POD_IDENTITY_PRINCIPAL,
                    &["sts:AssumeRole", "sts:TagSession"],
                )
            });
            if !trusted {
                d.push(spec.error_at(
                    format!("{addr}.{ASSOCIATIONS}.{i}.role_arn"),
                    format!("`{role}` does not let EKS Pod Identity assume it: add \"{POD_IDENTITY_PRINCIPAL}\" to `{role}.assume_role_service` (eksnet then allows it sts:AssumeRole and sts:TagSession, both of which Pod Identity needs), or allow both in `{role}.assume_role_policy`"),
                ));
            }
        }
        // EKS Pod Identity needs its agent on the nodes: without it the pods of the service
        // account get credentials that point at an agent that is not there, and the VPC CNI's
        // aws-node crash-loops (amazon-vpc-cni-k8s #3840; EKS user guide, `add-ons-iam.adoc`:
        // "Confirm that Amazon EKS pod identity agent is setup").
        let cluster = spec.resolved_name(&a.cluster_name);
        let ours = spec.resources.values().any(|c| {
            matches!(&c.config, ResourceConfig::Cluster(c) if !c.existing && spec.resolved_name(&c.name) == cluster)
        });
        let agent = spec.resources.values().any(|o| {
            matches!(&o.config, ResourceConfig::Addon(x) if x.name == POD_IDENTITY_AGENT && spec.resolved_name(&x.cluster_name) == cluster)
        });
        if ours && !agent {
            d.push(spec.error_at(
                format!("{addr}.{ASSOCIATIONS}"),
                format!("cluster `{cluster}` has no `{POD_IDENTITY_AGENT}` add-on: without the EKS Pod Identity Agent the pods of the `{}` add-on get no credentials (the VPC CNI's aws-node crash-loops, amazon-vpc-cni-k8s #3840); add `[addon.pod_identity_agent]` with `cluster_name` and `name = \"{POD_IDENTITY_AGENT}\"`", a.name),
            ));
        }
        if a.service_account_role_arn.is_some() {
            d.push(spec.warning_at(
                format!("{addr}.service_account_role_arn"),
                format!("EKS ignores `service_account_role_arn` while the cluster runs the EKS Pod Identity Agent and the add-on has Pod Identity associations (EKS user guide, add-ons-iam): `{addr}` gets the associations' roles; remove it, or keep it only for a cluster without the agent"),
            ));
        }
    }
}

/// The plan's warning while the CNI has its own role and a node role of its cluster in the
/// spec still has the CNI policy: every pod on those nodes can use the CNI's permissions
/// through the instance profile (EKS user guide, `networking/cni-iam-role.adoc`, Step 3).
pub fn check_plan(spec: &Spec, changes: &[ChangeView<'_>], d: &mut Diagnostics) {
    for c in changes
        .iter()
        .filter(|c| c.addr.kind == Kind::Addon && !c.removed())
    {
        let Some(own) = c.after.and_then(cni_own_role) else {
            continue;
        };
        let cluster = spec.resolved_name(attr(c.after.unwrap_or(&Value::Null), "cluster_name"));
        let mut warned = std::collections::BTreeSet::new();
        for ng in spec.resources.values() {
            let ResourceConfig::Nodegroup(n) = &ng.config else {
                continue;
            };
            if spec.resolved_name(&n.cluster_name) != cluster {
                continue;
            }
            let Some(role) = role_named(roles(spec), &n.node_role_arn) else {
                continue;
            };
            let attrs = &spec.resources[role].attrs;
            if has_cni_policy(attrs) && warned.insert(role.clone()) {
                d.push(spec.warning_at(
                    format!("{role}.managed_policies"),
                    format!("the CNI has its own role ({own}, on `{}`); {CNI_POLICY} on node role `{role}` ({}) gives every pod on the node the CNI's permissions — remove it from managed_policies; eksnet detaches it only after the CNI runs with its own role", c.addr, attr(attrs, "name")),
                ));
            }
        }
    }
}
