//! `cidr_block`: a secondary IPv4 block associated with a VPC, waited to `associated`.
//! Associations cannot be tagged, so crash recovery relies on the intent row in the state.

use super::{
    aws_error, req_str, wait_until, Ctx, FieldRules, Lookup, Observed, Poll, ResourceError, Shape,
};
use super::{ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use aws_sdk_ec2::types::{Filter, Vpc, VpcCidrBlockAssociation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// A secondary IPv4 block associated with a VPC: the address space of pod subnets.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CidrBlockConfig {
    /// The VPC to associate the block with, usually `${vpc.NAME.id}`.
    pub vpc_id: String,
    /// The block, `/16` to `/28` with no host bits, e.g. `100.64.0.0/16`.
    pub cidr_block: String,
}

/// `[cidr_block.NAME]`: see docs/spec.md.
pub struct CidrBlockKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["vpc_id", "cidr_block"],
    outputs: &["association_id", "cidr_block", "vpc_id"],
    mirrored_outputs: &[],
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
        ("cidr_block", Shape::Other("a CIDR block")),
        (
            "association_id",
            Shape::Other("a CIDR block association id"),
        ),
    ],
    restricted_tags: None,
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

fn state_of(a: &VpcCidrBlockAssociation) -> &str {
    a.cidr_block_state()
        .and_then(|s| s.state())
        .map(|s| s.as_str())
        .unwrap_or("unknown")
}

fn observe(vpc: &str, a: &VpcCidrBlockAssociation) -> Option<Observed> {
    let id = a.association_id()?.to_string();
    let cidr = a.cidr_block().unwrap_or_default();
    Some(Observed {
        cloud_id: id.clone(),
        attrs: json!({"vpc_id": vpc, "cidr_block": cidr}),
        outputs: json!({"association_id": id, "cidr_block": cidr, "vpc_id": vpc}),
        managed_by: None,
    })
}

/// Present means associated or on its way there; a disassociated block is gone.
fn live(a: &VpcCidrBlockAssociation) -> bool {
    matches!(state_of(a), "associated" | "associating")
}

async fn describe_vpcs(ctx: &Ctx, ids: Vec<String>) -> Result<Vec<Vpc>, ResourceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = ctx
        .aws
        .ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(ids))
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_error("DescribeVpcs", e))?;
    Ok(out.vpcs().to_vec())
}

async fn association_state(
    ctx: &Ctx,
    vpc: &str,
    id: &str,
) -> Result<Option<String>, ResourceError> {
    let vpcs = describe_vpcs(ctx, vec![vpc.to_string()]).await?;
    Ok(vpcs.iter().find_map(|v| {
        v.cidr_block_association_set()
            .iter()
            .find(|a| a.association_id() == Some(id))
            .map(|a| state_of(a).to_string())
    }))
}

impl ResourceKind for CidrBlockKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = CidrBlockConfig;

    /// The VPC it is added to.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("vpc_id", &c.vpc_id, Shape::VpcId);
    }

    /// One DescribeVpcs for every VPC involved; associations are matched by id, else by CIDR.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let mut vpc_ids: Vec<String> = items
            .iter()
            .filter_map(|i| super::str_attr(&i.attrs, "vpc_id").map(String::from))
            .filter(|v| !crate::base::value::is_unknown(&Value::String(v.clone())))
            .collect();
        vpc_ids.sort();
        vpc_ids.dedup();
        let vpcs = describe_vpcs(ctx, vpc_ids).await?;
        Ok(items
            .iter()
            .map(|item| {
                vpcs.iter().find_map(|vpc| {
                    let vpc_id = vpc.vpc_id()?;
                    vpc.cidr_block_association_set()
                        .iter()
                        .filter(|a| live(a))
                        .find(|a| match &item.cloud_id {
                            Some(id) => a.association_id() == Some(id.as_str()),
                            None => {
                                Some(vpc_id) == super::str_attr(&item.attrs, "vpc_id")
                                    && a.cidr_block() == super::str_attr(&item.attrs, "cidr_block")
                            }
                        })
                        .and_then(|a| observe(vpc_id, a))
                })
            })
            .collect())
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let vpc = req_str(attrs, "vpc_id")?;
        let cidr = req_str(attrs, "cidr_block")?;
        let out = ctx
            .aws
            .ec2
            .associate_vpc_cidr_block()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .send()
            .await
            .map_err(|e| aws_error("AssociateVpcCidrBlock", e))?;
        let assoc =
            out.cidr_block_association()
                .ok_or_else(|| ResourceError::IncompleteAnswer {
                    operation: "AssociateVpcCidrBlock",
                    lacks: "association",
                })?;
        let id = assoc
            .association_id()
            .ok_or_else(|| ResourceError::IncompleteAnswer {
                operation: "AssociateVpcCidrBlock",
                lacks: "association id",
            })?
            .to_string();
        wait_until(
            ctx,
            addr,
            &format!("CIDR {cidr} on {vpc}"),
            ctx.timeout(Kind::CidrBlock),
            || async {
                Ok(match association_state(ctx, vpc, &id).await?.as_deref() {
                    Some("associated") => Poll::Done(()),
                    Some(s @ ("failed" | "failing" | "disassociated")) => {
                        Poll::Failed(s.into(), None)
                    }
                    Some(s) => Poll::Pending(s.to_string()),
                    None => Poll::Pending("not yet visible".into()),
                })
            },
        )
        .await?;
        observe(vpc, assoc).ok_or_else(|| ResourceError::IncompleteAnswer {
            operation: "AssociateVpcCidrBlock",
            lacks: "association id",
        })
    }

    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        match ctx
            .aws
            .ec2
            .disassociate_vpc_cidr_block()
            .association_id(cloud_id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let err = aws_error("DisassociateVpcCidrBlock", e);
                if err.code() == Some("InvalidVpcCidrBlockAssociationID.NotFound") {
                    return Ok(());
                }
                return Err(err);
            }
        }
        let vpc = req_str(attrs, "vpc_id")?;
        wait_until(
            ctx,
            addr,
            &format!("disassociation of {cloud_id}"),
            ctx.timeout(Kind::CidrBlock),
            || async {
                Ok(
                    match association_state(ctx, vpc, cloud_id).await?.as_deref() {
                        None | Some("disassociated") => Poll::Done(()),
                        Some(s) => Poll::Pending(s.to_string()),
                    },
                )
            },
        )
        .await
    }
}
