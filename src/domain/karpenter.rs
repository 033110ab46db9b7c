//! Karpenter's node classes and pools across kinds: a node class selects node subnets, never
//! pod subnets (Karpenter would put nodes, and under custom networking their primary ENIs,
//! in the space kept for pods); a pool names a node class of its own cluster in the spec;
//! an instance type the embedded table does not know is worth a warning (eksnet cannot size
//! it before the plan reads it). Max pods, which needs the instance types' ENIs, is the
//! planner's (`plan::nodes`).

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::value::whole_reference;
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use ipnet::Ipv4Net;

/// The node classes of the spec: address, resolved cluster, object name.
pub fn node_classes(spec: &Spec) -> Vec<(&ResourceAddr, String, String)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::KarpenterNodeClass(c) => Some((
                &r.addr,
                spec.resolved_name(&c.cluster_name),
                resources::str_attr(&r.attrs, "name")
                    .unwrap_or_default()
                    .to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// The node class a pool names (same cluster, same object name), if the spec has it.
pub fn class_of_pool<'s>(spec: &'s Spec, pool: &ResourceAddr) -> Option<&'s ResourceAddr> {
    let r = spec.resources.get(pool)?;
    let ResourceConfig::KarpenterNodePool(p) = &r.config else {
        return None;
    };
    let cluster = spec.resolved_name(&p.cluster_name);
    node_classes(spec)
        .into_iter()
        .find(|(_, c, n)| *c == cluster && *n == p.node_class)
        .map(|(a, _, _)| a)
}

/// Why a node class's subnet is a pod subnet, if it is one: an ENIConfig of the spec uses it,
/// or it is a subnet of the spec inside a secondary CIDR block of the spec.
fn pod_subnet_reason(spec: &Spec, subnet: &str) -> Option<String> {
    for r in spec.resources.values() {
        if let ResourceConfig::EniConfig(e) = &r.config {
            if e.subnet_id == subnet {
                return Some(format!("`{}` uses it for pods", r.addr));
            }
        }
    }
    let reference = whole_reference(subnet).filter(|r| r.addr.kind == Kind::Subnet)?;
    let ResourceConfig::Subnet(s) = &spec.resources.get(&reference.addr)?.config else {
        return None;
    };
    let net: Ipv4Net = s.cidr_block.parse().ok()?;
    spec.resources.values().find_map(|r| match &r.config {
        ResourceConfig::CidrBlock(b) => b
            .cidr_block
            .parse::<Ipv4Net>()
            .ok()
            .filter(|block| block.contains(&net))
            .map(|block| {
                format!(
                    "it lies in `{}` ({block}), the secondary block kept for pods",
                    r.addr
                )
            }),
        _ => None,
    })
}

pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    for r in spec.resources.values() {
        match &r.config {
            ResourceConfig::KarpenterNodeClass(c) => {
                for (i, s) in c.subnet_ids.iter().enumerate() {
                    if let Some(why) = pod_subnet_reason(spec, s) {
                        d.push(spec.error_at(
                            format!("{}.subnet_ids.{i}", r.addr),
                            format!("`{s}` is a pod subnet: {why}. A node class selects node subnets: Karpenter puts its nodes (and their primary ENIs) there, taking the addresses kept for pods; name the nodes' subnets (those of the nodegroups)"),
                        ));
                    }
                }
            }
            ResourceConfig::KarpenterNodePool(p) => {
                if class_of_pool(spec, &r.addr).is_none() {
                    let cluster = spec.resolved_name(&p.cluster_name);
                    let known: Vec<String> = node_classes(spec)
                        .into_iter()
                        .filter(|(_, c, _)| *c == cluster)
                        .map(|(_, _, n)| format!("`{n}`"))
                        .collect();
                    d.push(spec.error_at(
                        format!("{}.node_class", r.addr),
                        format!(
                            "no `karpenter_node_class` of cluster `{cluster}` in the spec is named `{}`{}: Karpenter would launch no node for the pool, and eksnet could not order the pool after the CNI settings its nodes need",
                            p.node_class,
                            if known.is_empty() { "; add one".to_string() } else { format!(" (the cluster's: {})", known.join(", ")) }
                        ),
                    ));
                }
                for (i, t) in p.instance_types.iter().enumerate() {
                    if !t.contains("${") && crate::base::instance_types::lookup(t).is_none() {
                        d.push(spec.warning_at(
                            format!("{}.instance_types.{i}", r.addr),
                            format!("`{t}` is not in eksnet's instance type table: its max pods are known only once the plan reads it from EC2 (check the spelling)"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}
