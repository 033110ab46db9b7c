//! `cluster`: an EKS control plane, waited to `ACTIVE`. Creation is idempotent through a
//! deterministic `clientRequestToken`, and retried while a new IAM role cannot yet be assumed
//! (IAM is eventually consistent: for seconds after CreateRole, EKS rejects the role).

use super::eks::{request_token, retry_iam_propagation, update_tags};
use super::{
    aws_error, req_str, split_tags, str_list, wait_until, Ctx, FieldRules, Lookup, Observed, Poll,
    ResourceError, Shape, Unique,
};
use super::{Change, ImportId, KindFacts, ResourceKind};
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::alternatives;
use crate::base::value::is_ref;
use aws_sdk_eks::types::{Cluster, IpFamily, KubernetesNetworkConfigRequest, VpcConfigRequest};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// An EKS cluster: the control plane.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// `role_arn` and `subnet_ids` are required unless the cluster is an existing one.
#[schemars(extend(
    "if" = { "properties": { "existing": { "const": true, "description": "An existing cluster: only read." } }, "required": ["existing"] },
    "else" = { "required": ["role_arn", "subnet_ids"] }
))]
pub struct ClusterConfig {
    /// The cluster's name: 1 to 100 characters, a letter or digit first, then letters, digits,
    /// `-` and `_`.
    pub name: String,
    /// `true`: a cluster made elsewhere (Terraform, eksctl, the console), only read by name:
    /// eksnet never creates, changes or deletes it, and takes no other field for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existing: bool,
    /// The cluster's IAM role ARN, usually `${iam_role.NAME.arn}` (required unless `existing`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role_arn: String,
    /// The cluster (node) subnets, at least two, in at least two availability zones; not the
    /// pod subnets (required unless `existing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Vec<String>,
    /// The Kubernetes version, `MAJOR.MINOR` (e.g. `1.31`); absent: EKS's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The IP family of pods and services; custom networking needs `ipv4`.
    #[serde(default = "default_ip_family")]
    #[schemars(schema_with = "ip_family_schema")]
    pub ip_family: String,
    /// Security groups for the control plane's network interfaces, beside the one EKS makes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// `false`: EKS installs no `aws-node`, `kube-proxy` or CoreDNS of its own, and they come
    /// as `addon`s (create only; EKS's default is `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_self_managed_addons: Option<bool>,
    /// `true`: EKS Auto Mode. EKS runs the nodes (Karpenter), the EBS CSI driver and the
    /// load balancer controller: `computeConfig`, `storageConfig.blockStorage` and
    /// `kubernetesNetworkConfig.elasticLoadBalancing` are enabled together, as EKS requires.
    /// Pods then go to other subnets through an `auto_mode_node_class`, never ENIConfigs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_mode: bool,
    /// Auto Mode's built-in node pools to run: `general-purpose`, `system` (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_mode_node_pools: Vec<String>,
    /// The IAM role ARN of the built-in node pools' nodes (needed when any is named).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auto_mode_node_role_arn: String,
    /// Who EKS takes users and nodes from: `CONFIG_MAP` (the `aws-auth` ConfigMap only),
    /// `API_AND_CONFIG_MAP` (access entries and the ConfigMap) or `API` (access entries only).
    /// Absent: EKS's own default at create (`CONFIG_MAP` through the API). Access entries
    /// (`access_entry`, a `self_managed_node_group`'s) need the API. Changes in place, one
    /// way only: CONFIG_MAP → API_AND_CONFIG_MAP → API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "authentication_mode_schema")]
    pub authentication_mode: Option<String>,
    /// The cluster's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// EKS's authentication modes, in the one order it allows changes in (EKS user guide,
/// `setting-up-access-entries.adoc`: "you can't change the authentication mode back").
pub const AUTHENTICATION_MODES: &[&str] = &["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"];

fn authentication_mode_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of(AUTHENTICATION_MODES)
}

/// Whether EKS takes a change of authentication mode from `from` to `to`: forward only.
pub fn authentication_mode_change_allowed(from: &str, to: &str) -> bool {
    let at = |m: &str| AUTHENTICATION_MODES.iter().position(|x| *x == m);
    match (at(from), at(to)) {
        (Some(a), Some(b)) => b >= a,
        _ => true,
    }
}

/// Auto Mode's built-in node pools (EKS API reference, ComputeConfigRequest.nodePools).
pub const AUTO_MODE_NODE_POOLS: &[&str] = &["general-purpose", "system"];

/// The managed policies an Auto Mode cluster role needs beside AmazonEKSClusterPolicy
/// (UG automode/auto-cluster-iam-role.adoc); its trust policy also needs `sts:TagSession`.
pub const AUTO_MODE_CLUSTER_POLICIES: &[&str] = &[
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
];

/// The Auto Mode attributes: one UpdateClusterConfig sets them all.
const AUTO_MODE_ATTRS: &[&str] = &["auto_mode", "auto_mode_node_pools", "auto_mode_node_role_arn"];

/// The IP families EKS offers, the SDK's own list (`ipv4`, `ipv6`); no reference.
fn ip_families() -> &'static [&'static str] {
    IpFamily::values()
}

fn default_ip_family() -> String {
    "ipv4".into()
}

/// EKS's first Kubernetes version, 1.10 (general availability, June 2018).
const FIRST_EKS_MINOR: u32 = 10;

/// The newest Kubernetes minor that can exist at `now`: 1.35 came out in December 2025 and
/// upstream releases one about every four months (KEP-2572, three releases a year); one
/// more is allowed for a release that comes early. EKS never offers a version upstream has
/// not released.
fn newest_possible_minor(now: std::time::SystemTime) -> u32 {
    // 2025-12-01T00:00:00Z.
    const BASE: u64 = 1_764_547_200;
    const MONTH: u64 = 2_629_746; // an average Gregorian month in seconds
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(BASE);
    let months = secs.saturating_sub(BASE) / MONTH;
    35 + u32::try_from(months / 4).unwrap_or(u32::MAX - 36) + 1
}

fn ip_family_schema(_: &mut SchemaGenerator) -> Schema {
    crate::base::schema::one_of(ip_families())
}

/// The Auto Mode fields among themselves: pools are Auto Mode's own, and need a node role.
fn check_auto_mode(c: &ClusterConfig, rules: &mut dyn FieldRules) {
    if !c.auto_mode {
        for (key, set) in [
            ("auto_mode_node_pools", !c.auto_mode_node_pools.is_empty()),
            ("auto_mode_node_role_arn", !c.auto_mode_node_role_arn.is_empty()),
        ] {
            if set {
                rules.error(key, format!("`{key}` is an EKS Auto Mode setting: set `auto_mode = true` too, or remove it"));
            }
        }
        return;
    }
    for (i, p) in c.auto_mode_node_pools.iter().enumerate() {
        if !AUTO_MODE_NODE_POOLS.contains(&p.as_str()) {
            rules.error(
                &format!("auto_mode_node_pools.{i}"),
                format!(
                    "Auto Mode's built-in node pools are {}, not `{p}`; a pool of your own is an `auto_mode_node_class` with a `node_pool`",
                    alternatives(AUTO_MODE_NODE_POOLS, |v| format!("\"{v}\""))
                ),
            );
        }
    }
    // EKS API reference, ComputeConfigRequest.nodeRoleArn: required with nodePools.
    if !c.auto_mode_node_pools.is_empty() && c.auto_mode_node_role_arn.is_empty() {
        rules.error("auto_mode_node_pools", "the built-in node pools need `auto_mode_node_role_arn`, the IAM role of their nodes (with AmazonEKSWorkerNodeMinimalPolicy and AmazonEC2ContainerRegistryPullOnly; EKS makes its access entry)".into());
    }
    if c.auto_mode_node_pools.is_empty() && !c.auto_mode_node_role_arn.is_empty() {
        rules.warning("auto_mode_node_role_arn", "`auto_mode_node_role_arn` is only used by the built-in node pools, and `auto_mode_node_pools` names none".into());
    }
}

/// `[cluster.NAME]`: see docs/spec.md.
pub struct ClusterKind;

const FACTS: KindFacts = KindFacts {
    force_new: &[
        "name",
        "role_arn",
        "subnet_ids",
        "ip_family",
        "security_group_ids",
    ],
    outputs: &[
        "name",
        "arn",
        "endpoint",
        "certificate_authority",
        "cluster_security_group_id",
        "vpc_id",
        "version",
        "status",
        "oidc_issuer",
    ],
    mirrored_outputs: &["name"],
    identity: &["name"],
    lookup_key: &["name"],
    create_only: &["bootstrap_self_managed_addons"],
    set_valued: &["subnet_ids", "security_group_ids", "auto_mode_node_pools"],
    default_timeout: Duration::from_secs(30 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: None,
    // Turned off (the spec drops it) is a change, while a cluster that never had it shows
    // nothing: only set when on.
    compared_when_unset: AUTO_MODE_ATTRS,
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "name",
        one_per: None,
    }),
    output_shapes: &[
        ("vpc_id", Shape::VpcId),
        ("cluster_security_group_id", Shape::SecurityGroupId),
        ("name", Shape::ClusterName),
        ("arn", Shape::Other("an EKS cluster ARN")),
        ("endpoint", Shape::Other("the cluster's API endpoint URL")),
        ("version", Shape::Other("a version")),
        ("oidc_issuer", Shape::Other("the cluster's OIDC issuer URL")),
    ],
    restricted_tags: Some("EKS"),
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: true,
    puts_back: &[],
};

fn observe(c: &Cluster) -> Option<Observed> {
    let name = c.name()?.to_string();
    let vpc = c.resources_vpc_config();
    let mut subnets: Vec<String> = vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default();
    subnets.sort();
    let mut sgs: Vec<String> = vpc
        .map(|v| v.security_group_ids().to_vec())
        .unwrap_or_default();
    sgs.sort();
    let ip_family = c
        .kubernetes_network_config()
        .and_then(|k| k.ip_family())
        .map(|f| f.as_str().to_string())
        .unwrap_or_else(|| "ipv4".into());
    let (tags, managed_by) = split_tags(
        c.tags()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let mut outputs = json!({
        "name": name, "arn": c.arn(), "endpoint": c.endpoint(),
        "certificate_authority": c.certificate_authority().and_then(|a| a.data()),
        "version": c.version(), "status": c.status().map(|s| s.as_str()),
    });
    if let Some(m) = outputs.as_object_mut() {
        // Only set when AWS returned them (moto omits both): a reference to a missing output
        // then stays unresolved and the executor reports it instead of passing an empty value.
        if let Some(sg) = vpc.and_then(|v| v.cluster_security_group_id()) {
            m.insert("cluster_security_group_id".into(), json!(sg));
        }
        if let Some(v) = vpc.and_then(|v| v.vpc_id()) {
            m.insert("vpc_id".into(), json!(v));
        }
        // `identity.oidc.issuer`, for an IAM OIDC provider (IRSA): EKS makes one per cluster.
        if let Some(issuer) = c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()) {
            m.insert("oidc_issuer".into(), json!(issuer));
        }
        m.retain(|_, v| !v.is_null());
    }
    Some(Observed {
        cloud_id: name.clone(),
        attrs: json!({
            "name": name, "role_arn": c.role_arn(), "subnet_ids": subnets,
            "version": c.version(), "ip_family": ip_family, "security_group_ids": sgs,
            "tags": tags,
        }),
        outputs,
        managed_by,
    })
    .map(|mut o| {
        // Auto Mode is on when compute is (EKS enables the three together): only then shown,
        // so a cluster that never had it compares equal to a spec without it.
        let compute = c.compute_config().filter(|cc| cc.enabled() == Some(true));
        if let (Some(cc), Some(m)) = (compute, o.attrs.as_object_mut()) {
            m.insert("auto_mode".into(), json!(true));
            let mut pools = cc.node_pools().to_vec();
            pools.sort();
            if !pools.is_empty() {
                m.insert("auto_mode_node_pools".into(), json!(pools));
            }
            if let Some(r) = cc.node_role_arn().filter(|r| !r.is_empty()) {
                m.insert("auto_mode_node_role_arn".into(), json!(r));
            }
        }
        if let Some(m) = o.outputs.as_object_mut() {
            m.insert("auto_mode".into(), json!(compute.is_some()));
        }
        let mode = c.access_config().and_then(|a| a.authentication_mode());
        if let (Some(mode), Some(m)) = (mode, o.attrs.as_object_mut()) {
            m.insert("authentication_mode".into(), json!(mode.as_str()));
        }
        o
    })
}

/// The three Auto Mode settings, all on or all off in one request (UG
/// automode/api-reference.adoc: "must be enabled or disabled together").
fn auto_mode_request(
    attrs: &Value,
) -> (
    aws_sdk_eks::types::ComputeConfigRequest,
    aws_sdk_eks::types::StorageConfigRequest,
    aws_sdk_eks::types::ElasticLoadBalancing,
) {
    let on = attrs.get("auto_mode").and_then(Value::as_bool) == Some(true);
    let mut compute = aws_sdk_eks::types::ComputeConfigRequest::builder().enabled(on);
    if on {
        let pools = str_list(attrs, "auto_mode_node_pools");
        compute = compute.set_node_pools(Some(pools));
        if let Some(r) = super::str_attr(attrs, "auto_mode_node_role_arn").filter(|r| !r.is_empty()) {
            compute = compute.node_role_arn(r);
        }
    }
    (
        compute.build(),
        aws_sdk_eks::types::StorageConfigRequest::builder()
            .block_storage(aws_sdk_eks::types::BlockStorage::builder().enabled(on).build())
            .build(),
        aws_sdk_eks::types::ElasticLoadBalancing::builder()
            .enabled(on)
            .build(),
    )
}

/// Every DescribeCluster of this module goes through here, and tells the Kubernetes connector
/// what it saw, so the aws-node settings and ENIConfigs reuse the endpoint and CA instead of
/// describing the cluster again.
async fn describe(ctx: &Ctx, name: &str) -> Result<Option<Cluster>, ResourceError> {
    match ctx.aws.eks.describe_cluster().name(name).send().await {
        Ok(out) => {
            if let Some(c) = &out.cluster {
                ctx.kube.remember(c);
            }
            Ok(out.cluster)
        }
        Err(e) => {
            let err = aws_error("DescribeCluster", e);
            if err.code() == Some("ResourceNotFoundException") {
                ctx.kube.forget(name).await;
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Waits for ACTIVE; also used to settle a cluster found mid-create after a crash.
pub(crate) async fn wait_active(
    ctx: &Ctx,
    addr: &ResourceAddr,
    name: &str,
) -> Result<Observed, ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("cluster {name}"),
        ctx.timeout(Kind::Cluster),
        || async {
            let c = describe(ctx, name).await?;
            Ok(match c {
                None => Poll::Pending("not yet visible".into()),
                Some(c) => {
                    let status = c
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default();
                    match status.as_str() {
                        "ACTIVE" => Poll::Done(observe(&c)),
                        "FAILED" | "DELETING" => Poll::Failed(status, None),
                        _ => Poll::Pending(status),
                    }
                }
            })
        },
    )
    .await?
    .ok_or_else(|| ResourceError::NotReadBack {
        what: format!("cluster {name}"),
    })
}

/// One CreateCluster, retried while a new role cannot be assumed yet.
async fn send_create(ctx: &Ctx, addr: &ResourceAddr, attrs: &Value) -> Result<(), ResourceError> {
    let name = req_str(attrs, "name")?;
    let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
    let token = request_token(ctx, addr, "create");
    // Auto Mode off is EKS's default: nothing sent, as before it existed.
    let auto = attrs.get("auto_mode").and_then(Value::as_bool) == Some(true);
    let (compute, storage, elb) = auto_mode_request(attrs);
    retry_iam_propagation(ctx, addr, || async {
        let mut req = ctx
            .aws
            .eks
            .create_cluster()
            .name(name)
            .role_arn(req_str(attrs, "role_arn")?)
            .resources_vpc_config(
                VpcConfigRequest::builder()
                    .set_subnet_ids(Some(str_list(attrs, "subnet_ids")))
                    .set_security_group_ids(Some(str_list(attrs, "security_group_ids")))
                    .build(),
            )
            .kubernetes_network_config({
                let mut k = KubernetesNetworkConfigRequest::builder().ip_family(IpFamily::from(
                    super::str_attr(attrs, "ip_family").unwrap_or("ipv4"),
                ));
                if auto {
                    k = k.elastic_load_balancing(elb.clone());
                }
                k.build()
            })
            .set_tags(Some(tags.clone().into_iter().collect()))
            .client_request_token(&token);
        if let Some(v) = super::str_attr(attrs, "version") {
            req = req.version(v);
        }
        if auto {
            req = req
                .compute_config(compute.clone())
                .storage_config(storage.clone());
        }
        if let Some(b) = attrs
            .get("bootstrap_self_managed_addons")
            .and_then(Value::as_bool)
        {
            req = req.bootstrap_self_managed_addons(b);
        }
        if let Some(m) = super::str_attr(attrs, "authentication_mode") {
            req = req.access_config(
                aws_sdk_eks::types::CreateAccessConfigRequest::builder()
                    .authentication_mode(aws_sdk_eks::types::AuthenticationMode::from(m))
                    .build(),
            );
        }
        req.send().await.map_err(|e| aws_error("CreateCluster", e))
    })
    .await
    .map(|_| ())
}

/// Waits until the cluster no longer exists.
async fn wait_gone(ctx: &Ctx, addr: &ResourceAddr, name: &str) -> Result<(), ResourceError> {
    wait_until(
        ctx,
        addr,
        &format!("deletion of cluster {name}"),
        ctx.timeout(Kind::Cluster),
        || async {
            Ok(match describe(ctx, name).await? {
                None => Poll::Done(()),
                Some(c) => Poll::Pending(
                    c.status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                ),
            })
        },
    )
    .await
}

impl ResourceKind for ClusterKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = ClusterConfig;

    /// Its name, IP family, subnets (two AZs at least) and version syntax; an existing
    /// cluster only its name.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if !rules.is_cluster_name(&c.name) && !is_ref(&c.name) {
            rules.error("name", format!("cluster name `{}` must start with a letter or digit and contain only letters, digits, `-` and `_` (max 100)", c.name));
        }
        if c.existing {
            let set: Vec<&str> = [
                ("role_arn", !c.role_arn.is_empty()),
                ("subnet_ids", !c.subnet_ids.is_empty()),
                ("version", c.version.is_some()),
                ("ip_family", c.ip_family != default_ip_family()),
                ("security_group_ids", !c.security_group_ids.is_empty()),
                (
                    "bootstrap_self_managed_addons",
                    c.bootstrap_self_managed_addons.is_some(),
                ),
                ("auto_mode", c.auto_mode),
                ("auto_mode_node_pools", !c.auto_mode_node_pools.is_empty()),
                ("auto_mode_node_role_arn", !c.auto_mode_node_role_arn.is_empty()),
                ("authentication_mode", c.authentication_mode.is_some()),
                ("tags", !c.tags.is_empty()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            for key in set {
                rules.error(key, format!("an existing cluster (`existing = true`) is only read, never changed, so it takes only `name`; remove `{key}` (it is managed where the cluster was made)"));
            }
            return;
        }
        if c.role_arn.is_empty() {
            rules.error("role_arn", "a cluster needs `role_arn` (or `existing = true` for a cluster made elsewhere, which eksnet only reads)".into());
        }
        if !ip_families().contains(&c.ip_family.as_str()) {
            rules.error(
                "ip_family",
                format!(
                    "ip_family must be {}, not `{}`",
                    alternatives(ip_families(), |v| format!("\"{v}\"")),
                    c.ip_family
                ),
            );
        }
        if c.subnet_ids.len() < 2 {
            rules.error("subnet_ids", "EKS needs subnets in at least two availability zones: give at least two subnet ids".into());
        }
        check_auto_mode(c, rules);
        if let Some(v) = &c.version {
            let ok = v.split('.').count() == 2
                && v.split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|ch| ch.is_ascii_digit()));
            if !ok {
                rules.error("version", format!("version `{v}` must look like \"1.31\""));
            }
        }
    }
    /// Its role, Kubernetes version, subnets and security groups.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        if c.existing {
            return;
        }
        if !c.role_arn.is_empty() {
            rules.shaped("role_arn", &c.role_arn, Shape::RoleArn);
        }
        if let Some(m) = c.authentication_mode.as_deref() {
            // A literal, like `ip_family`: the plan compares it before anything is applied.
            if !AUTHENTICATION_MODES.contains(&m) {
                rules.error(
                    "authentication_mode",
                    format!(
                        "authentication_mode must be {}, not `{m}`",
                        AUTHENTICATION_MODES
                            .iter()
                            .map(|v| format!("\"{v}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        if !c.auto_mode_node_role_arn.is_empty() {
            rules.shaped(
                "auto_mode_node_role_arn",
                &c.auto_mode_node_role_arn,
                Shape::RoleArn,
            );
        }
        let version = c.version.as_deref().and_then(|v| {
            let (a, b) = v.split_once('.')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        });
        // The shape is checked in validate; here what EKS has ever offered. Versions
        // retire every few months, so an old one is a warning naming where to look,
        // not a list that would go stale in this binary.
        if let Some((major, minor)) = version {
            let newest = newest_possible_minor(std::time::SystemTime::now());
            if major != 1 {
                rules.error(
                    "version",
                    format!("EKS runs Kubernetes 1.x, not {major}.{minor}"),
                );
            } else if minor < FIRST_EKS_MINOR {
                rules.error("version", format!("EKS never offered Kubernetes 1.{minor}: its first version was 1.{FIRST_EKS_MINOR} (June 2018), and today it offers the last few (`aws eks describe-cluster-versions` lists them)"));
            } else if minor > newest {
                rules.error("version", format!("Kubernetes 1.{minor} does not exist yet: upstream releases about three versions a year (1.35 in December 2025), so today there is at most 1.{newest}, and EKS follows it; `aws eks describe-cluster-versions` lists what EKS offers"));
            } else if minor < 29 {
                rules.warning("version", format!("Kubernetes 1.{minor} is past EKS's extended support: CreateCluster will likely refuse it (`aws eks describe-cluster-versions` lists the versions EKS offers)"));
            }
        }
        if c.ip_family == "ipv6" {
            // EKS API reference, KubernetesNetworkConfigRequest.ipFamily.
            if let Some(p) = rules.partition().filter(|p| !p.eks_ipv6) {
                rules.error("ip_family", format!("EKS does not offer IPv6 clusters in the `{}` partition (\"You can't specify ipv6 for clusters in China Regions\"); use ip_family = \"ipv4\"", p.id));
            }
            if let Some((1, minor)) = version.filter(|(_, m)| *m < 21) {
                rules.error(
                    "ip_family",
                    format!("EKS offers IPv6 clusters from Kubernetes 1.21, not on 1.{minor}"),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in c.subnet_ids.iter().enumerate() {
            if !seen.insert(s.trim()) {
                rules.error(&format!("subnet_ids.{i}"), format!("`{s}` is listed twice: EKS needs subnets in at least two availability zones, each subnet once"));
            }
        }
        for (i, s) in c.subnet_ids.iter().enumerate() {
            rules.shaped(&format!("subnet_ids.{i}"), s, Shape::SubnetId);
        }
        for (i, s) in c.security_group_ids.iter().enumerate() {
            rules.shaped(
                &format!("security_group_ids.{i}"),
                s,
                Shape::SecurityGroupId,
            );
        }
        if c.security_group_ids.len() > 5 {
            rules.error(
                "security_group_ids",
                format!(
                    "EKS takes at most 5 security groups for a cluster, not {}",
                    c.security_group_ids.len()
                ),
            );
        }
        if c.subnet_ids.len() > 16 {
            rules.error(
                "subnet_ids",
                format!(
                    "EKS takes at most 16 subnets for a cluster, not {}",
                    c.subnet_ids.len()
                ),
            );
        }
    }

    /// An existing cluster is compared by name only: what it is set to is not the spec's.
    fn desired_attrs(
        c: &Self::Config,
        _build: &super::BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        if c.existing {
            return Ok(json!({"name": c.name, "existing": true}));
        }
        Ok(serde_json::to_value(c).unwrap_or(Value::Null))
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let reads = items.iter().map(|i| async move {
            let name = i
                .cloud_id
                .clone()
                .or_else(|| super::str_attr(&i.attrs, "name").map(String::from));
            let Some(n) = name else {
                return Ok(None);
            };
            // Whether the cluster's VPC CNI is the managed add-on, asked with the cluster in
            // the same round trip: the plan then refuses an `aws_node` patch that EKS would
            // undo, without a request of the Kubernetes wave.
            let (cluster, cni_addon) = tokio::join!(
                describe(ctx, &n),
                super::eks::addon_version(ctx, &n, super::eks::VPC_CNI_ADDON)
            );
            let mut obs = cluster?.as_ref().and_then(observe);
            if super::is_adopted(&i.addr, &i.attrs) {
                if let Some(m) = obs.as_mut().and_then(|o| o.attrs.as_object_mut()) {
                    m.insert("existing".into(), json!(true));
                }
            }
            if let (Some(m), Some(v)) = (
                obs.as_mut().and_then(|o| o.outputs.as_object_mut()),
                cni_addon,
            ) {
                m.insert("vpc_cni_addon".into(), json!(v));
            }
            Ok::<_, ResourceError>(obs)
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let name = req_str(attrs, "name")?;
        if super::is_adopted(addr, attrs) {
            // Only recorded: it must exist, and is never made here.
            let c = describe(ctx, name).await?;
            let mut obs =
                c.as_ref()
                    .and_then(observe)
                    .ok_or_else(|| ResourceError::AdoptedMissing {
                        addr: addr.clone(),
                        what: format!("cluster {name}"),
                    })?;
            if let Some(m) = obs.attrs.as_object_mut() {
                m.insert("existing".into(), json!(true));
            }
            return Ok(obs);
        }
        // Waiting for the create's answer holds no lock, so it holds no parallelism slot
        // either (see `walker::idle`).
        match crate::base::walker::idle(send_create(ctx, addr, attrs)).await {
            // EKS keeps the name of a cluster still being deleted (an interrupted destroy):
            // wait until it is gone, then create. Asked only on this error, so a plain create
            // costs no extra request.
            Err(e) if e.code() == Some("ResourceInUseException") => {
                let deleting = describe(ctx, name).await?.is_some_and(|c| {
                    c.status() == Some(&aws_sdk_eks::types::ClusterStatus::Deleting)
                });
                if !deleting {
                    return Err(e);
                }
                wait_gone(ctx, addr, name).await?;
                crate::base::walker::idle(send_create(ctx, addr, attrs)).await?;
            }
            other => {
                other?;
            }
        }
        wait_active(ctx, addr, name).await
    }

    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let before = change.before;
        let after = change.after;
        if super::is_adopted(addr, after) {
            // Never changed: the plan has nothing to update on it; read it as it is.
            return Self::create(ctx, addr, after).await;
        }
        if let Some(v) = super::str_attr(after, "version") {
            if super::str_attr(before, "version") != Some(v) {
                ctx.aws
                    .eks
                    .update_cluster_version()
                    .name(cloud_id)
                    .version(v)
                    .client_request_token(request_token(ctx, addr, &format!("version-{v}")))
                    .send()
                    .await
                    .map_err(|e| aws_error("UpdateClusterVersion", e))?;
                // EKS reports UPDATING while the control plane is upgraded.
                wait_active(ctx, addr, cloud_id).await?;
            }
        }
        if AUTO_MODE_ATTRS
            .iter()
            .any(|k| before.get(*k) != after.get(*k))
        {
            // Turning Auto Mode on (or off, or its pools) is an update in place: one
            // UpdateClusterConfig with the three settings together.
            let (compute, storage, elb) = auto_mode_request(after);
            let on = after.get("auto_mode").and_then(Value::as_bool) == Some(true);
            ctx.aws
                .eks
                .update_cluster_config()
                .name(cloud_id)
                .compute_config(compute)
                .storage_config(storage)
                .kubernetes_network_config(
                    KubernetesNetworkConfigRequest::builder()
                        .elastic_load_balancing(elb)
                        .build(),
                )
                .client_request_token(request_token(
                    ctx,
                    addr,
                    &format!(
                        "auto-mode-{on}-{}",
                        str_list(after, "auto_mode_node_pools").join("+")
                    ),
                ))
                .send()
                .await
                .map_err(|e| aws_error("UpdateClusterConfig", e))?;
            wait_active(ctx, addr, cloud_id).await?;
        }
        if let Some(mode) = super::str_attr(after, "authentication_mode") {
            if super::str_attr(before, "authentication_mode") != Some(mode) {
                ctx.aws
                    .eks
                    .update_cluster_config()
                    .name(cloud_id)
                    .access_config(
                        aws_sdk_eks::types::UpdateAccessConfigRequest::builder()
                            .authentication_mode(aws_sdk_eks::types::AuthenticationMode::from(
                                mode,
                            ))
                            .build(),
                    )
                    .client_request_token(request_token(ctx, addr, &format!("access-{mode}")))
                    .send()
                    .await
                    .map_err(|e| aws_error("UpdateClusterConfig", e))?;
                wait_active(ctx, addr, cloud_id).await?;
            }
        }
        let current = describe(ctx, cloud_id)
            .await?
            .ok_or_else(|| ResourceError::Disappeared {
                what: format!("cluster {cloud_id}"),
            })?;
        if let Some(arn) = current.arn() {
            update_tags(ctx, arn, before, after).await?;
        }
        wait_active(ctx, addr, cloud_id).await
    }

    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        if super::is_adopted(addr, attrs) {
            // Made elsewhere: the plan only forgets it; never deleted from here.
            return Ok(());
        }
        // Its endpoint is going away: no Kubernetes client may be built from what was seen.
        ctx.kube.forget(cloud_id).await;
        match ctx.aws.eks.delete_cluster().name(cloud_id).send().await {
            Ok(_) => {}
            Err(e) => {
                let err = aws_error("DeleteCluster", e);
                if err.code() == Some("ResourceNotFoundException") {
                    return Ok(());
                }
                return Err(err);
            }
        }
        wait_gone(ctx, addr, cloud_id).await
    }

    async fn settle(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
    ) -> Result<Option<Observed>, ResourceError> {
        wait_active(ctx, addr, cloud_id).await.map(Some)
    }
}
