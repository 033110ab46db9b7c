//! `aws_node`: the VPC CNI settings of one cluster — env entries of the `aws-node` container in
//! the `kube-system/aws-node` DaemonSet. Only the declared entries are patched (strategic merge
//! by name, so the image and every other entry stay untouched). The value each entry had before
//! eksnet first set it is kept in the state (`previous_env`, `null` = absent) so that destroy
//! puts the DaemonSet back as it found it.

use super::BuildCtx;
use super::{
    req_str, wait_until, Ctx, FieldRules, Lookup, Observed, Poll, ResourceError, Shape, Unique,
};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, Patch, PatchParams};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The VPC CNI settings of one cluster whose CNI is the self-managed `aws-node` DaemonSet:
/// entries of its container's environment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsNodeConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// Turns custom networking on or off (`AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`).
    #[serde(default = "yes")]
    pub custom_network: bool,
    /// How nodes pick their ENIConfig: by the node label `eni_config_label` names (`label`) or
    /// by the node annotation `k8s.amazonaws.com/eniConfig` (`annotation`).
    #[serde(default = "default_selection")]
    #[schemars(schema_with = "selection_schema")]
    pub eni_config_selection: String,
    /// The node label whose value names the ENIConfig in `label` mode
    /// (`ENI_CONFIG_LABEL_DEF`).
    #[serde(default = "default_label")]
    pub eni_config_label: String,
    /// `true`: security groups for pods (`ENABLE_POD_ENI=true`), so that the pods a
    /// `security_group_policy` selects get branch ENIs; absent: `ENABLE_POD_ENI` is left as
    /// it is (or as `env` says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_groups: Option<bool>,
    /// Other entries of the `aws-node` container's environment to manage, e.g.
    /// `WARM_IP_TARGET = "5"`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}
fn default_selection() -> String {
    ENI_CONFIG_BY_LABEL.into()
}
fn selection_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of(ENI_CONFIG_SELECTIONS)
}
fn default_label() -> String {
    "topology.kubernetes.io/zone".into()
}

/// `[aws_node.NAME]`: see docs/spec.md.
pub struct AwsNodeKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name"],
    outputs: &["image", "cni_version", "previous_env.*"],
    mirrored_outputs: &[],
    identity: &["cluster_name"],
    lookup_key: &["cluster_name", "env"],
    create_only: &[],
    set_valued: &[],
    default_timeout: Duration::from_secs(10 * 60),
    kubernetes: true,
    import_id: ImportId::Never(
        "needs no import: aws_node settings always apply to the DaemonSet EKS installed",
    ),
    replacement: None,
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "cluster_name",
        one_per: Some("cluster"),
    }),
    output_shapes: &[],
    restricted_tags: None,
    parent: Some(Kind::Cluster),
    patches_existing: true,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

use super::eks::{
    ENI_CONFIG_BY_LABEL, ENI_CONFIG_SELECTIONS, VPC_CNI_CUSTOM_NETWORK_ENV as CUSTOM_NETWORK_ENV,
    VPC_CNI_LABEL_DEF_ENV as LABEL_DEF_ENV, VPC_CNI_POD_ENI_ENV as POD_ENI_ENV,
};
const NAMESPACE: &str = "kube-system";
const NAME: &str = "aws-node";
const CONTAINER: &str = "aws-node";

pub fn desired_attrs(c: &AwsNodeConfig) -> Value {
    let mut env: BTreeMap<String, String> = c.env.clone();
    env.insert(CUSTOM_NETWORK_ENV.into(), c.custom_network.to_string());
    if c.eni_config_selection == ENI_CONFIG_BY_LABEL {
        env.insert(LABEL_DEF_ENV.into(), c.eni_config_label.clone());
    }
    if let Some(on) = c.pod_security_groups {
        env.insert(POD_ENI_ENV.into(), on.to_string());
    }
    // Label mode is visible in the env itself (ENI_CONFIG_LABEL_DEF present).
    json!({"cluster_name": c.cluster_name, "env": env})
}

fn daemonsets(client: kube::Client) -> Api<DaemonSet> {
    Api::namespaced(client, NAMESPACE)
}

/// The aws-node container's literal env values and image.
fn container_env(ds: &DaemonSet) -> (BTreeMap<String, String>, Option<String>) {
    let container = ds
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER));
    let env = container
        .and_then(|c| c.env.as_ref())
        .map(|e| {
            e.iter()
                .filter_map(|v| Some((v.name.clone(), v.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    (env, container.and_then(|c| c.image.clone()))
}

fn image_tag(image: &str) -> &str {
    image.rsplit_once(':').map(|(_, t)| t).unwrap_or("")
}

fn observe(cluster: &str, ds: &DaemonSet, wanted: &Value) -> Observed {
    let (env, image) = container_env(ds);
    let keys: Vec<&String> = wanted
        .get("env")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let live: Map<String, Value> = keys
        .into_iter()
        .filter_map(|k| env.get(k).map(|v| (k.clone(), json!(v))))
        .collect();
    let image = image.unwrap_or_default();
    Observed {
        cloud_id: format!("{cluster}/{NAMESPACE}/{NAME}"),
        attrs: json!({"cluster_name": cluster, "env": live}),
        outputs: json!({"image": image, "cni_version": image_tag(&image)}),
        managed_by: None,
    }
}

/// Checks the CNI version: custom networking needs 1.6.3-eksbuild.2 or later.
pub fn check_version(image: &str) -> Result<(), String> {
    let tag = image_tag(image);
    match crate::cloud::kube::cni_version(tag) {
        Some(v) if v < crate::cloud::kube::MIN_CNI => Err(format!(
            "aws-node runs VPC CNI {tag} ({image}); custom networking needs v1.6.3-eksbuild.2 or later: upgrade the Amazon VPC CNI (e.g. the `vpc-cni` EKS add-on) first"
        )),
        _ => Ok(()),
    }
}

/// Waits for EKS to install the DaemonSet, then returns it.
async fn wait_for_daemonset(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
) -> Result<(Api<DaemonSet>, DaemonSet), ResourceError> {
    let client =
        ctx.kube
            .client(&ctx.aws, cluster)
            .await?
            .ok_or_else(|| ResourceError::NoCluster {
                cluster: cluster.to_string(),
            })?;
    let api = daemonsets(client);
    let ds =
        wait_until(
            ctx,
            addr,
            "daemonset kube-system/aws-node",
            ctx.timeout(Kind::AwsNode),
            || async {
                match api.get_opt(NAME).await.map_err(|e| {
                    crate::cloud::kube::error("get daemonset kube-system/aws-node", e)
                })? {
                    Some(ds) => Ok(Poll::Done(ds)),
                    None => Ok(Poll::Pending("not installed yet".into())),
                }
            },
        )
        .await?;
    Ok((api, ds))
}

/// The original values recorded on the DaemonSet itself (see `PREVIOUS_ANNOTATION`).
fn annotated_previous(ds: &DaemonSet) -> BTreeMap<String, Option<String>> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PREVIOUS_ANNOTATION))
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// Annotation on the DaemonSet holding the original values, written in the same patch as the
/// env: a crash between the patch and the state write cannot lose them.
const PREVIOUS_ANNOTATION: &str = "eksnet.io/previous-env";

/// Strategic merge patch of env entries by name (`Some(v)` sets, `None` removes), together with
/// the original values (`previous`: written as the annotation, or the annotation removed when
/// `None`).
async fn patch_env(
    api: &Api<DaemonSet>,
    entries: &BTreeMap<String, Option<String>>,
    previous: Option<&BTreeMap<String, Option<String>>>,
) -> Result<DaemonSet, ResourceError> {
    let env: Vec<Value> = entries
        .iter()
        .map(|(k, v)| match v {
            Some(v) => json!({"name": k, "value": v}),
            None => json!({"name": k, "$patch": "delete"}),
        })
        .collect();
    let annotation = previous
        .map(|p| Value::String(json!(p).to_string()))
        .unwrap_or(Value::Null);
    let patch = json!({
        "metadata": {"annotations": {PREVIOUS_ANNOTATION: annotation}},
        "spec": {"template": {"spec": {"containers": [{"name": CONTAINER, "env": env}]}}},
    });
    api.patch(
        NAME,
        &PatchParams {
            field_manager: Some("eksnet".into()),
            ..Default::default()
        },
        &Patch::Strategic(&patch),
    )
    .await
    .map_err(|e| crate::cloud::kube::error("patch daemonset kube-system/aws-node", e).into())
}

fn wanted_env(attrs: &Value) -> BTreeMap<String, String> {
    super::tag_map(attrs.get("env").unwrap_or(&Value::Null))
}

fn previous(outputs: &Value) -> BTreeMap<String, Option<String>> {
    outputs
        .get("previous_env")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(String::from)))
                .collect()
        })
        .unwrap_or_default()
}

fn with_previous(mut obs: Observed, prev: &BTreeMap<String, Option<String>>) -> Observed {
    if let Some(m) = obs.outputs.as_object_mut() {
        m.insert("previous_env".into(), json!(prev));
    }
    obs
}

/// Create and update alike: patches the declared entries (and puts back the ones no longer
/// declared), whatever the env was before.
async fn patch_declared(
    ctx: &Ctx,
    addr: &ResourceAddr,
    after: &Value,
    prior_outputs: &Value,
) -> Result<Observed, ResourceError> {
    let cluster = req_str(after, "cluster_name")?;
    let (api, ds) = wait_for_daemonset(ctx, addr, cluster).await?;
    let (live, image) = container_env(&ds);
    let wanted = wanted_env(after);
    if wanted.get(CUSTOM_NETWORK_ENV).map(String::as_str) == Some("true") {
        check_version(image.as_deref().unwrap_or_default()).map_err(ResourceError::Invalid)?;
    }
    // The state's record first; after a crash that lost it, the DaemonSet's own annotation.
    let mut prev = previous(prior_outputs);
    if prev.is_empty() {
        prev = annotated_previous(&ds);
    }
    let mut entries: BTreeMap<String, Option<String>> = BTreeMap::new();
    // Entries no longer declared go back to what they were before eksnet set them.
    let dropped: Vec<String> = prev
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    for k in dropped {
        if let Some(old) = prev.remove(&k) {
            entries.insert(k, old);
        }
    }
    for (k, v) in &wanted {
        // Remember the original value the first time eksnet takes over an entry.
        prev.entry(k.clone())
            .or_insert_with(|| live.get(k).cloned());
        entries.insert(k.clone(), Some(v.clone()));
    }
    let patched = patch_env(&api, &entries, Some(&prev)).await?;
    Ok(with_previous(observe(cluster, &patched, after), &prev))
}

impl ResourceKind for AwsNodeKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = AwsNodeConfig;

    /// Its cluster, label and the CNI env (types, and combinations with `custom_network`).
    fn check_fields(a: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &a.cluster_name, Shape::ClusterName);
        rules.label("eni_config_label", &a.eni_config_label, None);
        for (k, v) in &a.env {
            rules.cni_env(&format!("env.{k}"), k, v);
        }
        // With what `custom_network` adds, as the CNI will see it.
        let mut env: Vec<(String, String)> =
            a.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push((
            super::eks::VPC_CNI_CUSTOM_NETWORK_ENV.to_string(),
            a.custom_network.to_string(),
        ));
        if let Some(on) = a.pod_security_groups {
            env.push((POD_ENI_ENV.to_string(), on.to_string()));
        }
        rules.cni_combinations("env", &env);
    }

    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        Ok(desired_attrs(c))
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let reads = items.iter().map(|item| async move {
            let Some(cluster) = super::str_attr(&item.attrs, "cluster_name") else {
                return Ok(None);
            };
            let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
                return Ok(None);
            };
            let ds = daemonsets(client)
                .get_opt(NAME)
                .await
                .map_err(|e| crate::cloud::kube::error("get daemonset kube-system/aws-node", e))?;
            Ok::<_, ResourceError>(ds.map(|ds| observe(cluster, &ds, &item.attrs)))
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        patch_declared(ctx, addr, attrs, &Value::Null).await
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        _cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        patch_declared(ctx, addr, change.after, change.prior_outputs).await
    }

    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        _cloud_id: &str,
        attrs: &Value,
        prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let cluster = req_str(attrs, "cluster_name")?;
        let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
            return Ok(()); // the cluster, and its DaemonSet, are gone
        };
        let api = daemonsets(client);
        let Some(ds) = api
            .get_opt(NAME)
            .await
            .map_err(|e| crate::cloud::kube::error("get daemonset kube-system/aws-node", e))?
        else {
            return Ok(());
        };
        let mut prev = previous(prior_outputs);
        if prev.is_empty() {
            prev = annotated_previous(&ds);
        }
        // Put every entry back and drop the annotation: the DaemonSet is as eksnet found it.
        patch_env(&api, &prev, None).await?;
        Ok(())
    }
}
