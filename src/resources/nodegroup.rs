//! `nodegroup`: an EKS managed nodegroup, waited to `ACTIVE`. Its cloud id is
//! `cluster/nodegroup` so that delete needs nothing but the state row.

use super::eks::{request_token, retry_iam_propagation, template_name, update_tags, AmiFamily};
use super::BuildCtx;
use super::Derived;
use super::{
    aws_error, req_str, split_tags, str_list, wait_until, Ctx, FieldRules, Lookup, Observed, Poll,
    ResourceError, Shape, Unique,
};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::instance_types::{self, Arch, InstanceFacts};
use crate::base::value::is_ref;
use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, LaunchTemplateSpecification, Nodegroup, NodegroupScalingConfig,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub use super::eks::Scaling;

/// An EKS managed nodegroup.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodegroupConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The nodegroup's name in EKS, unique in its cluster.
    pub name: String,
    /// The nodes' IAM role ARN, usually `${iam_role.NAME.arn}`.
    pub node_role_arn: String,
    /// The subnets the nodes run in, at least one.
    pub subnet_ids: Vec<String>,
    /// EC2 instance types, 1 to 20, in order of preference.
    #[serde(default = "default_instance_types")]
    pub instance_types: Vec<String>,
    /// The node counts, `{ min_size, max_size, desired_size }`.
    #[serde(default)]
    pub scaling: Scaling,
    /// The EKS AMI type, e.g. `AL2023_x86_64_STANDARD`; absent: EKS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "ami_type_schema")]
    pub ami_type: Option<String>,
    /// On-demand or spot instances; absent: EKS's default, `ON_DEMAND`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "capacity_type_schema")]
    pub capacity_type: Option<String>,
    /// The nodes' disk size in GiB; absent: EKS's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = *DISK_SIZE_GIB.start(), max = *DISK_SIZE_GIB.end()))]
    pub disk_size: Option<i64>,
    /// Kubernetes labels of the nodes.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The nodegroup's tags (and its launch template's, with `max_pods`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Max pods per node, set through a launch template eksnet makes (needs an AL2023 or
    /// Bottlerocket `ami_type`); absent: EKS computes it.
    // Not an attribute of the nodegroup itself: `spec::parse` derives the template
    // (`launch_template`) from it and points the nodegroup at it.
    #[serde(default, skip_serializing)]
    #[schemars(range(min = MIN_MAX_PODS))]
    pub max_pods: Option<u32>,
}

/// An EBS volume's size range, in GiB: what `disk_size` may be.
const DISK_SIZE_GIB: std::ops::RangeInclusive<i64> = 1..=16384;
/// The least `max_pods` there is.
const MIN_MAX_PODS: u32 = 1;

fn ami_type_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of_or_reference(AmiTypes::values())
}

fn capacity_type_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of_or_reference(CapacityTypes::values())
}

fn default_instance_types() -> Vec<String> {
    vec!["t3.medium".into()]
}

/// The architecture an AMI type is built for: `None` for `CUSTOM` (the launch template's
/// AMI decides). With no AMI type, EKS picks an x86_64 one (AL2023 from Kubernetes 1.30, AL2
/// before), whatever the instance types (EKS user guide, managed node groups).
fn ami_arch(ami_type: Option<&str>) -> Option<Arch> {
    match ami_type {
        None => Some(Arch::X86_64),
        Some(a) if a.contains("ARM_64") => Some(Arch::Arm64),
        Some(a) if a.contains("x86_64") => Some(Arch::X86_64),
        Some(_) => None,
    }
}

/// What EKS checks of the instance types against the AMI type before it makes anything
/// (`InvalidParameterException: [t4g.medium] is not a valid instance type for requested
/// amiType AL2023_x86_64_STANDARD`): the architecture, and the accelerator a GPU or Neuron
/// AMI is for. And `max_pods` within what the types' ENIs can ever give.
fn instance_type_rules(n: &NodegroupConfig, rules: &mut dyn FieldRules) {
    let ami = n.ami_type.as_deref();
    let wanted = ami_arch(ami);
    let needs = ami.and_then(|a| {
        if a.contains("NVIDIA") || a.contains("GPU") {
            Some((
                "NVIDIA GPU",
                (|f| f.nvidia_gpu) as fn(&InstanceFacts) -> bool,
            ))
        } else if a.contains("NEURON") {
            Some((
                "AWS Inferentia or Trainium (Neuron) accelerator",
                (|f| f.neuron) as fn(&InstanceFacts) -> bool,
            ))
        } else {
            None
        }
    });
    for (i, t) in n.instance_types.iter().enumerate() {
        if is_ref(t) {
            continue;
        }
        let key = format!("instance_types.{i}");
        if let (Some(want), Some(have)) = (wanted, instance_types::arch(t)) {
            if want != have {
                let ami_said = match ami {
                    Some(a) => format!("`ami_type = \"{a}\"` is an {} AMI", want.as_str()),
                    None => "with no `ami_type`, EKS picks an x86_64 AMI".to_string(),
                };
                let fix = match have {
                    Arch::Arm64 => "; set an ARM_64 `ami_type` (e.g. AL2023_ARM_64_STANDARD or BOTTLEROCKET_ARM_64)",
                    Arch::X86_64 => "; set an x86_64 `ami_type` (e.g. AL2023_x86_64_STANDARD)",
                    Arch::Mac => "; EKS has no AMI for Mac instances",
                };
                rules.error(&key, format!("`{t}` is an {} instance type but {ami_said}: EKS refuses the pair (\"is not a valid instance type for requested amiType\"){fix}", have.as_str()));
            }
        }
        if let (Some((what, has)), Some(f)) = (needs, instance_types::lookup(t)) {
            if !has(f) {
                rules.error(&key, format!("`{t}` has no {what}, which `ami_type = \"{}\"` is built for: EKS refuses the pair; use an instance type with one, or a standard `ami_type`", ami.unwrap_or_default()));
            }
        }
    }
    if let Some(max) = n.max_pods {
        // Only when every type is known: an unknown one might hold more.
        let most: Option<Vec<(u32, &str)>> = n
            .instance_types
            .iter()
            .map(|t| Some((instance_types::lookup(t)?.most_pods(), t.as_str())))
            .collect();
        if let Some((most, t)) = most.and_then(|m| m.into_iter().max()) {
            if max > most {
                rules.error("max_pods", format!("max_pods = {max} is more than {} can ever run: even with prefix delegation on every ENI it holds {most} pods (EC2's ENI and IPv4 limits per type); pods past that would wait for an address forever", if n.instance_types.len() > 1 { format!("any of the instance types (the largest, {t})") } else { format!("`{t}`") }));
            }
        }
    }
}

/// Node labels the kubelet will not set on its own Node (NodeRestriction): in the
/// `kubernetes.io` and `k8s.io` namespaces only its own labels are allowed
/// (k8s.io/kubelet well_known_labels.go: `kubernetes.io/hostname`, the topology, OS, arch and
/// instance-type labels, and the `kubelet.kubernetes.io` and `node.kubernetes.io`
/// namespaces). EKS passes a nodegroup's labels to the kubelet, which then refuses to start:
/// the nodes never join.
fn kubelet_refuses_label(key: &str) -> Option<String> {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    const KUBELET_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
    let (ns, _) = key.rsplit_once('/')?;
    let restricted = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|r| ns == *r || ns.ends_with(&format!(".{r}")));
    let allowed = KUBELET_LABELS.contains(&key)
        || KUBELET_NAMESPACES
            .iter()
            .any(|a| ns == *a || ns.ends_with(&format!(".{a}")));
    (restricted && !allowed).then(|| format!(
        "the kubelet refuses to set `{key}` on its own node (only its own labels in the `kubernetes.io` and `k8s.io` namespaces, such as `node.kubernetes.io/…`): nodes of this group would never join; use a label outside those namespaces (e.g. `example.com/role`){}",
        if ns.starts_with("node-role.") { "; `node-role.kubernetes.io/…` can only be set by an admin or a controller after the node joins" } else { "" }
    ))
}

/// `[nodegroup.NAME]`: see docs/spec.md.
pub struct NodegroupKind;

const FACTS: KindFacts = KindFacts {
    force_new: &[
        "cluster_name",
        "name",
        "node_role_arn",
        "subnet_ids",
        "instance_types",
        "ami_type",
        "capacity_type",
        "disk_size",
        // EKS cannot move a nodegroup to another launch template (or off one); a new version
        // of the same template is an update.
        "launch_template_id",
    ],
    outputs: &["name", "arn", "status", "cluster_name"],
    mirrored_outputs: &[],
    identity: &["cluster_name", "name"],
    lookup_key: &["cluster_name", "name"],
    create_only: &[],
    set_valued: &["subnet_ids"],
    default_timeout: Duration::from_secs(60 * 60),
    kubernetes: false,
    import_id: ImportId::ClusterSlashName,
    replacement: Some(replacement),
    compared_when_unset: &["launch_template_id"],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "name",
        one_per: None,
    }),
    output_shapes: &[
        ("cluster_name", Shape::ClusterName),
        ("arn", Shape::Other("a nodegroup ARN")),
        ("name", Shape::Other("a nodegroup name")),
    ],
    restricted_tags: Some("EKS"),
    parent: Some(Kind::Cluster),
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

pub use super::REPLACEMENT_SUFFIX;
/// EKS's limit on a nodegroup name.
const MAX_NAME: usize = 63;
/// The tag that keeps the spec's name on a nodegroup whose EKS name differs from it.
const TAG_NAME: &str = "eksnet:name";

/// Create-before-destroy naming. EKS names are unique within a cluster, so while the old
/// nodegroup lives its replacement cannot take its name: `replacement_name` alternates
/// between the spec's `name` and `name` + `-cbd`. The spec's name travels in the
/// `eksnet:name` tag, so refresh reports the spec's name and the plan sees no difference;
/// `outputs.name` and the cloud id carry the EKS name.
fn replacement(attrs: &Value, old_cloud_id: &str) -> Option<(Value, String)> {
    let base = super::str_attr(attrs, "name")?;
    let cluster = super::str_attr(attrs, "cluster_name")?;
    let (_, old) = old_cloud_id.split_once('/')?;
    let name = super::replacement_name(base, old, MAX_NAME);
    let mut create = attrs.clone();
    let m = create.as_object_mut()?;
    m.insert("name".into(), json!(name));
    m.insert("spec_name".into(), json!(base));
    Some((create, format!("{cluster}/{name}")))
}

fn split_id(id: &str) -> Result<(&str, &str), ResourceError> {
    id.split_once('/').ok_or_else(|| ResourceError::BadCloudId {
        kind: Kind::Nodegroup,
        id: id.to_string(),
        expected: "cluster/name",
    })
}

fn observe(n: &Nodegroup) -> Option<Observed> {
    let cluster = n.cluster_name()?;
    let name = n.nodegroup_name()?;
    // The spec's name, which a replacement's EKS name may differ from (see `replacement`).
    let spec_name = n
        .tags()
        .and_then(|t| t.get(TAG_NAME))
        .map(String::as_str)
        .unwrap_or(name);
    let mut subnets = n.subnets().to_vec();
    subnets.sort();
    let scaling = n.scaling_config();
    let (tags, managed_by) = split_tags(
        n.tags()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let mut attrs = json!({
        "cluster_name": cluster, "name": spec_name, "node_role_arn": n.node_role(),
        "subnet_ids": subnets, "instance_types": n.instance_types(),
        "scaling": {
            "min_size": scaling.and_then(|s| s.min_size()),
            "max_size": scaling.and_then(|s| s.max_size()),
            "desired_size": scaling.and_then(|s| s.desired_size()),
        },
        "labels": n.labels().cloned().unwrap_or_default(),
        "tags": tags,
    });
    if let Some(m) = attrs.as_object_mut() {
        if let Some(a) = n.ami_type() {
            m.insert("ami_type".into(), json!(a.as_str()));
        }
        if let Some(c) = n.capacity_type() {
            m.insert("capacity_type".into(), json!(c.as_str()));
        }
        if let Some(d) = n.disk_size() {
            m.insert("disk_size".into(), json!(d));
        }
        if let Some(lt) = n.launch_template() {
            m.insert("launch_template_id".into(), json!(lt.id()));
            m.insert("launch_template_version".into(), json!(lt.version()));
        }
    }
    Some(Observed {
        cloud_id: format!("{cluster}/{name}"),
        attrs,
        outputs: json!({
            "name": name, "arn": n.nodegroup_arn(), "cluster_name": cluster,
            "status": n.status().map(|s| s.as_str()),
        }),
        managed_by,
    })
}

/// The nodegroup as refresh reports it, `None` when absent.
async fn read(ctx: &Ctx, cluster: &str, name: &str) -> Result<Option<Observed>, ResourceError> {
    Ok(describe(ctx, cluster, name)
        .await?
        .as_ref()
        .and_then(observe))
}

async fn describe(
    ctx: &Ctx,
    cluster: &str,
    name: &str,
) -> Result<Option<Nodegroup>, ResourceError> {
    match ctx
        .aws
        .eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.nodegroup),
        Err(e) => {
            let err = aws_error("DescribeNodegroup", e);
            if err.code() == Some("ResourceNotFoundException") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

pub(crate) async fn wait_active(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    name: &str,
) -> Result<Observed, ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("nodegroup {cluster}/{name}"),
        ctx.timeout(Kind::Nodegroup),
        || async {
            Ok(match describe(ctx, cluster, name).await? {
                None => Poll::Pending("not yet visible".into()),
                Some(n) => {
                    let status = n
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default();
                    match status.as_str() {
                        "ACTIVE" => Poll::Done(observe(&n)),
                        "CREATE_FAILED" | "DELETE_FAILED" | "DEGRADED" | "DELETING" => {
                            let reason = n.health().map(|h| {
                                h.issues()
                                    .iter()
                                    .filter_map(|i| i.message())
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            });
                            Poll::Failed(status, reason)
                        }
                        _ => Poll::Pending(status),
                    }
                }
            })
        },
    )
    .await?
    .ok_or_else(|| ResourceError::NotReadBack {
        what: format!("nodegroup {cluster}/{name}"),
    })
}

fn scaling(attrs: &Value) -> NodegroupScalingConfig {
    let s = attrs.get("scaling");
    let get = |k: &str| {
        s.and_then(|s| s.get(k))
            .and_then(Value::as_i64)
            .map(|v| v as i32)
    };
    NodegroupScalingConfig::builder()
        .set_min_size(get("min_size"))
        .set_max_size(get("max_size"))
        .set_desired_size(get("desired_size"))
        .build()
}

fn labels(attrs: &Value) -> std::collections::HashMap<String, String> {
    super::tag_map(attrs.get("labels").unwrap_or(&Value::Null))
        .into_iter()
        .collect()
}

/// The launch template the attributes name (eksnet's own, for `max_pods`), by id and version.
fn launch_template(attrs: &Value) -> Option<LaunchTemplateSpecification> {
    let id = super::str_attr(attrs, "launch_template_id")?;
    Some(
        LaunchTemplateSpecification::builder()
            .id(id)
            .set_version(super::str_attr(attrs, "launch_template_version").map(String::from))
            .build(),
    )
}

/// One CreateNodegroup, retried while a new role cannot be assumed yet.
async fn send_create(ctx: &Ctx, addr: &ResourceAddr, attrs: &Value) -> Result<(), ResourceError> {
    let cluster = req_str(attrs, "cluster_name")?;
    let name = req_str(attrs, "name")?;
    let mut tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
    if let Some(spec_name) = super::str_attr(attrs, "spec_name") {
        tags.insert(TAG_NAME.into(), spec_name.to_string());
    }
    let token = request_token(ctx, addr, "create");
    retry_iam_propagation(ctx, addr, || async {
        let mut req = ctx
            .aws
            .eks
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .node_role(req_str(attrs, "node_role_arn")?)
            .set_subnets(Some(str_list(attrs, "subnet_ids")))
            .set_instance_types(Some(str_list(attrs, "instance_types")))
            .scaling_config(scaling(attrs))
            .set_tags(Some(tags.clone().into_iter().collect()))
            .client_request_token(&token);
        let l = labels(attrs);
        if !l.is_empty() {
            req = req.set_labels(Some(l));
        }
        if let Some(a) = super::str_attr(attrs, "ami_type") {
            req = req.ami_type(AmiTypes::from(a));
        }
        if let Some(c) = super::str_attr(attrs, "capacity_type") {
            req = req.capacity_type(CapacityTypes::from(c));
        }
        if let Some(d) = attrs.get("disk_size").and_then(Value::as_i64) {
            req = req.disk_size(d as i32);
        }
        if let Some(lt) = launch_template(attrs) {
            req = req.launch_template(lt);
        }
        req.send()
            .await
            .map_err(|e| aws_error("CreateNodegroup", e))
    })
    .await
    .map(|_| ())
}

/// Waits until the nodegroup no longer exists.
async fn wait_gone(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    name: &str,
) -> Result<(), ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("deletion of nodegroup {cluster}/{name}"),
        ctx.timeout(Kind::Nodegroup),
        || async {
            Ok(match describe(ctx, cluster, name).await? {
                None => Poll::Done(()),
                Some(n) => match n
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default()
                {
                    s if s == "DELETE_FAILED" => Poll::Failed(s, None),
                    s => Poll::Pending(s),
                },
            })
        },
    )
    .await
}

impl ResourceKind for NodegroupKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = NodegroupConfig;

    /// Its scaling bounds, subnets and instance types.
    fn check_shape(n: &Self::Config, rules: &mut dyn FieldRules) {
        n.scaling.check(rules);
        if n.subnet_ids.is_empty() {
            rules.error("subnet_ids", "a nodegroup needs at least one subnet".into());
        }
        if n.instance_types.is_empty() {
            rules.error("instance_types", "give at least one instance type".into());
        }
    }
    /// Its cluster, role, subnets, name, enumerations, disk, instance types and labels.
    fn check_fields(n: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &n.cluster_name, Shape::ClusterName);
        rules.shaped("node_role_arn", &n.node_role_arn, Shape::RoleArn);
        for (i, s) in n.subnet_ids.iter().enumerate() {
            rules.shaped(&format!("subnet_ids.{i}"), s, Shape::SubnetId);
        }
        nodegroup_name(rules, &n.name);
        rules.enumerated(
            "capacity_type",
            n.capacity_type.as_deref(),
            CapacityTypes::values(),
        );
        rules.enumerated("ami_type", n.ami_type.as_deref(), AmiTypes::values());
        if let Some(size) = n.disk_size {
            if !DISK_SIZE_GIB.contains(&size) {
                rules.error(
                    "disk_size",
                    format!(
                        "disk_size is in GiB, {} to {} (an EBS volume's range), not {size}",
                        DISK_SIZE_GIB.start(),
                        DISK_SIZE_GIB.end()
                    ),
                );
            }
        }
        for (i, t) in n.instance_types.iter().enumerate() {
            rules.instance_type(&format!("instance_types.{i}"), t);
        }
        if n.instance_types.len() > 20 {
            rules.error(
                "instance_types",
                format!(
                    "a nodegroup takes at most 20 instance types, not {}",
                    n.instance_types.len()
                ),
            );
        }
        for (k, v) in &n.labels {
            rules.label(&format!("labels.{k}"), k, Some(v));
            if let Some(why) = kubelet_refuses_label(k) {
                rules.error(&format!("labels.{k}"), why);
            }
        }
        instance_type_rules(n, rules);
        if n.capacity_type.as_deref() == Some("CAPACITY_BLOCK") {
            // EKS user guide, "Capacity Blocks for ML" with managed node groups: the node
            // group must use a launch template that targets the Capacity Block reservation.
            rules.error("capacity_type", "CAPACITY_BLOCK needs a launch template that targets the Capacity Block's reservation (InstanceMarketOptions capacity-block and its CapacityReservationId), and eksnet's nodegroups take no launch template of yours: EKS would refuse this nodegroup; create it outside eksnet or use ON_DEMAND or SPOT".into());
        }
    }

    /// One launch template per nodegroup that sets `max_pods` (at `launch_template.<the
    /// nodegroup's name in the spec>`), the nodegroup pointed at its id and version. The
    /// nodegroup's `disk_size` moves into the template, since EKS refuses both. A diagnostic
    /// about the template points at `max_pods`.
    fn derive(
        c: &Self::Config,
        addr: &ResourceAddr,
        resolved_name: &dyn Fn(&str) -> String,
    ) -> Vec<Derived> {
        let (Some(max_pods), Ok(family)) = (c.max_pods, AmiFamily::of(c.ami_type.as_deref()))
        else {
            return Vec::new();
        };
        let template = ResourceAddr::new(Kind::LaunchTemplate, &addr.name);
        let mut table = json!({
            "name": template_name(&resolved_name(&c.cluster_name), &resolved_name(&c.name)),
            "max_pods": max_pods,
            "ami_family": family,
            "tags": c.tags,
        });
        if let Some(size) = c.disk_size {
            table["disk_size"] = json!(size);
        }
        vec![Derived {
            refers: vec![
                ("launch_template_id", json!(format!("${{{template}.id}}"))),
                (
                    "launch_template_version",
                    json!(format!("${{{template}.version}}")),
                ),
            ],
            addr: template,
            table,
            located_at: "max_pods",
            moved: &["disk_size"],
        }]
    }

    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        if let Some(n) = c.max_pods {
            if n < MIN_MAX_PODS {
                return Err(vec![(
                    "max_pods",
                    format!("`max_pods` must be {MIN_MAX_PODS} or more"),
                )]);
            }
            if let Err(e) = AmiFamily::of(c.ami_type.as_deref()) {
                let key = if c.ami_type.is_some() {
                    "ami_type"
                } else {
                    "max_pods"
                };
                return Err(vec![(key, e)]);
            }
        }
        Ok(serde_json::to_value(c).unwrap_or(Value::Null))
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let reads = items.iter().map(|i| async move {
            if let Some(id) = &i.cloud_id {
                let (c, n) = split_id(id)?;
                return read(ctx, c, n).await;
            }
            let c = super::str_attr(&i.attrs, "cluster_name");
            let n = super::str_attr(&i.attrs, "name");
            match (c, n) {
                (Some(c), Some(n)) if !crate::base::value::is_unknown(&json!(c)) => {
                    super::read_name_or_replacement(n, MAX_NAME, |n| async move {
                        read(ctx, c, &n).await
                    })
                    .await
                }
                _ => Ok(None),
            }
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
        // Waiting for the create's answer holds no lock, so it holds no parallelism slot
        // either: twenty nodegroups ready together are all sent at once.
        match crate::base::walker::idle(send_create(ctx, addr, attrs)).await {
            // The name of a nodegroup still being deleted stays taken: wait, then create. Asked
            // only on this error, so a plain create costs no extra request.
            Err(e) if e.code() == Some("ResourceInUseException") => {
                let deleting = describe(ctx, cluster, name).await?.is_some_and(|n| {
                    n.status() == Some(&aws_sdk_eks::types::NodegroupStatus::Deleting)
                });
                if !deleting {
                    return Err(e);
                }
                wait_gone(ctx, addr, cluster, name).await?;
                crate::base::walker::idle(send_create(ctx, addr, attrs)).await?;
            }
            other => other?,
        }
        wait_active(ctx, addr, cluster, name).await
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let before = change.before;
        let after = change.after;
        let (cluster, name) = split_id(cloud_id)?;
        let scaling_changed = before.get("scaling") != after.get("scaling");
        let labels_changed = before.get("labels") != after.get("labels");
        if scaling_changed || labels_changed {
            let mut req = ctx
                .aws
                .eks
                .update_nodegroup_config()
                .cluster_name(cluster)
                .nodegroup_name(name);
            if scaling_changed {
                req = req.scaling_config(scaling(after));
            }
            if labels_changed {
                let old = labels(before);
                let new = labels(after);
                let removed: Vec<String> = old
                    .keys()
                    .filter(|k| !new.contains_key(*k))
                    .cloned()
                    .collect();
                req = req.labels(
                    aws_sdk_eks::types::UpdateLabelsPayload::builder()
                        .set_add_or_update_labels(Some(new))
                        .set_remove_labels((!removed.is_empty()).then_some(removed))
                        .build(),
                );
            }
            req.send()
                .await
                .map_err(|e| aws_error("UpdateNodegroupConfig", e))?;
            wait_active(ctx, addr, cluster, name).await?;
        }
        // A new version of its launch template (a change of `max_pods`): EKS replaces the
        // nodes in a rolling update, which the wait for ACTIVE covers.
        if before.get("launch_template_version") != after.get("launch_template_version") {
            if let Some(lt) = launch_template(after) {
                ctx.aws
                    .eks
                    .update_nodegroup_version()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .launch_template(lt)
                    .client_request_token(request_token(ctx, addr, "update-version"))
                    .send()
                    .await
                    .map_err(|e| aws_error("UpdateNodegroupVersion", e))?;
                wait_active(ctx, addr, cluster, name).await?;
            }
        }
        let current =
            describe(ctx, cluster, name)
                .await?
                .ok_or_else(|| ResourceError::Disappeared {
                    what: format!("nodegroup {cloud_id}"),
                })?;
        if let Some(arn) = current.nodegroup_arn() {
            update_tags(ctx, arn, before, after).await?;
        }
        wait_active(ctx, addr, cluster, name).await
    }

    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let (cluster, name) = split_id(cloud_id)?;
        match ctx
            .aws
            .eks
            .delete_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let err = aws_error("DeleteNodegroup", e);
                if err.code() == Some("ResourceNotFoundException") {
                    return Ok(());
                }
                // A delete already under way (sent by a run that died before it saw the
                // answer) is waited for, not failed on.
                let deleting = err.code() == Some("ResourceInUseException")
                    && describe(ctx, cluster, name).await?.is_some_and(|n| {
                        n.status() == Some(&aws_sdk_eks::types::NodegroupStatus::Deleting)
                    });
                if !deleting {
                    return Err(err);
                }
            }
        }
        wait_gone(ctx, addr, cluster, name).await
    }

    /// Waits for a nodegroup found mid-create (after a crash) to become ACTIVE.
    async fn settle(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
    ) -> Result<Option<Observed>, ResourceError> {
        let (cluster, name) = split_id(cloud_id)?;
        wait_active(ctx, addr, cluster, name).await.map(Some)
    }
}

/// EKS: 1–63 characters, letters, digits, `-` and `_`, starting with a letter or digit.
fn nodegroup_name(rules: &mut dyn FieldRules, name: &str) {
    // EKS: 1–63 characters, letters, digits, `-` and `_`, starting with a letter or digit.
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok && !is_ref(name) {
        rules.error("name", format!("nodegroup name `{name}` must be 1–63 letters, digits, `-` and `_`, starting with a letter or digit"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Value {
        json!({"cluster_name": "c", "name": name, "instance_types": ["m5.large"]})
    }

    #[test]
    fn a_replacement_alternates_between_the_spec_name_and_its_cbd_form() {
        let (attrs, id) = replacement(&named("workers"), "c/workers").expect("named");
        assert_eq!(id, "c/workers-cbd");
        assert_eq!(attrs["name"], "workers-cbd");
        assert_eq!(attrs["spec_name"], "workers");
        assert_eq!(attrs["instance_types"], json!(["m5.large"]));
        // The next replacement takes the spec's name back.
        let (attrs, id) = replacement(&named("workers"), "c/workers-cbd").expect("named");
        assert_eq!(
            (id.as_str(), attrs["name"].as_str()),
            ("c/workers", Some("workers"))
        );
        // A renamed nodegroup needs no suffix: the new name is free.
        let (_, id) = replacement(&named("general"), "c/workers").expect("named");
        assert_eq!(id, "c/general");
    }

    #[test]
    fn a_replacement_name_stays_within_eks_limit() {
        let long = "n".repeat(MAX_NAME);
        let (attrs, _) = replacement(&named(&long), &format!("c/{long}")).expect("named");
        let name = attrs["name"].as_str().expect("name");
        assert_eq!(name.len(), MAX_NAME);
        assert!(name.ends_with(REPLACEMENT_SUFFIX), "{name}");
        assert_ne!(name, long);
    }
}
