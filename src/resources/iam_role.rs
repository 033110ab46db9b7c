//! `iam_role`: a role with a trust policy and attached managed policies. Policy documents are
//! compared in a canonical form (keys sorted, single values as one-element lists, lists of
//! actions/principals sorted), so whitespace, key order or `"a"` vs `["a"]` never show a diff.

use super::{FieldRules, Unique, Shape, 
    aws_error, req_str, split_tags, str_list, tag_changes, Ctx, Lookup, Observed, ResourceError,
};
use crate::base::value::is_ref;
use crate::base::addr::ResourceAddr;
use aws_sdk_iam::types::Tag;
use super::BuildCtx;
use crate::base::partition::Partition;
use serde_json::{json, Map, Value};
use super::{Change, ImportId, KindFacts, ResourceKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One service principal, or a list of them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// An IAM role with a trust policy and attached managed policies.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IamRoleConfig {
    /// The role's name: 1 to 64 letters, digits and `+=,.@_-`.
    pub name: String,
    /// Service principal(s) allowed to assume the role, e.g. `eks.amazonaws.com` (this or
    /// `assume_role_policy`).
    pub assume_role_service: Option<OneOrMany>,
    /// A whole trust policy document as JSON text (this or `assume_role_service`).
    pub assume_role_policy: Option<String>,
    /// Managed policies to attach: names (`AmazonEKSClusterPolicy`, taken as
    /// `arn:aws:iam::aws:policy/NAME`) or ARNs.
    #[serde(default)]
    pub managed_policies: Vec<String>,
    /// The role's IAM path, e.g. `/eks/`; absent: `/`.
    pub path: Option<String>,
    /// The role's description; removing it leaves the one in IAM as it is.
    pub description: Option<String>,
    /// The role's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `[iam_role.NAME]`: see docs/spec.md.
pub struct IamRoleKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["name", "path"],
    outputs: &["arn", "name", "id"],
    mirrored_outputs: &["name"],
    identity: &["name"],
    lookup_key: &["name"],
    create_only: &[],
    set_valued: &["managed_policy_arns"],
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: None,
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique { field: "name", one_per: None }),
    output_shapes: &[
        ("arn", Shape::RoleArn),
        ("name", Shape::Other("an IAM role name")),
        ("id", Shape::Other("an IAM role id")),
    ],
    restricted_tags: Some("IAM"),
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

/// Keys whose value is a string or a list of strings with set semantics.
const SET_KEYS: &[&str] = &[
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Service",
    "AWS",
    "Federated",
    "CanonicalUser",
];

/// Canonical form of a policy document (see module docs).
pub fn canonical_policy(v: &Value) -> Value {
    canonical(None, v)
}

fn canonical(key: Option<&str>, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let child = &m[k];
                let c = if k == "Statement" && child.is_object() {
                    Value::Array(vec![canonical(None, child)])
                } else {
                    canonical(Some(k), child)
                };
                out.insert(k.clone(), c);
            }
            Value::Object(out)
        }
        Value::String(s) if key.is_some_and(|k| SET_KEYS.contains(&k)) => {
            Value::Array(vec![Value::String(s.clone())])
        }
        Value::Array(items) if key.is_some_and(|k| SET_KEYS.contains(&k)) => {
            let mut strs: Vec<Value> = items.iter().map(|i| canonical(None, i)).collect();
            strs.sort_by_key(|a| a.to_string());
            strs.dedup();
            Value::Array(strs)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| canonical(None, i)).collect()),
        other => other.clone(),
    }
}

/// `AmazonEKSClusterPolicy` → `arn:aws:iam::aws:policy/AmazonEKSClusterPolicy` (in the
/// partition's form: `arn:aws-cn:` in China); ARNs unchanged.
pub fn policy_arn(name_or_arn: &str, partition: &Partition) -> String {
    if name_or_arn.starts_with("arn:") || name_or_arn.contains("${") {
        name_or_arn.to_string()
    } else {
        partition.managed_policy_arn(name_or_arn)
    }
}

/// Spec config → attributes. Errors name the key at fault.
pub fn desired_attrs(
    c: &IamRoleConfig,
    partition: &Partition,
) -> Result<Value, (&'static str, String)> {
    let trust = match (&c.assume_role_service, &c.assume_role_policy) {
        (Some(svc), None) => json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": svc.to_vec()},
                "Action": "sts:AssumeRole",
            }],
        }),
        (None, Some(text)) => serde_json::from_str::<Value>(text).map_err(|e| {
            (
                "assume_role_policy",
                format!("assume_role_policy is not valid JSON: {e}"),
            )
        })?,
        (Some(_), Some(_)) => {
            return Err((
                "assume_role_policy",
                "set either `assume_role_service` or `assume_role_policy`, not both".into(),
            ))
        }
        (None, None) => {
            return Err((
                "name",
                "missing trust policy: set `assume_role_service` (e.g. \"eks.amazonaws.com\") or `assume_role_policy`".into(),
            ))
        }
    };
    let mut arns: Vec<String> = c.managed_policies.iter().map(|p| policy_arn(p, partition)).collect();
    arns.sort();
    arns.dedup();
    let mut attrs = json!({
        "name": c.name,
        "path": c.path.clone().unwrap_or_else(|| "/".into()),
        "assume_role_policy": canonical_policy(&trust),
        "managed_policy_arns": arns,
        "tags": c.tags,
    });
    if let (Some(d), Some(m)) = (&c.description, attrs.as_object_mut()) {
        m.insert("description".into(), json!(d));
    }
    Ok(attrs)
}

fn decode_policy(doc: &str) -> Value {
    // IAM returns policy documents URL-encoded.
    let decoded = percent_encoding::percent_decode_str(doc).decode_utf8_lossy();
    serde_json::from_str::<Value>(&decoded)
        .map(|v| canonical_policy(&v))
        .unwrap_or(Value::String(decoded.into_owned()))
}

async fn read(ctx: &Ctx, name: &str) -> Result<Option<Observed>, ResourceError> {
    let get = ctx.aws.iam.get_role().role_name(name).send();
    let list = ctx
        .aws
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>();
    let (got, attached) = tokio::join!(get, list);
    let role = match got {
        Ok(out) => match out.role {
            Some(r) => r,
            None => return Ok(None),
        },
        Err(e) => {
            let err = aws_error("GetRole", e);
            return if err.code() == Some("NoSuchEntity") {
                Ok(None)
            } else {
                Err(err)
            };
        }
    };
    let mut arns = Vec::new();
    for p in attached {
        match p {
            Ok(p) => arns.extend(p.policy_arn().map(String::from)),
            Err(e) => {
                let err = aws_error("ListAttachedRolePolicies", e);
                if err.code() == Some("NoSuchEntity") {
                    return Ok(None);
                }
                return Err(err);
            }
        }
    }
    arns.sort();
    let (tags, managed_by) = split_tags(
        role.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string())),
    );
    let mut attrs = json!({
        "name": role.role_name(),
        "path": role.path(),
        "assume_role_policy": role.assume_role_policy_document().map(decode_policy).unwrap_or(Value::Null),
        "managed_policy_arns": arns,
        "tags": tags,
    });
    if let (Some(d), Some(m)) = (role.description(), attrs.as_object_mut()) {
        m.insert("description".into(), json!(d));
    }
    Ok(Some(Observed {
        cloud_id: role.role_name().to_string(),
        attrs,
        outputs: json!({"arn": role.arn(), "name": role.role_name(), "id": role.role_id()}),
        managed_by,
    }))
}

fn iam_tags(tags: impl IntoIterator<Item = (String, String)>) -> Vec<Tag> {
    tags.into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn policy_text(attrs: &Value) -> Result<String, ResourceError> {
    attrs
        .get("assume_role_policy")
        .map(|p| p.to_string())
        .ok_or_else(|| ResourceError::MissingAttribute("assume_role_policy".into()))
}

async fn attach(ctx: &Ctx, role: &str, arn: &str) -> Result<(), ResourceError> {
    ctx.aws
        .iam
        .attach_role_policy()
        .role_name(role)
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| aws_error("AttachRolePolicy", e))?;
    Ok(())
}

async fn detach(ctx: &Ctx, role: &str, arn: &str) -> Result<(), ResourceError> {
    match ctx
        .aws
        .iam
        .detach_role_policy()
        .role_name(role)
        .policy_arn(arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let err = aws_error("DetachRolePolicy", e);
            if err.code() == Some("NoSuchEntity") {
                Ok(())
            } else {
                Err(err)
            }
        }
    }
}

impl ResourceKind for IamRoleKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = IamRoleConfig;

    /// The role's name and its policies' names.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if !rules.is_iam_name(&c.name, 64) && !is_ref(&c.name) {
            rules.error("name", format!(
                    "role name `{}` must be 1–64 characters of letters, digits and +=,.@_-",
                    c.name
                ));
        }
        for (i, p) in c.managed_policies.iter().enumerate() {
            if p.trim().is_empty() {
                rules.error(&format!("managed_policies.{i}"), "empty policy name".into());
            }
        }
    }
    /// Its path, managed policies, trust policy and description.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        if let Some(p) = &c.path {
            rules.iam_path(p);
        }
        for (i, p) in c.managed_policies.iter().enumerate() {
            rules.policy(&format!("managed_policies.{i}"), p);
        }
        if let Some(text) = &c.assume_role_policy {
            rules.trust_policy(text);
        }
        for s in c.assume_role_service.iter().flat_map(|s| s.to_vec()) {
            rules.service_principal("assume_role_service", &s);
        }
        if let Some(desc) = &c.description {
            if desc.chars().count() > 1000 {
                rules.error(
                    "description",
                    "an IAM role description is at most 1000 characters".into(),
                );
            }
        }
    
    }

    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        desired_attrs(c, build.partition).map_err(|e| vec![e])
    }

    /// IAM has no batch read: all roles are read concurrently (GetRole and the policy list of one
    /// role in parallel too), so the wall time is one round trip whatever the count.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let reads = items.iter().map(|i| async move {
            let name = i
                .cloud_id
                .clone()
                .or_else(|| super::str_attr(&i.attrs, "name").map(String::from));
            match name {
                Some(n) => read(ctx, &n).await,
                None => Ok(None),
            }
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let name = req_str(attrs, "name")?;
        let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        let mut req = ctx
            .aws
            .iam
            .create_role()
            .role_name(name)
            .path(super::str_attr(attrs, "path").unwrap_or("/"))
            .assume_role_policy_document(policy_text(attrs)?)
            .set_tags(Some(iam_tags(tags)));
        if let Some(d) = super::str_attr(attrs, "description") {
            req = req.description(d);
        }
        req.send().await.map_err(|e| aws_error("CreateRole", e))?;
        for arn in str_list(attrs, "managed_policy_arns") {
            attach(ctx, name, &arn).await?;
        }
        read(ctx, name)
            .await?
            .ok_or_else(|| ResourceError::NotReadBack {
                what: format!("role {name}"),
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
        if before.get("assume_role_policy") != after.get("assume_role_policy") {
            ctx.aws
                .iam
                .update_assume_role_policy()
                .role_name(cloud_id)
                .policy_document(policy_text(after)?)
                .send()
                .await
                .map_err(|e| aws_error("UpdateAssumeRolePolicy", e))?;
        }
        if before.get("description") != after.get("description") {
            ctx.aws
                .iam
                .update_role()
                .role_name(cloud_id)
                .description(super::str_attr(after, "description").unwrap_or(""))
                .send()
                .await
                .map_err(|e| aws_error("UpdateRole", e))?;
        }
        let old = str_list(before, "managed_policy_arns");
        let new = str_list(after, "managed_policy_arns");
        for arn in new.iter().filter(|a| !old.contains(a)) {
            attach(ctx, cloud_id, arn).await?;
        }
        for arn in old.iter().filter(|a| !new.contains(a)) {
            detach(ctx, cloud_id, arn).await?;
        }
        let (removed, set) = tag_changes(before, after);
        if !removed.is_empty() {
            ctx.aws
                .iam
                .untag_role()
                .role_name(cloud_id)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .map_err(|e| aws_error("UntagRole", e))?;
        }
        if !set.is_empty() {
            ctx.aws
                .iam
                .tag_role()
                .role_name(cloud_id)
                .set_tags(Some(iam_tags(set)))
                .send()
                .await
                .map_err(|e| aws_error("TagRole", e))?;
        }
        read(ctx, cloud_id)
            .await?
            .ok_or_else(|| ResourceError::Disappeared {
                what: format!("role {cloud_id}"),
            })
    }

    /// Detaches every managed policy and deletes inline ones first: IAM refuses to delete a role
    /// that still has policies (DeleteConflict).
    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let Some(current) = read(ctx, cloud_id).await? else {
            return Ok(());
        };
        for arn in str_list(&current.attrs, "managed_policy_arns") {
            detach(ctx, cloud_id, &arn).await?;
        }
        let inline = ctx
            .aws
            .iam
            .list_role_policies()
            .role_name(cloud_id)
            .send()
            .await
            .map_err(|e| aws_error("ListRolePolicies", e))?;
        for p in inline.policy_names() {
            ctx.aws
                .iam
                .delete_role_policy()
                .role_name(cloud_id)
                .policy_name(p)
                .send()
                .await
                .map_err(|e| aws_error("DeleteRolePolicy", e))?;
        }
        match ctx.aws.iam.delete_role().role_name(cloud_id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("DeleteRole", e);
                if err.code() == Some("NoSuchEntity") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}
