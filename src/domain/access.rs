//! Cluster access across kinds: which clusters can hold access entries, and which nodes lack
//! the entry they need to join.
//!
//! - EKS refuses CreateAccessEntry on a cluster whose authentication mode is `CONFIG_MAP`,
//!   the default of a cluster made through the API (EKS API reference,
//!   CreateAccessConfigRequest; user guide `setting-up-access-entries.adoc`), so an
//!   `access_entry` or a `self_managed_node_group` (which makes its role's entry) needs its
//!   cluster at `API_AND_CONFIG_MAP` or `API`.
//! - The mode changes forward only (CONFIG_MAP → API_AND_CONFIG_MAP → API): a plan going back
//!   is refused.
//! - Karpenter's nodes need an `EC2_LINUX` entry for the node class's role, an Auto Mode
//!   NodeClass's nodes an `EC2` entry with `AmazonEKSAutoNodePolicy`
//!   (`automode/create-node-class.adoc`); without one the nodes never join. EKS makes the
//!   entries of managed nodegroups' roles and of Auto Mode's built-in pools itself.
//! - An `EC2` entry is Auto Mode's: on a cluster without it, refused.

use super::ChangeView;
use crate::base::addr::Kind;
use crate::base::diag::Diagnostics;
use crate::base::value;
use crate::resources::cluster::authentication_mode_change_allowed;
use crate::resources::{self, ResourceConfig};
use crate::spec::{ResourceSpec as Resource, Spec};

/// The access policy Auto Mode's nodes need (`automode/create-node-class.adoc`).
pub const AUTO_NODE_POLICY: &str = "AmazonEKSAutoNodePolicy";

/// The spec's cluster (not an `existing` one) whose resolved name is `name`.
fn spec_cluster<'a>(spec: &'a Spec, name: &str) -> Option<&'a Resource> {
    let name = spec.resolved_name(name);
    spec.resources.values().find(|r| match &r.config {
        ResourceConfig::Cluster(c) => !c.existing && spec.resolved_name(&c.name) == name,
        _ => false,
    })
}

/// The same IAM role, as an ARN, a name or a reference to either (`${iam_role.X.arn}`,
/// `${iam_role.X.name}`), or the literal name at the end of an ARN.
fn same_role(spec: &Spec, a: &str, b: &str) -> bool {
    let key = |s: &str| -> Option<String> {
        if let Some(r) = value::whole_reference(s) {
            if r.addr.kind != Kind::IamRole {
                return None;
            }
            // The role's own name when the spec declares it: a literal ARN then matches too.
            return Some(
                spec.get(&r.addr)
                    .and_then(|role| resources::str_attr(&role.attrs, "name"))
                    .map(str::to_string)
                    .unwrap_or_else(|| r.addr.to_string()),
            );
        }
        Some(match s.rsplit_once(":role/") {
            Some((_, path)) => path.rsplit('/').next().unwrap_or(path).to_string(),
            None => s.to_string(),
        })
    };
    matches!((key(a), key(b)), (Some(x), Some(y)) if x == y)
}

/// The spec's access entries of cluster `cluster` (resolved) for role `role`.
fn entries_for<'a>(spec: &'a Spec, cluster: &str, role: &str) -> Vec<&'a Resource> {
    spec.resources
        .values()
        .filter(|r| match &r.config {
            ResourceConfig::AccessEntry(e) => {
                spec.resolved_name(&e.cluster_name) == spec.resolved_name(cluster)
                    && same_role(spec, &e.principal_arn, role)
            }
            _ => false,
        })
        .collect()
}

/// A managed nodegroup of cluster `cluster` (resolved) running with role `role`.
fn nodegroup_with_role<'a>(spec: &'a Spec, cluster: &str, role: &str) -> Option<&'a Resource> {
    spec.resources.values().find(|g| match &g.config {
        ResourceConfig::Nodegroup(n) => {
            spec.resolved_name(&n.cluster_name) == spec.resolved_name(cluster)
                && same_role(spec, &n.node_role_arn, role)
        }
        _ => false,
    })
}

pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    for r in spec.resources.values() {
        // (cluster, what needs the entries API, the role whose entry a node source needs)
        let (cluster, makes_entry) = match &r.config {
            ResourceConfig::AccessEntry(e) => (e.cluster_name.as_str(), true),
            ResourceConfig::SelfManagedNodeGroup(g) => (g.cluster_name.as_str(), true),
            ResourceConfig::KarpenterNodeClass(c) => (c.cluster_name.as_str(), false),
            ResourceConfig::AutoModeNodeClass(c) => (c.cluster_name.as_str(), false),
            _ => continue,
        };
        let Some(cluster_res) = spec_cluster(spec, cluster) else {
            continue;
        };
        let ResourceConfig::Cluster(c) = &cluster_res.config else {
            continue;
        };
        let mode = c.authentication_mode.as_deref().unwrap_or("CONFIG_MAP");
        if makes_entry && mode == "CONFIG_MAP" {
            let what = if r.addr.kind == Kind::AccessEntry {
                "an access entry"
            } else {
                "a self-managed group makes an access entry for its role, which"
            };
            d.push(spec.error_at(
                format!("{}.cluster_name", r.addr),
                format!(
                    "{what} needs the cluster's authentication mode to include the EKS API, and `{}` has {}: EKS refuses access entries under CONFIG_MAP; set `authentication_mode = \"API_AND_CONFIG_MAP\"` (or \"API\") on `{}` (a change in place, one way only)",
                    cluster_res.addr,
                    if c.authentication_mode.is_some() { "`CONFIG_MAP`".to_string() } else { "none set (EKS's default through the API is CONFIG_MAP)".to_string() },
                    cluster_res.addr,
                ),
            ));
        }
        match &r.config {
            ResourceConfig::AccessEntry(e) if e.entry_type == "EC2" && !c.auto_mode => {
                d.push(spec.error_at(
                    format!("{}.type", r.addr),
                    format!("type `EC2` is for the nodes of an EKS Auto Mode NodeClass, and `{}` does not have `auto_mode = true`; Linux nodes of other sources take `EC2_LINUX`", cluster_res.addr),
                ));
            }
            ResourceConfig::AccessEntry(e) => {
                // A self-managed group of the cluster with this role makes the entry itself:
                // a second CreateAccessEntry for the principal is refused.
                let clash = spec.resources.values().find(|g| match &g.config {
                    ResourceConfig::SelfManagedNodeGroup(g) => {
                        spec.resolved_name(&g.cluster_name) == spec.resolved_name(&e.cluster_name)
                            && same_role(spec, &g.node_role_arn, &e.principal_arn)
                    }
                    _ => false,
                });
                if let Some(g) = clash {
                    d.push(spec.error_at(
                        format!("{}.principal_arn", r.addr),
                        format!("`{}` makes the access entry of this role itself (EC2_LINUX); remove this one", g.addr),
                    ));
                } else if let Some(ng) =
                    nodegroup_with_role(spec, &e.cluster_name, &e.principal_arn)
                {
                    // EKS makes (and deletes with the nodegroup) the entry of a managed
                    // nodegroup's role (user guide, `access-entries.adoc`).
                    d.push(spec.error_at(
                        format!("{}.principal_arn", r.addr),
                        format!("EKS makes the access entry of this role itself, for `{}` (a managed nodegroup's role); remove this one, or two owners would delete it under each other", ng.addr),
                    ));
                }
            }
            ResourceConfig::KarpenterNodeClass(k) => {
                let entries = entries_for(spec, cluster, &k.role);
                // A managed nodegroup's role is let in by EKS itself (an access entry, or
                // the aws-auth mapping under CONFIG_MAP): Karpenter's nodes may share it.
                let shared = nodegroup_with_role(spec, cluster, &k.role).is_some();
                if entries.is_empty() && !shared {
                    let how = if mode == "CONFIG_MAP" {
                        format!("a mapping in the `aws-auth` ConfigMap, which eksnet does not manage, or `authentication_mode = \"API_AND_CONFIG_MAP\"` on `{}` and an `access_entry` of type `EC2_LINUX`", cluster_res.addr)
                    } else {
                        "an `access_entry` for it of type `EC2_LINUX`".to_string()
                    };
                    d.push(spec.warning_at(
                        format!("{}.role", r.addr),
                        format!("Karpenter's nodes of this class cannot join `{}` unless their role `{}` is let in: {how} (or give the class the role of a managed nodegroup of the cluster)", cluster_res.addr, k.role),
                    ));
                }
            }
            ResourceConfig::AutoModeNodeClass(n) => {
                let entries = entries_for(spec, cluster, &n.role);
                let fits = entries.iter().any(|e| match &e.config {
                    ResourceConfig::AccessEntry(e) => {
                        e.entry_type == "EC2"
                            && e.access_policies.iter().any(|p| {
                                p.policy == AUTO_NODE_POLICY
                                    || p.policy.ends_with(&format!("/{AUTO_NODE_POLICY}"))
                            })
                    }
                    _ => false,
                });
                if !fits {
                    d.push(spec.warning_at(
                        format!("{}.role", r.addr),
                        format!("the nodes of this NodeClass cannot join `{}` without an access entry for the role `{}` of type `EC2` with the `{AUTO_NODE_POLICY}` access policy; add an `access_entry` (see examples/auto-mode.toml), unless it exists outside the spec", cluster_res.addr, n.role),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// A cluster's authentication mode going back (API → API_AND_CONFIG_MAP, …): EKS refuses it.
pub fn check_plan(spec: &Spec, changes: &[ChangeView<'_>], diags: &mut Diagnostics) {
    for c in changes.iter().filter(|c| c.addr.kind == Kind::Cluster) {
        let mode = |v: Option<&serde_json::Value>| {
            v.and_then(|v| resources::str_attr(v, "authentication_mode"))
                .map(str::to_string)
        };
        if let (Some(from), Some(to)) = (mode(c.before), mode(c.after)) {
            if !authentication_mode_change_allowed(&from, &to) {
                diags.push(spec.error_at(
                    format!("{}.authentication_mode", c.addr),
                    format!("the cluster's authentication mode is `{from}` and EKS changes it forward only (CONFIG_MAP → API_AND_CONFIG_MAP → API), never back to `{to}`"),
                ));
            }
        }
    }
}
