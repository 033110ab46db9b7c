//! `karpenter_node_class`: one Karpenter `EC2NodeClass` (`karpenter.k8s.aws/v1`,
//! cluster-scoped): the node role, the node subnets and security groups, the AMI and the
//! kubelet's max pods of the nodes Karpenter launches for the NodePools that name it
//! (aws/karpenter-provider-aws `docs/concepts/nodeclasses.md`). The CRD comes with the
//! Karpenter Helm chart. Written with server-side apply (field manager `eksnet`), like an
//! ENIConfig. The checks across kinds (node subnets are not pod subnets, max pods under
//! custom networking) are in `domain::karpenter`.

use super::{req_str, str_list, BuildCtx};
use super::{
    Change, Ctx, FieldRules, ImportId, KindFacts, Lookup, Observed, ResourceError, ResourceKind,
    Shape, Unique,
};
use crate::base::addr::{Kind, ResourceAddr};
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// One `EC2NodeClass` of a cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KarpenterNodeClassConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The object's name; absent: the table's key.
    pub name: Option<String>,
    /// The node role's NAME (not its ARN): Karpenter makes the instance profile.
    pub role: String,
    /// The node subnets (`subnetSelectorTerms`, one `id` term each); never pod subnets.
    #[schemars(length(min = 1))]
    pub subnet_ids: Vec<String>,
    /// The nodes' security groups (`securityGroupSelectorTerms`); absent: the cluster
    /// security group.
    pub security_group_ids: Option<Vec<String>>,
    /// The AMI alias (`amiSelectorTerms: [{alias}]`), e.g. `al2023@latest`.
    #[serde(default = "default_alias")]
    pub ami_alias: String,
    /// The kubelet's max pods (`kubelet.maxPods`); absent under custom networking: eksnet
    /// sets the value of the smallest instance type its NodePools allow.
    pub max_pods: Option<u32>,
}

fn default_alias() -> String {
    "al2023@latest".into()
}

/// `[karpenter_node_class.NAME]`: see docs/spec.md.
pub struct KarpenterNodeClassKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "name"],
    outputs: &["name"],
    mirrored_outputs: &["name"],
    identity: &["cluster_name", "name"],
    lookup_key: &["cluster_name", "name"],
    create_only: &[],
    set_valued: &["subnet_ids", "security_group_ids"],
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: true,
    import_id: ImportId::ClusterSlashName,
    replacement: None,
    compared_when_unset: &["max_pods"],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "name",
        one_per: None,
    }),
    output_shapes: &[],
    restricted_tags: None,
    parent: Some(Kind::Cluster),
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

use super::eks::{KARPENTER_NODE_CLASS_GROUP as GROUP, KARPENTER_NODE_CLASS_KIND as KIND};

pub fn api_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: KIND.into(),
        plural: "ec2nodeclasses".into(),
    }
}

/// The `id` of each selector term that has one (a term of tags or names, written elsewhere,
/// shows as no id, so the plan puts the spec's back).
fn term_ids(spec: Option<&Value>, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = spec
        .and_then(|s| s.get(field))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("id").and_then(Value::as_str).map(String::from))
        .collect();
    ids.sort();
    ids
}

fn observe(cluster: &str, o: &DynamicObject) -> Option<Observed> {
    let name = o.metadata.name.clone()?;
    let spec = o.data.get("spec");
    let alias = spec
        .and_then(|s| s.get("amiSelectorTerms"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|t| t.get("alias").and_then(Value::as_str));
    let mut attrs = json!({
        "cluster_name": cluster, "name": name,
        "role": spec.and_then(|s| s.get("role")).cloned().unwrap_or(Value::Null),
        "subnet_ids": term_ids(spec, "subnetSelectorTerms"),
        "security_group_ids": term_ids(spec, "securityGroupSelectorTerms"),
        "ami_alias": alias,
    });
    let max_pods = spec
        .and_then(|s| s.get("kubelet"))
        .and_then(|k| k.get("maxPods"))
        .and_then(Value::as_u64);
    if let (Some(n), Some(m)) = (max_pods, attrs.as_object_mut()) {
        m.insert("max_pods".into(), json!(n));
    }
    let annotations = o.metadata.annotations.clone().unwrap_or_default();
    Some(Observed {
        cloud_id: format!("{cluster}/{name}"),
        attrs,
        outputs: json!({"name": name}),
        managed_by: annotations.get(super::KUBE_STATE_ANNOTATION).cloned(),
    })
}

/// The object's spec from the attributes.
fn object_spec(attrs: &Value) -> Result<Value, ResourceError> {
    let terms = |key: &str| -> Vec<Value> {
        str_list(attrs, key)
            .into_iter()
            .map(|id| json!({ "id": id }))
            .collect()
    };
    let mut spec = json!({
        "role": req_str(attrs, "role")?,
        "subnetSelectorTerms": terms("subnet_ids"),
        "securityGroupSelectorTerms": terms("security_group_ids"),
        "amiSelectorTerms": [{"alias": req_str(attrs, "ami_alias")?}],
    });
    if let Some(n) = attrs.get("max_pods").and_then(Value::as_u64) {
        spec["kubelet"] = json!({ "maxPods": n });
    }
    Ok(spec)
}

async fn apply_object(
    ctx: &Ctx,
    addr: &ResourceAddr,
    attrs: &Value,
) -> Result<Observed, ResourceError> {
    let cluster = req_str(attrs, "cluster_name")?;
    let name = req_str(attrs, "name")?;
    let applied = super::apply_cluster_object(
        ctx,
        addr,
        cluster,
        &api_resource(),
        name,
        object_spec(attrs)?,
        "apply ec2nodeclass",
    )
    .await?;
    observe(cluster, &applied).ok_or_else(|| {
        ResourceError::Invalid(format!("EC2NodeClass {name} came back without a name"))
    })
}

/// Karpenter's AMI aliases: `FAMILY@VERSION` with the families it documents for aliases
/// (nodeclasses.md, `amiSelectorTerms.alias`).
const ALIAS_FAMILIES: &[&str] = &[
    "al2",
    "al2023",
    "bottlerocket",
    "windows2019",
    "windows2022",
];

impl ResourceKind for KarpenterNodeClassKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = KarpenterNodeClassConfig;

    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if c.subnet_ids.is_empty() {
            rules.error(
                "subnet_ids",
                "give at least one node subnet: Karpenter launches nodes only in the subnets the node class selects".into(),
            );
        }
        if c.max_pods == Some(0) {
            rules.error(
                "max_pods",
                "`max_pods = 0` lets no pod run on the nodes; leave it out or give the number the nodes' ENIs hold".into(),
            );
        }
        let family = c.ami_alias.split_once('@').map(|(f, _)| f);
        if !family.is_some_and(|f| ALIAS_FAMILIES.contains(&f)) {
            rules.error(
                "ami_alias",
                format!("`{}` is not a Karpenter AMI alias: FAMILY@VERSION with FAMILY one of {}, e.g. `al2023@latest`", c.ami_alias, ALIAS_FAMILIES.join(", ")),
            );
        }
    }

    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &c.cluster_name, Shape::ClusterName);
        if let Some(name) = &c.name {
            rules.kubernetes_name("name", name, false);
        }
        if c.role.starts_with("arn:") {
            rules.error(
                "role",
                format!("`role` is the node role's name, not its ARN (Karpenter makes the instance profile from it): write `{}` or `${{iam_role.NAME.name}}`", c.role.rsplit('/').next().unwrap_or(&c.role)),
            );
        }
        for (i, s) in c.subnet_ids.iter().enumerate() {
            rules.shaped(&format!("subnet_ids.{i}"), s, Shape::SubnetId);
        }
        for (i, g) in c.security_group_ids.iter().flatten().enumerate() {
            rules.shaped(
                &format!("security_group_ids.{i}"),
                g,
                Shape::SecurityGroupId,
            );
        }
    }

    /// The name defaults to the table's key; the security groups to the cluster security
    /// group (what a nodegroup's nodes get).
    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let name = super::object_name(c.name.as_ref(), build, "node class")?;
        let mut errors = Vec::new();
        let groups = super::groups_or_cluster_group(
            c.security_group_ids.as_ref(),
            &c.cluster_name,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut attrs = json!({
            "cluster_name": c.cluster_name,
            "name": name,
            "role": c.role,
            "subnet_ids": c.subnet_ids,
            "security_group_ids": groups,
            "ami_alias": c.ami_alias,
        });
        if let (Some(n), Some(m)) = (c.max_pods, attrs.as_object_mut()) {
            m.insert("max_pods".into(), json!(n));
        }
        Ok(attrs)
    }

    /// One LIST of node classes per cluster.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        super::refresh_cluster_objects(ctx, items, &api_resource(), "list ec2nodeclasses", observe)
            .await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        apply_object(ctx, addr, attrs).await
    }

    /// Server-side apply again. Karpenter applies a changed node class to the nodes it
    /// launches next; its drift detection replaces the others (disruption.md, "Drift").
    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        _cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        apply_object(ctx, addr, change.after).await
    }

    /// Karpenter keeps a node class with a finalizer until the nodes launched from it are
    /// gone (nodeclasses.md); the pools naming it go first (ordering).
    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        super::delete_cluster_object(
            ctx,
            Kind::KarpenterNodeClass,
            cloud_id,
            &api_resource(),
            "delete ec2nodeclass",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attributes make the object's spec, and the object reads back as the same
    /// attributes (ids sorted, max pods only when set).
    #[test]
    fn a_node_class_round_trips() {
        let attrs = json!({
            "cluster_name": "demo", "name": "default", "role": "node",
            "subnet_ids": ["subnet-0000000b", "subnet-0000000a"],
            "security_group_ids": ["sg-0000000a"], "ami_alias": "al2023@latest", "max_pods": 11,
        });
        let spec = object_spec(&attrs).unwrap();
        assert_eq!(spec["kubelet"], json!({"maxPods": 11}));
        assert_eq!(
            spec["subnetSelectorTerms"],
            json!([{"id": "subnet-0000000b"}, {"id": "subnet-0000000a"}])
        );
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.k8s.aws/v1", "kind": KIND,
            "metadata": {"name": "default"}, "spec": spec,
        }))
        .unwrap();
        let seen = observe("demo", &o).unwrap();
        assert_eq!(seen.cloud_id, "demo/default");
        assert_eq!(
            seen.attrs["subnet_ids"],
            json!(["subnet-0000000a", "subnet-0000000b"])
        );
        assert_eq!(seen.attrs["max_pods"], json!(11));
        assert_eq!(seen.attrs["ami_alias"], json!("al2023@latest"));
        let mut without = attrs.clone();
        without.as_object_mut().unwrap().remove("max_pods");
        assert!(object_spec(&without).unwrap().get("kubelet").is_none());
    }
}
