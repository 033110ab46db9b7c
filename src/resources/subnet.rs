//! `subnet`: a pod subnet inside a secondary CIDR block, in one AZ. Only tags update in place.

use super::{
    aws_error, req_str, split_tags, wait_until, Ctx, FieldRules, Lookup, Observed, Poll,
    ResourceError, Shape,
};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use aws_sdk_ec2::types::{Filter, ResourceType, Subnet, TagSpecification};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A pod subnet: a subnet inside a secondary block of its VPC, in one availability zone.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    /// The subnet's VPC, usually `${vpc.NAME.id}`, written as the `cidr_block` holding the
    /// subnet writes it.
    pub vpc_id: String,
    /// The subnet's IPv4 block, `/16` to `/28`, inside a `cidr_block` of the same VPC.
    pub cidr_block: String,
    /// The availability zone, e.g. `us-west-2a`.
    pub availability_zone: String,
    /// The subnet's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `[subnet.NAME]`: see docs/spec.md.
pub struct SubnetKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["vpc_id", "cidr_block", "availability_zone"],
    outputs: &["id", "arn", "availability_zone", "cidr_block", "vpc_id"],
    mirrored_outputs: &["availability_zone"],
    identity: &["vpc_id", "cidr_block"],
    lookup_key: &["vpc_id", "cidr_block"],
    create_only: &[],
    set_valued: &[],
    default_timeout: Duration::from_secs(5 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: None,
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: None,
    output_shapes: &[
        ("vpc_id", Shape::VpcId),
        ("id", Shape::SubnetId),
        ("availability_zone", Shape::Zone),
        ("arn", Shape::Other("a subnet ARN")),
        ("cidr_block", Shape::Other("a CIDR block")),
    ],
    restricted_tags: None,
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

fn observe(s: &Subnet) -> Option<Observed> {
    let id = s.subnet_id()?.to_string();
    let (tags, managed_by) = split_tags(
        s.tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
    );
    let az = s.availability_zone().unwrap_or_default();
    let cidr = s.cidr_block().unwrap_or_default();
    let vpc = s.vpc_id().unwrap_or_default();
    Some(Observed {
        cloud_id: id.clone(),
        attrs: json!({"vpc_id": vpc, "cidr_block": cidr, "availability_zone": az, "tags": tags}),
        outputs: json!({
            "id": id, "arn": s.subnet_arn().unwrap_or_default(), "availability_zone": az,
            "cidr_block": cidr, "vpc_id": vpc,
        }),
        managed_by,
    })
}

async fn describe(ctx: &Ctx, filters: Vec<Filter>) -> Result<Vec<Subnet>, ResourceError> {
    let mut out = Vec::new();
    let mut pages = ctx
        .aws
        .ec2
        .describe_subnets()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("DescribeSubnets", e))?;
        out.extend(page.subnets().iter().cloned());
    }
    Ok(out)
}

use super::ec2_filter as filter;

use super::ec2_tags;

/// `eni-… (status, description)` for each ENI in the subnet.
async fn network_interfaces(ctx: &Ctx, subnet: &str) -> Result<Vec<String>, ResourceError> {
    let out = ctx
        .aws
        .ec2
        .describe_network_interfaces()
        .filters(filter("subnet-id", vec![subnet.to_string()]))
        .send()
        .await
        .map_err(|e| aws_error("DescribeNetworkInterfaces", e))?;
    Ok(out
        .network_interfaces()
        .iter()
        .map(|n| {
            format!(
                "{} ({}, {})",
                n.network_interface_id().unwrap_or("?"),
                n.status().map(|s| s.as_str()).unwrap_or("?"),
                n.description().unwrap_or("")
            )
        })
        .collect())
}

async fn delete_available_enis(ctx: &Ctx, subnet: &str) -> Result<(), ResourceError> {
    let out = ctx
        .aws
        .ec2
        .describe_network_interfaces()
        .filters(filter("subnet-id", vec![subnet.to_string()]))
        .filters(filter("status", vec!["available".into()]))
        .send()
        .await
        .map_err(|e| aws_error("DescribeNetworkInterfaces", e))?;
    for eni in out.network_interfaces() {
        if let Some(id) = eni.network_interface_id() {
            ctx.aws
                .ec2
                .delete_network_interface()
                .network_interface_id(id)
                .send()
                .await
                .map_err(|e| aws_error("DeleteNetworkInterface", e))?;
        }
    }
    Ok(())
}

impl ResourceKind for SubnetKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = SubnetConfig;

    /// Its VPC and availability zone.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("vpc_id", &c.vpc_id, Shape::VpcId);
        rules.shaped("availability_zone", &c.availability_zone, Shape::Zone);
    }

    /// One DescribeSubnets for all subnets known by id (a filter, so a deleted id is "absent"
    /// instead of failing the whole call), one more for those looked up by VPC and CIDR.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let ids: Vec<String> = items.iter().filter_map(|i| i.cloud_id.clone()).collect();
        let by_key: Vec<&Lookup> = items.iter().filter(|i| i.cloud_id.is_none()).collect();
        let vpcs: Vec<String> = by_key
            .iter()
            .filter_map(|i| super::str_attr(&i.attrs, "vpc_id").map(String::from))
            .filter(|v| !crate::base::value::is_unknown(&Value::String(v.clone())))
            .collect();
        let cidrs: Vec<String> = by_key
            .iter()
            .filter_map(|i| super::str_attr(&i.attrs, "cidr_block").map(String::from))
            .collect();
        let by_id = async {
            if ids.is_empty() {
                Ok(Vec::new())
            } else {
                describe(ctx, vec![filter("subnet-id", ids.clone())]).await
            }
        };
        let by_cidr = async {
            if vpcs.is_empty() || cidrs.is_empty() {
                Ok(Vec::new())
            } else {
                describe(
                    ctx,
                    vec![
                        filter("vpc-id", vpcs.clone()),
                        filter("cidr-block", cidrs.clone()),
                    ],
                )
                .await
            }
        };
        let (by_id, by_cidr) = tokio::try_join!(by_id, by_cidr)?;
        Ok(items
            .iter()
            .map(|item| match &item.cloud_id {
                Some(id) => by_id
                    .iter()
                    .find(|s| s.subnet_id() == Some(id.as_str()))
                    .and_then(observe),
                None => by_cidr
                    .iter()
                    .find(|s| {
                        s.vpc_id() == super::str_attr(&item.attrs, "vpc_id")
                            && s.cidr_block() == super::str_attr(&item.attrs, "cidr_block")
                    })
                    .and_then(observe),
            })
            .collect())
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        let out = ctx
            .aws
            .ec2
            .create_subnet()
            .vpc_id(req_str(attrs, "vpc_id")?)
            .cidr_block(req_str(attrs, "cidr_block")?)
            .availability_zone(req_str(attrs, "availability_zone")?)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Subnet)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CreateSubnet", e))?;
        let subnet = out
            .subnet()
            .ok_or_else(|| ResourceError::IncompleteAnswer {
                operation: "CreateSubnet",
                lacks: "subnet",
            })?;
        let id = subnet
            .subnet_id()
            .ok_or_else(|| ResourceError::IncompleteAnswer {
                operation: "CreateSubnet",
                lacks: "subnet id",
            })?
            .to_string();
        wait_until(
            ctx,
            addr,
            &format!("subnet {id}"),
            ctx.timeout(Kind::Subnet),
            || async {
                let found = describe(ctx, vec![filter("subnet-id", vec![id.clone()])]).await?;
                match found.first() {
                    Some(s) if s.state().map(|s| s.as_str()) == Some("available") => {
                        Ok(Poll::Done(observe(s)))
                    }
                    Some(s) => Ok(Poll::Pending(
                        s.state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    )),
                    // Eventual consistency: a new id may not be listed for a moment.
                    None => Ok(Poll::Pending("not yet visible".into())),
                }
            },
        )
        .await?
        .ok_or_else(|| ResourceError::NotReadBack {
            what: format!("subnet {id}"),
        })
    }

    async fn update(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let before = change.before;
        let after = change.after;
        super::update_ec2_tags(ctx, cloud_id, before, after).await?;
        let found = describe(ctx, vec![filter("subnet-id", vec![cloud_id.to_string()])]).await?;
        found
            .first()
            .and_then(observe)
            .ok_or_else(|| ResourceError::Disappeared {
                what: format!("subnet {cloud_id}"),
            })
    }

    /// Deletes the subnet. `DependencyViolation` (ENIs the VPC CNI left behind, load balancers…)
    /// is retried with backoff until the subnet timeout; then the error names what still sits in
    /// the subnet. With `delete_available_enis`, detached (`available`) ENIs are deleted first.
    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        use crate::base::retry::Stop;
        let gone = "InvalidSubnetID.NotFound";
        let result = super::delete_retrying_dependencies(ctx, addr, gone, || async move {
            if ctx.delete_available_enis {
                delete_available_enis(ctx, cloud_id).await?;
            }
            ctx.aws
                .ec2
                .delete_subnet()
                .subnet_id(cloud_id)
                .send()
                .await
                .map_err(|e| aws_error("DeleteSubnet", e))
        })
        .await;
        // After the last refusal, the error says what still sits in the subnet.
        match result {
            Ok(()) => Ok(()),
            Err(Stop::Failed(err)) => Err(err),
            Err(Stop::Exhausted { started, .. }) => {
                let blockers = network_interfaces(ctx, cloud_id).await.unwrap_or_default();
                // Only detached ENIs are what the option deletes.
                let hint_delete_enis = !ctx.delete_available_enis
                    && blockers.iter().any(|b| b.contains("(available,"));
                Err(ResourceError::SubnetInUse {
                    subnet: cloud_id.to_string(),
                    waited_secs: started.elapsed().as_secs(),
                    blockers,
                    hint_delete_enis,
                })
            }
        }
    }
}
