//! `iam_role`: a role with a trust policy and attached managed policies. Policy documents are
//! compared in a canonical form (keys sorted, single values as one-element lists, lists of
//! actions/principals sorted), so whitespace, key order or `"a"` vs `["a"]` never show a diff.

use super::BuildCtx;
use super::{
    aws_error, iam_tags, req_str, split_tags, str_list, tag_changes, Ctx, FieldRules, Lookup,
    Observed, ResourceError, Shape, Unique,
};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::ResourceAddr;
use crate::base::partition::Partition;
use crate::base::value::is_ref;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
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

/// IAM roles for service accounts (IRSA): the pods of one Kubernetes service account assume
/// the role with the tokens of the cluster's OIDC issuer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebIdentity {
    /// The IAM OIDC provider of the cluster's issuer, usually `${oidc_provider.NAME.arn}`.
    pub provider_arn: String,
    /// The service account as `NAMESPACE:NAME`, e.g. `kube-system:aws-node`.
    pub service_account: String,
}

/// An IAM role with a trust policy and attached managed policies.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IamRoleConfig {
    /// The role's name: 1 to 64 letters, digits and `+=,.@_-`.
    pub name: String,
    /// Service principal(s) allowed to assume the role, e.g. `eks.amazonaws.com`;
    /// `pods.eks.amazonaws.com` (EKS Pod Identity) is also allowed `sts:TagSession`. Not with
    /// `assume_role_policy`.
    pub assume_role_service: Option<OneOrMany>,
    /// IRSA: the service account, through the cluster's OIDC provider, allowed
    /// `sts:AssumeRoleWithWebIdentity`. With `assume_role_service` or alone; not with
    /// `assume_role_policy`.
    pub assume_role_web_identity: Option<WebIdentity>,
    /// A whole trust policy document as JSON text (instead of `assume_role_service` and
    /// `assume_role_web_identity`).
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
    unique: Some(Unique {
        field: "name",
        one_per: None,
    }),
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

/// The service principal of EKS Pod Identity: the Pod Identity Agent assumes the role for a
/// pod and tags the session (eks-cluster-name, kubernetes-namespace, …), so the trust must
/// allow `sts:TagSession` too (EKS user guide, `manage-access/aws-access/pod-id-role.adoc`).
pub const POD_IDENTITY_PRINCIPAL: &str = "pods.eks.amazonaws.com";

/// The audience of the tokens the EKS Pod Identity webhook mounts for IRSA, and the client id
/// the OIDC provider must list (EKS user guide, `enable-iam-roles-for-service-accounts.adoc`).
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";

/// What stands for the issuer (the OIDC provider ARN's part after `oidc-provider/`) in the
/// condition keys of a web identity statement, in the canonical form: the key
/// `oidc.eks.us-west-2.amazonaws.com/id/ABC:sub` of a statement whose `Federated` principal is
/// that provider reads `<issuer>:sub`. So a trust whose provider ARN is known only after apply
/// can be written, compared and shown before it is; `request_policy` puts the issuer back.
pub const ISSUER_PLACEHOLDER: &str = "<issuer>";

/// Canonical form of a policy document (see module docs), with the issuer of a web identity
/// statement's condition keys as `ISSUER_PLACEHOLDER`.
pub fn canonical_policy(v: &Value) -> Value {
    let mut c = canonical(None, v);
    issuer_keys(&mut c, |issuer, key| {
        key.strip_prefix(issuer)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|rest| format!("{ISSUER_PLACEHOLDER}:{rest}"))
    });
    c
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

/// The issuer (host and path) an OIDC provider ARN names: `arn:aws:iam::1:oidc-provider/HOST/PATH`
/// → `HOST/PATH`.
pub fn oidc_issuer(provider_arn: &str) -> Option<&str> {
    let rest = provider_arn.strip_prefix("arn:")?;
    let (_, resource) = rest.split_once(":oidc-provider/")?;
    (!resource.is_empty()).then_some(resource)
}

/// Renames the condition keys of every statement whose one `Federated` principal is an OIDC
/// provider with a known issuer: `rename(issuer, key)` gives the new key, `None` keeps it.
fn issuer_keys(policy: &mut Value, rename: impl Fn(&str, &str) -> Option<String>) {
    let Some(statements) = policy.get_mut("Statement").and_then(Value::as_array_mut) else {
        return;
    };
    for st in statements {
        let federated: Vec<&str> = match st.pointer("/Principal/Federated") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        let [one] = federated.as_slice() else {
            continue;
        };
        let Some(issuer) = oidc_issuer(one).map(String::from) else {
            continue;
        };
        let Some(conditions) = st.get_mut("Condition").and_then(Value::as_object_mut) else {
            continue;
        };
        for operator in conditions.values_mut() {
            let Some(keys) = operator.as_object_mut() else {
                continue;
            };
            *keys = std::mem::take(keys)
                .into_iter()
                .map(|(k, v)| (rename(&issuer, &k).unwrap_or(k), v))
                .collect();
        }
    }
}

/// The trust policy as IAM takes it: the canonical form with the issuer put back into the
/// condition keys (see `ISSUER_PLACEHOLDER`).
pub fn request_policy(canonical: &Value) -> Value {
    let mut doc = canonical.clone();
    issuer_keys(&mut doc, |issuer, key| {
        key.strip_prefix(ISSUER_PLACEHOLDER)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|rest| format!("{issuer}:{rest}"))
    });
    doc
}

/// The statements `assume_role_service` and `assume_role_web_identity` give: one for the
/// services (`sts:AssumeRole`), one for EKS Pod Identity (`sts:AssumeRole` and
/// `sts:TagSession`, which it needs), one for the service account (IRSA: the provider,
/// `sts:AssumeRoleWithWebIdentity`, the token's audience and subject).
fn trust_statements(services: &[String], web: Option<&WebIdentity>) -> Vec<Value> {
    let mut statements = Vec::new();
    let others: Vec<&String> = services
        .iter()
        .filter(|s| s.as_str() != POD_IDENTITY_PRINCIPAL)
        .collect();
    if !others.is_empty() {
        statements.push(json!({
            "Effect": "Allow",
            "Principal": {"Service": others},
            "Action": "sts:AssumeRole",
        }));
    }
    if services.iter().any(|s| s == POD_IDENTITY_PRINCIPAL) {
        statements.push(json!({
            "Effect": "Allow",
            "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }));
    }
    if let Some(w) = web {
        statements.push(json!({
            "Effect": "Allow",
            "Principal": {"Federated": w.provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{ISSUER_PLACEHOLDER}:aud"): IRSA_AUDIENCE,
                format!("{ISSUER_PLACEHOLDER}:sub"): format!("system:serviceaccount:{}", w.service_account),
            }},
        }));
    }
    statements
}

/// Whether a canonical trust policy lets `principal` assume the role with all of `actions`
/// (an `Allow` statement naming the service; `sts:*` or `*` count).
pub fn trusts_service(trust: &Value, principal: &str, actions: &[&str]) -> bool {
    let Some(statements) = trust.get("Statement").and_then(Value::as_array) else {
        return false;
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut allowed: Vec<String> = Vec::new();
    for st in statements {
        let allows = st.get("Effect").and_then(Value::as_str) == Some("Allow");
        let names = strings(st.pointer("/Principal/Service"));
        if allows && names.iter().any(|n| n == principal) {
            allowed.extend(strings(st.get("Action")));
        }
    }
    actions.iter().all(|a| {
        allowed
            .iter()
            .any(|x| x == "*" || x.eq_ignore_ascii_case("sts:*") || x.eq_ignore_ascii_case(a))
    })
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
    let built = c.assume_role_service.is_some() || c.assume_role_web_identity.is_some();
    let trust = match (built, &c.assume_role_policy) {
        (true, None) => {
            let services = c
                .assume_role_service
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or_default();
            json!({
                "Version": "2012-10-17",
                "Statement": trust_statements(&services, c.assume_role_web_identity.as_ref()),
            })
        }
        (false, Some(text)) => serde_json::from_str::<Value>(text).map_err(|e| {
            (
                "assume_role_policy",
                format!("assume_role_policy is not valid JSON: {e}"),
            )
        })?,
        (true, Some(_)) => {
            return Err((
                "assume_role_policy",
                "`assume_role_policy` is a whole trust policy: set it, or `assume_role_service` and/or `assume_role_web_identity`, not both".into(),
            ))
        }
        (false, None) => {
            return Err((
                "name",
                "missing trust policy: set `assume_role_service` (e.g. \"eks.amazonaws.com\"), `assume_role_web_identity` or `assume_role_policy`".into(),
            ))
        }
    };
    let mut arns: Vec<String> = c
        .managed_policies
        .iter()
        .map(|p| policy_arn(p, partition))
        .collect();
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

fn policy_text(attrs: &Value) -> Result<String, ResourceError> {
    attrs
        .get("assume_role_policy")
        .map(|p| request_policy(p).to_string())
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

/// `NAMESPACE:NAME` of a Kubernetes service account: a namespace is a DNS-1123 label (at most
/// 63 lowercase letters, digits and `-`), a service account's name a DNS-1123 subdomain (at most
/// 253, with `.` too), each starting and ending with a letter or digit (Kubernetes
/// `apimachinery/pkg/util/validation`). A reference is checked once known.
fn service_account_shape(s: &str) -> Result<(), String> {
    if is_ref(s) {
        return Ok(());
    }
    let Some((namespace, name)) = s.split_once(':') else {
        return Err("no `:` between the namespace and the name".into());
    };
    let dns = |part: &str, max: usize, dots: bool| {
        !part.is_empty()
            && part.len() <= max
            && part.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
            })
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if !dns(namespace, 63, false) {
        return Err(format!("the namespace `{namespace}` is not a Kubernetes namespace name (at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit)"));
    }
    if !dns(name, 253, true) {
        return Err(format!("the name `{name}` is not a Kubernetes object name (lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit)"));
    }
    Ok(())
}

impl ResourceKind for IamRoleKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = IamRoleConfig;

    /// The role's name and its policies' names.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if !rules.is_iam_name(&c.name, 64) && !is_ref(&c.name) {
            rules.error(
                "name",
                format!(
                    "role name `{}` must be 1–64 characters of letters, digits and +=,.@_-",
                    c.name
                ),
            );
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
        if let Some(w) = &c.assume_role_web_identity {
            rules.shaped(
                "assume_role_web_identity.provider_arn",
                &w.provider_arn,
                Shape::OidcProviderArn,
            );
            if let Err(why) = service_account_shape(&w.service_account) {
                rules.error(
                    "assume_role_web_identity.service_account",
                    format!(
                        "`{}` is not a service account as `NAMESPACE:NAME` (like `kube-system:aws-node`): {why}",
                        w.service_account
                    ),
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::value::{is_unknown, resolve};

    fn config(v: Value) -> IamRoleConfig {
        serde_json::from_value(v).expect("config")
    }

    fn trust(v: Value) -> Value {
        desired_attrs(&config(v), Partition::commercial()).expect("attributes")
            ["assume_role_policy"]
            .clone()
    }

    const PROVIDER: &str =
        "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    const ISSUER: &str = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

    /// The trust IRSA needs, as IAM holds it (AWS's example, EKS user guide
    /// `associate-service-account-role.adoc`).
    fn irsa_as_iam_has_it(issuer: &str, sub: &str) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": format!("arn:aws:iam::111122223333:oidc-provider/{issuer}")},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{issuer}:aud"): "sts.amazonaws.com",
                    format!("{issuer}:sub"): sub,
                }},
            }],
        })
    }

    /// Pod Identity needs `sts:TagSession` beside `sts:AssumeRole`; other services keep the
    /// statement they always had (no change for existing roles).
    #[test]
    fn pod_identity_is_trusted_with_tag_session_and_other_services_as_before() {
        let pods = trust(json!({"name": "r", "assume_role_service": "pods.eks.amazonaws.com"}));
        assert_eq!(
            pods["Statement"],
            json!([{"Action": ["sts:AssumeRole", "sts:TagSession"], "Effect": "Allow",
                    "Principal": {"Service": ["pods.eks.amazonaws.com"]}}])
        );
        assert!(trusts_service(
            &pods,
            POD_IDENTITY_PRINCIPAL,
            &["sts:AssumeRole", "sts:TagSession"]
        ));
        let both = trust(
            json!({"name": "r", "assume_role_service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com"]}),
        );
        assert_eq!(both["Statement"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            both["Statement"][0],
            json!({"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}})
        );
        let ec2 = trust(json!({"name": "r", "assume_role_service": "ec2.amazonaws.com"}));
        assert!(!trusts_service(
            &ec2,
            POD_IDENTITY_PRINCIPAL,
            &["sts:AssumeRole"]
        ));
        // A hand-written trust without TagSession does not do for Pod Identity.
        let no_tag = canonical_policy(
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        );
        assert!(!trusts_service(
            &no_tag,
            POD_IDENTITY_PRINCIPAL,
            &["sts:AssumeRole", "sts:TagSession"]
        ));
    }

    /// IRSA's trust from the provider ARN and `NS:NAME`: what is sent is AWS's own example,
    /// and IAM's copy read back compares equal; another subject or another issuer does not.
    #[test]
    fn the_web_identity_trust_is_sent_as_iam_documents_it_and_compared_back() {
        let desired = trust(json!({"name": "r", "assume_role_web_identity":
            {"provider_arn": PROVIDER, "service_account": "kube-system:aws-node"}}));
        let sent = request_policy(&desired);
        let expected = irsa_as_iam_has_it(ISSUER, "system:serviceaccount:kube-system:aws-node");
        assert_eq!(canonical(None, &sent), canonical(None, &expected));
        // Read back (IAM's layout) it is no change.
        assert_eq!(canonical_policy(&expected), desired);
        // Drift: another service account, or the keys of another issuer.
        let other_sa = irsa_as_iam_has_it(ISSUER, "system:serviceaccount:default:x");
        assert_ne!(canonical_policy(&other_sa), desired);
        let mut other_issuer = irsa_as_iam_has_it(
            "oidc.eks.us-west-2.amazonaws.com/id/OTHER",
            "system:serviceaccount:kube-system:aws-node",
        );
        other_issuer["Statement"][0]["Principal"]["Federated"] = json!(PROVIDER);
        assert_ne!(canonical_policy(&other_issuer), desired);
    }

    /// A provider made in the same apply: the trust is unknown until its ARN is, and resolved
    /// it is the trust of the literal ARN.
    #[test]
    fn a_provider_arn_known_after_apply_leaves_the_trust_unknown_until_then() {
        let reference = "${oidc_provider.main.arn}";
        let desired = trust(json!({"name": "r", "assume_role_web_identity":
            {"provider_arn": reference, "service_account": "kube-system:aws-node"}}));
        assert!(is_unknown(&desired));
        let resolved = resolve(&desired, &|r| (r.raw == reference).then(|| json!(PROVIDER)));
        let literal = trust(json!({"name": "r", "assume_role_web_identity":
            {"provider_arn": PROVIDER, "service_account": "kube-system:aws-node"}}));
        assert_eq!(resolved, literal);
    }

    /// Services and a web identity go together; a whole document goes alone.
    #[test]
    fn which_trust_fields_go_together() {
        let web = json!({"provider_arn": PROVIDER, "service_account": "kube-system:aws-node"});
        let both = trust(
            json!({"name": "r", "assume_role_service": "pods.eks.amazonaws.com",
            "assume_role_web_identity": web}),
        );
        assert_eq!(both["Statement"].as_array().map(Vec::len), Some(2));
        let doc = r#"{"Version":"2012-10-17","Statement":[]}"#;
        for extra in [
            json!({"assume_role_service": "eks.amazonaws.com"}),
            json!({"assume_role_web_identity": web}),
        ] {
            let mut c = json!({"name": "r", "assume_role_policy": doc});
            if let (Some(m), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            let err = desired_attrs(&config(c), Partition::commercial()).unwrap_err();
            assert_eq!(err.0, "assume_role_policy");
        }
        let none =
            desired_attrs(&config(json!({"name": "r"})), Partition::commercial()).unwrap_err();
        assert!(none.1.contains("assume_role_web_identity"), "{}", none.1);
    }

    #[test]
    fn service_accounts_are_namespace_colon_name() {
        assert!(service_account_shape("kube-system:aws-node").is_ok());
        assert!(service_account_shape("${x.y.z}").is_ok());
        assert!(service_account_shape("aws-node")
            .unwrap_err()
            .contains("no `:`"));
        assert!(service_account_shape("Kube-System:aws-node")
            .unwrap_err()
            .contains("namespace"));
        assert!(service_account_shape("kube-system:aws_node")
            .unwrap_err()
            .contains("name"));
        assert!(service_account_shape(&format!("{}:a", "n".repeat(64))).is_err());
        assert_eq!(oidc_issuer(PROVIDER), Some(ISSUER));
        assert_eq!(oidc_issuer("arn:aws:iam::1:role/x"), None);
    }
}
