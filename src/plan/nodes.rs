//! The planner's node sizing step: from the planned changes and node sizing's reads, max
//! pods per nodegroup under its cluster's CNI settings and the pod subnets' room per AZ
//! against what the nodegroups can grow to (`nodes::sizing` does the counting); a `max_pods`
//! the interfaces cannot give is an error, a shortfall a warning.

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::domain::cni;
use crate::nodes::sizing::{
    self, ClusterSizing, CniMode, InstanceNetwork, NodegroupSizing, OutsideSizing, PodSubnet,
    Sizing, SizingReads,
};
use crate::plan::{Plan, PlannedChange};
use crate::resources;
use crate::resources::NODE_GROUPS;
use crate::spec::Spec;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A finding of the assessment, with the spec key it belongs to: a warning, or an error
/// (a `max_pods` above what the ENIs can give).
pub struct Finding {
    pub key: String,
    pub message: String,
    pub error: bool,
}

pub(super) fn str_of<'v>(c: &'v PlannedChange, key: &str) -> Option<&'v str> {
    c.after
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The CNI environment of a cluster's settings (`aws_node.env` or the `vpc-cni` add-on's
/// `configuration_values.env`), as strings.
pub(super) fn cni_env(plan: &Plan, spec: &Spec, cluster: &str) -> BTreeMap<String, String> {
    plan.changes
        .iter()
        .filter(|c| cni::carries_settings(c.addr.kind, &[c.after.as_ref()]))
        .filter(|c| {
            str_of(c, "cluster_name")
                .map(|n| spec.resolved_name(n))
                .as_deref()
                == Some(cluster)
        })
        .filter_map(|c| cni::env(c.after.as_ref())?.as_object().cloned())
        .flat_map(|m| {
            m.into_iter().filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Bool(b) => Some((k, b.to_string())),
                Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
        })
        .collect()
}

/// Subnet id → AZ, from what the plan knows: the VPC stacks' subnet lists and the subnets.
fn known_azs(plan: &Plan) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for c in &plan.changes {
        let outputs = c.observed_outputs.as_ref();
        match c.addr.kind {
            Kind::Vpc => {
                if let Some(m) = outputs
                    .and_then(|o| o.get("subnet_azs"))
                    .and_then(Value::as_object)
                {
                    for (id, az) in m {
                        if let Some(az) = az.as_str() {
                            out.insert(id.clone(), az.to_string());
                        }
                    }
                }
            }
            Kind::Subnet => {
                let az = outputs
                    .and_then(|o| o.get("availability_zone"))
                    .and_then(Value::as_str)
                    .or_else(|| str_of(c, "availability_zone"));
                if let (Some(id), Some(az)) = (c.cloud_id.as_ref(), az) {
                    out.insert(id.clone(), az.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// An ENIConfig's `subnet_id` as the spec writes it, and as the plan resolves it.
pub(super) fn eni_subnet_id(spec: &Spec, eni: &PlannedChange) -> (String, String) {
    let raw = spec
        .get(&eni.addr)
        .and_then(|r| resources::str_attr(&r.attrs, "subnet_id"))
        .unwrap_or_default()
        .to_string();
    (
        raw,
        str_of(eni, "subnet_id").unwrap_or_default().to_string(),
    )
}

/// The subnet an ENIConfig's `subnet_id` names: by reference (`${subnet.X.id}`) or by id.
pub(super) fn eni_subnet<'p>(
    plan: &'p Plan,
    spec: &Spec,
    eni: &PlannedChange,
) -> Option<&'p PlannedChange> {
    let (raw, resolved) = eni_subnet_id(spec, eni);
    plan.changes.iter().find(|c| {
        c.addr.kind == Kind::Subnet
            && (raw == format!("${{{}.id}}", c.addr)
                || c.cloud_id.as_deref() == Some(resolved.as_str()))
    })
}

/// The CNI mode of a cluster from the spec's own settings (before any plan exists).
fn spec_mode(spec: &Spec, cluster: &str) -> CniMode {
    let env: BTreeMap<String, String> = spec
        .resources
        .values()
        .filter(|r| cni::carries_settings(r.addr.kind, &[Some(&r.attrs)]))
        .filter(|r| {
            resources::str_attr(&r.attrs, "cluster_name").map(|n| spec.resolved_name(n))
                == Some(cluster.to_string())
        })
        .filter_map(|r| cni::env(Some(&r.attrs))?.as_object().cloned())
        .flat_map(|m| {
            m.into_iter().filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Bool(b) => Some((k, b.to_string())),
                Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
        })
        .collect();
    CniMode::from_env(&env)
}

/// The instance types of the pools that name a node class, as read.
fn class_types(
    spec: &Spec,
    class: &ResourceAddr,
    reads: &SizingReads,
) -> Option<Vec<InstanceNetwork>> {
    let mut names: Vec<String> = spec
        .resources
        .values()
        .filter(|r| r.addr.kind == Kind::KarpenterNodePool)
        .filter(|r| crate::domain::karpenter::class_of_pool(spec, &r.addr) == Some(class))
        .flat_map(|r| resources::str_list(&r.attrs, "instance_types"))
        .collect();
    names.sort();
    names.dedup();
    let types: Vec<InstanceNetwork> = names
        .iter()
        .filter_map(|t| reads.types.get(t).cloned())
        .collect();
    (!types.is_empty() && types.len() == names.len()).then_some(types)
}

/// The spec with each Karpenter node class that sets no `max_pods`, on a cluster with custom
/// networking, given the max pods of the smallest instance type its pools allow: Karpenter's
/// own count, `(ENIs − RESERVED_ENIS) × (IPv4 per ENI − 1) + 2` with RESERVED_ENIS 0 by
/// default (karpenter-provider-aws `pkg/providers/instancetype/types.go`), counts the primary
/// ENI that custom networking keeps from pods, so its nodes would admit pods that wait for an
/// address forever. `None` when nothing is to be filled.
pub fn with_karpenter_max_pods(spec: &Spec, reads: &SizingReads) -> Option<Spec> {
    let mut filled: Vec<(ResourceAddr, u32)> = Vec::new();
    for r in spec.resources.values() {
        let resources::ResourceConfig::KarpenterNodeClass(c) = &r.config else {
            continue;
        };
        if c.max_pods.is_some() {
            continue;
        }
        let mode = spec_mode(spec, &spec.resolved_name(&c.cluster_name));
        if !mode.custom_networking {
            continue;
        }
        let Some(types) = class_types(spec, &r.addr, reads) else {
            continue;
        };
        let pods = sizing::nodegroup_pods(&types, &mode, None);
        filled.push((r.addr.clone(), pods.effective));
    }
    if filled.is_empty() {
        return None;
    }
    let mut out = spec.clone();
    for (addr, n) in filled {
        if let Some(Value::Object(m)) = out.resources.get_mut(&addr).map(|r| &mut r.attrs) {
            m.insert("max_pods".into(), Value::from(n));
        }
    }
    Some(out)
}

/// The Karpenter pools of a cluster in the plan: max pods from their class, the waste of
/// one max pods over mixed sizes, and their demand at `limits.nodes` in the AZs of the
/// class's subnets (an unbounded pool is warned about and not counted).
#[allow(clippy::too_many_arguments)]
fn karpenter_sizing(
    spec: &Spec,
    plan: &Plan,
    reads: &SizingReads,
    cluster: &str,
    mode: &CniMode,
    azs_of: &HashMap<String, String>,
    groups: &mut Vec<NodegroupSizing>,
    demands: &mut Vec<sizing::NodegroupDemand>,
    findings: &mut Vec<Finding>,
) {
    let change = |a: &ResourceAddr| {
        plan.changes
            .iter()
            .find(|c| &c.addr == a && c.after.is_some())
    };
    for pool in plan.changes.iter().filter(|c| {
        c.addr.kind == Kind::KarpenterNodePool
            && c.after.is_some()
            && str_of(c, "cluster_name")
                .map(|n| spec.resolved_name(n))
                .as_deref()
                == Some(cluster)
    }) {
        let key = pool.addr.to_string();
        let after = pool.after.as_ref().unwrap_or(&Value::Null);
        let Some(class_addr) = crate::domain::karpenter::class_of_pool(spec, &pool.addr) else {
            continue;
        };
        let class = change(class_addr)
            .and_then(|c| c.after.as_ref())
            .unwrap_or(&Value::Null);
        let written = match spec.get(class_addr).map(|r| &r.config) {
            Some(resources::ResourceConfig::KarpenterNodeClass(c)) => c.max_pods,
            _ => None,
        };
        let type_names = resources::str_list(after, "instance_types");
        let types: Vec<InstanceNetwork> = type_names
            .iter()
            .filter_map(|t| reads.types.get(t).cloned())
            .collect();
        if types.is_empty() || types.len() != type_names.len() {
            continue;
        }
        let class_pods = class
            .get("max_pods")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let mut pods = sizing::nodegroup_pods(&types, mode, class_pods);
        if let (Some(e), Some(_)) = (pods.explicit_error.take(), written) {
            findings.push(Finding {
                key: format!("{class_addr}.max_pods"),
                message: e,
                error: true,
            });
        }
        pods.trunk_warning = None;
        pods.mixed_warning = None;
        if mode.custom_networking {
            let per_node = pods.pods_per_node();
            let wasted: Vec<String> = pods
                .per_type
                .iter()
                .filter(|m| m.max_pods > per_node)
                .map(|m| {
                    format!(
                        "{} could run {} but runs {per_node}",
                        m.instance_type, m.max_pods
                    )
                })
                .collect();
            if !wasted.is_empty() {
                findings.push(Finding {
                    key: format!("{key}.instance_types"),
                    message: format!(
                        "one max pods ({per_node}, `{class_addr}`'s kubelet.maxPods) over every size the pool allows: {}; put each size in a pool of its own with its own node class, or leave max pods to Karpenter with its RESERVED_ENIS=1 (chart `settings.reservedENIs`, which eksnet does not manage), which counts custom networking per type",
                        wasted.join(", ")
                    ),
                    error: false,
                });
            }
        }
        let nodes = after
            .get("limits")
            .and_then(|l| l.get("nodes"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let Some(max) = nodes else {
            findings.push(Finding {
                key: key.clone(),
                message: "the pool sets no `limits.nodes`: Karpenter may launch nodes without bound, so its nodes are not counted in the pod subnets' room; set `limits = { nodes = N }`".into(),
                error: false,
            });
            groups.push(NodegroupSizing {
                addr: pool.addr.clone(),
                max_size: 0,
                pods,
            });
            continue;
        };
        let azs: Vec<String> = resources::str_list(class, "subnet_ids")
            .iter()
            .filter_map(|id| azs_of.get(id).cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let per_node = pods.pods_per_node();
        if let Some(hungriest) = types
            .iter()
            .max_by_key(|t| sizing::node_demand(t, mode, per_node))
            .cloned()
        {
            if !azs.is_empty() {
                demands.push(sizing::NodegroupDemand {
                    label: key.clone(),
                    azs,
                    max_size: max,
                    pods_per_node: per_node,
                    instance: hungriest,
                });
            }
        }
        groups.push(NodegroupSizing {
            addr: pool.addr.clone(),
            max_size: max,
            pods,
        });
    }
}

/// The assessment of every cluster with nodegroups in the plan, and its warnings.
pub fn assess(spec: &Spec, plan: &Plan, reads: &SizingReads) -> (Sizing, Vec<Finding>) {
    let mut findings: Vec<Finding> = reads
        .problems
        .iter()
        .map(|p| Finding {
            key: String::new(),
            message: format!("node sizing could not read everything it needs: {p}"),
            error: false,
        })
        .collect();
    let azs_of = known_azs(plan);
    let live = |c: &&PlannedChange| c.after.is_some();
    let nodegroups: Vec<&PlannedChange> = plan
        .changes
        .iter()
        .filter(|c| NODE_GROUPS.contains(&c.addr.kind))
        .filter(live)
        .collect();
    let mut clusters: BTreeSet<String> = nodegroups
        .iter()
        .filter_map(|c| str_of(c, "cluster_name"))
        .map(|n| spec.resolved_name(n))
        .collect();
    clusters.extend(
        plan.changes
            .iter()
            .filter(|c| c.addr.kind == Kind::KarpenterNodePool)
            .filter(live)
            .filter_map(|c| str_of(c, "cluster_name"))
            .map(|n| spec.resolved_name(n)),
    );
    clusters.extend(reads.outside.keys().cloned());
    auto_mode_findings(plan, &mut findings);
    let mut sizing = Sizing::default();
    for cluster in clusters {
        let mode = CniMode::from_env(&cni_env(plan, spec, &cluster));
        // Pod subnets: the ENIConfigs' subnets, under custom networking.
        let mut pod_subnets = Vec::new();
        if mode.custom_networking {
            for eni in plan.changes.iter().filter(|c| {
                c.addr.kind == Kind::EniConfig
                    && c.after.is_some()
                    && str_of(c, "cluster_name")
                        .map(|n| spec.resolved_name(n))
                        .as_deref()
                        == Some(cluster.as_str())
            }) {
                let Some(sub) = eni_subnet(plan, spec, eni) else {
                    continue;
                };
                let cidr = str_of(sub, "cidr_block").and_then(|c| c.parse::<ipnet::Ipv4Net>().ok());
                let az = sub
                    .observed_outputs
                    .as_ref()
                    .and_then(|o| o.get("availability_zone"))
                    .and_then(Value::as_str)
                    .or_else(|| str_of(sub, "availability_zone"))
                    .map(|s| spec.resolved_name(s))
                    // Known after apply (a reference to the VPC's outputs): the subnet's own
                    // zone still, one row per subnet.
                    .map(|az| {
                        if az.contains("${") {
                            format!("(AZ of {})", sub.addr)
                        } else {
                            az
                        }
                    });
                if let (Some(cidr), Some(az)) = (cidr, az) {
                    if pod_subnets
                        .iter()
                        .any(|p: &PodSubnet| p.label == sub.addr.to_string())
                    {
                        continue;
                    }
                    pod_subnets.push(PodSubnet {
                        label: sub.addr.to_string(),
                        az,
                        cidr,
                        available: sub
                            .cloud_id
                            .as_ref()
                            .and_then(|id| reads.available.get(id))
                            .copied(),
                    });
                }
            }
        }
        let pod_azs: Vec<String> = pod_subnets
            .iter()
            .map(|p| p.az.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut groups = Vec::new();
        let mut demands = Vec::new();
        for ng in nodegroups.iter().filter(|c| {
            str_of(c, "cluster_name")
                .map(|n| spec.resolved_name(n))
                .as_deref()
                == Some(cluster.as_str())
        }) {
            let after = ng.after.as_ref().unwrap_or(&Value::Null);
            let type_names = resources::node_instance_types(after);
            let types: Vec<InstanceNetwork> = type_names
                .iter()
                .filter_map(|t| reads.types.get(t).cloned())
                .collect();
            if types.len() != type_names.len() {
                // Not read (a failed read, or a reference): nothing sound to say.
                continue;
            }
            let explicit = match spec.get(&ng.addr).map(|r| &r.config) {
                Some(resources::ResourceConfig::Nodegroup(c)) => c.max_pods,
                Some(resources::ResourceConfig::SelfManagedNodeGroup(c)) => Some(c.max_pods),
                _ => None,
            };
            let pods = sizing::nodegroup_pods(&types, &mode, explicit);
            let key = ng.addr.to_string();
            // Where the types are written: a self-managed group has one.
            let types_key = if ng.addr.kind == Kind::Nodegroup {
                "instance_types"
            } else {
                "instance_type"
            };
            if let Some(e) = &pods.explicit_error {
                findings.push(Finding {
                    key: format!("{key}.max_pods"),
                    message: e.clone(),
                    error: true,
                });
            }
            if let Some(w) = &pods.trunk_warning {
                findings.push(Finding {
                    key: format!("{key}.{types_key}"),
                    message: w.clone(),
                    error: false,
                });
            }
            if let Some(w) = &pods.mixed_warning {
                findings.push(Finding {
                    key: format!("{key}.{types_key}"),
                    message: w.clone(),
                    error: false,
                });
            }
            for note in pods.per_type.iter().filter_map(|m| m.note.clone()) {
                findings.push(Finding {
                    key: format!("{key}.{types_key}"),
                    message: note,
                    error: false,
                });
            }
            let max_size = after
                .get("scaling")
                .and_then(|s| s.get("max_size"))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(2);
            // The node subnets' AZs when known; else the cluster's pod subnet AZs, which
            // validation requires to cover every AZ a nodegroup runs in.
            let mut azs: Vec<String> = resources::str_list(after, "subnet_ids")
                .iter()
                .filter_map(|id| azs_of.get(id).cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if azs.is_empty() {
                azs = pod_azs.clone();
            }
            // Every node runs the group's max pods, but a type with more addresses per ENI
            // holds more of them warm: the demand counted is the hungriest type's.
            let per_node = pods.pods_per_node();
            if let Some(hungriest) = types
                .iter()
                .max_by_key(|t| sizing::node_demand(t, &mode, per_node))
                .cloned()
            {
                demands.push(sizing::NodegroupDemand {
                    label: key.clone(),
                    azs,
                    max_size,
                    pods_per_node: per_node,
                    instance: hungriest,
                });
            }
            groups.push(NodegroupSizing {
                addr: ng.addr.clone(),
                max_size,
                pods,
            });
        }
        karpenter_sizing(
            spec,
            plan,
            reads,
            &cluster,
            &mode,
            &azs_of,
            &mut groups,
            &mut demands,
            &mut findings,
        );
        let outside = outside_sizing(spec, &cluster, reads, &mode, &mut demands, &mut findings);
        let capacity = (mode.custom_networking && !demands.is_empty())
            .then(|| sizing::capacity(&pod_subnets, &demands, &mode));
        if let Some(c) = &capacity {
            for w in c.warnings() {
                findings.push(Finding {
                    key: String::new(),
                    message: format!("cluster `{cluster}`: {w}"),
                    error: false,
                });
            }
        }
        if !groups.is_empty() || !outside.is_empty() {
            sizing.clusters.push(ClusterSizing {
                cluster,
                mode,
                nodegroups: groups,
                outside,
                capacity,
            });
        }
    }
    (sizing, findings)
}

/// Each Auto Mode NodeClass's pod subnets, counted in /28 prefixes at Auto Mode's max pods
/// (`sizing::auto_mode_subnet`): how many nodes' pods each holds, beside the pool's node limit.
fn auto_mode_findings(plan: &Plan, findings: &mut Vec<Finding>) {
    for class in plan
        .changes
        .iter()
        .filter(|c| c.addr.kind == Kind::AutoModeNodeClass && c.after.is_some())
    {
        let after = class.after.as_ref().unwrap_or(&Value::Null);
        let mut parts = Vec::new();
        let mut total = 0u32;
        let mut empty = Vec::new();
        for id in resources::str_list(after, "pod_subnet_ids") {
            let sub = plan.changes.iter().find(|c| {
                c.addr.kind == Kind::Subnet
                    && (id == format!("${{{}.id}}", c.addr) || c.cloud_id.as_deref() == Some(&id))
            });
            let Some((sub, cidr)) = sub.and_then(|s| {
                str_of(s, "cidr_block")
                    .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok())
                    .map(|c| (s, c))
            }) else {
                continue;
            };
            let held = sizing::auto_mode_subnet(cidr.prefix_len());
            total = total.saturating_add(held.nodes);
            if held.nodes == 0 {
                empty.push(format!("`{}` ({cidr})", sub.addr));
            }
            parts.push(format!(
                "`{}` ({cidr}): {} /28 prefixes, {} nodes",
                sub.addr, held.prefixes, held.nodes
            ));
        }
        if parts.is_empty() {
            continue;
        }
        let per_node = sizing::auto_mode_subnet(28).prefixes_per_node;
        let limit = after
            .pointer("/node_pool/limits/nodes")
            .and_then(Value::as_u64)
            .map(|n| format!("; its pool may launch {n}"))
            .unwrap_or_default();
        findings.push(Finding {
            key: format!("{}.pod_subnet_ids", class.addr),
            message: format!("Auto Mode pod addresses: at most {} pods a node, from /28 prefixes ({per_node} per node with its interface's own address), the pod subnets hold {}; {total} nodes in all{limit}", sizing::AUTO_MODE_MAX_PODS, parts.join(", ")),
            error: false,
        });
        if !empty.is_empty() {
            findings.push(Finding {
                key: format!("{}.pod_subnet_ids", class.addr),
                message: format!("{} cannot hold the prefixes of one Auto Mode node: a subnet gives /28 prefixes only from whole free blocks, and AWS reserves addresses in its first and last; nodes in that zone get no pod address. Use a /24 or larger", empty.join(", ")),
                error: false,
            });
        }
    }
}

/// The node sources of a cluster the spec only reads, other than the spec's own nodegroups
/// (counted already): sized under the cluster's CNI settings as a nodegroup is, their demand
/// added to `demands`. A group with a max size counts at it, spread over its AZs as an Auto
/// Scaling group spreads; one without (Karpenter, an unknown owner) counts its nodes where
/// they run now, said in a warning since it may grow.
fn outside_sizing(
    spec: &Spec,
    cluster: &str,
    reads: &SizingReads,
    mode: &CniMode,
    demands: &mut Vec<sizing::NodegroupDemand>,
    findings: &mut Vec<Finding>,
) -> Vec<OutsideSizing> {
    let declared: BTreeSet<String> = spec
        .resources
        .values()
        .filter_map(|r| match &r.config {
            resources::ResourceConfig::Nodegroup(n)
                if spec.resolved_name(&n.cluster_name) == cluster =>
            {
                Some(spec.resolved_name(&n.name))
            }
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for g in reads.outside.get(cluster).into_iter().flatten() {
        if g.nodegroup.as_ref().is_some_and(|n| declared.contains(n)) {
            continue;
        }
        let types: Vec<InstanceNetwork> = g
            .instance_types
            .iter()
            .filter_map(|t| reads.types.get(t).cloned())
            .collect();
        let now: u32 = g.nodes_per_az.values().sum();
        if types.is_empty() || types.len() != g.instance_types.len() {
            let unknown: Vec<&str> = g
                .instance_types
                .iter()
                .filter(|t| !reads.types.contains_key(*t))
                .map(String::as_str)
                .collect();
            findings.push(Finding {
                key: String::new(),
                message: format!(
                    "cluster `{cluster}`: the nodes of {} are not counted in the pod subnets' room: the network limits of its instance types ({}) are unknown",
                    g.label,
                    if unknown.is_empty() { "none named".to_string() } else { unknown.join(", ") }
                ),
                error: false,
            });
            continue;
        }
        let pods = sizing::nodegroup_pods(&types, mode, None);
        let per_node = pods.pods_per_node();
        let Some(hungriest) = types
            .iter()
            .max_by_key(|t| sizing::node_demand(t, mode, per_node))
            .cloned()
        else {
            continue;
        };
        match g.max_size {
            Some(max) => demands.push(sizing::NodegroupDemand {
                label: g.label.clone(),
                azs: g.azs.clone(),
                max_size: max,
                pods_per_node: per_node,
                instance: hungriest,
            }),
            None => {
                for (az, count) in &g.nodes_per_az {
                    demands.push(sizing::NodegroupDemand {
                        label: g.label.clone(),
                        azs: vec![az.clone()],
                        max_size: *count,
                        pods_per_node: per_node,
                        instance: hungriest.clone(),
                    });
                }
                if mode.custom_networking {
                    findings.push(Finding {
                        key: String::new(),
                        message: format!(
                            "cluster `{cluster}`: {} has no max size eksnet can read: {} counted where {} now, and the pod subnets' room is not checked against its growth",
                            g.label,
                            if now == 1 { "its 1 node is".to_string() } else { format!("its {now} nodes are") },
                            if now == 1 { "it runs" } else { "they run" },
                        ),
                        error: false,
                    });
                }
            }
        }
        out.push(OutsideSizing {
            label: g.label.clone(),
            max_size: g.max_size,
            nodes: now,
            pods,
        });
    }
    out
}

/// Adds the assessment to a plan: its warnings to the plan's, its numbers as `plan.sizing`.
/// Its errors (a `max_pods` the ENIs cannot give) are returned: the plan must not be applied.
pub fn attach(spec: &Spec, plan: &mut Plan, reads: &SizingReads) -> Result<(), Diagnostics> {
    let (sizing, findings) = assess(spec, plan, reads);
    let mut errors = Diagnostics::default();
    for f in findings {
        let d = match (f.key.is_empty(), f.error) {
            (true, false) => crate::base::diag::Diagnostic::warning(f.message),
            (true, true) => crate::base::diag::Diagnostic::error(f.message),
            (false, false) => spec.warning_at(f.key, f.message),
            (false, true) => spec.error_at(f.key, f.message),
        };
        if f.error {
            errors.push(d);
        } else {
            plan.warnings.push(d);
        }
    }
    plan.sizing = (!sizing.clusters.is_empty()).then_some(sizing);
    if errors.has_errors() {
        return Err(errors);
    }
    Ok(())
}
