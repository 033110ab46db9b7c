//! `security_group_policy`: one `SecurityGroupPolicy` (`vpcresources.k8s.aws/v1beta1`,
//! namespaced), telling the VPC resource controller which security groups the pods it selects
//! get (by their labels, or by their service account's labels). EKS installs the CRD on every
//! cluster with the controller (amazon-vpc-resource-controller-k8s
//! `config/crd/bases/vpcresources.k8s.aws_securitygrouppolicies.yaml`); the pods get branch
//! ENIs with these groups only where the VPC CNI has `ENABLE_POD_ENI=true` (the rules across
//! kinds: `domain::pod_security_groups`). Written with server-side apply (field manager
//! `eksnet`), like an ENIConfig.

use super::{req_str, str_attr, str_list, BuildCtx};
use super::{
    Change, Ctx, FieldRules, ImportId, KindFacts, Lookup, Observed, ResourceError, ResourceKind,
    Shape, Unique,
};
use crate::base::addr::{Kind, ResourceAddr};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One `SecurityGroupPolicy` of a cluster: the security groups of the pods it selects.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// At least one selector (see `check_shape`).
#[schemars(extend("anyOf" = [
    { "required": ["pod_selector"] },
    { "required": ["service_account_selector"] }
]))]
pub struct SecurityGroupPolicyConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The namespace of the policy and of the pods it selects (it must exist); absent:
    /// `default`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The object's name; absent: the table's key (`web` of `[security_group_policy.web]`).
    pub name: Option<String>,
    /// The pods' labels that select them (`matchLabels`), e.g. `{ app = "web" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<BTreeMap<String, String>>,
    /// The labels of the pods' service account that select them (`matchLabels`). With
    /// `pod_selector` too, a pod must match both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<BTreeMap<String, String>>,
    /// The security groups of the selected pods' branch ENIs: 1 to 5. They replace the
    /// ENIConfig's (or the node's) for these pods.
    #[schemars(length(min = 1, max = MAX_GROUPS))]
    pub security_group_ids: Vec<String>,
}

fn default_namespace() -> String {
    "default".into()
}

/// `[security_group_policy.NAME]`: see docs/spec.md.
pub struct SecurityGroupPolicyKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["cluster_name", "namespace", "name"],
    outputs: &["name", "namespace"],
    mirrored_outputs: &["name", "namespace"],
    identity: &["cluster_name", "namespace", "name"],
    lookup_key: &["cluster_name", "namespace", "name"],
    create_only: &[],
    set_valued: &["security_group_ids"],
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: true,
    import_id: ImportId::ClusterNamespaceName,
    replacement: None,
    compared_when_unset: &["pod_selector", "service_account_selector"],
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

/// The most groups one policy takes: the CRD's controller documents 5 per policy
/// (amazon-vpc-resource-controller-k8s README, "The SecurityGroupPolicy CRD only supports up
/// to 5 security groups per custom resource").
pub const MAX_GROUPS: usize = 5;

const API_VERSION: &str = "vpcresources.k8s.aws/v1beta1";

pub fn api_resource() -> ApiResource {
    ApiResource {
        group: "vpcresources.k8s.aws".into(),
        version: "v1beta1".into(),
        api_version: API_VERSION.into(),
        kind: "SecurityGroupPolicy".into(),
        plural: "securitygrouppolicies".into(),
    }
}

/// A `matchLabels` selector as the object holds it; `None` when the spec gives none.
fn selector(labels: Option<&Value>) -> Option<Value> {
    labels
        .filter(|l| l.is_object())
        .map(|l| json!({ "matchLabels": l }))
}

/// The `matchLabels` of a live selector (a selector with only `matchExpressions`, written
/// elsewhere, shows as no labels, so the plan puts the spec's back).
fn match_labels(selector: Option<&Value>) -> Value {
    match selector {
        None | Some(Value::Null) => Value::Null,
        Some(s) => s
            .get("matchLabels")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    }
}

fn observe(cluster: &str, o: &DynamicObject) -> Option<Observed> {
    let name = o.metadata.name.clone()?;
    let namespace = o.metadata.namespace.clone()?;
    let spec = o.data.get("spec");
    let mut groups = spec
        .and_then(|s| s.get("securityGroups"))
        .map(|g| str_list(g, "groupIds"))
        .unwrap_or_default();
    groups.sort();
    let mut attrs = json!({
        "cluster_name": cluster, "namespace": namespace, "name": name,
        "security_group_ids": groups,
    });
    for (key, field) in [
        ("pod_selector", "podSelector"),
        ("service_account_selector", "serviceAccountSelector"),
    ] {
        let live = match_labels(spec.and_then(|s| s.get(field)));
        if let (false, Some(m)) = (live.is_null(), attrs.as_object_mut()) {
            m.insert(key.into(), live);
        }
    }
    let annotations = o.metadata.annotations.clone().unwrap_or_default();
    Some(Observed {
        cloud_id: format!("{cluster}/{namespace}/{name}"),
        attrs,
        outputs: json!({"name": name, "namespace": namespace}),
        managed_by: annotations.get(super::KUBE_STATE_ANNOTATION).cloned(),
    })
}

/// (cluster, namespace, name) of a cloud id.
fn split_id(id: &str) -> Result<(&str, &str, &str), ResourceError> {
    let mut parts = id.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(c), Some(ns), Some(n)) if !c.is_empty() && !ns.is_empty() && !n.is_empty() => {
            Ok((c, ns, n))
        }
        _ => Err(ResourceError::BadCloudId {
            kind: Kind::SecurityGroupPolicy,
            id: id.to_string(),
            expected: "cluster/namespace/name",
        }),
    }
}

/// The object observed for an item, from the per-cluster lists.
fn refind(item: &Lookup, by_cluster: &HashMap<String, Vec<DynamicObject>>) -> Option<Observed> {
    let (cluster, namespace, name) = match &item.cloud_id {
        Some(id) => {
            let (c, ns, n) = split_id(id).ok()?;
            (c.to_string(), ns.to_string(), n.to_string())
        }
        None => (
            str_attr(&item.attrs, "cluster_name")?.to_string(),
            str_attr(&item.attrs, "namespace")?.to_string(),
            str_attr(&item.attrs, "name")?.to_string(),
        ),
    };
    by_cluster
        .get(&cluster)?
        .iter()
        .find(|o| {
            o.metadata.name.as_deref() == Some(name.as_str())
                && o.metadata.namespace.as_deref() == Some(namespace.as_str())
        })
        .and_then(|o| observe(&cluster, o))
}

async fn apply_object(
    ctx: &Ctx,
    addr: &ResourceAddr,
    attrs: &Value,
) -> Result<Observed, ResourceError> {
    let cluster = req_str(attrs, "cluster_name")?;
    let namespace = req_str(attrs, "namespace")?;
    let name = req_str(attrs, "name")?;
    let client = super::kube_client(ctx, cluster).await?;
    let annotations = super::kube_annotations(ctx, addr);
    let mut spec = json!({"securityGroups": {"groupIds": str_list(attrs, "security_group_ids")}});
    for (key, field) in [
        ("pod_selector", "podSelector"),
        ("service_account_selector", "serviceAccountSelector"),
    ] {
        if let Some(s) = selector(attrs.get(key)) {
            spec[field] = s;
        }
    }
    let object = json!({
        "apiVersion": API_VERSION,
        "kind": "SecurityGroupPolicy",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": spec,
    });
    let applied = Api::<DynamicObject>::namespaced_with(client, namespace, &api_resource())
        .patch(
            name,
            &PatchParams::apply("eksnet").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| crate::cloud::kube::error("apply securitygrouppolicy", e))?;
    observe(cluster, &applied).ok_or_else(|| {
        ResourceError::Invalid(format!(
            "SecurityGroupPolicy {namespace}/{name} came back without a name or namespace"
        ))
    })
}

/// A Kubernetes label map's keys and values, at `field.KEY`.
fn check_labels(field: &str, labels: &BTreeMap<String, String>, rules: &mut dyn FieldRules) {
    for (k, v) in labels {
        rules.label(&format!("{field}.{k}"), k, Some(v));
    }
}

impl ResourceKind for SecurityGroupPolicyKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = SecurityGroupPolicyConfig;

    /// At least one selector, and 1 to 5 groups: the controller ignores a policy without a
    /// selector or without groups (amazon-vpc-resource-controller-k8s `pkg/utils/helper.go`,
    /// "Found an invalid SecurityGroupPolicy"), and takes 5 groups at most.
    fn check_shape(p: &Self::Config, rules: &mut dyn FieldRules) {
        if p.pod_selector.is_none() && p.service_account_selector.is_none() {
            rules.error(
                "",
                "a SecurityGroupPolicy selects pods by `pod_selector` (their labels) or `service_account_selector` (their service account's labels), or both; with neither the VPC resource controller ignores it; add one".into(),
            );
        }
        for (key, labels) in [
            ("pod_selector", &p.pod_selector),
            ("service_account_selector", &p.service_account_selector),
        ] {
            if labels.as_ref().is_some_and(BTreeMap::is_empty) {
                rules.error(
                    key,
                    format!("an empty `{key}` selects every pod of the namespace; name the labels to select by, e.g. `{key} = {{ app = \"web\" }}`"),
                );
            }
        }
        let n = p.security_group_ids.len();
        if n == 0 {
            rules.error(
                "security_group_ids",
                "give 1 to 5 security groups: without one the VPC resource controller ignores the policy".into(),
            );
        } else if n > MAX_GROUPS {
            rules.error(
                "security_group_ids",
                format!("{n} security groups: a SecurityGroupPolicy takes at most {MAX_GROUPS} (the VPC resource controller's limit); split them over two policies selecting the same pods"),
            );
        }
    }

    /// Its cluster, names, labels and group ids.
    fn check_fields(p: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &p.cluster_name, Shape::ClusterName);
        rules.kubernetes_name("namespace", &p.namespace, true);
        if let Some(name) = &p.name {
            rules.kubernetes_name("name", name, false);
        }
        for (i, g) in p.security_group_ids.iter().enumerate() {
            rules.shaped(
                &format!("security_group_ids.{i}"),
                g,
                Shape::SecurityGroupId,
            );
        }
        if let Some(l) = &p.pod_selector {
            check_labels("pod_selector", l, rules);
        }
        if let Some(l) = &p.service_account_selector {
            check_labels("service_account_selector", l, rules);
        }
    }

    /// The name defaults to the table's key, which must then be a Kubernetes name itself.
    fn desired_attrs(
        c: &Self::Config,
        build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let name = match &c.name {
            Some(n) => n.clone(),
            None if crate::base::kubernetes_names::is_dns_subdomain(build.resource_name) => {
                build.resource_name.to_string()
            }
            None => {
                return Err(vec![(
                    "name",
                    format!("set `name`: the policy's name defaults to the table's key, and `{}` is not a Kubernetes object name (lowercase letters, digits, `-` and `.`)", build.resource_name),
                )])
            }
        };
        let mut attrs = json!({
            "cluster_name": c.cluster_name,
            "namespace": c.namespace,
            "name": name,
            "security_group_ids": c.security_group_ids,
        });
        if let Some(m) = attrs.as_object_mut() {
            if let Some(l) = &c.pod_selector {
                m.insert("pod_selector".into(), json!(l));
            }
            if let Some(l) = &c.service_account_selector {
                m.insert("service_account_selector".into(), json!(l));
            }
        }
        Ok(attrs)
    }

    /// One LIST of policies per cluster, over all namespaces, whatever their number.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let by_cluster =
            super::list_per_cluster(ctx, items, &api_resource(), "list securitygrouppolicies")
                .await?;
        Ok(items.iter().map(|i| refind(i, &by_cluster)).collect())
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        apply_object(ctx, addr, attrs).await
    }

    /// Server-side apply again: the groups and selectors become the spec's (a selector the
    /// spec no longer gives is dropped, as eksnet's field manager no longer applies it).
    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        _cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        apply_object(ctx, addr, change.after).await
    }

    /// Pods that already have a branch ENI keep it until they go (the controller reads the
    /// policies when a pod is created).
    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let (cluster, namespace, name) = split_id(cloud_id)?;
        let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
            return Ok(());
        };
        let api = Api::<DynamicObject>::namespaced_with(client, namespace, &api_resource());
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(e) if crate::cloud::kube::is_not_found(&e) => Ok(()),
            Err(e) => Err(crate::cloud::kube::error("delete securitygrouppolicy", e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": "SecurityGroupPolicy",
            "metadata": {"name": "web", "namespace": "shop", "annotations": {super::super::KUBE_STATE_ANNOTATION: "L"}},
            "spec": spec,
        }))
        .unwrap()
    }

    /// What is read back is in the attributes' shape: the groups sorted, only the selectors
    /// the object has, a selector of expressions only as no labels.
    #[test]
    fn a_live_policy_reads_back_in_the_specs_shape() {
        let o = object(json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "securityGroups": {"groupIds": ["sg-0000000b", "sg-0000000a"]},
        }));
        let seen = observe("demo", &o).unwrap();
        assert_eq!(seen.cloud_id, "demo/shop/web");
        assert_eq!(seen.managed_by.as_deref(), Some("L"));
        assert_eq!(
            seen.attrs,
            json!({"cluster_name": "demo", "namespace": "shop", "name": "web",
                "security_group_ids": ["sg-0000000a", "sg-0000000b"],
                "pod_selector": {"app": "web"}})
        );
        let o = object(json!({
            "serviceAccountSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
            "securityGroups": {"groupIds": ["sg-0000000a"]},
        }));
        let seen = observe("demo", &o).unwrap();
        assert_eq!(seen.attrs["service_account_selector"], json!({}));
        assert!(seen.attrs.get("pod_selector").is_none());
    }

    #[test]
    fn cloud_ids_have_three_parts() {
        assert_eq!(split_id("c/ns/n").unwrap(), ("c", "ns", "n"));
        assert!(split_id("c/n").is_err());
        assert!(split_id("c//n").is_err());
    }
}
