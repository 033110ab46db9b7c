//! `auto_mode_node_class`: one EKS Auto Mode `NodeClass` (`eks.amazonaws.com/v1`,
//! cluster-scoped) and, with `node_pool`, the `NodePool` (`karpenter.sh/v1`) of the same name
//! whose nodes use it. Auto Mode does not read ENIConfigs: pods go to other subnets through the
//! NodeClass's `podSubnetSelectorTerms` and `podSecurityGroupSelectorTerms` (EKS user guide,
//! `automode/create-node-class.adoc`). Its built-in pools use the `default` NodeClass, which
//! cannot be changed, so a class of one's own needs a pool of one's own. Both objects are
//! written with server-side apply (field manager `eksnet`), the pool after the class, and
//! deleted the other way round. The rules across kinds (an Auto Mode cluster, pod subnets in
//! the node subnets' zones) are in `domain::auto_mode`.

use super::{req_str, str_list, BuildCtx};
use super::{
    Change, Ctx, FieldRules, ImportId, KindFacts, Lookup, Observed, ResourceError, ResourceKind,
    Shape, Unique,
};
use crate::base::addr::{Kind, ResourceAddr};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// One NodeClass of an Auto Mode cluster: where its nodes and their pods go.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoModeNodeClassConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`; the cluster has `auto_mode = true`.
    pub cluster_name: String,
    /// The object's name; absent: the table's key. Not `default` (EKS's own).
    pub name: Option<String>,
    /// The nodes' IAM role *name* (not its ARN), usually `${iam_role.NAME.name}`: it needs an
    /// EC2 access entry on the cluster and AmazonEKSWorkerNodeMinimalPolicy and
    /// AmazonEC2ContainerRegistryPullOnly (`AmazonEKSAutoNodePolicy` for the access entry).
    pub role: String,
    /// The nodes' subnets (`subnetSelectorTerms`, by id).
    pub subnet_ids: Vec<String>,
    /// The nodes' security groups (`securityGroupSelectorTerms`); absent: the cluster
    /// security group.
    pub security_group_ids: Option<Vec<String>>,
    /// The pods' subnets (`podSubnetSelectorTerms`): one in each zone of `subnet_ids`.
    #[serde(default)]
    pub pod_subnet_ids: Vec<String>,
    /// The pods' security groups (`podSecurityGroupSelectorTerms`), with `pod_subnet_ids`.
    #[serde(default)]
    pub pod_security_group_ids: Vec<String>,
    /// A `NodePool` of the same name whose nodes use this class.
    pub node_pool: Option<NodePoolConfig>,
}

/// The `karpenter.sh/v1` NodePool of a NodeClass.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePoolConfig {
    /// The instance types the pool may launch (`node.kubernetes.io/instance-type In …`).
    pub instance_types: Vec<String>,
    /// Karpenter's `limits`: a cap on what the pool launches, e.g. `{ nodes = 10 }` or
    /// `{ cpu = "100" }`.
    #[serde(default)]
    pub limits: BTreeMap<String, Limit>,
}

/// A limit's quantity: a number (`10`) or a Kubernetes quantity (`"100Gi"`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Limit {
    Count(u64),
    Quantity(String),
}

/// The name EKS gives its own NodeClass (create-node-class.adoc: "do not name it default").
pub const RESERVED_NAME: &str = "default";

/// The NodePool's label on its nodes, and the NodeClass's (EKS user guide,
/// `automode/create-node-pool.adoc`, "EKS Auto Mode supported labels").
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";
pub const NODECLASS_LABEL: &str = "eks.amazonaws.com/nodeclass";

/// `[auto_mode_node_class.NAME]`: see docs/spec.md.
pub struct AutoModeNodeClassKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "name"],
    outputs: &["name"],
    mirrored_outputs: &["name"],
    identity: &["cluster_name", "name"],
    lookup_key: &["cluster_name", "name"],
    create_only: &[],
    set_valued: &[
        "subnet_ids",
        "security_group_ids",
        "pod_subnet_ids",
        "pod_security_group_ids",
    ],
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: true,
    import_id: ImportId::ClusterSlashName,
    replacement: None,
    compared_when_unset: &["node_pool"],
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

pub fn node_class_resource() -> ApiResource {
    ApiResource {
        group: "eks.amazonaws.com".into(),
        version: "v1".into(),
        api_version: "eks.amazonaws.com/v1".into(),
        kind: "NodeClass".into(),
        plural: "nodeclasses".into(),
    }
}

pub fn node_pool_resource() -> ApiResource {
    ApiResource {
        group: "karpenter.sh".into(),
        version: "v1".into(),
        api_version: "karpenter.sh/v1".into(),
        kind: "NodePool".into(),
        plural: "nodepools".into(),
    }
}

/// `[{id: X}, …]`, the selector terms by id.
fn terms(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| json!({"id": id})).collect())
}

/// The ids of selector terms by id (terms by tag are not eksnet's and are left out).
fn ids(spec: Option<&Value>, key: &str) -> Vec<String> {
    let mut out: Vec<String> = spec
        .and_then(|s| s.get(key))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("id").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The pool's spec as eksnet writes it.
fn pool_object(name: &str, pool: &Value, annotations: &Value) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "template": {"spec": {
                "nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": name},
                "requirements": [{
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": str_list(pool, "instance_types"),
                }],
            }},
            "limits": pool.get("limits").cloned().unwrap_or_else(|| json!({})),
        },
    })
}

/// The `node_pool` attribute of a NodePool read back.
fn observe_pool(o: &DynamicObject) -> Value {
    let spec = o.data.get("spec");
    let types = spec
        .and_then(|s| s.pointer("/template/spec/requirements"))
        .and_then(Value::as_array)
        .and_then(|reqs| {
            reqs.iter().find(|r| {
                r.get("key").and_then(Value::as_str) == Some("node.kubernetes.io/instance-type")
            })
        })
        .map(|r| str_list(r, "values"))
        .unwrap_or_default();
    let limits = spec
        .and_then(|s| s.get("limits"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({"instance_types": types, "limits": limits})
}

fn observe(cluster: &str, class: &DynamicObject, pool: Option<&DynamicObject>) -> Option<Observed> {
    let name = class.metadata.name.clone()?;
    let spec = class.data.get("spec");
    let mut attrs = json!({
        "cluster_name": cluster, "name": name,
        "role": spec.and_then(|s| s.get("role")).cloned().unwrap_or(Value::Null),
        "subnet_ids": ids(spec, "subnetSelectorTerms"),
        "security_group_ids": ids(spec, "securityGroupSelectorTerms"),
        "pod_subnet_ids": ids(spec, "podSubnetSelectorTerms"),
        "pod_security_group_ids": ids(spec, "podSecurityGroupSelectorTerms"),
    });
    if let (Some(p), Some(m)) = (pool, attrs.as_object_mut()) {
        m.insert("node_pool".into(), observe_pool(p));
    }
    let annotations = class.metadata.annotations.clone().unwrap_or_default();
    Some(Observed {
        cloud_id: format!("{cluster}/{name}"),
        attrs,
        outputs: json!({"name": name}),
        managed_by: annotations.get(super::KUBE_STATE_ANNOTATION).cloned(),
    })
}

/// (cluster, name) of an item: its cloud id, else its attributes.
async fn apply(ctx: &Ctx, addr: &ResourceAddr, attrs: &Value) -> Result<Observed, ResourceError> {
    let cluster = req_str(attrs, "cluster_name")?;
    let name = req_str(attrs, "name")?;
    let client = super::kube_client(ctx, cluster).await?;
    let annotations = json!(super::kube_annotations(ctx, addr));
    let mut spec = json!({
        "role": req_str(attrs, "role")?,
        "subnetSelectorTerms": terms(&str_list(attrs, "subnet_ids")),
        "securityGroupSelectorTerms": terms(&str_list(attrs, "security_group_ids")),
    });
    let pod_subnets = str_list(attrs, "pod_subnet_ids");
    if let (false, Some(m)) = (pod_subnets.is_empty(), spec.as_object_mut()) {
        m.insert("podSubnetSelectorTerms".into(), terms(&pod_subnets));
        m.insert(
            "podSecurityGroupSelectorTerms".into(),
            terms(&str_list(attrs, "pod_security_group_ids")),
        );
    }
    let class = json!({
        "apiVersion": "eks.amazonaws.com/v1",
        "kind": "NodeClass",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    });
    let params = PatchParams::apply("eksnet").force();
    let applied = Api::<DynamicObject>::all_with(client.clone(), &node_class_resource())
        .patch(name, &params, &Patch::Apply(&class))
        .await
        .map_err(|e| crate::cloud::kube::error("apply nodeclass", e))?;
    let pools = Api::<DynamicObject>::all_with(client, &node_pool_resource());
    // The pool after its class: Karpenter launches nothing for a pool whose class is missing.
    let pool = match attrs.get("node_pool").filter(|p| p.is_object()) {
        Some(p) => Some(
            pools
                .patch(
                    name,
                    &params,
                    &Patch::Apply(&pool_object(name, p, &annotations)),
                )
                .await
                .map_err(|e| crate::cloud::kube::error("apply nodepool", e))?,
        ),
        None => {
            // The spec dropped `node_pool`: the pool goes, its nodes with it.
            super::delete_object(&pools, name, "delete nodepool").await?;
            None
        }
    };
    observe(cluster, &applied, pool.as_ref())
        .ok_or_else(|| ResourceError::Invalid(format!("NodeClass {name} came back without a name")))
}

impl ResourceKind for AutoModeNodeClassKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = AutoModeNodeClassConfig;

    /// Node subnets, a pool's types, pod groups only with pod subnets, and not `default`.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if c.name.as_deref() == Some(RESERVED_NAME) {
            rules.error("name", format!("`{RESERVED_NAME}` is the NodeClass EKS Auto Mode makes and keeps for its built-in pools; give this one another name"));
        }
        if c.subnet_ids.is_empty() {
            rules.error(
                "subnet_ids",
                "a NodeClass needs the subnets of its nodes (`subnetSelectorTerms`)".into(),
            );
        }
        if c.pod_subnet_ids.is_empty() && !c.pod_security_group_ids.is_empty() {
            rules.error("pod_security_group_ids", "`pod_security_group_ids` go with `pod_subnet_ids`: EKS takes podSecurityGroupSelectorTerms only beside podSubnetSelectorTerms".into());
        }
        if !c.pod_subnet_ids.is_empty() && c.pod_security_group_ids.is_empty() {
            rules.error("pod_security_group_ids", "with `pod_subnet_ids`, EKS needs the pods' security groups too (podSecurityGroupSelectorTerms); give `pod_security_group_ids`".into());
        }
        if let Some(p) = &c.node_pool {
            if p.instance_types.is_empty() {
                rules.error(
                    "node_pool.instance_types",
                    "give the instance types the pool may launch, e.g. [\"m5.large\"]".into(),
                );
            }
        }
    }

    /// Its cluster, name and ids.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &c.cluster_name, Shape::ClusterName);
        if let Some(name) = &c.name {
            rules.kubernetes_name("name", name, false);
        }
        for (key, list, shape) in [
            ("subnet_ids", &c.subnet_ids, Shape::SubnetId),
            ("pod_subnet_ids", &c.pod_subnet_ids, Shape::SubnetId),
            (
                "pod_security_group_ids",
                &c.pod_security_group_ids,
                Shape::SecurityGroupId,
            ),
        ] {
            for (i, v) in list.iter().enumerate() {
                rules.shaped(&format!("{key}.{i}"), v, shape);
            }
        }
        for (i, v) in c.security_group_ids.iter().flatten().enumerate() {
            rules.shaped(
                &format!("security_group_ids.{i}"),
                v,
                Shape::SecurityGroupId,
            );
        }
        if c.role.starts_with("arn:") {
            rules.error("role", format!("a NodeClass takes the role's name, not its ARN: `{}`; e.g. \"${{iam_role.node.name}}\"", c.role));
        }
    }

    /// The name defaults to the table's key, the node groups to the cluster security group.
    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let name = if c.name.is_none() && build.resource_name == RESERVED_NAME {
            errors.push(("name", format!("the table's key `{RESERVED_NAME}` would name the NodeClass EKS Auto Mode keeps for its built-in pools; set `name` to another")));
            String::new()
        } else {
            super::object_name(c.name.as_ref(), build, "NodeClass").unwrap_or_else(|e| {
                errors.extend(e);
                String::new()
            })
        };
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
            "pod_subnet_ids": c.pod_subnet_ids,
            "pod_security_group_ids": c.pod_security_group_ids,
        });
        if let (Some(p), Some(m)) = (&c.node_pool, attrs.as_object_mut()) {
            m.insert("node_pool".into(), json!(p));
        }
        Ok(attrs)
    }

    /// One LIST of NodeClasses and one of NodePools per cluster.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let (class_res, pool_res) = (node_class_resource(), node_pool_resource());
        let (classes, pools) = tokio::join!(
            super::list_per_cluster(ctx, items, &class_res, "list nodeclasses"),
            super::list_per_cluster(ctx, items, &pool_res, "list nodepools"),
        );
        let (classes, pools) = (classes?, pools?);
        Ok(items
            .iter()
            .map(|i| {
                // The pool is named like its class.
                let (cluster, class) = super::find_cluster_object(i, &classes)?;
                observe(
                    &cluster,
                    class,
                    super::find_cluster_object(i, &pools).map(|(_, p)| p),
                )
            })
            .collect())
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        apply(ctx, addr, attrs).await
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        _cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        apply(ctx, addr, change.after).await
    }

    /// The pool first: its nodes go with it, then nothing uses the class.
    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        // The pool first: Auto Mode drains and ends its nodes; then nothing uses the class.
        for (resource, operation) in [
            (node_pool_resource(), "delete nodepool"),
            (node_class_resource(), "delete nodeclass"),
        ] {
            super::delete_cluster_object(
                ctx,
                Kind::AutoModeNodeClass,
                cloud_id,
                &resource,
                operation,
            )
            .await?;
        }
        Ok(())
    }
}
