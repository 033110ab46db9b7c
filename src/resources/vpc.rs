//! `vpc`: either an existing VPC adopted by id (read and recorded, never created or deleted),
//! or a CloudFormation stack that creates one. Either way its outputs expose the VPC id, its
//! blocks and its subnets (by logical id for a stack, by id and `Name` tag for an adopted VPC)
//! with their AZs, which pod subnets and the cluster reference.

use super::BuildCtx;
use super::{
    aws_error, req_str, split_tags, tag_map, wait_until, Ctx, FieldRules, Lookup, Observed, Poll,
    ResourceError, Shape, Unique,
};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::value::is_ref;
use aws_sdk_cloudformation::types::{Capability, Parameter, Stack, StackResource, Tag};
use aws_sdk_ec2::types::{Filter, Subnet, Vpc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A VPC: an existing one adopted by `id` (read, never changed or deleted), or one a
/// CloudFormation stack creates (`stack_name` with `template_file` or `template_url`).
#[derive(Debug, Clone, Deserialize, Serialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VpcConfig {
    /// Adopted mode: the id of an existing VPC (`vpc-…`), which eksnet reads and never changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stack mode: the CloudFormation stack's name (a letter, then letters, digits and `-`; at
    /// most 128).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_name: Option<String>,
    /// Stack mode: the template's path, relative to the spec file (this or `template_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_file: Option<String>,
    /// Stack mode: the template's URL, fetched by CloudFormation (an S3 URL on AWS; this or
    /// `template_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_url: Option<String>,
    /// Stack mode: the template's parameters; one not listed takes the template's `Default`.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The VPC's primary IPv4 block: only checked against the VPC, never changed, and used to
    /// check the secondary blocks before any call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    /// Stack mode: the stack's tags, which CloudFormation passes on to what it creates.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `[vpc.NAME]`: see docs/spec.md.
pub struct VpcKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["id", "stack_name"],
    outputs: &[
        "id",
        "cidr_block",
        "cidr_blocks",
        "stack_id",
        "outputs.*",
        "resources.*",
        "subnets.*",
        "subnet_azs.*",
    ],
    mirrored_outputs: &[],
    identity: &["stack_name"],
    lookup_key: &["id", "stack_name"],
    create_only: &[],
    set_valued: &[],
    default_timeout: Duration::from_secs(30 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: None,
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "stack_name",
        one_per: None,
    }),
    output_shapes: &[
        ("id", Shape::VpcId),
        ("subnets.*.id", Shape::SubnetId),
        ("subnets.*.availability_zone", Shape::Zone),
        ("cidr_block", Shape::Other("a CIDR block")),
    ],
    restricted_tags: None,
    parent: None,
    patches_existing: false,
    checked_only: &[("cidr_block", "the VPC's block")],
    kubernetes_endpoint: false,
    puts_back: &[],
};

/// CloudFormation's limit for `TemplateBody` (CreateStack, UpdateStack).
const MAX_TEMPLATE_BODY: u64 = 51_200;

fn subnet_json(s: &Subnet) -> Value {
    json!({
        "id": s.subnet_id(), "availability_zone": s.availability_zone(),
        "cidr_block": s.cidr_block(),
    })
}

async fn describe_vpc(ctx: &Ctx, id: &str) -> Result<Option<Vpc>, ResourceError> {
    let out = ctx
        .aws
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("vpc-id").values(id).build())
        .send()
        .await
        .map_err(|e| aws_error("DescribeVpcs", e))?;
    Ok(out.vpcs().first().cloned())
}

async fn subnets_of(ctx: &Ctx, vpc: &str) -> Result<Vec<Subnet>, ResourceError> {
    let mut out = Vec::new();
    let mut pages = ctx
        .aws
        .ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .into_paginator()
        .send();
    while let Some(p) = pages.next().await {
        out.extend(
            p.map_err(|e| aws_error("DescribeSubnets", e))?
                .subnets()
                .iter()
                .cloned(),
        );
    }
    Ok(out)
}

/// Outputs shared by both modes: id, blocks, and every subnet of the VPC by id (and by Name).
fn vpc_outputs(vpc: &Vpc, subnets: &[Subnet]) -> Map<String, Value> {
    let mut by_key = Map::new();
    let mut azs = Map::new();
    // Subnets eksnet created (pod subnets) are not keyed by Name: they often reuse the cluster
    // subnets' names (the tutorial does), and a reference must not start pointing at them.
    let theirs = |s: &Subnet| !s.tags().iter().any(|t| t.key() == Some(super::TAG_ADDRESS));
    let name_of = |s: &Subnet| {
        s.tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
            .map(String::from)
    };
    let mut names: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for s in subnets.iter().filter(|s| theirs(s)) {
        if let Some(n) = name_of(s) {
            *names.entry(n).or_default() += 1;
        }
    }
    for s in subnets {
        let Some(id) = s.subnet_id() else { continue };
        by_key.insert(id.to_string(), subnet_json(s));
        // An ambiguous Name (two subnets) is no key at all rather than a random one.
        if let Some(name) = name_of(s).filter(|n| theirs(s) && names.get(n) == Some(&1)) {
            by_key.insert(name, subnet_json(s));
        }
        azs.insert(id.to_string(), json!(s.availability_zone()));
    }
    let blocks: Vec<&str> = vpc
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            matches!(
                a.cidr_block_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str()),
                Some("associated" | "associating")
            )
        })
        .filter_map(|a| a.cidr_block())
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(vpc.vpc_id()));
    m.insert("cidr_block".into(), json!(vpc.cidr_block()));
    m.insert("cidr_blocks".into(), json!(blocks));
    m.insert("subnets".into(), Value::Object(by_key));
    m.insert("subnet_azs".into(), Value::Object(azs));
    m
}

async fn read_adopted(ctx: &Ctx, lookup: &Lookup) -> Result<Option<Observed>, ResourceError> {
    let Some(id) = lookup
        .cloud_id
        .clone()
        .or_else(|| super::str_attr(&lookup.attrs, "id").map(String::from))
    else {
        return Ok(None);
    };
    let (vpc, subnets) = tokio::try_join!(describe_vpc(ctx, &id), subnets_of(ctx, &id))?;
    let Some(vpc) = vpc else { return Ok(None) };
    let mut attrs = json!({"id": id});
    if lookup.attrs.get("cidr_block").is_some() {
        attrs["cidr_block"] = json!(vpc.cidr_block());
    }
    Ok(Some(Observed {
        cloud_id: id,
        attrs,
        outputs: Value::Object(vpc_outputs(&vpc, &subnets)),
        managed_by: None,
    }))
}

async fn describe_stack(ctx: &Ctx, name: &str) -> Result<Option<Stack>, ResourceError> {
    match ctx
        .aws
        .cloudformation
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .stacks()
            .iter()
            .find(|s| s.stack_status().map(|st| st.as_str()) != Some("DELETE_COMPLETE"))
            .cloned()),
        Err(e) => {
            let err = aws_error("DescribeStacks", e);
            match &err {
                ResourceError::Aws(crate::cloud::aws::AwsError { code, message, .. })
                    if code == "ValidationError" && message.contains("does not exist") =>
                {
                    Ok(None)
                }
                _ => Err(err),
            }
        }
    }
}

async fn stack_resources(ctx: &Ctx, name: &str) -> Result<Vec<StackResource>, ResourceError> {
    let out = ctx
        .aws
        .cloudformation
        .describe_stack_resources()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| aws_error("DescribeStackResources", e))?;
    Ok(out.stack_resources().to_vec())
}

async fn read_stack(ctx: &Ctx, lookup: &Lookup) -> Result<Option<Observed>, ResourceError> {
    let Some(name) = lookup
        .cloud_id
        .clone()
        .or_else(|| super::str_attr(&lookup.attrs, "stack_name").map(String::from))
    else {
        return Ok(None);
    };
    // The VPC id comes out of the stack's resources, so reading its VPC and subnets would be
    // a second round trip. With the id the last read recorded, they are asked for together
    // with the stack, and used if the stack still has that VPC (a no-change plan: one round
    // trip); otherwise they are read again with the right id.
    let guess = lookup
        .last_outputs
        .get("id")
        .and_then(Value::as_str)
        .map(String::from);
    let guessed = async {
        match &guess {
            Some(id) => Some(tokio::try_join!(describe_vpc(ctx, id), subnets_of(ctx, id))),
            None => None,
        }
    };
    let (stack, resources, guessed) = tokio::join!(
        describe_stack(ctx, &name),
        stack_resources(ctx, &name),
        guessed
    );
    let Some(stack) = stack? else { return Ok(None) };
    // A stack that exists has resources; an error here is real.
    let resources = resources?;
    let vpc_id = resources
        .iter()
        .find(|r| r.resource_type() == Some("AWS::EC2::VPC"))
        .and_then(|r| r.physical_resource_id())
        .map(String::from);
    let mut outputs = Map::new();
    if let Some(vpc_id) = &vpc_id {
        let (vpc, subnets) = match guessed {
            Some(Ok(read)) if guess.as_deref() == Some(vpc_id.as_str()) => read,
            _ => tokio::try_join!(describe_vpc(ctx, vpc_id), subnets_of(ctx, vpc_id))?,
        };
        if let Some(vpc) = vpc {
            outputs = vpc_outputs(&vpc, &subnets);
            // For a stack, `subnets.<LogicalId>` is what users reference.
            let mut by_logical = Map::new();
            for r in &resources {
                if r.resource_type() != Some("AWS::EC2::Subnet") {
                    continue;
                }
                if let (Some(logical), Some(phys)) =
                    (r.logical_resource_id(), r.physical_resource_id())
                {
                    if let Some(s) = subnets.iter().find(|s| s.subnet_id() == Some(phys)) {
                        by_logical.insert(logical.to_string(), subnet_json(s));
                    }
                }
            }
            outputs.insert("subnets".into(), Value::Object(by_logical));
            if lookup.attrs.get("cidr_block").is_some() {
                outputs.insert("observed_cidr".into(), json!(vpc.cidr_block()));
            }
        }
    }
    let stack_outputs: Map<String, Value> = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), json!(o.output_value()))))
        .collect();
    let res: Map<String, Value> = resources
        .iter()
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                json!(r.physical_resource_id()),
            ))
        })
        .collect();
    outputs.insert("stack_id".into(), json!(stack.stack_id()));
    outputs.insert("outputs".into(), Value::Object(stack_outputs));
    outputs.insert("resources".into(), Value::Object(res));
    // Only the parameters the spec sets are compared: the template's defaults fill the rest.
    let wanted = lookup.attrs.get("parameters").and_then(Value::as_object);
    let params: Map<String, Value> = stack
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?.to_string(), json!(p.parameter_value()?))))
        .filter(|(k, _)| wanted.is_some_and(|w| w.contains_key(k)))
        .collect();
    let (tags, managed_by) = split_tags(
        stack
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
    );
    let mut attrs = json!({"stack_name": stack.stack_name(), "tags": tags});
    if !params.is_empty() || wanted.is_some() {
        attrs["parameters"] = Value::Object(params);
    }
    if lookup.attrs.get("cidr_block").is_some() {
        if let Some(c) = outputs.get("observed_cidr") {
            attrs["cidr_block"] = c.clone();
        }
    }
    outputs.remove("observed_cidr");
    Ok(Some(Observed {
        cloud_id: name,
        attrs,
        outputs: Value::Object(outputs),
        managed_by,
    }))
}

fn parameters(attrs: &Value) -> Vec<Parameter> {
    tag_map(attrs.get("parameters").unwrap_or(&Value::Null))
        .into_iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

fn cfn_tags(tags: impl IntoIterator<Item = (String, String)>) -> Vec<Tag> {
    tags.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Wait goal for a stack found mid-operation: created or updated, whichever it was doing.
const ANY_COMPLETE: &str = "CREATE_OR_UPDATE_COMPLETE";

async fn wait_stack(
    ctx: &Ctx,
    addr: &ResourceAddr,
    name: &str,
    goal: &str,
) -> Result<(), ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("stack {name}"),
        ctx.timeout(Kind::Vpc),
        || async {
            let stack = describe_stack(ctx, name).await?;
            let Some(stack) = stack else {
                return Ok(if goal == "DELETE_COMPLETE" {
                    Poll::Done(())
                } else {
                    Poll::Pending("not yet visible".into())
                });
            };
            let status = stack
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let reached = status == goal
                || (goal == ANY_COMPLETE
                    && matches!(status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE"));
            Ok(if reached {
                Poll::Done(())
            } else if status.ends_with("_FAILED") || status.ends_with("ROLLBACK_COMPLETE") {
                Poll::Failed(status, stack.stack_status_reason().map(String::from))
            } else {
                Poll::Pending(status)
            })
        },
    )
    .await
}

fn adopted_missing(addr: &ResourceAddr, attrs: &Value) -> ResourceError {
    ResourceError::AdoptedVpcMissing {
        addr: addr.clone(),
        vpc_id: super::str_attr(attrs, "id").unwrap_or("?").to_string(),
    }
}

impl ResourceKind for VpcKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = VpcConfig;

    /// Either an adopted VPC (`id`) or a stack (`stack_name` with one template source), and
    /// what each takes.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        let stack = c.stack_name.is_some();
        match (c.id.is_some(), stack) {
            (true, true) => rules.error("", "set either `id` (adopt an existing VPC) or `stack_name` (create one with CloudFormation), not both".into()),
            (false, false) => rules.error("", "a vpc needs `id` (adopt an existing VPC) or `stack_name` with `template_file` or `template_url`".into()),
            _ => {}
        }
        if stack {
            match (&c.template_file, &c.template_url) {
                (None, None) => rules.error(
                    "stack_name",
                    "a stack needs `template_file` or `template_url`".into(),
                ),
                (Some(_), Some(_)) => rules.error(
                    "template_url",
                    "set `template_file` or `template_url`, not both".into(),
                ),
                _ => {}
            }
            if let Some(name) = &c.stack_name {
                let ok = name.len() <= 128
                    && name
                        .chars()
                        .next()
                        .is_some_and(|ch| ch.is_ascii_alphabetic())
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
                if !ok && !is_ref(name) {
                    rules.error("stack_name", format!("stack name `{name}` must start with a letter and contain only letters, digits and `-` (max 128)"));
                }
            }
        } else if c.template_file.is_some() || c.template_url.is_some() || !c.parameters.is_empty()
        {
            rules.error("id", "`template_file`, `template_url` and `parameters` only apply to a stack (`stack_name`)".into());
        }
        if c.id.is_some() && !c.tags.is_empty() {
            rules.error("tags", "an adopted VPC is never modified, so it cannot take `tags`; tag it where it is managed".into());
        }
    }

    /// An adopted VPC's id; a stack's template and the parameters given for it.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        if let Some(id) = &c.id {
            rules.shaped("id", id, Shape::VpcId);
        }
        if let Some(file) = &c.template_file {
            rules.stack_template(file, &c.parameters);
        }
    }

    /// Spec config → attributes. A template file is read here: its body is what is applied (a
    /// saved plan must not pick up later edits to the file), and its digest makes a changed
    /// template visible in a plan.
    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let mut attrs = serde_json::to_value(c).unwrap_or(Value::Null);
        if let (Some(_), Value::Object(m)) = (&c.id, &mut attrs) {
            // An adopted VPC has no stack settings to show or compare.
            m.remove("parameters");
            m.remove("tags");
        }
        if let (Some(file), Value::Object(m)) = (&c.template_file, &mut attrs) {
            let full = build.spec_dir.join(file);
            // CloudFormation takes a template body of at most 51,200 bytes; a larger one
            // must be uploaded to S3 and given as `template_url`.
            let text = crate::base::files::read_bounded(&full, MAX_TEMPLATE_BODY, "template").map_err(
                |e| {
                    let hint = if e.contains("at most") {
                        format!("{e} (CloudFormation's limit for a template body; upload a larger template to S3 and set `template_url`)")
                    } else {
                        e
                    };
                    vec![("template_file", hint)]
                },
            )?;
            m.insert("template_body".into(), Value::String(text));
        }
        Ok(attrs)
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let reads = items.iter().map(|i| async move {
            if super::is_adopted(&i.addr, &i.attrs) {
                read_adopted(ctx, i).await
            } else {
                read_stack(ctx, i).await
            }
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        if super::is_adopted(addr, attrs) {
            let lookup = Lookup {
                addr: addr.clone(),
                cloud_id: None,
                attrs: attrs.clone(),
                last_outputs: Value::Null,
            };
            return read_adopted(ctx, &lookup)
                .await?
                .ok_or_else(|| adopted_missing(addr, attrs));
        }
        let name = req_str(attrs, "stack_name")?;
        let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        let mut req = ctx
            .aws
            .cloudformation
            .create_stack()
            .stack_name(name)
            .set_parameters(Some(parameters(attrs)))
            .set_tags(Some(cfn_tags(tags)))
            .capabilities(Capability::CapabilityIam)
            .client_request_token(super::eks::request_token(ctx, addr, "create"));
        req = match (
            super::str_attr(attrs, "template_body"),
            super::str_attr(attrs, "template_url"),
        ) {
            (Some(body), _) => req.template_body(body),
            (None, Some(url)) => req.template_url(url),
            (None, None) => return Err(ResourceError::Invalid("stack without template".into())),
        };
        req.send().await.map_err(|e| aws_error("CreateStack", e))?;
        wait_stack(ctx, addr, name, "CREATE_COMPLETE").await?;
        let lookup = Lookup {
            addr: addr.clone(),
            cloud_id: Some(name.to_string()),
            attrs: attrs.clone(),
            last_outputs: Value::Null,
        };
        read_stack(ctx, &lookup)
            .await?
            .ok_or_else(|| ResourceError::NotReadBack {
                what: format!("stack {name}"),
            })
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let _before = change.before;
        let after = change.after;
        let lookup = Lookup {
            addr: addr.clone(),
            cloud_id: Some(cloud_id.to_string()),
            attrs: after.clone(),
            last_outputs: Value::Null,
        };
        if super::is_adopted(addr, after) {
            return read_adopted(ctx, &lookup)
                .await?
                .ok_or_else(|| adopted_missing(addr, after));
        }
        let tags = ctx.managed_tags(addr, after.get("tags").unwrap_or(&Value::Null));
        let mut req = ctx
            .aws
            .cloudformation
            .update_stack()
            .stack_name(cloud_id)
            .set_parameters(Some(parameters(after)))
            .set_tags(Some(cfn_tags(tags)))
            .capabilities(Capability::CapabilityIam);
        req = match (
            super::str_attr(after, "template_body"),
            super::str_attr(after, "template_url"),
        ) {
            (Some(body), _) => req.template_body(body),
            (None, Some(url)) => req.template_url(url),
            (None, None) => req.use_previous_template(true),
        };
        match req.send().await {
            Ok(_) => wait_stack(ctx, addr, cloud_id, "UPDATE_COMPLETE").await?,
            Err(e) => {
                let err = aws_error("UpdateStack", e);
                // CloudFormation refuses an update that changes nothing; that is success here.
                let noop = matches!(&err, ResourceError::Aws(crate::cloud::aws::AwsError { message, .. }) if message.contains("No updates are to be performed"));
                if !noop {
                    return Err(err);
                }
            }
        }
        read_stack(ctx, &lookup)
            .await?
            .ok_or_else(|| ResourceError::Disappeared {
                what: format!("stack {cloud_id}"),
            })
    }

    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        if super::is_adopted(addr, attrs) {
            // Adopted VPCs belong to someone else: destroy only forgets them.
            return Ok(());
        }
        if let Err(e) = ctx
            .aws
            .cloudformation
            .delete_stack()
            .stack_name(cloud_id)
            .send()
            .await
        {
            let err = aws_error("DeleteStack", e);
            // AWS deletes stacks asynchronously, but moto deletes inline and can answer an error
            // after dropping the stack. Gone is gone: report it and carry on.
            if describe_stack(ctx, cloud_id).await?.is_some() {
                return Err(err);
            }
            ctx.reporter.event(crate::base::events::Event::Warning {
                message: format!("{addr}: stack {cloud_id} is gone although DeleteStack answered: {err}; resources it created may remain"),
            });
            return Ok(());
        }
        wait_stack(ctx, addr, cloud_id, "DELETE_COMPLETE").await
    }

    /// Waits for a stack found by refresh (e.g. after a crash mid-create) to finish what it was
    /// doing, so that nothing is built on a stack still in progress.
    async fn settle(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
    ) -> Result<Option<Observed>, ResourceError> {
        if super::is_adopted(addr, attrs) {
            return Ok(None);
        }
        wait_stack(ctx, addr, cloud_id, ANY_COMPLETE).await?;
        let lookup = Lookup {
            addr: addr.clone(),
            cloud_id: Some(cloud_id.to_string()),
            attrs: attrs.clone(),
            last_outputs: Value::Null,
        };
        read_stack(ctx, &lookup).await
    }
}
