//! The reads of `init`, from AWS and the cluster's Kubernetes API, into [`ClusterFacts`].
//! Reads only; no verdict (that is `decide`). A read that fails is an error naming what was
//! being read, except those the spec can do without (a prefix list's entries, an Auto Scaling
//! group, the instance types' limits, which the embedded table knows): they become notes.

use super::{
    AddonInfo, AutoScalingGroupInfo, AwsNodeInfo, ClusterFacts, ClusterInfo, CniInfo,
    EniConfigInfo, NodeInfo, NodeOwner, NodegroupInfo, RouteInfo, RouteTableInfo, SubnetInfo,
    VpcInfo,
};
use crate::cloud::aws::{aws_error, AwsClients, AwsError};
use crate::cloud::kube::{KubeConnector, KubeError};
use crate::domain::cni::ADDON_NAME;
use crate::nodes::sizing::InstanceNetwork;
use aws_sdk_ec2::types::{Filter, VpcCidrBlockStateCode};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Why `init` could not read what it needs.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// DescribeCluster found no cluster of that name in the region.
    #[error("cluster `{cluster}` was not found in {region} (DescribeCluster): check the name, and the region (--region, AWS_REGION or the profile's)")]
    NoCluster { cluster: String, region: String },
    /// An AWS read failed.
    #[error("reading {what}: {source}")]
    Aws {
        what: String,
        #[source]
        source: AwsError,
    },
    /// A read of the cluster's Kubernetes API failed.
    #[error("reading {what} from the Kubernetes API of cluster `{cluster}`: {source}")]
    Kube {
        what: String,
        cluster: String,
        #[source]
        source: KubeError,
    },
    /// AWS answered without something the spec cannot be written without.
    #[error("{0}")]
    Incomplete(String),
}

fn aws(what: impl Into<String>) -> impl FnOnce(AwsError) -> ReadError {
    let what = what.into();
    move |source| ReadError::Aws { what, source }
}

/// DescribeCluster: the cluster's own facts (enough to refuse an IPv6 or Auto Mode cluster
/// before reading anything else). The connector remembers its endpoint for the Kubernetes
/// reads.
pub async fn cluster(
    aws_clients: &AwsClients,
    kube: &KubeConnector,
    name: &str,
) -> Result<ClusterInfo, ReadError> {
    let out = match aws_clients.eks.describe_cluster().name(name).send().await {
        Ok(o) => o,
        Err(e) => {
            let err = aws_error("DescribeCluster", e);
            if err.code == "ResourceNotFoundException" {
                return Err(ReadError::NoCluster {
                    cluster: name.to_string(),
                    region: aws_clients.region.clone(),
                });
            }
            return Err(aws(format!("cluster `{name}`"))(err));
        }
    };
    let Some(c) = out.cluster else {
        return Err(ReadError::NoCluster {
            cluster: name.to_string(),
            region: aws_clients.region.clone(),
        });
    };
    kube.remember(&c);
    let vpc = c.resources_vpc_config();
    let vpc_id = vpc
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| {
            ReadError::Incomplete(format!(
                "DescribeCluster returned no resourcesVpcConfig.vpcId for cluster `{name}`: init cannot tell which VPC it is in"
            ))
        })?
        .to_string();
    let mut subnet_ids: Vec<String> = vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default();
    subnet_ids.sort();
    let mut security_group_ids: Vec<String> = vpc
        .map(|v| v.security_group_ids().to_vec())
        .unwrap_or_default();
    security_group_ids.sort();
    Ok(ClusterInfo {
        name: c.name().unwrap_or(name).to_string(),
        version: c.version().map(String::from),
        status: c.status().map(|s| s.as_str().to_string()),
        vpc_id,
        subnet_ids,
        security_group_ids,
        cluster_security_group_id: vpc
            .and_then(|v| v.cluster_security_group_id())
            .map(String::from),
        ip_family: c
            .kubernetes_network_config()
            .and_then(|k| k.ip_family())
            .map(|f| f.as_str().to_ascii_lowercase())
            .unwrap_or_else(|| "ipv4".into()),
        auto_mode: c
            .compute_config()
            .and_then(|cc| cc.enabled())
            .unwrap_or(false),
    })
}

/// Everything else, once the cluster is known to be one `init` can work on.
pub async fn rest(
    aws_clients: &AwsClients,
    kube: &KubeConnector,
    cluster: ClusterInfo,
) -> Result<ClusterFacts, ReadError> {
    let name = cluster.name.clone();
    let vpc_id = cluster.vpc_id.clone();
    let client = kube
        .client(aws_clients, &name)
        .await
        .map_err(|source| ReadError::Kube {
            what: "the connection".into(),
            cluster: name.clone(),
            source,
        })?
        .ok_or_else(|| ReadError::NoCluster {
            cluster: name.clone(),
            region: aws_clients.region.clone(),
        })?;
    let (vpc, subnets, tables, addon, aws_node, eni_configs, sources) = tokio::try_join!(
        vpc_info(aws_clients, &vpc_id),
        subnets(aws_clients, &vpc_id),
        route_tables(aws_clients, &vpc_id),
        addon(aws_clients, &name),
        aws_node(client.clone(), &name),
        eni_configs(client.clone(), &name),
        node_sources(aws_clients, client.clone(), &name),
    )?;
    let mut notes = sources.notes;
    let route_tables = prefix_lists(aws_clients, tables, &mut notes).await;
    Ok(ClusterFacts {
        region: aws_clients.region.clone(),
        cluster,
        vpc,
        subnets,
        route_tables,
        cni: CniInfo { addon, aws_node },
        eni_configs,
        nodegroups: sources.nodegroups,
        auto_scaling_groups: sources.auto_scaling_groups,
        nodes: sources.nodes,
        instance_types: sources.instance_types,
        notes,
    })
}

/// What a cluster's nodes come from: its managed nodegroups, its nodes with their instances
/// and owners, the Auto Scaling groups of nodes outside nodegroups and the instance types'
/// limits. The part of [`ClusterFacts`] node sizing needs.
pub struct NodeSourceFacts {
    pub nodegroups: Vec<NodegroupInfo>,
    pub auto_scaling_groups: Vec<AutoScalingGroupInfo>,
    pub nodes: Vec<NodeInfo>,
    pub instance_types: BTreeMap<String, InstanceNetwork>,
    /// Subnet id → AZ of the groups' subnets (the nodegroups' and the Auto Scaling groups').
    pub subnet_azs: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

/// Reads [`NodeSourceFacts`]; `client` is the cluster's Kubernetes API.
pub async fn node_sources(
    aws_clients: &AwsClients,
    client: kube::Client,
    cluster: &str,
) -> Result<NodeSourceFacts, ReadError> {
    let (nodegroups, nodes) =
        tokio::try_join!(nodegroups(aws_clients, cluster), nodes(client, cluster))?;
    let mut notes = Vec::new();
    let nodes = with_instances(aws_clients, nodes, &nodegroups).await?;
    let group_names: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| match &n.owner {
            NodeOwner::AutoScalingGroup(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    let auto_scaling_groups = auto_scaling_groups(aws_clients, &group_names, &mut notes).await;
    let mut types: BTreeSet<String> = nodegroups
        .iter()
        .flat_map(|g| g.instance_types.iter().cloned())
        .collect();
    types.extend(nodes.iter().filter_map(|n| n.instance_type.clone()));
    let instance_types = instance_types(aws_clients, &types, &mut notes).await;
    let group_subnets: BTreeSet<String> = nodegroups
        .iter()
        .flat_map(|g| g.subnet_ids.iter())
        .chain(auto_scaling_groups.iter().flat_map(|g| g.subnet_ids.iter()))
        .cloned()
        .collect();
    let subnet_azs = subnet_azs(aws_clients, &group_subnets, &mut notes).await;
    Ok(NodeSourceFacts {
        nodegroups,
        auto_scaling_groups,
        nodes,
        instance_types,
        subnet_azs,
        notes,
    })
}

/// The AZs of some subnets, by id. A failed read is a note: the groups' AZs are then those
/// their nodes run in.
async fn subnet_azs(
    a: &AwsClients,
    ids: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return out;
    }
    // By filter, not by id: a subnet deleted since is then simply not found.
    let filter = Filter::builder()
        .name("subnet-id")
        .set_values(Some(ids.iter().cloned().collect()))
        .build();
    let mut pages = a
        .ec2
        .describe_subnets()
        .filters(filter)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => {
                for s in p.subnets() {
                    if let (Some(id), Some(az)) = (s.subnet_id(), s.availability_zone()) {
                        out.insert(id.to_string(), az.to_string());
                    }
                }
            }
            Err(e) => {
                notes.push(format!(
                    "the node groups' subnets could not be described ({}): their AZs are taken from where their nodes run",
                    aws_error("DescribeSubnets", e)
                ));
                break;
            }
        }
    }
    out
}

fn vpc_filter(vpc_id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc_id).build()
}

async fn vpc_info(a: &AwsClients, vpc_id: &str) -> Result<VpcInfo, ReadError> {
    let out = a
        .ec2
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .map_err(|e| aws(format!("VPC `{vpc_id}`"))(aws_error("DescribeVpcs", e)))?;
    let vpc = out.vpcs().first().ok_or_else(|| {
        ReadError::Incomplete(format!(
            "DescribeVpcs found no VPC `{vpc_id}`, the cluster's (resourcesVpcConfig.vpcId)"
        ))
    })?;
    let primary = vpc.cidr_block().and_then(|b| b.parse().ok());
    let mut blocks: Vec<ipnet::Ipv4Net> = vpc
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            matches!(
                a.cidr_block_state().and_then(|s| s.state()),
                Some(VpcCidrBlockStateCode::Associated | VpcCidrBlockStateCode::Associating)
            )
        })
        .filter_map(|a| a.cidr_block()?.parse().ok())
        .collect();
    if let Some(p) = primary {
        if !blocks.contains(&p) {
            blocks.push(p);
        }
    }
    blocks.sort();
    Ok(VpcInfo {
        id: vpc_id.to_string(),
        primary,
        blocks,
    })
}

async fn subnets(a: &AwsClients, vpc_id: &str) -> Result<BTreeMap<String, SubnetInfo>, ReadError> {
    let mut out = BTreeMap::new();
    let mut pages = a
        .ec2
        .describe_subnets()
        .filters(vpc_filter(vpc_id))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            aws(format!("the subnets of `{vpc_id}`"))(aws_error("DescribeSubnets", e))
        })?;
        for s in page.subnets() {
            let (Some(id), Some(az)) = (s.subnet_id(), s.availability_zone()) else {
                continue;
            };
            out.insert(
                id.to_string(),
                SubnetInfo {
                    id: id.to_string(),
                    availability_zone: az.to_string(),
                    cidr: s.cidr_block().and_then(|c| c.parse().ok()),
                },
            );
        }
    }
    Ok(out)
}

/// The route's target, whichever field holds it.
fn target(r: &aws_sdk_ec2::types::Route) -> String {
    [
        r.gateway_id(),
        r.nat_gateway_id(),
        r.transit_gateway_id(),
        r.vpc_peering_connection_id(),
        r.network_interface_id(),
        r.instance_id(),
        r.egress_only_internet_gateway_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
        r.core_network_arn(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or("unknown")
    .to_string()
}

/// Every route table of the VPC, with its explicit subnet associations and its routes (the
/// prefix lists' entries not read yet: see `prefix_lists`).
pub async fn route_tables(a: &AwsClients, vpc_id: &str) -> Result<Vec<RouteTableInfo>, ReadError> {
    let mut out = Vec::new();
    let mut pages = a
        .ec2
        .describe_route_tables()
        .filters(vpc_filter(vpc_id))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            aws(format!("the route tables of `{vpc_id}`"))(aws_error("DescribeRouteTables", e))
        })?;
        for t in page.route_tables() {
            let Some(id) = t.route_table_id() else {
                continue;
            };
            let mut subnet_ids: Vec<String> = t
                .associations()
                .iter()
                .filter_map(|a| a.subnet_id().map(String::from))
                .collect();
            subnet_ids.sort();
            let mut routes: Vec<RouteInfo> = t
                .routes()
                .iter()
                .filter_map(|r| {
                    let (destination, cidrs) =
                        match (r.destination_cidr_block(), r.destination_prefix_list_id()) {
                            (Some(c), _) => (c.to_string(), c.parse().ok().into_iter().collect()),
                            (None, Some(pl)) => (pl.to_string(), Vec::new()),
                            // An IPv6 route: nothing an IPv4 block can overlap.
                            (None, None) => return None,
                        };
                    Some(RouteInfo {
                        destination,
                        cidrs,
                        target: target(r),
                    })
                })
                .collect();
            routes.sort_by(|a, b| (&a.destination, &a.target).cmp(&(&b.destination, &b.target)));
            out.push(RouteTableInfo {
                id: id.to_string(),
                main: t.associations().iter().any(|a| a.main() == Some(true)),
                subnet_ids,
                routes,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The entries of the prefix lists routes point at. One that cannot be read is a note: its
/// ranges are then not avoided.
async fn prefix_lists(
    a: &AwsClients,
    mut tables: Vec<RouteTableInfo>,
    notes: &mut Vec<String>,
) -> Vec<RouteTableInfo> {
    let ids: BTreeSet<String> = tables
        .iter()
        .flat_map(|t| t.routes.iter())
        .filter(|r| r.destination.starts_with("pl-"))
        .map(|r| r.destination.clone())
        .collect();
    let reads = ids.iter().map(|id| async move {
        let mut cidrs = Vec::new();
        let mut pages = a
            .ec2
            .get_managed_prefix_list_entries()
            .prefix_list_id(id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("GetManagedPrefixListEntries", e))?;
            cidrs.extend(
                page.entries()
                    .iter()
                    .filter_map(|e| e.cidr()?.parse::<ipnet::Ipv4Net>().ok()),
            );
        }
        cidrs.sort();
        Ok::<_, AwsError>((id.clone(), cidrs))
    });
    let mut entries: BTreeMap<String, Vec<ipnet::Ipv4Net>> = BTreeMap::new();
    for got in futures::future::join_all(reads).await {
        match got {
            Ok((id, cidrs)) => {
                entries.insert(id, cidrs);
            }
            Err(e) => notes.push(format!(
                "a prefix list in the route tables could not be read ({e}): its ranges are not avoided by the pod block; check it by hand"
            )),
        }
    }
    for t in &mut tables {
        for r in &mut t.routes {
            if let Some(c) = entries.get(&r.destination) {
                r.cidrs = c.clone();
            }
        }
    }
    tables
}

/// The `vpc-cni` add-on, if the cluster has it.
async fn addon(a: &AwsClients, cluster: &str) -> Result<Option<AddonInfo>, ReadError> {
    let out = match a
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(ADDON_NAME)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            let err = aws_error("DescribeAddon", e);
            if err.code == "ResourceNotFoundException" {
                return Ok(None);
            }
            return Err(aws(format!("the `{ADDON_NAME}` add-on of `{cluster}`"))(
                err,
            ));
        }
    };
    let Some(addon) = out.addon else {
        return Ok(None);
    };
    let text = addon.configuration_values().unwrap_or("").trim();
    let configuration_values = if text.is_empty() {
        Map::new()
    } else {
        // EKS takes JSON or YAML.
        let parsed: Option<Value> = serde_json::from_str(text)
            .ok()
            .or_else(|| serde_yaml::from_str(text).ok());
        match parsed {
            Some(Value::Object(m)) => m,
            Some(Value::Null) => Map::new(),
            _ => {
                return Err(ReadError::Incomplete(format!(
                    "the `{ADDON_NAME}` add-on of `{cluster}` has configuration values that are neither a JSON nor a YAML object (DescribeAddon configurationValues): {text}"
                )))
            }
        }
    };
    Ok(Some(AddonInfo {
        version: addon.addon_version().map(String::from),
        configuration_values,
    }))
}

async fn nodegroups(a: &AwsClients, cluster: &str) -> Result<Vec<NodegroupInfo>, ReadError> {
    let mut names = Vec::new();
    let mut pages = a
        .eks
        .list_nodegroups()
        .cluster_name(cluster)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            aws(format!("the nodegroups of `{cluster}`"))(aws_error("ListNodegroups", e))
        })?;
        names.extend(page.nodegroups().iter().cloned());
    }
    let reads = names.iter().map(|ng| async move {
        a.eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(ng)
            .send()
            .await
            .map_err(|e| {
                aws(format!("nodegroup `{cluster}/{ng}`"))(aws_error("DescribeNodegroup", e))
            })
    });
    let mut out = Vec::new();
    for got in futures::future::try_join_all(reads).await? {
        let Some(g) = got.nodegroup else { continue };
        let Some(name) = g.nodegroup_name() else {
            continue;
        };
        let scaling = g.scaling_config();
        let size = |v: Option<i32>| v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let mut subnet_ids = g.subnets().to_vec();
        subnet_ids.sort();
        out.push(NodegroupInfo {
            name: name.to_string(),
            min_size: size(scaling.and_then(|s| s.min_size())),
            max_size: size(scaling.and_then(|s| s.max_size())),
            desired_size: size(scaling.and_then(|s| s.desired_size())),
            instance_types: g.instance_types().to_vec(),
            subnet_ids,
            launch_template: g.launch_template().map(|lt| {
                format!(
                    "{} @ {}",
                    lt.id().or(lt.name()).unwrap_or("?"),
                    lt.version().unwrap_or("$Default")
                )
            }),
            auto_scaling_groups: g
                .resources()
                .map(|r| {
                    r.auto_scaling_groups()
                        .iter()
                        .filter_map(|a| a.name().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn kube_err(what: &str, cluster: &str) -> impl FnOnce(kube::Error) -> ReadError {
    let (what, cluster) = (what.to_string(), cluster.to_string());
    move |e| ReadError::Kube {
        source: crate::cloud::kube::error("read", e),
        what,
        cluster,
    }
}

/// The `aws-node` DaemonSet's image and env, if it exists.
async fn aws_node(client: kube::Client, cluster: &str) -> Result<Option<AwsNodeInfo>, ReadError> {
    let api: Api<DaemonSet> = Api::namespaced(client, "kube-system");
    let Some(ds) = api
        .get_opt("aws-node")
        .await
        .map_err(kube_err("the DaemonSet kube-system/aws-node", cluster))?
    else {
        return Ok(None);
    };
    let containers = ds
        .spec
        .template
        .spec
        .map(|s| s.containers)
        .unwrap_or_default();
    let Some(c) = containers
        .iter()
        .find(|c| c.name == "aws-node")
        .or(containers.first())
    else {
        return Ok(Some(AwsNodeInfo::default()));
    };
    let env = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    Ok(Some(AwsNodeInfo {
        image: c.image.clone(),
        env,
    }))
}

async fn eni_configs(client: kube::Client, cluster: &str) -> Result<Vec<EniConfigInfo>, ReadError> {
    let api: Api<DynamicObject> =
        Api::all_with(client, &crate::resources::eni_config::api_resource());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        // No ENIConfig CRD (a cluster whose CNI never had custom networking set up): none.
        Err(e) if crate::cloud::kube::is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(kube_err("the ENIConfigs", cluster)(e)),
    };
    let mut out: Vec<EniConfigInfo> = list
        .items
        .iter()
        .filter_map(|o| {
            let name = o.metadata.name.clone()?;
            let spec = o.data.get("spec");
            let mut groups: Vec<String> = spec
                .and_then(|s| s.get("securityGroups"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            groups.sort();
            Some(EniConfigInfo {
                name,
                subnet_id: spec
                    .and_then(|s| s.get("subnet"))
                    .and_then(Value::as_str)
                    .map(String::from),
                security_group_ids: groups,
                managed_by: o
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("eksnet.io/state"))
                    .cloned(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The Nodes, a page at a time; owners from labels only (the instances' tags come next).
async fn nodes(client: kube::Client, cluster: &str) -> Result<Vec<NodeInfo>, ReadError> {
    let api: Api<Node> = Api::all(client);
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(kube_err("the nodes", cluster))?;
        for n in &page.items {
            let Some(name) = n.metadata.name.clone() else {
                continue;
            };
            let labels = n.metadata.labels.clone().unwrap_or_default();
            let label = |keys: &[&str]| keys.iter().find_map(|k| labels.get(*k).cloned());
            let provider = n.spec.as_ref().and_then(|s| s.provider_id.clone());
            // `aws:///ZONE/i-…`
            let instance_id = provider
                .as_deref()
                .and_then(|p| p.rsplit('/').next())
                .filter(|i| i.starts_with("i-"))
                .map(String::from);
            let owner = if label(&["eks.amazonaws.com/compute-type"]).as_deref() == Some("fargate")
            {
                NodeOwner::Fargate
            } else if let Some(g) = label(&["eks.amazonaws.com/nodegroup"]) {
                NodeOwner::ManagedNodegroup(g)
            } else if let Some(p) =
                label(&["karpenter.sh/nodepool", "karpenter.sh/provisioner-name"])
            {
                NodeOwner::Karpenter(p)
            } else {
                NodeOwner::Unknown
            };
            out.push(NodeInfo {
                name,
                zone: label(&[
                    "topology.kubernetes.io/zone",
                    "failure-domain.beta.kubernetes.io/zone",
                ]),
                instance_type: label(&[
                    "node.kubernetes.io/instance-type",
                    "beta.kubernetes.io/instance-type",
                ]),
                instance_id,
                subnet_id: None,
                owner,
            });
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The nodes' instances (DescribeInstances): their tags say who launched them
/// (`eks:nodegroup-name`, `karpenter.sh/nodepool`, `aws:autoscaling:groupName`), and their
/// subnet which route table the node uses.
async fn with_instances(
    a: &AwsClients,
    mut nodes: Vec<NodeInfo>,
    nodegroups: &[NodegroupInfo],
) -> Result<Vec<NodeInfo>, ReadError> {
    let ids: Vec<String> = nodes.iter().filter_map(|n| n.instance_id.clone()).collect();
    let mut found: BTreeMap<String, aws_sdk_ec2::types::Instance> = BTreeMap::new();
    // By filter, not by id: an instance already gone is then simply not found.
    for chunk in ids.chunks(200) {
        let filter = Filter::builder()
            .name("instance-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let mut pages = a
            .ec2
            .describe_instances()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws("the nodes' instances")(aws_error("DescribeInstances", e)))?;
            for r in page.reservations() {
                for i in r.instances() {
                    if let Some(id) = i.instance_id() {
                        found.insert(id.to_string(), i.clone());
                    }
                }
            }
        }
    }
    // A managed nodegroup's own Auto Scaling group is the nodegroup.
    let managed_groups: BTreeMap<&str, &str> = nodegroups
        .iter()
        .flat_map(|g| {
            g.auto_scaling_groups
                .iter()
                .map(move |a| (a.as_str(), g.name.as_str()))
        })
        .collect();
    for n in &mut nodes {
        let Some(i) = n.instance_id.as_ref().and_then(|id| found.get(id)) else {
            continue;
        };
        let tag = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .map(String::from)
        };
        let owner = if let Some(g) = tag("eks:nodegroup-name") {
            NodeOwner::ManagedNodegroup(g)
        } else if let Some(p) =
            tag("karpenter.sh/nodepool").or_else(|| tag("karpenter.sh/provisioner-name"))
        {
            NodeOwner::Karpenter(p)
        } else if let Some(g) = tag("aws:autoscaling:groupName") {
            match managed_groups.get(g.as_str()) {
                Some(ng) => NodeOwner::ManagedNodegroup((*ng).to_string()),
                None => NodeOwner::AutoScalingGroup(g),
            }
        } else {
            n.owner.clone()
        };
        n.owner = owner;
        n.subnet_id = i.subnet_id().map(String::from);
        if n.instance_type.is_none() {
            n.instance_type = i.instance_type().map(|t| t.as_str().to_string());
        }
        if n.zone.is_none() {
            n.zone = i
                .placement()
                .and_then(|p| p.availability_zone())
                .map(String::from);
        }
    }
    Ok(nodes)
}

/// Auto Scaling groups of nodes outside managed nodegroups, for their max size. One that
/// cannot be read is a note: its nodes are then counted as they are.
async fn auto_scaling_groups(
    a: &AwsClients,
    names: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> Vec<AutoScalingGroupInfo> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let list: Vec<String> = names.iter().cloned().collect();
    for chunk in list.chunks(50) {
        let mut pages = a
            .autoscaling
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(p) => {
                    for g in p.auto_scaling_groups() {
                        let Some(name) = g.auto_scaling_group_name() else {
                            continue;
                        };
                        let mut azs = g.availability_zones().to_vec();
                        azs.sort();
                        let mut subnet_ids: Vec<String> = g
                            .vpc_zone_identifier()
                            .unwrap_or("")
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect();
                        subnet_ids.sort();
                        out.push(AutoScalingGroupInfo {
                            name: name.to_string(),
                            max_size: g
                                .max_size()
                                .and_then(|n| u32::try_from(n).ok())
                                .unwrap_or(0),
                            availability_zones: azs,
                            subnet_ids,
                        });
                    }
                }
                Err(e) => {
                    notes.push(format!(
                        "the Auto Scaling groups {} could not be read ({}): their nodes are counted as they are now, not at their max size",
                        chunk.join(", "),
                        aws_error("DescribeAutoScalingGroups", e)
                    ));
                    break;
                }
            }
        }
    }
    for n in names {
        if !out.iter().any(|g| &g.name == n) {
            notes.push(format!(
                "the Auto Scaling group `{n}` of some nodes was not found (DescribeAutoScalingGroups): its nodes are counted as they are now"
            ));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The instance types' network limits from EC2; the embedded table stands in for a type EC2
/// did not describe.
async fn instance_types(
    a: &AwsClients,
    types: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> BTreeMap<String, InstanceNetwork> {
    let mut out = BTreeMap::new();
    let list: Vec<String> = types.iter().cloned().collect();
    for chunk in list.chunks(100) {
        let got = a
            .ec2
            .describe_instance_types()
            .set_instance_types(Some(
                chunk
                    .iter()
                    .map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .send()
            .await;
        match got {
            Ok(o) => {
                for n in o
                    .instance_types()
                    .iter()
                    .filter_map(InstanceNetwork::from_ec2)
                {
                    out.insert(n.instance_type.clone(), n);
                }
            }
            Err(e) => notes.push(format!(
                "the instance types {} could not be described ({}): eksnet's own table of EC2's limits is used",
                chunk.join(", "),
                aws_error("DescribeInstanceTypes", e)
            )),
        }
    }
    out
}
