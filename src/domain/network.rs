//! The VPC's CIDR arithmetic, in one place: secondary blocks against the VPC's blocks and each
//! other, pod subnets inside a declared secondary block and apart from each other (from the
//! spec alone, in `validate`), then against what AWS reports (the VPC's associated blocks,
//! the cluster subnets' AZs, in the planner), and which subnets a replaced block takes with it.

use super::ChangeView;
use crate::base::action::Action;
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::value::{self, is_ref};
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use ipnet::Ipv4Net;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// Parses a CIDR field; reports syntax and host bits. `None` for references or errors.
fn cidr(spec: &Spec, key: String, text: &str, d: &mut Diagnostics) -> Option<Ipv4Net> {
    if is_ref(text) {
        return None;
    }
    match text.parse::<Ipv4Net>() {
        // The size first: a suggestion without host bits would be refused for it anyway.
        Ok(net) if net.trunc() != net && (16..=28).contains(&net.prefix_len()) => {
            d.push(spec.error_at(
                key,
                format!(
                    "`{text}` has host bits set; did you mean `{}`?",
                    net.trunc()
                ),
            ));
            None
        }
        Ok(net) if !(16..=28).contains(&net.prefix_len()) => {
            d.push(spec.error_at(
                key,
                format!("`{text}`: AWS allows VPC and subnet blocks from /16 to /28"),
            ));
            None
        }
        Ok(net) => Some(net),
        Err(_) => {
            d.push(spec.error_at(
                key,
                format!("`{text}` is not an IPv4 CIDR block (like 192.168.1.0/24)"),
            ));
            None
        }
    }
}

/// What AWS refuses to associate with a VPC, by the range its primary block is in: the VPC
/// user guide's table "IPv4 CIDR block association restrictions" (VPC user guide, "VPC CIDR
/// blocks"). Blocks are from /16 to /28, so a block is either inside one of these ranges or
/// outside it. To refresh, compare `ASSOCIATION_RULES` with that table.
const ASSOCIATION_RULES: &[(&str, &[&str])] = &[
    // Primary in → may not add a block from.
    (
        "10.0.0.0/8",
        &["172.16.0.0/12", "192.168.0.0/16", "198.19.0.0/16"],
    ),
    (
        "172.16.0.0/12",
        &[
            "10.0.0.0/8",
            "192.168.0.0/16",
            "172.31.0.0/16",
            "198.19.0.0/16",
        ],
    ),
    (
        "192.168.0.0/16",
        &["10.0.0.0/8", "172.16.0.0/12", "198.19.0.0/16"],
    ),
    (
        "198.19.0.0/16",
        &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
    ),
];
/// Primary blocks in any other range (public, or 100.64.0.0/10) may not add these.
const ASSOCIATION_OTHERS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "198.19.0.0/16",
];

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap_or_default()
}

fn within(range: &str, block: &Ipv4Net) -> bool {
    net(range).contains(block)
}

/// Why AWS would refuse to add `new` to a VPC whose primary block is `primary` and which
/// holds `others` too, or `None` when the table allows it. Overlaps are checked apart.
pub fn association_refusal(primary: &Ipv4Net, others: &[Ipv4Net], new: &Ipv4Net) -> Option<String> {
    let (range, refused) = ASSOCIATION_RULES
        .iter()
        .find(|(range, _)| within(range, primary))
        .map(|(r, refused)| (Some(*r), *refused))
        .unwrap_or((None, ASSOCIATION_OTHERS));
    let in_range = |r: &str| match range {
        Some(range) => format!("{r} beside a primary block in {range}"),
        None => format!(
            "{r} beside a primary block outside the private ranges (public, or in 100.64.0.0/10)"
        ),
    };
    if let Some(bad) = refused.iter().find(|r| within(r, new)) {
        return Some(format!(
            "AWS does not associate a block from {} (VPC user guide, IPv4 CIDR block association restrictions); a block from 100.64.0.0/10{} is allowed",
            in_range(bad),
            range.map(|r| format!(" or another one from {r}")).unwrap_or_default()
        ));
    }
    // "If any of the CIDR blocks associated with the VPC are from the 10.0.0.0/15 range,
    // you cannot add a CIDR block from the 10.0.0.0/16 range."
    if within("10.0.0.0/16", new)
        && std::iter::once(primary)
            .chain(others)
            .any(|b| within("10.0.0.0/15", b))
    {
        return Some("AWS does not associate a block from 10.0.0.0/16 with a VPC that has a block in 10.0.0.0/15 (VPC user guide, IPv4 CIDR block association restrictions); choose another range, e.g. from 100.64.0.0/10".into());
    }
    None
}

/// The spec's CIDR arithmetic (`validate`, no call): each block parses without host bits; a
/// secondary block overlaps neither its VPC's primary block nor another secondary block; a
/// pod subnet lies inside a declared secondary block of its VPC and overlaps no other.
pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    // VPC primary blocks, by the string other resources use to name the VPC.
    let mut vpc_blocks: HashMap<String, Ipv4Net> = HashMap::new();
    for (addr, r) in &spec.resources {
        if let ResourceConfig::Vpc(c) = &r.config {
            if let Some(text) = &c.cidr_block {
                if let Some(net) = cidr(spec, format!("{addr}.cidr_block"), text, d) {
                    vpc_blocks.insert(format!("${{{addr}.id}}"), net);
                    if let Some(id) = &c.id {
                        vpc_blocks.insert(id.clone(), net);
                    }
                }
            }
        }
    }
    let mut blocks: Vec<(String, String, Ipv4Net)> = Vec::new(); // (addr, vpc, net)
                                                                 // VPCs with a secondary block whose range is not known here (a reference, or an error
                                                                 // already reported): their subnets cannot be judged against it.
    let mut unknown_blocks: Vec<String> = Vec::new();
    for (addr, r) in &spec.resources {
        if let ResourceConfig::CidrBlock(c) = &r.config {
            let key = format!("{addr}.cidr_block");
            let Some(net) = cidr(spec, key.clone(), &c.cidr_block, d) else {
                unknown_blocks.push(c.vpc_id.clone());
                continue;
            };
            if let Some(primary) = vpc_blocks.get(c.vpc_id.trim()) {
                if primary.contains(&net.network()) || net.contains(&primary.network()) {
                    d.push(spec.error_at(
                        &key,
                        format!("secondary block {net} overlaps the VPC's block {primary}"),
                    ));
                } else {
                    let others: Vec<Ipv4Net> = blocks
                        .iter()
                        .filter(|(_, vpc, _)| *vpc == c.vpc_id)
                        .map(|(_, _, b)| *b)
                        .collect();
                    if let Some(why) = association_refusal(primary, &others, &net) {
                        d.push(spec.error_at(&key, format!("{net}: {why}")));
                    }
                }
            }
            for (other, vpc, onet) in &blocks {
                if *vpc == c.vpc_id
                    && (onet.contains(&net.network()) || net.contains(&onet.network()))
                {
                    d.push(spec.error_at(&key, format!("{net} overlaps {onet} of `{other}`")));
                }
            }
            blocks.push((addr.to_string(), c.vpc_id.clone(), net));
        }
    }
    check_cluster_subnet_zones(spec, d);
    let mut subnets: Vec<(String, String, Ipv4Net)> = Vec::new(); // (addr, vpc, net)
    for (addr, r) in &spec.resources {
        if let ResourceConfig::Subnet(s) = &r.config {
            let key = format!("{addr}.cidr_block");
            let Some(net) = cidr(spec, key.clone(), &s.cidr_block, d) else {
                continue;
            };
            let inside = blocks
                .iter()
                .any(|(_, vpc, b)| *vpc == s.vpc_id && b.contains(&net));
            if !inside && !unknown_blocks.contains(&s.vpc_id) {
                let declared: Vec<String> = blocks
                    .iter()
                    .filter(|(_, vpc, _)| *vpc == s.vpc_id)
                    .map(|(a, _, b)| format!("{b} ({a})"))
                    .collect();
                d.push(spec.error_at(&key, format!(
                    "pod subnet {net} is not inside a secondary CIDR block declared for its VPC{}",
                    if declared.is_empty() { " (none is declared: add a `[cidr_block.NAME]` with the same vpc_id)".to_string() } else { format!("; declared: {}", declared.join(", ")) }
                )));
            }
            for (other, _, onet) in subnets.iter().filter(|(_, vpc, _)| *vpc == s.vpc_id) {
                if onet.contains(&net.network()) || net.contains(&onet.network()) {
                    d.push(spec.error_at(
                        &key,
                        format!("pod subnet {net} overlaps {onet} of `{other}`"),
                    ));
                }
            }
            subnets.push((addr.to_string(), s.vpc_id.clone(), net));
        }
    }
}

/// Why a subnet in zone `az` cannot take the cluster's control plane ENIs, if it cannot:
/// "The subnets can't reside in AWS Outposts, AWS Wavelength, or an AWS Local Zone" (EKS
/// user guide, VPC and subnet requirements).
fn not_for_control_plane(az: &str) -> Option<String> {
    if crate::base::regions::is_availability_zone(az) || !crate::base::regions::is_zone_name(az) {
        return None;
    }
    let what = if az.contains("-wlz-") {
        "a Wavelength Zone"
    } else {
        "a Local Zone"
    };
    Some(format!("{az}, {what}: EKS puts no control plane ENI in a Local Zone, Wavelength Zone or Outpost subnet (EKS user guide, subnet requirements); give the cluster subnets in the region's availability zones, and use this one for nodes"))
}

/// A cluster's subnets that the spec declares with a literal zone are in availability zones.
fn check_cluster_subnet_zones(spec: &Spec, d: &mut Diagnostics) {
    for (addr, r) in &spec.resources {
        let ResourceConfig::Cluster(c) = &r.config else {
            continue;
        };
        for (i, id) in c.subnet_ids.iter().enumerate() {
            let Some(reference) = value::whole_reference(id) else {
                continue;
            };
            if reference.addr.kind != Kind::Subnet || reference.path != ["id"] {
                continue;
            }
            let az = spec
                .static_value(&format!("${{{}.availability_zone}}", reference.addr))
                .filter(|az| !is_ref(az));
            if let Some(why) = az.as_deref().and_then(not_for_control_plane) {
                d.push(spec.error_at(
                    format!("{addr}.subnet_ids.{i}"),
                    format!("`{}` is in {why}", reference.raw),
                ));
            }
        }
    }
}

/// Checks that need live values: secondary blocks against the VPC's existing blocks, and pod
/// subnet AZs covering the cluster subnet AZs (where both are known).
pub fn check_plan(
    spec: &Spec,
    changes: &[ChangeView<'_>],
    known: &HashMap<ResourceAddr, Value>,
    diags: &mut Diagnostics,
) {
    // Blocks of every VPC known at plan time, and which subnets are in which AZ.
    let mut vpc_blocks: HashMap<String, Vec<Ipv4Net>> = HashMap::new();
    let mut vpc_primary: HashMap<String, Ipv4Net> = HashMap::new();
    let mut subnet_az: HashMap<String, String> = HashMap::new();
    for (addr, outputs) in known {
        if addr.kind != Kind::Vpc {
            continue;
        }
        let id = outputs
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let blocks = outputs
            .get("cidr_blocks")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|b| b.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if let Some(p) = outputs
            .get("cidr_block")
            .and_then(Value::as_str)
            .and_then(|b| b.parse().ok())
        {
            vpc_primary.insert(id.clone(), p);
        }
        vpc_blocks.insert(id, blocks);
        if let Some(Value::Object(m)) = outputs.get("subnet_azs") {
            for (s, az) in m {
                if let Some(az) = az.as_str() {
                    subnet_az.insert(s.clone(), az.to_string());
                }
            }
        }
    }
    for c in changes.iter().filter(|c| {
        c.addr.kind == Kind::CidrBlock && matches!(c.action, Action::Create | Action::Replace)
    }) {
        let Some(after) = c.after else { continue };
        // A replaced block is not compared with its own old range, which goes first.
        let own_old: Option<Ipv4Net> = c
            .before
            .and_then(|b| resources::str_attr(b, "cidr_block"))
            .and_then(|t| t.parse().ok());
        let (Some(vpc), Some(Ok(net))) = (
            resources::str_attr(after, "vpc_id"),
            resources::str_attr(after, "cidr_block").map(str::parse::<Ipv4Net>),
        ) else {
            continue;
        };
        let others: Vec<Ipv4Net> = vpc_blocks
            .get(vpc)
            .into_iter()
            .flatten()
            .filter(|e| Some(**e) != own_old)
            .copied()
            .collect();
        if let Some(why) = vpc_primary
            .get(vpc)
            .filter(|p| {
                **p != net
                    && !others
                        .iter()
                        .any(|o| o.contains(&net.network()) || net.contains(&o.network()))
            })
            .and_then(|p| association_refusal(p, &others, &net))
        {
            diags.push(spec.error_at(format!("{}.cidr_block", c.addr), format!("{net}: {why}")));
        }
        for existing in others.iter() {
            if existing.contains(&net.network()) || net.contains(&existing.network()) {
                diags.push(spec.error_at(
                    format!("{}.cidr_block", c.addr),
                    format!("{net} overlaps the block {existing} already associated with {vpc}"),
                ));
            }
        }
    }
    let pod_azs: BTreeSet<String> = changes
        .iter()
        .filter(|c| c.addr.kind == Kind::Subnet && c.after.is_some())
        .filter_map(|c| {
            c.after
                .and_then(|a| resources::str_attr(a, "availability_zone").map(String::from))
        })
        .filter(|az| !az.contains("${"))
        .collect();
    let any_unknown_pod_az = changes
        .iter()
        .filter(|c| c.addr.kind == Kind::Subnet)
        .any(|c| {
            c.after
                .and_then(|a| a.get("availability_zone"))
                .is_some_and(value::is_unknown)
        });
    for c in changes.iter().filter(|c| {
        c.addr.kind == Kind::Cluster && matches!(c.action, Action::Create | Action::Replace)
    }) {
        let Some(after) = c.after else { continue };
        let ids = resources::str_list(after, "subnet_ids");
        for (i, id) in ids.iter().enumerate() {
            if let Some(az) = subnet_az.get(id.as_str()) {
                if let Some(why) = not_for_control_plane(az) {
                    diags.push(spec.error_at(
                        format!("{}.subnet_ids.{i}", c.addr),
                        format!("`{id}` is in {why}"),
                    ));
                }
            }
        }
        // "Subnets specified must be in at least two different AZs" (CreateCluster).
        let azs: Option<BTreeSet<&String>> =
            ids.iter().map(|i| subnet_az.get(i.as_str())).collect();
        if let Some(az) = azs
            .filter(|a| a.len() == 1 && ids.len() >= 2)
            .and_then(|a| a.into_iter().next())
        {
            diags.push(spec.error_at(
                format!("{}.subnet_ids", c.addr),
                format!("the cluster's subnets are all in {az}: EKS needs subnets in at least two availability zones"),
            ));
        }
    }
    if pod_azs.is_empty() || any_unknown_pod_az {
        return;
    }
    for c in changes.iter().filter(|c| c.addr.kind == Kind::Cluster) {
        let Some(after) = c.after else { continue };
        let ids = resources::str_list(after, "subnet_ids");
        let azs: Option<BTreeSet<String>> = ids.iter().map(|i| subnet_az.get(i).cloned()).collect();
        let Some(azs) = azs else { continue };
        let missing: Vec<&String> = azs.iter().filter(|az| !pod_azs.contains(*az)).collect();
        if !missing.is_empty() {
            diags.push(spec.error_at(
                format!("{}.subnet_ids", c.addr),
                format!(
                    "cluster subnets are in {} but no pod subnet is in {}: nodes there would get no pod IPs; add a pod subnet per AZ",
                    azs.iter().cloned().collect::<Vec<_>>().join(", "),
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}

/// Which subnet is in which AZ, from the outputs of every VPC known at plan time.
pub fn subnet_azs(known: &HashMap<ResourceAddr, Value>) -> HashMap<String, String> {
    known
        .iter()
        .filter(|(a, _)| a.kind == Kind::Vpc)
        .filter_map(|(_, o)| o.get("subnet_azs")?.as_object())
        .flat_map(|m| {
            m.iter()
                .filter_map(|(s, az)| Some((s.clone(), az.as_str()?.to_string())))
        })
        .collect()
}
/// The secondary block, planned for replacement, whose current range holds a subnet with
/// these live attributes (same VPC).
pub fn replaced_block_holding<'a>(
    addr: &ResourceAddr,
    changes: impl IntoIterator<Item = ChangeView<'a>>,
    subnet: &Value,
) -> Option<ResourceAddr> {
    if addr.kind != Kind::Subnet {
        return None;
    }
    let net = |v: &Value, key: &str| v.get(key)?.as_str()?.parse::<ipnet::IpNet>().ok();
    let cidr = net(subnet, "cidr_block")?;
    let vpc = subnet.get("vpc_id")?;
    changes
        .into_iter()
        .filter(|c| c.addr.kind == Kind::CidrBlock && c.action == Action::Replace)
        .find(|c| {
            c.before.is_some_and(|b| {
                b.get("vpc_id") == Some(vpc)
                    && net(b, "cidr_block").is_some_and(|n| n.contains(&cidr))
            })
        })
        .map(|c| c.addr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(primary: &str, others: &[&str], new: &str) -> bool {
        let others: Vec<Ipv4Net> = others.iter().map(|o| net(o)).collect();
        association_refusal(&net(primary), &others, &net(new)).is_some()
    }

    #[test]
    fn the_association_table_of_the_vpc_guide() {
        // 100.64.0.0/10 is allowed beside every primary range, and so is a public block.
        for primary in [
            "10.0.0.0/16",
            "172.16.0.0/16",
            "192.168.0.0/16",
            "198.19.0.0/16",
            "100.64.0.0/16",
            "52.0.0.0/16",
        ] {
            assert!(!refused(primary, &[], "100.65.0.0/16"), "{primary}");
            assert!(!refused(primary, &[], "52.95.0.0/16"), "{primary}");
        }
        // Another block of the primary's own private range.
        assert!(!refused("10.0.0.0/16", &[], "10.1.0.0/16"));
        assert!(!refused("172.16.0.0/16", &[], "172.20.0.0/16"));
        assert!(!refused("192.168.0.0/20", &[], "192.168.16.0/20"));
        // Other private ranges, and 198.19.0.0/16.
        assert!(refused("10.0.0.0/16", &[], "192.168.0.0/16"));
        assert!(refused("10.0.0.0/16", &[], "172.20.0.0/16"));
        assert!(refused("10.0.0.0/16", &[], "198.19.0.0/16"));
        assert!(refused("192.168.0.0/16", &[], "10.0.0.0/16"));
        assert!(refused("198.19.0.0/16", &[], "10.0.0.0/16"));
        assert!(refused("100.64.0.0/16", &[], "10.0.0.0/16"));
        assert!(refused("100.64.0.0/16", &[], "198.19.0.0/16"));
        // 172.31.0.0/16 beside a 172.16.0.0/12 primary.
        assert!(refused("172.16.0.0/16", &[], "172.31.0.0/16"));
        assert!(refused("172.16.0.0/16", &[], "172.31.128.0/17"));
        // 10.0.0.0/16 when any block is in 10.0.0.0/15.
        assert!(refused("10.1.0.0/16", &[], "10.0.0.0/24"));
        assert!(refused("10.8.0.0/16", &["10.1.0.0/16"], "10.0.0.0/24"));
        assert!(!refused("10.8.0.0/16", &[], "10.0.0.0/24"));
    }
}
