//! The pod subnets' routes, in one place: route tables as read (`init`, the plan), which of a
//! table's routes leave the VPC, the spec's route tables against each other and against the
//! VPC's blocks, and whether the VPC CNI's SNAT settings agree with the routes of the pod
//! subnets.
//!
//! Sources: the EKS custom networking guide ("a new subnet is implicitly associated with the
//! VPC's main route table"); the VPC user guide on route tables (a subnet is associated with
//! one route table at a time; every table has the `local` route for the VPC's blocks); the
//! VPC CNI's README (amazon-vpc-cni-k8s, `AWS_VPC_K8S_CNI_EXTERNALSNAT`: with `true` the CNI
//! applies no SNAT rule and no off-VPC IP rule, so the pod's own address leaves the pod's
//! interface and "an AWS NAT Gateway or another external NAT device" must translate it;
//! `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS`: per entry "an iptables rule and off-VPC IP rule",
//! so traffic to it keeps the pod's address and goes out of the pod's interface, as traffic
//! inside the VPC does) and the EKS user guide's "External SNAT" page ("Communication within
//! the VPC (such as pod to pod) is direct and SNAT does not occur").

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::value::{self, is_ref};
use crate::domain::{cni, ChangeView};
use crate::resources::route_table::RouteTableConfig;
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// `true`: the VPC CNI does not translate pods' addresses for traffic leaving the VPC.
pub const EXTERNAL_SNAT_ENV: &str = "AWS_VPC_K8S_CNI_EXTERNALSNAT";
/// Ranges outside the VPC that pods reach with their own address, from their own interface.
pub const EXCLUDE_SNAT_CIDRS_ENV: &str = "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS";

/// A route table as DescribeRouteTables gives it (what `init` and the plan read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTableInfo {
    pub id: String,
    /// The VPC's main route table: subnets with no association of their own use it.
    pub main: bool,
    /// Subnets associated with it explicitly.
    pub subnet_ids: Vec<String>,
    pub routes: Vec<RouteInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// A CIDR, or a prefix list id (`pl-…`).
    pub destination: String,
    /// The CIDRs the destination stands for (a prefix list's entries; empty when they could
    /// not be read).
    pub cidrs: Vec<Ipv4Net>,
    /// `local`, `igw-…`, `nat-…`, `tgw-…`, `pcx-…`, `vgw-…`, `eni-…`, ….
    pub target: String,
}

impl RouteInfo {
    /// What the target is, in words: peering, transit gateway, VPN…
    pub fn target_kind(&self) -> &'static str {
        TargetKind::of(&self.target).describe()
    }
}

/// What a route sends its traffic to. Saved in plans as a code (`nat_gateway`); only
/// `describe` words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Local,
    InternetGateway,
    NatGateway,
    TransitGateway,
    VpcPeering,
    VpnGateway,
    EgressOnlyInternetGateway,
    NetworkInterface,
    Instance,
    LocalGateway,
    CarrierGateway,
    VpcEndpoint,
    CoreNetwork,
    Other,
}

impl TargetKind {
    /// The kind of a target by its id's prefix.
    pub fn of(target: &str) -> TargetKind {
        let t = target;
        match () {
            _ if t == "local" => TargetKind::Local,
            _ if t.starts_with("igw-") => TargetKind::InternetGateway,
            _ if t.starts_with("nat-") => TargetKind::NatGateway,
            _ if t.starts_with("tgw-") => TargetKind::TransitGateway,
            _ if t.starts_with("pcx-") => TargetKind::VpcPeering,
            _ if t.starts_with("vgw-") => TargetKind::VpnGateway,
            _ if t.starts_with("eigw-") => TargetKind::EgressOnlyInternetGateway,
            _ if t.starts_with("eni-") => TargetKind::NetworkInterface,
            _ if t.starts_with("i-") => TargetKind::Instance,
            _ if t.starts_with("lgw-") => TargetKind::LocalGateway,
            _ if t.starts_with("cagw-") => TargetKind::CarrierGateway,
            _ if t.starts_with("vpce-") => TargetKind::VpcEndpoint,
            _ if t.starts_with("arn:") => TargetKind::CoreNetwork,
            _ => TargetKind::Other,
        }
    }

    /// The kind of the target a `route_table`'s route names by its field, which says what
    /// the target is even while its id is a reference.
    pub fn of_field(field: &str) -> TargetKind {
        match field {
            "nat_gateway_id" => TargetKind::NatGateway,
            "transit_gateway_id" => TargetKind::TransitGateway,
            "vpc_peering_connection_id" => TargetKind::VpcPeering,
            "gateway_id" => TargetKind::InternetGateway,
            _ => TargetKind::Other,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            TargetKind::Local => "the VPC itself",
            TargetKind::InternetGateway => "internet gateway",
            TargetKind::NatGateway => "NAT gateway",
            TargetKind::TransitGateway => "transit gateway",
            TargetKind::VpcPeering => "VPC peering",
            TargetKind::VpnGateway => "VPN gateway",
            TargetKind::EgressOnlyInternetGateway => "egress-only internet gateway",
            TargetKind::NetworkInterface => "network interface",
            TargetKind::Instance => "instance",
            TargetKind::LocalGateway => "local gateway",
            TargetKind::CarrierGateway => "carrier gateway",
            TargetKind::VpcEndpoint => "VPC endpoint",
            TargetKind::CoreNetwork => "Cloud WAN core network",
            TargetKind::Other => "other target",
        }
    }
}

/// One route as the checks see it: where to, to what (an id, or a reference not resolved
/// yet), and what kind of target that is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub destination: String,
    pub target: String,
    pub kind: TargetKind,
}

impl Hop {
    fn net(&self) -> Option<Ipv4Net> {
        self.destination.parse().ok()
    }
}

/// The routes of a table as read, but the `local` one: what leaves the VPC.
pub fn hops_out_of(table: &RouteTableInfo) -> Vec<Hop> {
    table
        .routes
        .iter()
        .map(|r| Hop {
            destination: r.destination.clone(),
            target: r.target.clone(),
            kind: TargetKind::of(&r.target),
        })
        .filter(|h| h.kind != TargetKind::Local)
        .collect()
}

/// The routes of a `route_table`'s `routes` attribute (the spec's, or as observed), each
/// with the kind its field says.
pub fn hops_of_attr(routes: Option<&Value>) -> Vec<Hop> {
    routes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let destination = r.get("destination")?.as_str()?.to_string();
            let (field, target) = r
                .as_object()?
                .iter()
                .find(|(k, v)| *k != "destination" && v.is_string())?;
            let target = target.as_str()?.to_string();
            // A literal id says what it is (a vgw- in `gateway_id`); a reference only its field.
            let kind = match TargetKind::of(&target) {
                TargetKind::Other => TargetKind::of_field(field),
                k => k,
            };
            Some(Hop {
                destination,
                target,
                kind,
            })
        })
        .collect()
}

/// What the engine read of the VPCs' route tables for the plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoutingReads {
    /// VPC id → its route tables.
    pub tables: BTreeMap<String, Vec<RouteTableInfo>>,
    /// What could not be read, for the plan's warnings.
    pub problems: Vec<String>,
}

/// The VPC CNI's SNAT settings of one cluster, as the spec sets them (the CNI's defaults
/// otherwise: SNAT on, nothing excluded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snat {
    /// `AWS_VPC_K8S_CNI_EXTERNALSNAT` is true.
    pub external: bool,
    /// The ranges of `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS` (an entry that is no IPv4 range is
    /// skipped, as the CNI skips it).
    pub excluded: Vec<Ipv4Net>,
}

impl Snat {
    /// From a CNI env (`aws_node.env`, or the add-on's `configuration_values.env`).
    pub fn from_env(env: Option<&Value>) -> Snat {
        let text = |name: &str| -> Option<String> {
            match env?.get(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        Snat {
            // The CNI reads it with Go's strconv.ParseBool.
            external: text(EXTERNAL_SNAT_ENV)
                .is_some_and(|v| matches!(v.trim(), "1" | "t" | "T" | "true" | "TRUE" | "True")),
            excluded: text(EXCLUDE_SNAT_CIDRS_ENV)
                .map(|v| {
                    v.split(',')
                        .filter_map(|c| c.trim().parse::<Ipv4Net>().ok())
                        .map(|n| n.trunc())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A finding of the SNAT checks: the env entry it is about, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SnatFinding {
    pub env: &'static str,
    pub message: String,
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// What the SNAT settings make of one pod subnet's routes: `hops` are the routes of its
/// table that leave the VPC (its `local` route left out), `vpc_blocks` the VPC's blocks as
/// far as they are known. `subnet` and `table` name them in the messages.
pub fn snat_route_findings(
    snat: &Snat,
    subnet: &str,
    table: &str,
    hops: &[Hop],
    vpc_blocks: &[Ipv4Net],
) -> Vec<SnatFinding> {
    let mut out = Vec::new();
    if snat.external {
        if hops.is_empty() {
            out.push(SnatFinding {
                env: EXTERNAL_SNAT_ENV,
                message: format!(
                    "{EXTERNAL_SNAT_ENV} is true, so the VPC CNI does not translate pods' addresses and their traffic to outside the VPC leaves from {subnet} itself, for a NAT gateway to translate (VPC CNI README); but {table} has no route out of the VPC, only the local one: pods reach nothing outside the VPC; route 0.0.0.0/0 to a NAT gateway in that table (`{{ destination = \"0.0.0.0/0\", nat_gateway_id = \"nat-…\" }}`), or leave {EXTERNAL_SNAT_ENV} unset so that traffic leaves through the node's primary interface"
                ),
            });
        } else if let Some(igw) = hops
            .iter()
            .find(|h| h.destination == "0.0.0.0/0" && h.kind == TargetKind::InternetGateway)
        {
            out.push(SnatFinding {
                env: EXTERNAL_SNAT_ENV,
                message: format!(
                    "{EXTERNAL_SNAT_ENV} is true, so pods' traffic to the internet leaves from {subnet} with their private addresses (VPC CNI README: external SNAT needs a NAT gateway or another NAT device); {table} sends 0.0.0.0/0 to the internet gateway {}, which translates only addresses that have a public one: pods reach nothing on the internet; route 0.0.0.0/0 to a NAT gateway instead",
                    igw.target
                ),
            });
        }
        // Every pod address leaves untranslated already: the excluded ranges change nothing.
        return out;
    }
    for e in &snat.excluded {
        if vpc_blocks.iter().any(|b| overlap(b, e)) {
            continue; // said by `excluded_overlaps`
        }
        let routed = hops.iter().any(|h| h.net().is_some_and(|n| n.contains(e)));
        if !routed {
            out.push(SnatFinding {
                env: EXCLUDE_SNAT_CIDRS_ENV,
                message: format!(
                    "{e} is in {EXCLUDE_SNAT_CIDRS_ENV}, so pods' traffic to it keeps their own address and leaves from {subnet} (VPC CNI README: an iptables rule and an off-VPC IP rule per entry); but {table} has no route to {e}: pods cannot reach it; add a route for it to that table (to the transit gateway or peering connection that reaches it)"
                ),
            });
        }
    }
    out
}

/// `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS` entries overlapping the VPC's blocks (`blocks`: each
/// with the words that name it): traffic inside the VPC is never translated, so such an
/// entry changes nothing, and a range outside was likely meant.
pub fn excluded_overlaps(snat: &Snat, blocks: &[(Ipv4Net, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for e in &snat.excluded {
        for (b, named) in blocks.iter().filter(|(b, _)| overlap(b, e)) {
            out.push(format!(
                "{e} in {EXCLUDE_SNAT_CIDRS_ENV} overlaps the VPC's block {b} ({named}): the VPC CNI never translates traffic inside the VPC (EKS user guide, External SNAT), so the entry changes nothing there; list the ranges outside the VPC that must see pods' own addresses (a peered VPC, networks behind a transit gateway or VPN)"
            ));
        }
    }
    out
}

/// Where a settings resource keeps its CNI env: `aws_node`'s `env`, the add-on's
/// `configuration_values.env`.
pub fn env_key(kind: Kind) -> &'static str {
    if kind == Kind::AwsNode {
        "env"
    } else {
        "configuration_values.env"
    }
}

/// The spec's CNI settings resources (the `aws_node` patch, the `vpc-cni` add-on), each with
/// its cluster (resolved) and SNAT settings.
pub fn spec_snat(spec: &Spec) -> Vec<(&ResourceAddr, String, Snat)> {
    spec.resources
        .values()
        .filter(|r| cni::carries_settings(r.addr.kind, &[Some(&r.attrs)]))
        .map(|r| {
            let cluster = spec
                .resolved_name(resources::str_attr(&r.attrs, "cluster_name").unwrap_or_default());
            (&r.addr, cluster, Snat::from_env(cni::env(Some(&r.attrs))))
        })
        .collect()
}

/// The subnets the ENIConfigs of `cluster` use, as the spec writes them (`${subnet.X.id}`
/// or an id), each once.
pub fn spec_pod_subnets(spec: &Spec, cluster: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in spec.resources.values() {
        if let ResourceConfig::EniConfig(e) = &r.config {
            if spec.resolved_name(&e.cluster_name) == cluster && !out.contains(&e.subnet_id) {
                out.push(e.subnet_id.clone());
            }
        }
    }
    out
}

/// A VPC as the spec's resources name it, made comparable: `${vpc.X.id}` of an adopted VPC
/// is its id.
fn vpc_key(spec: &Spec, vpc: &str) -> String {
    if let Some(r) = value::whole_reference(vpc) {
        if r.addr.kind == Kind::Vpc && r.path == ["id"] {
            if let Some(id) = spec
                .get(&r.addr)
                .and_then(|v| resources::str_attr(&v.attrs, "id"))
                .filter(|id| !is_ref(id))
            {
                return id.to_string();
            }
        }
    }
    vpc.trim().to_string()
}

/// The blocks of a VPC (named as a resource names it) that the spec writes as literals: the
/// VPC's `cidr_block` and its secondary `cidr_block`s, each with the words that name it.
pub fn spec_blocks(spec: &Spec, vpc: &str) -> Vec<(Ipv4Net, String)> {
    let want = vpc_key(spec, vpc);
    let mut out = Vec::new();
    for r in spec.resources.values() {
        let (of, text, named) = match &r.config {
            ResourceConfig::Vpc(v) => (
                v.id.clone()
                    .unwrap_or_else(|| format!("${{{}.id}}", r.addr)),
                v.cidr_block.as_deref(),
                format!("`{}`", r.addr),
            ),
            ResourceConfig::CidrBlock(c) => (
                c.vpc_id.clone(),
                Some(c.cidr_block.as_str()),
                format!("`{}`", r.addr),
            ),
            _ => continue,
        };
        if vpc_key(spec, &of) != want {
            continue;
        }
        if let Some(net) = text.and_then(|t| t.parse::<Ipv4Net>().ok()) {
            out.push((net.trunc(), named));
        }
    }
    out
}

/// Every block the spec writes as a literal (VPCs' `cidr_block`s, secondary blocks).
pub fn written_blocks(spec: &Spec) -> Vec<Ipv4Net> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::Vpc(v) => v.cidr_block.as_deref(),
            ResourceConfig::CidrBlock(c) => Some(c.cidr_block.as_str()),
            _ => None,
        })
        .filter_map(|t| t.parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
        .collect()
}

/// The VPC (as the spec names it) of a pod subnet written as `${subnet.X.id}`.
fn spec_subnet_vpc(spec: &Spec, subnet: &str) -> Option<String> {
    let r = value::whole_reference(subnet)?;
    if r.addr.kind != Kind::Subnet {
        return None;
    }
    resources::str_attr(&spec.get(&r.addr)?.attrs, "vpc_id").map(String::from)
}

/// The route tables of the spec, each with its config.
fn route_tables(spec: &Spec) -> Vec<(&ResourceAddr, &RouteTableConfig)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::RouteTable(t) => Some((&r.addr, t)),
            _ => None,
        })
        .collect()
}

/// The spec's route table that associates `subnet` (as the spec writes it), if one does.
pub fn spec_table_of<'s>(
    spec: &'s Spec,
    subnet: &str,
) -> Option<(&'s ResourceAddr, &'s RouteTableConfig)> {
    route_tables(spec)
        .into_iter()
        .find(|(_, t)| t.subnet_ids.iter().any(|s| s == subnet))
}

/// The spec's route tables among themselves and against the VPC's blocks it writes, and the
/// SNAT settings against the spec's routes (`validate`, no call).
pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    let tables = route_tables(spec);
    // "Each subnet in your VPC must be associated with a route table … a subnet can only be
    // associated with one route table at a time" (VPC user guide, route tables).
    let mut associated: HashMap<&str, &ResourceAddr> = HashMap::new();
    let mut adopted: HashMap<&str, &ResourceAddr> = HashMap::new();
    for (addr, t) in &tables {
        for (i, s) in t.subnet_ids.iter().enumerate() {
            match associated.get(s.as_str()) {
                Some(first) if *first != *addr => d.push(spec.error_at(
                    format!("{addr}.subnet_ids.{i}"),
                    format!("`{s}` is also associated by `{first}`: a subnet is associated with one route table at a time (VPC user guide); keep it in one of them"),
                )),
                _ => {
                    associated.insert(s, addr);
                }
            }
        }
        if let Some(id) = t.id.as_deref().filter(|_| t.existing) {
            if let Some(first) = adopted.insert(id, addr) {
                d.push(spec.error_at(
                    format!("{addr}.id"),
                    format!("route table `{id}` is already adopted by `{first}`; declare it once, with every subnet it is to have"),
                ));
            }
        }
        // The table's `local` route covers the VPC's blocks already.
        let Some(vpc) = t.vpc_id.as_deref().filter(|_| !t.existing) else {
            continue;
        };
        let blocks = spec_blocks(spec, vpc);
        for (i, r) in t.routes.iter().enumerate() {
            let Ok(net) = r.destination.parse::<Ipv4Net>() else {
                continue;
            };
            if let Some((b, named)) = blocks.iter().find(|(b, _)| b.contains(&net)) {
                d.push(spec.error_at(
                    format!("{addr}.routes.{i}.destination"),
                    local_route_message(&net, b, named),
                ));
            }
        }
    }
    check_snat(spec, d);
}

fn local_route_message(dest: &Ipv4Net, block: &Ipv4Net, named: &str) -> String {
    format!("{dest} is inside the VPC's block {block} ({named}), which the table's `local` route already covers; route only destinations outside the VPC")
}

/// The SNAT settings against what the spec alone says: the VPC's blocks it writes, and the
/// routes of the tables it creates for pod subnets. Tables it only adopts, and the main
/// table, are judged at plan time on what is read.
fn check_snat(spec: &Spec, d: &mut Diagnostics) {
    for (settings, cluster, snat) in spec_snat(spec) {
        if !snat.external && snat.excluded.is_empty() {
            continue;
        }
        let at = |env: &str| format!("{settings}.{}.{env}", env_key(settings.kind));
        let subnets = spec_pod_subnets(spec, &cluster);
        let mut vpcs: Vec<String> = subnets
            .iter()
            .filter_map(|s| spec_subnet_vpc(spec, s))
            .map(|v| vpc_key(spec, &v))
            .collect();
        vpcs.sort();
        vpcs.dedup();
        let blocks: Vec<(Ipv4Net, String)> =
            vpcs.iter().flat_map(|v| spec_blocks(spec, v)).collect();
        for message in excluded_overlaps(&snat, &blocks) {
            d.push(spec.warning_at(at(EXCLUDE_SNAT_CIDRS_ENV), message));
        }
        let nets: Vec<Ipv4Net> = blocks.iter().map(|(b, _)| *b).collect();
        for s in &subnets {
            let Some((table, _)) = spec_table_of(spec, s).filter(|(_, t)| !t.existing) else {
                continue;
            };
            let routes = spec.get(table).and_then(|r| r.attrs.get("routes"));
            let hops = hops_of_attr(routes);
            let subnet = subnet_words(s);
            for f in snat_route_findings(&snat, &subnet, &format!("`{table}`"), &hops, &nets) {
                d.push(spec.warning_at(at(f.env), f.message));
            }
        }
    }
}

/// A subnet as the messages name it: `subnet.X` for `${subnet.X.id}`, else its id.
pub fn subnet_words(subnet: &str) -> String {
    match value::whole_reference(subnet) {
        Some(r) => format!("`{}`", r.addr),
        None => format!("`{subnet}`"),
    }
}

/// Route tables handing a subnet over in one apply: AWS associates a subnet with one table
/// at a time, so the table giving it up must let go of it before the one taking it
/// associates it (the spec's own check keeps two tables from declaring it at once). Pairs
/// (giving up, taking), for the planner to write into the plan.
pub fn handovers(changes: &[ChangeView<'_>]) -> Vec<(ResourceAddr, ResourceAddr)> {
    let subnets = |v: Option<&Value>| -> Vec<String> {
        v.map(|v| resources::str_list(v, "subnet_ids"))
            .unwrap_or_default()
    };
    let tables: Vec<&ChangeView<'_>> = changes
        .iter()
        .filter(|c| c.addr.kind == Kind::RouteTable)
        .collect();
    let mut pairs = Vec::new();
    for taking in tables.iter().filter(|c| !c.removed()) {
        let had = subnets(taking.before);
        for s in subnets(taking.after).iter().filter(|s| !had.contains(s)) {
            for giving in tables.iter().filter(|g| g.addr != taking.addr) {
                let releases = subnets(giving.before).contains(s)
                    && (giving.removed() || !subnets(giving.after).contains(s));
                let pair = (giving.addr.clone(), taking.addr.clone());
                if releases && !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
    }
    pairs
}

/// Live checks of the route tables the plan creates or changes: a route inside one of the
/// VPC's blocks as AWS reports them (the spec may not write them all).
pub fn check_plan(
    spec: &Spec,
    changes: &[ChangeView<'_>],
    known: &HashMap<ResourceAddr, Value>,
    diags: &mut Diagnostics,
) {
    for c in changes.iter().filter(|c| {
        c.addr.kind == Kind::RouteTable
            && matches!(
                c.action,
                crate::base::action::Action::Create
                    | crate::base::action::Action::Update
                    | crate::base::action::Action::Replace
            )
    }) {
        let Some(after) = c.after else { continue };
        let Some(vpc) = resources::str_attr(after, "vpc_id").filter(|v| !is_ref(v)) else {
            continue;
        };
        let blocks: Vec<Ipv4Net> = known
            .iter()
            .filter(|(a, o)| a.kind == Kind::Vpc && resources::str_attr(o, "id") == Some(vpc))
            .flat_map(|(_, o)| resources::str_list(o, "cidr_blocks"))
            .filter_map(|b| b.parse().ok())
            .collect();
        let written: Vec<String> = match spec.get(c.addr).map(|r| &r.config) {
            Some(ResourceConfig::RouteTable(t)) => {
                t.routes.iter().map(|r| r.destination.clone()).collect()
            }
            _ => continue,
        };
        for (i, dest) in written.iter().enumerate() {
            let Ok(net) = dest.parse::<Ipv4Net>() else {
                continue;
            };
            if let Some(b) = blocks.iter().find(|b| b.contains(&net)) {
                diags.push(spec.error_at(
                    format!("{}.routes.{i}.destination", c.addr),
                    local_route_message(&net, b, vpc),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(dest: &str, target: &str) -> Hop {
        Hop {
            destination: dest.into(),
            target: target.into(),
            kind: TargetKind::of(target),
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_snat_settings_are_read_as_the_cni_parses_them() {
        let env = serde_json::json!({
            EXTERNAL_SNAT_ENV: "True",
            EXCLUDE_SNAT_CIDRS_ENV: "10.20.0.0/16, not-a-range,172.16.5.9/12"
        });
        let s = Snat::from_env(Some(&env));
        assert!(s.external);
        assert_eq!(s.excluded, vec![net("10.20.0.0/16"), net("172.16.0.0/12")]);
        let off = Snat::from_env(Some(&serde_json::json!({ EXTERNAL_SNAT_ENV: "yes" })));
        assert!(!off.external, "ParseBool takes no `yes`");
        assert_eq!(Snat::from_env(None), Snat::default());
    }

    #[test]
    fn external_snat_needs_a_route_out_that_translates() {
        let ext = Snat {
            external: true,
            excluded: vec![],
        };
        let none = snat_route_findings(&ext, "s", "t", &[], &[]);
        assert_eq!(none.len(), 1);
        assert!(
            none[0].message.contains("no route out of the VPC"),
            "{:?}",
            none
        );
        let igw = snat_route_findings(&ext, "s", "t", &[hop("0.0.0.0/0", "igw-0abc")], &[]);
        assert!(
            igw[0].message.contains("internet gateway igw-0abc"),
            "{:?}",
            igw
        );
        for fine in [
            vec![hop("0.0.0.0/0", "nat-0abc")],
            // Only a transit gateway: external SNAT for networks behind it is a choice.
            vec![hop("10.0.0.0/8", "tgw-0abc")],
        ] {
            assert!(snat_route_findings(&ext, "s", "t", &fine, &[]).is_empty());
        }
    }

    #[test]
    fn an_excluded_range_must_be_routed_from_the_pod_subnet() {
        let snat = Snat {
            external: false,
            excluded: vec![net("10.20.0.0/16"), net("100.64.0.0/16")],
        };
        let vpc = [net("100.64.0.0/16")];
        let f = snat_route_findings(&snat, "s", "t", &[hop("0.0.0.0/0", "nat-1")], &vpc);
        assert!(f.is_empty(), "0.0.0.0/0 reaches it: {f:?}");
        let f = snat_route_findings(&snat, "s", "t", &[hop("10.0.0.0/8", "tgw-1")], &vpc);
        assert!(f.is_empty(), "{f:?}");
        let f = snat_route_findings(&snat, "s", "t", &[hop("10.30.0.0/16", "pcx-1")], &vpc);
        assert_eq!(
            f.len(),
            1,
            "only 10.20/16; the VPC's own block is said apart: {f:?}"
        );
        assert_eq!(f[0].env, EXCLUDE_SNAT_CIDRS_ENV);
        assert!(f[0].message.starts_with("10.20.0.0/16 is in"));
        let overlaps =
            excluded_overlaps(&snat, &[(net("100.64.0.0/16"), "`cidr_block.pods`".into())]);
        assert_eq!(overlaps.len(), 1);
        assert!(overlaps[0].contains("overlaps the VPC's block 100.64.0.0/16 (`cidr_block.pods`)"));
    }

    /// A VPC with a secondary block, two pod subnets on the ENIConfigs of one cluster, and
    /// the `aws_node` settings given (`env`), then `more`.
    fn spec(env: &str, more: &str) -> Spec {
        let text = format!(
            r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[subnet.pod_b]
vpc_id = "${{vpc.main.id}}"
cidr_block = "100.64.32.0/19"
availability_zone = "us-west-2b"

[aws_node.main]
cluster_name = "demo"
custom_network = true
env = {{ {env} }}

[eni_config.a]
cluster_name = "demo"
subnet_id = "${{subnet.pod_a.id}}"
security_group_ids = ["sg-0123abcd"]

[eni_config.b]
cluster_name = "demo"
subnet_id = "${{subnet.pod_b.id}}"
security_group_ids = ["sg-0123abcd"]
{more}"#
        );
        crate::spec::parse(std::path::Path::new("s.toml"), &text).expect("spec")
    }

    fn checked(spec: &Spec) -> Vec<(String, bool, String)> {
        let mut d = Diagnostics::default();
        check_spec(spec, &mut d);
        d.0.iter()
            .map(|x| {
                (
                    x.key.clone().unwrap_or_default(),
                    x.severity == crate::base::diag::Severity::Error,
                    x.message.clone(),
                )
            })
            .collect()
    }

    const PODS_TABLE: &str = r#"
[route_table.pods]
vpc_id = "${vpc.main.id}"
routes = [{ destination = "10.20.0.0/16", vpc_peering_connection_id = "pcx-0123abcd" }]
subnet_ids = ["${subnet.pod_a.id}"]
"#;

    /// What the spec alone says is judged by `validate`: the routes of a table it creates
    /// (pod_a's), and excluded ranges against the blocks it writes. The main table (pod_b's)
    /// waits for the plan's reads.
    #[test]
    fn the_snat_settings_are_checked_against_what_the_spec_writes() {
        let ext = checked(&spec(
            r#"AWS_VPC_K8S_CNI_EXTERNALSNAT = "true""#,
            PODS_TABLE,
        ));
        assert_eq!(ext.len(), 0, "a peering route is a route out: {ext:?}");
        let no_route = PODS_TABLE.replace(
            r#"routes = [{ destination = "10.20.0.0/16", vpc_peering_connection_id = "pcx-0123abcd" }]"#,
            "",
        );
        let ext = checked(&spec(r#"AWS_VPC_K8S_CNI_EXTERNALSNAT = "true""#, &no_route));
        assert_eq!(ext.len(), 1, "{ext:?}");
        assert_eq!(ext[0].0, "aws_node.main.env.AWS_VPC_K8S_CNI_EXTERNALSNAT");
        assert!(!ext[0].1, "a warning");
        assert!(
            ext[0].2.contains("`subnet.pod_a`")
                && ext[0].2.contains("`route_table.pods` has no route out"),
            "{ext:?}"
        );

        let excluded = checked(&spec(
            r#"AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS = "100.64.0.0/10,10.20.0.0/16,10.30.0.0/16""#,
            PODS_TABLE,
        ));
        let messages: Vec<&str> = excluded.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("100.64.0.0/10 in AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS overlaps the VPC's block 100.64.0.0/16 (`cidr_block.pods`)"), "{messages:?}");
        // 10.20.0.0/16 is routed by pod_a's table; 10.30.0.0/16 is not.
        assert!(
            messages[1].starts_with("10.30.0.0/16 is in") && messages[1].contains("`subnet.pod_a`"),
            "{messages:?}"
        );
    }

    #[test]
    fn route_tables_are_checked_against_each_other_and_the_vpcs_blocks() {
        let more = r#"
[route_table.pods]
vpc_id = "${vpc.main.id}"
routes = [{ destination = "10.0.128.0/17", nat_gateway_id = "nat-0123abcd" }]
subnet_ids = ["${subnet.pod_a.id}"]

[route_table.x]
existing = true
id = "rtb-0123abcd"
subnet_ids = ["${subnet.pod_a.id}"]

[route_table.y]
existing = true
id = "rtb-0123abcd"
subnet_ids = ["${subnet.pod_b.id}"]
"#;
        let found = checked(&spec("", more));
        let keys: Vec<&str> = found.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "route_table.pods.routes.0.destination",
                "route_table.x.subnet_ids.0",
                "route_table.y.id"
            ],
            "{found:?}"
        );
        assert!(found.iter().all(|(_, error, _)| *error));
        assert!(found[0]
            .2
            .contains("inside the VPC's block 10.0.0.0/16 (`vpc.main`)"));
        assert!(found[1].2.contains("also associated by `route_table.pods`"));
    }

    /// A table taking a subnet another lets go of in the same plan comes after it.
    #[test]
    fn a_subnet_handed_between_tables_is_a_handover() {
        use crate::base::action::Action;
        let addr = |a: &str| -> ResourceAddr { a.parse().expect("address") };
        let (a, b, c) = (
            addr("route_table.a"),
            addr("route_table.b"),
            addr("route_table.c"),
        );
        let t = |s: &[&str]| serde_json::json!({ "subnet_ids": s });
        let (a_before, a_after) = (t(&["s1", "s2"]), t(&["s1"]));
        let (b_before, b_after) = (t(&[]), t(&["s2"]));
        let c_before = t(&["s3"]);
        let views = vec![
            ChangeView {
                addr: &a,
                action: Action::Update,
                before: Some(&a_before),
                after: Some(&a_after),
                observed: None,
            },
            ChangeView {
                addr: &b,
                action: Action::Update,
                before: Some(&b_before),
                after: Some(&b_after),
                observed: None,
            },
            // Removed, but it never had s2: nothing to hand over.
            ChangeView {
                addr: &c,
                action: Action::Delete,
                before: Some(&c_before),
                after: None,
                observed: None,
            },
        ];
        assert_eq!(handovers(&views), vec![(a.clone(), b.clone())]);
    }

    #[test]
    fn a_spec_route_is_judged_by_its_field_while_its_target_is_a_reference() {
        let routes = serde_json::json!([
            {"destination": "0.0.0.0/0", "nat_gateway_id": "${vpc.main.outputs.NatGateway01}"},
            {"destination": "10.0.0.0/8", "gateway_id": "vgw-0123abcd"},
        ]);
        let hops = hops_of_attr(Some(&routes));
        assert_eq!(hops[0].kind, TargetKind::NatGateway);
        assert_eq!(hops[1].kind, TargetKind::VpnGateway);
    }
}
