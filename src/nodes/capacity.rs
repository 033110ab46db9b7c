//! The reads node sizing needs, made alongside the refresh (one `DescribeInstanceTypes` for
//! every instance type of the spec, one `DescribeSubnets` for the free addresses of the
//! subnets the state knows). They make no verdict: the planner's `plan::nodes` assesses.

use crate::base::addr::Kind;
use crate::nodes::sizing::{InstanceNetwork, SizingReads};
use crate::resources::NODE_SOURCES;
use crate::resources::{self, Ctx};
use crate::spec::Spec;
use crate::state::StateSnapshot;
use std::collections::BTreeSet;

/// The instance types written in the spec's node sources (managed and self-managed groups,
/// Karpenter pools).
fn spec_instance_types(spec: &Spec) -> BTreeSet<String> {
    spec.resources
        .values()
        .flat_map(|r| match r.addr.kind {
            k if NODE_SOURCES.contains(&k) => resources::node_instance_types(&r.attrs),
            // An Auto Mode NodeClass's pool: its pod subnets are sized too.
            Kind::AutoModeNodeClass => r
                .attrs
                .get("node_pool")
                .map(|p| resources::str_list(p, "instance_types"))
                .unwrap_or_default(),
            _ => Vec::new(),
        })
        .filter(|t| !t.contains("${"))
        .collect()
}

/// Both reads at once; they go out with the refresh's first wave, so no round trip is added.
pub async fn read(ctx: &Ctx, spec: &Spec, snapshot: &StateSnapshot) -> SizingReads {
    let types: Vec<String> = spec_instance_types(spec).into_iter().collect();
    let subnet_ids: Vec<String> = snapshot
        .resources
        .iter()
        .filter(|(a, _)| a.kind == Kind::Subnet)
        .filter_map(|(_, r)| r.cloud_id.clone())
        .collect();
    let ec2 = &ctx.aws.ec2;
    let types_read = async {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        // One page holds up to 100 types; a nodegroup has at most 20.
        ec2.describe_instance_types()
            .set_instance_types(Some(
                types
                    .iter()
                    .map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .send()
            .await
            .map(|o| o.instance_types().to_vec())
            .map_err(|e| resources::aws_error("DescribeInstanceTypes", e).to_string())
    };
    let subnets_read = async {
        if subnet_ids.is_empty() {
            return Ok(Vec::new());
        }
        ec2.describe_subnets()
            .set_subnet_ids(Some(subnet_ids.clone()))
            .send()
            .await
            .map(|o| o.subnets().to_vec())
            .map_err(|e| resources::aws_error("DescribeSubnets", e).to_string())
    };
    let (types_got, subnets_got) = tokio::join!(types_read, subnets_read);
    let mut reads = SizingReads::default();
    match types_got {
        Ok(found) => {
            for n in found.iter().filter_map(InstanceNetwork::from_ec2) {
                reads.types.insert(n.instance_type.clone(), n);
            }
        }
        Err(e) => reads.problems.push(e),
    }
    match subnets_got {
        Ok(found) => {
            for s in found {
                if let (Some(id), Some(n)) = (s.subnet_id(), s.available_ip_address_count()) {
                    reads
                        .available
                        .insert(id.to_string(), u32::try_from(n).unwrap_or(0));
                }
            }
        }
        // A subnet deleted outside eksnet makes the whole call fail; the plan recreates it,
        // and its room is counted from its CIDR.
        Err(e) => reads.problems.push(e),
    }
    reads
}

/// The spec's instance types and subnets are all the sizing needs to know from the spec.
pub fn wanted(spec: &Spec) -> bool {
    !spec_instance_types(spec).is_empty() || !existing_clusters(spec).is_empty()
}

/// The names of the clusters the spec only reads (`existing = true`): their nodes come from
/// sources the spec does not declare, which sizing reads from the live cluster.
pub fn existing_clusters(spec: &Spec) -> Vec<String> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            resources::ResourceConfig::Cluster(c) if c.existing => {
                Some(spec.resolved_name(&c.name))
            }
            _ => None,
        })
        .collect()
}
