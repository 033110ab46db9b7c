//! `eni_config`: one `ENIConfig` (`crd.k8s.amazonaws.com/v1alpha1`, cluster-scoped), telling
//! the VPC CNI which subnet and security groups pods get on nodes that select it. Written with
//! server-side apply (field manager `eksnet`). In annotation mode the nodes a rule selects are
//! annotated `k8s.amazonaws.com/eniConfig=<name>`.

use super::BuildCtx;
use super::{req_str, str_list, Ctx, FieldRules, Lookup, Observed, ResourceError, Shape, Unique};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One `ENIConfig` object of a cluster: the pod subnet and security groups for the pods of
/// the nodes that select it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EniConfigConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The pod subnet, usually `${subnet.NAME.id}`.
    pub subnet_id: String,
    /// The object's name; absent: the subnet's availability zone, what label mode expects.
    pub name: Option<String>,
    /// The pods' security groups; absent: the cluster security group.
    pub security_group_ids: Option<Vec<String>>,
    /// Annotation mode: nodes with all these labels get the annotation
    /// `k8s.amazonaws.com/eniConfig` naming this ENIConfig.
    #[serde(default)]
    pub annotate_nodes: BTreeMap<String, String>,
}

/// `[eni_config.NAME]`: see docs/spec.md.
pub struct EniConfigKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "name"],
    outputs: &["name"],
    mirrored_outputs: &[],
    identity: &["cluster_name", "name"],
    lookup_key: &["cluster_name", "name", "annotate_nodes"],
    create_only: &[],
    set_valued: &["security_group_ids"],
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: true,
    import_id: ImportId::ClusterSlashName,
    replacement: None,
    compared_when_unset: &[],
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

pub const NODE_ANNOTATION: &str = "k8s.amazonaws.com/eniConfig";

pub fn api_resource() -> ApiResource {
    ApiResource {
        group: "crd.k8s.amazonaws.com".into(),
        version: "v1alpha1".into(),
        api_version: "crd.k8s.amazonaws.com/v1alpha1".into(),
        kind: "ENIConfig".into(),
        plural: "eniconfigs".into(),
    }
}

fn api(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(client, &api_resource())
}

fn observe(cluster: &str, o: &DynamicObject) -> Option<Observed> {
    let name = o.metadata.name.clone()?;
    let spec = o.data.get("spec");
    let mut groups = spec
        .map(|s| str_list(s, "securityGroups"))
        .unwrap_or_default();
    groups.sort();
    let annotations = o.metadata.annotations.clone().unwrap_or_default();
    Some(Observed {
        cloud_id: format!("{cluster}/{name}"),
        attrs: json!({
            "cluster_name": cluster, "name": name,
            "subnet_id": spec.and_then(|s| s.get("subnet")).cloned().unwrap_or(Value::Null),
            "security_group_ids": groups,
        }),
        outputs: json!({"name": name}),
        managed_by: annotations.get(super::KUBE_STATE_ANNOTATION).cloned(),
    })
}

/// The object observed for an item, from the per-cluster lists.
fn refind(item: &Lookup, by_cluster: &HashMap<String, Vec<DynamicObject>>) -> Option<Observed> {
    let (cluster, name) = match &item.cloud_id {
        Some(id) => id
            .split_once('/')
            .map(|(c, n)| (c.to_string(), n.to_string()))?,
        None => (
            super::str_attr(&item.attrs, "cluster_name")?.to_string(),
            super::str_attr(&item.attrs, "name")?.to_string(),
        ),
    };
    by_cluster
        .get(&cluster)?
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(name.as_str()))
        .and_then(|o| observe(&cluster, o))
}

fn selector(attrs: &Value) -> Option<String> {
    let rule = super::tag_map(attrs.get("annotate_nodes").unwrap_or(&Value::Null));
    (!rule.is_empty()).then(|| {
        rule.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Sets (or with `None` removes) the eniConfig annotation on the nodes a selector picks.
async fn annotate(
    client: kube::Client,
    selector: &str,
    value: Option<&str>,
    only_if: Option<&str>,
) -> Result<(), ResourceError> {
    let nodes: Api<Node> = Api::all(client);
    let list = nodes
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| crate::cloud::kube::error("list nodes", e))?;
    for node in list.items {
        let Some(name) = node.metadata.name.clone() else {
            continue;
        };
        let current = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_ANNOTATION))
            .map(String::as_str);
        if only_if.is_some() && current != only_if {
            continue;
        }
        if current == value {
            continue;
        }
        let patch = json!({"metadata": {"annotations": {NODE_ANNOTATION: value}}});
        nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| crate::cloud::kube::error("annotate node", e))?;
    }
    Ok(())
}

async fn apply_object(
    ctx: &Ctx,
    addr: &ResourceAddr,
    attrs: &Value,
) -> Result<Observed, ResourceError> {
    let cluster = req_str(attrs, "cluster_name")?;
    let name = req_str(attrs, "name")?;
    let client = super::kube_client(ctx, cluster).await?;
    let annotations = super::kube_annotations(ctx, addr);
    let object = json!({
        "apiVersion": "crd.k8s.amazonaws.com/v1alpha1",
        "kind": "ENIConfig",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"subnet": req_str(attrs, "subnet_id")?, "securityGroups": str_list(attrs, "security_group_ids")},
    });
    let applied = api(client.clone())
        .patch(
            name,
            &PatchParams::apply("eksnet").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| crate::cloud::kube::error("apply eniconfig", e))?;
    if let Some(sel) = selector(attrs) {
        annotate(client, &sel, Some(name), None).await?;
    }
    observe(cluster, &applied)
        .ok_or_else(|| ResourceError::Invalid(format!("ENIConfig {name} came back without a name")))
}

impl ResourceKind for EniConfigKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = EniConfigConfig;

    /// Its cluster, subnet, security groups and node annotations.
    fn check_fields(e: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &e.cluster_name, Shape::ClusterName);
        rules.shaped("subnet_id", &e.subnet_id, Shape::SubnetId);
        for (i, s) in e.security_group_ids.iter().flatten().enumerate() {
            rules.shaped(
                &format!("security_group_ids.{i}"),
                s,
                Shape::SecurityGroupId,
            );
        }
        let groups = e.security_group_ids.as_ref().map_or(0, Vec::len);
        if groups > 16 {
            rules.error("security_group_ids", format!("an ENI takes at most 16 security groups (with a raised quota; 5 by default), not {groups}"));
        } else if groups > 5 {
            rules.warning("security_group_ids", format!("{groups} security groups: an ENI takes 5 unless the account's \"Security groups per network interface\" quota was raised"));
        }
        for k in e.annotate_nodes.keys() {
            rules.label(&format!("annotate_nodes.{k}"), k, None);
        }
    }

    /// Spec → attributes, filling the defaults the tutorial uses: the name is the pod subnet's AZ
    /// (what label mode with `topology.kubernetes.io/zone` expects) and the security group is the
    /// cluster security group.
    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let name = match &c.name {
            Some(n) => n.clone(),
            None => match crate::base::value::whole_reference(&c.subnet_id) {
                Some(r) if r.addr.kind == Kind::Subnet => {
                    format!("${{{}.availability_zone}}", r.addr)
                }
                _ => {
                    errors.push(("name", "set `name`: it can only default to the subnet's AZ when `subnet_id` is a reference like \"${subnet.pod_a.id}\"".to_string()));
                    String::new()
                }
            },
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
            "subnet_id": c.subnet_id,
            "security_group_ids": groups,
        });
        // Only shown and compared when used (annotation mode).
        if let (false, Some(m)) = (c.annotate_nodes.is_empty(), attrs.as_object_mut()) {
            m.insert("annotate_nodes".into(), json!(c.annotate_nodes));
        }
        Ok(attrs)
    }

    /// One LIST of ENIConfigs per cluster, whatever the number of ENIConfigs.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let by_cluster =
            super::list_per_cluster(ctx, items, &api_resource(), "list eniconfigs").await?;
        let found: Vec<Option<Observed>> = items.iter().map(|i| refind(i, &by_cluster)).collect();
        // The node rule is live state too: it counts as applied only while every node it selects
        // carries this ENIConfig's annotation, so nodes that joined later show up as a change.
        let checks = items.iter().zip(found).map(|(item, obs)| async move {
            let (Some(mut obs), Some(sel)) = (obs.clone(), selector(&item.attrs)) else {
                return Ok::<_, ResourceError>(obs);
            };
            let cluster = super::str_attr(&obs.attrs, "cluster_name")
                .unwrap_or_default()
                .to_string();
            let name = super::str_attr(&obs.attrs, "name")
                .unwrap_or_default()
                .to_string();
            let nodes: Api<Node> = Api::all(super::kube_client(ctx, &cluster).await?);
            let list = nodes
                .list(&ListParams::default().labels(&sel))
                .await
                .map_err(|e| crate::cloud::kube::error("list nodes", e))?;
            let all_annotated = list.items.iter().all(|n| {
                n.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NODE_ANNOTATION))
                    .map(String::as_str)
                    == Some(name.as_str())
            });
            let live = if all_annotated {
                item.attrs
                    .get("annotate_nodes")
                    .cloned()
                    .unwrap_or(Value::Null)
            } else {
                json!({})
            };
            if let Some(m) = obs.attrs.as_object_mut() {
                m.insert("annotate_nodes".into(), live);
            }
            Ok(Some(obs))
        });
        futures::future::try_join_all(checks).await
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
        let before = change.before;
        let after = change.after;
        // Nodes the old rule annotated but the new one does not select lose the annotation.
        if let (Some(old), Some(cluster), Some(name)) = (
            selector(before),
            super::str_attr(before, "cluster_name"),
            super::str_attr(before, "name"),
        ) {
            if selector(after).as_deref() != Some(old.as_str()) {
                annotate(
                    super::kube_client(ctx, cluster).await?,
                    &old,
                    None,
                    Some(name),
                )
                .await?;
            }
        }
        apply_object(ctx, addr, after).await
    }

    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let Some((cluster, name)) = cloud_id.split_once('/') else {
            return Err(ResourceError::BadCloudId {
                kind: Kind::EniConfig,
                id: cloud_id.to_string(),
                expected: "cluster/name",
            });
        };
        let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
            return Ok(());
        };
        if let Some(sel) = selector(attrs) {
            annotate(client.clone(), &sel, None, Some(name)).await?;
        }
        match api(client).delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(e) if crate::cloud::kube::is_not_found(&e) => Ok(()),
            Err(e) => Err(crate::cloud::kube::error("delete eniconfig", e).into()),
        }
    }
}
