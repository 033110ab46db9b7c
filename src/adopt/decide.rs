//! What `init` writes, decided from the facts alone (no I/O): whether the cluster can take
//! custom networking, the secondary block, the pod subnets and their sizes, the CNI settings
//! on the path the cluster uses, what is already in place, and what the routing means for
//! the pods. Every number that ends up in the spec is in the [`Proposal`], so the spec's
//! comments and `--json` say the same thing.

use super::{ClusterFacts, ClusterInfo, EniConfigInfo, NodeOwner, RouteInfo};
use crate::base::instance_types;
use crate::domain::cni::{self, CUSTOM_NETWORK_ENV, DEFAULT_LABEL, LABEL_DEF_ENV};
use crate::domain::network::association_refusal;
use crate::nodes::sizing::{self, CniMode, InstanceNetwork, NodegroupDemand, OutsideGroup};
use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Where pod blocks come from: the shared address space of RFC 6598, which AWS lets any VPC
/// add whatever its primary block (VPC user guide, IPv4 CIDR block association restrictions)
/// and which is not routed outside the VPC unless someone routes it.
pub const POD_RANGE: &str = "100.64.0.0/10";
/// The largest block AWS associates (and so the first one tried).
const LARGEST_BLOCK: u8 = 16;
/// The smallest subnet AWS makes.
const SMALLEST_SUBNET: u8 = 28;
/// The pod subnet size written when the nodes need less: 8,187 addresses per AZ, room for
/// the groups to grow and for a rolling replacement, eight AZs in a /16.
pub const PREFERRED_SUBNET: u8 = 19;
/// What the sizing adds on top of the most the node sources can take: a rolling replacement
/// runs new nodes beside the old ones, and groups get raised.
pub const HEADROOM_PERCENT: u64 = 50;
/// AWS keeps five addresses of every subnet.
const AWS_RESERVED: u64 = 5;
/// "IPv4 CIDR blocks per VPC", the primary one included: AWS's default quota.
pub const DEFAULT_BLOCK_QUOTA: usize = 5;
/// What EKS launches when neither the nodegroup nor its launch template names a type.
const EKS_DEFAULT_INSTANCE_TYPE: &str = "t3.medium";

/// Why a cluster cannot take custom networking the way `init` writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// IPv6 pods get addresses from the node subnet's IPv6 block; ENIConfigs do not apply.
    #[error("cluster `{cluster}` is an IPv6 cluster (kubernetesNetworkConfig.ipFamily = ipv6): custom networking (pod subnets and ENIConfigs) cannot be used with IPv6 (EKS user guide, custom networking), and IPv6 already keeps pods from using up the node subnets' addresses; nothing to write")]
    Ipv6 { cluster: String },
    /// Auto Mode's nodes take their pod subnets from the NodeClass.
    #[error("cluster `{cluster}` runs EKS Auto Mode (computeConfig.enabled = true): EKS manages its nodes' networking, which reads no ENIConfig and no VPC CNI settings; put pods in other subnets with the NodeClass's `podSubnetSelectorTerms` (and `podSecurityGroupSelectorTerms`) instead")]
    AutoMode { cluster: String },
    /// No new block can be associated.
    #[error("VPC `{vpc}` already has {count} IPv4 CIDR blocks ({blocks}), the default quota of AWS (\"IPv4 CIDR blocks per VPC\", the primary block included): a block for the pods would be refused; disassociate a block that is no longer used, or have the quota raised in Service Quotas (up to 50) and write the `cidr_block` by hand")]
    BlockQuota {
        vpc: String,
        count: usize,
        blocks: String,
    },
    /// Everything in 100.64.0.0/10 that could hold the pod subnets is taken.
    #[error("no block in {POD_RANGE} can hold the pod subnets ({zones} AZs of at least /{subnet} each): every candidate overlaps what VPC `{vpc}` already knows ({taken}); free a range, or write the `cidr_block` and subnets by hand from another range AWS allows")]
    NoRoom {
        vpc: String,
        zones: usize,
        subnet: u8,
        taken: String,
    },
    /// One AZ needs more than the largest subnet holds.
    #[error("{az}: the nodes that can land there need {needed} pod addresses with headroom, more than the largest subnet AWS makes (/16, 65,531 addresses); enable prefix delegation or spread the nodes over more AZs, then run init again")]
    TooLarge { az: String, needed: u64 },
    /// Neither the add-on nor the DaemonSet.
    #[error("cluster `{cluster}` has no VPC CNI: no `vpc-cni` add-on and no `kube-system/aws-node` DaemonSet; install the VPC CNI (the `vpc-cni` add-on) first")]
    NoCni { cluster: String },
}

/// Refusals that need only DescribeCluster: checked before anything else is read.
pub fn refuse_cluster(c: &ClusterInfo) -> Result<(), Refusal> {
    if c.ip_family.eq_ignore_ascii_case("ipv6") {
        return Err(Refusal::Ipv6 {
            cluster: c.name.clone(),
        });
    }
    if c.auto_mode {
        return Err(Refusal::AutoMode {
            cluster: c.name.clone(),
        });
    }
    Ok(())
}

/// Everything the spec says, with the numbers behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub region: String,
    pub cluster: String,
    pub cluster_version: Option<String>,
    pub vpc_id: String,
    pub vpc_primary: Option<Ipv4Net>,
    pub vpc_blocks: Vec<Ipv4Net>,
    pub cni: CniPlan,
    /// The pods' security groups on the ENIConfigs.
    pub security_groups: SecurityGroups,
    /// `None` when every AZ already has its ENIConfig.
    pub block: Option<BlockPlan>,
    /// One per AZ the nodes use, sorted.
    pub zones: Vec<ZonePlan>,
    /// ENIConfigs that exist, written as they are.
    pub existing_eni_configs: Vec<EniConfigInfo>,
    /// The node sources, by owner: never declared, only listed.
    pub sources: Vec<NodeSource>,
    pub routing: Routing,
    /// The node subnets' own route tables the new pod subnets join, one per table.
    pub route_tables: Vec<PodRouteTable>,
    /// Said on stderr and in the spec.
    pub warnings: Vec<String>,
}

/// A route table the node subnets of some AZs use explicitly, written as an existing table
/// that the new pod subnets of those AZs are associated with: pods then reach what the
/// nodes reach (a new subnet would otherwise use the VPC's main table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRouteTable {
    /// The table's id (`rtb-…`).
    pub id: String,
    /// The AZs whose new pod subnets join it, sorted.
    pub azs: Vec<String>,
}

impl PodRouteTable {
    /// The spec's name: after its first AZ (one AZ has one node table here).
    pub fn name(&self) -> String {
        format!(
            "nodes-{}",
            self.azs.first().map(String::as_str).unwrap_or("main")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CniPath {
    /// The self-managed `aws-node` DaemonSet: `[aws_node.main]`.
    AwsNode,
    /// The `vpc-cni` EKS add-on: `[addon.vpc_cni]` with `existing = true`.
    Addon,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "label", rename_all = "snake_case")]
pub enum Selection {
    /// Nodes pick the ENIConfig named by their value of this label.
    Label(String),
    /// Nodes pick it by their `k8s.amazonaws.com/eniConfig` annotation.
    Annotation,
}

#[derive(Debug, Clone, Serialize)]
pub struct CniPlan {
    pub path: CniPath,
    /// The CNI's version (add-on version or `aws-node` image tag).
    pub version: Option<String>,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG` is already `true`.
    pub already_on: bool,
    pub selection: Selection,
    /// The add-on's configuration values kept as they are, without the two entries the
    /// fields set (empty on the `aws_node` path).
    pub configuration_values: Map<String, Value>,
    /// The CNI's settings once custom networking is on, as the sizing counts with them.
    pub mode: CniMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "ids", rename_all = "snake_case")]
pub enum SecurityGroups {
    /// The ENIConfig's default: the cluster security group (this id).
    Cluster(String),
    /// AWS returned no cluster security group: the cluster's own groups, written out.
    Explicit(Vec<String>),
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockPlan {
    pub cidr: Ipv4Net,
    /// What it had to stay clear of inside 100.64.0.0/10, with why.
    pub avoided: Vec<Taken>,
    /// The prefix length of each pod subnet in it.
    pub subnet_len: u8,
}

/// A range the VPC already knows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Taken {
    pub cidr: Ipv4Net,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ZonePlan {
    pub az: String,
    /// The most nodes that can land in the AZ (each group's max size spread evenly over its
    /// AZs, rounded up; current nodes for sources with no known maximum).
    pub nodes: u64,
    /// The addresses those nodes can take from a pod subnet: their pods at max pods, the
    /// CNI's warm pool and the ENIs' own addresses (`nodes::sizing::node_demand`).
    pub demand: u64,
    /// `demand` plus the headroom.
    pub needed: u64,
    /// The smallest subnet that holds `needed`.
    pub needed_len: u8,
    /// (source, nodes here, addresses here)
    pub groups: Vec<(String, u64, u64)>,
    /// The new pod subnet; `None` when an ENIConfig for the AZ exists already.
    pub subnet: Option<Ipv4Net>,
    /// The existing ENIConfig named after the AZ.
    pub existing_eni_config: Option<String>,
    /// The route table the node subnets of this AZ use, when it is one and not the main one:
    /// the table to associate the pod subnet with.
    pub node_route_table: Option<String>,
}

impl ZonePlan {
    /// The spec's name of its pod subnet.
    pub fn subnet_name(&self) -> String {
        format!("pods-{}", self.az)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSource {
    pub owner: NodeOwner,
    /// Its nodes now, by name.
    pub nodes: Vec<String>,
    /// The most nodes it may have (a group's max size); `None`: not known here, sized for
    /// its current nodes.
    pub max_size: Option<u32>,
    pub azs: Vec<String>,
    pub instance_types: Vec<String>,
    /// Max pods per node under custom networking (`nodes::sizing`), when its types are known.
    pub pods_per_node: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Routing {
    /// The VPC's main route table: what a new subnet uses until associated with another.
    pub main_table: Option<String>,
    pub node_subnets: Vec<SubnetRoute>,
    /// Routes of the node subnets' tables that the main table lacks: destinations nodes
    /// reach and pods in the new subnets would not.
    pub missing_in_main: Vec<MissingRoute>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubnetRoute {
    pub subnet_id: String,
    pub az: Option<String>,
    pub table: Option<String>,
    /// Associated with the table explicitly (else the main table, implicitly).
    pub explicit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingRoute {
    pub route: RouteInfo,
    /// The node subnets' tables that have it.
    pub tables: Vec<String>,
}

/// The whole decision.
pub fn decide(facts: &ClusterFacts) -> Result<Proposal, Refusal> {
    refuse_cluster(&facts.cluster)?;
    let mut warnings = facts.notes.clone();
    let cni = cni_plan(facts, &mut warnings)?;
    let security_groups = match &facts.cluster.cluster_security_group_id {
        Some(sg) => SecurityGroups::Cluster(sg.clone()),
        None => {
            warnings.push(format!(
                "DescribeCluster returned no cluster security group for `{}`: the ENIConfigs name the cluster's own security groups ({}) instead",
                facts.cluster.name,
                list_or_none(&facts.cluster.security_group_ids)
            ));
            SecurityGroups::Explicit(sorted(facts.cluster.security_group_ids.clone()))
        }
    };
    let sources = node_sources(facts, &cni.mode, &mut warnings);
    let routing = routing(facts);
    let mut zones = zone_demands(facts, &sources, &cni.mode, &mut warnings)?;
    for z in &mut zones {
        z.node_route_table = zone_route_table(&routing, &z.az);
    }
    // An ENIConfig named after an AZ already gives its nodes a pod subnet: kept as it is.
    let existing = sorted_eni_configs(&facts.eni_configs);
    for z in &mut zones {
        if existing.iter().any(|e| e.name == z.az) {
            z.existing_eni_config = Some(z.az.clone());
        }
    }
    let open: Vec<usize> = (0..zones.len())
        .filter(|i| zones[*i].existing_eni_config.is_none())
        .collect();
    let block = if open.is_empty() {
        None
    } else {
        let live = facts.vpc.blocks.len();
        if live >= DEFAULT_BLOCK_QUOTA {
            return Err(Refusal::BlockQuota {
                vpc: facts.vpc.id.clone(),
                count: live,
                blocks: facts
                    .vpc
                    .blocks
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let taken = taken_ranges(facts);
        let need_len = open
            .iter()
            .map(|i| zones[*i].needed_len)
            .min()
            .unwrap_or(SMALLEST_SUBNET);
        let plan = choose_block(facts, &taken, open.len(), need_len)?;
        let mut subnets = plan.cidr.subnets(plan.subnet_len).into_iter().flatten();
        for i in &open {
            zones[*i].subnet = subnets.next();
        }
        Some(plan)
    };
    let route_tables = pod_route_tables(&zones);
    // A pod subnet left on the main table while its AZ's nodes use tables of their own
    // (several: none to join); one whose nodes use the main table reaches what they reach.
    let on_main: Vec<&ZonePlan> = zones
        .iter()
        .filter(|z| z.subnet.is_some() && z.node_route_table.is_none())
        .filter(|z| {
            routing
                .node_subnets
                .iter()
                .any(|s| s.explicit && s.az.as_deref() == Some(z.az.as_str()))
        })
        .collect();
    if !routing.missing_in_main.is_empty() && !on_main.is_empty() {
        warnings.push(routing_warning(&routing, &on_main));
    }
    Ok(Proposal {
        region: facts.region.clone(),
        cluster: facts.cluster.name.clone(),
        cluster_version: facts.cluster.version.clone(),
        vpc_id: facts.vpc.id.clone(),
        vpc_primary: facts.vpc.primary,
        vpc_blocks: facts.vpc.blocks.clone(),
        cni,
        security_groups,
        block,
        zones,
        existing_eni_configs: existing,
        sources,
        routing,
        route_tables,
        warnings,
    })
}

/// The node route tables the new pod subnets join: each zone with a new subnet whose node
/// subnets use one table of their own, grouped by table.
fn pod_route_tables(zones: &[ZonePlan]) -> Vec<PodRouteTable> {
    let mut by_table: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for z in zones.iter().filter(|z| z.subnet.is_some()) {
        if let Some(t) = &z.node_route_table {
            by_table.entry(t).or_default().push(z.az.clone());
        }
    }
    let mut out: Vec<PodRouteTable> = by_table
        .into_iter()
        .map(|(id, mut azs)| {
            azs.sort();
            PodRouteTable {
                id: id.to_string(),
                azs,
            }
        })
        .collect();
    out.sort_by(|a, b| a.azs.cmp(&b.azs));
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn sorted_eni_configs(found: &[EniConfigInfo]) -> Vec<EniConfigInfo> {
    let mut v = found.to_vec();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    for e in &mut v {
        e.security_group_ids.sort();
    }
    v
}

/// The CNI path the cluster uses, its settings kept, custom networking turned on.
fn cni_plan(facts: &ClusterFacts, warnings: &mut Vec<String>) -> Result<CniPlan, Refusal> {
    let path = match (&facts.cni.addon, &facts.cni.aws_node) {
        (Some(_), _) => CniPath::Addon,
        (None, Some(_)) => CniPath::AwsNode,
        (None, None) => {
            return Err(Refusal::NoCni {
                cluster: facts.cluster.name.clone(),
            })
        }
    };
    let env = facts.cni.env();
    let already_on = is_true(env.get(CUSTOM_NETWORK_ENV).map(String::as_str));
    let label = env.get(LABEL_DEF_ENV).filter(|l| !l.trim().is_empty());
    let selection = match (label, already_on) {
        (Some(l), _) => Selection::Label(l.clone()),
        // On already, with no label: the CNI goes by the node annotation (then the
        // ENIConfig `default`), and that is kept.
        (None, true) => Selection::Annotation,
        (None, false) => Selection::Label(DEFAULT_LABEL.to_string()),
    };
    match &selection {
        Selection::Label(l) if !cni::is_zone_label(l) => warnings.push(format!(
            "the VPC CNI picks ENIConfigs by the node label `{l}` ({LABEL_DEF_ENV}), kept as it is: nodes select the ENIConfig named by their value of that label, but the new ENIConfigs are named after AZs; rename them (`name`) to the label's values, or set `eni_config_label = \"{DEFAULT_LABEL}\"`"
        )),
        Selection::Annotation => warnings.push(format!(
            "custom networking is already on with no {LABEL_DEF_ENV}: nodes select their ENIConfig by the annotation `k8s.amazonaws.com/eniConfig` (or use the ENIConfig `default`), kept as it is; the new ENIConfigs, named after AZs, are only used by nodes annotated with those names (`annotate_nodes`), or set `eni_config_selection = \"label\"`"
        )),
        Selection::Label(_) => {}
    }
    let version = facts.cni.version();
    if let Some(v) = &version {
        if crate::cloud::kube::cni_version(v).is_some_and(|got| got < crate::cloud::kube::MIN_CNI) {
            warnings.push(format!(
                "the VPC CNI is {v}: custom networking needs v1.6.3-eksbuild.2 or later, and `eksnet plan` refuses an older one; upgrade the VPC CNI first"
            ));
        }
    }
    let mut configuration_values = Map::new();
    if path == CniPath::Addon {
        configuration_values = facts
            .cni
            .addon
            .as_ref()
            .map(|a| a.configuration_values.clone())
            .unwrap_or_default();
        // The two entries are the fields' (`custom_network`, `eni_config_label`): writing them
        // in `configuration_values.env` as well is refused by validation.
        let mut drop_env = false;
        if let Some(Value::Object(env)) = configuration_values.get_mut("env") {
            env.remove(CUSTOM_NETWORK_ENV);
            env.remove(LABEL_DEF_ENV);
            drop_env = env.is_empty();
        }
        if drop_env {
            configuration_values.remove("env");
        }
    }
    let mut on = env.clone();
    on.insert(CUSTOM_NETWORK_ENV.to_string(), "true".into());
    Ok(CniPlan {
        path,
        version,
        already_on,
        selection,
        configuration_values,
        mode: CniMode::from_env(&on),
    })
}

/// Go's `strconv.ParseBool` true values, as the CNI reads its flags.
fn is_true(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "t" | "T" | "TRUE" | "true" | "True"))
}

/// The network limits of a type: as EC2 described it, else the embedded table.
fn network(facts: &ClusterFacts, instance_type: &str) -> Option<InstanceNetwork> {
    if let Some(n) = facts.instance_types.get(instance_type) {
        return Some(n.clone());
    }
    instance_types::lookup(instance_type).map(|f| InstanceNetwork {
        instance_type: instance_type.to_string(),
        max_enis: f.max_enis,
        ipv4_per_eni: f.ipv4_per_eni,
        vcpus: f.vcpus,
        nitro: f.nitro,
    })
}

/// Every source of nodes, sorted by owner, with the most nodes it may have.
fn node_sources(
    facts: &ClusterFacts,
    mode: &CniMode,
    warnings: &mut Vec<String>,
) -> Vec<NodeSource> {
    let mut by_owner: BTreeMap<NodeOwner, Vec<&super::NodeInfo>> = BTreeMap::new();
    for n in &facts.nodes {
        by_owner.entry(n.owner.clone()).or_default().push(n);
    }
    for ng in &facts.nodegroups {
        by_owner
            .entry(NodeOwner::ManagedNodegroup(ng.name.clone()))
            .or_default();
    }
    let az_of = |id: &String| facts.subnets.get(id).map(|s| s.availability_zone.clone());
    let mut out = Vec::new();
    for (owner, nodes) in by_owner {
        let node_types: BTreeSet<String> = nodes
            .iter()
            .filter_map(|n| n.instance_type.clone())
            .collect();
        let node_azs: BTreeSet<String> = nodes.iter().filter_map(|n| n.zone.clone()).collect();
        let (max_size, azs, types): (Option<u32>, BTreeSet<String>, BTreeSet<String>) = match &owner
        {
            NodeOwner::ManagedNodegroup(name) => {
                match facts.nodegroups.iter().find(|g| &g.name == name) {
                    Some(g) => {
                        let mut azs: BTreeSet<String> =
                            g.subnet_ids.iter().filter_map(az_of).collect();
                        if azs.is_empty() {
                            azs = node_azs.clone();
                        }
                        let mut types: BTreeSet<String> =
                            g.instance_types.iter().cloned().collect();
                        if types.is_empty() {
                            types = node_types.clone();
                        }
                        if types.is_empty() {
                            // No type on the group, none on a node: EKS's own default.
                            types.insert(EKS_DEFAULT_INSTANCE_TYPE.to_string());
                        }
                        (Some(g.max_size), azs, types)
                    }
                    // A node tagged for a nodegroup that is gone (being deleted).
                    None => (None, node_azs.clone(), node_types.clone()),
                }
            }
            NodeOwner::AutoScalingGroup(name) => {
                match facts.auto_scaling_groups.iter().find(|g| &g.name == name) {
                    Some(g) => {
                        let mut azs: BTreeSet<String> =
                            g.availability_zones.iter().cloned().collect();
                        azs.extend(g.subnet_ids.iter().filter_map(az_of));
                        if azs.is_empty() {
                            azs = node_azs.clone();
                        }
                        (Some(g.max_size), azs, node_types.clone())
                    }
                    None => (None, node_azs.clone(), node_types.clone()),
                }
            }
            NodeOwner::Fargate => (None, BTreeSet::new(), BTreeSet::new()),
            NodeOwner::Karpenter(_) | NodeOwner::Unknown => {
                (None, node_azs.clone(), node_types.clone())
            }
        };
        let networks: Vec<InstanceNetwork> =
            types.iter().filter_map(|t| network(facts, t)).collect();
        let unknown: Vec<&String> = types
            .iter()
            .filter(|t| network(facts, t).is_none())
            .collect();
        if !unknown.is_empty() {
            warnings.push(format!(
                "{}: the network limits of {} are unknown (EC2 did not describe them, and eksnet's table does not have them): its nodes are not counted in the pod subnets' sizes",
                owner.describe(),
                unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let pods_per_node = (!networks.is_empty() && unknown.is_empty())
            .then(|| sizing::nodegroup_pods(&networks, mode, None).pods_per_node());
        let mut names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        names.sort();
        out.push(NodeSource {
            owner,
            nodes: names,
            max_size,
            azs: azs.into_iter().collect(),
            instance_types: types.into_iter().collect(),
            pods_per_node,
        });
    }
    out
}

/// The node sources as node sizing takes them (`plan` and `capacity` on a spec that only
/// reads the cluster), with the limits of their instance types (EC2's, else the embedded
/// table's). Fargate runs no pod on a node's addresses and is left out; the sizing arithmetic
/// itself is the planner's, under the CNI settings the spec gives.
pub fn outside_groups(
    facts: &ClusterFacts,
) -> (Vec<OutsideGroup>, BTreeMap<String, InstanceNetwork>) {
    // The settings only change `pods_per_node`, which is not kept here; the warnings about
    // unknown types are the planner's to give.
    let mut ignored = Vec::new();
    let sources = node_sources(facts, &CniMode::default(), &mut ignored);
    let mut types = BTreeMap::new();
    let mut out = Vec::new();
    for s in sources {
        if s.owner == NodeOwner::Fargate {
            continue;
        }
        for t in &s.instance_types {
            if let Some(n) = network(facts, t) {
                types.insert(t.clone(), n);
            }
        }
        let mut nodes_per_az: BTreeMap<String, u32> = BTreeMap::new();
        for n in facts.nodes.iter().filter(|n| n.owner == s.owner) {
            if let Some(z) = &n.zone {
                *nodes_per_az.entry(z.clone()).or_default() += 1;
            }
        }
        out.push(OutsideGroup {
            label: s.owner.describe(),
            nodegroup: match &s.owner {
                NodeOwner::ManagedNodegroup(n) => Some(n.clone()),
                _ => None,
            },
            max_size: s.max_size,
            azs: s.azs,
            instance_types: s.instance_types,
            nodes_per_az,
        });
    }
    (out, types)
}

/// The demand per AZ, with `nodes::sizing::capacity` doing the counting, and the smallest
/// subnet each AZ needs with the headroom.
fn zone_demands(
    facts: &ClusterFacts,
    sources: &[NodeSource],
    mode: &CniMode,
    warnings: &mut Vec<String>,
) -> Result<Vec<ZonePlan>, Refusal> {
    let mut demands = Vec::new();
    let mut azs: BTreeSet<String> = BTreeSet::new();
    for s in sources {
        if s.owner == NodeOwner::Fargate {
            continue;
        }
        azs.extend(s.azs.iter().cloned());
        let Some(per_node) = s.pods_per_node else {
            continue;
        };
        let networks: Vec<InstanceNetwork> = s
            .instance_types
            .iter()
            .filter_map(|t| network(facts, t))
            .collect();
        // The hungriest type at the group's max pods, as `plan`'s sizing counts it.
        let Some(instance) = networks
            .iter()
            .max_by_key(|t| sizing::node_demand(t, mode, per_node))
            .cloned()
        else {
            continue;
        };
        let label = s.owner.describe();
        match s.max_size {
            Some(max) => demands.push(NodegroupDemand {
                label,
                azs: s.azs.clone(),
                max_size: max,
                pods_per_node: per_node,
                instance,
            }),
            // No maximum known: its nodes where they are now.
            None => {
                let mut here: BTreeMap<String, u32> = BTreeMap::new();
                for n in facts.nodes.iter().filter(|n| n.owner == s.owner) {
                    if let Some(z) = &n.zone {
                        *here.entry(z.clone()).or_default() += 1;
                    }
                }
                for (az, count) in here {
                    demands.push(NodegroupDemand {
                        label: label.clone(),
                        azs: vec![az],
                        max_size: count,
                        pods_per_node: per_node,
                        instance: instance.clone(),
                    });
                }
            }
        }
    }
    if azs.is_empty() {
        // No node and no group: the AZs nodes can be given, the cluster subnets'.
        azs = facts
            .cluster
            .subnet_ids
            .iter()
            .filter_map(|id| facts.subnets.get(id))
            .map(|s| s.availability_zone.clone())
            .collect();
        if !azs.is_empty() {
            warnings.push(format!(
                "the cluster has no nodes and no node groups: one pod subnet for each AZ of its subnets ({})",
                azs.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let capacity = sizing::capacity(&[], &demands, mode);
    let mut zones = Vec::new();
    for az in azs {
        let found = capacity.zones.iter().find(|z| z.az == az);
        let demand = found.map_or(0, |z| z.demand);
        let needed = with_headroom(demand);
        let Some(needed_len) = smallest_subnet_for(needed) else {
            return Err(Refusal::TooLarge { az, needed });
        };
        zones.push(ZonePlan {
            az,
            nodes: found.map_or(0, |z| z.nodes),
            demand,
            needed,
            needed_len,
            groups: found.map(|z| z.groups.clone()).unwrap_or_default(),
            subnet: None,
            existing_eni_config: None,
            node_route_table: None,
        });
    }
    Ok(zones)
}

/// `demand` plus `HEADROOM_PERCENT`, rounded up.
pub fn with_headroom(demand: u64) -> u64 {
    demand + (demand * HEADROOM_PERCENT).div_ceil(100)
}

/// Usable addresses of a subnet of this prefix length.
pub fn usable(len: u8) -> u64 {
    (1u64 << (32 - u32::from(len))).saturating_sub(AWS_RESERVED)
}

/// The longest prefix (smallest subnet, /28 at most) that holds `needed` addresses; `None`
/// past a /16.
pub fn smallest_subnet_for(needed: u64) -> Option<u8> {
    (LARGEST_BLOCK..=SMALLEST_SUBNET)
        .rev()
        .find(|len| usable(*len) >= needed)
}

/// What the VPC already knows inside or around 100.64.0.0/10: its blocks, and every route
/// destination (prefix lists' entries too) but a default route.
pub fn taken_ranges(facts: &ClusterFacts) -> Vec<Taken> {
    let mut out: Vec<Taken> = facts
        .vpc
        .blocks
        .iter()
        .map(|b| Taken {
            cidr: *b,
            why: format!("a block of {}", facts.vpc.id),
        })
        .collect();
    for t in &facts.route_tables {
        for r in &t.routes {
            if r.target == "local" {
                // The VPC's own blocks, already above.
                continue;
            }
            for cidr in &r.cidrs {
                if cidr.prefix_len() == 0 {
                    continue;
                }
                let via = if r.destination.starts_with("pl-") {
                    format!("in prefix list {}, ", r.destination)
                } else {
                    String::new()
                };
                out.push(Taken {
                    cidr: *cidr,
                    why: format!(
                        "{via}routed to {} ({}) in {}",
                        r.target,
                        r.target_kind(),
                        t.id
                    ),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The block: the largest (up to /16) in 100.64.0.0/10 that overlaps nothing taken, that
/// AWS's association rules allow beside the VPC's blocks, and that holds `zones` subnets of
/// at least `need_len` (the largest one an AZ needs) — /19 each when it has the room.
pub fn choose_block(
    facts: &ClusterFacts,
    taken: &[Taken],
    zones: usize,
    need_len: u8,
) -> Result<BlockPlan, Refusal> {
    let range: Ipv4Net = POD_RANGE.parse().unwrap_or_default();
    // Bits to split a block into `zones` equal subnets.
    let split = u8::try_from(usize::BITS - zones.saturating_sub(1).leading_zeros()).unwrap_or(32);
    let preferred = PREFERRED_SUBNET.min(need_len);
    let secondary: Vec<Ipv4Net> = facts
        .vpc
        .blocks
        .iter()
        .filter(|b| Some(**b) != facts.vpc.primary)
        .copied()
        .collect();
    let mut block_len = LARGEST_BLOCK;
    while block_len <= SMALLEST_SUBNET && block_len + split <= need_len {
        let subnet_len = preferred.max(block_len + split);
        let candidates = range.subnets(block_len).into_iter().flatten();
        for cand in candidates {
            if taken.iter().any(|t| overlaps(&t.cidr, &cand)) {
                continue;
            }
            if let Some(primary) = &facts.vpc.primary {
                if association_refusal(primary, &secondary, &cand).is_some() {
                    continue;
                }
            }
            let mut avoided: Vec<Taken> = taken
                .iter()
                .filter(|t| overlaps(&t.cidr, &range))
                .cloned()
                .collect();
            avoided.sort();
            return Ok(BlockPlan {
                cidr: cand,
                avoided,
                subnet_len,
            });
        }
        block_len += 1;
    }
    Err(Refusal::NoRoom {
        vpc: facts.vpc.id.clone(),
        zones,
        subnet: need_len,
        taken: taken
            .iter()
            .filter(|t| overlaps(&t.cidr, &range))
            .map(|t| format!("{} {}", t.cidr, t.why))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// Which table each node subnet uses, and what the main table (a new subnet's) lacks.
pub fn routing(facts: &ClusterFacts) -> Routing {
    let main = facts.route_tables.iter().find(|t| t.main);
    let mut node_subnets: BTreeSet<String> = facts.cluster.subnet_ids.iter().cloned().collect();
    for g in &facts.nodegroups {
        node_subnets.extend(g.subnet_ids.iter().cloned());
    }
    for g in &facts.auto_scaling_groups {
        node_subnets.extend(g.subnet_ids.iter().cloned());
    }
    node_subnets.extend(facts.nodes.iter().filter_map(|n| n.subnet_id.clone()));
    let table_of = |subnet: &str| {
        facts
            .route_tables
            .iter()
            .find(|t| t.subnet_ids.iter().any(|s| s == subnet))
    };
    let mut rows = Vec::new();
    let mut node_tables: BTreeSet<String> = BTreeSet::new();
    for s in node_subnets {
        let explicit = table_of(&s);
        let table = explicit.or(main).map(|t| t.id.clone());
        node_tables.extend(table.clone());
        rows.push(SubnetRoute {
            az: facts.subnets.get(&s).map(|i| i.availability_zone.clone()),
            subnet_id: s,
            table,
            explicit: explicit.is_some(),
        });
    }
    let main_routes: BTreeSet<(String, String)> = main
        .map(|t| {
            t.routes
                .iter()
                .map(|r| (r.destination.clone(), r.target.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut missing: BTreeMap<(String, String), MissingRoute> = BTreeMap::new();
    for t in facts
        .route_tables
        .iter()
        .filter(|t| node_tables.contains(&t.id) && !t.main)
    {
        for r in t.routes.iter().filter(|r| r.target != "local") {
            let key = (r.destination.clone(), r.target.clone());
            if main_routes.contains(&key) {
                continue;
            }
            missing
                .entry(key)
                .or_insert_with(|| MissingRoute {
                    route: r.clone(),
                    tables: Vec::new(),
                })
                .tables
                .push(t.id.clone());
        }
    }
    Routing {
        main_table: main.map(|t| t.id.clone()),
        node_subnets: rows,
        missing_in_main: missing
            .into_values()
            .map(|mut m| {
                m.tables.sort();
                m
            })
            .collect(),
    }
}

/// The one table the node subnets of `az` use, when it is not the main table.
fn zone_route_table(routing: &Routing, az: &str) -> Option<String> {
    let tables: BTreeSet<&String> = routing
        .node_subnets
        .iter()
        .filter(|s| s.az.as_deref() == Some(az))
        .filter_map(|s| s.table.as_ref())
        .collect();
    match tables.into_iter().collect::<Vec<_>>().as_slice() {
        [one] if Some(*one) != routing.main_table.as_ref() => Some((*one).clone()),
        _ => None,
    }
}

/// The warning for new pod subnets left on the main table (their AZ's node subnets use no
/// single table of their own) while the node subnets' tables route what the main one does not.
fn routing_warning(routing: &Routing, on_main: &[&ZonePlan]) -> String {
    let missing: Vec<String> = routing
        .missing_in_main
        .iter()
        .map(|m| {
            format!(
                "{} → {} ({})",
                m.route.destination,
                m.route.target,
                m.route.target_kind()
            )
        })
        .collect();
    let subnets: Vec<String> = on_main
        .iter()
        .map(|z| format!("subnet.{}", z.subnet_name()))
        .collect();
    format!(
        "{} will use the VPC's main route table {}, which lacks routes the node subnets' tables have ({}): pods there would not reach what the nodes reach; the node subnets of their AZ use several tables, none of which init can pick for them, so add a `[route_table.NAME]` (an existing table or a new one) with those routes and the subnets in `subnet_ids`",
        subnets.join(", "),
        routing.main_table.as_deref().unwrap_or("(none found)"),
        missing.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adopt::*;

    use crate::adopt::fixture::{facts, net, node, route};

    #[test]
    fn an_ipv6_or_auto_mode_cluster_is_refused_with_the_reason() {
        let mut f = facts();
        f.cluster.ip_family = "ipv6".into();
        let e = decide(&f).unwrap_err();
        assert!(matches!(e, Refusal::Ipv6 { .. }), "{e}");
        assert!(e.to_string().contains("IPv6"), "{e}");
        let mut f = facts();
        f.cluster.auto_mode = true;
        let e = decide(&f).unwrap_err();
        assert!(matches!(e, Refusal::AutoMode { .. }), "{e}");
        assert!(e.to_string().contains("podSubnetSelectorTerms"), "{e}");
        assert!(decide(&facts()).is_ok());
    }

    #[test]
    fn a_vpc_at_the_block_quota_is_refused() {
        let mut f = facts();
        f.vpc.blocks = [
            "192.168.0.0/24",
            "192.168.1.0/24",
            "192.168.2.0/24",
            "192.168.3.0/24",
            "192.168.4.0/24",
        ]
        .iter()
        .map(|b| net(b))
        .collect();
        let e = decide(&f).unwrap_err();
        assert!(matches!(e, Refusal::BlockQuota { count: 5, .. }), "{e}");
        // Four blocks leave room for the fifth.
        f.vpc.blocks.pop();
        assert!(decide(&f).is_ok());
    }

    #[test]
    fn the_block_is_the_first_free_slash_16_of_100_64() {
        let p = decide(&facts()).unwrap();
        let b = p.block.unwrap();
        assert_eq!(b.cidr, net("100.64.0.0/16"));
        assert_eq!(b.subnet_len, 19);
        assert!(b.avoided.is_empty());
        let subnets: Vec<_> = p.zones.iter().map(|z| z.subnet.unwrap()).collect();
        assert_eq!(subnets, vec![net("100.64.0.0/19"), net("100.64.32.0/19")]);
    }

    #[test]
    fn the_block_avoids_the_vpcs_blocks_and_every_route_destination() {
        let mut f = facts();
        f.vpc.blocks.push(net("100.64.0.0/16"));
        // A peering route to 100.65.0.0/16, a transit gateway route inside 100.66/16, a
        // prefix list holding 100.67.128.0/17: all overlapping, all skipped.
        f.route_tables[1]
            .routes
            .push(route("100.65.0.0/16", "pcx-0123456789abcdef0"));
        f.route_tables[2]
            .routes
            .push(route("100.66.10.0/24", "tgw-0123456789abcdef0"));
        f.route_tables[2].routes.push(RouteInfo {
            destination: "pl-0123".into(),
            cidrs: vec![net("100.67.128.0/17")],
            target: "vgw-0123".into(),
        });
        let p = decide(&f).unwrap();
        let b = p.block.unwrap();
        assert_eq!(b.cidr, net("100.68.0.0/16"));
        let avoided: Vec<String> = b.avoided.iter().map(|t| t.cidr.to_string()).collect();
        assert_eq!(
            avoided,
            vec![
                "100.64.0.0/16",
                "100.65.0.0/16",
                "100.66.10.0/24",
                "100.67.128.0/17"
            ]
        );
        assert!(b.avoided[1].why.contains("VPC peering"), "{:?}", b.avoided);
        assert!(
            b.avoided[2].why.contains("transit gateway"),
            "{:?}",
            b.avoided
        );
        assert!(
            b.avoided[3].why.contains("prefix list pl-0123"),
            "{:?}",
            b.avoided
        );
        // The default route is no reason to avoid anything.
        assert!(!b.avoided.iter().any(|t| t.cidr.prefix_len() == 0));
    }

    #[test]
    fn with_no_free_slash_16_the_largest_free_smaller_block_is_taken() {
        let mut f = facts();
        // Something is routed into the first /24 of every /16 of 100.64/10.
        for second in 64..128 {
            f.route_tables[1].routes.push(route(
                &format!("100.{second}.0.0/24"),
                "tgw-0123456789abcdef0",
            ));
        }
        let p = decide(&f).unwrap();
        let b = p.block.unwrap();
        assert_eq!(b.cidr, net("100.64.128.0/17"));
        // Two /19s still fit; they stay /19.
        assert_eq!(b.subnet_len, 19);
        // With everything taken, the refusal names what is in the way.
        f.route_tables[1]
            .routes
            .push(route("100.64.0.0/10", "tgw-0123456789abcdef0"));
        let e = decide(&f).unwrap_err();
        assert!(matches!(e, Refusal::NoRoom { .. }), "{e}");
        assert!(
            e.to_string().contains("100.64.0.0/10 routed to tgw-"),
            "{e}"
        );
    }

    #[test]
    fn a_small_free_block_shrinks_the_subnets_down_to_what_the_nodes_need() {
        let mut f = facts();
        // Only 100.64.0.0/24 is free: every other /16 is routed elsewhere, and so is the rest
        // of 100.64.0.0/16 (100.64.1.0/24, 100.64.2.0/23, …, 100.64.128.0/17).
        for second in 65..128 {
            f.route_tables[1].routes.push(route(
                &format!("100.{second}.0.0/16"),
                "tgw-0123456789abcdef0",
            ));
        }
        for len in 17..=24u32 {
            let start = 1u32 << (24 - len);
            f.route_tables[1].routes.push(route(
                &format!("100.64.{start}.0/{len}"),
                "tgw-0123456789abcdef0",
            ));
        }
        let p = decide(&f).unwrap();
        let b = p.block.unwrap();
        assert_eq!(b.cidr, net("100.64.0.0/24"));
        // Two AZs in a /24: /25 each, which still holds each AZ's need (/26).
        assert_eq!(b.subnet_len, 25);
        assert!(p.zones.iter().all(|z| z.needed_len >= 25));
    }

    #[test]
    fn a_primary_block_inside_100_64_is_stepped_around() {
        // AWS associates a 100.64/10 block beside any primary block (the rule is consulted
        // all the same); a VPC whose primary block is in 100.64/10 gets the next one.
        let mut f = facts();
        f.vpc.primary = Some(net("100.64.0.0/16"));
        f.vpc.blocks = vec![net("100.64.0.0/16")];
        let p = decide(&f).unwrap();
        assert_eq!(p.block.unwrap().cidr, net("100.65.0.0/16"));
        assert!(association_refusal(&net("10.0.0.0/16"), &[], &net("100.64.0.0/16")).is_none());
    }

    #[test]
    fn subnets_are_sized_from_max_pods_at_the_groups_max_size_with_headroom() {
        let p = decide(&facts()).unwrap();
        // t3.medium under custom networking: (3 − 1) ENIs × (6 − 1) + 2 = 12 max pods.
        let ng = &p.sources[0];
        assert_eq!(ng.pods_per_node, Some(12));
        assert_eq!(ng.max_size, Some(4));
        // Max 4 over two AZs: 2 per AZ; each node takes its 10 pod addresses and its two
        // pod ENIs' own addresses (the warm ENI is within the two): 12 → 24 per AZ.
        let a = &p.zones[0];
        assert_eq!((a.az.as_str(), a.nodes, a.demand), ("us-west-2a", 2, 24));
        assert_eq!(a.needed, 36);
        assert_eq!(a.needed_len, 26);
        assert_eq!(smallest_subnet_for(36), Some(26));
        assert_eq!(smallest_subnet_for(59), Some(26));
        assert_eq!(smallest_subnet_for(60), Some(25));
        assert_eq!(smallest_subnet_for(0), Some(28));
        assert_eq!(smallest_subnet_for(65_531), Some(16));
        assert_eq!(smallest_subnet_for(65_532), None);
        assert_eq!(with_headroom(24), 36);
        assert_eq!(with_headroom(1), 2);
    }

    #[test]
    fn a_large_group_gets_subnets_larger_than_slash_19() {
        let mut f = facts();
        f.nodegroups[0].instance_types = vec!["m5.24xlarge".into()];
        f.nodegroups[0].max_size = 100;
        let p = decide(&f).unwrap();
        // 50 nodes per AZ × ~250 pods each: more than a /19 holds.
        let a = &p.zones[0];
        assert!(a.needed > usable(19), "{a:?}");
        let b = p.block.unwrap();
        assert_eq!(b.subnet_len, a.needed_len);
        assert!(b.subnet_len < 19);
        // Too many for any subnet: refused, naming the AZ.
        f.nodegroups[0].max_size = 2000;
        let e = decide(&f).unwrap_err();
        assert!(matches!(e, Refusal::TooLarge { .. }), "{e}");
    }

    #[test]
    fn every_node_source_is_listed_by_owner_and_sized() {
        let mut f = facts();
        f.nodes.push(node(
            "asg1",
            "us-west-2c",
            "subnet-c",
            NodeOwner::AutoScalingGroup("self-managed".into()),
        ));
        f.auto_scaling_groups.push(AutoScalingGroupInfo {
            name: "self-managed".into(),
            max_size: 6,
            availability_zones: vec!["us-west-2c".into()],
            subnet_ids: vec![],
        });
        f.nodes.push(node(
            "k1",
            "us-west-2a",
            "subnet-a",
            NodeOwner::Karpenter("default".into()),
        ));
        f.nodes
            .push(node("f1", "us-west-2b", "subnet-b", NodeOwner::Fargate));
        f.nodes
            .push(node("x1", "us-west-2b", "subnet-b", NodeOwner::Unknown));
        let p = decide(&f).unwrap();
        let owners: Vec<String> = p.sources.iter().map(|s| s.owner.describe()).collect();
        assert_eq!(owners.len(), 5, "{owners:?}");
        let azs: Vec<&str> = p.zones.iter().map(|z| z.az.as_str()).collect();
        assert_eq!(azs, vec!["us-west-2a", "us-west-2b", "us-west-2c"]);
        let c = &p.zones[2];
        assert_eq!(c.nodes, 6);
        let a = &p.zones[0];
        // ng1's 2 and Karpenter's current 1.
        assert_eq!(a.nodes, 3);
        // Fargate nodes take no pod subnet addresses.
        let b = &p.zones[1];
        assert_eq!(b.nodes, 3, "ng1's 2 and the unknown node: {b:?}");
    }

    #[test]
    fn outside_groups_carry_what_sizing_needs_and_leave_fargate_out() {
        let mut f = facts();
        f.nodes.push(node(
            "asg1",
            "us-west-2c",
            "subnet-c",
            NodeOwner::AutoScalingGroup("self-managed".into()),
        ));
        f.auto_scaling_groups.push(AutoScalingGroupInfo {
            name: "self-managed".into(),
            max_size: 6,
            availability_zones: vec!["us-west-2c".into()],
            subnet_ids: vec![],
        });
        for (name, az) in [
            ("k1", "us-west-2a"),
            ("k2", "us-west-2a"),
            ("k3", "us-west-2b"),
        ] {
            f.nodes.push(node(
                name,
                az,
                "subnet-a",
                NodeOwner::Karpenter("default".into()),
            ));
        }
        f.nodes
            .push(node("f1", "us-west-2b", "subnet-b", NodeOwner::Fargate));
        let (groups, types) = outside_groups(&f);
        let labels: Vec<&str> = groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "managed nodegroup `ng1`",
                "Auto Scaling group `self-managed`",
                "Karpenter node pool `default`"
            ]
        );
        let ng = &groups[0];
        assert_eq!(ng.nodegroup.as_deref(), Some("ng1"));
        assert_eq!(ng.max_size, Some(4));
        assert_eq!(ng.azs, vec!["us-west-2a", "us-west-2b"]);
        assert_eq!(ng.nodes_per_az.values().sum::<u32>(), 2);
        let asg = &groups[1];
        assert_eq!((asg.nodegroup.as_deref(), asg.max_size), (None, Some(6)));
        // Karpenter: no max size; its nodes where they run.
        let k = &groups[2];
        assert_eq!(k.max_size, None);
        assert_eq!(
            k.nodes_per_az,
            BTreeMap::from([("us-west-2a".to_string(), 2), ("us-west-2b".to_string(), 1)])
        );
        // EC2 described nothing: the embedded table gives t3.medium's limits.
        assert_eq!(
            types.get("t3.medium").map(|t| (t.max_enis, t.ipv4_per_eni)),
            Some((3, 6))
        );
    }

    #[test]
    fn an_azs_existing_eniconfig_is_kept_and_gets_no_new_subnet() {
        let mut f = facts();
        f.eni_configs.push(EniConfigInfo {
            name: "us-west-2a".into(),
            subnet_id: Some("subnet-0aaaaaaaaaaaaaaaa".into()),
            security_group_ids: vec!["sg-b".into(), "sg-a".into()],
            managed_by: None,
        });
        let p = decide(&f).unwrap();
        assert_eq!(
            p.zones[0].existing_eni_config.as_deref(),
            Some("us-west-2a")
        );
        assert_eq!(p.zones[0].subnet, None);
        assert_eq!(p.zones[1].subnet, Some(net("100.64.0.0/19")));
        assert_eq!(
            p.existing_eni_configs[0].security_group_ids,
            vec!["sg-a", "sg-b"]
        );
        // Every AZ covered: no block at all.
        f.eni_configs.push(EniConfigInfo {
            name: "us-west-2b".into(),
            subnet_id: Some("subnet-0bbbbbbbbbbbbbbbb".into()),
            security_group_ids: vec![],
            managed_by: None,
        });
        let p = decide(&f).unwrap();
        assert!(p.block.is_none());
    }

    #[test]
    fn the_cni_settings_stay_on_the_path_the_cluster_uses() {
        let p = decide(&facts()).unwrap();
        assert_eq!(p.cni.path, CniPath::AwsNode);
        assert_eq!(p.cni.selection, Selection::Label(DEFAULT_LABEL.into()));
        assert!(!p.cni.already_on);
        assert!(p.cni.mode.custom_networking);
        let mut f = facts();
        let values: Map<String, Value> = serde_json::from_str(
            r#"{"env":{"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG":"true","ENI_CONFIG_LABEL_DEF":"topology.kubernetes.io/zone","WARM_IP_TARGET":"5"},"enableNetworkPolicy":"true"}"#,
        )
        .unwrap();
        f.cni.addon = Some(AddonInfo {
            version: Some("v1.19.2-eksbuild.1".into()),
            configuration_values: values,
        });
        let p = decide(&f).unwrap();
        assert_eq!(p.cni.path, CniPath::Addon);
        assert!(p.cni.already_on);
        assert_eq!(p.cni.version.as_deref(), Some("v1.19.2-eksbuild.1"));
        assert_eq!(
            Value::Object(p.cni.configuration_values.clone()),
            serde_json::json!({"env": {"WARM_IP_TARGET": "5"}, "enableNetworkPolicy": "true"})
        );
        // The warm IP target counts in the sizing.
        assert!(matches!(
            p.cni.mode.warm,
            sizing::WarmPool::Ip { warm_ips: 5, .. }
        ));
        // No CNI at all: refused.
        f.cni = CniInfo::default();
        assert!(matches!(decide(&f).unwrap_err(), Refusal::NoCni { .. }));
    }

    #[test]
    fn an_old_cni_and_another_label_are_warned_about() {
        let mut f = facts();
        if let Some(a) = f.cni.aws_node.as_mut() {
            a.image = Some("x/amazon-k8s-cni:v1.6.2".into());
            a.env.insert(LABEL_DEF_ENV.into(), "example.com/eni".into());
        }
        let p = decide(&f).unwrap();
        assert_eq!(p.cni.selection, Selection::Label("example.com/eni".into()));
        assert!(
            p.warnings.iter().any(|w| w.contains("v1.6.3-eksbuild.2")),
            "{:?}",
            p.warnings
        );
        assert!(
            p.warnings.iter().any(|w| w.contains("example.com/eni")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn routing_says_which_table_each_node_subnet_uses_and_what_the_main_one_lacks() {
        let p = decide(&facts()).unwrap();
        let r = &p.routing;
        assert_eq!(r.main_table.as_deref(), Some("rtb-0000000f"));
        let tables: Vec<(&str, &str, bool)> = r
            .node_subnets
            .iter()
            .map(|s| {
                (
                    s.subnet_id.as_str(),
                    s.table.as_deref().unwrap(),
                    s.explicit,
                )
            })
            .collect();
        assert_eq!(
            tables,
            vec![
                ("subnet-a", "rtb-0000000a", true),
                ("subnet-b", "rtb-0000000b", true)
            ]
        );
        let missing: Vec<(&str, &str)> = r
            .missing_in_main
            .iter()
            .map(|m| (m.route.destination.as_str(), m.route.target.as_str()))
            .collect();
        assert_eq!(
            missing,
            vec![("0.0.0.0/0", "nat-a"), ("0.0.0.0/0", "nat-b")]
        );
        assert_eq!(p.zones[0].node_route_table.as_deref(), Some("rtb-0000000a"));
        // Each pod subnet joins its AZ's node table: nothing is left on the main table.
        assert_eq!(
            p.route_tables,
            vec![
                PodRouteTable {
                    id: "rtb-0000000a".into(),
                    azs: vec!["us-west-2a".into()]
                },
                PodRouteTable {
                    id: "rtb-0000000b".into(),
                    azs: vec!["us-west-2b".into()]
                },
            ]
        );
        assert_eq!(p.route_tables[0].name(), "nodes-us-west-2a");
        assert!(!p.warnings.iter().any(|w| w.contains("main route table")));
        // The node subnet of us-west-2b on the main table: its pod subnet stays there too,
        // and reaches what those nodes reach: nothing to say.
        let mut f = facts();
        f.route_tables[2].subnet_ids.clear();
        let p = decide(&f).unwrap();
        assert_eq!(p.route_tables.len(), 1);
        assert!(!p.warnings.iter().any(|w| w.contains("main route table")));
        // Two node subnets in us-west-2b on two tables: none to join, so the pod subnet stays
        // on the main table, which misses their NAT routes.
        let mut f = facts();
        f.subnets.extend([crate::adopt::fixture::subnet(
            "subnet-c",
            "us-west-2b",
            "192.168.0.128/27",
        )]);
        f.cluster.subnet_ids.push("subnet-c".into());
        f.route_tables[1].subnet_ids.push("subnet-c".into());
        let p = decide(&f).unwrap();
        assert_eq!(p.route_tables.len(), 1, "{:?}", p.route_tables);
        let w = p
            .warnings
            .iter()
            .find(|w| w.contains("main route table"))
            .unwrap();
        assert!(
            w.starts_with(
                "subnet.pods-us-west-2b will use the VPC's main route table rtb-0000000f"
            ),
            "{w}"
        );
        assert!(w.contains("0.0.0.0/0 → nat-a (NAT gateway)"), "{w}");
        // Node subnets on the main table: nothing missing, no warning.
        let mut f = facts();
        for t in &mut f.route_tables {
            t.subnet_ids.clear();
        }
        let p = decide(&f).unwrap();
        assert!(p.routing.missing_in_main.is_empty());
        assert!(p.routing.node_subnets.iter().all(|s| !s.explicit));
        assert!(!p.warnings.iter().any(|w| w.contains("main route table")));
        assert!(
            p.route_tables.is_empty(),
            "a new subnet is on the main table already"
        );
    }

    #[test]
    fn no_cluster_security_group_names_the_clusters_groups() {
        let mut f = facts();
        f.cluster.cluster_security_group_id = None;
        f.cluster.security_group_ids = vec!["sg-2".into(), "sg-1".into()];
        let p = decide(&f).unwrap();
        assert_eq!(
            p.security_groups,
            SecurityGroups::Explicit(vec!["sg-1".into(), "sg-2".into()])
        );
    }
}
