//! `addon`: an EKS managed add-on (`vpc-cni`, `coredns`, `kube-proxy`,
//! `eks-pod-identity-agent`, …) of one cluster, waited to `ACTIVE`. Its cloud id is
//! `CLUSTER/ADDON`.
//!
//! On a cluster whose VPC CNI is the `vpc-cni` add-on, EKS owns the `aws-node` DaemonSet's
//! fields (server-side apply, field manager `eks`): custom networking must be set in the
//! add-on's configuration values, or the next add-on update undoes it. So the CNI's settings
//! are fields of this kind (`custom_network`, `eni_config_selection`, `eni_config_label`),
//! folded into `configuration_values.env` — the same names as on `aws_node`.

use super::eks::{describe_addon as describe, request_token, update_tags};
use super::eks::{
    ENI_CONFIG_BY_LABEL, ENI_CONFIG_SELECTIONS, VPC_CNI_ADDON as VPC_CNI,
    VPC_CNI_CUSTOM_NETWORK_ENV as CUSTOM_NETWORK_ENV, VPC_CNI_LABEL_DEF_ENV as LABEL_DEF_ENV,
    VPC_CNI_POD_ENI_ENV as POD_ENI_ENV,
};
use super::BuildCtx;
use super::{
    aws_error, req_str, split_tags, wait_until, Change, Ctx, FieldRules, Finding, ImportId,
    KindFacts, Lookup, Observed, Poll, ResourceError, ResourceKind, Shape, SpecFacts, Unique,
};
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::alternatives;
use aws_sdk_eks::types::{Addon, AddonStatus, ResolveConflicts};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// An EKS managed add-on of one cluster (`vpc-cni`, `coredns`, `kube-proxy`, …).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// An existing add-on takes none of the fields that belong to whoever made it.
#[schemars(extend(
    "if" = { "properties": { "existing": { "const": true, "description": "An existing add-on: only its configuration values are changed." } }, "required": ["existing"] },
    "then" = { "not": { "anyOf": [
        { "required": ["version"] },
        { "required": ["service_account_role_arn"] },
        { "required": ["pod_identity_associations"] },
        { "required": ["tags"] },
        { "required": ["preserve_on_delete"] },
        { "required": ["resolve_conflicts_on_create"] }
    ] } }
))]
pub struct AddonConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The add-on's name in EKS: `vpc-cni`, `coredns`, `kube-proxy`, ….
    pub name: String,
    /// `true`: an add-on made elsewhere (eksctl, Terraform, the console), adopted in place
    /// without `eksnet import`. It must exist; eksnet never creates or deletes it and changes
    /// only its configuration values (`configuration_values`, and `custom_network`,
    /// `eni_config_selection`, `eni_config_label` for `vpc-cni`); destroy, or removing the
    /// block, puts back the configuration values it had before eksnet first changed them.
    /// `version`, `service_account_role_arn`, `tags`, `preserve_on_delete` and
    /// `resolve_conflicts_on_create` are not allowed with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existing: bool,
    /// An exact add-on version (`v1.19.2-eksbuild.1`); absent: EKS's default for the cluster's
    /// Kubernetes version at create, and whatever is installed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The IAM role ARN of the add-on's service account (IRSA). EKS ignores it while the
    /// cluster runs the EKS Pod Identity Agent and the add-on has Pod Identity associations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_role_arn: Option<String>,
    /// EKS Pod Identity associations the add-on owns: each gives one of its service accounts
    /// an IAM role (whose trust must allow `pods.eks.amazonaws.com`). Compared as a set; EKS
    /// deletes them with the add-on. Needs the `eks-pod-identity-agent` add-on on the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_identity_associations: Vec<PodIdentityAssociation>,
    /// What CreateAddon does with fields of an existing self-managed installation that differ
    /// from the add-on's: leave them, which may fail the create (`NONE`), or take them over
    /// (`OVERWRITE`, the default).
    // `Option`s, here and below, so that `existing` can tell a value written from none; the
    // attributes carry the default when none is written.
    #[serde(default, serialize_with = "or_overwrite")]
    #[schemars(schema_with = "on_create_schema")]
    pub resolve_conflicts_on_create: Option<String>,
    /// What UpdateAddon does with fields another manager changed: fail (`NONE`), take them
    /// over (`OVERWRITE`) or keep them (`PRESERVE`).
    #[serde(default = "overwrite")]
    #[schemars(schema_with = "on_update_schema")]
    pub resolve_conflicts_on_update: String,
    /// Leave the software running in the cluster when the add-on is deleted (EKS's
    /// `preserve`), so that a cluster whose `vpc-cni` goes keeps pod networking (default
    /// `true`).
    #[serde(default, serialize_with = "or_yes")]
    #[schemars(schema_with = "preserve_schema")]
    pub preserve_on_delete: Option<bool>,
    /// The add-on's configuration, written as TOML and sent to EKS as the JSON
    /// `configurationValues`; for `vpc-cni`, `env` is the `aws-node` container's environment.
    #[serde(default)]
    pub configuration_values: Map<String, Value>,
    /// `vpc-cni` only: turns custom networking on or off
    /// (`AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`).
    #[serde(default, skip_serializing)]
    pub custom_network: Option<bool>,
    /// `vpc-cni` only: how nodes pick their ENIConfig, by a node label (`label`, the default)
    /// or by a node annotation (`annotation`), as on `aws_node`.
    #[serde(default, skip_serializing)]
    #[schemars(schema_with = "selection_schema")]
    pub eni_config_selection: Option<String>,
    /// `vpc-cni` only: the node label naming the ENIConfig in `label` mode (default
    /// `topology.kubernetes.io/zone`).
    #[serde(default, skip_serializing)]
    pub eni_config_label: Option<String>,
    /// `vpc-cni` only: `true` turns security groups for pods on (`ENABLE_POD_ENI`), as on
    /// `aws_node`.
    #[serde(default, skip_serializing)]
    pub pod_security_groups: Option<bool>,
    /// The add-on's tags.
    #[serde(default, serialize_with = "or_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// One EKS Pod Identity association of an add-on (EKS API, `AddonPodIdentityAssociations`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodIdentityAssociation {
    /// The add-on's Kubernetes service account, in the add-on's namespace (`aws-node` for
    /// `vpc-cni`).
    pub service_account: String,
    /// The IAM role's ARN, usually `${iam_role.NAME.arn}`.
    pub role_arn: String,
}

/// `resolve_conflicts_on_create`: on create EKS treats `PRESERVE` as `NONE`.
const RESOLVE_ON_CREATE: &[&str] = &["NONE", "OVERWRITE"];
/// `resolve_conflicts_on_update`.
const RESOLVE_ON_UPDATE: &[&str] = &["NONE", "OVERWRITE", "PRESERVE"];

fn on_create_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of(RESOLVE_ON_CREATE)
}

fn on_update_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of(RESOLVE_ON_UPDATE)
}

fn selection_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of(ENI_CONFIG_SELECTIONS)
}

fn overwrite() -> String {
    "OVERWRITE".into()
}

fn preserve_schema(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "boolean", "default": true })
}

fn or_overwrite<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or("OVERWRITE"))
}
fn or_yes<S: serde::Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.unwrap_or(true))
}
fn or_none<S: serde::Serializer>(
    v: &Option<BTreeMap<String, String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    v.clone().unwrap_or_default().serialize(s)
}

/// `[addon.NAME]`: see docs/spec.md.
pub struct AddonKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "name"],
    outputs: &["name", "cluster_name", "arn", "version", "status"],
    mirrored_outputs: &["name", "cluster_name"],
    identity: &["cluster_name", "name"],
    lookup_key: &["cluster_name", "name"],
    create_only: &["resolve_conflicts_on_create"],
    set_valued: &[ASSOCIATIONS],
    // EKS quotes minutes for an add-on; a vpc-cni waits for its DaemonSet's rollout.
    default_timeout: Duration::from_secs(20 * 60),
    kubernetes: false,
    import_id: ImportId::ClusterSlashName,
    replacement: None,
    // Removing the last association is a change: EKS keeps them until told `[]`.
    compared_when_unset: &[ASSOCIATIONS],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "name",
        one_per: None,
    }),
    output_shapes: &[
        ("cluster_name", Shape::ClusterName),
        ("arn", Shape::Other("an add-on ARN")),
        ("name", Shape::Other("an add-on name")),
        ("version", Shape::Other("a version")),
    ],
    restricted_tags: Some("EKS"),
    parent: Some(Kind::Cluster),
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[("configuration_values", PREVIOUS)],
};

/// The attribute of the add-on's Pod Identity associations.
pub const ASSOCIATIONS: &str = "pod_identity_associations";

/// The associations of these attributes, as EKS's request shape.
fn associations_request(attrs: &Value) -> Vec<aws_sdk_eks::types::AddonPodIdentityAssociations> {
    attrs
        .get(ASSOCIATIONS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            aws_sdk_eks::types::AddonPodIdentityAssociations::builder()
                .service_account(a.get("service_account")?.as_str()?)
                .role_arn(a.get("role_arn")?.as_str()?)
                .build()
                .ok()
        })
        .collect()
}

/// The add-on's associations as the spec writes them, from the ARNs DescribeAddon lists
/// (`Addon.podIdentityAssociations`): one DescribePodIdentityAssociation each, concurrently.
async fn read_associations(
    ctx: &Ctx,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<Value>, ResourceError> {
    let reads = arns.iter().map(|arn| async move {
        // `arn:aws:eks:REGION:ACCOUNT:podidentityassociation/CLUSTER/a-…`: the id is last.
        let id = arn.rsplit('/').next().unwrap_or_default();
        match ctx
            .aws
            .eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.association.map(|a| {
                json!({
                    "service_account": a.service_account(),
                    "role_arn": a.role_arn(),
                })
            })),
            Err(e) => {
                let err = aws_error("DescribePodIdentityAssociation", e);
                if err.code() == Some("ResourceNotFoundException") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    });
    let mut found: Vec<Value> = futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    found.sort_by_key(|a| a.to_string());
    Ok(found)
}

/// Who the VPC CNI's `aws-node` pods act as in AWS: what the cluster puts in a pod when it
/// starts, never in one that runs already (EKS user guide: `pod-id-how-it-works.adoc` for Pod
/// Identity, `pod-configuration.adoc` for IRSA's `AWS_ROLE_ARN`; `networking/cni-iam-role.adoc`,
/// Step 2: "The annotation is not applied to Pods that are currently running").
#[derive(Debug, Clone, PartialEq)]
enum CniIdentity {
    /// A Pod Identity association for `aws-node`: the pod's SDK gets credentials from the
    /// agent (`AWS_CONTAINER_CREDENTIALS_FULL_URI`).
    PodIdentity,
    /// IRSA: `AWS_ROLE_ARN` is the add-on's `service_account_role_arn`.
    Irsa(String),
    /// Neither: the node's instance profile (the node role).
    Node,
}

impl std::fmt::Display for CniIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CniIdentity::PodIdentity => f.write_str("their Pod Identity association"),
            CniIdentity::Irsa(role) => write!(f, "the IRSA role {role}"),
            CniIdentity::Node => f.write_str("the node role"),
        }
    }
}

/// The `aws-node` service account, the VPC CNI's.
const CNI_SERVICE_ACCOUNT: &str = "aws-node";

/// Who the `vpc-cni` add-on with these attributes has its pods act as. With both, the
/// association wins: EKS ignores `serviceAccountRoleArn` beside associations while the agent
/// runs (EKS user guide, `workloads/add-ons-iam.adoc`), which validation makes sure of.
fn cni_identity(attrs: &Value) -> CniIdentity {
    let associated = attrs
        .get(ASSOCIATIONS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|a| a.get("service_account").and_then(Value::as_str) == Some(CNI_SERVICE_ACCOUNT));
    match super::str_attr(attrs, "service_account_role_arn") {
        _ if associated => CniIdentity::PodIdentity,
        Some(role) if !role.is_empty() => CniIdentity::Irsa(role.to_string()),
        _ => CniIdentity::Node,
    }
}

/// Who one `aws-node` pod acts as, from the env the cluster gave its `aws-node` container.
fn pod_identity_of(pod: &k8s_openapi::api::core::v1::Pod) -> CniIdentity {
    let env: Vec<(&str, Option<&str>)> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name == CNI_SERVICE_ACCOUNT)
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    let get = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    // The SDK's credential chain: a web identity comes before the container provider.
    if let Some(Some(role)) = get("AWS_ROLE_ARN") {
        return CniIdentity::Irsa(role.to_string());
    }
    if get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some() {
        return CniIdentity::PodIdentity;
    }
    CniIdentity::Node
}

/// kubectl's test of a finished DaemonSet rollout (`rollout status`,
/// `pkg/polymorphichelpers/rollout_status.go`): the controller saw the current spec, and every
/// scheduled pod is updated and available. `Err` says how far it got.
fn rolled_out(ds: &k8s_openapi::api::apps::v1::DaemonSet) -> Result<(), String> {
    let generation = ds.metadata.generation.unwrap_or(0);
    let Some(st) = ds.status.as_ref() else {
        return Err("waiting for the DaemonSet controller".into());
    };
    if st.observed_generation.unwrap_or(0) < generation {
        return Err("waiting for the DaemonSet controller to see the update".into());
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    if updated < desired {
        return Err(format!("{updated} of {desired} aws-node pods updated"));
    }
    if available < desired {
        return Err(format!(
            "{available} of {desired} updated aws-node pods available"
        ));
    }
    Ok(())
}

fn lock_behind(
    m: &std::sync::Mutex<Option<std::time::Instant>>,
) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many times `wait_cni_identity` restarts `aws-node` before it gives up.
const MAX_IDENTITY_RESTARTS: u32 = 3;
/// How long pods must stay behind a finished rollout before `wait_cni_identity` restarts them.
const BEHIND_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// After an update that changed who the VPC CNI acts as: waits until every `aws-node` pod
/// runs as `want` and the DaemonSet's rollout is over, so that nothing ordered after the
/// add-on (the node role losing the CNI policy) can leave a CNI without permissions. EKS rolls
/// the pods when Pod Identity associations change (EKS user guide, `add-ons-iam.adoc`); when
/// pods still run as before and nothing rolls (a new IRSA role: the running pods keep their
/// env), eksnet restarts the DaemonSet, as `kubectl rollout restart` does — the user guide's
/// Step 2 of `networking/cni-iam-role.adoc`. A pod made while the service account's new
/// annotation was not yet there is admitted without the identity (the webhooks read the
/// service account at admission), so a finished restart that still leaves pods behind is
/// restarted again, at most `MAX_IDENTITY_RESTARTS` times; then the apply fails naming them.
async fn wait_cni_identity(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    want: CniIdentity,
) -> Result<(), ResourceError> {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, Patch, PatchParams};
    let client =
        ctx.kube
            .client(&ctx.aws, cluster)
            .await?
            .ok_or_else(|| ResourceError::NoCluster {
                cluster: cluster.to_string(),
            })?;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let pods: Api<Pod> = Api::namespaced(client, "kube-system");
    let restarts = std::sync::atomic::AtomicU32::new(0);
    let behind_since = std::sync::Mutex::new(None::<std::time::Instant>);
    let kube_error = |what: &'static str| move |e| crate::cloud::kube::error(what, e);
    wait_until(
        ctx,
        addr,
        &format!("aws-node pods of cluster {cluster} to run as {want}"),
        ctx.timeout(Kind::Addon),
        || async {
            let Some(ds) = daemonsets
                .get_opt(CNI_SERVICE_ACCOUNT)
                .await
                .map_err(kube_error("get daemonset kube-system/aws-node"))?
            else {
                return Ok(Poll::Done(()));
            };
            let selector = ds
                .spec
                .selector
                .match_labels
                .as_ref()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "k8s-app=aws-node".into());
            let listed = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(kube_error("list pods kube-system/aws-node"))?;
            let running: Vec<&Pod> = listed
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let behind = running
                .iter()
                .filter(|p| pod_identity_of(p) != want)
                .count();
            let rollout = rolled_out(&ds);
            match (behind, rollout) {
                (0, Ok(())) => Ok(Poll::Done(())),
                (n, Ok(())) => {
                    // The rollout looks over (the controller saw the last restart, if any,
                    // and counts every pod updated), yet pods run as before. The status can
                    // run ahead of the pod list for a moment, so only a state that holds for
                    // `BEHIND_GRACE` earns a restart.
                    let since = *lock_behind(&behind_since).get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() < BEHIND_GRACE {
                        return Ok(Poll::Pending(format!(
                            "{n} of {} aws-node pods still run as before",
                            running.len()
                        )));
                    }
                    *lock_behind(&behind_since) = None;
                    let done = restarts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if done >= MAX_IDENTITY_RESTARTS {
                        let names: Vec<String> = running
                            .iter()
                            .filter(|p| pod_identity_of(p) != want)
                            .filter_map(|p| p.metadata.name.clone())
                            .collect();
                        return Ok(Poll::Failed(
                            format!("aws-node pods {} still run as before after {MAX_IDENTITY_RESTARTS} restarts", names.join(", ")),
                            Some(format!("they should run as {want}: check that the service account's annotation or the Pod Identity association is in place, and that the Pod Identity Agent (or the IRSA webhook) runs")),
                        ));
                    }
                    {
                        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
                            .fmt(aws_smithy_types::date_time::Format::DateTime)
                            .unwrap_or_default();
                        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
                            "kubectl.kubernetes.io/restartedAt": now,
                        }}}}});
                        daemonsets
                            .patch(
                                CNI_SERVICE_ACCOUNT,
                                &PatchParams {
                                    field_manager: Some("eksnet".into()),
                                    ..Default::default()
                                },
                                &Patch::Strategic(&patch),
                            )
                            .await
                            .map_err(kube_error("restart daemonset kube-system/aws-node"))?;
                    }
                    Ok(Poll::Pending(format!(
                        "{n} of {} aws-node pods still run as before; restarting them",
                        running.len()
                    )))
                }
                (_, Err(progress)) => {
                    *lock_behind(&behind_since) = None;
                    Ok(Poll::Pending(progress))
                }
            }
        },
    )
    .await
}

/// Whether a spec's add-on is the VPC CNI with custom networking turned on.
pub fn turns_on_custom_networking(c: &AddonConfig) -> bool {
    c.name == VPC_CNI && c.custom_network == Some(true)
}

fn split_id(id: &str) -> Result<(&str, &str), ResourceError> {
    id.split_once('/').ok_or_else(|| ResourceError::BadCloudId {
        kind: Kind::Addon,
        id: id.to_string(),
        expected: "cluster/addon",
    })
}

/// The configuration values as EKS holds them: a JSON text, empty for none.
fn parse_values(text: Option<&str>) -> Value {
    match text.map(str::trim) {
        None | Some("") => json!({}),
        // EKS accepts YAML too; eksnet sends JSON, and a value it cannot read as JSON is shown
        // as it is (a string), so that the plan reports the difference instead of hiding it.
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| json!(t)),
    }
}

fn observe(a: &Addon) -> Option<Observed> {
    let cluster = a.cluster_name()?;
    let name = a.addon_name()?;
    let (tags, managed_by) = split_tags(
        a.tags()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let mut attrs = json!({
        "cluster_name": cluster, "name": name, "version": a.addon_version(),
        "configuration_values": parse_values(a.configuration_values()),
        "tags": tags,
    });
    if let (Some(m), Some(role)) = (attrs.as_object_mut(), a.service_account_role_arn()) {
        m.insert("service_account_role_arn".into(), json!(role));
    }
    let mut outputs = json!({
        "name": name, "cluster_name": cluster, "arn": a.addon_arn(),
        "version": a.addon_version(), "status": a.status().map(|s| s.as_str()),
    });
    if let Some(m) = outputs.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    Some(Observed {
        cloud_id: format!("{cluster}/{name}"),
        attrs,
        outputs,
        managed_by,
    })
}

/// EKS's health issues of an add-on, one line.
fn health(a: &Addon) -> Option<String> {
    let issues: Vec<String> = a
        .health()
        .map(|h| h.issues())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let code = i.code().map(|c| c.as_str()).unwrap_or("issue");
            let message = i.message().unwrap_or_default();
            if i.resource_ids().is_empty() {
                format!("{code}: {message}")
            } else {
                format!("{code}: {message} ({})", i.resource_ids().join(", "))
            }
        })
        .collect();
    (!issues.is_empty()).then(|| issues.join("; "))
}

/// Waits for `ACTIVE`. `DEGRADED` is waited through (an add-on whose pods have no node yet is
/// degraded until nodes come), and its health issues are in the timeout's error; a failed
/// create or update fails at once with them.
async fn wait_active(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    name: &str,
) -> Result<Observed, ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("add-on {cluster}/{name}"),
        ctx.timeout(Kind::Addon),
        || async {
            Ok(match describe(ctx, cluster, name).await? {
                None => Poll::Pending("not yet visible".into()),
                Some(a) => match a.status() {
                    Some(AddonStatus::Active) => Poll::Done(observe(&a)),
                    Some(s @ (AddonStatus::CreateFailed | AddonStatus::UpdateFailed)) => {
                        Poll::Failed(s.as_str().to_string(), health(&a))
                    }
                    Some(AddonStatus::Deleting) => {
                        Poll::Failed("DELETING".into(), Some("deleted while waited for".into()))
                    }
                    Some(AddonStatus::Degraded) => match health(&a) {
                        Some(h) => Poll::Pending(format!("DEGRADED ({h})")),
                        None => Poll::Pending("DEGRADED".into()),
                    },
                    Some(s) => Poll::Pending(s.as_str().to_string()),
                    None => Poll::Pending("no status".into()),
                },
            })
        },
    )
    .await?
    .ok_or_else(|| ResourceError::NotReadBack {
        what: format!("add-on {cluster}/{name}"),
    })
}

async fn wait_gone(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    name: &str,
) -> Result<(), ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("deletion of add-on {cluster}/{name}"),
        ctx.timeout(Kind::Addon),
        || async {
            Ok(match describe(ctx, cluster, name).await? {
                None => Poll::Done(()),
                Some(a) => match a.status() {
                    Some(AddonStatus::DeleteFailed) => {
                        Poll::Failed("DELETE_FAILED".into(), health(&a))
                    }
                    Some(s) => Poll::Pending(s.as_str().to_string()),
                    None => Poll::Pending("no status".into()),
                },
            })
        },
    )
    .await
}

/// The `configurationValues` text for a request; `None` for "no configuration".
fn values_text(attrs: &Value) -> Option<String> {
    match attrs.get("configuration_values") {
        Some(Value::Object(m)) if !m.is_empty() => serde_json::to_string(m).ok(),
        _ => None,
    }
}

fn conflicts(attrs: &Value, key: &str) -> ResolveConflicts {
    ResolveConflicts::from(super::str_attr(attrs, key).unwrap_or("OVERWRITE"))
}

/// Spec config → attributes: the CNI settings go into `configuration_values.env`, where EKS
/// keeps them.
fn attrs_of(c: &AddonConfig) -> Result<Value, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let cni_only = [
        ("custom_network", c.custom_network.is_some()),
        ("eni_config_selection", c.eni_config_selection.is_some()),
        ("eni_config_label", c.eni_config_label.is_some()),
        ("pod_security_groups", c.pod_security_groups.is_some()),
    ];
    let mut values = c.configuration_values.clone();
    if c.name == VPC_CNI {
        let env = values
            .entry("env")
            .or_insert_with(|| Value::Object(Map::new()));
        match env {
            Value::Object(env) => {
                for (k, v) in env.iter() {
                    if !v.is_string() {
                        errors.push((
                            "configuration_values.env",
                            format!("`{k}` must be a string (the VPC CNI reads every env value as text), e.g. \"{v}\""),
                        ));
                    }
                }
                if let Some(on) = c.custom_network {
                    env.insert(CUSTOM_NETWORK_ENV.into(), json!(on.to_string()));
                }
                if let Some(on) = c.pod_security_groups {
                    env.insert(POD_ENI_ENV.into(), json!(on.to_string()));
                }
                let selection = c
                    .eni_config_selection
                    .as_deref()
                    .unwrap_or(ENI_CONFIG_BY_LABEL);
                if !ENI_CONFIG_SELECTIONS.contains(&selection) {
                    errors.push((
                        "eni_config_selection",
                        format!(
                            "must be {}, not `{selection}`",
                            alternatives(ENI_CONFIG_SELECTIONS, |v| format!("`{v}`"))
                        ),
                    ));
                }
                if c.custom_network == Some(true) && selection == ENI_CONFIG_BY_LABEL {
                    let label = c
                        .eni_config_label
                        .clone()
                        .unwrap_or_else(|| "topology.kubernetes.io/zone".into());
                    env.insert(LABEL_DEF_ENV.into(), json!(label));
                }
                if env.is_empty() {
                    values.remove("env");
                }
            }
            _ => errors.push((
                "configuration_values.env",
                "must be a table of environment variables".into(),
            )),
        }
    } else {
        for (key, set) in cni_only {
            if set {
                let what = if key == "pod_security_groups" {
                    "security groups for pods (ENABLE_POD_ENI)"
                } else {
                    "custom networking settings"
                };
                errors.push((
                    key,
                    format!("only the `vpc-cni` add-on has {what}, not `{}`", c.name),
                ));
            }
        }
    }
    let tick = |v: &str| format!("`{v}`");
    let on_create = c
        .resolve_conflicts_on_create
        .as_deref()
        .unwrap_or("OVERWRITE");
    if !RESOLVE_ON_CREATE.contains(&on_create) {
        errors.push((
            "resolve_conflicts_on_create",
            format!(
                "must be {}, not `{on_create}` (on create EKS treats PRESERVE as NONE)",
                alternatives(RESOLVE_ON_CREATE, tick),
            ),
        ));
    }
    if !RESOLVE_ON_UPDATE.contains(&c.resolve_conflicts_on_update.as_str()) {
        errors.push((
            "resolve_conflicts_on_update",
            format!(
                "must be {}, not `{}`",
                alternatives(RESOLVE_ON_UPDATE, tick),
                c.resolve_conflicts_on_update
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if c.existing {
        // Made elsewhere: how it is found, and what eksnet changes on it. The rest is not
        // eksnet's to compare (`check_shape` refuses it in the spec). How conflicts are
        // resolved is recorded only when it is not EKS's default, so that finding the add-on
        // as the spec has it is no change.
        let mut attrs = json!({
            "cluster_name": c.cluster_name, "name": c.name, "existing": true,
            "configuration_values": values,
        });
        if c.resolve_conflicts_on_update != "OVERWRITE" {
            attrs["resolve_conflicts_on_update"] = json!(c.resolve_conflicts_on_update);
        }
        return Ok(attrs);
    }
    let mut attrs = serde_json::to_value(c).unwrap_or(Value::Null);
    if let Some(m) = attrs.as_object_mut() {
        m.insert("configuration_values".into(), Value::Object(values));
    }
    Ok(attrs)
}

/// Whether these attributes are an existing add-on's (`existing = true`): made elsewhere,
/// adopted in place (see `resources::is_adopted`).
fn is_existing(attrs: &Value) -> bool {
    attrs.get("existing").and_then(Value::as_bool) == Some(true)
}

/// The output, kept in the state, holding the configuration values an existing add-on had
/// before eksnet first changed them: what destroy puts back (see `KindFacts::puts_back`).
const PREVIOUS: &str = "previous_configuration_values";

/// An existing add-on as found: marked `existing` (the spec's attribute, so that it is no
/// change), with the values it had before eksnet first changed them. Those come from what
/// the state recorded (`recorded`: its outputs); the first time, they are the values it has
/// now, since eksnet has not changed it yet.
fn as_existing(mut obs: Observed, recorded: &Value) -> Observed {
    let previous = recorded
        .get(PREVIOUS)
        .cloned()
        .or_else(|| obs.attrs.get("configuration_values").cloned())
        .unwrap_or_else(|| json!({}));
    if let Some(m) = obs.attrs.as_object_mut() {
        m.insert("existing".into(), json!(true));
        // Its roles are set where it was made: not eksnet's to compare.
        m.remove(ASSOCIATIONS);
    }
    if let Some(m) = obs.outputs.as_object_mut() {
        m.insert(PREVIOUS.into(), previous);
    }
    obs
}

/// `configurationValues` as a request sends them back: the text EKS had, when eksnet could
/// not read it as JSON (EKS takes YAML too), else the JSON; `{}` for none.
fn values_request(values: &Value) -> String {
    match values {
        Value::String(text) => text.clone(),
        Value::Object(m) if !m.is_empty() => Value::Object(m.clone()).to_string(),
        _ => "{}".into(),
    }
}

/// One UpdateAddon of the configuration values alone (an existing add-on's), waited to
/// `ACTIVE`.
async fn update_values(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    name: &str,
    values: &Value,
    attrs: &Value,
) -> Result<Observed, ResourceError> {
    ctx.aws
        .eks
        .update_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .resolve_conflicts(conflicts(attrs, "resolve_conflicts_on_update"))
        .configuration_values(values_request(values))
        .client_request_token(request_token(ctx, addr, "update"))
        .send()
        .await
        .map_err(|e| aws_error("UpdateAddon", e))?;
    wait_active(ctx, addr, cluster, name).await
}

/// One CreateAddon. `ResourceInUseException` for an add-on still being deleted (after an
/// interrupted destroy) is waited out, then the create is sent again.
async fn send_create(ctx: &Ctx, addr: &ResourceAddr, attrs: &Value) -> Result<(), ResourceError> {
    let cluster = req_str(attrs, "cluster_name")?;
    let name = req_str(attrs, "name")?;
    let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
    ctx.aws
        .eks
        .create_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .set_addon_version(super::str_attr(attrs, "version").map(String::from))
        .set_service_account_role_arn(
            super::str_attr(attrs, "service_account_role_arn").map(String::from),
        )
        .resolve_conflicts(conflicts(attrs, "resolve_conflicts_on_create"))
        .set_configuration_values(values_text(attrs))
        .set_pod_identity_associations(Some(associations_request(attrs)).filter(|a| !a.is_empty()))
        .set_tags(Some(tags.into_iter().collect()))
        .client_request_token(request_token(ctx, addr, "create"))
        .send()
        .await
        .map_err(|e| aws_error("CreateAddon", e))?;
    Ok(())
}

/// A finding of the add-on's live check.
fn finding(key: &str, message: String, error: bool) -> Finding {
    Finding {
        key: key.to_string(),
        message,
        error,
    }
}

/// Every version EKS offers of an add-on, with the cluster versions each is compatible with
/// and whether it is the default there. `None`: EKS does not know the add-on.
type Catalogue = Vec<(String, Vec<(String, bool)>)>;

async fn catalogue(ctx: &Ctx, name: &str) -> Result<Option<Catalogue>, ResourceError> {
    let mut out = Vec::new();
    let mut known = false;
    let mut pages = ctx
        .aws
        .eks
        .describe_addon_versions()
        .addon_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("DescribeAddonVersions", e))?;
        for a in page
            .addons()
            .iter()
            .filter(|a| a.addon_name() == Some(name))
        {
            known = true;
            for v in a.addon_versions() {
                let Some(version) = v.addon_version() else {
                    continue;
                };
                let compat = v
                    .compatibilities()
                    .iter()
                    .filter_map(|c| Some((c.cluster_version()?.to_string(), c.default_version())))
                    .collect();
                out.push((version.to_string(), compat));
            }
        }
    }
    Ok(known.then_some(out))
}

/// The Kubernetes version of an existing cluster, if it exists.
async fn cluster_version(ctx: &Ctx, cluster: &str) -> Result<Option<String>, ResourceError> {
    match ctx.aws.eks.describe_cluster().name(cluster).send().await {
        Ok(out) => Ok(out.cluster.and_then(|c| c.version().map(String::from))),
        Err(e) => {
            let err = aws_error("DescribeCluster", e);
            if err.code() == Some("ResourceNotFoundException") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

async fn schema(ctx: &Ctx, name: &str, version: &str) -> Result<Option<Value>, ResourceError> {
    let out = ctx
        .aws
        .eks
        .describe_addon_configuration()
        .addon_name(name)
        .addon_version(version)
        .send()
        .await
        .map_err(|e| aws_error("DescribeAddonConfiguration", e))?;
    Ok(out
        .configuration_schema()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| serde_json::from_str(s).ok()))
}

/// `configuration_values.a.b` for the JSON pointer `/a/b` of an error inside the values.
fn values_key(pointer: &str) -> String {
    let mut key = "configuration_values".to_string();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        key.push('.');
        key.push_str(&part.replace("~1", "/").replace("~0", "~"));
    }
    key
}

/// What EKS says about an add-on for the plan's checks, read by `inspect` and judged by
/// `judge` (pure): the versions EKS offers, the existing cluster's Kubernetes version, and
/// the configuration schema of the version the values will be checked against.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Inspection {
    /// Why EKS could not be asked: the check is skipped with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
    /// `None`: EKS does not know the add-on.
    #[serde(default)]
    catalogue: Option<Catalogue>,
    /// The existing cluster's Kubernetes version, asked for only when the spec gives none.
    #[serde(default)]
    cluster_version: Option<String>,
    /// (version, its schema or why it could not be read), when there are values to check.
    #[serde(default)]
    schema: Option<(String, Result<Option<Value>, String>)>,
}

/// The version an add-on's values are checked against: the spec's, else the installed one
/// (eksnet changes it only when the spec names one), else EKS's default for the cluster's
/// Kubernetes version (the spec's — the cluster is updated before its add-ons — else the
/// existing cluster's, else the newest that has a default). `Err`: the spec's version does
/// not exist.
fn version_to_check(
    wanted: Option<&str>,
    installed: Option<&str>,
    versions: &Catalogue,
    k8s: Option<&str>,
) -> Result<Option<String>, ()> {
    if let Some(v) = wanted {
        return if versions.iter().any(|(x, _)| x == v) {
            Ok(Some(v.to_string()))
        } else {
            Err(())
        };
    }
    if let Some(v) = installed {
        return Ok(Some(v.to_string()));
    }
    let k = k8s.map(String::from).or_else(|| {
        versions
            .iter()
            .flat_map(|(_, compat)| compat.iter().filter(|(_, d)| *d).map(|(c, _)| c.clone()))
            .max_by(|a, b| compare_versions(a, b))
    });
    Ok(k.and_then(|k| {
        versions
            .iter()
            .find(|(_, compat)| compat.iter().any(|(c, d)| *d && *c == k))
            .map(|(v, _)| v.clone())
    }))
}

/// The version the spec asks for, when it is known before apply.
fn wanted_version(attrs: &Value) -> Option<&str> {
    super::str_attr(attrs, "version").filter(|v| !v.contains("${"))
}

/// The configuration values to check, when there are any.
fn values_of(attrs: &Value) -> Option<&Value> {
    attrs
        .get("configuration_values")
        .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
}

/// Reads what `judge` needs from EKS (`DescribeAddonVersions`, `DescribeCluster` when the
/// spec gives no Kubernetes version, `DescribeAddonConfiguration`); no verdict is made here.
/// With the version written in the spec (or installed), its schema is asked for in the same
/// round trip as the catalogue; otherwise the version is known only from the catalogue.
async fn inspect_addon(
    ctx: &Ctx,
    addr: &ResourceAddr,
    attrs: &Value,
    spec: &SpecFacts,
) -> Inspection {
    let (Some(name), Some(cluster)) = (
        super::str_attr(attrs, "name"),
        super::str_attr(attrs, "cluster_name"),
    ) else {
        return Inspection::default();
    };
    let wanted = wanted_version(attrs);
    let installed = spec.installed_versions.get(addr).map(String::as_str);
    let known = wanted.or(installed);
    let cluster_known = !cluster.contains("${");
    let values = values_of(attrs);
    let (versions, existing, early_schema) = tokio::join!(
        catalogue(ctx, name),
        async {
            // The spec's version wins (the cluster is updated before its add-ons), so the
            // live one is only asked for when the spec gives none, once per cluster.
            if !cluster_known || spec.cluster_versions.contains_key(cluster) {
                return Ok(None);
            }
            match spec.live_cluster_versions.get(cluster) {
                Some(cell) => cell
                    .get_or_try_init(|| cluster_version(ctx, cluster))
                    .await
                    .cloned(),
                None => cluster_version(ctx, cluster).await,
            }
        },
        async {
            match (known, values) {
                (Some(v), Some(_)) => Some(schema(ctx, name, v).await),
                _ => None,
            }
        }
    );
    let failed = |e: ResourceError| Inspection {
        failed: Some(e.to_string()),
        ..Inspection::default()
    };
    let versions = match versions {
        Ok(Some(v)) => v,
        Ok(None) => return Inspection::default(),
        Err(e) => return failed(e),
    };
    let existing = match existing {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let k8s = spec
        .cluster_versions
        .get(cluster)
        .cloned()
        .or(existing.clone());
    let mut found = Inspection {
        catalogue: Some(versions),
        cluster_version: existing,
        ..Inspection::default()
    };
    let Some(catalogue) = &found.catalogue else {
        return found;
    };
    if let (Ok(Some(version)), Some(_)) = (
        version_to_check(wanted, installed, catalogue, k8s.as_deref()),
        values,
    ) {
        let schema = match early_schema {
            Some(s) => s,
            None => schema(ctx, name, &version).await,
        };
        found.schema = Some((version, schema.map_err(|e| e.to_string())));
    }
    found
}

/// The add-on's version against `DescribeAddonVersions` (it exists, it runs on the cluster's
/// Kubernetes version) and its configuration values against the JSON schema EKS gives for
/// the version that will be installed (see `version_to_check`), from what `inspect_addon` read.
fn judge_addon(attrs: &Value, spec: &SpecFacts, found: &Inspection) -> Vec<Finding> {
    let (Some(name), Some(cluster)) = (
        super::str_attr(attrs, "name"),
        super::str_attr(attrs, "cluster_name"),
    ) else {
        return Vec::new();
    };
    if let Some(e) = &found.failed {
        return vec![finding(
            "version",
            format!("the add-on's version and configuration could not be checked against EKS: {e}"),
            false,
        )];
    }
    let Some(versions) = &found.catalogue else {
        return vec![finding(
            "name",
            format!(
                "EKS has no add-on named `{name}` (`aws eks describe-addon-versions` lists them)"
            ),
            true,
        )];
    };
    let wanted = wanted_version(attrs);
    let k8s = spec
        .cluster_versions
        .get(cluster)
        .cloned()
        .or(found.cluster_version.clone());
    let mut findings = Vec::new();
    if let Some(v) = wanted {
        let Some((_, compat)) = versions.iter().find(|(x, _)| x == v) else {
            let mut newest: Vec<&str> = versions.iter().map(|(x, _)| x.as_str()).collect();
            newest.sort_by(|a, b| compare_versions(b, a));
            newest.truncate(5);
            return vec![finding(
                "version",
                format!(
                    "`{name}` has no version `{v}`; the newest are {}",
                    newest.join(", ")
                ),
                true,
            )];
        };
        if let Some(k) = &k8s {
            if !compat.iter().any(|(c, _)| c == k) {
                let mut on: Vec<&str> = compat.iter().map(|(c, _)| c.as_str()).collect();
                on.sort_by(|a, b| compare_versions(a, b));
                findings.push(finding(
                    "version",
                    format!(
                        "`{name}` {v} does not run on Kubernetes {k} (cluster `{cluster}`); it supports {}",
                        on.join(", ")
                    ),
                    true,
                ));
            }
        }
    }
    let (Some((version, schema)), Some(values)) = (&found.schema, values_of(attrs)) else {
        return findings;
    };
    // The version findings stand even when the schema cannot be had.
    let schema = match schema {
        Ok(s) => s.as_ref(),
        Err(e) => {
            findings.push(finding(
                "configuration_values",
                format!("the configuration values could not be checked against EKS's schema for `{name}` {version}: {e}"),
                false,
            ));
            None
        }
    };
    if let Some(schema) = schema {
        match jsonschema::validator_for(schema) {
            Ok(validator) => {
                // A value that is still a reference (`${iam_role.x.arn}`) is checked
                // by EKS once it is known, not against a pattern here.
                for e in validator
                    .iter_errors(values)
                    .filter(|e| !e.instance().as_str().is_some_and(|s| s.contains("${")))
                {
                    let at = values_key(&e.instance_path().to_string());
                    // An unknown key is named at the key itself, with what is allowed.
                    if let jsonschema::error::ValidationErrorKind::AdditionalProperties {
                        unexpected,
                    } = e.kind()
                    {
                        let allowed = allowed_keys(schema, e.schema_path().to_string().as_str());
                        for key in unexpected {
                            findings.push(finding(
                                &format!("{at}.{key}"),
                                format!("`{key}` is not a setting of `{name}` {version} (its configuration schema allows {allowed})"),
                                true,
                            ));
                        }
                        continue;
                    }
                    findings.push(finding(
                        &at,
                        format!("not accepted by `{name}` {version}'s configuration schema: {e}"),
                        true,
                    ));
                }
            }
            Err(e) => findings.push(finding(
                "configuration_values",
                format!("EKS's configuration schema for `{name}` {version} could not be read ({e}); the values are not checked"),
                false,
            )),
        }
    }
    findings
}

/// The property names of the schema object whose `additionalProperties` refused a key
/// (`schema_path` ends in `/additionalProperties`), for the message.
fn allowed_keys(schema: &Value, schema_path: &str) -> String {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    // Through a `$ref` the path does not point into the document: no list then.
    let Some(props) = schema
        .pointer(parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return "other keys only".to_string();
    };
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort_unstable();
    match names.len() {
        0 => "no keys here".to_string(),
        n if n > 12 => format!("{}, … ({n} in all)", names[..12].join(", ")),
        _ => names.join(", "),
    }
}

/// Orders `v1.19.2-eksbuild.1` and `1.31` numerically, part by part.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    parts(a).cmp(&parts(b))
}

impl ResourceKind for AddonKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = AddonConfig;

    /// An existing add-on takes none of the fields that belong to whoever made it: eksnet
    /// changes only its configuration values (`resolve_conflicts_on_update` stays: it governs
    /// that update).
    fn check_shape(a: &Self::Config, rules: &mut dyn FieldRules) {
        if !a.existing {
            return;
        }
        let refused = [
            (
                "version",
                a.version.is_some(),
                "it is upgraded where it was made",
            ),
            (
                "service_account_role_arn",
                a.service_account_role_arn.is_some(),
                "its IAM role is set where it was made",
            ),
            (
                ASSOCIATIONS,
                !a.pod_identity_associations.is_empty(),
                "its IAM roles are set where it was made",
            ),
            ("tags", a.tags.is_some(), "it is tagged where it was made"),
            (
                "preserve_on_delete",
                a.preserve_on_delete.is_some(),
                "eksnet never deletes it: destroy only puts its configuration values back",
            ),
            (
                "resolve_conflicts_on_create",
                a.resolve_conflicts_on_create.is_some(),
                "eksnet never creates it",
            ),
        ];
        for (key, _, why) in refused.into_iter().filter(|(_, set, _)| *set) {
            rules.error(
                key,
                format!("an existing add-on (`existing = true`) was made elsewhere and takes no `{key}`: {why}; eksnet changes only its configuration values; remove `{key}`"),
            );
        }
    }

    /// Its cluster and role; for the VPC CNI, its env (types and combinations).
    fn check_fields(a: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &a.cluster_name, Shape::ClusterName);
        if let Some(role) = &a.service_account_role_arn {
            rules.shaped("service_account_role_arn", role, Shape::RoleArn);
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in a.pod_identity_associations.iter().enumerate() {
            rules.shaped(
                &format!("{ASSOCIATIONS}.{i}.role_arn"),
                &p.role_arn,
                Shape::RoleArn,
            );
            let sa = &p.service_account;
            let name_ok = !sa.is_empty()
                && sa.len() <= 253
                && sa
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && sa.starts_with(|c: char| c.is_ascii_alphanumeric())
                && sa.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !name_ok && !crate::base::value::is_ref(sa) {
                rules.error(
                    &format!("{ASSOCIATIONS}.{i}.service_account"),
                    format!("`{sa}` is not a Kubernetes service account name (lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit); the namespace is the add-on's"),
                );
            } else if !seen.insert(sa.as_str()) {
                // EKS keeps one association per service account.
                rules.error(
                    &format!("{ASSOCIATIONS}.{i}.service_account"),
                    format!("`{sa}` has an association already: a service account has one role"),
                );
            }
        }
        if let Some(label) = &a.eni_config_label {
            rules.label("eni_config_label", label, None);
        }
        if a.name == super::eks::VPC_CNI_ADDON {
            let env: Vec<(String, String)> = a
                .configuration_values
                .get("env")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in &env {
                rules.cni_env(&format!("configuration_values.env.{k}"), k, v);
            }
            let mut env = env;
            if turns_on_custom_networking(a) {
                env.push((
                    super::eks::VPC_CNI_CUSTOM_NETWORK_ENV.to_string(),
                    "true".to_string(),
                ));
            }
            if let Some(on) = a.pod_security_groups {
                env.push((POD_ENI_ENV.to_string(), on.to_string()));
            }
            rules.cni_combinations("configuration_values.env", &env);
        }
    }

    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        attrs_of(c)
    }

    /// An answer that cannot be had (no permission, an emulator without the add-on API) is a
    /// warning: the plan goes on unchecked rather than failing.
    async fn inspect(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
        spec: &SpecFacts,
    ) -> Option<Value> {
        serde_json::to_value(inspect_addon(ctx, addr, attrs, spec).await).ok()
    }

    fn judge(
        _addr: &ResourceAddr,
        attrs: &Value,
        spec: &SpecFacts,
        inspection: &Value,
    ) -> Vec<Finding> {
        match serde_json::from_value::<Inspection>(inspection.clone()) {
            Ok(found) => judge_addon(attrs, spec, &found),
            Err(e) => vec![finding(
                "version",
                format!(
                    "the add-on's version and configuration could not be checked against EKS: {e}"
                ),
                false,
            )],
        }
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let reads = items.iter().map(|i| async move {
            let id = i.cloud_id.clone().or_else(|| {
                let c = super::str_attr(&i.attrs, "cluster_name")?;
                let n = super::str_attr(&i.attrs, "name")?;
                (!crate::base::value::is_unknown(&json!(c))).then(|| format!("{c}/{n}"))
            });
            let found = match id {
                Some(id) => {
                    let (c, n) = split_id(&id)?;
                    match describe(ctx, c, n).await? {
                        Some(a) => {
                            let mut obs = observe(&a);
                            let arns = a.pod_identity_associations();
                            let ours = !is_existing(&i.attrs);
                            if let (Some(o), false, true) = (obs.as_mut(), arns.is_empty(), ours) {
                                let found = read_associations(ctx, c, arns).await?;
                                if let Some(m) = o.attrs.as_object_mut() {
                                    m.insert(ASSOCIATIONS.into(), json!(found));
                                }
                            }
                            obs
                        }
                        None => None,
                    }
                }
                None => None,
            };
            Ok::<_, ResourceError>(match found {
                Some(obs) if is_existing(&i.attrs) => Some(as_existing(obs, &i.last_outputs)),
                other => other,
            })
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let cluster = req_str(attrs, "cluster_name")?;
        let name = req_str(attrs, "name")?;
        if is_existing(attrs) {
            // Never planned (a plan refuses an existing add-on it does not find): only read.
            let found = describe(ctx, cluster, name)
                .await?
                .as_ref()
                .and_then(observe)
                .ok_or_else(|| ResourceError::AdoptedMissing {
                    addr: addr.clone(),
                    what: format!("add-on {cluster}/{name}"),
                })?;
            return Ok(as_existing(found, &Value::Null));
        }
        match send_create(ctx, addr, attrs).await {
            Err(e) if e.code() == Some("ResourceInUseException") => {
                let deleting = describe(ctx, cluster, name)
                    .await?
                    .is_some_and(|a| a.status() == Some(&AddonStatus::Deleting));
                if !deleting {
                    return Err(e);
                }
                wait_gone(ctx, addr, cluster, name).await?;
                send_create(ctx, addr, attrs).await?;
            }
            other => other?,
        }
        wait_active(ctx, addr, cluster, name).await
    }

    /// Version, role and configuration in one UpdateAddon (waited to `ACTIVE`), then tags.
    /// A change of eksnet's own settings only (`resolve_conflicts_*`, `preserve_on_delete`)
    /// sends nothing: the state records it.
    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let (before, after) = (change.before, change.after);
        let (cluster, name) = split_id(cloud_id)?;
        if is_existing(after) {
            // Its configuration values only: its version, role and tags are not eksnet's. What
            // it had before eksnet is in the state already (written before this update when
            // the state had no row for it); else it is what the plan found.
            let recorded = if change.prior_outputs.get(PREVIOUS).is_some() {
                change.prior_outputs.clone()
            } else {
                json!({ PREVIOUS: before.get("configuration_values").cloned().unwrap_or_else(|| json!({})) })
            };
            let obs = if before.get("configuration_values") != after.get("configuration_values") {
                let values = after
                    .get("configuration_values")
                    .cloned()
                    .unwrap_or_default();
                update_values(ctx, addr, cluster, name, &values, after).await?
            } else {
                // `resolve_conflicts_on_update` alone: recorded, nothing sent.
                wait_active(ctx, addr, cluster, name).await?
            };
            return Ok(as_existing(obs, &recorded));
        }
        let differs = |k: &str| before.get(k) != after.get(k);
        let version = super::str_attr(after, "version").filter(|_| differs("version"));
        let role = differs("service_account_role_arn");
        let values = differs("configuration_values");
        let associations = differs(ASSOCIATIONS);
        if version.is_some() || role || values || associations {
            let mut req = ctx
                .aws
                .eks
                .update_addon()
                .cluster_name(cluster)
                .addon_name(name)
                .resolve_conflicts(conflicts(after, "resolve_conflicts_on_update"))
                .client_request_token(request_token(ctx, addr, "update"));
            if let Some(v) = version {
                req = req.addon_version(v);
            }
            if role {
                // An empty role removes it, as in the AWS CLI.
                req = req.service_account_role_arn(
                    super::str_attr(after, "service_account_role_arn").unwrap_or_default(),
                );
            }
            if values {
                // "{}" clears configuration values that the spec no longer has.
                req = req.configuration_values(values_text(after).unwrap_or_else(|| "{}".into()));
            }
            if associations {
                // The whole list replaces the add-on's; `[]` deletes them (EKS user guide,
                // `workloads/update-addon-role.adoc`, `remove-addon-role.adoc`).
                req = req.set_pod_identity_associations(Some(associations_request(after)));
            }
            req.send().await.map_err(|e| aws_error("UpdateAddon", e))?;
            wait_active(ctx, addr, cluster, name).await?;
            // A change of who the CNI acts as is done once its pods run so: what follows the
            // add-on (a node role losing the CNI policy) must not find them running as before.
            if name == VPC_CNI && (role || associations) {
                wait_cni_identity(ctx, addr, cluster, cni_identity(after)).await?;
            }
        }
        if differs("tags") {
            let current =
                describe(ctx, cluster, name)
                    .await?
                    .ok_or_else(|| ResourceError::Disappeared {
                        what: format!("add-on {cloud_id}"),
                    })?;
            if let Some(arn) = current.addon_arn() {
                update_tags(ctx, arn, before, after).await?;
            }
        }
        wait_active(ctx, addr, cluster, name).await
    }

    /// `preserve_on_delete` (default on) keeps the software running in the cluster. An
    /// existing add-on is never deleted: its configuration values are put back as the state
    /// recorded them from before eksnet (the plan's `put_back`), with one UpdateAddon when
    /// they differ.
    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let (cluster, name) = split_id(cloud_id)?;
        if is_existing(attrs) {
            let Some(previous) = prior_outputs.get(PREVIOUS) else {
                // Nothing recorded, so nothing eksnet knows to put back.
                return Ok(());
            };
            let Some(mut found) = describe(ctx, cluster, name).await? else {
                return Ok(()); // gone with its cluster, or deleted elsewhere
            };
            // EKS refuses an update while another is under way.
            if matches!(
                found.status(),
                Some(AddonStatus::Creating | AddonStatus::Updating)
            ) {
                wait_active(ctx, addr, cluster, name).await?;
                found = describe(ctx, cluster, name).await?.ok_or_else(|| {
                    ResourceError::Disappeared {
                        what: format!("add-on {cloud_id}"),
                    }
                })?;
            }
            if parse_values(found.configuration_values()) != *previous {
                update_values(ctx, addr, cluster, name, previous, attrs).await?;
            }
            return Ok(());
        }
        let preserve = attrs
            .get("preserve_on_delete")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        match ctx
            .aws
            .eks
            .delete_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .preserve(preserve)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let err = aws_error("DeleteAddon", e);
                if err.code() == Some("ResourceNotFoundException") {
                    return Ok(());
                }
                return Err(err);
            }
        }
        wait_gone(ctx, addr, cluster, name).await
    }

    /// An add-on found mid-create or mid-update (after a crash) is waited for; one that is
    /// settled in any other state (`DEGRADED` included) is left to the plan.
    async fn settle(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
    ) -> Result<Option<Observed>, ResourceError> {
        let (cluster, name) = split_id(cloud_id)?;
        let busy = describe(ctx, cluster, name).await?.is_some_and(|a| {
            matches!(
                a.status(),
                Some(AddonStatus::Creating | AddonStatus::Updating)
            )
        });
        if !busy {
            return Ok(None);
        }
        let settled = wait_active(ctx, addr, cluster, name).await?;
        // An existing add-on keeps what the plan found, with the values from before eksnet
        // that refresh worked out (the state's, or the first ones seen): the ones it has now
        // may be someone else's update, just finished.
        Ok((!is_existing(attrs)).then_some(settled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SpecFacts {
        SpecFacts {
            cluster_versions: [("demo".to_string(), "1.31".to_string())].into(),
            ..SpecFacts::default()
        }
    }

    fn catalogue() -> Option<Catalogue> {
        Some(vec![
            ("v1.19.2-eksbuild.1".into(), vec![("1.31".into(), true)]),
            ("v1.18.0-eksbuild.1".into(), vec![("1.30".into(), true)]),
        ])
    }

    /// The verdicts come from what was read alone: no client, no request.
    #[test]
    fn judge_makes_the_verdicts_from_the_inspection_alone() {
        let attrs =
            |version: &str| json!({"name": "vpc-cni", "cluster_name": "demo", "version": version});
        let read = Inspection {
            catalogue: catalogue(),
            ..Inspection::default()
        };
        assert!(judge_addon(&attrs("v1.19.2-eksbuild.1"), &facts(), &read).is_empty());
        let missing = judge_addon(&attrs("v9.9.9-eksbuild.1"), &facts(), &read);
        assert!(
            missing[0].error && missing[0].message.contains("has no version"),
            "{missing:?}"
        );
        let wrong_k8s = judge_addon(&attrs("v1.18.0-eksbuild.1"), &facts(), &read);
        assert!(
            wrong_k8s[0].error
                && wrong_k8s[0]
                    .message
                    .contains("does not run on Kubernetes 1.31"),
            "{wrong_k8s:?}"
        );
        let unknown = judge_addon(&attrs("v1"), &facts(), &Inspection::default());
        assert!(unknown[0].error && unknown[0].key == "name", "{unknown:?}");
        let failed = Inspection {
            failed: Some("AccessDenied".into()),
            ..Inspection::default()
        };
        let warned = judge_addon(&attrs("v1"), &facts(), &failed);
        assert!(
            !warned[0].error && warned[0].message.contains("AccessDenied"),
            "{warned:?}"
        );
    }

    /// An existing add-on is compared by how it is found and by its configuration values
    /// alone; a made one keeps EKS's defaults in its attributes. Found, it is marked
    /// `existing` and carries the values from before eksnet: the state's, else the ones it
    /// has now; they go back as they were read (YAML as its text).
    #[test]
    fn an_existing_addon_is_its_values_and_keeps_the_ones_from_before_eksnet() {
        let config = |v: Value| -> AddonConfig { serde_json::from_value(v).expect("config") };
        let existing = config(json!({
            "cluster_name": "demo", "name": "vpc-cni", "existing": true,
            "custom_network": true, "configuration_values": {"env": {"WARM_IP_TARGET": "5"}},
        }));
        assert_eq!(
            attrs_of(&existing).ok(),
            Some(json!({
                "cluster_name": "demo", "name": "vpc-cni", "existing": true,
                "configuration_values": {"env": {
                    "WARM_IP_TARGET": "5",
                    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
                    "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone",
                }},
            }))
        );
        let made = attrs_of(&config(json!({"cluster_name": "demo", "name": "coredns"})))
            .expect("attributes");
        assert_eq!(
            (
                &made["resolve_conflicts_on_create"],
                &made["preserve_on_delete"],
                &made["tags"]
            ),
            (&json!("OVERWRITE"), &json!(true), &json!({}))
        );
        let found = Observed {
            cloud_id: "demo/vpc-cni".into(),
            attrs: json!({"configuration_values": {"env": {"WARM_IP_TARGET": "5"}}}),
            outputs: json!({"status": "ACTIVE"}),
            managed_by: None,
        };
        let first = as_existing(found.clone(), &Value::Null);
        assert_eq!(first.attrs["existing"], true);
        assert_eq!(
            first.outputs[PREVIOUS],
            json!({"env": {"WARM_IP_TARGET": "5"}})
        );
        let recorded = as_existing(found, &json!({ PREVIOUS: {} }));
        assert_eq!(recorded.outputs[PREVIOUS], json!({}));
        assert_eq!(values_request(&json!({})), "{}");
        assert_eq!(values_request(&json!("env:\n  A: b\n")), "env:\n  A: b\n");
        assert_eq!(
            values_request(&json!({"env": {"A": "b"}})),
            r#"{"env":{"A":"b"}}"#
        );
    }

    /// Who the CNI acts as: the association wins over IRSA (EKS ignores the role beside it);
    /// a pod acts as what its env says, a web identity before the container provider.
    #[test]
    fn the_cni_identity_of_the_spec_and_of_a_pod() {
        let pia = json!([{"service_account": "aws-node", "role_arn": "arn:aws:iam::1:role/cni"}]);
        let both = json!({"name": "vpc-cni", ASSOCIATIONS: pia, "service_account_role_arn": "arn:aws:iam::1:role/irsa"});
        assert_eq!(cni_identity(&both), CniIdentity::PodIdentity);
        let irsa =
            json!({"name": "vpc-cni", "service_account_role_arn": "arn:aws:iam::1:role/irsa"});
        assert_eq!(
            cni_identity(&irsa),
            CniIdentity::Irsa("arn:aws:iam::1:role/irsa".into())
        );
        let other_sa =
            json!({"name": "vpc-cni", ASSOCIATIONS: [{"service_account": "x", "role_arn": "r"}]});
        assert_eq!(cni_identity(&other_sa), CniIdentity::Node);
        let pod = |env: Value| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(json!({"spec": {"containers": [
                {"name": "aws-vpc-cni-init"}, {"name": "aws-node", "env": env}]}}))
            .expect("pod")
        };
        assert_eq!(pod_identity_of(&pod(json!([]))), CniIdentity::Node);
        let agent = json!([{"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://169.254.170.23/v1/credentials"}]);
        assert_eq!(pod_identity_of(&pod(agent)), CniIdentity::PodIdentity);
        let both = json!([{"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "x"},
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/irsa"}]);
        assert_eq!(
            pod_identity_of(&pod(both)),
            CniIdentity::Irsa("arn:aws:iam::1:role/irsa".into())
        );
    }

    /// kubectl's rollout test: the spec seen, every pod updated and available.
    #[test]
    fn a_daemonset_rollout_is_over_when_every_pod_is_updated_and_available() {
        let ds = |generation: i64, status: Value| -> k8s_openapi::api::apps::v1::DaemonSet {
            serde_json::from_value(json!({"metadata": {"generation": generation},
                "spec": {"selector": {}, "template": {}}, "status": status}))
            .expect("daemonset")
        };
        let st = |observed: i64, updated: i32, available: i32| {
            json!({"observedGeneration": observed,
            "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0,
            "numberReady": available, "updatedNumberScheduled": updated, "numberAvailable": available})
        };
        assert!(rolled_out(&ds(2, st(2, 2, 2))).is_ok());
        assert!(rolled_out(&ds(3, st(2, 2, 2)))
            .unwrap_err()
            .contains("see the update"));
        assert!(rolled_out(&ds(2, st(2, 1, 2)))
            .unwrap_err()
            .contains("1 of 2 aws-node pods updated"));
        assert!(rolled_out(&ds(2, st(2, 2, 1)))
            .unwrap_err()
            .contains("available"));
    }

    #[test]
    fn a_schema_read_for_the_version_judges_the_values() {
        let attrs = json!({
            "name": "vpc-cni", "cluster_name": "demo", "version": "v1.19.2-eksbuild.1",
            "configuration_values": {"env": {"NOPE": "1"}},
        });
        let schema = json!({
            "type": "object",
            "properties": {"env": {"type": "object", "properties": {"WARM_IP_TARGET": {}}, "additionalProperties": false}},
        });
        let read = Inspection {
            catalogue: catalogue(),
            schema: Some(("v1.19.2-eksbuild.1".into(), Ok(Some(schema)))),
            ..Inspection::default()
        };
        let found = judge_addon(&attrs, &facts(), &read);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "configuration_values.env.NOPE");
        // A version chosen by the catalogue when the spec names none.
        assert_eq!(
            version_to_check(None, None, &catalogue().unwrap_or_default(), Some("1.30")),
            Ok(Some("v1.18.0-eksbuild.1".to_string()))
        );
    }
}
