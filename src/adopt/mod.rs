//! `eksnet init`: a spec that turns custom networking on for a cluster that already runs
//! (made by Terraform, eksctl or the console). Three steps, one file each:
//!
//! - `read`: every fact the spec depends on, read once from AWS and the cluster's Kubernetes
//!   API into a [`ClusterFacts`] (the cluster, its VPC, subnets and route tables, the VPC
//!   CNI, ENIConfigs, nodegroups, Auto Scaling groups, nodes and their instances). It judges
//!   nothing.
//! - `decide` (pure): whether the cluster can take custom networking at all, and if so a
//!   [`decide::Proposal`]: the secondary block (from 100.64.0.0/10, clear of the VPC's
//!   blocks and route destinations, allowed by AWS's association rules), one pod subnet per
//!   AZ the nodes use (sized with `nodes::sizing`, the arithmetic `plan` and `capacity` use),
//!   the CNI settings on the path the cluster uses, what is already in place, and routing.
//! - `render` (pure): the spec's text, commented, deterministic.
//!
//! The facts are plain values so that `decide` and `render` are tested without a server. The
//! layer stands on `base`, `cloud`, `resources` (the kinds' names and constants), `domain`
//! and `nodes::sizing`; it never reaches the planner, the engine, the executor or the CLI.

pub mod decide;
#[cfg(test)]
pub(crate) mod fixture;
pub mod read;
pub mod render;

// Route tables as read are the domain's, which the plan reads too.
pub use crate::domain::routing::{RouteInfo, RouteTableInfo};
use crate::nodes::sizing::InstanceNetwork;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Node sizing's reads for a cluster the spec only reads (`existing = true`): the sources of
/// its nodes, into `reads.outside` and their instance types into `reads.types`. A read that
/// fails is one of `reads.problems` (the plan goes on without those nodes); a cluster not
/// found has no nodes to count.
pub async fn sizing_reads(
    ctx: &crate::resources::Ctx,
    cluster: &str,
    reads: &mut crate::nodes::sizing::SizingReads,
) {
    let found =
        async {
            let Some(client) = ctx.kube.client(&ctx.aws, cluster).await.map_err(|source| {
                read::ReadError::Kube {
                    what: "the connection".into(),
                    cluster: cluster.to_string(),
                    source,
                }
            })?
            else {
                return Ok(None);
            };
            read::node_sources(&ctx.aws, client, cluster)
                .await
                .map(Some)
        };
    match found.await {
        Ok(Some(f)) => {
            let facts = ClusterFacts {
                subnets: f
                    .subnet_azs
                    .iter()
                    .map(|(id, az)| {
                        (
                            id.clone(),
                            SubnetInfo {
                                id: id.clone(),
                                availability_zone: az.clone(),
                                cidr: None,
                            },
                        )
                    })
                    .collect(),
                nodegroups: f.nodegroups,
                auto_scaling_groups: f.auto_scaling_groups,
                nodes: f.nodes,
                instance_types: f.instance_types,
                ..ClusterFacts::default()
            };
            let (groups, types) = decide::outside_groups(&facts);
            for (name, n) in types {
                reads.types.entry(name).or_insert(n);
            }
            reads.outside.insert(cluster.to_string(), groups);
            reads.problems.extend(
                f.notes
                    .into_iter()
                    .map(|n| format!("cluster `{cluster}`: {n}")),
            );
        }
        Ok(None) => {}
        Err(e) => reads.problems.push(format!(
            "cluster `{cluster}`: the sources of its nodes could not be read ({e}); the pod subnets' room is checked against the spec's nodegroups only"
        )),
    }
}

/// The route tables of these VPCs, for what the plan says of the pod subnets' routes (the
/// reads `init` makes of its cluster's VPC), side by side. A VPC whose tables cannot be read
/// is one of `problems`: the plan goes on without them.
pub async fn routing_reads(
    ctx: &crate::resources::Ctx,
    vpcs: &std::collections::BTreeSet<String>,
) -> crate::domain::routing::RoutingReads {
    let reads = vpcs
        .iter()
        .map(|vpc| async move { (vpc.clone(), read::route_tables(&ctx.aws, vpc).await) });
    let mut out = crate::domain::routing::RoutingReads::default();
    for (vpc, found) in futures::future::join_all(reads).await {
        match found {
            Ok(tables) => {
                out.tables.insert(vpc, tables);
            }
            Err(e) => out.problems.push(format!(
                "the route tables of {vpc} could not be read ({e}): the plan does not say which routes the pod subnets there have"
            )),
        }
    }
    out
}

/// Everything `init` read about one cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterFacts {
    pub region: String,
    pub cluster: ClusterInfo,
    pub vpc: VpcInfo,
    /// Every subnet of the VPC, by id.
    pub subnets: BTreeMap<String, SubnetInfo>,
    pub route_tables: Vec<RouteTableInfo>,
    pub cni: CniInfo,
    /// The ENIConfigs that exist in the cluster, by name.
    pub eni_configs: Vec<EniConfigInfo>,
    /// The managed nodegroups (ListNodegroups, DescribeNodegroup).
    pub nodegroups: Vec<NodegroupInfo>,
    /// Auto Scaling groups of nodes that are in no managed nodegroup.
    pub auto_scaling_groups: Vec<AutoScalingGroupInfo>,
    pub nodes: Vec<NodeInfo>,
    /// Network limits of every instance type the node sources use.
    pub instance_types: BTreeMap<String, InstanceNetwork>,
    /// What could not be read and was left out, said to the user.
    pub notes: Vec<String>,
}

/// DescribeCluster, the parts `init` needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub version: Option<String>,
    pub status: Option<String>,
    pub vpc_id: String,
    /// The cluster (control plane) subnets.
    pub subnet_ids: Vec<String>,
    /// The security groups given at create (`securityGroupIds`).
    pub security_group_ids: Vec<String>,
    /// The security group EKS made for the cluster (`clusterSecurityGroupId`).
    pub cluster_security_group_id: Option<String>,
    /// `kubernetesNetworkConfig.ipFamily`: `ipv4` or `ipv6`.
    pub ip_family: String,
    /// EKS Auto Mode: `computeConfig.enabled`.
    pub auto_mode: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VpcInfo {
    pub id: String,
    pub primary: Option<Ipv4Net>,
    /// Every IPv4 block associated or being associated, the primary one included.
    pub blocks: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    pub id: String,
    pub availability_zone: String,
    pub cidr: Option<Ipv4Net>,
}

/// The cluster's VPC CNI: the `vpc-cni` add-on, and the `aws-node` DaemonSet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CniInfo {
    pub addon: Option<AddonInfo>,
    pub aws_node: Option<AwsNodeInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddonInfo {
    pub version: Option<String>,
    /// `configurationValues`, parsed (an empty map when none are set).
    pub configuration_values: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AwsNodeInfo {
    pub image: Option<String>,
    /// The `aws-node` container's env entries with a value (`valueFrom` ones are not read).
    pub env: BTreeMap<String, String>,
}

impl CniInfo {
    /// The environment the CNI runs with: the add-on's `configuration_values.env` over the
    /// DaemonSet's (what EKS applies), or the DaemonSet's alone.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = self
            .aws_node
            .as_ref()
            .map(|a| a.env.clone())
            .unwrap_or_default();
        if let Some(Value::Object(m)) = self
            .addon
            .as_ref()
            .and_then(|a| a.configuration_values.get("env"))
        {
            for (k, v) in m {
                if let Some(s) = v.as_str() {
                    env.insert(k.clone(), s.to_string());
                }
            }
        }
        env
    }

    /// The CNI's version: the add-on's, else the image tag of `aws-node`.
    pub fn version(&self) -> Option<String> {
        self.addon
            .as_ref()
            .and_then(|a| a.version.clone())
            .or_else(|| {
                let image = self.aws_node.as_ref()?.image.as_ref()?;
                Some(image.rsplit_once(':')?.1.to_string())
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniConfigInfo {
    pub name: String,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Its `eksnet.io/state` annotation: made by some eksnet state.
    pub managed_by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodegroupInfo {
    pub name: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_size: u32,
    /// Empty when the launch template names the type.
    pub instance_types: Vec<String>,
    pub subnet_ids: Vec<String>,
    /// `id or name @ version` of its launch template, if it has one.
    pub launch_template: Option<String>,
    /// Its Auto Scaling groups (`resources.autoScalingGroups`).
    pub auto_scaling_groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AutoScalingGroupInfo {
    pub name: String,
    pub max_size: u32,
    pub availability_zones: Vec<String>,
    /// `VPCZoneIdentifier`, split.
    pub subnet_ids: Vec<String>,
}

/// Who launches a node and brings it back when it goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum NodeOwner {
    /// An EKS managed nodegroup (`eks:nodegroup-name`).
    ManagedNodegroup(String),
    /// An Auto Scaling group that is no managed nodegroup's (`aws:autoscaling:groupName`).
    AutoScalingGroup(String),
    /// Karpenter (`karpenter.sh/nodepool`), by node pool.
    Karpenter(String),
    /// A Fargate node: custom networking does not apply to it.
    Fargate,
    /// No tag or label says.
    Unknown,
}

impl NodeOwner {
    pub fn describe(&self) -> String {
        match self {
            NodeOwner::ManagedNodegroup(n) => format!("managed nodegroup `{n}`"),
            NodeOwner::AutoScalingGroup(n) => format!("Auto Scaling group `{n}`"),
            NodeOwner::Karpenter(n) => format!("Karpenter node pool `{n}`"),
            NodeOwner::Fargate => "Fargate".into(),
            NodeOwner::Unknown => {
                "unknown owner (no nodegroup, Auto Scaling or Karpenter tag)".into()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub zone: Option<String>,
    pub instance_type: Option<String>,
    pub instance_id: Option<String>,
    /// The subnet of its instance (its primary ENI).
    pub subnet_id: Option<String>,
    pub owner: NodeOwner,
}
