//! `access_entry`: an EKS access entry (cluster access management) and the access policies
//! associated with it: who may reach the cluster's Kubernetes API, as which Kubernetes user
//! and groups. Nodes need one for their role before they can join: `EC2_LINUX` for Karpenter's
//! and self-managed nodes (a `self_managed_node_group` makes its own), `EC2` with
//! `AmazonEKSAutoNodePolicy` for the nodes of an Auto Mode NodeClass of one's own (EKS user
//! guide, `access-entries.adoc`, `automode/create-node-class.adoc`). EKS makes the entries of
//! managed nodegroups' roles itself. The cluster's `authentication_mode` must include the API
//! (`API_AND_CONFIG_MAP` or `API`): under `CONFIG_MAP` EKS refuses CreateAccessEntry.
//!
//! Cloud id `CLUSTER/PRINCIPAL_ARN` (the ARN keeps its own `/`).

use super::{
    aws_error, req_str, str_attr, str_list, Change, Ctx, FieldRules, Lookup, Observed,
    ResourceError, Shape,
};
use super::{BuildCtx, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// The access entry types (EKS API reference, CreateAccessEntry `type`).
pub const TYPES: &[&str] = &[
    "STANDARD",
    "EC2_LINUX",
    "EC2_WINDOWS",
    "FARGATE_LINUX",
    "EC2",
    "HYBRID_LINUX",
];

/// The types that take access policies: the others get their permissions from EKS
/// (`access-entries.adoc`: "If the type is anything other than STANDARD or EC2, you can't
/// associate access policies"), and only `STANDARD` takes Kubernetes groups and a username.
pub const POLICY_TYPES: &[&str] = &["STANDARD", "EC2"];

/// One access policy associated with the entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// The policy's name (`AmazonEKSClusterAdminPolicy`, `AmazonEKSViewPolicy`,
    /// `AmazonEKSAutoNodePolicy`…) or its whole ARN.
    pub policy: String,
    /// The namespaces it applies in; absent: the whole cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// An EKS access entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessEntryConfig {
    /// The cluster, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The IAM principal (role or user) ARN, usually `${iam_role.NAME.arn}`.
    pub principal_arn: String,
    /// `STANDARD` (people, CI), `EC2_LINUX` (Linux nodes), `EC2_WINDOWS`, `FARGATE_LINUX`,
    /// `EC2` (an Auto Mode NodeClass's nodes) or `HYBRID_LINUX`.
    #[serde(default = "default_type", rename = "type")]
    #[schemars(schema_with = "type_schema")]
    pub entry_type: String,
    /// Kubernetes groups the principal is in (`STANDARD` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_groups: Vec<String>,
    /// The Kubernetes user name (`STANDARD` only); absent: EKS's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Access policies to associate (`STANDARD` and `EC2` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_policies: Vec<AccessPolicy>,
}

fn type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::base::schema::one_of_or_reference(TYPES)
}

fn default_type() -> String {
    "STANDARD".into()
}

/// `[access_entry.NAME]`: see docs/spec.md.
pub struct AccessEntryKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "principal_arn", "type"],
    outputs: &["access_entry_arn", "principal_arn", "username"],
    mirrored_outputs: &["principal_arn"],
    identity: &["cluster_name", "principal_arn"],
    lookup_key: &["cluster_name", "principal_arn"],
    create_only: &[],
    set_valued: &["kubernetes_groups"],
    default_timeout: Duration::from_secs(5 * 60),
    kubernetes: false,
    import_id: ImportId::ClusterSlashName,
    replacement: None,
    // Policies the spec drops are disassociated.
    compared_when_unset: &["access_policies"],
    updated_outputs: &[],
    derived: false,
    unique: None,
    output_shapes: &[
        ("access_entry_arn", Shape::Other("an EKS access entry ARN")),
        ("principal_arn", Shape::Other("an IAM principal ARN")),
        ("username", Shape::Other("a Kubernetes user name")),
    ],
    restricted_tags: None,
    parent: Some(Kind::Cluster),
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

/// An access policy's ARN from its name (AWS's own policies live under the `aws` account of
/// the partition: `arn:aws:eks::aws:cluster-access-policy/NAME`).
pub fn policy_arn(name_or_arn: &str, partition: &str) -> String {
    if name_or_arn.starts_with("arn:") || name_or_arn.contains("${") {
        name_or_arn.to_string()
    } else {
        format!("arn:{partition}:eks::aws:cluster-access-policy/{name_or_arn}")
    }
}

/// The policies as compared: `{policy_arn, namespaces}` sorted by ARN, namespaces sorted.
fn policies_value(mut list: Vec<(String, Vec<String>)>) -> Value {
    list.sort();
    Value::Array(
        list.into_iter()
            .map(|(arn, mut ns)| {
                ns.sort();
                if ns.is_empty() {
                    json!({"policy_arn": arn})
                } else {
                    json!({"policy_arn": arn, "namespaces": ns})
                }
            })
            .collect(),
    )
}

fn policies_of(attrs: &Value) -> Vec<(String, Vec<String>)> {
    attrs
        .get("access_policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                str_attr(p, "policy_arn")?.to_string(),
                str_list(p, "namespaces"),
            ))
        })
        .collect()
}

fn split_id(kind: Kind, cloud_id: &str) -> Result<(&str, &str), ResourceError> {
    cloud_id
        .split_once('/')
        .ok_or_else(|| ResourceError::BadCloudId {
            kind,
            id: cloud_id.to_string(),
            expected: "cluster/principal-arn",
        })
}

/// Reads one entry and its policies; `None` when the entry (or its cluster) is gone.
async fn read(
    ctx: &Ctx,
    cluster: &str,
    principal: &str,
) -> Result<Option<Observed>, ResourceError> {
    let gone = |e: &ResourceError| e.code() == Some("ResourceNotFoundException");
    let entry = match ctx
        .aws
        .eks
        .describe_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
        .map_err(|e| aws_error("DescribeAccessEntry", e))
    {
        Ok(out) => match out.access_entry {
            Some(e) => e,
            None => return Ok(None),
        },
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut policies = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = match ctx
            .aws
            .eks
            .list_associated_access_policies()
            .cluster_name(cluster)
            .principal_arn(principal)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| aws_error("ListAssociatedAccessPolicies", e))
        {
            Ok(o) => o,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        for p in out.associated_access_policies() {
            let Some(arn) = p.policy_arn() else { continue };
            let ns = p
                .access_scope()
                .map(|s| s.namespaces().to_vec())
                .unwrap_or_default();
            policies.push((arn.to_string(), ns));
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let entry_type = entry.r#type().unwrap_or("STANDARD").to_string();
    let mut attrs = json!({
        "cluster_name": cluster,
        "principal_arn": principal,
        "type": entry_type,
        "access_policies": policies_value(policies),
    });
    if let Some(m) = attrs.as_object_mut() {
        // Only a STANDARD entry's groups and user are the spec's: EKS names a node entry's
        // itself (`system:nodes`, `system:node:…`).
        if entry_type == "STANDARD" {
            let mut groups = entry.kubernetes_groups().to_vec();
            groups.sort();
            m.insert("kubernetes_groups".into(), json!(groups));
            if let Some(u) = entry.username() {
                m.insert("username".into(), json!(u));
            }
        }
    }
    Ok(Some(Observed {
        cloud_id: format!("{cluster}/{principal}"),
        attrs,
        outputs: json!({
            "access_entry_arn": entry.access_entry_arn(),
            "principal_arn": principal,
            "username": entry.username(),
        }),
        managed_by: None,
    }))
}

fn scope(namespaces: &[String]) -> AccessScope {
    if namespaces.is_empty() {
        AccessScope::builder()
            .r#type(AccessScopeType::Cluster)
            .build()
    } else {
        AccessScope::builder()
            .r#type(AccessScopeType::Namespace)
            .set_namespaces(Some(namespaces.to_vec()))
            .build()
    }
}

async fn associate(
    ctx: &Ctx,
    cluster: &str,
    principal: &str,
    arn: &str,
    namespaces: &[String],
) -> Result<(), ResourceError> {
    ctx.aws
        .eks
        .associate_access_policy()
        .cluster_name(cluster)
        .principal_arn(principal)
        .policy_arn(arn)
        .access_scope(scope(namespaces))
        .send()
        .await
        .map_err(|e| aws_error("AssociateAccessPolicy", e))?;
    Ok(())
}

async fn disassociate(
    ctx: &Ctx,
    cluster: &str,
    principal: &str,
    arn: &str,
) -> Result<(), ResourceError> {
    match ctx
        .aws
        .eks
        .disassociate_access_policy()
        .cluster_name(cluster)
        .principal_arn(principal)
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| aws_error("DisassociateAccessPolicy", e))
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Associates what `after` has and `before` lacks (a changed scope is associated again: EKS
/// replaces the scope of an associated policy), disassociates what `after` dropped.
async fn sync_policies(
    ctx: &Ctx,
    cluster: &str,
    principal: &str,
    before: &[(String, Vec<String>)],
    after: &[(String, Vec<String>)],
) -> Result<(), ResourceError> {
    for (arn, ns) in after.iter().filter(|p| !before.contains(p)) {
        associate(ctx, cluster, principal, arn, ns).await?;
    }
    for (arn, _) in before
        .iter()
        .filter(|(arn, _)| !after.iter().any(|(a, _)| a == arn))
    {
        disassociate(ctx, cluster, principal, arn).await?;
    }
    Ok(())
}

impl ResourceKind for AccessEntryKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = AccessEntryConfig;

    /// Policies by ARN (a name becomes AWS's policy ARN in the spec's partition).
    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let mut groups = c.kubernetes_groups.clone();
        groups.sort();
        let policies = c
            .access_policies
            .iter()
            .map(|p| {
                (
                    policy_arn(&p.policy, build.partition.id),
                    p.namespaces.clone(),
                )
            })
            .collect();
        let mut attrs = json!({
            "cluster_name": c.cluster_name,
            "principal_arn": c.principal_arn,
            "type": c.entry_type,
            "access_policies": policies_value(policies),
        });
        if let Some(m) = attrs.as_object_mut() {
            if c.entry_type == "STANDARD" {
                m.insert("kubernetes_groups".into(), json!(groups));
            }
            if let Some(u) = &c.username {
                m.insert("username".into(), json!(u));
            }
        }
        Ok(attrs)
    }

    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        let standard = c.entry_type == "STANDARD";
        if !standard && !c.kubernetes_groups.is_empty() {
            rules.error("kubernetes_groups", format!("an access entry of type `{}` takes no Kubernetes groups: EKS puts its nodes in `system:nodes` itself", c.entry_type));
        }
        if !standard && c.username.is_some() {
            rules.error("username", format!("an access entry of type `{}` takes no username: EKS gives its nodes `system:node:{{{{EC2PrivateDNSName}}}}`", c.entry_type));
        }
        if !c.access_policies.is_empty() && !POLICY_TYPES.contains(&c.entry_type.as_str()) {
            rules.error("access_policies", format!("access policies go only with types STANDARD and EC2, not `{}`: EKS gives the other types their permissions itself", c.entry_type));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in c.access_policies.iter().enumerate() {
            if !seen.insert(p.policy.as_str()) {
                rules.error(
                    &format!("access_policies.{i}.policy"),
                    format!("`{}` is listed twice: one association per policy", p.policy),
                );
            }
        }
    }

    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        rules.enumerated("type", Some(&c.entry_type), TYPES);
        if !c.principal_arn.contains("${")
            && !(c.principal_arn.starts_with("arn:")
                && (c.principal_arn.contains(":role/") || c.principal_arn.contains(":user/")))
        {
            rules.error(
                "principal_arn",
                format!(
                    "`{}` is not an IAM role or user ARN (`arn:aws:iam::ACCOUNT:role/NAME`)",
                    c.principal_arn
                ),
            );
        }
        for (i, p) in c.access_policies.iter().enumerate() {
            for (j, ns) in p.namespaces.iter().enumerate() {
                if !crate::base::kubernetes_names::is_dns_label(ns) {
                    rules.error(
                        &format!("access_policies.{i}.namespaces.{j}"),
                        format!("`{ns}` is not a Kubernetes namespace name (lowercase letters, digits and `-`, at most 63)"),
                    );
                }
            }
        }
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let key = match &item.cloud_id {
                Some(id) => id
                    .split_once('/')
                    .map(|(c, p)| (c.to_string(), p.to_string())),
                None => str_attr(&item.attrs, "cluster_name")
                    .zip(str_attr(&item.attrs, "principal_arn"))
                    .filter(|(c, p)| !c.contains("${") && !p.contains("${"))
                    .map(|(c, p)| (c.to_string(), p.to_string())),
            };
            let Some((cluster, principal)) = key else {
                out.push(None);
                continue;
            };
            // A cluster that does not exist yet answers ResourceNotFoundException: `None`.
            out.push(read(ctx, &cluster, &principal).await?);
        }
        Ok(out)
    }

    async fn create(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let cluster = req_str(attrs, "cluster_name")?;
        let principal = req_str(attrs, "principal_arn")?;
        let made = ctx
            .aws
            .eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .r#type(str_attr(attrs, "type").unwrap_or("STANDARD"))
            .set_kubernetes_groups(
                Some(str_list(attrs, "kubernetes_groups")).filter(|g| !g.is_empty()),
            )
            .set_username(str_attr(attrs, "username").map(str::to_string))
            .send()
            .await
            .map_err(|e| aws_error("CreateAccessEntry", e));
        // An earlier attempt that made the entry before a crash: take it up again.
        match made {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(e),
        }
        let have = read(ctx, cluster, principal)
            .await?
            .map(|o| policies_of(&o.attrs))
            .unwrap_or_default();
        sync_policies(ctx, cluster, principal, &have, &policies_of(attrs)).await?;
        read(ctx, cluster, principal)
            .await?
            .ok_or_else(|| ResourceError::IncompleteAnswer {
                operation: "DescribeAccessEntry",
                lacks: "the access entry just made",
            })
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let (cluster, principal) = split_id(addr.kind, cloud_id)?;
        let (before, after) = (change.before, change.after);
        let groups = |v: &Value| {
            let mut g = str_list(v, "kubernetes_groups");
            g.sort();
            g
        };
        let user_changed =
            after.get("username").is_some() && before.get("username") != after.get("username");
        if groups(before) != groups(after) || user_changed {
            ctx.aws
                .eks
                .update_access_entry()
                .cluster_name(cluster)
                .principal_arn(principal)
                .set_kubernetes_groups(Some(groups(after)))
                .set_username(str_attr(after, "username").map(str::to_string))
                .send()
                .await
                .map_err(|e| aws_error("UpdateAccessEntry", e))?;
        }
        sync_policies(
            ctx,
            cluster,
            principal,
            &policies_of(before),
            &policies_of(after),
        )
        .await?;
        read(ctx, cluster, principal)
            .await?
            .ok_or_else(|| ResourceError::IncompleteAnswer {
                operation: "DescribeAccessEntry",
                lacks: "the access entry just updated",
            })
    }

    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let (cluster, principal) = split_id(addr.kind, cloud_id)?;
        match ctx
            .aws
            .eks
            .delete_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
            .map_err(|e| aws_error("DeleteAccessEntry", e))
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
