//! The nodes a cluster already runs, whoever owns them, and which of them keep giving pods
//! addresses from the node subnets: the input of the plan's "existing nodes" section and of
//! `eksnet roll`.
//!
//! A node keeps primary-subnet addresses when its VPC CNI started without custom networking:
//! ipamd reads its settings once, when `aws-node` starts on the node, and turning custom
//! networking on later "requires terminating the previous instance" (amazon-vpc-cni-k8s,
//! `pkg/ipamd/ipamd.go`). That shows from outside as any of:
//! - a pod (not on the host network) with an address outside the pod subnets;
//! - an ENI the CNI made (`aws-K8S-<instance>`) with addresses outside the pod subnets, or a
//!   primary ENI holding secondary addresses: under custom networking the primary ENI gives
//!   pods nothing;
//! - no ENIConfig for the node to pick: a replacement would not start its CNI either, but the
//!   node itself is not on custom networking.
//!
//! Owners, first hit wins: a managed nodegroup (label `eks.amazonaws.com/nodegroup` or tag
//! `eks:nodegroup-name`, EKS user guide `nodes/managed-node-groups.adoc`), Karpenter (label
//! or tag `karpenter.sh/nodepool`, karpenter-provider-aws `docs/concepts/scheduling.md`), an
//! Auto Scaling group (tag `aws:autoscaling:groupName`), else unknown.

use crate::cloud::aws::AwsClients;
use crate::resources::eni_config::{api_resource, NODE_ANNOTATION};
use crate::resources::{ResourceConfig, ResourceError};
use crate::spec::Spec;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";
pub const KARPENTER_LABEL: &str = "karpenter.sh/nodepool";
pub const ASG_TAG: &str = "aws:autoscaling:groupName";
pub const NODEGROUP_TAG: &str = "eks:nodegroup-name";

/// Who brings a node back when its instance ends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Owner {
    /// An EKS managed nodegroup (its Auto Scaling group replaces the instance).
    Nodegroup(String),
    /// An Auto Scaling group that is not a managed nodegroup's (self-managed nodes).
    AutoScaling(String),
    /// Karpenter's node pool: a new node comes for the pods left pending.
    Karpenter(String),
    /// Nothing known replaces it.
    Unknown,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Nodegroup(n) => write!(f, "managed nodegroup {n}"),
            Owner::AutoScaling(g) => write!(f, "Auto Scaling group {g}"),
            Owner::Karpenter(p) => write!(f, "Karpenter node pool {p}"),
            Owner::Unknown => write!(f, "unknown owner"),
        }
    }
}

/// One node of the cluster.
#[derive(Clone, Debug, Serialize)]
pub struct ExistingNode {
    pub name: String,
    pub instance_id: Option<String>,
    pub zone: Option<String>,
    pub owner: Owner,
    pub ready: bool,
    pub unschedulable: bool,
    /// Why its pods get (or would get) node-subnet addresses; empty: on custom networking.
    pub reasons: Vec<String>,
    /// The spec's nodegroup that owns it (`nodegroup.NAME`): replaced by `apply --replace`,
    /// not by `roll`.
    pub in_spec: Option<String>,
}

impl ExistingNode {
    pub fn needs_move(&self) -> bool {
        !self.reasons.is_empty()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Survey {
    pub cluster: String,
    pub nodes: Vec<ExistingNode>,
}

impl Survey {
    /// The nodes to move, grouped by owner (in owner order, then name).
    pub fn to_move(&self) -> BTreeMap<&Owner, Vec<&ExistingNode>> {
        let mut out: BTreeMap<&Owner, Vec<&ExistingNode>> = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.needs_move()) {
            out.entry(&n.owner).or_default().push(n);
        }
        out
    }
}

/// How the cluster's nodes pick their ENIConfig, from the spec's CNI settings (`aws_node` or
/// the `vpc-cni` add-on); label mode on `topology.kubernetes.io/zone` when neither says.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub annotation: bool,
    pub label: String,
}

pub fn selection(spec: &Spec, cluster: &str) -> Selection {
    let default_label = "topology.kubernetes.io/zone".to_string();
    for r in spec.resources.values() {
        match &r.config {
            ResourceConfig::AwsNode(a) if spec.resolved_name(&a.cluster_name) == cluster => {
                return Selection {
                    annotation: a.eni_config_selection == "annotation",
                    label: a.eni_config_label.clone(),
                }
            }
            ResourceConfig::Addon(a)
                if spec.resolved_name(&a.cluster_name) == cluster && a.name == "vpc-cni" =>
            {
                return Selection {
                    annotation: a.eni_config_selection.as_deref() == Some("annotation"),
                    label: a.eni_config_label.clone().unwrap_or(default_label),
                }
            }
            _ => {}
        }
    }
    Selection {
        annotation: false,
        label: default_label,
    }
}

/// Which way nodes are to move.
#[derive(Clone, Debug, PartialEq)]
pub enum Aim {
    /// Onto custom networking (the spec's pod subnets): a node that gives pods node-subnet
    /// addresses, or has no ENIConfig, is to move.
    Onto,
    /// Off these pod subnets, which are to be deleted (a destroy, once the CNI settings are
    /// put back): a node with pods or CNI ENIs in them is to move.
    Off(Vec<Ipv4Net>),
}

/// The pod subnets' blocks: the spec's subnets.
pub fn pod_cidrs(spec: &Spec) -> Vec<Ipv4Net> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::Subnet(s) => s.cidr_block.parse().ok(),
            _ => None,
        })
        .collect()
}

/// The spec's nodegroups of this cluster by EKS name → address.
fn spec_nodegroups(spec: &Spec, cluster: &str) -> BTreeMap<String, String> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::Nodegroup(n) if spec.resolved_name(&n.cluster_name) == cluster => {
                Some((spec.resolved_name(&n.name), r.addr.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn kube_err(op: &'static str) -> impl Fn(kube::Error) -> ResourceError {
    move |e| crate::cloud::kube::error(op, e).into()
}

// Also what the self-managed node group's drain matches instances by.
pub use crate::resources::drain::{is_ready, provider_instance};

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// What EC2 says of the nodes' instances: tags, and the addresses of the ENIs on them.
#[derive(Default)]
struct InstanceFacts {
    tags: BTreeMap<String, BTreeMap<String, String>>,
    /// instance → reasons from its ENIs.
    eni_reasons: BTreeMap<String, Vec<String>>,
}

async fn instance_facts(
    aws: &AwsClients,
    ids: &[String],
    pod_cidrs: &[Ipv4Net],
    aim: &Aim,
) -> Result<InstanceFacts, ResourceError> {
    let mut facts = InstanceFacts::default();
    if ids.is_empty() {
        return Ok(facts);
    }
    let inside = |ip: &str| {
        ip.parse::<Ipv4Addr>()
            .is_ok_and(|a| pod_cidrs.iter().any(|n| n.contains(&a)))
    };
    for chunk in ids.chunks(100) {
        let out = aws
            .ec2
            .describe_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| crate::resources::aws_error("DescribeInstances", e))?;
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            let tags = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            facts.tags.insert(id.to_string(), tags);
        }
        let enis = aws
            .ec2
            .describe_network_interfaces()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("attachment.instance-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| crate::resources::aws_error("DescribeNetworkInterfaces", e))?;
        for eni in enis.network_interfaces() {
            let Some(att) = eni.attachment() else {
                continue;
            };
            let Some(instance) = att.instance_id() else {
                continue;
            };
            let id = eni.network_interface_id().unwrap_or("?");
            let ips: Vec<&str> = eni
                .private_ip_addresses()
                .iter()
                .filter_map(|a| a.private_ip_address())
                .collect();
            let reason = if let Aim::Off(_) = aim {
                let within = ips.iter().filter(|ip| inside(ip)).count();
                (within > 0).then(|| {
                    format!(
                        "its ENI {id} holds {within} address(es) in the pod subnets ({})",
                        eni.subnet_id().unwrap_or("?")
                    )
                })
            } else if att.device_index() == Some(0) {
                // The primary address is the node's own; any other one is a pod's.
                (ips.len() > 1).then(|| {
                    format!(
                        "its primary ENI {id} holds {} pod address(es): its CNI started without custom networking",
                        ips.len() - 1
                    )
                })
            } else if eni.description().is_some_and(|d| d.starts_with("aws-K8S-")) {
                let outside = ips.iter().filter(|ip| !inside(ip)).count();
                (outside > 0).then(|| {
                    format!(
                        "its CNI ENI {id} is in {} with {outside} address(es) outside the pod subnets",
                        eni.subnet_id().unwrap_or("a node subnet")
                    )
                })
            } else {
                None
            };
            if let Some(r) = reason {
                facts
                    .eni_reasons
                    .entry(instance.to_string())
                    .or_default()
                    .push(r);
            }
        }
    }
    Ok(facts)
}

/// Reads the cluster's nodes, pods, ENIConfigs, and the nodes' instances and ENIs.
pub async fn survey(
    spec: &Spec,
    aws: &AwsClients,
    client: kube::Client,
    cluster: &str,
    aim: &Aim,
) -> Result<Survey, ResourceError> {
    survey_of(spec, aws, client, cluster, aim, |_| true).await
}

/// [`survey`] of the nodes `keep` picks only: their instances and ENIs are all that is read
/// from AWS, so a roll waiting for a new node looks at the newcomers, not the whole cluster.
pub async fn survey_of(
    spec: &Spec,
    aws: &AwsClients,
    client: kube::Client,
    cluster: &str,
    aim: &Aim,
    keep: impl Fn(&Node) -> bool,
) -> Result<Survey, ResourceError> {
    let pod_cidrs = match aim {
        Aim::Onto => pod_cidrs(spec),
        Aim::Off(cidrs) => cidrs.clone(),
    };
    let sel = selection(spec, cluster);
    let in_spec = spec_nodegroups(spec, cluster);
    let nodes: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list nodes"))?
        .items
        .into_iter()
        .filter(|n| keep(n))
        .collect();
    let pods: Vec<Pod> = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list pods"))?
        .items;
    let eni_configs: BTreeSet<String> =
        Api::<DynamicObject>::all_with(client.clone(), &api_resource())
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            })
            // No ENIConfig CRD yet (a cluster before custom networking): none exists.
            .or_else(|e| match &e {
                kube::Error::Api(s) if s.code == 404 => Ok(BTreeSet::new()),
                _ => Err(e),
            })
            .map_err(kube_err("list eniconfigs"))?;
    let ids: Vec<String> = nodes
        .iter()
        .filter_map(provider_instance)
        .map(|(_, i)| i)
        .collect();
    let facts = instance_facts(aws, &ids, &pod_cidrs, aim).await?;
    let mut outside: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        let spec_ = p.spec.as_ref();
        if spec_.and_then(|s| s.host_network).unwrap_or(false) {
            continue;
        }
        let Some(node) = spec_.and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            continue;
        };
        let inside = ip
            .parse::<Ipv4Addr>()
            .is_ok_and(|a| pod_cidrs.iter().any(|n| n.contains(&a)));
        // Onto: the pods still outside; off: the pods still inside.
        if inside == matches!(aim, Aim::Off(_)) {
            *outside.entry(node).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let (zone, instance) = match provider_instance(node) {
            Some((z, i)) => (Some(z), Some(i)),
            None => (
                label(node, "topology.kubernetes.io/zone").map(String::from),
                None,
            ),
        };
        let tags = instance
            .as_ref()
            .and_then(|i| facts.tags.get(i))
            .cloned()
            .unwrap_or_default();
        let owner = if let Some(ng) =
            label(node, NODEGROUP_LABEL).or(tags.get(NODEGROUP_TAG).map(String::as_str))
        {
            Owner::Nodegroup(ng.to_string())
        } else if let Some(p) =
            label(node, KARPENTER_LABEL).or(tags.get(KARPENTER_LABEL).map(String::as_str))
        {
            Owner::Karpenter(p.to_string())
        } else if let Some(g) = tags.get(ASG_TAG) {
            Owner::AutoScaling(g.clone())
        } else {
            Owner::Unknown
        };
        let mut reasons = Vec::new();
        if let Some(n) = outside.get(&name) {
            reasons.push(match aim {
                Aim::Onto => format!("{n} pod(s) with addresses outside the pod subnets"),
                Aim::Off(_) => format!("{n} pod(s) with addresses in the pod subnets"),
            });
        }
        if let Some(r) = instance.as_ref().and_then(|i| facts.eni_reasons.get(i)) {
            reasons.extend(r.iter().cloned());
        }
        let wanted = if sel.annotation {
            node.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NODE_ANNOTATION))
                .cloned()
        } else {
            label(node, &sel.label).map(String::from)
        };
        match wanted {
            _ if matches!(aim, Aim::Off(_)) => {}
            Some(w) if eni_configs.contains(&w) => {}
            Some(w) => reasons.push(format!("no ENIConfig `{w}` for it to pick")),
            None => reasons.push(format!(
                "nothing to select an ENIConfig by ({})",
                if sel.annotation {
                    NODE_ANNOTATION
                } else {
                    sel.label.as_str()
                }
            )),
        }
        let in_spec = match &owner {
            Owner::Nodegroup(ng) => in_spec.get(ng).cloned(),
            _ => None,
        };
        out.push(ExistingNode {
            name,
            instance_id: instance,
            zone,
            owner,
            ready: is_ready(node),
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            reasons,
            in_spec,
        });
    }
    out.sort_by(|a, b| (&a.owner, &a.zone, &a.name).cmp(&(&b.owner, &b.zone, &b.name)));
    Ok(Survey {
        cluster: cluster.to_string(),
        nodes: out,
    })
}

/// The plan's section: each node to move, by owner.
pub fn render(s: &Survey) -> String {
    let groups = s.to_move();
    if groups.is_empty() {
        return String::new();
    }
    let count: usize = groups.values().map(Vec::len).sum();
    let mut out = format!(
        "Existing nodes of cluster {} whose pods keep node-subnet addresses ({count}):\n",
        s.cluster
    );
    for (owner, nodes) in &groups {
        out.push_str(&format!("  {owner}:\n"));
        for n in nodes {
            let what = n.reasons.first().map(String::as_str).unwrap_or_default();
            out.push_str(&format!(
                "    ~ {} ({}{}): {what}\n",
                n.name,
                n.instance_id.as_deref().unwrap_or("no instance"),
                n.zone
                    .as_deref()
                    .map(|z| format!(", {z}"))
                    .unwrap_or_default(),
            ));
        }
        let how = match nodes.iter().find_map(|n| n.in_spec.as_deref()) {
            Some(addr) => format!("eksnet apply --replace {addr} (it is in this spec)"),
            None if **owner == Owner::Unknown => {
                "nothing replaces them: move their pods and replace them by hand".into()
            }
            None => "eksnet roll SPEC moves them, after apply".into(),
        };
        out.push_str(&format!("    → {how}\n"));
    }
    out
}
