//! `karpenter_node_pool`: one Karpenter `NodePool` (`karpenter.sh/v1`, cluster-scoped): which
//! instance types Karpenter may launch for unschedulable pods, from which `EC2NodeClass`, up
//! to which limits, with which labels (aws/karpenter-provider-aws
//! `docs/concepts/nodepools.md`). The CRD comes with the Karpenter Helm chart. Written with
//! server-side apply (field manager `eksnet`), like an ENIConfig.

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
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// One `NodePool` of a cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KarpenterNodePoolConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The object's name; absent: the table's key.
    pub name: Option<String>,
    /// The node class's object name (`nodeClassRef.name`): a `karpenter_node_class` of the
    /// same cluster in the spec.
    pub node_class: String,
    /// The instance types Karpenter may launch (requirement `node.kubernetes.io/instance-type
    /// In [...]`).
    #[schemars(length(min = 1))]
    pub instance_types: Vec<String>,
    /// Further requirements, e.g. `{ key = "karpenter.sh/capacity-type", operator = "In",
    /// values = ["on-demand"] }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Requirement>,
    /// The most the pool's nodes may add up to (`limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Labels Karpenter sets on the pool's nodes (`template.metadata.labels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One scheduling requirement (a node selector requirement).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The node label the requirement is on, e.g. `karpenter.sh/capacity-type`.
    pub key: String,
    /// One of Karpenter's operators: In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte, Lte.
    pub operator: String,
    /// The label's values: none for Exists and DoesNotExist, one number for Gt, Lt, Gte, Lte.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A pool's limits: across its nodes, CPU (cores, a Kubernetes quantity), memory (a
/// quantity, e.g. `1000Gi`) and the node count.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU cores across the pool's nodes, a quantity such as `"100"` or `"1000m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory across the pool's nodes, a quantity such as `"1000Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The most nodes the pool may have; eksnet sizes the pod subnets for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
}

/// `[karpenter_node_pool.NAME]`: see docs/spec.md.
pub struct KarpenterNodePoolKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "name"],
    outputs: &["name"],
    mirrored_outputs: &["name"],
    identity: &["cluster_name", "name"],
    lookup_key: &["cluster_name", "name"],
    create_only: &[],
    set_valued: &["instance_types"],
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: true,
    import_id: ImportId::ClusterSlashName,
    replacement: None,
    compared_when_unset: &["limits", "labels", "requirements"],
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

/// The operators of a NodePool requirement (nodepools.md, "spec.template.spec.requirements").
pub const OPERATORS: &[&str] = &[
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "Gt",
    "Lt",
    "Gte",
    "Lte",
];

/// The well-known label of a node's instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

pub fn api_resource() -> ApiResource {
    ApiResource {
        group: "karpenter.sh".into(),
        version: "v1".into(),
        api_version: "karpenter.sh/v1".into(),
        kind: "NodePool".into(),
        plural: "nodepools".into(),
    }
}

/// A quantity as the API gives it back (a string, or a number as written) as a string.
fn quantity(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn observe(cluster: &str, o: &DynamicObject) -> Option<Observed> {
    let name = o.metadata.name.clone()?;
    let spec = o.data.get("spec");
    let template = spec.and_then(|s| s.get("template"));
    let node_spec = template.and_then(|t| t.get("spec"));
    let mut instance_types = Vec::new();
    let mut requirements = Vec::new();
    for r in node_spec
        .and_then(|s| s.get("requirements"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
        let operator = r
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let values = str_list(r, "values");
        // The first `instance-type In` requirement is the spec's `instance_types`.
        if key == INSTANCE_TYPE_LABEL && operator == "In" && instance_types.is_empty() {
            instance_types = values;
        } else {
            requirements.push(json!({"key": key, "operator": operator, "values": values}));
        }
    }
    instance_types.sort();
    let mut attrs = json!({
        "cluster_name": cluster, "name": name,
        "node_class": node_spec
            .and_then(|s| s.get("nodeClassRef"))
            .and_then(|r| r.get("name"))
            .cloned()
            .unwrap_or(Value::Null),
        "instance_types": instance_types,
    });
    let m = attrs.as_object_mut()?;
    if !requirements.is_empty() {
        m.insert("requirements".into(), Value::Array(requirements));
    }
    if let Some(live) = spec
        .and_then(|s| s.get("limits"))
        .and_then(Value::as_object)
    {
        let mut limits = Map::new();
        for key in ["cpu", "memory"] {
            if let Some(q) = live.get(key).and_then(quantity) {
                limits.insert(key.into(), json!(q));
            }
        }
        if let Some(n) = live
            .get("nodes")
            .and_then(quantity)
            .and_then(|q| q.parse::<u64>().ok())
        {
            limits.insert("nodes".into(), json!(n));
        }
        if !limits.is_empty() {
            m.insert("limits".into(), Value::Object(limits));
        }
    }
    if let Some(labels) = template
        .and_then(|t| t.get("metadata"))
        .and_then(|md| md.get("labels"))
        .filter(|l| l.as_object().is_some_and(|o| !o.is_empty()))
    {
        m.insert("labels".into(), labels.clone());
    }
    let annotations = o.metadata.annotations.clone().unwrap_or_default();
    Some(Observed {
        cloud_id: format!("{cluster}/{name}"),
        attrs,
        outputs: json!({"name": name}),
        managed_by: annotations.get(super::KUBE_STATE_ANNOTATION).cloned(),
    })
}

/// The object's spec from the attributes: the instance types first among the requirements.
fn object_spec(attrs: &Value) -> Result<Value, ResourceError> {
    let mut requirements = vec![json!({
        "key": INSTANCE_TYPE_LABEL, "operator": "In",
        "values": str_list(attrs, "instance_types"),
    })];
    requirements.extend(
        attrs
            .get("requirements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .cloned(),
    );
    let mut template = json!({"spec": {
        "nodeClassRef": {
            "group": super::eks::KARPENTER_NODE_CLASS_GROUP,
            "kind": super::eks::KARPENTER_NODE_CLASS_KIND,
            "name": req_str(attrs, "node_class")?,
        },
        "requirements": requirements,
    }});
    if let Some(labels) = attrs.get("labels").filter(|l| l.is_object()) {
        template["metadata"] = json!({ "labels": labels });
    }
    let mut spec = json!({ "template": template });
    if let Some(limits) = attrs.get("limits").and_then(Value::as_object) {
        // A ResourceList: quantities, the node count among them.
        let list: Map<String, Value> = limits
            .iter()
            .filter_map(|(k, v)| quantity(v).map(|q| (k.clone(), json!(q))))
            .collect();
        spec["limits"] = Value::Object(list);
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
        "apply nodepool",
    )
    .await?;
    observe(cluster, &applied)
        .ok_or_else(|| ResourceError::Invalid(format!("NodePool {name} came back without a name")))
}

impl ResourceKind for KarpenterNodePoolKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = KarpenterNodePoolConfig;

    /// Operators from Karpenter's list, values where the operator takes them; limits that
    /// let at least one node come up.
    fn check_shape(p: &Self::Config, rules: &mut dyn FieldRules) {
        if p.instance_types.is_empty() {
            rules.error(
                "instance_types",
                "give at least one instance type: eksnet sizes the pool's nodes (max pods, addresses) from them".into(),
            );
        }
        for (i, r) in p.requirements.iter().enumerate() {
            let key = format!("requirements.{i}");
            if !OPERATORS.contains(&r.operator.as_str()) {
                rules.error(
                    &format!("{key}.operator"),
                    format!(
                        "`{}` is not a Karpenter requirement operator: one of {}",
                        r.operator,
                        OPERATORS.join(", ")
                    ),
                );
            }
            let takes_values = !matches!(r.operator.as_str(), "Exists" | "DoesNotExist");
            if takes_values && r.values.is_empty() {
                rules.error(
                    &format!("{key}.values"),
                    format!("operator `{}` needs `values`", r.operator),
                );
            } else if !takes_values && !r.values.is_empty() {
                rules.error(
                    &format!("{key}.values"),
                    format!("operator `{}` takes no `values`", r.operator),
                );
            }
            if r.key == INSTANCE_TYPE_LABEL {
                rules.error(
                    &format!("{key}.key"),
                    format!("give the instance types in `instance_types`, not as a `{INSTANCE_TYPE_LABEL}` requirement: eksnet sizes the pool from them"),
                );
            }
        }
        if p.limits.as_ref().and_then(|l| l.nodes) == Some(0) {
            rules.error(
                "limits.nodes",
                "`limits.nodes = 0` lets Karpenter launch no node; leave the pool out instead"
                    .into(),
            );
        }
    }

    fn check_fields(p: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &p.cluster_name, Shape::ClusterName);
        if let Some(name) = &p.name {
            rules.kubernetes_name("name", name, false);
        }
        rules.kubernetes_name("node_class", &p.node_class, false);
        for (k, v) in &p.labels {
            rules.label(&format!("labels.{k}"), k, Some(v));
        }
        for (i, r) in p.requirements.iter().enumerate() {
            rules.label(&format!("requirements.{i}.key"), &r.key, None);
        }
    }

    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let name = super::object_name(c.name.as_ref(), build, "node pool")?;
        let mut attrs = json!({
            "cluster_name": c.cluster_name,
            "name": name,
            "node_class": c.node_class,
            "instance_types": c.instance_types,
        });
        if let Some(m) = attrs.as_object_mut() {
            if !c.requirements.is_empty() {
                m.insert("requirements".into(), json!(c.requirements));
            }
            if let Some(l) = &c.limits {
                m.insert("limits".into(), json!(l));
            }
            if !c.labels.is_empty() {
                m.insert("labels".into(), json!(c.labels));
            }
        }
        Ok(attrs)
    }

    /// One LIST of pools per cluster.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        super::refresh_cluster_objects(ctx, items, &api_resource(), "list nodepools", observe).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        apply_object(ctx, addr, attrs).await
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        _cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        apply_object(ctx, addr, change.after).await
    }

    /// Karpenter terminates a deleted pool's nodes (nodepools.md: deleting a NodePool
    /// gracefully terminates its nodes).
    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        super::delete_cluster_object(
            ctx,
            Kind::KarpenterNodePool,
            cloud_id,
            &api_resource(),
            "delete nodepool",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instance types become the first requirement and read back as `instance_types`;
    /// limits go as quantities and come back as the spec wrote them.
    #[test]
    fn a_pool_round_trips() {
        let attrs = json!({
            "cluster_name": "demo", "name": "default", "node_class": "default",
            "instance_types": ["m5.xlarge", "m5.large"],
            "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
            "limits": {"nodes": 10, "cpu": "100"},
            "labels": {"team": "web"},
        });
        let spec = object_spec(&attrs).unwrap();
        assert_eq!(
            spec["template"]["spec"]["requirements"][0],
            json!({"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": ["m5.xlarge", "m5.large"]})
        );
        assert_eq!(spec["limits"], json!({"nodes": "10", "cpu": "100"}));
        assert_eq!(
            spec["template"]["spec"]["nodeClassRef"],
            json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"})
        );
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "default"}, "spec": spec,
        }))
        .unwrap();
        let seen = observe("demo", &o).unwrap();
        assert_eq!(
            seen.attrs["instance_types"],
            json!(["m5.large", "m5.xlarge"])
        );
        assert_eq!(seen.attrs["limits"], json!({"nodes": 10, "cpu": "100"}));
        assert_eq!(seen.attrs["requirements"], attrs["requirements"]);
        assert_eq!(seen.attrs["labels"], json!({"team": "web"}));
        assert_eq!(seen.attrs["node_class"], json!("default"));
    }
}
